"""genlib.kde against independent references: scipy.stats.gaussian_kde (same bandwidth matrix, float64,
relative error below 1e-10), scikit-learn's KernelDensity (scalar bandwidth), quadrature (the density
integrates to one in 1-D and 2-D), brute-force leave-one-out and held-out scores, the KDE written as a
Gaussian mixture, two-sample tests of the sampler (with a power check), and a memory limit that a
full n-by-m matrix would break."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import scipy.integrate
import scipy.linalg
import scipy.special
import scipy.stats
import sklearn.neighbors
import torch

import genlib.kde as kde_module
from genlib.device import make_generator
from genlib.kde import (
    BandwidthSearch,
    bandwidth_by_leave_one_out,
    bandwidth_by_validation,
    kde_as_mixture,
    kde_log_density,
    kde_sample,
    scott_bandwidth,
    silverman_bandwidth,
)
from genlib.mixtures import GaussianMixture, gmm_log_density, sample_gmm

ROOT = Path(__file__).resolve().parents[1]


def correlated_data(seed: int, n: int, d: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(d, d)) + 2 * np.eye(d)
    return rng.normal(size=(n, d)) @ a.T + rng.normal(size=d) * 3


def t64(a: np.ndarray, device: str) -> torch.Tensor:
    return torch.tensor(a, dtype=torch.float64, device=device)


# --------------------------------------------------------------------------- the density


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("rule", ["scott", "silverman", 0.15])
def test_equals_scipy_gaussian_kde(d, rule, device):
    data = correlated_data(d, 400, d)
    kde = scipy.stats.gaussian_kde(data.T, bw_method=rule)
    rng = np.random.default_rng(10 + d)
    # Queries near the data and far from it (tens of bandwidths away).
    x = np.concatenate([data[:50] + 0.3 * rng.normal(size=(50, d)), rng.normal(size=(100, d)) * 20])
    expected = kde.logpdf(x.T)
    got = kde_log_density(t64(x, device), t64(data, device), t64(kde.covariance, device))
    assert got.shape == (150,) and got.dtype == torch.float64 and got.device.type == device
    rel = np.abs(got.cpu().numpy() - expected) / np.abs(expected)
    assert rel.max() < 1e-10


def test_one_dimensional_shapes_match_scipy(device):
    data = correlated_data(4, 300, 1)[:, 0]
    kde = scipy.stats.gaussian_kde(data)
    x = np.linspace(-20, 20, 101)
    h = math.sqrt(kde.covariance[0, 0])
    for bandwidth in (h, torch.tensor(h, dtype=torch.float64, device=device), t64(kde.covariance, device)):
        got = kde_log_density(t64(x, device), t64(data, device), bandwidth)
        assert got.shape == (101,)
        np.testing.assert_allclose(got.cpu().numpy(), kde.logpdf(x), rtol=1e-10)
    # (N, 1) data and (M, 1) queries give the same numbers.
    got2 = kde_log_density(t64(x[:, None], device), t64(data[:, None], device), h)
    np.testing.assert_allclose(got2.cpu().numpy(), kde.logpdf(x), rtol=1e-10)


@pytest.mark.parametrize("d", [1, 3])
def test_scalar_bandwidth_equals_sklearn(d, device):
    data = correlated_data(20 + d, 250, d)
    # Near the data only: far from it, scikit-learn's tree sums lose accuracy (off by several nats).
    x = data[:80] + 0.5 * np.random.default_rng(d).normal(size=(80, d))
    h = 0.7
    expected = sklearn.neighbors.KernelDensity(bandwidth=h, kernel="gaussian").fit(data).score_samples(x)
    got = kde_log_density(t64(x, device), t64(data, device), h)
    np.testing.assert_allclose(got.cpu().numpy(), expected, rtol=1e-8)


@pytest.mark.parametrize("chunk_size", [1, 7, 250, 10_000])
def test_chunking_does_not_change_the_result(chunk_size, device):
    data = t64(correlated_data(5, 40, 2), device)
    x = t64(correlated_data(6, 30, 2), device)
    bandwidth = t64(np.array([[0.5, 0.1], [0.1, 0.3]]), device)
    whole = kde_log_density(x, data, bandwidth, chunk_size=40 * 30)
    chunked = kde_log_density(x, data, bandwidth, chunk_size=chunk_size)
    torch.testing.assert_close(chunked, whole, rtol=1e-13, atol=1e-13)


def test_integrates_to_one_in_1d():
    data = torch.tensor(correlated_data(7, 60, 1)[:, 0], dtype=torch.float64)
    for h in (0.05, 0.4, 3.0):
        lo, hi = data.min().item() - 12 * h, data.max().item() + 12 * h
        grid = torch.linspace(lo, hi, 40_001, dtype=torch.float64)
        density = kde_log_density(grid, data, h).exp().numpy()
        assert abs(scipy.integrate.trapezoid(density, grid.numpy()) - 1) < 1e-8
    # ... and a wrong normalisation (one factor of h too few) does not.
    h = 0.4
    grid = torch.linspace(data.min().item() - 5, data.max().item() + 5, 40_001, dtype=torch.float64)
    density = (kde_log_density(grid, data, h) + math.log(h)).exp().numpy()
    assert abs(scipy.integrate.trapezoid(density, grid.numpy()) - 1) > 0.5


def test_integrates_to_one_in_2d_with_a_bandwidth_matrix():
    data = torch.tensor(correlated_data(8, 150, 2), dtype=torch.float64)
    bandwidth = scott_bandwidth(data)
    assert bandwidth.shape == (2, 2)
    spread = 10 * bandwidth.diagonal().sqrt()
    axes = [
        torch.linspace(data[:, j].min() - spread[j], data[:, j].max() + spread[j], 301, dtype=torch.float64)
        for j in range(2)
    ]
    g0, g1 = torch.meshgrid(*axes, indexing="ij")
    points = torch.stack([g0.flatten(), g1.flatten()], dim=1)
    density = kde_log_density(points, data, bandwidth).exp().reshape(301, 301).numpy()
    integral = scipy.integrate.trapezoid(scipy.integrate.trapezoid(density, axes[1].numpy()), axes[0].numpy())
    assert abs(integral - 1) < 1e-6


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_far_from_all_data_is_finite_and_right(dtype, device):
    data = torch.tensor(correlated_data(9, 50, 2), dtype=dtype, device=device)
    far = torch.tensor([[300.0, -200.0], [1e3, 1e3]], dtype=dtype, device=device)
    h = 0.1
    got = kde_log_density(far, data, h)
    assert torch.isfinite(got).all()
    # The naive formula underflows: the check is not vacuous.
    naive = (torch.distributions.Normal(data, h).log_prob(far[:, None, :]).sum(-1).exp().mean(1)).log()
    assert torch.isinf(naive).all()
    # Independent reference: the same KDE as a Gaussian mixture, evaluated by torch.logsumexp in float64.
    reference = gmm_log_density(far.double(), kde_as_mixture(data.double(), h))
    torch.testing.assert_close(
        got.double(), reference, rtol=1e-5 if dtype == torch.float32 else 1e-12, atol=0
    )


def test_equals_the_kde_as_a_mixture(device):
    data = t64(correlated_data(11, 80, 3), device)
    x = t64(correlated_data(12, 40, 3), device)
    bandwidth = scott_bandwidth(data)
    for bw in (0.8, bandwidth):
        mixture = kde_as_mixture(data, bw)
        assert isinstance(mixture, GaussianMixture) and mixture.num_components == 80
        torch.testing.assert_close(
            kde_log_density(x, data, bw), gmm_log_density(x, mixture), rtol=1e-12, atol=0
        )
    assert kde_as_mixture(data, 0.8).covariance_type == "spherical"
    assert kde_as_mixture(data, bandwidth).covariance_type == "full"


def test_float32_follows_the_inputs(device):
    data = torch.tensor(correlated_data(13, 100, 2), dtype=torch.float32, device=device)
    x = data[:10] + 0.1
    got = kde_log_density(x, data, 0.5)
    assert got.dtype == torch.float32 and got.device == data.device
    expected = kde_log_density(x.double(), data.double(), 0.5)
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- the fast pass and its fallback


def brute_force_log_density(
    x: np.ndarray, data: np.ndarray, bandwidth_matrix: np.ndarray, *, leave_one_out: bool = False
) -> np.ndarray:
    """log (1/N) sum_i N(x | x^i, H) in float64, all pairs at once: direct differences, whitened by
    the Cholesky factor of H, and scipy.special.logsumexp (no blocks, no expansion, no genlib)."""
    n, d = data.shape
    chol = np.linalg.cholesky(bandwidth_matrix)
    out = []
    for start in range(0, x.shape[0], 200):  # 200 queries at a time keeps the (200, N, d) array small
        diff = x[start : start + 200, None, :] - data[None, :, :]  # (r, N, d)
        z = scipy.linalg.solve_triangular(chol, diff.reshape(-1, d).T, lower=True).T.reshape(diff.shape)
        log_terms = -0.5 * (z**2).sum(-1) - np.log(np.diag(chol)).sum() - 0.5 * d * math.log(2 * math.pi)
        if leave_one_out:
            rows = np.arange(log_terms.shape[0])
            log_terms[rows, start + rows] = -np.inf
        out.append(scipy.special.logsumexp(log_terms, axis=1) - math.log(n - 1 if leave_one_out else n))
    return np.concatenate(out)


def random_bandwidth_matrix(seed: int, d: int, scale: float) -> np.ndarray:
    """A symmetric positive definite (d, d) matrix with no relation to the data."""
    a = np.random.default_rng(seed).normal(size=(d, d))
    return scale * (a @ a.T / d + 0.3 * np.eye(d))


@pytest.fixture
def stable_rows(monkeypatch) -> list[int]:
    """Records how many rows each call of the careful path (the underflow fallback) received."""
    calls: list[int] = []
    careful = kde_module._stable_log_kernel_sums

    def spy(u_query, *args, **kwargs):
        calls.append(u_query.shape[0])
        return careful(u_query, *args, **kwargs)

    monkeypatch.setattr(kde_module, "_stable_log_kernel_sums", spy)
    return calls


@pytest.mark.parametrize("d", [1, 2, 5])  # d = 5 builds the exponents by one matrix product
@pytest.mark.parametrize("bandwidth_kind", ["scott", "silverman", "matrix", "scalar"])
def test_fast_pass_equals_scipy_and_brute_force(d, bandwidth_kind, device, stable_rows):
    # 1100 x 2600 pairs: on the CPU 3 x 3 blocks of at most 512 x 1024 (float64), the last ones cut short.
    data = correlated_data(30 + d, 2600, d)
    x = data[:1100] + 0.5 * np.random.default_rng(d).normal(size=(1100, d))
    if bandwidth_kind in ("scott", "silverman"):
        kde = scipy.stats.gaussian_kde(data.T, bw_method=bandwidth_kind)
        bandwidth, expected = t64(kde.covariance, device), kde.logpdf(x.T)
    elif bandwidth_kind == "matrix":
        matrix = random_bandwidth_matrix(d, d, 0.4)
        bandwidth, expected = t64(matrix, device), brute_force_log_density(x, data, matrix)
    else:
        bandwidth, expected = 0.35, brute_force_log_density(x, data, 0.35**2 * np.eye(d))
    got = kde_log_density(t64(x, device), t64(data, device), bandwidth)
    rel = np.abs(got.cpu().numpy() - expected) / np.abs(expected)
    assert rel.max() < 1e-10
    assert stable_rows == []  # every query is near the data: the fast pass did all the work


@pytest.mark.parametrize("d", [2, 5])
def test_float32_agrees_with_float64_to_float32_accuracy(d, device):
    data = correlated_data(40 + d, 2600, d)
    x = np.concatenate(
        [data[:900] + 0.3, data[900:1100] + 2 * np.random.default_rng(d).normal(size=(200, d))]
    )
    bandwidth = scott_bandwidth(t64(data, device))
    expected = kde_log_density(t64(x, device), t64(data, device), bandwidth)
    got = kde_log_density(
        torch.tensor(x, dtype=torch.float32, device=device),
        torch.tensor(data, dtype=torch.float32, device=device),
        bandwidth.float(),
    )
    assert got.dtype == torch.float32
    # The expanded square loses about eps * (|u|^2 + |v|^2) of the exponent, u and v the whitened points
    # (distances from the data mean in bandwidths): a float32-sized error. Measured: about a tenth of
    # the tolerance below.
    chol = np.linalg.cholesky(bandwidth.cpu().numpy())
    centre = data.mean(axis=0)
    largest = max(
        (scipy.linalg.solve_triangular(chol, (p - centre).T, lower=True) ** 2).sum(0).max() for p in (x, data)
    )
    tolerance = 4 * np.finfo(np.float32).eps * largest
    assert 1e-6 < tolerance < 1e-3  # the bound is float32-sized, not vacuous
    error = (got.double() - expected).abs().max().item()
    assert error < tolerance


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_far_queries_take_the_careful_path_and_are_right(dtype, device, stable_rows):
    data = correlated_data(50, 300, 2)
    bandwidth = scipy.stats.gaussian_kde(data.T).covariance
    chol = np.linalg.cholesky(bandwidth)
    rng = np.random.default_rng(51)
    directions = rng.normal(size=(4, 2))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    # 60 to 10^4 bandwidths from the data mean: every kernel term underflows, in float64 too.
    far = data.mean(axis=0) + (np.array([60.0, 300.0, 3e3, 1e4])[:, None] * directions) @ chol.T
    near = data[:5] + 0.2 * rng.normal(size=(5, 2))
    x = np.concatenate([near[:2], far[:2], near[2:], far[2:]])  # far rows between near ones
    got = kde_log_density(
        torch.tensor(x, dtype=dtype, device=device),
        torch.tensor(data, dtype=dtype, device=device),
        torch.tensor(bandwidth, dtype=dtype, device=device),
    )
    assert torch.isfinite(got).all()
    expected = brute_force_log_density(x, data, bandwidth)
    assert np.exp(expected[[2, 3, 7, 8]]).max() == 0  # the plain formula underflows there
    rtol = 1e-5 if dtype == torch.float32 else 1e-12
    np.testing.assert_allclose(got.double().cpu().numpy(), expected, rtol=rtol, atol=0)
    assert stable_rows == [4]  # exactly the four far rows were recomputed


@pytest.mark.parametrize("blocks", [(None, None), (37, 37 * 8 * 101)])
def test_leave_one_out_equals_brute_force(blocks, monkeypatch, device, stable_rows):
    if blocks[0] is not None:  # CPU blocks of 37 x 101 pairs: the diagonal is cut at odd places
        monkeypatch.setattr(kde_module, "_CPU_BLOCK_ROWS", blocks[0])
        monkeypatch.setattr(kde_module, "_CPU_BLOCK_BYTES", blocks[1])
    data = np.concatenate([correlated_data(60, 1500, 2), [[60.0, 60.0], [-60.0, 50.0], [55.0, -70.0]]])
    grid = [0.02, 0.1, 0.3, 1.0]
    scale = np.cov(data[:1500].T)
    result = bandwidth_by_leave_one_out(t64(data, device), grid, scale_matrix=t64(scale, device))
    expected = [brute_force_log_density(data, data, h**2 * scale, leave_one_out=True).mean() for h in grid]
    np.testing.assert_allclose(result.scores.cpu().numpy(), expected, rtol=1e-10, atol=0)
    assert result.best_bandwidth.item() == grid[int(np.argmax(expected))]
    assert sum(stable_rows) >= 3  # the three outliers underflow for small h: the careful path, left out too


@pytest.mark.parametrize("rows_bytes", [(1, 8), (3, 3 * 8 * 5), (16, 16 * 8 * 64), (512, 2**22)])
@pytest.mark.parametrize("chunk_size", [1, 13, 2**22])
def test_block_boundaries_do_not_change_the_result(rows_bytes, chunk_size, monkeypatch, device):
    monkeypatch.setattr(kde_module, "_CPU_BLOCK_ROWS", rows_bytes[0])
    monkeypatch.setattr(kde_module, "_CPU_BLOCK_BYTES", rows_bytes[1])
    data = correlated_data(70, 53, 2)
    x = np.concatenate([correlated_data(71, 35, 2), [[400.0, -300.0], [1e4, 2.0]]])  # 37 queries, 2 far
    bandwidth = np.array([[0.5, 0.1], [0.1, 0.3]])
    got = kde_log_density(t64(x, device), t64(data, device), t64(bandwidth, device), chunk_size=chunk_size)
    np.testing.assert_allclose(got.cpu().numpy(), brute_force_log_density(x, data, bandwidth), rtol=1e-12)
    grid = torch.tensor([0.3, 1.0, 2.0], dtype=torch.float64, device=device)
    scores = bandwidth_by_validation(t64(data, device), t64(x[:35], device), grid, chunk_size=chunk_size)
    expected = [brute_force_log_density(x[:35], data, h**2 * np.eye(2)).mean() for h in grid.tolist()]
    np.testing.assert_allclose(scores.scores.cpu().numpy(), expected, rtol=1e-12)
    one = bandwidth_by_validation(t64(data, device), t64(x[:35], device), grid[1:2], chunk_size=chunk_size)
    np.testing.assert_allclose(one.scores.cpu().numpy(), expected[1:2], rtol=1e-12)  # G = 1, h != 1


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_threads_share_the_blocks_and_give_the_same_numbers(dtype):
    data = torch.tensor(correlated_data(80, 2600, 2), dtype=dtype)
    x = torch.tensor(correlated_data(81, 1100, 2), dtype=dtype)  # 3 row blocks of at most 512 queries
    bandwidth = scott_bandwidth(data)
    one_thread = kde_log_density(x, data, bandwidth)
    torch.set_num_threads(2)  # the autouse fixture restores the setting after the test
    two_threads = kde_log_density(x, data, bandwidth, progress=True)
    assert torch.equal(one_thread, two_threads)  # each thread runs whole blocks, single-threaded
    assert torch.get_num_threads() == 2  # and the setting is back afterwards
    with pytest.raises(ZeroDivisionError):
        list(kde_module._map_in_threads(lambda item: 1 / item, [3, 2, 1, 0], torch.device("cpu")))
    assert torch.get_num_threads() == 2  # ... also after an error in a thread


# --------------------------------------------------------------------------- bandwidth selection


def test_validation_scores_equal_brute_force(device):
    train = t64(correlated_data(14, 70, 2), device)
    valid = t64(correlated_data(15, 30, 2), device)
    grid = torch.tensor([0.05, 0.2, 0.5, 1.0, 3.0], dtype=torch.float64, device=device)
    for scale in (None, scott_bandwidth(train) / 0.5):
        result = bandwidth_by_validation(train, valid, grid, scale_matrix=scale)
        assert isinstance(result, BandwidthSearch)
        shape = torch.eye(2, dtype=torch.float64, device=device) if scale is None else scale
        brute = torch.stack([kde_log_density(valid, train, h**2 * shape).mean() for h in grid.tolist()])
        torch.testing.assert_close(result.scores, brute, rtol=1e-12, atol=1e-12)
        assert result.best_bandwidth == grid[brute.argmax()]
        torch.testing.assert_close(result.grid, grid)


def test_leave_one_out_scores_equal_brute_force(device):
    data = t64(correlated_data(16, 30, 2), device)
    grid = [0.1, 0.4, 1.0, 2.5]
    result = bandwidth_by_leave_one_out(data, grid, chunk_size=13)  # blocks that cut the diagonal
    brute = []
    for h in grid:
        scores = [
            kde_log_density(data[i : i + 1], torch.cat([data[:i], data[i + 1 :]]), h) for i in range(30)
        ]
        brute.append(torch.cat(scores).mean())
    torch.testing.assert_close(result.scores, torch.stack(brute), rtol=1e-12, atol=1e-12)
    assert result.best_bandwidth.item() == grid[int(torch.stack(brute).argmax())]


def test_scoring_on_the_training_data_prefers_h_to_zero_but_leave_one_out_does_not():
    mixture_data = correlated_data(17, 200, 1)[:, 0]
    data = torch.tensor(mixture_data, dtype=torch.float64)
    grid = torch.logspace(-3, 1, 25, dtype=torch.float64)
    on_train = bandwidth_by_validation(data, data, grid)
    assert on_train.best_bandwidth == grid[0]
    assert bool((on_train.scores.diff() < 0).all())  # the smaller h, the "better"
    loo = bandwidth_by_leave_one_out(data, grid)
    assert grid[3] < loo.best_bandwidth < grid[-3]


def test_selected_bandwidths_agree_and_beat_the_extremes():
    """On data from a known density, validation and leave-one-out pick similar h, and the chosen KDE
    is closer to the truth (Monte Carlo KL on fresh samples) than a much smaller or larger h."""
    from genlib.data.known_densities import bimodal_1d

    truth = bimodal_1d()
    g = make_generator(0)
    train = sample_gmm(truth, 1000, generator=g)[0]
    valid = sample_gmm(truth, 1000, generator=g)[0]
    test = sample_gmm(truth, 5000, generator=g)[0]
    grid = torch.logspace(-2, 0.5, 16, dtype=torch.float64)
    held_out = bandwidth_by_validation(train[:, 0], valid[:, 0], grid).best_bandwidth
    loo = bandwidth_by_leave_one_out(train[:, 0], grid).best_bandwidth
    assert 0.5 < held_out / loo < 2

    def kl(h: float) -> float:
        return (gmm_log_density(test, truth) - kde_log_density(test, train, h)).mean().item()

    assert kl(held_out.item()) < 0.02
    assert kl(held_out.item()) < min(kl(0.01), kl(3.0)) - 0.05


@pytest.mark.parametrize("d", [1, 2, 4])
def test_rules_of_thumb_equal_scipy(d, device):
    data = correlated_data(18 + d, 200, d)
    for rule, fn in (("scott", scott_bandwidth), ("silverman", silverman_bandwidth)):
        expected = scipy.stats.gaussian_kde(data.T, bw_method=rule).covariance
        got = fn(t64(data, device))
        assert got.shape == (d, d) and got.device.type == device
        np.testing.assert_allclose(got.cpu().numpy(), expected, rtol=1e-12)
        one_d = fn(t64(data[:, 0], device))
        assert one_d.shape == ()
        expected_1d = scipy.stats.gaussian_kde(data[:, 0], bw_method=rule).covariance[0, 0]
        np.testing.assert_allclose(one_d.item() ** 2, expected_1d, rtol=1e-12)


# --------------------------------------------------------------------------- sampling


def ks_pvalues(a: np.ndarray, b: np.ndarray, num_directions: int = 6) -> list[float]:
    """Two-sample Kolmogorov-Smirnov p-values along fixed random directions."""
    directions = np.random.default_rng(123).normal(size=(num_directions, a.shape[1]))
    return [scipy.stats.ks_2samp(a @ u, b @ u).pvalue for u in directions]


@pytest.mark.parametrize("bandwidth_kind", ["scalar", "matrix"])
def test_samples_pass_a_two_sample_test_against_the_mixture(bandwidth_kind, device, gen):
    data = t64(correlated_data(19, 40, 2), device)
    bandwidth = 0.3 if bandwidth_kind == "scalar" else scott_bandwidth(data)
    n = 20_000
    drawn = kde_sample(data, bandwidth, n, generator=gen(1)).cpu().numpy()
    fresh = sample_gmm(kde_as_mixture(data, bandwidth), n, generator=gen(2))[0].cpu().numpy()
    assert min(ks_pvalues(drawn, fresh)) > 1e-3 / 6
    # Power: a KDE with a twice wider kernel, or with no kernel noise at all, is rejected.
    wider = 0.6 if bandwidth_kind == "scalar" else 4 * bandwidth
    wrong = kde_sample(data, wider, n, generator=gen(3)).cpu().numpy()
    assert min(ks_pvalues(wrong, fresh)) < 1e-6
    resampled = data[torch.randint(40, (n,), generator=gen(4), device=device)].cpu().numpy()
    assert min(ks_pvalues(resampled, fresh)) < 1e-6


def test_sampling_draws_in_the_documented_order(device, gen):
    data = t64(correlated_data(21, 30, 3), device)
    h = 0.25
    got = kde_sample(data, h, 500, generator=gen(5))
    g = gen(5)
    z = torch.randint(30, (500,), generator=g, device=device)
    noise = torch.randn((500, 3), generator=g, dtype=torch.float64, device=device)
    torch.testing.assert_close(got, data[z] + h * noise, rtol=0, atol=0)
    matrix = scott_bandwidth(data)
    got = kde_sample(data, matrix, 500, generator=gen(5))
    torch.testing.assert_close(got, data[z] + noise @ torch.linalg.cholesky(matrix).T)
    # Same seed, same draws; 1-D data give 1-D samples.
    assert torch.equal(kde_sample(data, h, 50, generator=gen(6)), kde_sample(data, h, 50, generator=gen(6)))
    assert kde_sample(data[:, 0], h, 50, generator=gen(7)).shape == (50,)


def test_sample_moments(device, gen):
    """Mean: the data's mean. Covariance: the data's (biased) covariance plus H."""
    data = t64(correlated_data(22, 25, 2), device)
    matrix = t64(np.array([[0.5, 0.2], [0.2, 0.3]]), device)
    n = 400_000
    x = kde_sample(data, matrix, n, generator=gen(8))
    centred = data - data.mean(0)
    expected_cov = centred.T @ centred / 25 + matrix
    torch.testing.assert_close(
        x.mean(0), data.mean(0), atol=6 * expected_cov.diagonal().max().sqrt().item() / n**0.5, rtol=0
    )
    torch.testing.assert_close(torch.cov(x.T), expected_cov, atol=0.03, rtol=0.01)
    # Without the kernel noise the covariance would lack H: the tolerance above would catch it.
    assert (expected_cov - matrix - torch.cov(x.T)).abs().max() > 0.1


# --------------------------------------------------------------------------- errors


def test_clear_errors():
    data = torch.randn(20, 2, dtype=torch.float64)
    x = torch.randn(5, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="bandwidth must be a positive"):
        kde_log_density(x, data, 0.0)
    with pytest.raises(ValueError, match="bandwidth must be a positive"):
        kde_log_density(x, data, -1.0)
    with pytest.raises(ValueError, match="bandwidth must be a positive"):
        kde_log_density(x, data, torch.tensor(-0.5))
    with pytest.raises(ValueError, match="bandwidth must be a positive"):
        kde_log_density(x, data, math.nan)
    with pytest.raises(TypeError, match="bandwidth"):
        kde_log_density(x, data, "0.5")
    with pytest.raises(ValueError, match="positive definite"):
        kde_log_density(x, data, torch.tensor([[1.0, 2.0], [2.0, 1.0]], dtype=torch.float64))
    with pytest.raises(ValueError, match="symmetric"):
        kde_log_density(x, data, torch.tensor([[1.0, 0.5], [0.0, 1.0]], dtype=torch.float64))
    with pytest.raises(ValueError, match=r"\(2, 2\) bandwidth matrix"):
        kde_log_density(x, data, torch.eye(3, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"x must have shape \(M, 2\)"):
        kde_log_density(torch.randn(5, 3, dtype=torch.float64), data, 0.5)
    with pytest.raises(ValueError, match=r"x must have shape \(M, 2\)"):
        kde_log_density(torch.randn(5, dtype=torch.float64), data, 0.5)
    with pytest.raises(TypeError, match="dtype"):
        kde_log_density(x.float(), data, 0.5)
    with pytest.raises(ValueError, match="finite"):
        kde_log_density(x, torch.full((3, 2), math.nan, dtype=torch.float64), 0.5)
    with pytest.raises(TypeError, match="floating"):
        kde_log_density(x, torch.ones(3, 2, dtype=torch.long), 0.5)
    with pytest.raises(ValueError, match="chunk_size"):
        kde_log_density(x, data, 0.5, chunk_size=0)
    with pytest.raises(ValueError, match="bandwidths must all be positive"):
        bandwidth_by_validation(data, x, [0.1, 0.0])
    with pytest.raises(ValueError, match="at least one"):
        bandwidth_by_validation(data, x, [])
    with pytest.raises(ValueError, match="scale_matrix S must be positive definite"):
        bandwidth_by_validation(data, x, [0.1], scale_matrix=-torch.eye(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="at least 2 rows"):
        bandwidth_by_leave_one_out(data[:1], [0.1])
    with pytest.raises(ValueError, match="num_samples must be >= 1"):
        kde_sample(data, 0.5, 0)
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        kde_sample(data, 0.5, 3, generator=0)
    with pytest.raises(ValueError, match="at least 2 rows"):
        scott_bandwidth(data[:1])


# --------------------------------------------------------------------------- memory


MEMORY_CHILD = textwrap.dedent(
    """
    import resource, sys, torch
    from genlib.kde import kde_log_density

    torch.set_num_threads(int(sys.argv[1]))  # 2: the blocks are shared out among threads, one buffer each
    n = 50_000
    g = torch.Generator().manual_seed(0)
    data = torch.randn(n, 2, generator=g)
    x = torch.randn(n, 2, generator=g) * 2
    kde_log_density(x[:100], data, 0.3)  # start the thread pool and the allocator before the limit
    status = open("/proc/self/status").read().splitlines()
    vm_size = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize"))
    # From here on the process may not map more than 1 GB beyond what it holds already.
    resource.setrlimit(resource.RLIMIT_AS, (vm_size + 2**30, resource.getrlimit(resource.RLIMIT_AS)[1]))
    out = kde_log_density(x, data, 0.3)
    assert out.shape == (n,) and out.dtype == torch.float32 and bool(torch.isfinite(out).all())
    # Control: the full n-by-m float32 matrix (10 GB) does not fit under the same limit.
    try:
        torch.cdist(x, data)
    except (RuntimeError, MemoryError):
        print("control: the n-by-m matrix was refused")
    print("done", out[:3].tolist())
    """
)


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status and RLIMIT_AS")
@pytest.mark.parametrize("threads", [1, 2])
def test_fifty_thousand_points_within_one_gigabyte(threads):
    result = subprocess.run(
        [sys.executable, "-c", MEMORY_CHILD, str(threads)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "control: the n-by-m matrix was refused" in result.stdout
    assert "done" in result.stdout
