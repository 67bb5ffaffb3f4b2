r"""Entropy, cross-entropy and the Kullback--Leibler divergence, exact and by Monte Carlo.

For distributions :math:`P` and :math:`Q` on the same space (in nats throughout):

.. math::
    H(P) = -\sum_x P(x) \log P(x), \qquad
    H(P, Q) = -\sum_x P(x) \log Q(x), \qquad
    \mathrm{KL}(P \,\|\, Q) = \sum_x P(x) \log \frac{P(x)}{Q(x)} = H(P, Q) - H(P) \ge 0 .

Conventions: :math:`0 \log 0 = 0` and :math:`0 \log \frac{0}{q} = 0`; a point with
:math:`P(x) > 0 = Q(x)` makes :math:`H(P, Q)` and :math:`\mathrm{KL}(P\|Q)` infinite.

For densities the sum is an expectation, :math:`\mathrm{KL}(P\|Q) = \mathbb E_{x \sim P}[\log P(x) -
\log Q(x)]`, which the law of large numbers lets us estimate by the sample mean over draws
:math:`x^1, \dots, x^N \sim P`; its standard error falls as :math:`1/\sqrt N`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch

from genlib.validation import check_probabilities, check_tensor

__all__ = [
    "entropy",
    "cross_entropy",
    "kl_categorical",
    "kl_monte_carlo",
    "MonteCarloEstimate",
    "monte_carlo_estimate",
    "running_mean",
]


def _check_pair(p: torch.Tensor, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    p = check_probabilities(p, "p")
    q = check_probabilities(q, "q")
    if p.shape[-1] != q.shape[-1]:
        raise ValueError(
            f"p and q must have the same number of categories, got {p.shape[-1]} and {q.shape[-1]}"
        )
    if p.device != q.device:
        raise ValueError(f"p is on {p.device} but q is on {q.device}")
    try:
        torch.broadcast_shapes(p.shape, q.shape)
    except RuntimeError:
        raise ValueError(
            f"p and q must have broadcastable batch shapes, got {tuple(p.shape)} and {tuple(q.shape)}"
        ) from None
    dtype = torch.promote_types(p.dtype, q.dtype)
    return p.to(dtype), q.to(dtype)


def entropy(p: torch.Tensor) -> torch.Tensor:
    r""":math:`H(P) = -\sum_k p_k \log p_k` in nats, with :math:`0 \log 0 = 0`.

    Args:
        p: shape ``(..., K)``, probability vectors along the last dimension.

    Returns:
        Shape ``(...)``, same dtype and device; between 0 (a point mass) and :math:`\log K` (uniform).
    """
    p = check_probabilities(p, "p")
    return -torch.xlogy(p, p).sum(dim=-1)


def cross_entropy(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    r""":math:`H(P, Q) = -\sum_k p_k \log q_k` in nats; :math:`+\infty` if some :math:`p_k > 0 = q_k`.

    Args:
        p, q: shape ``(..., K)`` with broadcastable batch shapes, probability vectors.

    Returns:
        Shape ``(...)``, the broadcast batch shape, in nats; never below :math:`H(P)`, the entropy
        floor.
    """
    p, q = _check_pair(p, q)
    return -torch.xlogy(p, q).sum(dim=-1)


def kl_categorical(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    r"""Exact :math:`\mathrm{KL}(P \,\|\, Q) = \sum_k p_k (\log p_k - \log q_k)` between categoricals.

    Terms with :math:`p_k = 0` are zero whatever :math:`q_k` is; a term with :math:`p_k > 0 = q_k` is
    :math:`+\infty`. The result is clamped at zero, so rounding cannot make it negative, and it
    is exactly zero when ``p`` equals ``q``.

    Args:
        p, q: shape ``(..., K)`` with broadcastable batch shapes, probability vectors.

    Returns:
        Shape ``(...)``, the broadcast batch shape, in nats. Mind the order of the arguments, since
        :math:`\mathrm{KL}(P\|Q) \ne \mathrm{KL}(Q\|P)` in general.
    """
    p, q = _check_pair(p, q)
    terms = torch.xlogy(p, p) - torch.xlogy(p, q)  # 0 where p = 0, +inf where p > 0 = q
    return terms.sum(dim=-1).clamp_min(0.0)


def kl_monte_carlo(
    x: torch.Tensor,
    log_p: Callable[[torch.Tensor], torch.Tensor],
    log_q: Callable[[torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    r"""Monte Carlo estimate :math:`\frac1N \sum_{i=1}^N \big(\log P(x^i) - \log Q(x^i)\big)` of
    :math:`\mathrm{KL}(P\|Q)`, from draws :math:`x^i \sim P`.

    Unbiased, and by the law of large numbers it converges to the exact KL as :math:`N \to \infty`.
    A single estimate can be negative when :math:`N` is small; its spread is reported by
    :func:`monte_carlo_estimate` applied to the per-sample terms.

    Args:
        x: samples from :math:`P`, shape ``(N, ...)`` with ``N >= 1`` (e.g. ``(N, d)``).
        log_p, log_q: callables mapping ``x`` to the log-densities (or log-probabilities), shape
            ``(N,)``, e.g. ``torch.distributions.Normal(0, 1).log_prob``.

    Returns:
        A scalar tensor (shape ``()``) in the dtype of the log-densities.
    """
    x = check_tensor(x, "x", min_size=1)
    if not callable(log_p) or not callable(log_q):
        raise TypeError("log_p and log_q must be callables that map x to log-densities of shape (N,)")
    n = x.shape[0]
    terms = []
    for name, fn in (("log_p", log_p), ("log_q", log_q)):
        values = fn(x)
        if not isinstance(values, torch.Tensor) or tuple(values.shape) != (n,):
            shape = tuple(values.shape) if isinstance(values, torch.Tensor) else type(values).__name__
            raise ValueError(f"{name}(x) must return a tensor of shape ({n},), got {shape}")
        if bool(values.isnan().any()):
            raise ValueError(f"{name}(x) returned NaN; are the samples inside its support?")
        terms.append(values)
    differences = terms[0] - terms[1]
    if bool(differences.isnan().any()):
        raise ValueError("log_p(x) - log_q(x) is NaN (-inf - -inf): a sample lies outside both supports")
    return differences.mean()


class MonteCarloEstimate(NamedTuple):
    """A sample mean and its standard error, :math:`s / \\sqrt N`."""

    mean: float
    standard_error: float
    num_samples: int


def monte_carlo_estimate(values: torch.Tensor) -> MonteCarloEstimate:
    r"""The sample mean of ``values`` (shape ``(N,)``) and its standard error :math:`s/\sqrt N`.

    The standard error uses the unbiased sample standard deviation :math:`s`; it is ``nan`` for
    ``N = 1``, where no spread can be estimated.
    """
    values = check_tensor(values, "values", ndim=1, floating=True, min_size=1, finite=True)
    n = values.shape[0]
    mean = values.mean().item()
    se = values.std().item() / math.sqrt(n) if n > 1 else math.nan
    return MonteCarloEstimate(mean, se, n)


def running_mean(values: torch.Tensor) -> torch.Tensor:
    r"""The running means :math:`\bar v_n = \frac1n \sum_{i \le n} v_i` for :math:`n = 1..N`.

    Args:
        values: shape ``(N,)``, floating.

    Returns:
        Shape ``(N,)``, same dtype and device: what the law of large numbers says converges.
    """
    values = check_tensor(values, "values", ndim=1, floating=True, min_size=1)
    counts = torch.arange(1, values.shape[0] + 1, dtype=values.dtype, device=values.device)
    return values.cumsum(dim=0) / counts
