"""genlib.estimators against closed forms computed in numpy, scikit-learn, SciPy and
torch.distributions, and the defining property of an MLE: it maximises the likelihood (perturbing
it lowers the log-likelihood, and autograd finds a zero gradient there)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import sklearn.covariance
import torch

from genlib.estimators import (
    bernoulli_log_likelihood,
    bernoulli_mle,
    categorical_log_likelihood,
    categorical_mle,
    categorical_mle_soft,
    gaussian_log_likelihood,
    gaussian_mle,
)

FLOATS = [torch.float32, torch.float64]


def tol(dtype: torch.dtype) -> dict[str, float]:
    return {"rtol": 2e-5, "atol": 2e-6} if dtype == torch.float32 else {"rtol": 1e-10, "atol": 1e-12}


def gaussian_data(seed: int, n: int = 300, d: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(d, d))
    return rng.normal(size=(n, d)) @ a.T + rng.normal(size=d) * 3


# --------------------------------------------------------------------------- Bernoulli


@pytest.mark.parametrize("dtype", [torch.bool, torch.long, torch.float32, torch.float64])
def test_bernoulli_mle_is_the_mean(dtype, device):
    rng = np.random.default_rng(0)
    x = (rng.random((200, 4)) < [0.1, 0.5, 0.9, 0.0]).astype(np.int64)
    xt = torch.tensor(x, device=device).to(dtype)
    theta = bernoulli_mle(xt)
    expected_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    assert theta.shape == (4,) and theta.dtype == expected_dtype and theta.device == xt.device
    np.testing.assert_allclose(theta.cpu().numpy(), x.mean(axis=0), rtol=1e-6)
    # 1-D input: a scalar.
    theta1 = bernoulli_mle(xt[:, 1])
    assert theta1.shape == ()
    np.testing.assert_allclose(theta1.item(), x[:, 1].mean(), rtol=1e-6)


def test_bernoulli_mle_weighted(device):
    rng = np.random.default_rng(1)
    x = (rng.random((150, 3)) < 0.3).astype(np.float64)
    w = rng.exponential(size=150)
    got = bernoulli_mle(torch.tensor(x, device=device), weights=torch.tensor(w, device=device))
    assert got.dtype == torch.float64
    np.testing.assert_allclose(got.cpu().numpy(), np.average(x, axis=0, weights=w), rtol=1e-12)
    # float64 weights make the estimate float64 even for integer data.
    got_int = bernoulli_mle(torch.tensor(x, device=device).long(), weights=torch.tensor(w, device=device))
    assert got_int.dtype == torch.float64
    # Integer weights equal repeating the samples.
    counts = rng.integers(0, 4, size=150)
    weighted = bernoulli_mle(
        torch.tensor(x, device=device), weights=torch.tensor(counts, dtype=torch.float64, device=device)
    )
    repeated = bernoulli_mle(torch.tensor(np.repeat(x, counts, axis=0), device=device))
    torch.testing.assert_close(weighted, repeated, rtol=1e-12, atol=1e-12)


def test_bernoulli_mle_maximises_the_likelihood(device):
    rng = np.random.default_rng(2)
    x = torch.tensor((rng.random((500, 3)) < [0.2, 0.6, 0.7]).astype(np.float64), device=device)
    theta = bernoulli_mle(x)
    best = bernoulli_log_likelihood(x, theta).mean()
    for delta in (1e-3, -1e-3, 0.05, -0.05):
        for j in range(3):
            moved = theta.clone()
            moved[j] += delta
            assert bernoulli_log_likelihood(x, moved).mean() < best
    # Autograd: the gradient of the average log-likelihood vanishes at the MLE.
    t = theta.clone().requires_grad_(True)
    bernoulli_log_likelihood(x, t).mean().backward()
    torch.testing.assert_close(t.grad, torch.zeros_like(t), atol=1e-10, rtol=0)
    # ... and not elsewhere (so the check has teeth).
    t2 = (theta + 0.05).requires_grad_(True)
    bernoulli_log_likelihood(x, t2).mean().backward()
    assert (t2.grad.abs() > 0.1).all()


@pytest.mark.parametrize("dtype", FLOATS)
def test_bernoulli_log_likelihood_vs_scipy_and_torch(dtype, device):
    rng = np.random.default_rng(3)
    theta = np.array([0.1, 0.5, 0.93, 0.3])
    x = (rng.random((50, 4)) < theta).astype(np.int64)
    got = bernoulli_log_likelihood(
        torch.tensor(x, device=device), torch.tensor(theta, dtype=dtype, device=device)
    )
    assert got.shape == (50,) and got.dtype == dtype and got.device.type == device
    expected = scipy.stats.bernoulli.logpmf(x, theta).sum(axis=1)
    np.testing.assert_allclose(got.cpu().numpy(), expected, **tol(dtype))
    dist = torch.distributions.Bernoulli(probs=torch.tensor(theta, dtype=torch.float64))
    np.testing.assert_allclose(
        got.cpu().numpy(), dist.log_prob(torch.tensor(x).double()).sum(1).numpy(), **tol(dtype)
    )
    # 1-D data with a scalar theta.
    got1 = bernoulli_log_likelihood(
        torch.tensor(x[:, 0], device=device), torch.tensor(0.1, dtype=dtype, device=device)
    )
    np.testing.assert_allclose(got1.cpu().numpy(), scipy.stats.bernoulli.logpmf(x[:, 0], 0.1), **tol(dtype))


def test_bernoulli_log_likelihood_at_the_boundary(device):
    x = np.array([[0, 1], [1, 1], [0, 0], [1, 0]])
    theta = np.array([0.0, 0.5])
    got = bernoulli_log_likelihood(
        torch.tensor(x, device=device), torch.tensor(theta, dtype=torch.float64, device=device)
    ).cpu()
    # 0 log 0 = 0: only an observed one with probability zero gives -inf (not NaN).
    np.testing.assert_allclose(got.numpy(), [np.log(0.5), -np.inf, np.log(0.5), -np.inf])
    np.testing.assert_array_equal(got.numpy(), scipy.stats.bernoulli.logpmf(x, theta).sum(1))
    one = bernoulli_log_likelihood(torch.tensor([1, 1, 0], device=device), torch.tensor(1.0, device=device))
    assert one.cpu().tolist() == [0.0, 0.0, -np.inf]


# --------------------------------------------------------------------------- categorical


@pytest.mark.parametrize("dtype", FLOATS)
def test_categorical_mle_is_counts_over_n(dtype, device):
    rng = np.random.default_rng(4)
    k = 6
    x = rng.choice(k, size=300, p=[0.1, 0.2, 0.0, 0.3, 0.4, 0.0])
    got = categorical_mle(torch.tensor(x, device=device), k, dtype=dtype)
    assert got.shape == (k,) and got.dtype == dtype and got.device.type == device
    np.testing.assert_allclose(got.cpu().numpy(), np.bincount(x, minlength=k) / x.size, **tol(dtype))
    w = rng.exponential(size=300)
    got_w = categorical_mle(
        torch.tensor(x, device=device), k, weights=torch.tensor(w, dtype=dtype, device=device)
    )
    np.testing.assert_allclose(
        got_w.cpu().numpy(), np.bincount(x, weights=w, minlength=k) / w.sum(), **tol(dtype)
    )
    # Integer weights equal repeating the data.
    counts = rng.integers(0, 5, size=300)
    weighted = categorical_mle(
        torch.tensor(x, device=device), k, weights=torch.tensor(counts, dtype=torch.float64, device=device)
    )
    repeated = categorical_mle(torch.tensor(np.repeat(x, counts), device=device), k, dtype=torch.float64)
    torch.testing.assert_close(weighted, repeated, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", FLOATS)
def test_categorical_mle_soft(dtype, device):
    rng = np.random.default_rng(5)
    q = rng.random((40, 5))
    q[:, 2] = 0.0
    q[3] = 0.0  # a sample with no weight at all
    got = categorical_mle_soft(torch.tensor(q, dtype=dtype, device=device))
    assert got.shape == (5,) and got.dtype == dtype and got.device.type == device
    np.testing.assert_allclose(got.cpu().numpy(), q.sum(axis=0) / q.sum(), **tol(dtype))
    # One-hot responsibilities give the hard-count estimate.
    x = rng.integers(0, 5, size=60)
    onehot = torch.nn.functional.one_hot(torch.tensor(x, device=device), 5).to(dtype)
    torch.testing.assert_close(
        categorical_mle_soft(onehot), categorical_mle(torch.tensor(x, device=device), 5, dtype=dtype)
    )
    # Scaling every responsibility by a constant changes nothing.
    qt = torch.tensor(q, dtype=dtype, device=device)
    torch.testing.assert_close(categorical_mle_soft(3.5 * qt), categorical_mle_soft(qt))


def test_categorical_mle_maximises_the_likelihood(device):
    rng = np.random.default_rng(6)
    k = 5
    x = torch.tensor(rng.choice(k, size=400, p=[0.1, 0.2, 0.3, 0.15, 0.25]), device=device)
    pi = categorical_mle(x, k, dtype=torch.float64)
    best = categorical_log_likelihood(x, pi).mean()
    for seed in range(20):
        other = torch.tensor(rng.dirichlet(np.ones(k)), device=device)
        for eps in (1e-3, 0.1, 1.0):
            moved = (1 - eps) * pi + eps * other
            assert categorical_log_likelihood(x, moved).mean() < best, (seed, eps)
    # Autograd, parametrising the simplex by logits: the gradient vanishes at log(pi_hat).
    logits = pi.log().clone().requires_grad_(True)
    categorical_log_likelihood(x, torch.softmax(logits, 0)).mean().backward()
    torch.testing.assert_close(logits.grad, torch.zeros_like(logits), atol=1e-12, rtol=0)


@pytest.mark.parametrize("dtype", FLOATS)
def test_categorical_log_likelihood_vs_torch_distributions(dtype, device):
    rng = np.random.default_rng(7)
    p = np.array([0.2, 0.0, 0.5, 0.3])
    x = rng.integers(0, 4, size=100)
    got = categorical_log_likelihood(
        torch.tensor(x, device=device), torch.tensor(p, dtype=dtype, device=device)
    )
    assert got.shape == (100,) and got.dtype == dtype
    expected = scipy.stats.multinomial.logpmf(np.eye(4)[x], 1, p)
    np.testing.assert_allclose(got.cpu().numpy(), expected, **tol(dtype))
    support = x != 1
    dist = torch.distributions.Categorical(probs=torch.tensor(p))
    np.testing.assert_allclose(
        got.cpu().numpy()[support], dist.log_prob(torch.tensor(x[support])).numpy(), **tol(dtype)
    )
    assert (got.cpu().numpy()[~support] == -np.inf).all()


# --------------------------------------------------------------------------- Gaussian


@pytest.mark.parametrize("dtype", FLOATS)
def test_gaussian_mle_full_diag_spherical(dtype, device):
    x = gaussian_data(8)
    xt = torch.tensor(x, dtype=dtype, device=device)
    mean, cov = gaussian_mle(xt)
    assert mean.shape == (3,) and cov.shape == (3, 3)
    assert mean.dtype == cov.dtype == dtype and mean.device == cov.device == xt.device
    np.testing.assert_allclose(mean.cpu().numpy(), x.mean(axis=0), **tol(dtype))
    np.testing.assert_allclose(cov.cpu().numpy(), np.cov(x, rowvar=False, bias=True), **tol(dtype))
    np.testing.assert_allclose(cov.cpu().numpy(), sklearn.covariance.empirical_covariance(x), **tol(dtype))
    assert torch.equal(cov, cov.T)
    _, var = gaussian_mle(xt, covariance_type="diag")
    assert var.shape == (3,)
    np.testing.assert_allclose(var.cpu().numpy(), x.var(axis=0), **tol(dtype))
    m_s, s2 = gaussian_mle(xt, covariance_type="spherical")
    assert s2.shape == ()
    np.testing.assert_allclose(m_s.cpu().numpy(), x.mean(axis=0), **tol(dtype))
    np.testing.assert_allclose(s2.item(), ((x - x.mean(0)) ** 2).mean(), **tol(dtype))


@pytest.mark.parametrize("dtype", FLOATS)
def test_gaussian_mle_weighted(dtype, device):
    x = gaussian_data(9, n=120)
    rng = np.random.default_rng(9)
    w = rng.exponential(size=120)
    w[::7] = 0.0
    xt, wt = torch.tensor(x, dtype=dtype, device=device), torch.tensor(w, dtype=dtype, device=device)
    mean, cov = gaussian_mle(xt, weights=wt)
    np.testing.assert_allclose(mean.cpu().numpy(), np.average(x, axis=0, weights=w), **tol(dtype))
    np.testing.assert_allclose(
        cov.cpu().numpy(), np.cov(x, rowvar=False, aweights=w, bias=True), **tol(dtype)
    )
    _, var = gaussian_mle(xt, weights=wt, covariance_type="diag")
    np.testing.assert_allclose(
        var.cpu().numpy(), np.diag(np.cov(x, rowvar=False, aweights=w, bias=True)), **tol(dtype)
    )
    _, s2 = gaussian_mle(xt, weights=wt, covariance_type="spherical")
    np.testing.assert_allclose(
        s2.item(), np.trace(np.cov(x, rowvar=False, aweights=w, bias=True)) / 3, **tol(dtype)
    )
    # Integer weights equal repeating the samples.
    counts = rng.integers(0, 4, size=120)
    mw, cw = gaussian_mle(xt, weights=torch.tensor(counts, dtype=dtype, device=device))
    mr, cr = gaussian_mle(torch.tensor(np.repeat(x, counts, axis=0), dtype=dtype, device=device))
    torch.testing.assert_close(mw, mr, **tol(dtype))
    torch.testing.assert_close(cw, cr, **tol(dtype))
    # Scaling the weights changes nothing.
    m2, c2 = gaussian_mle(xt, weights=10 * wt)
    torch.testing.assert_close(m2, mean, **tol(dtype))
    torch.testing.assert_close(c2, cov, **tol(dtype))


@pytest.mark.parametrize("dtype", FLOATS)
def test_gaussian_mle_one_dimensional(dtype, device):
    rng = np.random.default_rng(10)
    x = rng.normal(2.0, 3.0, size=500)
    mean, var = gaussian_mle(torch.tensor(x, dtype=dtype, device=device))
    assert mean.shape == () and var.shape == () and mean.dtype == dtype
    np.testing.assert_allclose([mean.item(), var.item()], [x.mean(), x.var()], **tol(dtype))
    w = rng.random(500)
    mean_w, var_w = gaussian_mle(
        torch.tensor(x, dtype=dtype, device=device), weights=torch.tensor(w, dtype=dtype, device=device)
    )
    m = np.average(x, weights=w)
    np.testing.assert_allclose(
        [mean_w.item(), var_w.item()], [m, np.average((x - m) ** 2, weights=w)], **tol(dtype)
    )
    # One sample: zero variance.
    m1, v1 = gaussian_mle(torch.tensor([4.0], dtype=dtype, device=device))
    assert m1.item() == 4.0 and v1.item() == 0.0


def test_gaussian_mle_maximises_the_likelihood(device):
    x = torch.tensor(gaussian_data(11, n=400), device=device)
    mean, cov = gaussian_mle(x)
    best = gaussian_log_likelihood(x, mean, cov).mean()
    rng = np.random.default_rng(11)
    for _ in range(10):
        direction = torch.tensor(rng.normal(size=3), device=device)
        a = torch.tensor(rng.normal(size=(3, 3)), device=device)
        for eps in (1e-3, 0.1):
            assert gaussian_log_likelihood(x, mean + eps * direction, cov).mean() < best
            assert gaussian_log_likelihood(x, mean, cov + eps * a @ a.T).mean() < best
            assert gaussian_log_likelihood(x, mean, cov * (1 - eps)).mean() < best
            assert gaussian_log_likelihood(x, mean, cov * (1 + eps)).mean() < best
    # The diagonal / spherical estimates maximise within their families.
    _, var = gaussian_mle(x, covariance_type="diag")
    best_diag = gaussian_log_likelihood(x, mean, torch.diag(var)).mean()
    for j in range(3):
        for eps in (-0.05, 0.05):
            moved = var.clone()
            moved[j] *= 1 + eps
            assert gaussian_log_likelihood(x, mean, torch.diag(moved)).mean() < best_diag
    _, s2 = gaussian_mle(x, covariance_type="spherical")
    eye = torch.eye(3, dtype=x.dtype, device=device)
    best_sph = gaussian_log_likelihood(x, mean, s2 * eye).mean()
    for eps in (-0.05, 0.05):
        assert gaussian_log_likelihood(x, mean, s2 * (1 + eps) * eye).mean() < best_sph


def test_gaussian_mle_gradient_vanishes_at_the_optimum(device):
    x = torch.tensor(gaussian_data(12, n=300), device=device)
    mean, cov = gaussian_mle(x)
    m = mean.clone().requires_grad_(True)
    c = cov.clone().requires_grad_(True)
    gaussian_log_likelihood(x, m, c).mean().backward()
    torch.testing.assert_close(m.grad, torch.zeros_like(m), atol=1e-10, rtol=0)
    torch.testing.assert_close(c.grad, torch.zeros_like(c), atol=1e-10, rtol=0)
    # Away from the MLE the mean gradient is Sigma^{-1} (x_bar - m), computed independently.
    shift = torch.tensor([0.5, -0.2, 0.1], dtype=x.dtype, device=device)
    m2 = (mean + shift).requires_grad_(True)
    gaussian_log_likelihood(x, m2, cov).mean().backward()
    torch.testing.assert_close(m2.grad, torch.linalg.solve(cov, -shift), rtol=1e-8, atol=1e-10)
    # Weighted: the gradient of the weighted average log-likelihood vanishes at the weighted MLE.
    w = torch.rand(300, generator=torch.Generator().manual_seed(0), dtype=x.dtype).to(device)
    mean_w, cov_w = gaussian_mle(x, weights=w)
    m3 = mean_w.clone().requires_grad_(True)
    (w * gaussian_log_likelihood(x, m3, cov_w)).sum().backward()
    torch.testing.assert_close(m3.grad, torch.zeros_like(m3), atol=1e-9, rtol=0)


@pytest.mark.parametrize("dtype", FLOATS)
def test_gaussian_log_likelihood_vs_scipy_and_torch(dtype, device):
    rng = np.random.default_rng(13)
    a = rng.normal(size=(4, 4))
    cov = a @ a.T + 0.5 * np.eye(4)
    mean = rng.normal(size=4)
    x = rng.multivariate_normal(mean, cov, size=64)
    got = gaussian_log_likelihood(
        torch.tensor(x, dtype=dtype, device=device),
        torch.tensor(mean, dtype=dtype, device=device),
        torch.tensor(cov, dtype=dtype, device=device),
    )
    assert got.shape == (64,) and got.dtype == dtype and got.device.type == device
    t = {"rtol": 1e-4, "atol": 1e-4} if dtype == torch.float32 else {"rtol": 1e-10, "atol": 1e-10}
    np.testing.assert_allclose(got.cpu().numpy(), scipy.stats.multivariate_normal(mean, cov).logpdf(x), **t)
    mvn = torch.distributions.MultivariateNormal(torch.tensor(mean), covariance_matrix=torch.tensor(cov))
    np.testing.assert_allclose(got.cpu().numpy(), mvn.log_prob(torch.tensor(x)).numpy(), **t)
    # One-dimensional data with scalar mean and variance.
    x1 = rng.normal(1.0, 2.0, size=50)
    got1 = gaussian_log_likelihood(
        torch.tensor(x1, dtype=dtype, device=device),
        torch.tensor(1.0, dtype=dtype, device=device),
        torch.tensor(4.0, dtype=dtype, device=device),
    )
    assert got1.shape == (50,)
    np.testing.assert_allclose(got1.cpu().numpy(), scipy.stats.norm(1.0, 2.0).logpdf(x1), **t)
    normal = torch.distributions.Normal(torch.tensor(1.0, dtype=torch.float64), 2.0)
    np.testing.assert_allclose(got1.cpu().numpy(), normal.log_prob(torch.tensor(x1)).numpy(), **t)
    # (N, 1) data agree with the 1-D path.
    got2 = gaussian_log_likelihood(
        torch.tensor(x1[:, None], dtype=dtype, device=device),
        torch.tensor([1.0], dtype=dtype, device=device),
        torch.tensor([[4.0]], dtype=dtype, device=device),
    )
    torch.testing.assert_close(got2, got1)
