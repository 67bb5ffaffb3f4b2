"""EM for Gaussian mixtures: genlib against scikit-learn's GaussianMixture, from the same start.

Both sides run their public fitting call for ``T`` iterations from the same initial parameters:

- genlib: ``genlib.em.fit_gmm(x, K, init_mixture=start, max_iter=T, tol=0)``;
- scikit-learn: ``GaussianMixture(K, max_iter=T, tol=0, weights_init=..., means_init=...,
  precisions_init=..., init_params="random_from_data").fit(x)`` (the given parameters override the
  cheap random initialisation, so no k-means runs).

The time per iteration is the total over ``T``. Before timing, the log-likelihood trajectories are
compared: scikit-learn's iteration is replayed through its ``_e_step``/``_m_step`` (what ``fit``
calls) for 5 iterations and the per-iteration mean log-likelihoods put next to genlib's.

Also here: the scaling of one iteration with ``n`` and the roofline share of the E-step (achieved
GFLOP/s of the two matrix products against the machine's measured matrix-multiply rate).
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SkGaussianMixture

from benchmarks.harness import Case, Prepared, markdown_table, run_case, time_once
from genlib.device import make_generator
from genlib.em import e_step, fit_gmm, initialize_gmm
from genlib.gaussian_statistics import em_pass, natural_parameters, num_features, sufficient_statistics
from genlib.mixtures import GaussianMixture

ITERATIONS = 10
TARGETS = {"full": 5.0, "diag": 8.0, "spherical": 8.0}


def clustered_data(n: int, d: int, k: int, dtype: torch.dtype, device: str = "cpu", seed: int = 0):
    """``n`` points around ``k`` random centres (spread 4, unit noise), shape ``(n, d)``."""
    g = make_generator(seed)
    centres = 4 * torch.randn(k, d, generator=g, dtype=torch.float64)
    labels = torch.randint(k, (n,), generator=g)
    x = centres[labels] + torch.randn(n, d, generator=g, dtype=torch.float64)
    return x.to(dtype=dtype, device=device)


def _sklearn_model(start: GaussianMixture, iterations: int) -> SkGaussianMixture:
    cov = start.covariances.double().cpu().numpy()
    precisions = np.linalg.inv(cov) if start.covariance_type == "full" else 1.0 / cov
    return SkGaussianMixture(
        start.num_components,
        covariance_type=start.covariance_type,
        weights_init=start.weights.double().cpu().numpy(),
        means_init=start.means.double().cpu().numpy(),
        precisions_init=precisions,
        init_params="random_from_data",
        max_iter=iterations,
        tol=0.0,
        reg_covar=1e-6,
        random_state=0,
    )


def sklearn_fit(x_np: np.ndarray, start: GaussianMixture, iterations: int) -> SkGaussianMixture:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return _sklearn_model(start, iterations).fit(x_np)


def sklearn_trajectory(x_np: np.ndarray, start: GaussianMixture, iterations: int) -> list[float]:
    """Mean log-likelihood per sample at theta_0 .. theta_T, through scikit-learn's own E/M steps."""
    model = _sklearn_model(start, iterations)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model._initialize_parameters(x_np, np.random.RandomState(0))
    values = []
    for t in range(iterations + 1):
        log_prob_norm, log_resp = model._e_step(x_np)
        values.append(float(log_prob_norm))
        if t < iterations:
            model._m_step(x_np, log_resp)
    return values


def _prepare(n: int, d: int, k: int, ct: str, dtype: torch.dtype, device: str, iterations: int) -> Prepared:
    x = clustered_data(n, d, k, dtype, device)
    x_np = x.cpu().numpy()
    start = initialize_gmm(
        x, k, covariance_type=ct, init="random", reg_covar=1e-6, generator=make_generator(1, device=device)
    )
    # agreement: the log-likelihood trajectory over 5 iterations
    ours = fit_gmm(x, k, covariance_type=ct, init_mixture=start, max_iter=5, tol=0.0, reg_covar=1e-6)
    ours_mean = (ours.log_likelihoods / n).tolist()
    theirs = sklearn_trajectory(x_np, start, 5)
    diff = max(abs(a - b) / abs(b) for a, b in zip(ours_mean, theirs, strict=True))
    agreement = {
        "mean_log_likelihood_genlib": ours_mean,
        "mean_log_likelihood_sklearn": theirs,
        "max_relative_difference": diff,
        "iterations_timed": iterations,
    }

    def genlib_fn() -> None:
        fit_gmm(x, k, covariance_type=ct, init_mixture=start, max_iter=iterations, tol=0.0, reg_covar=1e-6)

    def anchor_fn() -> None:
        sklearn_fit(x_np, start, iterations)

    return genlib_fn, anchor_fn, agreement


def cases(device: str = "cpu") -> list[Case]:
    """One EM iteration, n = 100,000, d = 16, K = 32, per covariance type (float64 and float32)."""
    out = []
    if device == "cpu":
        for dtype, name in ((torch.float64, "float64"), (torch.float32, "float32")):
            for ct in ("spherical", "diag", "full"):
                out.append(
                    Case(
                        key=f"em_{ct}_{name}",
                        title=f"EM, {ct}, n = 100,000, d = 16, K = 32, {name} (per iteration)",
                        anchor=f"sklearn.mixture.GaussianMixture(covariance_type='{ct}').fit ({name})",
                        setup=lambda ct=ct, dtype=dtype: _prepare(
                            100_000, 16, 32, ct, dtype, "cpu", ITERATIONS
                        ),
                        target=TARGETS[ct] if dtype == torch.float64 else None,
                        repeats=3,
                        per=ITERATIONS,
                        notes=f"each timed call fits {ITERATIONS} iterations; per-iteration times",
                    )
                )
    else:
        out.append(
            Case(
                key="em_diag_cuda",
                title="100 EM iterations, diag, n = 10^6, d = 64, K = 64, float32, CUDA",
                anchor="sklearn GaussianMixture(covariance_type='diag').fit, CPU, 100 iterations (float32)",
                setup=lambda: _prepare(1_000_000, 64, 64, "diag", torch.float32, device, 100),
                target=None,
                repeats=1,
                device=device,
                notes="the whole 100-iteration fit on each side; scikit-learn on this machine's CPU",
            )
        )
    return out


def scaling(device: str = "cpu") -> dict:
    """Seconds per EM iteration (diag, d = 16, K = 32, float64) against n, genlib and scikit-learn."""
    sizes = [10_000, 30_000, 100_000, 300_000]
    iterations = 5
    result: dict[str, list] = {"n": sizes, "genlib_s": [], "sklearn_s": []}
    for n in sizes:
        genlib_fn, anchor_fn, _ = _prepare(n, 16, 32, "diag", torch.float64, device, iterations)
        genlib_fn()
        anchor_fn()
        g, a = [], []
        for _ in range(3):
            g.append(time_once(genlib_fn, device) / iterations)
            a.append(time_once(anchor_fn, device) / iterations)
        result["genlib_s"].append(float(np.median(g)))
        result["sklearn_s"].append(float(np.median(a)))
    return result


def matmul_rate(dtype: torch.dtype, device: str = "cpu", size: int = 2048) -> float:
    """The machine's matrix-multiply rate in GFLOP/s: best of 5 products of two ``size x size`` matrices."""
    a = torch.randn(size, size, dtype=dtype, device=device)
    b = torch.randn(size, size, dtype=dtype, device=device)
    a @ b
    best = min(time_once(lambda: a @ b, device) for _ in range(5))
    return 2 * size**3 / best / 1e9


def roofline(device: str = "cpu") -> dict:
    """Achieved GFLOP/s of genlib's E-step (and of a whole EM pass) as a share of the matmul rate.

    Counted flops: the E-step product :math:`\\Theta F` is :math:`2KpN`; a whole pass adds the M-step
    product :math:`Q^\\top F^\\top`, another :math:`2KpN`. The exponentials and the log-sum-exp are not
    counted (they are not multiply-adds), so the share is a lower bound on how busy the machine is.
    """
    n, d, k, ct = 100_000, 16, 32, "diag"
    out: dict = {"n": n, "d": d, "k": k, "covariance_type": ct}
    for dtype, name in ((torch.float64, "float64"), (torch.float32, "float32")):
        out[name] = _roofline_row(n, d, k, ct, dtype, device)
    return out


def _roofline_row(n: int, d: int, k: int, ct: str, dtype: torch.dtype, device: str) -> dict:
    x = clustered_data(n, d, k, dtype, device)
    mixture = initialize_gmm(
        x, k, covariance_type=ct, init="random", generator=make_generator(1, device=device)
    )
    centre = x.mean(dim=0)
    theta, bias = natural_parameters(mixture.weights, mixture.means, mixture.covariances, ct, centre)
    features = sufficient_statistics(x, ct, centre, with_ones=True)
    p = num_features(d, ct)
    e_time = _median(lambda: e_step(x, mixture), device)
    pass_time = _median(lambda: em_pass(x, theta, bias, ct, centre, features), device)
    peak = matmul_rate(dtype, device)
    e_rate = 2 * k * p * n / e_time / 1e9
    pass_rate = 4 * k * p * n / pass_time / 1e9
    return {
        "matmul_gflops": peak,
        "e_step_s": e_time,
        "e_step_gflops": e_rate,
        "e_step_share": e_rate / peak,
        "em_pass_s": pass_time,
        "em_pass_gflops": pass_rate,
        "em_pass_share": pass_rate / peak,
    }


def _median(fn, device: str, repeats: int = 7) -> float:
    fn()
    return float(np.median([time_once(fn, device) for _ in range(repeats)]))


if __name__ == "__main__":
    start_time = time.perf_counter()
    results = [run_case(c) for c in cases()]
    print(markdown_table(results))
    print(roofline())
    print(f"{time.perf_counter() - start_time:.0f} s")
