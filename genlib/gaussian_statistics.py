r"""Gaussian mixtures as exponential families: the E-step and the M-step are two matrix products.

A Gaussian density is an exponential family. With the **sufficient statistics**
:math:`T(x) = (x,\ \text{the quadratic terms of } x)` and the **natural parameters**
:math:`\eta_k` of component :math:`k`,

.. math::
    \log \pi_k + \log \mathcal N(x \mid \mu_k, \Sigma_k) = \eta_k^\top T(x) + b_k,
    \qquad \eta_k = \big(\Sigma_k^{-1}\mu_k,\ -\tfrac12 \Sigma_k^{-1}\big),
    \qquad b_k = \log\pi_k - \tfrac12 \mu_k^\top\Sigma_k^{-1}\mu_k - \tfrac12\log\det\Sigma_k
                 - \tfrac d2 \log 2\pi .

The quadratic part of :math:`T` depends on the covariance type: all products :math:`x_a x_b`,
:math:`a \le b` (``"full"``, :math:`d(d+1)/2` of them), the squares :math:`x_a^2` (``"diag"``) or
:math:`\|x\|^2` (``"spherical"``). So, writing :math:`F` for the :math:`(p, N)` matrix whose columns are
:math:`T(x^i)` and :math:`\Theta` for the :math:`(K, p)` matrix whose rows are the :math:`\eta_k`:

- **E-step**: the :math:`(K, N)` matrix of :math:`\log P(x^i, z = k)` is :math:`\Theta F + b`, one
  matrix product; a column-wise ``logsumexp`` and ``exp`` turn it into the responsibilities
  :math:`Q^\top`.
- **M-step**: every weighted estimate needs only :math:`N_k = \sum_i Q(k \mid i)` and
  :math:`S_k = \sum_i Q(k \mid i)\, T(x^i)`, that is :math:`S = Q^\top F^\top`, a second matrix product.
- **ELBO** at any parameters :math:`\theta'` with :math:`Q` fixed:
  :math:`\mathbb E_Q[\log P(x, z \mid \theta')] = \sum_k \eta'^\top_k S_k + b'_k N_k`, from the
  statistics alone, :math:`O(Kp)` instead of another pass over the data.

This is what scikit-learn's diagonal and spherical code computes too, organised so that all the work
is in two dense products, which run near the machine's matrix-multiply rate. The data are processed
in column blocks of :math:`F` (a few thousand samples), built on the fly, so memory is
:math:`O(N d + K N)` for the outputs and :math:`O(p B)` for one block, never :math:`O(N d^2)`.

Accuracy. The expanded quadratic form :math:`\eta^\top T(x)` cancels large terms when :math:`x` is far
from the origin; every function here therefore first subtracts a **centre** :math:`c` (the data mean)
from :math:`x` and from the means, and accumulates the statistics in float64 whatever the data's
dtype. In float64 the results agree with the direct formulas to about :math:`10^{-12}` relative.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch

__all__ = [
    "num_features",
    "sufficient_statistics",
    "natural_parameters",
    "GaussianStatistics",
    "statistics_from_responsibilities",
    "log_joint",
    "em_pass",
    "mixture_parameters_from_statistics",
    "expected_complete_log_likelihood",
]

_LOG_2PI = math.log(2 * math.pi)
#: Elements of one block of features or of log-joints (2^18: 2 MB in float64, inside a core's L2 cache).
_BLOCK_ELEMENTS = 2**18


def num_features(d: int, covariance_type: str) -> int:
    """:math:`p`, the length of :math:`T(x)`: :math:`d + d(d+1)/2` (full), :math:`2d` (diag), :math:`d+1`."""
    return {"full": d + d * (d + 1) // 2, "diag": 2 * d, "spherical": d + 1}[covariance_type]


def _pairs(d: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices :math:`(a, b)` with :math:`a \\le b` (the upper triangle), shape ``(d(d+1)/2,)`` each."""
    rows, cols = torch.triu_indices(d, d, device=device)
    return rows, cols


def _block_size(p: int, k: int, n: int) -> int:
    return max(256, min(n, _BLOCK_ELEMENTS // max(p, k, 1)))


def _needs_grad(*tensors: torch.Tensor) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def _features(xc_t: torch.Tensor, covariance_type: str) -> torch.Tensor:
    """:math:`F` for centred columns ``xc_t`` (shape ``(d, B)``) without ``out=``, so autograd can follow."""
    if covariance_type == "full":
        rows, cols = _pairs(xc_t.shape[0], xc_t.device)
        quadratic = xc_t[rows] * xc_t[cols]
    elif covariance_type == "diag":
        quadratic = xc_t * xc_t
    else:
        quadratic = (xc_t * xc_t).sum(dim=0, keepdim=True)
    return torch.cat([xc_t, quadratic], dim=0)


def _features_into(xc_t: torch.Tensor, covariance_type: str, out: torch.Tensor) -> torch.Tensor:
    r"""Write :math:`F = [T(x^1), \dots, T(x^B)]` into ``out`` (shape ``(p, B)``) and return it.

    ``xc_t`` holds the centred points as columns, shape ``(d, B)``.
    """
    d = xc_t.shape[0]
    out[:d] = xc_t
    if covariance_type == "full":
        rows, cols = _pairs(d, xc_t.device)
        torch.mul(xc_t[rows], xc_t[cols], out=out[d:])
    elif covariance_type == "diag":
        torch.mul(xc_t, xc_t, out=out[d:])
    else:
        torch.sum(xc_t * xc_t, dim=0, keepdim=True, out=out[d:])
    return out


def sufficient_statistics(
    x: torch.Tensor, covariance_type: str, centre: torch.Tensor, *, with_ones: bool = False
) -> torch.Tensor:
    r""":math:`F`, the sufficient statistics :math:`T(x^i - c)` as columns, shape ``(p, N)``.

    Args:
        x: shape ``(N, d)``, floating.
        covariance_type: ``"full"``, ``"diag"`` or ``"spherical"``.
        centre: :math:`c`, shape ``(d,)``, subtracted first.
        with_ones: append a row of ones (shape ``(p + 1, N)``): then :math:`[\Theta, b]\,F` is the
            log-joint in one product, and :math:`Q^\top F^\top` holds the counts :math:`N_k` in its
            last column. :func:`em_pass` takes this form.

    Returns:
        Shape ``(p, N)`` with :math:`p` = :func:`num_features`, in ``x``'s dtype, on its device. The rows
        are :math:`x_a` (``a = 0 .. d-1``), then :math:`x_a x_b` for ``(a, b)`` in
        ``torch.triu_indices(d, d)`` order (full), :math:`x_a^2` (diag) or :math:`\|x\|^2` (spherical).
    """
    n, d = x.shape
    p = num_features(d, covariance_type)
    if _needs_grad(x, centre):
        f = _features((x - centre).T, covariance_type)
        return torch.cat([f, torch.ones_like(f[:1])]) if with_ones else f
    out = torch.empty(p + int(with_ones), n, dtype=x.dtype, device=x.device)
    if with_ones:
        out[p] = 1.0
    _features_into((x - centre).T, covariance_type, out[:p])
    return out


def natural_parameters(
    weights: torch.Tensor,
    means: torch.Tensor,
    covariances: torch.Tensor,
    covariance_type: str,
    centre: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The rows :math:`\eta_k` of :math:`\Theta` and the offsets :math:`b_k`, for data centred at :math:`c`.

    :math:`\eta_k^\top T(x - c) + b_k = \log\pi_k + \log\mathcal N(x \mid \mu_k, \Sigma_k)` for every
    :math:`x`. For ``"full"`` the coefficient of :math:`x_a x_b` is :math:`-(\Sigma_k^{-1})_{ab}` off
    the diagonal (the pair appears twice in the quadratic form) and :math:`-\frac12(\Sigma_k^{-1})_{aa}`
    on it.

    Args:
        weights: :math:`\pi`, shape ``(K,)`` (zeros give :math:`b_k = -\infty`).
        means, covariances, covariance_type: as in :class:`genlib.mixtures.GaussianMixture`.
        centre: :math:`c`, shape ``(d,)``.

    Returns:
        ``(theta, bias)``: shapes ``(K, p)`` and ``(K,)``, computed in float64, returned in the
        dtype of ``means``.
    """
    dtype = means.dtype
    m = (means - centre).double()  # (K, d)
    k, d = m.shape
    cov = covariances.double()
    if covariance_type == "full":
        chol = torch.linalg.cholesky(cov)  # (K, d, d)
        precision = torch.cholesky_inverse(chol)  # (K, d, d)
        precision = 0.5 * (precision + precision.mT)
        linear = (precision @ m[:, :, None])[:, :, 0]  # (K, d)
        rows, cols = _pairs(d, m.device)
        scale = torch.where(rows == cols, -0.5, -1.0).to(precision)
        quadratic = precision[:, rows, cols] * scale  # (K, d(d+1)/2)
        half_log_det = chol.diagonal(dim1=-2, dim2=-1).log().sum(dim=-1)  # (K,)
        mahalanobis_mean = (linear * m).sum(dim=-1)  # (K,)
    elif covariance_type == "diag":
        precision = 1.0 / cov  # (K, d)
        linear = m * precision
        quadratic = -0.5 * precision
        half_log_det = 0.5 * cov.log().sum(dim=-1)
        mahalanobis_mean = (linear * m).sum(dim=-1)
    else:
        precision = 1.0 / cov  # (K,)
        linear = m * precision[:, None]
        quadratic = -0.5 * precision[:, None]
        half_log_det = 0.5 * d * cov.log()
        mahalanobis_mean = (linear * m).sum(dim=-1)
    theta = torch.cat([linear, quadratic], dim=1)  # (K, p)
    bias = weights.double().log() - 0.5 * mahalanobis_mean - half_log_det - 0.5 * d * _LOG_2PI
    return theta.to(dtype), bias.to(dtype)


@dataclass(frozen=True)
class GaussianStatistics:
    r"""The weighted sufficient statistics of :math:`K` soft clusters: all an M-step needs.

    Attributes:
        counts: :math:`N_k = \sum_i Q(k \mid i)`, shape ``(K,)``, float64.
        sums: :math:`S_k = \sum_i Q(k \mid i)\, T(x^i - c)`, shape ``(K, p)``, float64.
        centre: :math:`c`, shape ``(d,)``, in the data's dtype.
        covariance_type: which quadratic terms :math:`T` holds.
    """

    counts: torch.Tensor
    sums: torch.Tensor
    centre: torch.Tensor
    covariance_type: str


def _blocks(n: int, size: int) -> Iterator[tuple[int, int]]:
    for start in range(0, n, size):
        yield start, min(n, start + size)


def statistics_from_responsibilities(
    x: torch.Tensor, q: torch.Tensor, covariance_type: str, centre: torch.Tensor
) -> GaussianStatistics:
    r""":math:`N_k` and :math:`S = Q^\top F^\top` for given responsibilities (blockwise over samples).

    Args:
        x: shape ``(N, d)``; q: shape ``(N, K)``, in ``x``'s dtype; centre: shape ``(d,)``.
    """
    n, d = x.shape
    k = q.shape[1]
    p = num_features(d, covariance_type)
    size = _block_size(p, k, n)
    sums = torch.zeros(k, p, dtype=torch.float64, device=x.device)
    features = torch.empty(p, size, dtype=x.dtype, device=x.device)
    for start, stop in _blocks(n, size):
        f = _features_into((x[start:stop] - centre).T, covariance_type, features[:, : stop - start])
        sums += (q[start:stop].T @ f.T).double()
    counts = q.sum(dim=0, dtype=torch.float64)
    return GaussianStatistics(counts, sums, centre, covariance_type)


def log_joint(
    x: torch.Tensor, theta: torch.Tensor, bias: torch.Tensor, covariance_type: str, centre: torch.Tensor
) -> torch.Tensor:
    r""":math:`\eta_k^\top T(x^i - c) + b_k` for every sample and component, shape ``(N, K)``.

    Computed blockwise as :math:`\Theta F + b` (shape ``(K, B)`` per block) and written transposed
    into the ``(N, K)`` result; memory :math:`O(NK)` for the result and :math:`O(pB)` for one block.
    When autograd tracks an input it is computed in one piece instead (memory :math:`O(pN)`), so
    that gradients flow to ``x`` and to the parameters.
    """
    if _needs_grad(x, theta, bias, centre):  # differentiable (e.g. an energy for Langevin dynamics)
        return (theta @ _features((x - centre).T, covariance_type) + bias[:, None]).T
    n, d = x.shape
    k, p = theta.shape
    size = _block_size(p, k, n)
    out = torch.empty(n, k, dtype=x.dtype, device=x.device)
    features = torch.empty(p, size, dtype=x.dtype, device=x.device)
    bias_column = bias[:, None]
    for start, stop in _blocks(n, size):
        f = _features_into((x[start:stop] - centre).T, covariance_type, features[:, : stop - start])
        out[start:stop] = torch.addmm(bias_column, theta, f).T
    return out


def em_pass(
    x: torch.Tensor,
    theta: torch.Tensor,
    bias: torch.Tensor,
    covariance_type: str,
    centre: torch.Tensor,
    features: torch.Tensor | None = None,
) -> tuple[torch.Tensor, GaussianStatistics]:
    r"""One pass over the data: the E-step at :math:`\theta_t` and the statistics for the M-step.

    For each block of samples: :math:`L = \Theta F + b` (shape ``(K, B)``), :math:`\log P(x^i) =
    \operatorname{logsumexp}_k L_{ki}`, :math:`Q^\top = \exp(L - \log P(x))`, then
    :math:`N \mathrel{+}= Q^\top \mathbf 1` and :math:`S \mathrel{+}= Q^\top F^\top`. The :math:`(N, K)`
    matrix of responsibilities is never stored.

    Args:
        x: shape ``(N, d)``, finite.
        theta, bias: from :func:`natural_parameters` with the same ``centre``.
        covariance_type: as used for ``theta``.
        centre: shape ``(d,)``.
        features: optionally ``sufficient_statistics(x, covariance_type, centre, with_ones=True)``,
            shape ``(p + 1, N)``, computed once for many passes (a fit); built block by block when
            ``None``.

    Returns:
        ``(log_likelihood, statistics)``: :math:`\ell(\theta_t) = \sum_i \log P(x^i \mid \theta_t)` as a
        0-d float64 tensor, and the :class:`GaussianStatistics` of :math:`Q_t`.
    """
    n, d = x.shape
    k, p = theta.shape
    size = _block_size(p, k, n)
    if features is not None and tuple(features.shape) != (p + 1, n):
        raise ValueError(
            f"features must be sufficient_statistics(x, ..., with_ones=True), shape ({p + 1}, {n}), "
            f"got {tuple(features.shape)}"
        )
    active = torch.isfinite(bias)  # components with pi_k = 0 have b_k = -inf and Q(k | i) = 0 exactly
    if not bool(active.all()):
        log_likelihood, part = em_pass(x, theta[active], bias[active], covariance_type, centre, features)
        counts = torch.zeros(k, dtype=torch.float64, device=x.device)
        sums = torch.zeros(k, p, dtype=torch.float64, device=x.device)
        counts[active], sums[active] = part.counts, part.sums
        return log_likelihood, GaussianStatistics(counts, sums, centre, covariance_type)
    # [Theta, b] times [F; 1]: the log-joint in one product, and the counts N_k in the last column of S.
    weights = torch.cat([theta, bias[:, None]], dim=1)  # (K, p + 1)
    sums = torch.zeros(k, p + 1, dtype=torch.float64, device=x.device)
    log_likelihood = torch.zeros((), dtype=torch.float64, device=x.device)
    buffer = None
    if features is None:
        buffer = torch.empty(p + 1, size, dtype=x.dtype, device=x.device)
        buffer[p] = 1.0
    joint = torch.empty(k, size, dtype=x.dtype, device=x.device)
    floor = math.log(torch.finfo(x.dtype).tiny) + 16.0  # about -71 (float32), -692 (float64)
    for start, stop in _blocks(n, size):
        if buffer is None:
            f = features[:, start:stop]
        else:
            f = buffer[:, : stop - start]
            _features_into((x[start:stop] - centre).T, covariance_type, f[:p])
        q_t = torch.mm(weights, f, out=joint[:, : stop - start])  # (K, B): log P(x^i, z = k)
        shift = q_t.amax(dim=0)  # (B,)
        # exp of arguments below `floor` (subnormal results) or of -inf takes the CPU 5-10x longer.
        # Such terms are < 1e-30 of the largest one: raising them to exp(floor) changes no digit.
        q_t.sub_(shift).clamp_min_(floor).exp_()
        total = q_t.sum(dim=0)  # (B,)
        q_t.div_(total)  # responsibilities, columns sum to one
        log_likelihood += (shift + total.log()).sum(dtype=torch.float64)
        if sums.dtype == q_t.dtype:
            sums.addmm_(q_t, f.T)
        else:
            sums += (q_t @ f.T).double()
    return log_likelihood, GaussianStatistics(sums[:, p].clone(), sums[:, :p], centre, covariance_type)


def mixture_parameters_from_statistics(
    stats: GaussianStatistics, reg_covar: float = 0.0, dtype: torch.dtype | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""The M-step: weighted ML parameters from :math:`N_k` and :math:`S_k`.

    .. math::
        \hat\pi_k = \frac{N_k}{\sum_j N_j}, \quad \hat\mu_k = c + \frac{S^{(x)}_k}{N_k}, \quad
        \hat\Sigma_k = \frac{S^{(xx^\top)}_k}{N_k} - (\hat\mu_k - c)(\hat\mu_k - c)^\top + \lambda I,

    with the diagonal (diag) or the mean of the diagonal (spherical) of :math:`\hat\Sigma_k` for the
    other types, and :math:`\lambda` = ``reg_covar``. Every :math:`N_k` must be positive.

    Returns:
        ``(weights, means, covariances)`` with shapes ``(K,)``, ``(K, d)`` and ``(K, d, d)``, ``(K, d)``
        or ``(K,)``, in ``dtype`` (default: the centre's dtype).
    """
    dtype = dtype or stats.centre.dtype
    counts, sums = stats.counts, stats.sums
    d = stats.centre.shape[0]
    weights = counts / counts.sum()
    mean_c = sums[:, :d] / counts[:, None]  # (K, d), centred
    second = sums[:, d:] / counts[:, None]
    if stats.covariance_type == "full":
        rows, cols = _pairs(d, sums.device)
        moments = torch.zeros(counts.shape[0], d, d, dtype=torch.float64, device=sums.device)
        moments[:, rows, cols] = second
        moments[:, cols, rows] = second
        covariances = moments - mean_c[:, :, None] * mean_c[:, None, :]
        covariances = 0.5 * (covariances + covariances.mT)
        covariances = covariances + reg_covar * torch.eye(d, dtype=torch.float64, device=sums.device)
    elif stats.covariance_type == "diag":
        covariances = (second - mean_c.square()).clamp_min(0.0) + reg_covar
    else:
        covariances = ((second[:, 0] - mean_c.square().sum(dim=1)) / d).clamp_min(0.0) + reg_covar
    means = mean_c + stats.centre.double()
    return weights.to(dtype), means.to(dtype), covariances.to(dtype)


def expected_complete_log_likelihood(
    stats: GaussianStatistics, theta: torch.Tensor, bias: torch.Tensor
) -> torch.Tensor:
    r""":math:`\mathbb E_Q[\log P(x, z \mid \theta)] = \sum_k \eta_k^\top S_k + b_k N_k`, 0-d, float64.

    ``theta`` and ``bias`` must be :func:`natural_parameters` for the statistics' centre. Components
    with :math:`N_k = 0` contribute nothing (even when :math:`b_k = -\infty`).
    """
    used = stats.counts > 0
    linear = (theta.double()[used] * stats.sums[used]).sum()
    return linear + (bias.double()[used] * stats.counts[used]).sum()
