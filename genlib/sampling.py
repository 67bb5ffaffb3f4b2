r"""Sampling a categorical distribution by thresholding a uniform, and the empirical distribution.

A categorical distribution over :math:`K` outcomes has probabilities
:math:`\pi = (\pi_1, \dots, \pi_K)`. Cut the unit interval into :math:`K` pieces of lengths
:math:`\pi_k`, with levels (the cumulative distribution function)

.. math:: c_k = \sum_{j \le k} \pi_j, \qquad 0 = c_0 \le c_1 \le \dots \le c_K = 1 .

Draw :math:`u \sim \mathcal U[0, 1)` and return the piece it falls in,
:math:`x = \min\{k : u < c_k\}`. Then :math:`P(x = k) = c_k - c_{k-1} = \pi_k`. Finding the piece
by binary search costs :math:`O(\log K)` comparisons per draw once the :math:`O(K)` levels are
computed; a linear scan costs :math:`O(K)`.

In code, outcomes are numbered ``0 .. K-1``.
"""

from __future__ import annotations

import torch

from genlib.validation import (
    check_generator,
    check_labels,
    check_positive_int,
    check_probabilities,
    check_weights,
)

__all__ = [
    "categorical_cdf",
    "sample_categorical",
    "sample_categorical_linear",
    "empirical_distribution",
]


def categorical_cdf(probs: torch.Tensor) -> torch.Tensor:
    r"""The levels :math:`c_k = \sum_{j \le k} \pi_j`, normalised so that :math:`c_K = 1` exactly.

    Args:
        probs: shape ``(..., K)``, floating, each row a probability vector.

    Returns:
        Shape ``(..., K)``, same dtype and device, non-decreasing along the last dimension, with a
        last level of exactly 1. Dividing by the running total removes the rounding error of the
        sum, so that a uniform draw below 1 can never fall past the last outcome.
    """
    probs = check_probabilities(probs, "probs")
    levels = probs.cumsum(dim=-1)
    return levels / levels[..., -1:]


def _uniforms(probs: torch.Tensor, num_samples: int, generator: torch.Generator | None) -> torch.Tensor:
    """Uniforms on [0, 1), shape ``(..., num_samples)``, in the dtype and on the device of probs."""
    shape = (*probs.shape[:-1], num_samples)
    return torch.rand(shape, generator=generator, dtype=probs.dtype, device=probs.device)


def sample_categorical(
    probs: torch.Tensor, num_samples: int, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    r"""Draw ``num_samples`` outcomes from each categorical in ``probs`` by inverse CDF.

    Draws :math:`u \sim \mathcal U[0,1)` and returns :math:`\min\{k : u < c_k\}`, found by binary
    search over the levels of :func:`categorical_cdf` (``torch.searchsorted``). Outcomes with zero
    probability are never drawn.

    Args:
        probs: shape ``(K,)`` or ``(B, K)`` (any leading batch shape), floating, rows summing to 1.
        num_samples: how many draws per distribution, ``>= 1``.
        generator: the source of randomness; on the device of ``probs``. The uniforms are drawn as
            ``torch.rand((*probs.shape[:-1], num_samples), generator=generator, dtype=probs.dtype)``
            so the same generator state gives the same draws.

    Returns:
        ``torch.long`` tensor of shape ``(..., num_samples)`` on the device of ``probs``, values in
        ``0 .. K-1``.
    """
    levels = categorical_cdf(probs)
    num_samples = check_positive_int(num_samples, "num_samples")
    generator = check_generator(generator, probs.device)
    u = _uniforms(probs, num_samples, generator)  # (..., S)
    # right=True returns the number of levels <= u, which is the index of the first level > u.
    return torch.searchsorted(levels.contiguous(), u.contiguous(), right=True)


def sample_categorical_linear(
    probs: torch.Tensor, num_samples: int, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    r"""The same sampler with a linear scan instead of a binary search: :math:`O(K)` per draw.

    It counts the levels at or below each uniform, :math:`x = \sum_k [c_k \le u]`, comparing every
    draw with every level. Given the same generator state it returns exactly what
    :func:`sample_categorical` returns; it exists so the book can measure the cost of the scan.
    Shapes, dtypes and arguments as in :func:`sample_categorical`. It holds a boolean
    ``(..., num_samples, K)`` comparison in memory at once (1 GB for ``S = 1e5``, ``K = 1e4``):
    a teaching baseline, not a sampler for large problems.
    """
    levels = categorical_cdf(probs)
    num_samples = check_positive_int(num_samples, "num_samples")
    generator = check_generator(generator, probs.device)
    u = _uniforms(probs, num_samples, generator)  # (..., S)
    # (..., S, 1) >= (..., 1, K) -> (..., S, K): every draw against every level.
    return (u.unsqueeze(-1) >= levels.unsqueeze(-2)).sum(dim=-1)


def empirical_distribution(
    x: torch.Tensor,
    num_categories: int,
    *,
    weights: torch.Tensor | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    r"""The empirical distribution :math:`\hat P(k) = \frac{1}{N} \sum_{i=1}^N [x^i = k]`.

    With weights :math:`w_i \ge 0`, :math:`\hat P(k) = \sum_i w_i [x^i = k] / \sum_i w_i`.

    Args:
        x: shape ``(N,)``, integer labels in ``0 .. num_categories-1``, ``N >= 1``.
        num_categories: ``K >= 1``.
        weights: optional, shape ``(N,)``, floating, non-negative, not all zero.
        dtype: the floating dtype of the result when ``weights`` is ``None`` (otherwise the
            dtype of ``weights``).

    Returns:
        Shape ``(K,)`` probability vector on the device of ``x``.
    """
    num_categories = check_positive_int(num_categories, "num_categories")
    x = check_labels(x, "x", num_categories)
    if weights is None:
        counts = torch.bincount(x, minlength=num_categories).to(dtype)
    else:
        weights = check_weights(weights, "weights", x.shape[0], like=x)
        counts = torch.zeros(num_categories, dtype=weights.dtype, device=x.device)
        counts.index_add_(0, x, weights)
    return counts / counts.sum()
