r"""Maximum-likelihood estimates for the building blocks of generative models.

Given i.i.d. data :math:`D = \{x^1, \dots, x^N\}`, the maximum-likelihood estimate maximises the
log-likelihood

.. math:: \ell(D; \theta) = \sum_{i=1}^N \log P(x^i \mid \theta).

With weights :math:`w_i \ge 0` (later: responsibilities :math:`Q(z \mid i)` of a mixture) the
objective becomes :math:`\sum_i w_i \log P(x^i \mid \theta)` and every estimate below turns into
its weighted average. All estimates have closed forms, derived in the book (chapter 00):

- Bernoulli: :math:`\hat\theta = \sum_i w_i x^i / \sum_i w_i`.
- Categorical: :math:`\hat\pi_k = \sum_i w_i [x^i = k] / \sum_i w_i`, the empirical distribution;
  from soft counts :math:`Q(k \mid i)`: :math:`\hat\pi_k = \sum_i Q(k \mid i) / \sum_i \sum_y Q(y \mid i)`.
- Gaussian: :math:`\hat\mu = \sum_i w_i x^i / \sum_i w_i`,
  :math:`\hat\Sigma = \sum_i w_i (x^i - \hat\mu)(x^i - \hat\mu)^\top / \sum_i w_i`
  (divided by the total weight, not :math:`N - 1`: the ML estimate is biased).
"""

from __future__ import annotations

import math
from typing import Literal

import torch

from genlib.sampling import empirical_distribution
from genlib.validation import check_labels, check_probabilities, check_tensor, check_weights

__all__ = [
    "bernoulli_mle",
    "categorical_mle",
    "categorical_mle_soft",
    "gaussian_mle",
    "bernoulli_log_likelihood",
    "categorical_log_likelihood",
    "gaussian_log_likelihood",
]

CovarianceType = Literal["full", "diag", "spherical"]


def _normalised_weights(weights: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor:
    """Weights of shape ``(N,)`` summing to one (uniform when ``weights`` is None)."""
    n = x.shape[0]
    if weights is None:
        return torch.full((n,), 1.0 / n, dtype=x.dtype, device=x.device)
    weights = check_weights(weights, "weights", n, like=x).to(x.dtype)
    return weights / weights.sum()


def bernoulli_mle(x: torch.Tensor, *, weights: torch.Tensor | None = None) -> torch.Tensor:
    r"""The (weighted) ML estimate of Bernoulli parameters, :math:`\hat\theta = \sum_i w_i x^i / \sum_i w_i`.

    Args:
        x: shape ``(N,)`` or ``(N, D)`` of zeros and ones (bool, integer or floating), ``N >= 1``.
            Each of the ``D`` columns is an independent Bernoulli variable.
        weights: optional shape ``(N,)``, non-negative, not all zero.

    Returns:
        :math:`\hat\theta`, shape ``()`` or ``(D,)``, floating (float32 unless ``x`` or ``weights``
        is float64), on the device of ``x``.
    """
    x = check_tensor(x, "x", ndim=(1, 2), min_size=1)
    if not bool(((x == 0) | (x == 1)).all()):
        raise ValueError("x must hold only zeros and ones (Bernoulli outcomes)")
    dtype = torch.float64 if torch.float64 in (x.dtype, getattr(weights, "dtype", None)) else torch.float32
    xf = x.to(dtype)
    w = _normalised_weights(weights, xf)
    return torch.tensordot(w, xf, dims=([0], [0]))


def categorical_mle(
    x: torch.Tensor,
    num_categories: int,
    *,
    weights: torch.Tensor | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    r"""The (weighted) ML estimate of a categorical: the empirical distribution.

    Maximising :math:`\sum_i w_i \log \pi_{x^i}` subject to :math:`\sum_k \pi_k = 1` with a Lagrange
    multiplier gives :math:`\hat\pi_k = \sum_i w_i [x^i = k] / \sum_i w_i`, which is
    :func:`genlib.sampling.empirical_distribution`. Arguments and shapes are as there:
    ``x`` of shape ``(N,)`` with labels in ``0 .. K-1``; returns shape ``(K,)``.
    """
    return empirical_distribution(x, num_categories, weights=weights, dtype=dtype)


def categorical_mle_soft(responsibilities: torch.Tensor) -> torch.Tensor:
    r"""The ML estimate from soft counts: :math:`\hat\pi_k = \sum_i Q(k \mid i) / \sum_i \sum_y Q(y \mid i)`.

    Args:
        responsibilities: :math:`Q(y \mid i)`, shape ``(N, K)``, floating, non-negative, not all
            zero. Rows need not sum to one (each row is sample :math:`i`'s weight spread over the
            categories).

    Returns:
        Shape ``(K,)``, a probability vector, same dtype and device.
    """
    q = check_tensor(responsibilities, "responsibilities", ndim=2, floating=True, min_size=1, finite=True)
    if q.shape[1] == 0:
        raise ValueError("responsibilities must have at least one column (category), got shape (N, 0)")
    if bool((q < 0).any()):
        raise ValueError("responsibilities must be non-negative")
    total = q.sum()
    if not bool(total > 0):
        raise ValueError("responsibilities must not all be zero: the estimate would be 0/0")
    return q.sum(dim=0) / total


def gaussian_mle(
    x: torch.Tensor,
    *,
    weights: torch.Tensor | None = None,
    covariance_type: CovarianceType = "full",
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The (weighted) ML estimate of a Gaussian's mean and covariance.

    .. math::
        \hat\mu = \frac{\sum_i w_i x^i}{\sum_i w_i}, \qquad
        \hat\Sigma = \frac{\sum_i w_i (x^i - \hat\mu)(x^i - \hat\mu)^\top}{\sum_i w_i}.

    ``"diag"`` keeps the diagonal of :math:`\hat\Sigma` (the ML estimate when the dimensions are
    independent); ``"spherical"`` keeps its mean, :math:`\hat\sigma^2 = \operatorname{tr}\hat\Sigma / d`
    (the ML estimate for :math:`\Sigma = \sigma^2 I`).

    Args:
        x: shape ``(N, d)`` or ``(N,)`` (one-dimensional data), floating, finite, ``N >= 1``.
        weights: optional shape ``(N,)``, non-negative, not all zero.
        covariance_type: ``"full"``, ``"diag"`` or ``"spherical"``.

    Returns:
        ``(mean, cov)``: ``mean`` of shape ``(d,)``; ``cov`` of shape ``(d, d)`` (full),
        ``(d,)`` (diag: the variances) or ``()`` (spherical: :math:`\hat\sigma^2`). For ``x`` of
        shape ``(N,)``: ``mean`` and ``cov`` are scalars (shape ``()``), the mean and the variance.
        Same dtype and device as ``x``.
    """
    x = check_tensor(x, "x", ndim=(1, 2), floating=True, min_size=1, finite=True)
    if covariance_type not in ("full", "diag", "spherical"):
        raise ValueError(f"covariance_type must be 'full', 'diag' or 'spherical', got {covariance_type!r}")
    one_dimensional = x.dim() == 1
    x2 = x.unsqueeze(1) if one_dimensional else x  # (N, d)
    w = _normalised_weights(weights, x2)  # (N,), sums to 1
    mean = w @ x2  # (d,)
    centred = x2 - mean  # (N, d)
    if one_dimensional:
        return mean[0], w @ centred[:, 0].square()
    if covariance_type == "full":
        cov = (centred * w[:, None]).T @ centred  # (d, d)
        cov = 0.5 * (cov + cov.T)  # exactly symmetric despite rounding
    else:
        variances = w @ centred.square()  # (d,)
        cov = variances if covariance_type == "diag" else variances.mean()
    return mean, cov


def bernoulli_log_likelihood(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    r"""Per-sample :math:`\log P(x^i \mid \theta) = \sum_j x^i_j \log\theta_j + (1 - x^i_j)\log(1-\theta_j)`.

    Args:
        x: shape ``(N,)`` or ``(N, D)`` of zeros and ones.
        theta: shape ``()`` or ``(D,)`` matching ``x``, floating, in [0, 1].

    Returns:
        Shape ``(N,)``. Uses :math:`0 \log 0 = 0`, so :math:`\theta = 0` gives :math:`-\infty` only
        where an observed one has probability zero.
    """
    x = check_tensor(x, "x", ndim=(1, 2), min_size=1)
    theta = check_tensor(theta, "theta", ndim=(0, 1), floating=True)
    if not bool(((x == 0) | (x == 1)).all()):
        raise ValueError("x must hold only zeros and ones (Bernoulli outcomes)")
    if bool(((theta < 0) | (theta > 1) | theta.isnan()).any()):
        raise ValueError("theta must lie in [0, 1]")
    expected = () if x.dim() == 1 else (x.shape[1],)
    if tuple(theta.shape) != expected:
        raise ValueError(
            f"theta must have shape {expected} for x of shape {tuple(x.shape)}, got {tuple(theta.shape)}"
        )
    xf = x.to(theta.dtype)
    ll = torch.xlogy(xf, theta) + torch.xlogy(1 - xf, 1 - theta)
    return ll if x.dim() == 1 else ll.sum(dim=1)


def categorical_log_likelihood(x: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    r"""Per-sample :math:`\log P(x^i \mid \pi) = \log \pi_{x^i}`.

    Args:
        x: shape ``(N,)``, integer labels in ``0 .. K-1``.
        probs: shape ``(K,)``, a probability vector.

    Returns:
        Shape ``(N,)``, in the dtype of ``probs``; :math:`-\infty` where :math:`\pi_{x^i} = 0`.
    """
    probs = check_probabilities(probs, "probs", allow_batch=False)
    x = check_labels(x, "x", probs.shape[0])
    return probs.log()[x]


def gaussian_log_likelihood(x: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
    r"""Per-sample log-density of :math:`\mathcal N(\mu, \Sigma)`, by a Cholesky factor of :math:`\Sigma`.

    .. math::
        \log \mathcal N(x \mid \mu, \Sigma) = -\tfrac12 (x-\mu)^\top \Sigma^{-1} (x-\mu)
        - \tfrac12 \log\det\Sigma - \tfrac d2 \log 2\pi .

    Args:
        x: shape ``(N, d)``, or ``(N,)`` for one-dimensional data.
        mean: shape ``(d,)`` (or ``()`` for one-dimensional data).
        cov: shape ``(d, d)``, symmetric positive definite (or ``()``, a variance, for
            one-dimensional data).

    Returns:
        Shape ``(N,)``, same dtype and device as ``x``.
    """
    x = check_tensor(x, "x", ndim=(1, 2), floating=True, min_size=1)
    mean = check_tensor(mean, "mean", floating=True, finite=True)
    cov = check_tensor(cov, "cov", floating=True, finite=True)
    if x.dim() == 1:
        if mean.dim() != 0 or cov.dim() != 0:
            raise ValueError("for x of shape (N,), mean and cov must be scalars (shape ())")
        x, mean, cov = x[:, None], mean[None], cov.reshape(1, 1)
    d = x.shape[1]
    if tuple(mean.shape) != (d,) or tuple(cov.shape) != (d, d):
        raise ValueError(
            f"for x of shape (N, {d}), mean must have shape ({d},) and cov ({d}, {d}); "
            f"got {tuple(mean.shape)} and {tuple(cov.shape)}"
        )
    if not torch.allclose(cov, cov.mT, rtol=1e-5, atol=1e-8):
        raise ValueError("cov must be symmetric; got a matrix that differs from its transpose")
    mean, cov = mean.to(x.dtype), cov.to(x.dtype)
    chol, info = torch.linalg.cholesky_ex(cov)
    if int(info) != 0:
        raise ValueError("cov must be symmetric positive definite (its Cholesky factorisation failed)")
    z = torch.linalg.solve_triangular(chol, (x - mean).T, upper=False)  # (d, N)
    half_log_det = chol.diagonal().log().sum()
    return -0.5 * z.square().sum(dim=0) - half_log_det - 0.5 * d * math.log(2 * math.pi)
