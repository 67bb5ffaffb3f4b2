"""genlib.divergences against SciPy (entropy, rel_entr), torch.distributions (Gaussian KL),
the identities H(P, Q) = H(P) + KL(P||Q) >= H(P), and the law of large numbers for the Monte Carlo
estimates."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.special
import scipy.stats
import torch

from genlib.divergences import (
    MonteCarloEstimate,
    cross_entropy,
    entropy,
    kl_categorical,
    kl_monte_carlo,
    monte_carlo_estimate,
    running_mean,
)
from genlib.sampling import sample_categorical

FLOATS = [torch.float32, torch.float64]


def tol(dtype: torch.dtype) -> dict[str, float]:
    return {"rtol": 1e-5, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 1e-11, "atol": 1e-12}


def random_pairs(seed: int, n: int, k: int, zeros_in_p: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` pairs of probability vectors (float64); ``q`` is positive, ``p`` has ``zeros_in_p`` zeros."""
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(k, 0.7), size=n)
    q = rng.dirichlet(np.full(k, 0.7), size=n)
    if zeros_in_p:
        for row in p:
            row[rng.choice(k, size=zeros_in_p, replace=False)] = 0.0
    return p / p.sum(-1, keepdims=True), q


# --------------------------------------------------------------------------- exact KL


@pytest.mark.parametrize("dtype", FLOATS)
def test_kl_equals_scipy(dtype, device):
    p, q = random_pairs(0, 200, 6, zeros_in_p=2)
    got = kl_categorical(
        torch.tensor(p, dtype=dtype, device=device), torch.tensor(q, dtype=dtype, device=device)
    )
    assert got.shape == (200,) and got.dtype == dtype and got.device.type == device
    pc, qc = torch.tensor(p, dtype=dtype).double().numpy(), torch.tensor(q, dtype=dtype).double().numpy()
    np.testing.assert_allclose(got.cpu().numpy(), scipy.stats.entropy(pc, qc, axis=-1), **tol(dtype))
    np.testing.assert_allclose(got.cpu().numpy(), scipy.special.rel_entr(pc, qc).sum(-1), **tol(dtype))


def test_kl_is_non_negative_on_many_pairs(device):
    for k, zeros in [(2, 0), (3, 1), (10, 4), (100, 0)]:
        for dtype in FLOATS:
            p, q = random_pairs(k, 500, k, zeros_in_p=zeros)
            kl = kl_categorical(
                torch.tensor(p, dtype=dtype, device=device), torch.tensor(q, dtype=dtype, device=device)
            )
            assert (kl >= 0).all()
            assert torch.isfinite(kl).all()
            assert (kl > 0).all()  # p != q for every pair
    # Pairs that differ by rounding only: rounding must not make KL negative.
    p, _ = random_pairs(1, 500, 30)
    pt = torch.tensor(p, dtype=torch.float32, device=device)
    q = pt * (1 + 1e-6 * torch.randn(pt.shape, generator=torch.Generator().manual_seed(0)).to(device))
    q = q / q.sum(-1, keepdim=True)
    assert (kl_categorical(pt, q) >= 0).all()


@pytest.mark.parametrize("dtype", FLOATS)
def test_kl_of_identical_distributions_is_exactly_zero(dtype, device):
    p, _ = random_pairs(2, 50, 7, zeros_in_p=3)
    pt = torch.tensor(p, dtype=dtype, device=device)
    kl = kl_categorical(pt, pt.clone())
    assert (kl == 0.0).all()
    assert (
        kl_categorical(torch.tensor([1.0, 0.0], dtype=dtype), torch.tensor([1.0, 0.0], dtype=dtype)).item()
        == 0.0
    )


def test_kl_is_not_symmetric(device):
    p = torch.tensor([0.9, 0.1], dtype=torch.float64, device=device)
    q = torch.tensor([0.5, 0.5], dtype=torch.float64, device=device)
    forward, backward = kl_categorical(p, q).item(), kl_categorical(q, p).item()
    # Closed forms: 0.9 log 1.8 + 0.1 log 0.2 and 0.5 log(5/9) + 0.5 log 5.
    assert forward == pytest.approx(0.9 * math.log(1.8) + 0.1 * math.log(0.2), rel=1e-12)
    assert backward == pytest.approx(0.5 * math.log(5 / 9) + 0.5 * math.log(5), rel=1e-12)
    assert backward - forward > 0.1
    # With a zero: KL(p||q) finite, KL(q||p) infinite.
    p0 = torch.tensor([0.5, 0.5, 0.0], device=device)
    q0 = torch.tensor([0.25, 0.25, 0.5], device=device)
    assert math.isfinite(kl_categorical(p0, q0).item())
    assert kl_categorical(q0, p0).item() == math.inf


@pytest.mark.parametrize("dtype", FLOATS)
def test_kl_support_conventions(dtype, device):
    p = torch.tensor([[0.5, 0.5, 0.0], [0.0, 0.3, 0.7]], dtype=dtype, device=device)
    q = torch.tensor([[0.5, 0.0, 0.5], [0.2, 0.8, 0.0]], dtype=dtype, device=device)
    # p > 0 where q = 0: +inf (not NaN).
    assert kl_categorical(p, q).cpu().tolist() == [math.inf, math.inf]
    assert cross_entropy(p, q).cpu().tolist() == [math.inf, math.inf]
    # q > 0 where p = 0: that term is 0, the result finite and equal to SciPy's.
    q2 = torch.tensor([[0.25, 0.25, 0.5], [0.0, 0.5, 0.5]], dtype=dtype, device=device)
    kl = kl_categorical(p, q2)
    assert torch.isfinite(kl).all()
    expected = scipy.special.rel_entr(p.double().cpu().numpy(), q2.double().cpu().numpy()).sum(-1)
    np.testing.assert_allclose(kl.cpu().numpy(), expected, **tol(dtype))
    assert math.isfinite(cross_entropy(p, q2)[1].item())


def test_kl_batched_shapes_broadcast(device):
    p, q = random_pairs(3, 6, 4)
    pt = torch.tensor(p, device=device).reshape(2, 3, 4)
    qt = torch.tensor(q, device=device).reshape(2, 3, 4)
    assert kl_categorical(pt, qt).shape == (2, 3)
    # (2, 1, K) against (3, K) gives every pair: (2, 3).
    a, b = pt[:, :1], qt[0]
    out = kl_categorical(a, b)
    assert out.shape == (2, 3)
    expected = scipy.stats.entropy(
        np.broadcast_to(a.cpu().numpy(), (2, 3, 4)), np.broadcast_to(b.cpu().numpy(), (2, 3, 4)), axis=-1
    )
    np.testing.assert_allclose(out.cpu().numpy(), expected, rtol=1e-11)
    # One q against a batch of p.
    out2 = kl_categorical(pt, qt[1, 2])
    assert out2.shape == (2, 3)
    np.testing.assert_allclose(
        out2.cpu().numpy(), scipy.stats.entropy(p.reshape(2, 3, 4), q[5], axis=-1), rtol=1e-11
    )
    assert cross_entropy(a, b).shape == (2, 3)
    assert entropy(pt).shape == (2, 3)


def test_kl_mixed_dtypes_promote(device):
    p = torch.tensor([0.3, 0.7], dtype=torch.float32, device=device)
    q = torch.tensor([0.6, 0.4], dtype=torch.float64, device=device)
    assert kl_categorical(p, q).dtype == torch.float64
    assert cross_entropy(p, q).dtype == torch.float64


# --------------------------------------------------------------------------- entropy, cross-entropy


@pytest.mark.parametrize("dtype", FLOATS)
def test_entropy_equals_scipy(dtype, device):
    p, _ = random_pairs(4, 100, 9, zeros_in_p=3)
    got = entropy(torch.tensor(p, dtype=dtype, device=device))
    assert got.shape == (100,) and got.dtype == dtype and got.device.type == device
    pc = torch.tensor(p, dtype=dtype).double().numpy()
    np.testing.assert_allclose(got.cpu().numpy(), scipy.stats.entropy(pc, axis=-1), **tol(dtype))
    assert not got.isnan().any()


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("k", [1, 2, 5, 1000])
def test_entropy_bounds(dtype, k, device):
    uniform = torch.full((k,), 1 / k, dtype=dtype, device=device)
    np.testing.assert_allclose(entropy(uniform).item(), math.log(k), **tol(dtype))
    point = torch.zeros(k, dtype=dtype, device=device)
    point[k // 2] = 1.0
    assert entropy(point).item() == 0.0
    if k > 1:
        p, _ = random_pairs(k, 50, k, zeros_in_p=k // 3)
        h = entropy(torch.tensor(p, dtype=dtype, device=device))
        assert (h >= 0).all() and (h <= math.log(k) + 1e-5).all()


@pytest.mark.parametrize("dtype", FLOATS)
def test_cross_entropy_is_entropy_plus_kl(dtype, device):
    p, q = random_pairs(5, 300, 8, zeros_in_p=2)
    pt, qt = torch.tensor(p, dtype=dtype, device=device), torch.tensor(q, dtype=dtype, device=device)
    ce = cross_entropy(pt, qt)
    assert ce.shape == (300,) and ce.dtype == dtype
    torch.testing.assert_close(ce, entropy(pt) + kl_categorical(pt, qt), **tol(dtype))
    # Directly against the definition in numpy.
    pc, qc = pt.double().cpu().numpy(), qt.double().cpu().numpy()
    np.testing.assert_allclose(ce.cpu().numpy(), -(scipy.special.xlogy(pc, qc)).sum(-1), **tol(dtype))
    # The floor: H(P, Q) >= H(P), with equality at Q = P.
    assert (ce >= entropy(pt)).all()
    torch.testing.assert_close(cross_entropy(pt, pt), entropy(pt), **tol(dtype))


def test_cross_entropy_vs_torch_functional(device):
    """Against torch.nn.functional.cross_entropy with soft targets (mean over the batch)."""
    p, q = random_pairs(6, 40, 5)
    pt, qt = torch.tensor(p, device=device), torch.tensor(q, device=device)
    ref = torch.nn.functional.cross_entropy(qt.log(), pt, reduction="none")
    torch.testing.assert_close(cross_entropy(pt, qt), ref, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- Monte Carlo


def _gaussian_kl_terms(n: int, seed: int, device: str = "cpu"):
    """Draws from P = N(0.3, 1.2^2), the log-densities of P and Q = N(-0.5, 0.8^2) from
    torch.distributions, and the exact KL(P||Q) from torch.distributions.kl_divergence."""
    m1, s1, m2, s2 = (torch.tensor(v, dtype=torch.float64, device=device) for v in (0.3, 1.2, -0.5, 0.8))
    p = torch.distributions.Normal(m1, s1, validate_args=False)
    q = torch.distributions.Normal(m2, s2, validate_args=False)
    g = torch.Generator(device=device).manual_seed(seed)
    x = m1 + s1 * torch.randn(n, generator=g, dtype=torch.float64, device=device)
    exact = torch.distributions.kl_divergence(p, q).item()
    assert exact == pytest.approx(math.log(0.8 / 1.2) + (1.2**2 + 0.8**2) / (2 * 0.8**2) - 0.5, rel=1e-12)
    return x, p.log_prob, q.log_prob, exact


def test_kl_monte_carlo_gaussians_converges(device):
    x, log_p, log_q, exact = _gaussian_kl_terms(200_000, seed=0, device=device)
    est = kl_monte_carlo(x, log_p, log_q)
    assert est.shape == () and est.dtype == torch.float64 and est.device.type == device
    mc = monte_carlo_estimate(log_p(x) - log_q(x))
    assert mc.num_samples == 200_000
    assert mc.mean == pytest.approx(est.item(), rel=1e-12)
    assert abs(est.item() - exact) < 4 * mc.standard_error
    # Power: the same check rejects a value 10% off.
    assert abs(est.item() - 1.1 * exact) > 4 * mc.standard_error
    # The error shrinks like 1/sqrt(N): averaged over seeds, N = 2e5 is far better than N = 200.
    errors = {200: [], 200_000: []}
    for seed in range(1, 5):
        for n in errors:
            x, log_p, log_q, exact = _gaussian_kl_terms(n, seed=seed, device=device)
            errors[n].append(abs(kl_monte_carlo(x, log_p, log_q).item() - exact))
    assert np.mean(errors[200_000]) < np.mean(errors[200]) / 8  # sqrt(1000) ~ 32 expected


def test_kl_monte_carlo_categorical(device, gen):
    p = torch.tensor([0.1, 0.0, 0.4, 0.2, 0.3], dtype=torch.float64, device=device)
    q = torch.tensor([0.3, 0.2, 0.1, 0.1, 0.3], dtype=torch.float64, device=device)
    x = sample_categorical(p, 200_000, generator=gen(1))

    def log_p(v):
        return p.log()[v]

    def log_q(v):
        return q.log()[v]

    est = kl_monte_carlo(x, log_p, log_q)
    exact = kl_categorical(p, q).item()
    mc = monte_carlo_estimate(log_p(x) - log_q(x))
    assert abs(est.item() - exact) < 4 * mc.standard_error
    assert abs(mc.mean - exact * 1.05) > 4 * mc.standard_error
    expected = scipy.stats.entropy(p.cpu().numpy(), q.cpu().numpy())
    assert exact == pytest.approx(expected, rel=1e-12)
    # Batched samples (N, d) with per-sample log-densities.
    xd = torch.randn(1000, 3, generator=gen(2), dtype=torch.float64, device=device)
    std = torch.distributions.Normal(torch.zeros((), dtype=torch.float64, device=device), 1.0)
    wide = torch.distributions.Normal(torch.zeros((), dtype=torch.float64, device=device), 2.0)
    value = kl_monte_carlo(xd, lambda v: std.log_prob(v).sum(1), lambda v: wide.log_prob(v).sum(1))
    terms = std.log_prob(xd).sum(1) - wide.log_prob(xd).sum(1)
    assert value.item() == pytest.approx(terms.mean().item(), rel=1e-12)


def test_kl_monte_carlo_can_be_negative_for_small_n():
    """It is an unbiased average, not clamped: a single sample where q > p gives a negative value."""
    x = torch.tensor([0.0], dtype=torch.float64)
    narrow = torch.distributions.Normal(torch.tensor(0.0, dtype=torch.float64), 1.0)
    wide = torch.distributions.Normal(torch.tensor(0.0, dtype=torch.float64), 0.5)
    value = kl_monte_carlo(x, narrow.log_prob, wide.log_prob).item()
    assert value == pytest.approx(-math.log(2.0), rel=1e-12)


@pytest.mark.parametrize("dtype", FLOATS)
def test_monte_carlo_estimate_equals_numpy(dtype, device):
    v = np.random.default_rng(7).exponential(size=1001)
    est = monte_carlo_estimate(torch.tensor(v, dtype=dtype, device=device))
    assert isinstance(est, MonteCarloEstimate)
    assert isinstance(est.mean, float) and isinstance(est.standard_error, float)
    assert est.num_samples == 1001
    t = 1e-5 if dtype == torch.float32 else 1e-12
    assert est.mean == pytest.approx(v.mean(), rel=t)
    assert est.standard_error == pytest.approx(v.std(ddof=1) / math.sqrt(v.size), rel=t)
    assert est.standard_error == pytest.approx(scipy.stats.sem(v), rel=t)
    one = monte_carlo_estimate(torch.tensor([2.5], dtype=dtype, device=device))
    assert one.mean == 2.5 and math.isnan(one.standard_error) and one.num_samples == 1


@pytest.mark.parametrize("dtype", FLOATS)
def test_running_mean_equals_numpy(dtype, device):
    v = np.random.default_rng(8).normal(1.0, 2.0, size=2000)
    got = running_mean(torch.tensor(v, dtype=dtype, device=device))
    assert got.shape == (2000,) and got.dtype == dtype and got.device.type == device
    t = {"rtol": 1e-4, "atol": 1e-5} if dtype == torch.float32 else {"rtol": 1e-10, "atol": 1e-12}
    np.testing.assert_allclose(got.cpu().numpy(), np.cumsum(v) / np.arange(1, 2001), **t)
    assert got[0].item() == pytest.approx(v[0], rel=1e-6)
