"""Gaussian KDE log-density: genlib against ``scipy.stats.gaussian_kde.logpdf``, same bandwidth matrix.

Both sides evaluate the same density, the KDE of ``n`` points in ``d = 2`` dimensions with Scott's
bandwidth matrix ``H``, at ``m`` query points:

- genlib: ``genlib.kde.kde_log_density(x, data, H)`` with ``H = genlib.kde.scott_bandwidth(data)``,
  in float32 or float64, on the CPU with torch's threads (two on the course machine);
- SciPy: ``gaussian_kde(data.T, bw_method="scott").logpdf(x.T)``, whose ``covariance`` is Scott's
  ``H`` computed by SciPy: the agreement figures report how far it is from genlib's ``H`` (rounding
  only). SciPy works in float64 whatever the input, on one core.

The data and the queries are two independent samples of the same mixture of three Gaussians (seeded
torch generator), so the queries are where a test log-likelihood would be evaluated. Before timing,
``setup`` compares the results: genlib float64 against SciPy, and genlib float32 against genlib
float64 (largest relative difference over all ``m`` queries).

Run from the repository root: ``.venv/bin/python -m benchmarks.cases.kde [cpu|cuda] [--scaling]``.
"""

from __future__ import annotations

import functools
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.stats
import torch

from benchmarks.harness import Case, Prepared, markdown_table, run_case, time_once
from genlib.device import make_generator
from genlib.kde import kde_log_density, scott_bandwidth

N = 20_000  # data points, and query points
D = 2
CUDA_N = 1_000_000
CUDA_CHUNK = 2**26  # pairs per block on the GPU: 256 MB in float32, few kernel launches per pair
TARGETS = {torch.float32: 20.0, torch.float64: 10.0}


def mixture_data(n: int, d: int = D, *, seed: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``n`` points from a fixed mixture of three Gaussians (spread about 3), shape ``(n, d)``.

    The mixture itself is drawn from seed 0; ``seed`` picks the sample, so two seeds give two
    independent samples of the same density.
    """
    g = make_generator(0)
    centres = 3 * torch.randn(3, d, generator=g, dtype=torch.float64)
    scales = 0.5 + torch.rand(3, generator=g, dtype=torch.float64)
    g = make_generator(1000 + seed)
    labels = torch.randint(3, (n,), generator=g)
    points = centres[labels] + scales[labels, None] * torch.randn(n, d, generator=g, dtype=torch.float64)
    return points.to(dtype)


@functools.cache
def _problem(n: int) -> dict[str, Any]:
    """Data, queries, both bandwidth matrices and SciPy's log-density, computed once per ``n``."""
    data, x = mixture_data(n, seed=0), mixture_data(n, seed=1)
    bandwidth = scott_bandwidth(data)  # (D, D), float64
    kde = scipy.stats.gaussian_kde(data.numpy().T, bw_method="scott")
    return {"data": data, "x": x, "bandwidth": bandwidth, "kde": kde, "x_np": x.numpy()}


def _scipy_log_density(n: int) -> np.ndarray:
    problem = _problem(n)
    if "scipy" not in problem:
        problem["scipy"] = problem["kde"].logpdf(problem["x_np"].T)
    return problem["scipy"]


def _max_relative_difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b) / np.abs(b)))


def _peak_extra_bytes(fn: Callable[[], Any]) -> int | None:
    """Peak resident memory during ``fn()`` above what the process held before (Linux only).

    Resets the kernel's high-water mark (``/proc/self/clear_refs``), runs ``fn`` and reads ``VmHWM``.
    Memory that the allocator already holds from earlier calls is reused without counting, so this is
    what the call adds to the process, not everything it touches. ``None`` where it cannot be read.
    """

    def status(field: str) -> int:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field))

    try:
        before = status("VmRSS")
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        fn()
        return status("VmHWM") - before
    except (OSError, StopIteration):
        return None


def _prepare(dtype: torch.dtype) -> Prepared:
    problem = _problem(N)
    data, x, bandwidth = (problem[k].to(dtype) for k in ("data", "x", "bandwidth"))
    kde, x_np = problem["kde"], problem["x_np"]
    scipy_values = _scipy_log_density(N)
    genlib64 = kde_log_density(problem["x"], problem["data"], problem["bandwidth"]).numpy()
    ours = kde_log_density(x, data, bandwidth).double().numpy()
    h = problem["bandwidth"].numpy()
    agreement = {
        "bandwidth_matrix_max_relative_difference": float(
            np.max(np.abs(kde.covariance - h)) / np.max(np.abs(h))
        ),
        "max_relative_difference_to_scipy": _max_relative_difference(ours, scipy_values),
        "max_relative_difference_float64_to_scipy": _max_relative_difference(genlib64, scipy_values),
        "max_relative_difference_float32_to_float64": _max_relative_difference(
            kde_log_density(x.float(), data.float(), bandwidth.float()).double().numpy(), genlib64
        ),
        "peak_extra_bytes": _peak_extra_bytes(lambda: kde_log_density(x, data, bandwidth)),
        "torch_threads": torch.get_num_threads(),
    }

    def genlib_fn() -> None:
        kde_log_density(x, data, bandwidth)

    def anchor_fn() -> None:
        kde.logpdf(x_np.T)

    return genlib_fn, anchor_fn, agreement


def _prepare_cuda(device: str) -> Prepared:
    data_cpu, x_cpu = mixture_data(CUDA_N, seed=0), mixture_data(CUDA_N, seed=1)
    bandwidth_cpu = scott_bandwidth(data_cpu)
    data, x, bandwidth = (t.to(torch.float32) for t in (data_cpu, x_cpu, bandwidth_cpu))
    data_gpu, x_gpu, bandwidth_gpu = (t.to(device) for t in (data, x, bandwidth))
    # Agreement on the first 2,000 queries: float32 on the GPU against float64 on the CPU (all data).
    reference = kde_log_density(x_cpu[:2000], data_cpu, bandwidth_cpu).numpy()
    on_gpu = (
        kde_log_density(x_gpu[:2000], data_gpu, bandwidth_gpu, chunk_size=CUDA_CHUNK).double().cpu().numpy()
    )
    # SciPy on a 20,000 x 20,000 subproblem, timed once: for an extrapolation by the pair count only.
    sub = _problem(N)
    start = time.perf_counter()
    sub["kde"].logpdf(sub["x_np"].T)
    scipy_sub = time.perf_counter() - start
    agreement = {
        "max_relative_difference_gpu_float32_to_cpu_float64_first_2000": _max_relative_difference(
            on_gpu, reference
        ),
        "scipy_seconds_20000x20000": scipy_sub,
        "scipy_seconds_extrapolated_to_1e12_pairs": scipy_sub * (CUDA_N / N) ** 2,
        "chunk_size": CUDA_CHUNK,
        "host_torch_threads": torch.get_num_threads(),
    }

    def genlib_fn() -> None:
        kde_log_density(x_gpu, data_gpu, bandwidth_gpu, chunk_size=CUDA_CHUNK)

    def anchor_fn() -> None:
        kde_log_density(x, data, bandwidth)

    return genlib_fn, anchor_fn, agreement


def cases(device: str = "cpu") -> list[Case]:
    """KDE log-density at 20,000 queries of 20,000 points in 2-D (CPU); 10^6 x 10^6 pairs (CUDA)."""
    if device != "cpu":
        return [
            Case(
                key="kde_cuda_1e6",
                title="KDE log-density, n = m = 10^6, d = 2, float32, CUDA",
                anchor="genlib.kde.kde_log_density on the host CPU (float32, all torch threads)",
                setup=lambda: _prepare_cuda(device),
                target=None,
                repeats=1,
                device=device,
                notes=(
                    "10^12 pairs on each side: the anchor is genlib's own CPU path on the same problem "
                    "(SciPy would take hours: its time on the 20,000 x 20,000 subproblem, and that time "
                    "scaled by the pair count, are in the agreement figures); chunk_size = 2**26 on the GPU"
                ),
            )
        ]
    out = []
    for dtype, name in ((torch.float32, "float32"), (torch.float64, "float64")):
        out.append(
            Case(
                key=f"kde_{name}",
                title=f"KDE log-density, n = m = 20,000, d = 2, {name}",
                anchor='scipy.stats.gaussian_kde(bw_method="scott").logpdf (float64)',
                setup=lambda dtype=dtype: _prepare(dtype),
                target=TARGETS[dtype],
                repeats=3,
                notes=(
                    "same data, queries and Scott bandwidth matrix on both sides; SciPy computes in "
                    "float64 on one core, genlib uses torch's threads"
                ),
            )
        )
    return out


def scaling(device: str = "cpu") -> dict:
    """Seconds for ``n = m`` from 1,000 to 20,000: genlib float64 and float32, and SciPy.

    Each figure is the median of 3 runs, the three implementations alternating. On a GPU genlib goes
    on to 10^6 points; SciPy (CPU) stops at 20,000, so ``scipy_s`` may be shorter than ``n``.
    """
    sizes = [1_000, 2_000, 5_000, 10_000, 20_000]
    if device != "cpu":
        sizes += [100_000, 300_000, 1_000_000]
    result: dict[str, list] = {"n": sizes, "genlib_float64_s": [], "genlib_float32_s": [], "scipy_s": []}
    for n in sizes:
        data, x = mixture_data(n, seed=0), mixture_data(n, seed=1)
        bandwidth = scott_bandwidth(data)
        sides: dict[str, Callable[[], Any]] = {}
        for dtype, name in ((torch.float64, "genlib_float64_s"), (torch.float32, "genlib_float32_s")):
            args = tuple(t.to(dtype=dtype, device=device) for t in (x, data, bandwidth))
            sides[name] = functools.partial(kde_log_density, *args)
        if n <= N:
            kde = scipy.stats.gaussian_kde(data.numpy().T, bw_method="scott")
            sides["scipy_s"] = functools.partial(kde.logpdf, x.numpy().T)
        if n == sizes[0]:  # warm-up, once per process: thread pools, lazy initialisation
            for fn in sides.values():
                fn()
        times: dict[str, list[float]] = {name: [] for name in sides}
        for _ in range(3):
            for name, fn in sides.items():
                times[name].append(time_once(fn, device if name != "scipy_s" else "cpu"))
        for name, values in times.items():
            result[name].append(statistics.median(values))
    return result


if __name__ == "__main__":
    device = next((a for a in sys.argv[1:] if not a.startswith("--")), "cpu")
    results = [run_case(case) for case in cases(device)]
    print(markdown_table(results))
    for r in results:
        print(f"{r.key}: genlib {r.genlib_times}, anchor {r.anchor_times}")
        print(f"  agreement {r.agreement}")
    if "--scaling" in sys.argv:
        print(scaling(device))
