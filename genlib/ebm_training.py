r"""Training energy-based models by maximum likelihood, with Markov chains for the model term.

The gradient of the average log-likelihood is data expectation minus model expectation
(:mod:`genlib.ebm`). The model expectation needs samples of the model, and exact samples are out of
reach, so it is estimated with short Markov chains:

- **CD-k** (contrastive divergence, Hinton 2002): start a chain at each data vector and run
  :math:`k` Gibbs steps. Cheap and low-variance, but biased: the chain has not reached the model.
- **PCD** (persistent CD, Tieleman 2008): keep the chains from one update to the next; the
  parameters change slowly, so the chains stay close to the current model.
- **Short-run Langevin with a replay buffer** (Du & Mordatch 2019) for a neural energy on
  continuous data: a few Langevin steps started from samples kept in a buffer (and some fresh noise),
  with the loss :math:`\frac1B\sum E_\theta(x^+) - \frac1B\sum E_\theta(x^-)` whose gradient is minus the
  log-likelihood gradient.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from tqdm.auto import tqdm

from genlib.ebm import (
    MAX_ENUMERATION_UNITS,
    RBM,
    _check_positive_float,
    _check_rbm_params,
    _check_states,
    rbm_gradient,
    rbm_log_partition,
    rbm_log_prob,
)
from genlib.mcmc import langevin_step, rbm_gibbs_step
from genlib.validation import check_generator, check_positive_int, check_tensor

__all__ = [
    "rbm_cd_gradient",
    "rbm_pcd_gradient",
    "RBMHistory",
    "train_rbm",
    "ReplayBuffer",
    "short_run_langevin",
    "EnergyHistory",
    "train_neural_energy",
]


# --------------------------------------------------------------------------- RBM


def rbm_cd_gradient(
    v: torch.Tensor,
    weight: torch.Tensor,
    visible_bias: torch.Tensor,
    hidden_bias: torch.Tensor,
    *,
    k: int = 1,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""The CD-k estimate of the log-likelihood gradient of an RBM on the batch ``v``.

    Each data vector :math:`v^i` starts a chain; :math:`k` block Gibbs steps
    (:func:`genlib.mcmc.rbm_gibbs_step`) give :math:`\tilde v^i`, and the gradient is
    :func:`genlib.ebm.rbm_gradient` with ``v_model`` :math:`= \tilde v`:

    .. math::
        \Delta W = \frac1N \sum_i \big( v^i \hat h(v^i)^\top - \tilde v^i \hat h(\tilde v^i)^\top \big), \quad
        \Delta b = \frac1N \sum_i (v^i - \tilde v^i), \quad
        \Delta c = \frac1N \sum_i \big(\hat h(v^i) - \hat h(\tilde v^i)\big),

    with :math:`\hat h(v) = P(h = 1 \mid v)`. As :math:`k \to \infty` its expectation tends to the exact
    gradient (:func:`genlib.ebm.rbm_exact_gradient`).

    Randomness: the ``k`` Gibbs steps, in order, each as :func:`genlib.mcmc.rbm_gibbs_step` draws it.

    Args:
        v: the data batch, shape ``(N, D)``, binary, dtype and device of ``weight``.
        weight, visible_bias, hidden_bias: shapes ``(D, H)``, ``(D,)``, ``(H,)``.
        k: Gibbs steps, ``>= 1``.

    Returns:
        ``(grad_weight, grad_visible_bias, grad_hidden_bias)``, the ascent direction, shapes
        ``(D, H)``, ``(D,)``, ``(H,)``.
    """
    weight, visible_bias, hidden_bias = _check_rbm_params(weight, visible_bias, hidden_bias)
    v = check_tensor(v, "v", ndim=2, floating=True, min_size=1)
    _check_states(v, "v", weight.shape[0], weight)
    k = check_positive_int(k, "k")
    negative, _ = rbm_gibbs_step(v, weight, visible_bias, hidden_bias, generator=generator, num_steps=k)
    return rbm_gradient(v, negative, weight, visible_bias, hidden_bias)


def rbm_pcd_gradient(
    v: torch.Tensor,
    chains: torch.Tensor,
    weight: torch.Tensor,
    visible_bias: torch.Tensor,
    hidden_bias: torch.Tensor,
    *,
    k: int = 1,
    generator: torch.Generator | None = None,
) -> tuple[tuple[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    r"""The persistent-CD estimate: advance the persistent ``chains`` by ``k`` Gibbs steps and use them
    as the negative samples.

    Args:
        v: the data batch ``(N, D)``. chains: the persistent chains' states ``(M, D)``, binary.
        weight, visible_bias, hidden_bias, k, generator: as in :func:`rbm_cd_gradient`.

    Returns:
        ``(gradients, chains_next)``, the three gradients as in :func:`rbm_cd_gradient` and the new
        states of the chains ``(M, D)`` to pass to the next call.
    """
    weight, visible_bias, hidden_bias = _check_rbm_params(weight, visible_bias, hidden_bias)
    v = check_tensor(v, "v", ndim=2, floating=True, min_size=1)
    _check_states(v, "v", weight.shape[0], weight)
    chains = check_tensor(chains, "chains", ndim=2, floating=True, min_size=1)
    _check_states(chains, "chains", weight.shape[0], weight)
    k = check_positive_int(k, "k")
    chains, _ = rbm_gibbs_step(chains, weight, visible_bias, hidden_bias, generator=generator, num_steps=k)
    return rbm_gradient(v, chains, weight, visible_bias, hidden_bias), chains


class RBMHistory(NamedTuple):
    """What :func:`train_rbm` returns: per evaluation (before training and after every ``eval_every``
    epochs), the epoch and the exact average log-likelihood (nats per vector) of the training and the
    evaluation data (``nan`` lists when not computed)."""

    epochs: list[int]
    train_log_likelihood: list[float]
    eval_log_likelihood: list[float]


def train_rbm(
    rbm: RBM,
    data: torch.Tensor,
    *,
    method: str = "cd",
    k: int = 1,
    num_epochs: int = 10,
    batch_size: int = 100,
    learning_rate: float = 0.05,
    num_chains: int | None = None,
    eval_data: torch.Tensor | None = None,
    eval_every: int = 1,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> RBMHistory:
    r"""Train ``rbm`` in place by stochastic gradient ascent on the log-likelihood, with CD-k or PCD-k.

    Each epoch visits the data in a random order (``torch.randperm(N, generator=generator)``) in
    batches of ``batch_size``; each batch gives one update
    :math:`\theta \leftarrow \theta + \eta \Delta\theta`
    with :math:`\Delta\theta` from :func:`rbm_cd_gradient` (``method="cd"``) or :func:`rbm_pcd_gradient`
    (``method="pcd"``, ``num_chains`` persistent chains, default ``batch_size``, started at random
    training vectors). If one layer has at most :data:`genlib.ebm.MAX_ENUMERATION_UNITS` units,
    the exact log-likelihood is recorded before training and every ``eval_every`` epochs.

    Args:
        rbm: the model, updated in place.
        data: shape ``(N, D)``, binary, dtype and device of the model's parameters.
        method: ``"cd"`` or ``"pcd"``. k: Gibbs steps per update.
        num_epochs, batch_size, learning_rate (:math:`\eta`), num_chains: as described.
        eval_data: optional held-out data ``(M, D)`` to evaluate as well.
        generator: the source of all randomness (order, chains, Gibbs steps).
        progress: show a ``tqdm`` bar over the epochs.

    Returns:
        An :class:`RBMHistory`.
    """
    if not isinstance(rbm, RBM):
        raise TypeError(f"rbm must be a genlib.ebm.RBM, got {type(rbm).__name__}")
    weight, visible_bias, hidden_bias = rbm.params
    data = check_tensor(data, "data", ndim=2, floating=True, min_size=1)
    _check_states(data, "data", weight.shape[0], weight)
    if eval_data is not None:
        eval_data = check_tensor(eval_data, "eval_data", ndim=2, floating=True, min_size=1)
        _check_states(eval_data, "eval_data", weight.shape[0], weight)
    if method not in ("cd", "pcd"):
        raise ValueError(f"method must be 'cd' or 'pcd', got {method!r}")
    k = check_positive_int(k, "k")
    num_epochs = check_positive_int(num_epochs, "num_epochs")
    batch_size = check_positive_int(batch_size, "batch_size")
    eval_every = check_positive_int(eval_every, "eval_every")
    learning_rate = _check_positive_float(learning_rate, "learning_rate")
    num_chains = batch_size if num_chains is None else check_positive_int(num_chains, "num_chains")
    generator = check_generator(generator, data.device)
    exact = min(weight.shape) <= MAX_ENUMERATION_UNITS
    history = RBMHistory([], [], [])

    def evaluate(epoch: int) -> None:
        nan = float("nan")
        train_ll = eval_ll = nan
        if exact:
            log_z = rbm_log_partition(*rbm.params)
            train_ll = rbm_log_prob(data, *rbm.params, log_z=log_z).mean().item()
            if eval_data is not None:
                eval_ll = rbm_log_prob(eval_data, *rbm.params, log_z=log_z).mean().item()
        history.epochs.append(epoch)
        history.train_log_likelihood.append(train_ll)
        history.eval_log_likelihood.append(eval_ll)

    evaluate(0)
    n = data.shape[0]
    start = torch.randint(n, (num_chains,), generator=generator, device=data.device)
    chains = data[start].clone()
    bar = tqdm(range(1, num_epochs + 1), desc=f"RBM {method.upper()}-{k}", disable=not progress, leave=False)
    for epoch in bar:
        order = torch.randperm(n, generator=generator, device=data.device)
        for first in range(0, n, batch_size):
            batch = data[order[first : first + batch_size]]
            params = rbm.params
            if method == "cd":
                grads = rbm_cd_gradient(batch, *params, k=k, generator=generator)
            else:
                grads, chains = rbm_pcd_gradient(batch, chains, *params, k=k, generator=generator)
            with torch.no_grad():
                for p, g in zip((rbm.weight, rbm.visible_bias, rbm.hidden_bias), grads, strict=True):
                    p.add_(learning_rate * g)
        if epoch % eval_every == 0 or epoch == num_epochs:
            evaluate(epoch)
            if progress:
                bar.set_postfix(train_ll=f"{history.train_log_likelihood[-1]:.3f}")
    return history


# --------------------------------------------------------------------------- neural energy


class ReplayBuffer:
    r"""A store of past negative samples for short-run Langevin training (Du & Mordatch 2019).

    It starts as ``capacity`` points uniform in the box :math:`[\text{low}, \text{high}]^d`. Each training
    step draws a batch from it (:meth:`sample`), in which a fraction ``reinit_prob`` of the points are
    replaced by fresh uniform noise, runs a few Langevin steps from them, and writes the results back
    (:meth:`update`). The chains thus continue across training steps, as in PCD, while the fresh noise
    keeps new regions reachable.

    Attributes:
        samples: shape ``(capacity, dim)``, the stored points.
    """

    def __init__(
        self,
        capacity: int,
        low: float,
        high: float,
        *,
        dim: int = 2,
        reinit_prob: float = 0.05,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        self.capacity = check_positive_int(capacity, "capacity")
        self.dim = check_positive_int(dim, "dim")
        if not (isinstance(low, (int, float)) and isinstance(high, (int, float)) and low < high):
            raise ValueError(f"low and high must be numbers with low < high, got {low!r} and {high!r}")
        if not (isinstance(reinit_prob, (int, float)) and 0 <= reinit_prob <= 1):
            raise ValueError(f"reinit_prob must be in [0, 1], got {reinit_prob!r}")
        self.low, self.high, self.reinit_prob = float(low), float(high), float(reinit_prob)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.dtype = dtype
        generator = check_generator(generator, self.device)
        self.samples = self._noise(self.capacity, generator)

    def _noise(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        u = torch.rand((n, self.dim), generator=generator, dtype=self.dtype, device=self.device)
        return self.low + (self.high - self.low) * u

    def sample(
        self, n: int, *, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` starting points ``(n, dim)`` and the buffer slots ``(n,)`` they came from.

        Randomness, in order: the slots ``torch.randint(capacity, (n,))``, the reinitialisation coins
        ``torch.rand(n)``, the noise ``torch.rand((n, dim))``.
        """
        n = check_positive_int(n, "n")
        generator = check_generator(generator, self.device)
        index = torch.randint(self.capacity, (n,), generator=generator, device=self.device)
        fresh = torch.rand(n, generator=generator, device=self.device) < self.reinit_prob
        x = torch.where(fresh[:, None], self._noise(n, generator), self.samples[index])
        return x, index

    def update(self, index: torch.Tensor, x: torch.Tensor) -> None:
        """Write the points ``x`` ``(n, dim)`` back into the slots ``index`` ``(n,)``, clamped to the box."""
        index = check_tensor(index, "index", ndim=1, floating=False)
        x = check_tensor(x, "x", ndim=2, floating=True)
        if x.shape != (index.shape[0], self.dim):
            raise ValueError(f"x must have shape ({index.shape[0]}, {self.dim}), got {tuple(x.shape)}")
        self.samples[index] = x.detach().to(self.dtype).clamp(self.low, self.high)


def short_run_langevin(
    energy: torch.nn.Module,
    x: torch.Tensor,
    num_steps: int,
    step_size: float,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""``num_steps`` steps of :func:`genlib.mcmc.langevin_step` from ``x`` ``(C, d)``: the short-run
    chain that supplies the negative samples. Returns the final states ``(C, d)``, detached."""
    num_steps = check_positive_int(num_steps, "num_steps")
    for _ in range(num_steps):
        x = langevin_step(x, energy, step_size, generator=generator)
    return x


class EnergyHistory(NamedTuple):
    """What :func:`train_neural_energy` returns, one entry per training step: the loss, and the mean
    energies of the data batch and of the negative samples."""

    loss: list[float]
    energy_data: list[float]
    energy_samples: list[float]


def train_neural_energy(
    energy: torch.nn.Module,
    data: torch.Tensor,
    *,
    num_steps: int = 1000,
    batch_size: int = 128,
    langevin_steps: int = 20,
    step_size: float = 0.01,
    buffer: ReplayBuffer | None = None,
    start_low: float = -4.0,
    start_high: float = 4.0,
    learning_rate: float = 1e-3,
    alpha: float = 0.1,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> EnergyHistory:
    r"""Train a neural energy on continuous data with short-run Langevin negatives.

    Each step takes a batch :math:`x^+` of data and a batch :math:`x^-` of negatives: ``langevin_steps``
    Langevin steps started from the ``buffer`` (or, without one, from fresh uniform noise in
    :math:`[\text{start\_low}, \text{start\_high}]^d`), and minimises with Adam

    .. math::
        L(\theta) = \frac1B \sum_i E_\theta(x^{+,i}) - \frac1B \sum_i E_\theta(x^{-,i})
                    + \alpha \frac1B \sum_i \big(E_\theta(x^{+,i})^2 + E_\theta(x^{-,i})^2\big).

    The first two terms have the gradient :math:`-\nabla_\theta \frac1B\sum_i \log P(x^{+,i} \mid \theta)`
    if the negatives were exact model samples (the :math:`\log Z` term); the third keeps the energies
    near zero, since the loss alone fixes them only up to a constant.

    Randomness: per step the batch indices ``torch.randint(N, (B,))``, then the buffer's or the
    noise's draws, then the Langevin noise, all from ``generator``.

    Args:
        energy: the model, ``(B, d) -> (B,)``, e.g. :class:`genlib.ebm.NeuralEnergy`; trained in place.
        data: shape ``(N, d)``, floating, dtype and device of the model.
        num_steps, batch_size, langevin_steps, step_size (:math:`\varepsilon`), learning_rate, alpha:
            as described.
        buffer: a :class:`ReplayBuffer`, or ``None`` for chains from noise every step.
        progress: show a ``tqdm`` bar over the steps.

    Returns:
        An :class:`EnergyHistory`.
    """
    if not isinstance(energy, torch.nn.Module):
        raise TypeError(f"energy must be a torch.nn.Module, got {type(energy).__name__}")
    data = check_tensor(data, "data", ndim=2, floating=True, min_size=1, finite=True)
    num_steps = check_positive_int(num_steps, "num_steps")
    batch_size = check_positive_int(batch_size, "batch_size")
    langevin_steps = check_positive_int(langevin_steps, "langevin_steps")
    step_size = _check_positive_float(step_size, "step_size")
    learning_rate = _check_positive_float(learning_rate, "learning_rate")
    if not (isinstance(alpha, (int, float)) and alpha >= 0):
        raise ValueError(f"alpha must be a number >= 0, got {alpha!r}")
    if buffer is not None and not isinstance(buffer, ReplayBuffer):
        raise TypeError(f"buffer must be a ReplayBuffer or None, got {type(buffer).__name__}")
    if not start_low < start_high:
        raise ValueError(f"start_low must be below start_high, got {start_low} and {start_high}")
    generator = check_generator(generator, data.device)
    optimizer = torch.optim.Adam(energy.parameters(), lr=learning_rate, betas=(0.0, 0.999))
    history = EnergyHistory([], [], [])
    n, d = data.shape
    for _ in tqdm(range(num_steps), desc="EBM training", disable=not progress, leave=False):
        positive = data[torch.randint(n, (batch_size,), generator=generator, device=data.device)]
        if buffer is not None:
            start, slots = buffer.sample(batch_size, generator=generator)
        else:
            u = torch.rand((batch_size, d), generator=generator, dtype=data.dtype, device=data.device)
            start = start_low + (start_high - start_low) * u
        negative = short_run_langevin(energy, start, langevin_steps, step_size, generator=generator)
        if buffer is not None:
            buffer.update(slots, negative)
        e_pos, e_neg = energy(positive), energy(negative)
        loss = e_pos.mean() - e_neg.mean() + alpha * (e_pos.square().mean() + e_neg.square().mean())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        history.loss.append(loss.item())
        history.energy_data.append(e_pos.mean().item())
        history.energy_samples.append(e_neg.mean().item())
    return history
