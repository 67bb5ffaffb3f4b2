"""Timing of genlib's Gaussian KDE against the libraries a user would otherwise call.

All three evaluate the same density, the KDE of ``n`` points in ``d`` dimensions with Scott's
bandwidth matrix ``H``, at ``m`` query points, in float64:

- ``genlib.kde.kde_log_density`` (blocked, exact, PyTorch);
- ``scipy.stats.gaussian_kde.logpdf`` (compiled loop over all pairs);
- ``sklearn.neighbors.KernelDensity.score_samples`` (a k-d tree; scalar bandwidths only, so it runs
  on the data whitened by ``H``'s Cholesky factor with bandwidth 1, and the log-determinant is
  added back; exact settings ``atol = rtol = 0``).

Every library is timed once, in one run of this script, on the same data; the script prints each
time, its ratio to genlib's, and the largest difference from SciPy's values.

Run: ``.venv/bin/python benchmarks/bench_kde.py [--n 20000] [--m 20000] [--d 2] [--threads 1]``
(``--device cuda`` to run genlib on a GPU, ``--skip-sklearn`` to leave out the slowest).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import scipy.stats
import sklearn.neighbors
import torch

from genlib.device import default_device
from genlib.kde import kde_log_density, scott_bandwidth


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=20_000, help="number of data points")
    parser.add_argument("--m", type=int, default=20_000, help="number of query points")
    parser.add_argument("--d", type=int, default=2, help="dimension")
    parser.add_argument("--device", default=str(default_device()))
    parser.add_argument("--skip-sklearn", action="store_true", help="leave out scikit-learn (slowest)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)  # SciPy and scikit-learn use one core here

    rng = np.random.default_rng(0)
    mix = rng.integers(0, 2, size=args.n)[:, None]
    data = rng.normal(size=(args.n, args.d)) + 3.0 * mix  # two clusters
    queries = rng.normal(size=(args.m, args.d)) * 2 + 1.5
    data_t = torch.tensor(data, dtype=torch.float64, device=device)
    queries_t = torch.tensor(queries, dtype=torch.float64, device=device)
    bandwidth = scott_bandwidth(data_t)  # (d, d)

    print(
        f"n = {args.n}, m = {args.m}, d = {args.d}, float64; genlib on {device}, "
        f"torch threads {torch.get_num_threads()}"
    )

    def run_genlib():
        out = kde_log_density(queries_t, data_t, bandwidth)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return out.cpu().numpy()

    kde_log_density(queries_t[:10], data_t, bandwidth)  # warm-up (thread pool, kernels)
    t_genlib, ours = timed(run_genlib)

    scipy_kde = scipy.stats.gaussian_kde(data.T)
    assert np.allclose(scipy_kde.covariance, bandwidth.cpu().numpy(), rtol=1e-12)
    t_scipy, theirs = timed(lambda: scipy_kde.logpdf(queries.T))

    rows = [
        ("genlib.kde.kde_log_density", t_genlib, float(np.max(np.abs(ours - theirs)))),
        ("scipy gaussian_kde.logpdf", t_scipy, 0.0),
    ]
    if not args.skip_sklearn:
        chol = np.linalg.cholesky(bandwidth.cpu().numpy())
        white = lambda a: np.linalg.solve(chol, a.T).T  # noqa: E731
        log_det = np.log(np.diag(chol)).sum()
        tree = sklearn.neighbors.KernelDensity(bandwidth=1.0, atol=0.0, rtol=0.0).fit(white(data))
        t_sklearn, sk = timed(lambda: tree.score_samples(white(queries)) - log_det)
        rows.append(("sklearn KernelDensity (exact)", t_sklearn, float(np.max(np.abs(sk - theirs)))))

    print(f"{'implementation':<32} {'time (s)':>10} {'/ genlib':>10} {'max |diff| vs scipy':>20}")
    for name, seconds, diff in rows:
        diff_text = "-" if name.startswith("scipy") else f"{diff:.2e}"
        print(f"{name:<32} {seconds:>10.2f} {seconds / t_genlib:>10.2f} {diff_text:>20}")


if __name__ == "__main__":
    main()
