"""genlib.mixtures against independent references: naive sums of per-component densities from
torch.distributions and SciPy, Bayes' rule computed by hand, chi-square and moment tests of both
sampling schemes (with power checks), closed forms of the weighted ML estimates and their
equality with repeated rows, and the error messages of the parameter container."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch

from genlib.data.known_densities import bimodal_1d, ring_2d, three_clusters_2d, two_clusters_nd
from genlib.device import make_generator
from genlib.estimators import gaussian_mle
from genlib.mixtures import (
    GaussianMixture,
    batch_log_likelihood_per_sample_z,
    batch_log_likelihood_shared_z,
    gaussian_component_log_densities,
    gaussian_mixture_mle,
    gmm_log_density,
    gmm_log_joint,
    gmm_log_responsibilities,
    gmm_responsibilities,
    log_responsibilities_from_joint,
    sample_gmm,
    sample_gmm_shared_z,
)
from genlib.testing import chi_square_test

COVARIANCE_TYPES = ["full", "diag", "spherical"]


def random_mixture(
    seed: int, covariance_type: str, k: int = 3, d: int = 2, dtype=torch.float64, device="cpu"
) -> GaussianMixture:
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.ones(k))
    means = rng.normal(size=(k, d)) * 3
    if covariance_type == "full":
        a = rng.normal(size=(k, d, d))
        cov = a @ a.transpose(0, 2, 1) + 0.3 * np.eye(d)
    elif covariance_type == "diag":
        cov = rng.uniform(0.2, 2.0, size=(k, d))
    else:
        cov = rng.uniform(0.2, 2.0, size=k)
    t = lambda a: torch.tensor(a, dtype=dtype, device=device)  # noqa: E731
    return GaussianMixture(t(weights), t(means), t(cov), covariance_type)


def torch_components(mixture: GaussianMixture) -> torch.distributions.MultivariateNormal:
    return torch.distributions.MultivariateNormal(mixture.means, covariance_matrix=mixture.full_covariances())


# --------------------------------------------------------------------------- densities


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("d", [1, 2, 4])
def test_log_density_equals_a_naive_sum_of_components(covariance_type, d, device):
    mixture = random_mixture(d, covariance_type, k=4, d=d, device=device)
    x = torch.randn(200, d, generator=make_generator(0, device), dtype=torch.float64, device=device) * 3
    components = torch_components(mixture)
    per_component = components.log_prob(x[:, None, :])  # (N, K)
    torch.testing.assert_close(
        gaussian_component_log_densities(x, mixture), per_component, rtol=1e-10, atol=1e-10
    )
    naive = (mixture.weights * per_component.exp()).sum(dim=1).log()
    got = gmm_log_density(x, mixture)
    assert got.shape == (200,) and got.dtype == torch.float64 and got.device == x.device
    torch.testing.assert_close(got, naive, rtol=1e-10, atol=1e-10)
    # SciPy, one component at a time.
    scipy_sum = sum(
        w * scipy.stats.multivariate_normal(m, c).pdf(x.cpu().numpy())
        for w, m, c in zip(
            mixture.weights.tolist(),
            mixture.means.cpu().numpy(),
            mixture.full_covariances().cpu().numpy(),
            strict=True,
        )
    )
    np.testing.assert_allclose(got.cpu().numpy(), np.log(scipy_sum).reshape(-1), rtol=1e-10)


def test_log_density_equals_torch_mixture_same_family_in_float32(device):
    mixture = random_mixture(3, "full", k=5, d=3, dtype=torch.float32, device=device)
    x = torch.randn(100, 3, generator=make_generator(1, device), device=device) * 2
    reference = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(probs=mixture.weights), torch_components(mixture)
    )
    got = gmm_log_density(x, mixture)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, reference.log_prob(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_far_points_are_finite_and_belong_to_the_nearest_component(covariance_type, device):
    mixture = random_mixture(4, covariance_type, device=device)
    far = torch.tensor([[500.0, -300.0], [-2e3, 1e3]], dtype=torch.float64, device=device)
    naive = (mixture.weights * torch_components(mixture).log_prob(far[:, None, :]).exp()).sum(1).log()
    assert torch.isinf(naive).all()  # the naive sum underflows: the check below has teeth
    log_density = gmm_log_density(far, mixture)
    assert torch.isfinite(log_density).all()
    joint = gmm_log_joint(far, mixture)
    torch.testing.assert_close(log_density, joint.max(dim=1).values, rtol=1e-12, atol=0)
    resp = gmm_responsibilities(far, mixture)
    assert torch.isfinite(resp).all()
    assert torch.equal(resp.argmax(dim=1), joint.argmax(dim=1))


# --------------------------------------------------------------------------- responsibilities


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_responsibilities_are_bayes_rule_and_sum_to_one(covariance_type, device):
    mixture = random_mixture(5, covariance_type, k=4, d=3, device=device)
    x = torch.randn(300, 3, generator=make_generator(2, device), dtype=torch.float64, device=device) * 3
    resp = gmm_responsibilities(x, mixture)
    assert resp.shape == (300, 4)
    torch.testing.assert_close(resp.sum(dim=1), torch.ones(300, dtype=torch.float64, device=device))
    joint = mixture.weights * torch_components(mixture).log_prob(x[:, None, :]).exp()  # P(x, z)
    torch.testing.assert_close(resp, joint / joint.sum(dim=1, keepdim=True), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(gmm_log_responsibilities(x, mixture).exp(), resp)


def test_responsibilities_from_a_joint_matrix():
    log_joint = torch.tensor(
        [[0.0, -math.inf, math.log(3.0)], [-1000.0, -1001.0, -math.inf]], dtype=torch.float64
    )
    log_resp, log_marginal = log_responsibilities_from_joint(log_joint)
    torch.testing.assert_close(
        log_resp.exp(),
        torch.tensor([[0.25, 0.0, 0.75], [1 / (1 + math.e**-1), 1 / (1 + math.e), 0.0]], dtype=torch.float64),
    )
    torch.testing.assert_close(
        log_marginal, torch.tensor([math.log(4.0), -1000 + math.log1p(math.e**-1)], dtype=torch.float64)
    )
    with pytest.raises(ValueError, match="row 1 of log_joint is -inf everywhere"):
        log_responsibilities_from_joint(torch.tensor([[0.0, 1.0], [-math.inf, -math.inf]]))
    with pytest.raises(ValueError, match="NaN"):
        log_responsibilities_from_joint(torch.tensor([[0.0, math.nan]]))


def test_a_zero_weight_component_gets_no_responsibility(device):
    base = random_mixture(6, "diag", device=device)
    weights = torch.tensor([0.6, 0.0, 0.4], dtype=torch.float64, device=device)
    mixture = GaussianMixture(weights, base.means, base.covariances, "diag")
    x = torch.randn(50, 2, generator=make_generator(3, device), dtype=torch.float64, device=device)
    assert (gmm_responsibilities(x, mixture)[:, 1] == 0).all()
    assert torch.isfinite(gmm_log_density(x, mixture)).all()


# --------------------------------------------------------------------------- sampling, scheme 2


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_sampling_recovers_the_parameters(covariance_type, device, gen):
    mixture = random_mixture(7, covariance_type, k=3, d=2, device=device)
    n = 60_000
    x, z = sample_gmm(mixture, n, generator=gen(10))
    assert x.shape == (n, 2) and x.dtype == torch.float64 and z.shape == (n,) and z.dtype == torch.long
    _, p_value = chi_square_test(z, mixture.weights)
    assert p_value > 1e-3
    # Fitting with the true labels (one-hot responsibilities) recovers the parameters.
    fitted = gaussian_mixture_mle(
        x, torch.nn.functional.one_hot(z, 3).double(), covariance_type=covariance_type
    )
    torch.testing.assert_close(fitted.weights, mixture.weights, atol=0.01, rtol=0)
    counts = torch.bincount(z, minlength=3).double()
    mean_se = (mixture.variances().amax(dim=1) / counts).sqrt()  # (K,)
    assert ((fitted.means - mixture.means).abs().amax(dim=1) < 5 * mean_se).all()
    rel = (fitted.covariances - mixture.covariances).abs().max() / mixture.covariances.abs().max()
    assert rel < 0.05
    # Power: the same draws reject a mixture whose weights are shifted by 0.05.
    wrong = mixture.weights + torch.tensor([0.05, -0.05, 0.0], dtype=torch.float64, device=device)
    assert chi_square_test(z, wrong / wrong.sum())[1] < 1e-6


def test_samples_follow_the_mixture_density_in_1d(gen, device):
    mixture = bimodal_1d(device=device)
    x = sample_gmm(mixture, 20_000, generator=gen(11))[0][:, 0].cpu().numpy()

    def cdf(values, mix=mixture):
        w, m, v = (t.cpu().numpy() for t in (mix.weights, mix.means[:, 0], mix.covariances))
        return sum(
            wk * scipy.stats.norm(mk, math.sqrt(vk)).cdf(values) for wk, mk, vk in zip(w, m, v, strict=True)
        )

    assert scipy.stats.kstest(x, cdf).pvalue > 1e-3
    # Power: a mixture with the weights swapped is rejected.
    swapped = GaussianMixture(mixture.weights.flip(0), mixture.means, mixture.covariances, "spherical")
    assert scipy.stats.kstest(x, lambda v: cdf(v, swapped)).pvalue < 1e-6


def test_sampling_draws_in_the_documented_order(device, gen):
    mixture = random_mixture(8, "full", k=4, d=3, device=device)
    x, z = sample_gmm(mixture, 200, generator=gen(12))
    from genlib.sampling import sample_categorical

    g = gen(12)
    z_ref = sample_categorical(mixture.weights, 200, generator=g)
    noise = torch.randn((200, 3), generator=g, dtype=torch.float64, device=device)
    chol = torch.linalg.cholesky(mixture.covariances)
    x_ref = mixture.means[z_ref] + torch.einsum("nij,nj->ni", chol[z_ref], noise)
    assert torch.equal(z, z_ref)
    torch.testing.assert_close(x, x_ref, rtol=1e-12, atol=1e-12)
    x2, _ = sample_gmm(mixture, 200, generator=gen(12))
    assert torch.equal(x, x2)


# --------------------------------------------------------------------------- scheme 1, batch likelihoods


def test_shared_z_puts_the_whole_batch_in_one_component(device, gen):
    mixture = ring_2d(4, radius=10.0, std=0.5, device=device)
    g = gen(13)
    chosen = []
    for _ in range(400):
        x, z = sample_gmm_shared_z(mixture, 25, generator=g)
        assert x.shape == (25, 2) and z.shape == () and z.dtype == torch.long
        # Every sample sits next to the chosen component's mean.
        assert ((x - mixture.means[z]).norm(dim=1) < 4).all()
        chosen.append(int(z))
    _, p_value = chi_square_test(torch.tensor(chosen), mixture.weights.cpu())
    assert p_value > 1e-3
    # Whereas scheme 2 spreads a batch of 25 over several components.
    _, z2 = sample_gmm(mixture, 25, generator=g)
    assert torch.unique(z2).numel() > 1


def test_shared_z_samples_within_the_batch_are_gaussian(device, gen):
    mixture = random_mixture(9, "full", k=3, d=2, device=device)
    x, z = sample_gmm_shared_z(mixture, 50_000, generator=gen(14))
    mean, cov = gaussian_mle(x)
    torch.testing.assert_close(mean, mixture.means[z], atol=0.05, rtol=0)
    torch.testing.assert_close(cov, mixture.covariances[z], atol=0.05, rtol=0.03)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_batch_log_likelihoods_equal_their_formulas(covariance_type, device):
    mixture = random_mixture(10, covariance_type, k=3, d=2, device=device)
    x = torch.randn(6, 2, generator=make_generator(4, device), dtype=torch.float64, device=device)
    p = torch_components(mixture).log_prob(x[:, None, :]).exp()  # P(x^i | z), (n, K)
    w = mixture.weights
    # Scheme 1: sum over z of P(z) prod_i P(x^i | z).
    shared = (w * p.prod(dim=0)).sum().log()
    # Scheme 2: prod over i of sum over z^i of P(z^i) P(x^i | z^i).
    per_sample = (p * w).sum(dim=1).log().sum()
    torch.testing.assert_close(batch_log_likelihood_shared_z(x, mixture), shared, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(
        batch_log_likelihood_per_sample_z(x, mixture), per_sample, rtol=1e-10, atol=1e-10
    )
    # One sample: the two schemes are the same distribution.
    torch.testing.assert_close(
        batch_log_likelihood_shared_z(x[:1], mixture), batch_log_likelihood_per_sample_z(x[:1], mixture)
    )


def test_each_scheme_explains_its_own_batches_better(gen):
    """A batch from one cluster is far likelier under scheme 1; a spread batch under scheme 2, where
    scheme 1 must explain every point with a single component."""
    mixture = ring_2d(6, radius=5.0, std=0.7)
    g = gen(15)
    one_cluster, _ = sample_gmm_shared_z(mixture, 40, generator=g)
    spread, _ = sample_gmm(mixture, 40, generator=g)
    assert (
        batch_log_likelihood_shared_z(one_cluster, mixture)
        > batch_log_likelihood_per_sample_z(one_cluster, mixture) + 40
    )
    assert (
        batch_log_likelihood_per_sample_z(spread, mixture)
        > batch_log_likelihood_shared_z(spread, mixture) + 100
    )
    # Scheme 1's log-likelihood is stable for large batches (the product underflows long before).
    big, _ = sample_gmm(mixture, 5000, generator=g)
    assert torch.isfinite(batch_log_likelihood_shared_z(big, mixture))


# --------------------------------------------------------------------------- weighted ML


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_weighted_mle_equals_its_closed_form(covariance_type, device):
    rng = np.random.default_rng(11)
    x = rng.normal(size=(150, 3)) @ rng.normal(size=(3, 3)) + 1
    q = rng.dirichlet(np.ones(4), size=150)  # Q(z | i), rows sum to 1
    fitted = gaussian_mixture_mle(
        torch.tensor(x, device=device), torch.tensor(q, device=device), covariance_type=covariance_type
    )
    np.testing.assert_allclose(fitted.weights.cpu().numpy(), q.sum(0) / q.sum(), rtol=1e-12)
    for k in range(4):
        w = q[:, k]
        mean = (w[:, None] * x).sum(0) / w.sum()
        cov = ((x - mean).T * w) @ (x - mean) / w.sum()
        expected = {"full": cov, "diag": np.diag(cov), "spherical": np.trace(cov) / 3}[covariance_type]
        np.testing.assert_allclose(fitted.means[k].cpu().numpy(), mean, rtol=1e-12)
        np.testing.assert_allclose(fitted.covariances[k].cpu().numpy(), expected, rtol=1e-10)


def test_weighted_mle_equals_the_unweighted_mle_on_repeated_rows(device):
    rng = np.random.default_rng(12)
    x = torch.tensor(rng.normal(size=(40, 2)), device=device)
    z = torch.tensor(rng.integers(0, 3, size=40), device=device)
    counts = torch.tensor(rng.integers(1, 4, size=40), device=device)
    q = torch.nn.functional.one_hot(z, 3).double() * counts[:, None]  # integer responsibilities
    weighted = gaussian_mixture_mle(x, q)
    repeated_x, repeated_z = x.repeat_interleave(counts, dim=0), z.repeat_interleave(counts)
    repeated = gaussian_mixture_mle(repeated_x, torch.nn.functional.one_hot(repeated_z, 3).double())
    for a, b in [
        (weighted.weights, repeated.weights),
        (weighted.means, repeated.means),
        (weighted.covariances, repeated.covariances),
    ]:
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    # ... and per component it is genlib.estimators.gaussian_mle on that component's rows.
    for k in range(3):
        mean, cov = gaussian_mle(repeated_x[repeated_z == k])
        torch.testing.assert_close(weighted.means[k], mean)
        torch.testing.assert_close(weighted.covariances[k], cov)


def test_reg_covar_and_empty_components():
    x = torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [5.0, 5.0]], dtype=torch.float64)
    q = torch.tensor([[1.0, 0], [1, 0], [1, 0], [0, 1]], dtype=torch.float64)
    # Component 1 has a single point: its covariance is zero, which is not positive definite ...
    with pytest.raises(ValueError, match="increase reg_covar"):
        gaussian_mixture_mle(x, q)
    # ... unless reg_covar is added to the diagonal.
    fitted = gaussian_mixture_mle(x, q, reg_covar=1e-3)
    torch.testing.assert_close(fitted.covariances[1], 1e-3 * torch.eye(2, dtype=torch.float64))
    fitted_s = gaussian_mixture_mle(x, q, covariance_type="spherical", reg_covar=0.5)
    torch.testing.assert_close(fitted_s.covariances[1], torch.tensor(0.5, dtype=torch.float64))
    with pytest.raises(ValueError, match="component 1 has no responsibility"):
        gaussian_mixture_mle(x, torch.tensor([[1.0, 0.0]] * 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="reg_covar"):
        gaussian_mixture_mle(x, q, reg_covar=-1.0)
    with pytest.raises(ValueError, match="one row per sample"):
        gaussian_mixture_mle(x, q[:3])
    with pytest.raises(ValueError, match="non-negative"):
        gaussian_mixture_mle(x, -q)


# --------------------------------------------------------------------------- the container, data sets


def test_parameter_container_errors():
    w = torch.tensor([0.5, 0.5], dtype=torch.float64)
    m = torch.zeros(2, 2, dtype=torch.float64)
    eye = torch.eye(2, dtype=torch.float64).expand(2, 2, 2)
    GaussianMixture(w, m, eye)  # fine
    with pytest.raises(ValueError, match="weights must be non-negative"):
        GaussianMixture(torch.tensor([1.5, -0.5], dtype=torch.float64), m, eye)
    with pytest.raises(ValueError, match="weights must sum to 1"):
        GaussianMixture(torch.tensor([0.5, 0.6], dtype=torch.float64), m, eye)
    with pytest.raises(ValueError, match=r"covariances\[1\] is not positive definite"):
        GaussianMixture(w, m, torch.stack([torch.eye(2), torch.tensor([[1.0, 2.0], [2.0, 1.0]])]).double())
    with pytest.raises(ValueError, match="symmetric"):
        GaussianMixture(w, m, torch.stack([torch.eye(2), torch.tensor([[1.0, 0.5], [0.0, 1.0]])]).double())
    with pytest.raises(ValueError, match=r"covariances must have shape \(2, 2\) for covariance_type='diag'"):
        GaussianMixture(w, m, torch.ones(2, dtype=torch.float64), "diag")
    with pytest.raises(ValueError, match="positive variances"):
        GaussianMixture(w, m, torch.tensor([1.0, 0.0], dtype=torch.float64), "spherical")
    with pytest.raises(ValueError, match=r"weights must have shape \(3,\)"):
        GaussianMixture(
            w, torch.zeros(3, 2, dtype=torch.float64), torch.ones(3, dtype=torch.float64), "spherical"
        )
    with pytest.raises(ValueError, match="covariance_type"):
        GaussianMixture(w, m, eye, "tied")
    with pytest.raises(TypeError, match="dtype"):
        GaussianMixture(w.float(), m, eye)
    with pytest.raises(TypeError, match="mixture must be a genlib.mixtures.GaussianMixture"):
        gmm_log_density(m, {"weights": w})
    mixture = GaussianMixture(w, m, eye)
    with pytest.raises(ValueError, match=r"x must have shape \(N, 2\)"):
        gmm_log_density(torch.zeros(3, 3, dtype=torch.float64), mixture)
    with pytest.raises(TypeError, match="dtype"):
        gmm_log_density(torch.zeros(3, 2), mixture)
    with pytest.raises(ValueError, match="num_samples must be >= 1"):
        sample_gmm(mixture, 0)


def test_container_conversions():
    mixture = random_mixture(13, "diag", k=2, d=3)
    assert mixture.num_components == 2 and mixture.dim == 3
    torch.testing.assert_close(mixture.full_covariances(), torch.diag_embed(mixture.covariances))
    chol = mixture.cholesky_factors()
    torch.testing.assert_close(chol @ chol.mT, mixture.full_covariances())
    spherical = random_mixture(14, "spherical", k=2, d=3)
    torch.testing.assert_close(spherical.variances(), spherical.covariances[:, None].expand(2, 3))


def test_known_densities_are_valid_mixtures():
    for mixture, d in [(bimodal_1d(), 1), (three_clusters_2d(), 2), (ring_2d(5), 2), (two_clusters_nd(7), 7)]:
        assert isinstance(mixture, GaussianMixture) and mixture.dim == d
    float32 = three_clusters_2d(dtype=torch.float32)
    assert float32.means.dtype == torch.float32
    with pytest.raises(TypeError, match="dtype"):
        bimodal_1d(dtype=torch.long)
    with pytest.raises(ValueError, match="std > 0"):
        ring_2d(3, std=0.0)
    # The 1-D density integrates to one.
    grid = torch.linspace(-12, 12, 20_001, dtype=torch.float64)[:, None]
    density = gmm_log_density(grid, bimodal_1d()).exp()
    assert abs(torch.trapezoid(density, grid[:, 0]).item() - 1) < 1e-9
