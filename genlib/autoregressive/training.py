r"""The chain-rule log-likelihood, training by teacher forcing and by scheduled sampling, and sampling.

A sequence model gives, for every position :math:`t`, a distribution over the next token given the
tokens before it, as logits :math:`\ell_t \in \mathbb R^V`:
:math:`P(x_t = v \mid x_{<t}, \theta) = \mathrm{softmax}(\ell_t)_v`. By the chain rule the log-likelihood
of a sequence :math:`x = (x_1, \dots, x_T)` is the sum of the conditionals,

.. math:: \log P(x \mid \theta) = \sum_{t=1}^T \log P(x_t \mid x_1, \dots, x_{t-1}, \theta),

and training by maximum likelihood minimises the average negative log-likelihood (NLL) per token over
sequences :math:`x^1, \dots, x^N`. The true tokens are fed in as the context of every position at once:
**teacher forcing**. At sampling time the model reads its own draws instead, a mismatch called
**exposure bias**; **scheduled sampling** (Bengio et al., 2015) narrows it by feeding, during
training, some of the model's own guesses in place of true tokens, more of them as training goes on.

Conventions: tokens are ``torch.long`` in ``0 .. V-1``; positions are numbered from 0 in code; all
log-likelihoods are in nats.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from genlib.sampling import sample_categorical
from genlib.validation import check_generator, check_positive_int, check_tensor

__all__ = [
    "token_log_probs",
    "sequence_log_likelihood",
    "mean_nll",
    "perplexity",
    "teacher_forcing_loss",
    "scheduled_sampling_inputs",
    "scheduled_sampling_loss",
    "teacher_probability",
    "SCHEDULES",
    "fit",
    "evaluate_nll",
    "sample_sequences",
]

#: The decay schedules of the probability of feeding the true token (Bengio et al., 2015, section 2.4).
SCHEDULES = ("constant", "linear", "exponential", "inverse_sigmoid")


def extends_by_one(prefix: torch.Tensor, previous: object) -> bool:
    """Whether ``prefix`` (shape ``(B, t)``) is ``previous`` (shape ``(B, t - 1)``) plus one token.

    The models' incremental samplers use it to reuse their cached state for the next token
    instead of re-reading the whole prefix.
    """
    return (
        isinstance(previous, torch.Tensor)
        and prefix.shape[0] == previous.shape[0]
        and prefix.shape[1] == previous.shape[1] + 1
        and torch.equal(prefix[:, :-1], previous)
    )


def _check_logits_and_tokens(logits: torch.Tensor, x: torch.Tensor) -> None:
    check_tensor(logits, "logits", ndim=3, floating=True)
    check_tensor(x, "x", ndim=2, floating=False)
    if tuple(logits.shape[:2]) != tuple(x.shape):
        raise ValueError(
            f"logits must have shape (B, T, V) = ({x.shape[0]}, {x.shape[1]}, V) for x of shape "
            f"{tuple(x.shape)}, got {tuple(logits.shape)}"
        )
    if logits.device != x.device:
        raise ValueError(f"logits are on {logits.device} but x is on {x.device}")
    if x.numel() and (int(x.min()) < 0 or int(x.max()) >= logits.shape[-1]):
        raise ValueError(
            f"x must hold tokens in 0..{logits.shape[-1] - 1} (V = {logits.shape[-1]}), got values "
            f"from {int(x.min())} to {int(x.max())}"
        )


def token_log_probs(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    r"""The conditional log-probability of every token, :math:`\log P(x_t \mid x_{<t}, \theta)`.

    Args:
        logits: shape ``(B, T, V)``, floating; row ``t`` holds the (unnormalised) logits of the
            distribution of token ``t`` given the tokens before it. Log-probabilities are logits too.
        x: shape ``(B, T)``, ``torch.long`` tokens in ``0 .. V-1``, on the device of ``logits``.

    Returns:
        Shape ``(B, T)``, the dtype of ``logits``: ``log_softmax(logits)[b, t, x[b, t]]``. The
        log-softmax subtracts a log-sum-exp, so large logits cannot overflow; a token whose logit is
        :math:`-\infty` gets :math:`-\infty` (probability zero), never NaN.
    """
    _check_logits_and_tokens(logits, x)
    return F.log_softmax(logits, dim=-1).gather(-1, x.unsqueeze(-1)).squeeze(-1)


def sequence_log_likelihood(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    r"""The chain rule per sequence: :math:`\log P(x^i) = \sum_t \log P(x^i_t \mid x^i_{<t}, \theta)`.

    Args:
        logits: shape ``(B, T, V)``, row ``t`` conditioned on ``x[:, :t]`` (see :func:`token_log_probs`).
        x: shape ``(B, T)``, ``torch.long`` tokens.

    Returns:
        Shape ``(B,)``, one log-likelihood per sequence, in nats, the dtype of ``logits``.
    """
    return token_log_probs(logits, x).sum(dim=-1)


def mean_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The average negative log-likelihood per token (a 0-d tensor, nats): the training loss.

    ``-sequence_log_likelihood(logits, x).sum() / (B * T)``; equal to
    ``torch.nn.functional.cross_entropy(logits.transpose(1, 2), x)``.
    """
    return -token_log_probs(logits, x).mean()


def perplexity(log_probs: torch.Tensor) -> torch.Tensor:
    r"""Perplexity :math:`\exp\big(-\frac{1}{BT}\sum_{b,t} \log P(x^b_t \mid x^b_{<t})\big)` = exp(mean NLL).

    The number of equally likely tokens the model hesitates between, on average: :math:`V` for the
    uniform model, 1 for a model that is always sure and right.

    Args:
        log_probs: the per-token log-probabilities, any shape with at least one entry (e.g. the
            ``(B, T)`` output of :func:`token_log_probs`), floating.

    Returns:
        A 0-d tensor in the dtype of ``log_probs``; :math:`+\infty` if a token had probability zero.
    """
    log_probs = check_tensor(log_probs, "log_probs", floating=True)
    if log_probs.numel() == 0:
        raise ValueError("log_probs must hold at least one token's log-probability, got an empty tensor")
    if bool(log_probs.isnan().any()) or bool((log_probs > 0).any()):
        raise ValueError("log_probs must hold log-probabilities: no NaN and no value above 0")
    return torch.exp(-log_probs.mean())


# --------------------------------------------------------------------------- losses


def teacher_forcing_loss(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    r"""The mean NLL per token, true tokens as context: :math:`-\frac{1}{BT}\sum\log P(x_t \mid x_{<t})`.

    One parallel pass: every position reads the true prefix, so the whole ``(B, T)`` batch is scored
    at once, and its gradient is the gradient of the log-likelihood.

    Args:
        model: maps ``x`` of shape ``(B, T)`` to logits ``(B, T, V)``, row ``t`` conditioned on
            ``x[:, :t]`` (the convention of every model in ``genlib.autoregressive``).
        x: shape ``(B, T)``, ``torch.long``, on the model's device.
    """
    return mean_nll(model(x), x)


def scheduled_sampling_inputs(
    model: nn.Module,
    x: torch.Tensor,
    teacher_prob: float,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""The input of scheduled sampling: each true token is kept with probability ``teacher_prob``,
    else replaced by the model's own sample at that position.

    The model's guesses :math:`\hat x_t \sim P(\,\cdot \mid x_{<t}, \theta)` come from one teacher-forced
    pass without gradient (parallel scheduled sampling: Duckworth et al., 2019; Mihaylova and Martins,
    2019); the original, sequential version of Bengio et al. (2015) conditions each guess on the
    already-mixed prefix, which needs :math:`T` passes. Then, independently per position,
    :math:`\tilde x_t = x_t` with probability ``teacher_prob`` and :math:`\hat x_t` otherwise.

    Randomness: first the guesses, as :func:`genlib.sampling.sample_categorical` of the softmax of the
    logits (``(B, T, 1)`` uniforms), then the coin flips, ``torch.rand((B, T))``, both from ``generator``.

    Args:
        model: a sequence model as in :func:`teacher_forcing_loss`.
        x: shape ``(B, T)``, the true tokens.
        teacher_prob: the probability :math:`\epsilon \in [0, 1]` of keeping a true token (1: teacher
            forcing; 0: the model's guess everywhere).
        generator: on the device of ``x``.

    Returns:
        Shape ``(B, T)``, ``torch.long``: the mixed input :math:`\tilde x`. The targets stay ``x``.
    """
    x = check_tensor(x, "x", ndim=2, floating=False)
    if not 0.0 <= teacher_prob <= 1.0:
        raise ValueError(f"teacher_prob must be a probability in [0, 1], got {teacher_prob}")
    generator = check_generator(generator, x.device)
    if teacher_prob == 1.0:
        return x
    with torch.no_grad():
        probs = torch.softmax(model(x).double(), dim=-1)  # (B, T, V)
        guesses = sample_categorical(probs, 1, generator=generator).squeeze(-1)  # (B, T)
    keep = torch.rand(x.shape, generator=generator, device=x.device) < teacher_prob
    return torch.where(keep, x, guesses)


def scheduled_sampling_loss(
    model: nn.Module,
    x: torch.Tensor,
    teacher_prob: float,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""The mean NLL of the true tokens given a partly self-generated context:
    :math:`-\frac{1}{BT}\sum_{b,t} \log P(x_t \mid \tilde x_{<t}, \theta)`.

    :math:`\tilde x` is :func:`scheduled_sampling_inputs`. The model is asked to predict the true next
    token even where its context holds its own (possibly wrong) guesses, as it will have to at sampling
    time. With ``teacher_prob = 1`` this is :func:`teacher_forcing_loss`.
    """
    mixed = scheduled_sampling_inputs(model, x, teacher_prob, generator=generator)
    logits = model(mixed)  # row t is conditioned on mixed[:, :t]
    return mean_nll(logits, x)


def teacher_probability(
    step: int, total_steps: int, kind: str = "inverse_sigmoid", *, final: float = 0.5
) -> float:
    r"""The probability :math:`\epsilon_i` of feeding the true token at training step :math:`i`.

    Bengio et al. (2015) decay :math:`\epsilon_i` from 1 (teacher forcing) as training proceeds, so the
    model first learns from true contexts and then, gradually, from its own. Here each schedule is
    scaled to go from :math:`\epsilon_0 = 1` to :math:`\epsilon_{I} = \text{final}` at the last step
    :math:`I = \text{total\_steps} - 1`:

    - ``"constant"``: :math:`\epsilon_i = 1` (plain teacher forcing);
    - ``"linear"``: :math:`\epsilon_i = 1 - (1 - \text{final})\, i / I`;
    - ``"exponential"``: :math:`\epsilon_i = \text{final} + (1 - \text{final})\, c^{i}` with
      :math:`c^{I} = 0.01`;
    - ``"inverse_sigmoid"``: :math:`\epsilon_i = \text{final} + (1 - \text{final})\,\frac{k}{k + \exp(i/k)}
      \big/ \frac{k}{k+1}`, with :math:`k` chosen so that the decay is half done at :math:`i = I/2`
      (:math:`k \ln k = I/2`).

    Returns:
        A Python float in ``[final, 1]``.
    """
    step = int(step)
    total_steps = check_positive_int(total_steps, "total_steps")
    if not 0 <= step < total_steps:
        raise ValueError(f"step must be in 0..{total_steps - 1}, got {step}")
    if kind not in SCHEDULES:
        raise ValueError(f"kind must be one of {SCHEDULES}, got {kind!r}")
    if not 0.0 <= final <= 1.0:
        raise ValueError(f"final must be a probability in [0, 1], got {final}")
    last = max(total_steps - 1, 1)
    if kind == "constant":
        decay = 1.0
    elif kind == "linear":
        decay = 1.0 - step / last
    elif kind == "exponential":
        decay = 0.01 ** (step / last)
    else:
        k = _inverse_sigmoid_k(last / 2)
        decay = (k / (k + math.exp(step / k))) / (k / (k + 1.0))
    return final + (1.0 - final) * min(decay, 1.0)


def _inverse_sigmoid_k(midpoint: float) -> float:
    """The k >= 1 with k ln k = midpoint, by bisection (k ln k increases for k >= 1)."""
    lo, hi = 1.0, max(2.0, midpoint + 1.0)
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if mid * math.log(mid) < midpoint else (lo, mid)
    return 0.5 * (lo + hi)


# --------------------------------------------------------------------------- training and evaluation


def fit(
    model: nn.Module,
    data: torch.Tensor,
    loss: Callable[[nn.Module, torch.Tensor, int], torch.Tensor],
    *,
    steps: int,
    batch_size: int = 64,
    lr: float = 3e-3,
    generator: torch.Generator | None = None,
    progress: bool = True,
    description: str = "training",
) -> list[float]:
    """Minimise ``loss`` with Adam on random minibatches of the rows of ``data``.

    At every step a minibatch of ``batch_size`` rows is drawn with replacement
    (``torch.randint(N, (batch_size,), generator=generator)``), ``loss(model, batch, step)`` is
    computed, and one Adam step is taken with the gradient norm clipped at 1. The learning rate decays
    from ``lr`` to ``lr / 20`` along a cosine over the ``steps``. The model is left in evaluation mode.

    Args:
        model: the network, on the device of ``data``; trained in place.
        data: shape ``(N, ...)``: token sequences ``(N, T)`` or images ``(N, 1, H, W)``.
        loss: ``(model, batch, step) -> 0-d tensor``, e.g.
            ``lambda m, b, i: teacher_forcing_loss(m, b)``.
        steps: the number of optimisation steps.
        batch_size: rows per step.
        lr: Adam's learning rate.
        generator: the source of the minibatch indices (and of nothing else), on the device of ``data``.
        progress: show a ``tqdm`` progress bar.
        description: the bar's label.

    Returns:
        The loss at every step, a list of ``steps`` Python floats.
    """
    data = check_tensor(data, "data", min_size=1)
    steps = check_positive_int(steps, "steps")
    batch_size = check_positive_int(batch_size, "batch_size")
    generator = check_generator(generator, data.device)
    if not callable(loss):
        raise TypeError(f"loss must be a callable (model, batch, step) -> loss, got {type(loss).__name__}")
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr}")
    parameters = [p for p in model.parameters() if p.requires_grad]
    # The fused kernel updates all parameters in one call (fewer small operations per step).
    fused = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in parameters)
    optimiser = torch.optim.Adam(parameters, lr=lr, fused=fused or None)
    # Cosine decay of the learning rate to lr / 20: large steps first, fine ones at the end.
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=steps, eta_min=lr / 20)
    history = []
    model.train()
    bar = tqdm(range(steps), desc=description, disable=not progress, leave=False)
    for step in bar:
        index = torch.randint(data.shape[0], (batch_size,), generator=generator, device=data.device)
        value = loss(model, data[index], step)
        if not torch.isfinite(value):
            raise FloatingPointError(f"the loss is {value.item()} at step {step}; lower lr")
        optimiser.zero_grad(set_to_none=True)
        value.backward()
        nn.utils.clip_grad_norm_(parameters, 1.0)
        optimiser.step()
        schedule.step()
        history.append(value.item())
        if step % 50 == 0:
            bar.set_postfix(loss=f"{history[-1]:.3f}")
    model.eval()
    return history


@torch.no_grad()
def evaluate_nll(model: nn.Module, x: torch.Tensor, *, batch_size: int = 512) -> float:
    """The held-out mean NLL per token, in nats, of a sequence model on ``x`` (shape ``(N, T)``).

    Scores the rows in chunks of ``batch_size`` (so memory stays bounded) with the model in evaluation
    mode, and returns ``-sum of all token log-probabilities / (N * T)`` as a Python float.
    """
    x = check_tensor(x, "x", ndim=2, floating=False, min_size=1)
    batch_size = check_positive_int(batch_size, "batch_size")
    was_training = model.training
    model.eval()
    total = 0.0
    for chunk in x.split(batch_size):
        total += token_log_probs(model(chunk).double(), chunk).sum().item()
    model.train(was_training)
    return -total / x.numel()


# --------------------------------------------------------------------------- sampling


def sample_sequences(
    next_logits: Callable[[torch.Tensor], torch.Tensor],
    num_sequences: int,
    length: int,
    *,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    prefix: torch.Tensor | None = None,
    progress: bool = False,
) -> torch.Tensor:
    r"""Ancestral sampling, one token at a time: :math:`x_t \sim \mathrm{softmax}(\ell_t / \tau)`.

    At each step the logits :math:`\ell_t` of the next token are computed from the tokens drawn so
    far, divided by the temperature :math:`\tau` and turned into probabilities, and one token per
    sequence is drawn by :func:`genlib.sampling.sample_categorical` (inverse CDF, one uniform
    ``torch.rand((B, 1), generator=generator, dtype=logits.dtype)`` per step). :math:`\tau = 1` samples
    the model; :math:`\tau < 1` sharpens it towards the most likely token; :math:`\tau > 1` flattens it
    towards uniform; :math:`\tau = 0` takes the most likely token (``argmax``, the first one on ties)
    and draws no uniforms. The loop is sequential: token :math:`t` needs token :math:`t - 1`.

    Args:
        next_logits: maps the tokens so far, shape ``(B, t)`` (``t`` may be 0), to the logits of the
            next token, shape ``(B, V)``, floating. E.g. a model's ``next_logits`` method, or its
            ``incremental()`` closure, which reuses the work of the previous steps.
        num_sequences: ``B``, the number of sequences drawn in parallel.
        length: the number of new tokens to draw per sequence.
        temperature: :math:`\tau \ge 0`.
        generator: the source of randomness.
        prefix: optional ``(B, t_0)`` ``torch.long`` tokens to continue; the device of the output.
            Without it, the output lives on the generator's device (the CPU without a generator).
        progress: show a ``tqdm`` progress bar over the steps.

    Returns:
        Shape ``(B, t_0 + length)``, ``torch.long``: the prefix followed by the new tokens.
    """
    num_sequences = check_positive_int(num_sequences, "num_sequences")
    length = check_positive_int(length, "length")
    if not callable(next_logits):
        raise TypeError(f"next_logits must be a callable (B, t) -> (B, V), got {type(next_logits).__name__}")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature >= 0:
        raise ValueError(f"temperature must be a number >= 0, got {temperature!r}")
    if not math.isfinite(temperature):
        raise ValueError(f"temperature must be finite, got {temperature}")
    if prefix is None:
        device = generator.device if isinstance(generator, torch.Generator) else torch.device("cpu")
        x = torch.empty(num_sequences, 0, dtype=torch.long, device=device)
    else:
        x = check_tensor(prefix, "prefix", ndim=2, floating=False)
        if x.shape[0] != num_sequences:
            raise ValueError(f"prefix must have {num_sequences} rows (num_sequences), got {x.shape[0]}")
    generator = check_generator(generator, x.device)
    for _ in tqdm(range(length), desc="sampling", disable=not progress, leave=False):
        logits = next_logits(x)  # (B, V)
        _check_next_logits(logits, num_sequences)
        if temperature == 0:
            token = logits.argmax(dim=-1, keepdim=True)  # (B, 1)
        else:
            probs = torch.softmax(logits / temperature, dim=-1)  # (B, V)
            token = sample_categorical(probs, 1, generator=generator)  # (B, 1)
        x = torch.cat([x, token.to(x.device)], dim=1)
    return x


def _check_next_logits(logits: object, num_sequences: int) -> None:
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or logits.shape[0] != num_sequences:
        got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"next_logits must return logits of shape ({num_sequences}, V), got {got}")
    if not logits.is_floating_point():
        raise TypeError(f"next_logits must return floating logits, got {logits.dtype}")
    if bool(logits.isnan().any()) or bool((logits == math.inf).any()):
        raise ValueError("next_logits returned NaN or +inf logits")
