r"""Kernel density estimation (KDE) with a Gaussian kernel, in one or more dimensions.

Given data :math:`x^1, \dots, x^N \in \mathbb R^d`, the Gaussian KDE puts a small Gaussian on every
data point and averages them:

.. math::
    \hat P(x \mid H) = \frac1N \sum_{i=1}^N \mathcal N(x \mid x^i, H),

where the **bandwidth matrix** :math:`H` (the covariance of each kernel) is symmetric positive
definite. A **scalar bandwidth** :math:`h > 0` means :math:`H = h^2 I`; in one dimension this is the
lecture's :math:`\hat P(x \mid h) = \frac1N \sum_i \frac1h K\big(\frac{x - x^i}{h}\big)` with
:math:`K = \mathcal N(0, 1)`. Everywhere in this module a ``bandwidth`` is either a positive number
(or 0-d tensor) :math:`h`, or a ``(d, d)`` tensor :math:`H` -- never :math:`h^2`.

How it is computed. With the Cholesky factor :math:`H = L L^\top` and whitened points
:math:`u = L^{-1}(x - c)` (:math:`c` the mean of the data, subtracted for accuracy),

.. math::
    \log \hat P(x) = \operatorname{logsumexp}_i \big(-\tfrac12 \|u - u^i\|^2\big)
                     - \log N - \log\det L - \tfrac d2 \log 2\pi .

The :math:`M \times N` matrix of squared distances is never held whole: queries and data are cut into
blocks of at most ``chunk_size`` pairs, and each block's log-sum-exp (shifted by its largest term,
so nothing overflows or underflows to :math:`-\infty`) is folded into a running total with
``logaddexp``. Memory is :math:`O((M + N) d)` for the whitened points plus one block; time is
:math:`O(MNd)`.

The KDE is a mixture with :math:`K = N` equal components (:func:`kde_as_mixture`), which is how it
is sampled (:func:`kde_sample`): pick a data point uniformly, then add kernel noise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
from tqdm.auto import tqdm

from genlib.mixtures import GaussianMixture
from genlib.validation import check_generator, check_positive_int, check_tensor

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "BandwidthSearch",
    "kde_log_density",
    "bandwidth_by_validation",
    "bandwidth_by_leave_one_out",
    "scott_bandwidth",
    "silverman_bandwidth",
    "kde_sample",
    "kde_as_mixture",
]

#: The largest number of (query, data point) pairs held in memory at once (4M pairs, 32 MB in float64).
DEFAULT_CHUNK_SIZE = 2**22

_LOG_2PI = math.log(2 * math.pi)


class BandwidthSearch(NamedTuple):
    """What a bandwidth search returns: the chosen bandwidth, the grid and the score of each."""

    #: The grid value with the highest score, a 0-d tensor.
    best_bandwidth: torch.Tensor
    #: The candidate scalar bandwidths :math:`h`, shape ``(G,)``.
    grid: torch.Tensor
    #: The average (held-out or leave-one-out) log-likelihood of each, shape ``(G,)``.
    scores: torch.Tensor


# --------------------------------------------------------------------------- checking inputs


def _check_data(data: object, name: str = "data", *, min_size: int = 1) -> torch.Tensor:
    """Data of shape ``(N, d)``, or ``(N,)`` for one-dimensional data, returned as ``(N, d)``."""
    data = check_tensor(data, name, ndim=(1, 2), floating=True, min_size=min_size, finite=True)
    if data.dim() == 2 and data.shape[1] == 0:
        raise ValueError(f"{name} must have at least one column (d >= 1), got shape {tuple(data.shape)}")
    return data[:, None] if data.dim() == 1 else data


def _check_queries(x: object, data: torch.Tensor, data_was_1d: bool, name: str = "x") -> torch.Tensor:
    """Query points shaped like the data: ``(M, d)``, or ``(M,)`` when the data are ``(N,)``."""
    x = check_tensor(x, name, ndim=(1, 2), floating=True, min_size=1)
    if bool(x.isnan().any()):
        raise ValueError(f"{name} must not hold NaN")
    expected = "(M,)" if data_was_1d else f"(M, {data.shape[1]})"
    if (x.dim() == 1) != data_was_1d or (x.dim() == 2 and x.shape[1] != data.shape[1]):
        raise ValueError(
            f"{name} must have shape {expected} to match data of dimension d={data.shape[1]}, "
            f"got shape {tuple(x.shape)}"
        )
    if x.dtype != data.dtype:
        raise TypeError(f"{name} has dtype {x.dtype} but the data have {data.dtype}; use one dtype")
    if x.device != data.device:
        raise ValueError(f"{name} is on {x.device} but the data are on {data.device}")
    return x[:, None] if x.dim() == 1 else x


def _check_chunk_size(chunk_size: object) -> int:
    return check_positive_int(chunk_size, "chunk_size")


def _bandwidth_cholesky(bandwidth: object, data: torch.Tensor) -> torch.Tensor:
    r"""The lower Cholesky factor :math:`L` of :math:`H` (:math:`hI` for a scalar :math:`h`), ``(d, d)``."""
    d = data.shape[1]
    eye = torch.eye(d, dtype=data.dtype, device=data.device)
    if isinstance(bandwidth, bool):
        raise TypeError("bandwidth must be a positive number or a (d, d) tensor, got a bool")
    if isinstance(bandwidth, (int, float)):
        h = float(bandwidth)
        if not (h > 0 and math.isfinite(h)):
            raise ValueError(f"bandwidth must be a positive, finite number h, got {bandwidth}")
        return h * eye
    if not isinstance(bandwidth, torch.Tensor):
        raise TypeError(
            f"bandwidth must be a positive number or a (d, d) tensor, got {type(bandwidth).__name__}"
        )
    bandwidth = check_tensor(bandwidth, "bandwidth", floating=True)
    if bandwidth.device != data.device:
        raise ValueError(f"bandwidth is on {bandwidth.device} but the data are on {data.device}")
    if bandwidth.dim() == 0:
        if not bool(bandwidth > 0) or not bool(torch.isfinite(bandwidth)):
            raise ValueError(f"bandwidth must be a positive, finite number h, got {bandwidth.item()}")
        return bandwidth.to(data.dtype) * eye
    if tuple(bandwidth.shape) != (d, d):
        raise ValueError(
            f"bandwidth must be a number h or a ({d}, {d}) bandwidth matrix H for data in d={d} "
            f"dimensions, got shape {tuple(bandwidth.shape)}"
        )
    if not bool(torch.isfinite(bandwidth).all()):
        raise ValueError("bandwidth must be finite, but it holds NaN or infinite values")
    matrix = bandwidth.to(data.dtype)
    if not torch.allclose(matrix, matrix.mT, rtol=1e-5, atol=1e-8):
        raise ValueError("bandwidth matrix H must be symmetric; it differs from its transpose")
    chol, info = torch.linalg.cholesky_ex(matrix)
    if int(info) != 0:
        raise ValueError("bandwidth matrix H must be positive definite (its Cholesky factorisation failed)")
    return chol


def _check_grid(bandwidths: object, data: torch.Tensor) -> torch.Tensor:
    """Candidate scalar bandwidths as a ``(G,)`` tensor in the data's dtype and on its device."""
    if isinstance(bandwidths, torch.Tensor):
        grid = check_tensor(bandwidths, "bandwidths", ndim=1, floating=True).to(data.dtype)
        if grid.device != data.device:
            raise ValueError(f"bandwidths is on {grid.device} but the data are on {data.device}")
    elif isinstance(bandwidths, Sequence) and not isinstance(bandwidths, str):
        grid = torch.tensor([float(h) for h in bandwidths], dtype=data.dtype, device=data.device)
    else:
        raise TypeError(
            f"bandwidths must be a 1-D tensor or a sequence of numbers, got {type(bandwidths).__name__}"
        )
    if grid.numel() == 0:
        raise ValueError("bandwidths must hold at least one candidate, got none")
    if not bool(torch.isfinite(grid).all()) or bool((grid <= 0).any()):
        raise ValueError(
            f"bandwidths must all be positive and finite, got a smallest value of {grid.min().item():.3g}"
        )
    return grid


def _scale_cholesky(scale_matrix: torch.Tensor | None, data: torch.Tensor) -> torch.Tensor:
    """Cholesky factor of the shape matrix S of the candidates :math:`H = h^2 S` (identity if None)."""
    if scale_matrix is None:
        return torch.eye(data.shape[1], dtype=data.dtype, device=data.device)
    if not isinstance(scale_matrix, torch.Tensor) or scale_matrix.dim() != 2:
        raise ValueError(f"scale_matrix must be None or a (d, d) tensor, got {scale_matrix!r:.60}")
    try:
        return _bandwidth_cholesky(scale_matrix, data)
    except ValueError as error:
        raise ValueError(str(error).replace("bandwidth matrix H", "scale_matrix S")) from error


# --------------------------------------------------------------------------- the chunked core


def _whiten(points: torch.Tensor, chol: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
    r""":math:`u = L^{-1}(x - c)` for every row, shape ``(M, d)``."""
    return torch.linalg.solve_triangular(chol, (points - centre).T, upper=False).T


def _log_sum_exp_rows(sq_dist: torch.Tensor, coefficient: float) -> torch.Tensor:
    r""":math:`\log \sum_j \exp(a\, D_{ij})` for every row of ``sq_dist`` :math:`D \ge 0`, with :math:`a < 0`.

    Every term is at most 1, so the plain sum cannot overflow. It can underflow, when a query is
    many bandwidths from every point of the block: those rows (and only those) are recomputed
    shifted by their nearest point, :math:`a\,D_{\min} + \log \sum_j \exp(a (D_{ij} - D_{\min}))`, the
    usual stable log-sum-exp. A row of only :math:`+\infty` (every point left out) gives
    :math:`-\infty`.
    """
    sums = torch.mul(sq_dist, coefficient).exp_().sum(dim=1)  # (rows,)
    result = sums.log()
    small = sums < torch.finfo(sums.dtype).tiny ** 0.5  # where the terms lost their precision
    if bool(small.any()):
        far = sq_dist[small]  # (r, cols)
        nearest = far.min(dim=1).values
        nearest = torch.where(torch.isinf(nearest), torch.zeros_like(nearest), nearest)
        shifted_sums = (far - nearest[:, None]).mul_(coefficient).exp_().sum(dim=1)
        result[small] = shifted_sums.log() + coefficient * nearest
    return result


def _log_kernel_sums(
    u_query: torch.Tensor,
    u_data: torch.Tensor,
    scales: torch.Tensor,
    *,
    leave_one_out: bool = False,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: bool = False,
) -> torch.Tensor:
    r"""All :math:`\operatorname{logsumexp}_i\big(-\|u - u^i\|^2 / (2 s_g^2)\big)`: every query, every scale.

    Args:
        u_query: whitened queries, shape ``(M, d)``.
        u_data: whitened data, shape ``(N, d)``.
        scales: shape ``(G,)``, positive; ``G = 1`` with ``scales = [1.]`` for a single bandwidth.
        leave_one_out: the queries are the data themselves (``M = N``); leave out the term
            :math:`i` = the query's own index.
        chunk_size: at most this many (query, data point) pairs per block.

    Returns:
        Shape ``(G, M)``. Holds one ``(rows, cols)`` block of squared distances and one of its
        exponentials at a time, ``rows * cols <= chunk_size``.
    """
    m, n = u_query.shape[0], u_data.shape[0]
    cols = min(n, chunk_size)
    rows = max(1, min(m, chunk_size // cols))
    neg_half_inv_sq = (-0.5 / scales.square()).tolist()  # (G,) as Python floats
    out = torch.empty(scales.shape[0], m, dtype=u_query.dtype, device=u_query.device)
    for r0 in tqdm(range(0, m, rows), desc="KDE", unit="block", disable=not progress):
        r1 = min(m, r0 + rows)
        total = torch.full((scales.shape[0], r1 - r0), -math.inf, dtype=u_query.dtype, device=u_query.device)
        for c0 in range(0, n, cols):
            c1 = min(n, c0 + cols)
            # Direct differences (no |u|^2 + |v|^2 - 2 u.v expansion), so no cancellation.
            sq_dist = torch.cdist(
                u_query[r0:r1], u_data[c0:c1], compute_mode="donot_use_mm_for_euclid_dist"
            ).square_()  # (rows, cols)
            if leave_one_out and max(r0, c0) < min(r1, c1):  # the block holds some (i, i) pairs
                own = torch.arange(max(r0, c0), min(r1, c1), device=u_query.device)
                sq_dist[own - r0, own - c0] = math.inf
            for g, coefficient in enumerate(neg_half_inv_sq):
                total[g] = torch.logaddexp(total[g], _log_sum_exp_rows(sq_dist, coefficient))
        out[:, r0:r1] = total
    return out


# --------------------------------------------------------------------------- density


def kde_log_density(
    x: torch.Tensor,
    data: torch.Tensor,
    bandwidth: float | torch.Tensor,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: bool = False,
) -> torch.Tensor:
    r"""The log-density of the Gaussian KDE, :math:`\log \frac1N \sum_i \mathcal N(x \mid x^i, H)`.

    Stable for query points far from all data: the log-sum-exp is shifted by the nearest data
    point's term, so the result is finite (a large negative number), never :math:`-\infty` or NaN,
    as long as the squared distances themselves are representable.

    Args:
        x: query points, shape ``(M, d)`` (or ``(M,)`` for one-dimensional data), same dtype and
            device as ``data``.
        data: the data :math:`x^i`, shape ``(N, d)`` or ``(N,)``, floating, finite.
        bandwidth: a scalar :math:`h > 0` (Python number or 0-d tensor: :math:`H = h^2 I`) or a
            ``(d, d)`` symmetric positive definite bandwidth matrix :math:`H`.
        chunk_size: at most this many (query, data point) pairs are held in memory at once.
        progress: show a progress bar over the blocks of queries.

    Returns:
        Shape ``(M,)``, in the dtype and on the device of ``data``.
    """
    data_was_1d = isinstance(data, torch.Tensor) and data.dim() == 1
    data = _check_data(data)
    x = _check_queries(x, data, data_was_1d)
    chunk_size = _check_chunk_size(chunk_size)
    chol = _bandwidth_cholesky(bandwidth, data)  # (d, d)
    centre = data.mean(dim=0)
    u_data, u_query = _whiten(data, chol, centre), _whiten(x, chol, centre)
    one = torch.ones(1, dtype=data.dtype, device=data.device)
    sums = _log_kernel_sums(u_query, u_data, one, chunk_size=chunk_size, progress=progress)[0]  # (M,)
    n, d = data.shape
    log_det_chol = chol.diagonal().log().sum()
    return sums - math.log(n) - log_det_chol - 0.5 * d * _LOG_2PI


def _grid_scores(
    u_query: torch.Tensor,
    u_data: torch.Tensor,
    grid: torch.Tensor,
    log_det_scale: torch.Tensor,
    *,
    leave_one_out: bool,
    chunk_size: int,
    progress: bool,
) -> torch.Tensor:
    r"""Average log-density of the queries for every :math:`H_g = h_g^2 S`, shape ``(G,)``."""
    n, d = u_data.shape
    sums = _log_kernel_sums(
        u_query, u_data, grid, leave_one_out=leave_one_out, chunk_size=chunk_size, progress=progress
    )  # (G, M)
    num_terms = n - 1 if leave_one_out else n
    log_norm = math.log(num_terms) + d * grid.log() + log_det_scale + 0.5 * d * _LOG_2PI  # (G,)
    return sums.mean(dim=1) - log_norm


def bandwidth_by_validation(
    train: torch.Tensor,
    valid: torch.Tensor,
    bandwidths: torch.Tensor | Sequence[float],
    *,
    scale_matrix: torch.Tensor | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: bool = False,
) -> BandwidthSearch:
    r"""Choose :math:`h` on a grid by the average log-likelihood of held-out data.

    For every candidate :math:`h_g` the KDE of ``train`` with :math:`H_g = h_g^2 S` scores

    .. math:: s_g = \frac1{M} \sum_{j=1}^{M} \log \hat P(v^j \mid H_g)

    on the validation points :math:`v^j`; the best :math:`h` is the one with the highest score. (On
    the training data themselves the score would grow without bound as :math:`h \to 0`.) The
    squared distances are computed once per block and shared by all candidates.

    Args:
        train: shape ``(N, d)`` or ``(N,)``.
        valid: shape ``(M, d)`` or ``(M,)``, same dtype and device.
        bandwidths: the candidates :math:`h_g > 0`, shape ``(G,)`` (or a list of numbers).
        scale_matrix: the shape :math:`S` of every candidate, ``(d, d)`` symmetric positive
            definite; ``None`` for :math:`S = I` (round kernels). With :math:`S` the data's
            covariance, :math:`h` is a multiple of the data's spread, as in Scott's rule.
        chunk_size, progress: as in :func:`kde_log_density`.

    Returns:
        A :class:`BandwidthSearch` ``(best_bandwidth, grid, scores)``, in the dtype and on the
        device of ``train``. Ties go to the first (smallest, for an increasing grid) candidate.
    """
    train_was_1d = isinstance(train, torch.Tensor) and train.dim() == 1
    train = _check_data(train, "train")
    valid = _check_queries(valid, train, train_was_1d, "valid")
    chunk_size = _check_chunk_size(chunk_size)
    grid = _check_grid(bandwidths, train)
    chol = _scale_cholesky(scale_matrix, train)
    centre = train.mean(dim=0)
    scores = _grid_scores(
        _whiten(valid, chol, centre),
        _whiten(train, chol, centre),
        grid,
        chol.diagonal().log().sum(),
        leave_one_out=False,
        chunk_size=chunk_size,
        progress=progress,
    )
    return BandwidthSearch(grid[scores.argmax()], grid, scores)


def bandwidth_by_leave_one_out(
    data: torch.Tensor,
    bandwidths: torch.Tensor | Sequence[float],
    *,
    scale_matrix: torch.Tensor | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: bool = False,
) -> BandwidthSearch:
    r"""Choose :math:`h` on a grid by the leave-one-out log-likelihood of the data themselves.

    Each point is scored by the KDE of the *other* :math:`N - 1` points,

    .. math::
        s_g = \frac1N \sum_{i=1}^N \log \hat P_{-i}(x^i \mid H_g), \qquad
        \hat P_{-i}(x \mid H) = \frac1{N-1} \sum_{j \ne i} \mathcal N(x \mid x^j, H),

    so no data need to be held out. Leaving the own term in would reward :math:`h \to 0`.

    Args:
        data: shape ``(N, d)`` or ``(N,)``, ``N >= 2``.
        bandwidths, scale_matrix, chunk_size, progress: as in :func:`bandwidth_by_validation`.

    Returns:
        A :class:`BandwidthSearch`, as in :func:`bandwidth_by_validation`.
    """
    data = _check_data(data, min_size=2)
    chunk_size = _check_chunk_size(chunk_size)
    grid = _check_grid(bandwidths, data)
    chol = _scale_cholesky(scale_matrix, data)
    u_data = _whiten(data, chol, data.mean(dim=0))
    scores = _grid_scores(
        u_data,
        u_data,
        grid,
        chol.diagonal().log().sum(),
        leave_one_out=True,
        chunk_size=chunk_size,
        progress=progress,
    )
    return BandwidthSearch(grid[scores.argmax()], grid, scores)


# --------------------------------------------------------------------------- rules of thumb


def _rule_bandwidth(data: torch.Tensor, factor_of: str) -> torch.Tensor:
    data_was_1d = isinstance(data, torch.Tensor) and data.dim() == 1
    data = _check_data(data, min_size=2)
    n, d = data.shape
    if factor_of == "scott":
        factor = n ** (-1.0 / (d + 4))
    else:
        factor = (n * (d + 2) / 4.0) ** (-1.0 / (d + 4))
    centred = data - data.mean(dim=0)
    covariance = centred.T @ centred / (n - 1)  # (d, d), the unbiased sample covariance
    covariance = 0.5 * (covariance + covariance.T)
    if data_was_1d:
        return factor * covariance[0, 0].sqrt()  # h = factor * standard deviation
    return factor**2 * covariance


def scott_bandwidth(data: torch.Tensor) -> torch.Tensor:
    r"""Scott's rule: :math:`H = N^{-2/(d+4)}\,\hat\Sigma`, the data's covariance scaled down.

    :math:`\hat\Sigma` is the unbiased sample covariance (divided by :math:`N - 1`). The factor
    :math:`N^{-1/(d+4)}` is the rate at which the best bandwidth shrinks for Gaussian data; the
    kernels take the shape and spread of the data. This is ``scipy.stats.gaussian_kde``'s default.

    Args:
        data: shape ``(N, d)``, ``N >= 2``; or ``(N,)`` for one-dimensional data.

    Returns:
        The bandwidth matrix :math:`H`, shape ``(d, d)``; for data of shape ``(N,)`` the scalar
        bandwidth :math:`h = N^{-1/5}\hat\sigma` (shape ``()``). A singular covariance (e.g. all
        points on a line) gives a singular :math:`H` that :func:`kde_log_density` refuses.
    """
    return _rule_bandwidth(data, "scott")


def silverman_bandwidth(data: torch.Tensor) -> torch.Tensor:
    r"""Silverman's rule: :math:`H = \big(\tfrac{N(d+2)}{4}\big)^{-2/(d+4)}\,\hat\Sigma`.

    In one dimension :math:`h = (4/(3N))^{1/5}\hat\sigma \approx 1.06\,\hat\sigma N^{-1/5}`, the
    bandwidth that minimises the mean integrated squared error when the data are Gaussian.
    Arguments and shapes as in :func:`scott_bandwidth`.
    """
    return _rule_bandwidth(data, "silverman")


# --------------------------------------------------------------------------- the KDE as a mixture


def kde_sample(
    data: torch.Tensor,
    bandwidth: float | torch.Tensor,
    num_samples: int,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""Sample the KDE as a mixture: :math:`z \sim \mathrm{U}\{1..N\}`, then :math:`x \sim \mathcal N(x^z,H)`.

    The random numbers are drawn in this order, from ``generator``:

    1. ``z = torch.randint(N, (num_samples,), generator=generator, device=data.device)``;
    2. ``noise = torch.randn((num_samples, d), generator=generator, dtype=data.dtype, device=data.device)``;

    and :math:`x = x^z + L\epsilon` with :math:`L L^\top = H` (:math:`x^z + h\epsilon` for a scalar
    :math:`h`).

    Args:
        data: shape ``(N, d)`` or ``(N,)``.
        bandwidth: :math:`h` or :math:`H`, as in :func:`kde_log_density`.
        num_samples: ``>= 1``.
        generator: on the device of ``data``.

    Returns:
        Shape ``(num_samples, d)`` (``(num_samples,)`` for data of shape ``(N,)``), in the dtype
        and on the device of ``data``.
    """
    data_was_1d = isinstance(data, torch.Tensor) and data.dim() == 1
    data = _check_data(data)
    num_samples = check_positive_int(num_samples, "num_samples")
    generator = check_generator(generator, data.device)
    scalar = isinstance(bandwidth, (int, float)) or (
        isinstance(bandwidth, torch.Tensor) and bandwidth.dim() == 0
    )
    chol = _bandwidth_cholesky(bandwidth, data)
    n, d = data.shape
    z = torch.randint(n, (num_samples,), generator=generator, device=data.device)  # which data point
    noise = torch.randn((num_samples, d), generator=generator, dtype=data.dtype, device=data.device)
    kernel_noise = chol[0, 0] * noise if scalar else noise @ chol.T
    samples = data[z] + kernel_noise
    return samples[:, 0] if data_was_1d else samples


def kde_as_mixture(data: torch.Tensor, bandwidth: float | torch.Tensor) -> GaussianMixture:
    r"""The KDE written as a Gaussian mixture: :math:`N` components with :math:`\pi_i = 1/N`,
    :math:`\mu_i = x^i`, :math:`\Sigma_i = H`.

    Spherical (:math:`\sigma_i^2 = h^2`) for a scalar bandwidth, full otherwise (which stores
    :math:`N` copies of :math:`H`: fine for teaching, wasteful for large :math:`N`).

    Args:
        data: shape ``(N, d)`` or ``(N,)`` (then ``d = 1``).
        bandwidth: :math:`h` or :math:`H`, as in :func:`kde_log_density`.

    Returns:
        A :class:`genlib.mixtures.GaussianMixture` in the dtype and on the device of ``data``.
    """
    data = _check_data(data)
    scalar = isinstance(bandwidth, (int, float)) or (
        isinstance(bandwidth, torch.Tensor) and bandwidth.dim() == 0
    )
    chol = _bandwidth_cholesky(bandwidth, data)  # checks the bandwidth
    n = data.shape[0]
    weights = torch.full((n,), 1.0 / n, dtype=data.dtype, device=data.device)
    if scalar:
        return GaussianMixture(weights, data, chol[0, 0].square().expand(n).clone(), "spherical")
    matrix = bandwidth.to(data.dtype)  # type: ignore[union-attr]
    return GaussianMixture(weights, data, matrix.expand(n, -1, -1).clone(), "full")
