"""One EM iteration (E-step + M-step) of genlib against scikit-learn's GaussianMixture.

n = 100,000 samples, d = 16, K = 32 components, float64, CPU, for each covariance type, both started from
the same parameters. scikit-learn's iteration is timed through its (private) ``_e_step`` and ``_m_step``,
the two calls its ``fit`` makes per iteration. Run: ``.venv/bin/python benchmarks/bench_em.py``.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch
from sklearn.mixture import GaussianMixture as SkGaussianMixture

from genlib.device import make_generator
from genlib.em import e_step, initialize_gmm
from genlib.mixtures import gaussian_mixture_mle


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--d", type=int, default=16)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    g = make_generator(0)
    centres = 4 * torch.randn(args.k, args.d, generator=g, dtype=torch.float64)
    labels = torch.randint(args.k, (args.n,), generator=g)
    x = centres[labels] + torch.randn(args.n, args.d, generator=g, dtype=torch.float64)
    x_np = x.numpy()
    print(
        f"one EM iteration, n={args.n}, d={args.d}, K={args.k}, float64, "
        f"{torch.get_num_threads()} torch threads"
    )
    print(f"{'covariance':<10} {'genlib (s)':>11} {'sklearn (s)':>12} {'ratio':>7}")
    for ct in ("full", "diag", "spherical"):
        mixture = initialize_gmm(x, args.k, covariance_type=ct, init="random", generator=make_generator(1))

        def genlib_iteration(mixture=mixture, ct=ct) -> None:
            log_q, _ = e_step(x, mixture)
            gaussian_mixture_mle(x, log_q.exp(), covariance_type=ct, reg_covar=1e-6)

        cov = mixture.covariances.numpy()
        sk = SkGaussianMixture(
            args.k,
            covariance_type=ct,
            weights_init=mixture.weights.numpy(),
            means_init=mixture.means.numpy(),
            precisions_init=np.linalg.inv(cov) if ct == "full" else 1.0 / cov,
            max_iter=1,
            reg_covar=1e-6,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sk._initialize_parameters(x_np, np.random.RandomState(0))  # sets the given initial parameters

        def sklearn_iteration(sk=sk) -> None:
            _, log_resp = sk._e_step(x_np)
            sk._m_step(x_np, log_resp)

        t_genlib = best_of(genlib_iteration, args.repeats)
        t_sklearn = best_of(sklearn_iteration, args.repeats)
        print(f"{ct:<10} {t_genlib:>11.3f} {t_sklearn:>12.3f} {t_genlib / t_sklearn:>7.2f}")


if __name__ == "__main__":
    main()
