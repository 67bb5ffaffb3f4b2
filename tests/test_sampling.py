"""genlib.sampling against independent references: chi-square tests (SciPy), exact enumeration of
the inverse-CDF rule with numpy on the same uniforms, and numpy's cumsum and bincount."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch

from genlib.sampling import (
    categorical_cdf,
    empirical_distribution,
    sample_categorical,
    sample_categorical_linear,
)

SAMPLERS = [sample_categorical, sample_categorical_linear]
FLOATS = [torch.float32, torch.float64]


def make_probs(seed: int, shape: tuple[int, ...], num_zeros: int = 0) -> np.ndarray:
    """Flat-Dirichlet probability vectors (numpy, float64) with ``num_zeros`` exact zeros per row."""
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(shape[-1]), size=shape[:-1])
    if num_zeros:
        flat = p.reshape(-1, shape[-1])
        for row in flat:
            row[rng.choice(shape[-1], size=num_zeros, replace=False)] = 0.0
        p = flat.reshape(shape)
    return p / p.sum(axis=-1, keepdims=True)


def to_tensor(p: np.ndarray, dtype: torch.dtype, device: str) -> torch.Tensor:
    return torch.tensor(p, dtype=dtype, device=device)


def chisquare_pvalue(samples: np.ndarray, p: np.ndarray) -> float:
    """SciPy's Pearson chi-square p-value of ``samples`` against ``p``, over the support of ``p``.

    Asserts first that no sample falls outside the support."""
    p = np.asarray(p, dtype=np.float64)
    counts = np.bincount(samples, minlength=p.shape[0])
    assert counts.shape[0] == p.shape[0], "a sample is out of range"
    support = p > 0
    assert counts[~support].sum() == 0, "a zero-probability outcome was drawn"
    expected = samples.shape[0] * p[support] / p[support].sum()
    return scipy.stats.chisquare(counts[support], expected).pvalue


def shifted(p: np.ndarray, amount: float = 0.05) -> np.ndarray:
    """A deliberately wrong distribution: ``amount`` of mass moved from the likeliest outcome to the
    least likely outcome in the support."""
    q = p.astype(np.float64).copy()
    support = np.flatnonzero(q > 0)
    hi = support[np.argmax(q[support])]
    lo = support[np.argmin(q[support])]
    amount = min(amount, q[hi] / 2)
    q[hi] -= amount
    q[lo] += amount
    return q


# --------------------------------------------------------------------------- goodness of fit


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize(("num_categories", "num_zeros"), [(2, 0), (3, 1), (7, 2), (40, 10)])
def test_chi_square_goodness_of_fit(sampler, dtype, num_categories, num_zeros, device, gen):
    p = make_probs(num_categories * 10 + num_zeros, (num_categories,), num_zeros)
    probs = to_tensor(p, dtype, device)
    n = 20_000
    samples = sampler(probs, n, generator=gen(1234 + num_categories)).cpu().numpy()
    assert samples.shape == (n,)
    assert chisquare_pvalue(samples, p) > 1e-3
    # Power: the same draws clearly reject a distribution that is 0.05 away in total variation.
    assert chisquare_pvalue(samples, shifted(p)) < 1e-6


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("dtype", FLOATS)
def test_chi_square_batched_rows(sampler, dtype, device, gen):
    batch, k, n = 5, 6, 20_000
    p = make_probs(7, (batch, k))
    p[1] = make_probs(8, (k,), num_zeros=3)
    p[2] = np.eye(k)[4]  # a point mass
    p[3] = np.full(k, 1 / k)
    probs = to_tensor(p, dtype, device)
    samples = sampler(probs, n, generator=gen(99)).cpu().numpy()
    assert samples.shape == (batch, n)
    for row in range(batch):
        if row == 2:
            assert (samples[row] == 4).all()
            continue
        assert chisquare_pvalue(samples[row], p[row]) > 1e-3, f"row {row}"
        # Each row must follow its own distribution, not a neighbour's.
        other = p[(row + 1) % batch]
        assert chisquare_pvalue(samples[row], np.where(p[row] > 0, 0.5 * other + 0.5 / k, 0.0)) < 1e-6
    # Rows are drawn independently: two identical rows do not give identical draws.
    twin = sampler(to_tensor(np.stack([p[0], p[0]]), dtype, device), 1000, generator=gen(5))
    assert not torch.equal(twin[0], twin[1])


def test_chi_square_harness_agrees_with_scipy():
    """genlib.testing.chi_square_test computes SciPy's statistic and p-value on a fixed sample."""
    from genlib.testing import chi_square_test

    probs = np.array([0.1, 0.0, 0.25, 0.4, 0.25])
    counts = np.array([113, 0, 240, 395, 252])
    samples = torch.repeat_interleave(torch.arange(5), torch.tensor(counts))
    stat, pvalue = chi_square_test(samples, torch.tensor(probs))
    support = probs > 0
    ref = scipy.stats.chisquare(counts[support], counts.sum() * probs[support])
    np.testing.assert_allclose(stat, ref.statistic, rtol=1e-8)
    np.testing.assert_allclose(pvalue, ref.pvalue, rtol=1e-8)
    # The same on a sample drawn by the sampler.
    draws = sample_categorical(torch.tensor(probs), 3000, generator=torch.Generator().manual_seed(3))
    stat, pvalue = chi_square_test(draws, torch.tensor(probs))
    c = np.bincount(draws.numpy(), minlength=5)
    ref = scipy.stats.chisquare(c[support], c.sum() * probs[support])
    np.testing.assert_allclose([stat, pvalue], [ref.statistic, ref.pvalue], rtol=1e-8)


# --------------------------------------------------------------------------- exact properties


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("dtype", FLOATS)
def test_zero_probability_outcomes_are_never_drawn(sampler, dtype, device, gen):
    # Zeros first, last, consecutive and between tiny probabilities.
    p = np.array([0.0, 0.0, 1e-3, 0.0, 0.499, 0.0, 0.0, 1e-3, 0.497, 0.0, 2e-3, 0.0, 0.0])
    probs = to_tensor(p / p.sum(), dtype, device)
    batch = torch.stack([probs, probs.flip(-1)])
    samples = sampler(batch, 50_000, generator=gen(0)).cpu()
    support = torch.tensor(p > 0)
    assert support[samples[0]].all()
    assert support.flip(-1)[samples[1]].all()
    # Every outcome in the support does appear (even the 1e-3 ones), so the draws are not trivial.
    assert set(samples[0].tolist()) == set(np.flatnonzero(p).tolist())


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("dtype", FLOATS)
def test_single_category_always_returns_zero(sampler, dtype, device, gen):
    probs = torch.ones(1, dtype=dtype, device=device)
    assert torch.equal(sampler(probs, 1000, generator=gen(0)).cpu(), torch.zeros(1000, dtype=torch.long))
    batched = torch.ones(3, 1, dtype=dtype, device=device)
    assert torch.equal(sampler(batched, 7, generator=gen(1)).cpu(), torch.zeros(3, 7, dtype=torch.long))


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("batch_shape", [(), (4,), (2, 3)])
def test_output_dtype_shape_device(sampler, dtype, batch_shape, device, gen):
    k = 5
    probs = to_tensor(make_probs(1, (*batch_shape, k), num_zeros=1), dtype, device)
    out = sampler(probs, 11, generator=gen(2))
    assert out.dtype == torch.long
    assert tuple(out.shape) == (*batch_shape, 11)
    assert out.device == probs.device
    assert int(out.min()) >= 0 and int(out.max()) < k
    assert sampler(probs, 1, generator=gen(2)).shape == (*batch_shape, 1)


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_without_generator_uses_global_rng(sampler, device):
    probs = torch.tensor([0.2, 0.0, 0.8], device=device)
    out = sampler(probs, 500)
    assert out.shape == (500,) and out.dtype == torch.long and out.device == probs.device
    assert set(out.cpu().tolist()) == {0, 2}


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_same_seed_same_draws_different_seed_different_draws(sampler, device, gen):
    probs = to_tensor(make_probs(3, (2, 10)), torch.float32, device)
    a = sampler(probs, 500, generator=gen(42))
    b = sampler(probs, 500, generator=gen(42))
    c = sampler(probs, 500, generator=gen(43))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    # The generator advances: two calls on one generator give different draws.
    g = gen(42)
    assert not torch.equal(sampler(probs, 500, generator=g), sampler(probs, 500, generator=g))


@pytest.mark.parametrize("dtype", FLOATS)
def test_linear_scan_equals_binary_search(dtype, device, gen):
    cases = [
        make_probs(11, (8, 13), num_zeros=4),
        make_probs(12, (3, 2)),
        np.full((2, 16), 1 / 16),  # ties everywhere
        np.array([[0.25, 0.25, 0.0, 0.25, 0.25, 0.0], [0.0, 0.5, 0.0, 0.0, 0.5, 0.0]]),
        np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]),
    ]
    for i, p in enumerate(cases):
        probs = to_tensor(p, dtype, device)
        fast = sample_categorical(probs, 2000, generator=gen(100 + i))
        slow = sample_categorical_linear(probs, 2000, generator=gen(100 + i))
        assert torch.equal(fast, slow), f"case {i}"


def _inverse_cdf_reference(p: np.ndarray, u: np.ndarray) -> np.ndarray:
    """``min{k : u < c_k}`` computed by numpy in float64, row by row."""
    levels = np.cumsum(p, axis=-1)
    levels = levels / levels[..., -1:]
    flat_levels, flat_u = levels.reshape(-1, p.shape[-1]), u.reshape(-1, u.shape[-1])
    out = [np.searchsorted(lv, uu, side="right") for lv, uu in zip(flat_levels, flat_u, strict=True)]
    return np.stack(out).reshape(u.shape), levels


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("dtype", FLOATS)
def test_inverse_cdf_rule_on_the_documented_uniforms(sampler, dtype, device, gen):
    """Reproduce the uniforms as documented and apply the inverse-CDF rule in numpy."""
    p = make_probs(21, (6, 9), num_zeros=3)
    probs = to_tensor(p, dtype, device)
    n = 3000
    draws = sampler(probs, n, generator=gen(77)).cpu().numpy()
    u = torch.rand((6, n), generator=gen(77), dtype=dtype, device=device).cpu().numpy().astype(np.float64)
    expected, levels = _inverse_cdf_reference(probs.cpu().double().numpy(), u)
    mismatch = draws != expected
    # The reference works in float64; a draw may only differ where u lies within rounding of a level.
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    near = np.abs(u[..., None] - levels[:, None, :]).min(axis=-1) < tol
    assert not (mismatch & ~near).any()
    assert mismatch.mean() < 1e-3


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("dtype", FLOATS)
def test_inverse_cdf_exact_with_dyadic_probabilities(sampler, dtype, device, gen):
    """With probabilities that are multiples of 1/64 every level is exact in any precision, so the
    draw is exactly ``searchsorted(cumsum(p), u, side='right')`` for every uniform."""
    p = np.array([[5, 0, 11, 16, 0, 32], [0, 0, 63, 1, 0, 0], [16, 16, 16, 16, 0, 0]]) / 64
    probs = to_tensor(p, dtype, device)
    n = 20_000
    draws = sampler(probs, n, generator=gen(8)).cpu().numpy()
    u = torch.rand((3, n), generator=gen(8), dtype=dtype, device=device).cpu().numpy().astype(np.float64)
    expected, _ = _inverse_cdf_reference(p, u)
    np.testing.assert_array_equal(draws, expected)


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize(
    ("level", "seed", "outcome"),
    # The CPU seeds were chosen so that 2**20 float32 uniforms contain ``level`` exactly.
    [(0.0, 12, 1), (0.25, 18, 2), (0.5, 7, 4), (0.75, 15, 4)],
)
def test_uniform_exactly_on_a_level_goes_to_the_next_outcome(sampler, level, seed, outcome, device, gen):
    """``min{k : u < c_k}``: a uniform equal to a level c_k belongs to the next piece, and skips a
    zero-probability outcome whose level equals it. Levels: 0, .25, .5, .5, 1."""
    probs = torch.tensor([0.0, 0.25, 0.25, 0.0, 0.5], device=device)
    n = 2**20
    draws = sampler(probs, n, generator=gen(seed)).cpu()
    u = torch.rand(n, generator=gen(seed), device=device).cpu()
    hits = u == level
    if not bool(hits.any()):
        assert device != "cpu", "the seed was chosen to hit the level on the CPU"
        pytest.skip("this device's random stream does not hit the level")
    assert (draws[hits] == outcome).all()


# --------------------------------------------------------------------------- categorical_cdf


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape", [(1,), (2,), (50,), (4, 30), (2, 3, 7)])
def test_categorical_cdf(dtype, shape, device):
    p = make_probs(sum(shape), shape, num_zeros=shape[-1] // 3)
    probs = to_tensor(p, dtype, device)
    levels = categorical_cdf(probs)
    assert levels.shape == probs.shape and levels.dtype == dtype and levels.device == probs.device
    assert (levels[..., -1] == 1.0).all()
    assert (levels.diff(dim=-1) >= 0).all()
    tol = 1e-6 if dtype == torch.float32 else 1e-13
    np.testing.assert_allclose(levels.cpu().numpy(), np.cumsum(p, axis=-1), rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", FLOATS)
def test_categorical_cdf_last_level_is_one_when_the_sum_is_slightly_off(dtype, device):
    # Sums off by a few rounding errors (well inside the tolerance of the probability check).
    p = torch.full((3, 10), 0.1, dtype=dtype, device=device)
    p[1] *= 1 - 2e-6
    p[2] *= 1 + 2e-6
    levels = categorical_cdf(p)
    assert (levels[..., -1] == 1.0).all()
    assert (levels.diff(dim=-1) >= 0).all()
    # A uniform just below 1 therefore never falls past the last outcome.
    below_one = torch.nextafter(torch.tensor(1.0, dtype=dtype), torch.tensor(0.0, dtype=dtype))
    idx = torch.searchsorted(levels, below_one.to(device).expand(3, 1).contiguous(), right=True)
    assert (idx.cpu() == 9).all()


# --------------------------------------------------------------------------- empirical distribution


@pytest.mark.parametrize("dtype", FLOATS)
def test_empirical_distribution_equals_bincount(dtype, device):
    rng = np.random.default_rng(0)
    k = 7
    x = rng.integers(0, k - 2, size=1000)  # the last two categories are empty
    got = empirical_distribution(torch.tensor(x, device=device), k, dtype=dtype)
    assert got.shape == (k,) and got.dtype == dtype and got.device.type == device
    np.testing.assert_allclose(got.cpu().numpy(), np.bincount(x, minlength=k) / x.size, rtol=1e-6)
    assert got[-2:].cpu().tolist() == [0.0, 0.0]
    # Default dtype is float32; one sample gives a point mass.
    assert empirical_distribution(torch.tensor(x), k).dtype == torch.float32
    one = empirical_distribution(torch.tensor([3], device=device), 5, dtype=dtype)
    assert one.cpu().tolist() == [0.0, 0.0, 0.0, 1.0, 0.0]


@pytest.mark.parametrize("dtype", FLOATS)
def test_empirical_distribution_weighted(dtype, device):
    rng = np.random.default_rng(1)
    k, n = 5, 400
    x = rng.integers(0, k, size=n)
    w = rng.exponential(size=n)
    w[:50] = 0.0
    got = empirical_distribution(
        torch.tensor(x, device=device), k, weights=torch.tensor(w, dtype=dtype, device=device)
    )
    assert got.dtype == dtype and got.device.type == device
    expected = np.bincount(x, weights=w, minlength=k) / w.sum()
    np.testing.assert_allclose(got.cpu().numpy(), expected, rtol=1e-5 if dtype == torch.float32 else 1e-12)
    # Integer weights equal repeating the data.
    counts = rng.integers(0, 4, size=n)
    weighted = empirical_distribution(
        torch.tensor(x, device=device), k, weights=torch.tensor(counts, dtype=torch.float64, device=device)
    )
    repeated = empirical_distribution(
        torch.tensor(np.repeat(x, counts), device=device), k, dtype=torch.float64
    )
    torch.testing.assert_close(weighted, repeated, rtol=1e-12, atol=1e-12)


def test_empirical_distribution_of_samples_matches_probs(device, gen):
    """Law of large numbers: the empirical distribution of many draws is close to probs (within
    5 binomial standard deviations in every category)."""
    p = make_probs(4, (12,), num_zeros=3)
    n = 100_000
    draws = sample_categorical(to_tensor(p, torch.float64, device), n, generator=gen(6))
    freq = empirical_distribution(draws, 12, dtype=torch.float64).cpu().numpy()
    sd = np.sqrt(p * (1 - p) / n)
    assert (np.abs(freq - p) <= 5 * sd).all()
    assert (freq[p == 0] == 0).all()
