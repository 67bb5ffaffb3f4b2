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
    \log \hat P(x) = \log \sum_i \exp\big(-\tfrac12 \|u - u^i\|^2\big)
                     - \log N - \log\det L - \tfrac d2 \log 2\pi .

The :math:`M \times N` matrix of kernel terms is never held whole. Queries and data are cut into
blocks of ``rows x cols`` pairs, and each block goes through a few passes, in place, in a buffer
allocated once (a fresh tensor of tens of MB costs milliseconds in page faults):

1. the exponents, in base 2: :math:`e = -\tfrac12 \|u - u^i\|^2 \log_2 e`, from the expanded square
   :math:`u^\top u^i - \tfrac12\|u\|^2 - \tfrac12\|u^i\|^2` -- ``d + 1`` broadcast multiply-adds for
   ``d <= 4``, one matrix product of the augmented points :math:`[u, -\tfrac12\|u\|^2, 1]` and
   :math:`[u^i, 1, -\tfrac12\|u^i\|^2]` above (``_Exponents``);
2. ``clamp_min_`` at :math:`\log_2` of the smallest normal number (-125 in float32, -1021 in float64);
3. ``exp2_``, and the sum of each row; the sums of the column blocks are added up, and the log is taken
   at the end.

Why so, step by step (measured on a 2-core AMD EPYC, PyTorch's CPU kernels):

- **Plain sums, not a log-sum-exp per block.** Every exponent is :math:`\le 0`, so every term is at
  most 1: the sum over :math:`N` terms cannot overflow, and no pass for the largest term, no shift and
  no ``logaddexp`` are needed.
- **The expanded square, not differences.** ``d + 1`` passes instead of about ``2d + 1`` and no second
  buffer. It cancels: the exponent is off by about :math:`\epsilon (\|u\|^2 + \|u^i\|^2)`. Whitened
  and centred, :math:`\|u\|` is the distance from the data mean in bandwidths, a few tens at most, so
  the error is about 1e-13 in float64 (relative 1e-10 needs far less) and 1e-5 in float32.
- **Broadcasting for small d, a product above.** A matrix product with inner dimension ``d + 2`` is
  mostly bookkeeping for BLAS when ``d`` is small: for ``d = 2`` the three broadcast passes take 0.7
  of its time in float32 (the same in float64); from ``d = 5`` or so the product is as fast or faster.
- **exp2, not exp.** ``exp2_`` is 2-3 times cheaper than ``exp_`` at the same accuracy (below one
  unit in the last place), and the factor :math:`\log_2 e` rides along in the exponents for free.
- **The clamp.** Arguments whose result would be a subnormal number (below about 1e-38 in float32)
  make ``exp2`` up to 10 times slower on x86 CPUs. Such terms are far below the last digit of any
  sum that the fast pass keeps (at least :math:`\sqrt{\text{tiny}}`, see the next point), so raising
  them to the smallest normal number changes nothing.
- **Underflow.** A query many bandwidths from every data point (more than about 9 in float32, 27 in
  float64) gets a sum below :math:`\sqrt{\text{tiny}}`, where the terms have lost their digits. Only
  those rows are recomputed the careful way (``_stable_log_kernel_sums``): direct differences
  (``torch.cdist``), each block's log-sum-exp shifted by its nearest point, blocks folded with
  ``logaddexp``. The result is finite and right however far the query is.
- **The block shape**, 512 queries by 4 MB (2048 data points in float32, 1024 in float64): smaller
  blocks lose to the fixed cost of every operation (a few microseconds of Python and dispatch, about
  six per block), larger ones gain nothing.
- **Threads.** On the CPU each of ``torch.get_num_threads()`` threads takes whole rows of blocks and
  runs their passes single-threaded (``_map_in_threads``), rather than every pass being split
  across the threads, which then wait for each other about six times per block: on a shared machine
  one descheduled thread would stall them all (with one other busy process on two cores, splitting
  every pass was 2.5-3 times slower).

For a grid of scales :math:`H_g = s_g^2 H` (bandwidth selection) the exponents are computed once per
block and multiplied by :math:`1/s_g^2` for each :math:`g`. Memory is :math:`O((M + N) d)` for the
whitened points, :math:`O(G (M + N))` for the sums and the partial sums, and one block per thread (at
most ``chunk_size`` pairs); time is :math:`O(MNd)`.

The KDE is a mixture with :math:`K = N` equal components (:func:`kde_as_mixture`), which is how it
is sampled (:func:`kde_sample`): pick a data point uniformly, then add kernel noise.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
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

#: The largest number of (query, data point) pairs in one block (4M pairs, 32 MB in float64); on the
#: CPU the fast pass uses smaller blocks (``_CPU_BLOCK_BYTES``).
DEFAULT_CHUNK_SIZE = 2**22

_LOG_2PI = math.log(2 * math.pi)
_LOG2_E = 1.0 / math.log(2.0)

#: On the CPU a block of the fast pass is at most this many queries ...
_CPU_BLOCK_ROWS = 512
#: ... and at most this many bytes: 512 x 2048 pairs in float32, 512 x 1024 in float64 (see the module
#: docstring for why).
_CPU_BLOCK_BYTES = 2**22

#: Up to this dimension a block's exponents are built by broadcasting (``d + 1`` passes over the block);
#: above it by one matrix product of augmented points.
_BROADCAST_MAX_DIM = 4


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


# --------------------------------------------------------------------------- the blocked core


def _whiten(points: torch.Tensor, chol: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
    r""":math:`u = L^{-1}(x - c)` for every row, shape ``(M, d)``."""
    return torch.linalg.solve_triangular(chol, (points - centre).T, upper=False).T


class _Exponents:
    r"""Blocks of the base-2 exponents :math:`e_{ij} = -\tfrac{a}{2} \|u_i - v_j\|^2 \log_2 e`.

    With :math:`p_i = a u_i \log_2 e`, :math:`\alpha_i = -\tfrac{a}{2} \|u_i\|^2 \log_2 e` and
    :math:`\beta_j = -\tfrac{a}{2} \|v_j\|^2 \log_2 e`, expanding the square gives

    .. math:: e_{ij} = \beta_j + \textstyle\sum_k p_{ik} v_{jk} + \alpha_i .

    For ``d <= 4`` :meth:`fill` writes that with ``d + 1`` broadcast passes over the block (one
    ``addcmul`` with :math:`\beta` as its input, ``d - 1`` more ``addcmul_``, one ``add_``); for
    larger ``d`` with one matrix product of the augmented points :math:`[p_i, \alpha_i, 1]` and
    :math:`[v_j, 1, \beta_j]`. Either way a block needs no memory but its own.

    Args:
        u_query: :math:`u_i`, shape ``(M, d)``.
        u_data: :math:`v_j`, shape ``(N, d)``.
        coefficient: :math:`a > 0`, the inverse squared scale :math:`1 / s^2`.
    """

    def __init__(self, u_query: torch.Tensor, u_data: torch.Tensor, coefficient: float = 1.0) -> None:
        factor = coefficient * _LOG2_E
        p = factor * u_query  # (M, d)
        alpha = -0.5 * factor * u_query.square().sum(dim=1, keepdim=True)  # (M, 1)
        beta = -0.5 * factor * u_data.square().sum(dim=1, keepdim=True)  # (N, 1)
        self.by_product = u_query.shape[1] > _BROADCAST_MAX_DIM
        if self.by_product:
            self.query_factor = torch.cat([p, alpha, torch.ones_like(alpha)], dim=1)  # (M, d + 2)
            self.data_factor = torch.cat([u_data, torch.ones_like(beta), beta], dim=1).T.contiguous()
        else:  # one row per term: (d + 1, M, 1) and (d + 1, N)
            self.query_factor = torch.cat([alpha, p], dim=1).T.contiguous()[:, :, None]
            self.data_factor = torch.cat([beta, u_data], dim=1).T.contiguous()

    def queries(self, r0: int, r1: int) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """The factors of queries ``r0:r1``, to pass to :meth:`fill`."""
        return self.query_factor[r0:r1] if self.by_product else self.query_factor[:, r0:r1].unbind(0)

    def data(self, c0: int, c1: int) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """The factors of data points ``c0:c1``, to pass to :meth:`fill`."""
        return self.data_factor[:, c0:c1] if self.by_product else self.data_factor[:, c0:c1].unbind(0)

    def fill(
        self,
        out: torch.Tensor,
        queries: torch.Tensor | tuple[torch.Tensor, ...],
        data: torch.Tensor | tuple[torch.Tensor, ...],
    ) -> None:
        """Write :math:`e_{ij}` for the queries by the data points into ``out``, ``(rows, cols)``."""
        if self.by_product:
            torch.mm(queries, data, out=out)
            return
        (alpha, p_first, *p_rest), (beta, v_first, *v_rest) = queries, data
        torch.addcmul(beta, p_first, v_first, out=out)  # beta_j + p_i1 v_j1
        for p_k, v_k in zip(p_rest, v_rest, strict=True):
            out.addcmul_(p_k, v_k)
        out.add_(alpha)


def _block_shape(
    m: int, n: int, chunk_size: int, dtype: torch.dtype, device: torch.device
) -> tuple[int, int]:
    """``(rows, cols)`` of one block of the fast pass: ``rows * cols <= chunk_size``, and on the CPU
    at most ``_CPU_BLOCK_ROWS`` rows and ``_CPU_BLOCK_BYTES`` bytes."""
    max_rows, max_cols = m, n
    if device.type == "cpu":
        max_rows = _CPU_BLOCK_ROWS
        max_cols = max(1, _CPU_BLOCK_BYTES // (_CPU_BLOCK_ROWS * dtype.itemsize))
    cols = min(n, max_cols, chunk_size)
    rows = max(1, min(m, max_rows, chunk_size // cols))
    return rows, cols


def _map_in_threads(fn: Callable[[int], None], items: Sequence[int], device: torch.device) -> Iterator[None]:
    """``fn(item)`` for every item; on the CPU the items are shared out among torch's threads.

    Each of the ``torch.get_num_threads()`` threads takes whole items (row blocks) and runs their
    operations single-threaded, instead of every operation being split across all threads, which
    then wait for each other after every one of the six or so passes over a block: on a busy machine
    one late thread would hold up the others at every pass. Yields once per finished item.
    """
    workers = min(torch.get_num_threads(), len(items)) if device.type == "cpu" else 1
    if workers <= 1:
        for item in items:
            yield fn(item)
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # new threads start with this setting: their operations run single-threaded
    pool = ThreadPoolExecutor(workers, thread_name_prefix="genlib-kde")
    try:
        yield from pool.map(fn, items)
    finally:
        pool.shutdown(cancel_futures=True)
        torch.set_num_threads(previous)


def _leave_out(block: torch.Tensor, own_column: torch.Tensor, value: float) -> None:
    """``block[k, own_column[k]] = value`` for every row ``k`` whose own column lies in the block."""
    inside = ((own_column >= 0) & (own_column < block.shape[1])).nonzero()[:, 0]
    block[inside, own_column[inside]] = value


def _log_kernel_sums(
    u_query: torch.Tensor,
    u_data: torch.Tensor,
    scales: torch.Tensor,
    *,
    leave_one_out: bool = False,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: bool = False,
) -> torch.Tensor:
    r"""All :math:`\log \sum_j \exp\big(-\|u_i - v_j\|^2 / (2 s_g^2)\big)`: every query, every scale.

    The fast pass (see the module docstring): for every block, the base-2 exponents :math:`e_{ij}`
    (``_Exponents``), raised to at least :math:`\log_2` of the smallest normal number, then
    ``exp2`` and the row sums, which are added up over the column blocks. Every term is at most 1,
    so the plain sums cannot overflow. Rows whose sum comes out below :math:`\sqrt{\text{tiny}}` (the
    query is far from every data point, so the terms underflowed or lost their digits) are
    recomputed by ``_stable_log_kernel_sums``.

    Args:
        u_query: whitened queries :math:`u_i`, shape ``(M, d)``.
        u_data: whitened data :math:`v_j`, shape ``(N, d)``.
        scales: shape ``(G,)``, positive; ``G = 1`` with ``scales = [1.]`` for a single bandwidth.
        leave_one_out: the queries are the data themselves (``M = N``); leave out the term
            :math:`j = i`, the query's own index.
        chunk_size: at most this many (query, data point) pairs per block.
        progress: show a progress bar over the blocks of queries.

    Returns:
        Shape ``(G, M)``. Memory: the ``(G, M)`` sums and, per thread, one ``(rows, cols)`` block
        (two when ``G > 1``), ``rows * cols <= chunk_size``, and the ``(G, N / cols, rows)`` partial
        sums of one row of blocks.
    """
    m, n = u_query.shape[0], u_data.shape[0]
    dtype, device = u_query.dtype, u_query.device
    rows, cols = _block_shape(m, n, chunk_size, dtype, device)
    inverse_squares = (1.0 / scales.square()).tolist()  # (G,) as Python floats
    num_scales = len(inverse_squares)
    # One scale is folded into the exponents; several share the exponents at scale 1.
    exponents = _Exponents(u_query, u_data, inverse_squares[0] if num_scales == 1 else 1.0)
    column_blocks = [
        (c0, min(n, c0 + cols), exponents.data(c0, min(n, c0 + cols))) for c0 in range(0, n, cols)
    ]
    floor = math.log2(torch.finfo(dtype).tiny) + 1.0  # -125 (float32), -1021 (float64)
    own = torch.arange(m, device=device) if leave_one_out else None
    sums = torch.empty(num_scales, m, dtype=dtype, device=device)
    buffers = threading.local()  # each thread's own, allocated at its first block and then reused

    def row_block(r0: int) -> None:
        r1 = min(m, r0 + rows)
        if not hasattr(buffers, "block"):
            buffers.block = torch.empty(rows * cols, dtype=dtype, device=device)
            buffers.terms = torch.empty_like(buffers.block) if num_scales > 1 else None
            buffers.partial = torch.empty(num_scales, len(column_blocks), rows, dtype=dtype, device=device)
        queries = exponents.queries(r0, r1)
        partial = buffers.partial[:, :, : r1 - r0]  # (G, column blocks, rows)
        for b, (c0, c1, data) in enumerate(column_blocks):
            block = buffers.block[: (r1 - r0) * (c1 - c0)].view(r1 - r0, c1 - c0)
            exponents.fill(block, queries, data)  # log2 of the kernel terms
            if own is not None:
                _leave_out(block, own[r0:r1] - c0, -math.inf)
            for g, inverse_square in enumerate(inverse_squares):
                terms = block
                if num_scales > 1:
                    terms = torch.mul(
                        block, inverse_square, out=buffers.terms[: block.numel()].view_as(block)
                    )
                # Below 2**floor exp2 returns subnormal numbers, several times slower on CPUs; such
                # terms are < 1e-37 and raising them changes no digit of a sum >= sqrt(tiny).
                terms.clamp_min_(floor).exp2_()
                torch.sum(terms, dim=1, out=partial[g, b])
        sums[:, r0:r1] = partial.sum(dim=1)

    starts = range(0, m, rows)
    with tqdm(total=len(starts), desc="KDE", unit="block", disable=not progress) as bar:
        for _ in _map_in_threads(row_block, starts, device):
            bar.update(1)
    result = sums.log()
    # Underflowed rows, and rows of NaN or infinity (a query at infinity), take the careful path.
    redo = (~(sums >= math.sqrt(torch.finfo(dtype).tiny))).any(dim=0).nonzero()[:, 0]  # (r,)
    if redo.numel() > 0:
        result[:, redo] = _stable_log_kernel_sums(
            u_query[redo], u_data, scales, own=redo if leave_one_out else None, chunk_size=chunk_size
        )
    return result


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


def _stable_log_kernel_sums(
    u_query: torch.Tensor,
    u_data: torch.Tensor,
    scales: torch.Tensor,
    *,
    own: torch.Tensor | None,
    chunk_size: int,
) -> torch.Tensor:
    r"""The same sums as :func:`_log_kernel_sums`, the careful way: for the rows the fast pass gave up on.

    The squared distances come from ``torch.cdist`` computing differences directly (no expansion,
    no cancellation), each block's log-sum-exp is shifted by its nearest point where it underflows
    (:func:`_log_sum_exp_rows`), and the blocks are folded with ``logaddexp``. Slower per pair than
    the fast pass, exact far from the data.

    Args:
        u_query: whitened queries, shape ``(M, d)``.
        u_data: whitened data, shape ``(N, d)``.
        scales: shape ``(G,)``.
        own: for leave-one-out, the index in ``u_data`` of each query (its term is left out), shape
            ``(M,)``; ``None`` to keep every term.
        chunk_size: at most this many (query, data point) pairs per block.

    Returns:
        Shape ``(G, M)``.
    """
    m, n = u_query.shape[0], u_data.shape[0]
    cols = min(n, chunk_size)
    rows = max(1, min(m, chunk_size // cols))
    neg_half_inv_sq = (-0.5 / scales.square()).tolist()  # (G,) as Python floats
    out = torch.empty(scales.shape[0], m, dtype=u_query.dtype, device=u_query.device)
    for r0 in range(0, m, rows):
        r1 = min(m, r0 + rows)
        total = torch.full((scales.shape[0], r1 - r0), -math.inf, dtype=u_query.dtype, device=u_query.device)
        for c0 in range(0, n, cols):
            c1 = min(n, c0 + cols)
            sq_dist = torch.cdist(
                u_query[r0:r1], u_data[c0:c1], compute_mode="donot_use_mm_for_euclid_dist"
            ).square_()  # (rows, cols)
            if own is not None:
                _leave_out(sq_dist, own[r0:r1] - c0, math.inf)
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

    Stable for query points far from all data: where every kernel term underflows, the log-sum-exp
    is recomputed shifted by the nearest data point's term, so the result is finite (a large negative
    number), never :math:`-\infty` or NaN, as long as the squared distances themselves are
    representable.

    Args:
        x: query points, shape ``(M, d)`` (or ``(M,)`` for one-dimensional data), same dtype and
            device as ``data``.
        data: the data :math:`x^i`, shape ``(N, d)`` or ``(N,)``, floating, finite.
        bandwidth: a scalar :math:`h > 0` (Python number or 0-d tensor: :math:`H = h^2 I`) or a
            ``(d, d)`` symmetric positive definite bandwidth matrix :math:`H`.
        chunk_size: at most this many (query, data point) pairs in one block; on the CPU the fast
            pass uses at most 4 MB per block, one block per thread.
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
