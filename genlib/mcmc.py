r"""Markov chain Monte Carlo: Metropolis--Hastings, Gibbs and Langevin samplers, and their diagnostics.

A Markov chain draws each state :math:`x^{(t+1)}` from a transition kernel
:math:`K(x^{(t+1)} \mid x^{(t)})` that depends only on the previous state. If :math:`K` leaves the
target :math:`P(x) = e^{-E(x)}/Z` invariant (:math:`\sum_x P(x) K(x' \mid x) = P(x')`) and the
chain can reach every state, the distribution of :math:`x^{(t)}` converges to :math:`P` whatever
the start. None of the samplers needs :math:`Z`: they only compare energies or follow
:math:`-\nabla E`.

- **Metropolis--Hastings** (zero order: uses :math:`E` only). Propose :math:`x' \sim q(x' \mid x)`,
  accept with probability :math:`\alpha = \min\big(1, \frac{P(x') q(x \mid x')}{P(x) q(x' \mid x)}\big)`,
  else stay. A random walk :math:`x' = x + \sigma \xi` or a single bit flip is symmetric, and
  :math:`\alpha = \min(1, e^{E(x) - E(x')})`.
- **Gibbs sampling**: redraw one unit (or a block of conditionally independent units) from its
  conditional given the rest. For an RBM the hidden layer given the visible one is such a block, and
  vice versa.
- **Langevin dynamics** (first order: uses :math:`\nabla E`):
  :math:`x' = x - \varepsilon \nabla E(x) + \sqrt{2 \varepsilon}\, \xi`. Unadjusted (ULA) it is
  biased by :math:`O(\varepsilon)`; with a Metropolis--Hastings correction (MALA) it is exact.

Chains run in parallel: a state tensor ``x`` of shape ``(C, ...)`` holds :math:`C` independent
chains, and ``energy`` maps it to ``(C,)``. Random numbers come from ``generator`` only, in the order
each docstring states, so that a second implementation given the same generator state produces
the same chain. :func:`run_chain` adds burn-in and thinning; :func:`effective_sample_size`,
:func:`autocorrelation`, :func:`split_rhat` and :func:`total_variation` say how good the samples are.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from tqdm.auto import tqdm

from genlib.ebm import (
    _check_binary,
    _check_bm_params,
    _check_positive_float,
    _check_rbm_params,
    _check_states,
    state_index,
)
from genlib.sampling import empirical_distribution
from genlib.validation import check_generator, check_positive_int, check_probabilities, check_tensor

__all__ = [
    "Chain",
    "metropolis_accept",
    "metropolis_hastings_step",
    "metropolis_flip_step",
    "bm_gibbs_sweep",
    "rbm_gibbs_step",
    "energy_and_grad",
    "langevin_step",
    "mala_step",
    "run_chain",
    "autocorrelation",
    "integrated_autocorrelation_time",
    "effective_sample_size",
    "split_rhat",
    "total_variation",
    "empirical_state_distribution",
]


# --------------------------------------------------------------------------- checks


def _check_step_size(step_size: object) -> float:
    if isinstance(step_size, bool) or not isinstance(step_size, (int, float)):
        raise TypeError(f"step_size must be a positive number (int or float), got {type(step_size).__name__}")
    if not (math.isfinite(step_size) and step_size > 0):
        raise ValueError(f"step_size must be positive and finite, got {step_size}")
    return float(step_size)


def _check_chains(x: object, name: str = "x") -> torch.Tensor:
    x = check_tensor(x, name, floating=True, finite=True)
    if x.dim() == 0 or x.shape[0] == 0:
        raise ValueError(f"{name} must have shape (C, ...) with C >= 1 chains, got {tuple(x.shape)}")
    return x


def _energies(
    energy: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, name: str = "energy"
) -> torch.Tensor:
    """``energy(x)``, checked to be ``(C,)`` and free of NaN and -inf (+inf is a zero-probability state)."""
    if not callable(energy):
        raise TypeError(f"{name} must be a callable (C, ...) -> (C,), got {type(energy).__name__}")
    values = energy(x)
    if not isinstance(values, torch.Tensor) or values.shape != x.shape[:1]:
        got = tuple(values.shape) if isinstance(values, torch.Tensor) else type(values).__name__
        raise ValueError(
            f"{name} must map states of shape {tuple(x.shape)} to shape ({x.shape[0]},), got {got}"
        )
    if bool(torch.isnan(values).any()) or bool((values == -math.inf).any()):
        raise ValueError(f"{name} returned NaN or -inf for some states; energies must be real or +inf")
    return values


def _check_binary_fast(x: torch.Tensor, name: str) -> torch.Tensor:
    """Check that ``x`` holds only 0 and 1, as :func:`genlib.ebm._check_binary` does, in a third of
    the time: :math:`x (x - 1)` is exactly 0 at 0 and 1, negative in (0, 1), positive outside
    [0, 1] (or inf) and NaN at NaN, so its minimum and maximum are both 0 if and only if ``x`` is
    binary. Two float passes and a float reduction instead of comparisons and a boolean ``all``."""
    if x.numel():
        low, high = torch.aminmax(x.sub(1).mul_(x))
        if (low.item(), high.item()) != (0.0, 0.0):
            _check_binary(x, name)  # raises, naming some of the values
    return x


def _per_chain(mask: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A ``(C,)`` mask reshaped to broadcast against ``x`` of shape ``(C, ...)``."""
    return mask.reshape(mask.shape + (1,) * (x.dim() - 1))


# --------------------------------------------------------------------------- Metropolis--Hastings


def metropolis_accept(
    x: torch.Tensor,
    x_proposed: torch.Tensor,
    log_accept_ratio: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The Metropolis--Hastings decision: move chain :math:`c` to its proposal with probability
    :math:`\min(1, e^{\log r_c})`, else keep its state.

    Draws ``u = torch.rand(C, generator=generator, dtype=x.dtype)`` and accepts where
    :math:`\log u < \log r`: the comparison happens in log space, so a ratio :math:`r` that would
    overflow or underflow as :math:`e^{\log r}` is still decided correctly, and ``log r = -inf`` (a
    proposal of probability zero) is always rejected.

    Args:
        x, x_proposed: shape ``(C, ...)``, the current states and the proposals.
        log_accept_ratio: :math:`\log r`, shape ``(C,)``; :math:`-\infty` allowed, NaN not.

    Returns:
        ``(x_next, accepted)``, of shape ``(C, ...)`` and a ``torch.bool`` mask ``(C,)``.
    """
    x = _check_chains(x)
    x_proposed = check_tensor(x_proposed, "x_proposed", floating=True)
    if x_proposed.shape != x.shape:
        raise ValueError(
            f"x_proposed must have the shape of x, {tuple(x.shape)}, got {tuple(x_proposed.shape)}"
        )
    log_accept_ratio = check_tensor(log_accept_ratio, "log_accept_ratio", ndim=1, floating=True)
    if log_accept_ratio.shape[0] != x.shape[0]:
        raise ValueError(
            f"log_accept_ratio must have shape ({x.shape[0]},), got {tuple(log_accept_ratio.shape)}"
        )
    if bool(torch.isnan(log_accept_ratio).any()):
        raise ValueError("log_accept_ratio holds NaN: check the energies of the states and proposals")
    generator = check_generator(generator, x.device)
    u = torch.rand(x.shape[0], generator=generator, dtype=x.dtype, device=x.device)
    accepted = torch.log(u) < log_accept_ratio
    return torch.where(_per_chain(accepted, x), x_proposed, x), accepted


def metropolis_hastings_step(
    x: torch.Tensor,
    energy: Callable[[torch.Tensor], torch.Tensor],
    step_size: float,
    *,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""One random-walk Metropolis step for each of :math:`C` chains.

    Proposes :math:`x' = x + \sigma \xi` with :math:`\xi \sim \mathcal N(0, I)` and
    :math:`\sigma` = ``step_size``: a symmetric proposal, :math:`q(x' \mid x) = q(x \mid x')`, so the
    Hastings ratio reduces to :math:`P(x')/P(x) = e^{E(x) - E(x')}` and :math:`Z` cancels. Accepts
    with :func:`metropolis_accept`.

    Randomness, in this order: ``xi = torch.randn(x.shape, generator=generator, dtype=x.dtype)``,
    then the ``C`` uniforms of :func:`metropolis_accept`.

    Args:
        x: shape ``(C, ...)``, floating: the current state of each chain.
        energy: maps ``(C, ...)`` to ``(C,)``; the target is :math:`\propto e^{-E}`. ``+inf`` marks
            states outside the support; the current states must have finite energy.
        step_size: :math:`\sigma > 0`, the standard deviation of the proposal.

    Returns:
        ``(x_next, accepted)``, of shape ``(C, ...)`` and a ``torch.bool`` mask ``(C,)``.
    """
    x = _check_chains(x)
    step_size = _check_step_size(step_size)
    generator = check_generator(generator, x.device)
    xi = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    proposal = x + step_size * xi
    log_ratio = _energies(energy, x) - _energies(energy, proposal)
    return metropolis_accept(x, proposal, log_ratio, generator=generator)


def metropolis_flip_step(
    x: torch.Tensor,
    energy: Callable[[torch.Tensor], torch.Tensor],
    *,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""One Metropolis step on binary states: flip one unit chosen uniformly at random, accept with
    :math:`\min(1, e^{E(x) - E(x')})`.

    The proposal is symmetric (flipping the same unit back has the same probability :math:`1/D`).
    Randomness: ``j = torch.randint(D, (C,), generator=generator)``, then the uniforms of
    :func:`metropolis_accept`.

    Args:
        x: shape ``(C, D)``, binary (0/1), floating. energy: ``(C, D) -> (C,)``.

    Returns:
        ``(x_next, accepted)``.
    """
    x = _check_chains(x)
    if x.dim() != 2:
        raise ValueError(f"x must have shape (C, D), got {tuple(x.shape)}")
    generator = check_generator(generator, x.device)
    c, d = x.shape
    unit = torch.randint(d, (c,), generator=generator, device=x.device)
    proposal = x.clone()
    rows = torch.arange(c, device=x.device)
    proposal[rows, unit] = 1 - proposal[rows, unit]
    log_ratio = _energies(energy, x) - _energies(energy, proposal)
    return metropolis_accept(x, proposal, log_ratio, generator=generator)


# --------------------------------------------------------------------------- Gibbs


def bm_gibbs_sweep(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    *,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""One systematic-scan Gibbs sweep of a fully visible Boltzmann machine, all chains at once.

    For :math:`j = 1, \dots, D` in turn, redraw unit :math:`j` from
    :math:`P(x_j = 1 \mid x_{-j}) = \sigma\big((\sum_k W_{jk} x_k + b_j)/T\big)` given the current
    values of all the others (the ones already updated in this sweep included). Each update leaves
    the Boltzmann distribution invariant, so the sweep does too. The units of a fully visible BM
    are all coupled, so they cannot be redrawn as one block.

    Randomness: ``u = torch.rand((C, D), generator=generator, dtype=x.dtype)`` once per sweep; unit
    :math:`j` becomes ``u[:, j] < p_j``.

    Args:
        x: shape ``(C, D)``, binary, dtype and device of ``weight``.
        weight: ``(D, D)`` symmetric, zero diagonal. bias: ``(D,)``. temperature: :math:`T > 0`.

    Returns:
        The new states, shape ``(C, D)``.
    """
    weight, bias = _check_bm_params(weight, bias)
    x = _check_states(_check_chains(x), "x", weight.shape[0], weight)
    if x.dim() != 2:
        raise ValueError(f"x must have shape (C, D), got {tuple(x.shape)}")
    temperature = _check_positive_float(temperature, "temperature")
    generator = check_generator(generator, x.device)
    u = torch.rand(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    x = x.clone()
    for j in range(x.shape[1]):
        p = torch.sigmoid((x @ weight[:, j] + bias[j]) / temperature)  # (C,)
        x[:, j] = (u[:, j] < p).to(x.dtype)
    return x


def rbm_gibbs_step(
    v: torch.Tensor,
    weight: torch.Tensor,
    visible_bias: torch.Tensor,
    hidden_bias: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    num_steps: int = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""One step of block Gibbs sampling in an RBM: :math:`h \sim P(h \mid v)`, then
    :math:`v' \sim P(v \mid h)`; or ``num_steps`` such steps.

    Given one layer, the units of the other are independent, so each layer is redrawn as one block
    by thresholding uniforms at the conditional probabilities (those of
    :func:`genlib.ebm.rbm_hidden_probs` and :func:`genlib.ebm.rbm_visible_probs`):
    ``h = (u < sigmoid(v @ weight + hidden_bias))``, then
    ``v' = (u' < sigmoid(h @ weight.T + visible_bias))``.

    Randomness, in this order, in every step: ``torch.rand((*v.shape[:-1], H), generator=generator,
    dtype=v.dtype)`` for :math:`h`, then ``torch.rand(v.shape, generator=generator, dtype=v.dtype)``
    for :math:`v'`. So ``num_steps=k`` returns exactly what ``k`` calls in a row with the same
    generator return; it checks the inputs once instead of ``k`` times and reuses its buffers.

    Args:
        v: shape ``(..., D)``, binary (0/1), floating, dtype and device of ``weight``.
        weight: ``(D, H)``. visible_bias: ``(D,)``. hidden_bias: ``(H,)``. All finite.
        num_steps: how many steps, ``>= 1``.

    Returns:
        ``(v_next, h)``, the new visible states ``(..., D)`` and the hidden states drawn on the way
        (in the last step) ``(..., H)``, both 0/1 in the dtype of ``v``. ``v`` itself is not modified.
    """
    weight, visible_bias, hidden_bias = _check_rbm_params(weight, visible_bias, hidden_bias)
    d, num_hidden = weight.shape
    v = _check_binary_fast(_check_states(v, "v", d, weight, binary=False), "v")  # (..., D), 0/1
    generator = check_generator(generator, v.device)
    num_steps = check_positive_int(num_steps, "num_steps")
    # Chains as the rows of a matrix; detached, since samples carry no gradient and out= needs that.
    w, b, c = weight.detach(), visible_bias.detach(), hidden_bias.detach()
    v_now = v.detach().reshape(-1, d)  # (N, D)
    p_h = torch.empty((v_now.shape[0], num_hidden), dtype=v.dtype, device=v.device)
    h, p_v, v_next = torch.empty_like(p_h), torch.empty_like(v_now), torch.empty_like(v_now)
    for step in range(num_steps):
        torch.addmm(c, v_now, w, out=p_h).sigmoid_()  # P(h = 1 | v), (N, H)
        torch.rand(h.shape, generator=generator, out=h)
        torch.lt(h, p_h, out=h)  # h = (u < P(h = 1 | v)) as 0.0/1.0
        torch.addmm(b, h, w.T, out=p_v).sigmoid_()  # P(v = 1 | h), (N, D)
        torch.rand(v_next.shape, generator=generator, out=v_next)
        torch.lt(v_next, p_v, out=v_next)
        if step + 1 < num_steps:  # v_next is read next; a spare buffer (never the caller's v) is written
            v_now, v_next = v_next, (torch.empty_like(v_next) if step == 0 else v_now)
    return v_next.reshape(v.shape), h.reshape(*v.shape[:-1], num_hidden)


# --------------------------------------------------------------------------- Langevin


def energy_and_grad(
    energy: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The energies :math:`E(x)` ``(C,)`` and their gradients :math:`\nabla_x E(x)` ``(C, ...)``, by
    autograd.

    Since chain :math:`c`'s energy depends only on :math:`x_c`, the gradient of the sum
    :math:`\sum_c E(x_c)` with respect to ``x`` holds every chain's own gradient. Works under
    ``torch.no_grad()``; gradients do not flow into the parameters of ``energy``. Both results are
    detached.
    """
    x = _check_chains(x)
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        values = _energies(energy, x)
        if not values.requires_grad:
            raise ValueError("energy(x) does not depend on x through differentiable torch operations")
        (grad,) = torch.autograd.grad(values.sum(), x)
    if not bool(torch.isfinite(grad).all()):
        raise ValueError("the gradient of the energy holds NaN or inf; is the current state in the support?")
    return values.detach(), grad


def langevin_step(
    x: torch.Tensor,
    energy: Callable[[torch.Tensor], torch.Tensor],
    step_size: float,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""One step of the unadjusted Langevin algorithm (ULA):
    :math:`x' = x - \varepsilon \nabla E(x) + \sqrt{2 \varepsilon}\, \xi`, :math:`\xi \sim \mathcal N(0, I)`.

    It is the Euler--Maruyama discretisation, with time step :math:`\varepsilon`, of the Langevin
    diffusion :math:`dx = -\nabla E(x)\, dt + \sqrt 2\, dW`, whose stationary density is
    :math:`\propto e^{-E}`. The noise must have variance :math:`2\varepsilon`: the drift moves the
    chain downhill by :math:`\varepsilon \nabla E`, and only noise of exactly this size spreads it
    back out to :math:`e^{-E}` (for :math:`E = x^2 / 2\sigma^2` the chain's variance settles at
    :math:`\sigma^2 / (1 - \varepsilon / 2\sigma^2)`, :math:`\to \sigma^2` as
    :math:`\varepsilon \to 0`). With no Metropolis correction the stationary distribution is off by
    :math:`O(\varepsilon)`; see :func:`mala_step`.

    Randomness: ``xi = torch.randn(x.shape, generator=generator, dtype=x.dtype)``.

    Args:
        x: shape ``(C, ...)``, floating. energy: differentiable, ``(C, ...) -> (C,)``.
        step_size: :math:`\varepsilon > 0`.

    Returns:
        The new states, shape ``(C, ...)``, detached from any graph.
    """
    x = _check_chains(x)
    step_size = _check_step_size(step_size)
    generator = check_generator(generator, x.device)
    _, grad = energy_and_grad(energy, x)
    xi = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    return (x - step_size * grad + math.sqrt(2 * step_size) * xi).detach()


def mala_step(
    x: torch.Tensor,
    energy: Callable[[torch.Tensor], torch.Tensor],
    step_size: float,
    *,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""One step of the Metropolis-adjusted Langevin algorithm (MALA).

    The Langevin move of :func:`langevin_step` is used as a proposal,
    :math:`q(x' \mid x) = \mathcal N(x' ;\, x - \varepsilon \nabla E(x),\, 2 \varepsilon I)`, and corrected
    by Metropolis--Hastings. The proposal is not symmetric, so the ratio keeps the Hastings term:

    .. math::
        \log r = E(x) - E(x') + \log q(x \mid x') - \log q(x' \mid x), \qquad
        \log q(a \mid b)
        = -\frac{\lVert a - b + \varepsilon \nabla E(b) \rVert^2}{4 \varepsilon} + \text{const}.

    The chain then leaves :math:`e^{-E}/Z` exactly invariant, for any step size.

    Randomness: ``xi = torch.randn(x.shape, ...)``, then the uniforms of :func:`metropolis_accept`.

    Returns:
        ``(x_next, accepted)``.
    """
    x = _check_chains(x)
    step_size = _check_step_size(step_size)
    generator = check_generator(generator, x.device)
    e_x, grad_x = energy_and_grad(energy, x)
    xi = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    proposal = (x - step_size * grad_x + math.sqrt(2 * step_size) * xi).detach()
    e_prop, grad_prop = energy_and_grad(energy, proposal)
    dims = tuple(range(1, x.dim()))
    log_q_forward = -(proposal - x + step_size * grad_x).square().sum(dim=dims) / (4 * step_size)
    log_q_backward = -(x - proposal + step_size * grad_prop).square().sum(dim=dims) / (4 * step_size)
    log_ratio = e_x - e_prop + log_q_backward - log_q_forward
    return metropolis_accept(x, proposal, log_ratio, generator=generator)


# --------------------------------------------------------------------------- running chains


class Chain(NamedTuple):
    """What :func:`run_chain` returns.

    ``samples``: shape ``(S, C, ...)``, the recorded states (after burn-in, every ``thin``-th step).
    ``acceptance_rate``: shape ``(C,)``, the fraction of accepted proposals per chain over the steps
    after burn-in, or ``None`` for samplers that always move (Gibbs, ULA).
    ``final``: shape ``(C, ...)``, the last state, to continue the chains from.
    """

    samples: torch.Tensor
    acceptance_rate: torch.Tensor | None
    final: torch.Tensor


def run_chain(
    step: Callable[[torch.Tensor], torch.Tensor | tuple[torch.Tensor, torch.Tensor]],
    x0: torch.Tensor,
    num_samples: int,
    *,
    burn_in: int = 0,
    thin: int = 1,
    progress: bool = False,
    desc: str = "MCMC",
) -> Chain:
    r"""Run :math:`C` chains from ``x0``: discard ``burn_in`` steps, then record every ``thin``-th state.

    The first states of a chain still remember ``x0``; **burn-in** throws away the steps it takes to
    forget it. Successive states are correlated; **thinning** keeps one in ``thin`` (it saves memory,
    not information: the effective sample size of the kept states is at most that of all of them).
    In all ``burn_in + num_samples * thin`` steps are taken.

    Args:
        step: one transition, ``x -> x_next`` or ``x -> (x_next, accepted)`` (e.g. a
            ``functools.partial`` or lambda around :func:`metropolis_hastings_step` with its
            generator), states of shape ``(C, ...)``.
        x0: shape ``(C, ...)``, the starting states.
        num_samples: :math:`S \ge 1`, states recorded per chain.
        burn_in: steps discarded first, ``>= 0``.
        thin: keep every ``thin``-th state, ``>= 1``.
        progress: show a ``tqdm`` bar over the steps.

    Returns:
        A :class:`Chain`.
    """
    if not callable(step):
        raise TypeError(f"step must be a callable x -> x_next, got {type(step).__name__}")
    x = _check_chains(x0, "x0")
    num_samples = check_positive_int(num_samples, "num_samples")
    thin = check_positive_int(thin, "thin")
    if isinstance(burn_in, bool) or not isinstance(burn_in, int) or burn_in < 0:
        raise ValueError(f"burn_in must be an int >= 0, got {burn_in!r}")
    samples = torch.empty((num_samples, *x.shape), dtype=x.dtype, device=x.device)
    accepted_total = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
    has_acceptance = False
    total = burn_in + num_samples * thin
    for t in tqdm(range(total), desc=desc, disable=not progress, leave=False):
        out = step(x)
        if isinstance(out, tuple):
            x, accepted = out
            if t >= burn_in:
                accepted_total += accepted.long()
                has_acceptance = True
        else:
            x = out
        if not isinstance(x, torch.Tensor) or x.shape != samples.shape[1:]:
            raise ValueError(f"step must return states of shape {tuple(samples.shape[1:])}, got {x!r:.80}")
        after = t - burn_in + 1
        if after > 0 and after % thin == 0:
            samples[after // thin - 1] = x
    rate = accepted_total.to(x.dtype) / (num_samples * thin) if has_acceptance else None
    return Chain(samples, rate, x)


# --------------------------------------------------------------------------- diagnostics


def _check_series(samples: object, min_length: int = 4) -> torch.Tensor:
    samples = check_tensor(samples, "samples", floating=True, finite=True)
    if samples.dim() < 2:
        raise ValueError(
            f"samples must have shape (S, C, ...): S steps of C chains, got {tuple(samples.shape)}"
        )
    if samples.shape[0] < min_length or samples.shape[1] < 1:
        raise ValueError(
            f"samples must hold at least {min_length} steps of at least one chain, got {tuple(samples.shape)}"
        )
    return samples


def _autocovariance(samples: torch.Tensor) -> torch.Tensor:
    r"""Per-chain biased autocovariance,
    :math:`\gamma_c(t) = \frac1S \sum_{s=1}^{S-t} (x_s - \bar x)(x_{s+t} - \bar x)`,
    all lags, by FFT in float64 (zero-padded to avoid wrap-around). Shape ``(S, C, ...)``."""
    n = samples.shape[0]
    centred = samples.double() - samples.double().mean(dim=0, keepdim=True)
    size = 1 << (2 * n - 1).bit_length()
    spectrum = torch.fft.rfft(centred, n=size, dim=0)
    return torch.fft.irfft(spectrum * spectrum.conj(), n=size, dim=0)[:n] / n


def autocorrelation(samples: torch.Tensor, *, max_lag: int | None = None) -> torch.Tensor:
    r"""The autocorrelation :math:`\rho_c(t) = \gamma_c(t) / \gamma_c(0)` of each chain at lags
    :math:`0, \dots, L`.

    :math:`\gamma_c(t)` is the biased (divisor :math:`S`) autocovariance of chain :math:`c`, computed for
    all lags at once with an FFT in :math:`O(S \log S)`. A coordinate that never changes along a
    chain gets :math:`\rho = 1` at every lag: the chain is stuck, perfectly correlated with itself.

    Args:
        samples: shape ``(S, C, ...)``: :math:`S` steps of :math:`C` chains (coordinates after that).
        max_lag: :math:`L`, at most :math:`S - 1` (default :math:`S - 1`).

    Returns:
        Shape ``(L + 1, C, ...)``, dtype of ``samples``, with :math:`\rho(0) = 1`.
    """
    samples = _check_series(samples, min_length=2)
    n = samples.shape[0]
    max_lag = n - 1 if max_lag is None else max_lag
    if isinstance(max_lag, bool) or not isinstance(max_lag, int) or not 0 <= max_lag <= n - 1:
        raise ValueError(f"max_lag must be an int in 0..{n - 1} (S - 1), got {max_lag!r}")
    acov = _autocovariance(samples)[: max_lag + 1]
    variance = acov[:1]
    stuck = variance <= 1e-300
    rho = torch.where(stuck, torch.ones_like(acov), acov / torch.where(stuck, 1.0, variance))
    return rho.to(samples.dtype)


def integrated_autocorrelation_time(samples: torch.Tensor) -> torch.Tensor:
    r"""The integrated autocorrelation time :math:`\tau = 1 + 2 \sum_{t \ge 1} \rho_t` of many chains,
    estimated as in Stan (Geyer's initial monotone sequence on the multi-chain autocorrelation).

    With :math:`\gamma_c(t)` the autocovariance of chain :math:`c` (:func:`autocorrelation`),
    :math:`s_c^2 = \frac{S}{S-1}\gamma_c(0)`, :math:`W = \frac1C\sum_c s_c^2`, :math:`B/S` the
    variance of the chain means (divisor :math:`C - 1`; zero for one chain) and
    :math:`\widehat{\mathrm{var}}^+ = \frac{S-1}{S} W + B/S`:

    .. math::
        \hat\rho_t = 1 - \frac{W - \frac1C \sum_c \gamma_c(t)}{\widehat{\mathrm{var}}^+}, \qquad
        \hat\tau = -1 + 2 \sum_{k=0}^{m} \hat P_k, \quad \hat P_k = \hat\rho_{2k} + \hat\rho_{2k+1},

    summing while :math:`\hat P_k > 0` (noise takes over after that), with each :math:`\hat P_k`
    replaced by the smallest one so far (the true :math:`P_k` decrease). Chains that disagree in
    their means raise :math:`\widehat{\mathrm{var}}^+` and with it :math:`\hat\tau`. A coordinate
    that never varies gets :math:`\tau = SC` (one draw's worth of information).

    Args:
        samples: shape ``(S, C, ...)`` with :math:`S \ge 4`.

    Returns:
        Shape ``(...)`` (one value per coordinate), dtype of ``samples``; :math:`\tau \ge` about
        :math:`1` for positively correlated chains, :math:`\tau < 1` for antithetic ones.
    """
    samples = _check_series(samples)
    n, c = samples.shape[:2]
    acov = _autocovariance(samples)  # (S, C, ...)
    chain_var = acov[0] * n / (n - 1)
    within = chain_var.mean(dim=0)
    var_plus = within * (n - 1) / n
    if c > 1:
        var_plus = var_plus + samples.double().mean(dim=0).var(dim=0)
    stuck = var_plus <= 1e-300
    safe = torch.where(stuck, 1.0, var_plus)
    rho = 1 - (within - acov.mean(dim=1)) / safe  # (S, ...)
    num_pairs = n // 2
    pairs = rho[: 2 * num_pairs].reshape(num_pairs, 2, *rho.shape[1:]).sum(dim=1)  # (K, ...)
    positive = torch.cumprod((pairs > 0).to(pairs.dtype), dim=0)  # 1 until the first non-positive pair
    monotone = torch.cummin(pairs, dim=0).values
    tau = -1 + 2 * (positive * monotone).sum(dim=0)
    tau = torch.where(stuck, torch.full_like(tau, float(n * c)), tau)
    return tau.to(samples.dtype)


def effective_sample_size(samples: torch.Tensor) -> torch.Tensor:
    r"""The effective sample size :math:`S_{\text{eff}} = SC / \hat\tau` of :math:`C` chains of :math:`S`
    steps: how many independent draws would estimate a mean as precisely.

    :math:`\hat\tau` is :func:`integrated_autocorrelation_time`. For independent draws
    :math:`S_{\text{eff}} \approx SC`; for an AR(1) chain :math:`x_{t+1} = \phi x_t + \text{noise}`,
    :math:`\tau = (1 + \phi)/(1 - \phi)`. The standard error of a chain average is
    :math:`\sqrt{\mathrm{var}/S_{\text{eff}}}`.

    Args:
        samples: shape ``(S, C, ...)``, :math:`S \ge 4`.

    Returns:
        Shape ``(...)``, dtype of ``samples``.
    """
    samples = _check_series(samples)
    n, c = samples.shape[:2]
    return (n * c) / integrated_autocorrelation_time(samples)


def split_rhat(samples: torch.Tensor) -> torch.Tensor:
    r"""The split potential scale reduction :math:`\hat R` (Gelman et al., *Bayesian Data Analysis*, 3rd ed.).

    Each chain is cut into halves, giving :math:`2C` chains of :math:`n = \lfloor S/2 \rfloor` steps. With
    :math:`W` the mean within-chain variance and :math:`B/n` the variance of the chain means,
    :math:`\hat R = \sqrt{\big(\frac{n-1}{n}W + \frac Bn\big)/W}`. Chains that have forgotten their starts
    and mix give :math:`\hat R \approx 1`; a value above about 1.01 says that the chains (or the two halves
    of a chain, while it is still burning in) disagree. A coordinate constant in every chain gets 1.

    Args:
        samples: shape ``(S, C, ...)``, :math:`S \ge 4`.

    Returns:
        Shape ``(...)``, dtype of ``samples``.
    """
    samples = _check_series(samples)
    n = samples.shape[0] // 2
    halves = torch.cat([samples[:n], samples[samples.shape[0] - n :]], dim=1).double()  # (n, 2C, ...)
    within = halves.var(dim=0).mean(dim=0)
    between_over_n = halves.mean(dim=0).var(dim=0)
    var_plus = within * (n - 1) / n + between_over_n
    stuck = within <= 1e-300
    rhat = torch.sqrt(var_plus / torch.where(stuck, 1.0, within))
    rhat = torch.where(stuck & (between_over_n <= 1e-300), torch.ones_like(rhat), rhat)
    rhat = torch.where(stuck & (between_over_n > 1e-300), torch.full_like(rhat, math.inf), rhat)
    return rhat.to(samples.dtype)


def total_variation(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    r"""The total variation distance :math:`\mathrm{TV}(P, Q) = \tfrac12 \sum_k |p_k - q_k|
    = \max_A |P(A) - Q(A)|`.

    The largest difference in probability that :math:`P` and :math:`Q` give to any event; between 0
    (equal) and 1 (disjoint supports).

    Args:
        p, q: shape ``(..., K)``, probability vectors, same shape, dtype promoted.

    Returns:
        Shape ``(...)``.
    """
    p = check_probabilities(p, "p")
    q = check_probabilities(q, "q")
    if p.shape != q.shape:
        raise ValueError(f"p and q must have the same shape, got {tuple(p.shape)} and {tuple(q.shape)}")
    if p.device != q.device:
        raise ValueError(f"p is on {p.device} but q is on {q.device}")
    dtype = torch.promote_types(p.dtype, q.dtype)
    return 0.5 * (p.to(dtype) - q.to(dtype)).abs().sum(dim=-1)


def empirical_state_distribution(x: torch.Tensor, *, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    r"""The frequencies of the :math:`2^D` binary configurations among the rows of ``x``, in the order
    of :func:`genlib.ebm.binary_states`: the empirical distribution that :func:`total_variation`
    compares with the exact Boltzmann distribution.

    Args:
        x: shape ``(..., D)``, binary; all leading dimensions (steps, chains) are pooled.

    Returns:
        Shape ``(2**D,)``, dtype ``dtype``, on the device of ``x``.
    """
    x = check_tensor(x, "x")
    if x.dim() == 0 or x.numel() == 0:
        raise ValueError(f"x must have shape (..., D) with at least one row, got {tuple(x.shape)}")
    d = x.shape[-1]
    index = state_index(x.reshape(-1, d))
    return empirical_distribution(index, 2**d, dtype=dtype)
