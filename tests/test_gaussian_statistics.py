"""genlib.gaussian_statistics (the E-step and M-step as two matrix products) against independent
references: features built by explicit loops, scipy.stats.multivariate_normal log-densities,
numpy weighted means and np.cov(aweights=..., bias=True), scipy.special.logsumexp, and the direct
ELBO formula of genlib.em.elbo. Small block sizes force many blocks with ragged ends."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.special
import scipy.stats
import torch

import genlib.gaussian_statistics as gs
from genlib.device import make_generator
from genlib.em import e_step, elbo, em_step, fit_gmm
from genlib.mixtures import GaussianMixture, gaussian_component_log_densities, gaussian_mixture_mle

COVARIANCE_TYPES = ["full", "diag", "spherical"]


def random_mixture(k: int, d: int, ct: str, seed: int, dtype=torch.float64, offset: float = 0.0):
    g = make_generator(seed)
    weights = torch.rand(k, generator=g, dtype=torch.float64) + 0.2
    weights = weights / weights.sum()
    means = offset + 3 * torch.randn(k, d, generator=g, dtype=torch.float64)
    if ct == "full":
        a = torch.randn(k, d, d, generator=g, dtype=torch.float64)
        cov = a @ a.mT / d + 0.3 * torch.eye(d, dtype=torch.float64)
    elif ct == "diag":
        cov = torch.rand(k, d, generator=g, dtype=torch.float64) + 0.3
    else:
        cov = torch.rand(k, generator=g, dtype=torch.float64) + 0.3
    return GaussianMixture(weights.to(dtype), means.to(dtype), cov.to(dtype), ct)


def full_covariances_np(mixture: GaussianMixture) -> np.ndarray:
    return mixture.full_covariances().double().numpy()


def scipy_log_joint(x: torch.Tensor, mixture: GaussianMixture) -> np.ndarray:
    """log pi_k + log N(x | mu_k, Sigma_k) by scipy, float64, shape (N, K)."""
    covs = full_covariances_np(mixture)
    cols = [
        math.log(mixture.weights[k].item())
        + scipy.stats.multivariate_normal(mixture.means[k].double().numpy(), covs[k]).logpdf(
            x.double().numpy()
        )
        for k in range(mixture.num_components)
    ]
    return np.stack([np.atleast_1d(c) for c in cols], axis=1)


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of 256 samples (the smallest), so that every pass has many blocks and a ragged end."""
    monkeypatch.setattr(gs, "_BLOCK_ELEMENTS", 1)


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_features_are_the_sufficient_statistics(ct: str) -> None:
    x = torch.randn(7, 4, generator=make_generator(0), dtype=torch.float64)
    centre = torch.tensor([0.5, -1.0, 2.0, 0.0], dtype=torch.float64)
    f = gs.sufficient_statistics(x, ct, centre)
    assert f.shape == (gs.num_features(4, ct), 7)
    xc = (x - centre).numpy()
    expected = [xc[:, a] for a in range(4)]
    if ct == "full":
        expected += [xc[:, a] * xc[:, b] for a in range(4) for b in range(a, 4)]
    elif ct == "diag":
        expected += [xc[:, a] ** 2 for a in range(4)]
    else:
        expected += [(xc**2).sum(axis=1)]
    np.testing.assert_allclose(f.numpy(), np.stack(expected), rtol=1e-14)


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
@pytest.mark.parametrize("centre_shift", [0.0, 5.0])
def test_natural_parameters_give_scipy_log_joint(ct: str, centre_shift: float) -> None:
    mixture = random_mixture(5, 3, ct, seed=1)
    x = torch.randn(40, 3, generator=make_generator(2), dtype=torch.float64) * 3
    centre = torch.full((3,), centre_shift, dtype=torch.float64)
    theta, bias = gs.natural_parameters(mixture.weights, mixture.means, mixture.covariances, ct, centre)
    got = gs.log_joint(x, theta, bias, ct, centre)
    np.testing.assert_allclose(got.numpy(), scipy_log_joint(x, mixture), rtol=1e-11, atol=1e-11)


def test_zero_weight_gives_minus_infinity_and_no_contribution() -> None:
    mixture = random_mixture(3, 2, "diag", seed=3)
    weights = torch.tensor([0.5, 0.0, 0.5], dtype=torch.float64)
    theta, bias = gs.natural_parameters(weights, mixture.means, mixture.covariances, "diag", torch.zeros(2))
    assert bias[1] == -math.inf and torch.isfinite(bias[[0, 2]]).all()
    x = torch.randn(30, 2, generator=make_generator(4), dtype=torch.float64)
    ll, stats = gs.em_pass(x, theta, bias, "diag", torch.zeros(2, dtype=torch.float64))
    assert stats.counts[1] == 0 and torch.isfinite(ll)
    assert torch.isfinite(gs.expected_complete_log_likelihood(stats, theta, bias))


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_em_pass_is_the_e_step_and_the_weighted_sums(ct: str, small_blocks: None) -> None:
    mixture = random_mixture(4, 3, ct, seed=5)
    x = torch.randn(1001, 3, generator=make_generator(6), dtype=torch.float64) * 3  # 4 blocks, ragged
    centre = x.mean(dim=0)
    theta, bias = gs.natural_parameters(mixture.weights, mixture.means, mixture.covariances, ct, centre)
    ll, stats = gs.em_pass(x, theta, bias, ct, centre)
    log_joint = scipy_log_joint(x, mixture)
    log_marginal = scipy.special.logsumexp(log_joint, axis=1)
    np.testing.assert_allclose(ll.item(), log_marginal.sum(), rtol=1e-12)
    q = np.exp(log_joint - log_marginal[:, None])  # (N, K), by scipy
    np.testing.assert_allclose(stats.counts.numpy(), q.sum(axis=0), rtol=1e-11)
    features = gs.sufficient_statistics(x, ct, centre).numpy()  # (p, N)
    np.testing.assert_allclose(stats.sums.numpy(), q.T @ features.T, rtol=1e-10, atol=1e-10)
    # precomputed features give the same pass
    ll2, stats2 = gs.em_pass(
        x, theta, bias, ct, centre, gs.sufficient_statistics(x, ct, centre, with_ones=True)
    )
    torch.testing.assert_close(ll2, ll, rtol=1e-13, atol=0)
    torch.testing.assert_close(stats2.sums, stats.sums, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_m_step_matches_numpy_weighted_estimates(ct: str, small_blocks: None) -> None:
    g = make_generator(7)
    x = 2 + torch.randn(700, 3, generator=g, dtype=torch.float64) * torch.tensor([1.0, 2.0, 0.5])
    q = torch.rand(700, 3, generator=g, dtype=torch.float64)
    fitted = gaussian_mixture_mle(x, q, covariance_type=ct, reg_covar=1e-3)
    xn, qn = x.numpy(), q.numpy()
    np.testing.assert_allclose(fitted.weights.numpy(), qn.sum(0) / qn.sum(), rtol=1e-12)
    for k in range(3):
        mean = np.average(xn, axis=0, weights=qn[:, k])
        cov = np.cov(xn.T, aweights=qn[:, k], bias=True) + 1e-3 * np.eye(3)
        expected = {"full": cov, "diag": np.diag(cov), "spherical": np.trace(cov) / 3}[ct]
        np.testing.assert_allclose(fitted.means[k].numpy(), mean, rtol=1e-12)
        np.testing.assert_allclose(fitted.covariances[k].numpy(), expected, rtol=1e-10)


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_expected_complete_log_likelihood_is_the_weighted_sum(ct: str) -> None:
    mixture = random_mixture(3, 2, ct, seed=8)
    x = torch.randn(200, 2, generator=make_generator(9), dtype=torch.float64) * 2
    q = torch.rand(200, 3, generator=make_generator(10), dtype=torch.float64)
    centre = torch.tensor([0.3, -0.2], dtype=torch.float64)
    stats = gs.statistics_from_responsibilities(x, q, ct, centre)
    theta, bias = gs.natural_parameters(mixture.weights, mixture.means, mixture.covariances, ct, centre)
    expected = (q.numpy() * scipy_log_joint(x, mixture)).sum()
    np.testing.assert_allclose(
        gs.expected_complete_log_likelihood(stats, theta, bias).item(), expected, rtol=1e-11
    )


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_elbo_from_statistics_equals_the_direct_elbo(ct: str) -> None:
    """em_step's ELBO(Q_t, theta_{t+1}) (from N_k, S_k only) against genlib.em.elbo over all (i, k)."""
    mixture = random_mixture(3, 2, ct, seed=11)
    x = torch.randn(300, 2, generator=make_generator(12), dtype=torch.float64) * 3
    log_q, ll = e_step(x, mixture)
    new, ll_step, bound = em_step(x, mixture, reg_covar=1e-4)
    torch.testing.assert_close(ll_step, ll, rtol=1e-12, atol=0)
    torch.testing.assert_close(bound, elbo(x, new, log_q), rtol=1e-11, atol=1e-9)
    # and the recorded ELBOs of a fit obey l_t <= ELBO_t <= l_{t+1}
    result = fit_gmm(x, 3, covariance_type=ct, init_mixture=mixture, reg_covar=0.0, max_iter=10, tol=0.0)
    lls, elbos = result.log_likelihoods, result.elbos
    assert (elbos >= lls[:-1] - 1e-8).all() and (elbos <= lls[1:] + 1e-8).all()


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_float32_far_from_the_origin_stays_accurate(ct: str) -> None:
    """Data 1,000 units from the origin: centring keeps float32 log-densities and fits close to float64."""
    mixture = random_mixture(3, 2, ct, seed=13, offset=1000.0)
    x = 1000 + 3 * torch.randn(2000, 2, generator=make_generator(14), dtype=torch.float64)
    expected = scipy_log_joint(x, mixture) - np.log(mixture.weights.numpy())
    mixture32 = GaussianMixture(
        mixture.weights.float(), mixture.means.float(), mixture.covariances.float(), ct
    )
    got = gaussian_component_log_densities(x.float(), mixture32).double().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-3)
    q = torch.rand(2000, 3, generator=make_generator(15), dtype=torch.float64)
    fit64 = gaussian_mixture_mle(x, q, covariance_type=ct)
    fit32 = gaussian_mixture_mle(x.float(), q.float(), covariance_type=ct)
    np.testing.assert_allclose(fit32.means.double().numpy(), fit64.means.numpy(), rtol=1e-6)
    np.testing.assert_allclose(
        fit32.covariances.double().numpy(), fit64.covariances.numpy(), rtol=2e-3, atol=2e-3
    )


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_on_the_device(ct: str, device: str) -> None:
    mixture = random_mixture(3, 2, ct, seed=16)
    moved = GaussianMixture(
        mixture.weights.to(device), mixture.means.to(device), mixture.covariances.to(device), ct
    )
    x = torch.randn(500, 2, generator=make_generator(17), dtype=torch.float64) * 2
    got = gaussian_component_log_densities(x.to(device), moved)
    assert got.device.type == device
    expected = scipy_log_joint(x, mixture) - np.log(mixture.weights.numpy())
    np.testing.assert_allclose(got.cpu().numpy(), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_gradients_flow_like_the_direct_formula(ct: str) -> None:
    """With autograd on (an energy for Langevin dynamics), d log-density / dx and d / d means equal
    autograd through torch.distributions.MultivariateNormal."""
    mixture = random_mixture(3, 2, ct, seed=18)
    means = mixture.means.clone().requires_grad_(True)
    x = torch.randn(50, 2, generator=make_generator(19), dtype=torch.float64).requires_grad_(True)
    ours = gaussian_component_log_densities(
        x, GaussianMixture(mixture.weights, means, mixture.covariances, ct)
    )
    grad_x, grad_means = torch.autograd.grad(ours.sum(), (x, means))
    covs = mixture.full_covariances()
    x2 = x.detach().clone().requires_grad_(True)
    means2 = mixture.means.clone().requires_grad_(True)
    direct = torch.stack(
        [torch.distributions.MultivariateNormal(means2[k], covs[k]).log_prob(x2) for k in range(3)], dim=1
    )
    grad_x2, grad_means2 = torch.autograd.grad(direct.sum(), (x2, means2))
    torch.testing.assert_close(ours.detach(), direct.detach(), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(grad_x, grad_x2, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(grad_means, grad_means2, rtol=1e-9, atol=1e-9)
