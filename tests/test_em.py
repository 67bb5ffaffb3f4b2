"""genlib.em against independent references: monotone EM over many seeds, the ELBO bound and its gap
against torch.distributions' categorical KL, scikit-learn's GaussianMixture from the same initial
parameters (float64, per-iteration log-likelihood and final parameters), the explicit gradient
against autograd, and the collapse handling and error messages."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn.mixture import GaussianMixture as SkGaussianMixture

from genlib.data.known_densities import three_clusters_2d, two_clusters_nd
from genlib.device import make_generator
from genlib.em import (
    ComponentCollapseError,
    UnconstrainedGMM,
    e_step,
    elbo,
    em_step,
    expected_complete_gradient,
    fit_gmm,
    from_unconstrained,
    gradient_step,
    initialize_gmm,
    log_likelihood,
    posterior_kl,
    to_unconstrained,
)
from genlib.mixtures import GaussianMixture, gmm_log_density, gmm_log_joint, sample_gmm

COVARIANCE_TYPES = ["full", "diag", "spherical"]


def data(n: int = 300, seed: int = 0, device: str = "cpu") -> torch.Tensor:
    x, _ = sample_gmm(three_clusters_2d(device=device), n, generator=make_generator(seed, device=device))
    return x


def start(x: torch.Tensor, k: int, ct: str, seed: int, init: str = "random") -> GaussianMixture:
    return initialize_gmm(
        x, k, covariance_type=ct, init=init, generator=make_generator(seed, device=x.device.type)
    )


# --------------------------------------------------------------------------- EM is monotone


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_em_log_likelihood_never_decreases_over_seeds(ct: str, device: str) -> None:
    for seed in range(12):
        x = data(150, seed, device)
        init = "random" if seed % 2 else "kmeans++"
        result = fit_gmm(
            x, 4, covariance_type=ct, init=init, max_iter=15, tol=0, reg_covar=0.0,
            generator=make_generator(seed, device=device),
        )  # fmt: skip
        lls = result.log_likelihoods
        assert lls.shape == (result.num_iterations + 1,)
        steps = lls.diff()
        assert bool((steps >= -1e-9 * lls.abs()[1:]).all()), (seed, steps.min().item())
        # the ELBO after each M-step sits between the two log-likelihoods
        assert bool((result.elbos >= lls[:-1] - 1e-8 * lls.abs()[:-1]).all())
        assert bool((result.elbos <= lls[1:] + 1e-8 * lls.abs()[1:]).all())
        assert result.mixture.means.device.type == device


def test_em_improves_on_start_and_finds_the_clusters() -> None:
    x = data(1500, 3)
    result = fit_gmm(x, 3, n_init=2, generator=make_generator(0), max_iter=100, tol=1e-6)
    truth = three_clusters_2d()
    assert result.converged
    # the fitted log-likelihood beats the true parameters' (it is the maximiser) but not by much
    true_ll = log_likelihood(x, truth).item()
    assert true_ll <= result.log_likelihoods[-1].item() <= true_ll + 20
    order = torch.argsort(result.mixture.weights, descending=True)
    torch.testing.assert_close(result.mixture.means[order], truth.means, atol=0.25, rtol=0)
    assert result.restart_log_likelihoods.shape == (2,)
    assert result.log_likelihoods[-1].item() == result.restart_log_likelihoods.max().item()


# --------------------------------------------------------------------------- the ELBO


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_elbo_bound_equality_and_gap_is_kl(ct: str, device: str) -> None:
    x = data(150, 1, device)
    mixture = start(x, 3, ct, 2)
    ll = gmm_log_density(x, mixture).sum()
    g = make_generator(5, device=device)
    for concentration in (0.3, 1.0, 5.0):
        # an arbitrary Q from a Dirichlet, with exact zeros in some rows
        q = torch.distributions.Dirichlet(
            torch.full((3,), concentration, dtype=x.dtype, device=device)
        ).sample((x.shape[0],))
        q[:10] = torch.nn.functional.one_hot(torch.randint(3, (10,), generator=g, device=device), 3).to(
            x.dtype
        )
        log_q = q.log()
        bound = elbo(x, mixture, log_q)
        assert bound.item() <= ll.item()
        # independent KL: torch.distributions' categorical KL to the posterior by Bayes' rule by hand
        joint = gmm_log_joint(x, mixture).exp()
        posterior = joint / joint.sum(dim=1, keepdim=True)
        kl = torch.distributions.kl_divergence(
            torch.distributions.Categorical(probs=q), torch.distributions.Categorical(probs=posterior)
        ).sum()
        torch.testing.assert_close(ll - bound, kl, rtol=1e-8, atol=1e-8)
        torch.testing.assert_close(posterior_kl(x, mixture, log_q), kl, rtol=1e-8, atol=1e-8)
    # right after the E-step the bound is tight
    log_post, ll_e = e_step(x, mixture)
    torch.testing.assert_close(elbo(x, mixture, log_post), ll, rtol=1e-12, atol=1e-9)
    torch.testing.assert_close(ll_e, ll, rtol=1e-12, atol=1e-9)
    torch.testing.assert_close(log_post.exp(), posterior, rtol=1e-9, atol=1e-12)


def test_elbo_is_expected_complete_log_likelihood_plus_entropy() -> None:
    x = data(50, 2)
    mixture = start(x, 3, "full", 0)
    q = torch.distributions.Dirichlet(torch.ones(3, dtype=torch.float64)).sample((50,))
    by_hand = 0.0
    for i in range(50):  # a plain double loop, with scipy-free per-component densities
        for k in range(3):
            comp = torch.distributions.MultivariateNormal(mixture.means[k], mixture.covariances[k])
            log_joint = mixture.weights[k].log() + comp.log_prob(x[i])
            by_hand += (q[i, k] * log_joint).item()
    entropy = torch.distributions.Categorical(probs=q).entropy().sum().item()
    assert elbo(x, mixture, q.log()).item() == pytest.approx(by_hand + entropy, rel=1e-10)


def test_em_step_closes_then_raises_the_bound() -> None:
    x = data(300, 4)
    mixture = start(x, 3, "diag", 1)
    new, ll, bound = em_step(x, mixture)
    assert ll.item() == pytest.approx(log_likelihood(x, mixture).item(), rel=1e-12)
    assert ll.item() <= bound.item() <= log_likelihood(x, new).item()
    assert bound.item() > ll.item()  # a real improvement from this start


# --------------------------------------------------------------------------- scikit-learn


def _sklearn_trajectory(x: np.ndarray, mixture: GaussianMixture, iterations: int, reg: float):
    ct = mixture.covariance_type
    cov = mixture.covariances.numpy()
    precisions = np.linalg.inv(cov) if ct == "full" else 1.0 / cov
    sk = SkGaussianMixture(
        mixture.num_components, covariance_type=ct, weights_init=mixture.weights.numpy(),
        means_init=mixture.means.numpy(), precisions_init=precisions, max_iter=1, warm_start=True,
        tol=0.0, reg_covar=reg,
    )  # fmt: skip
    bounds = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning after each single iteration
        for _ in range(iterations):
            sk.fit(x)
            bounds.append(sk.lower_bound_ * x.shape[0])  # mean log-likelihood before that M-step
    return np.array(bounds), sk


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_em_matches_sklearn_from_the_same_start(ct: str) -> None:
    x, _ = sample_gmm(two_clusters_nd(3), 400, generator=make_generator(7))
    for seed in (0, 1):
        mixture = start(x, 4, ct, seed, init="kmeans++")
        iterations = 25
        result = fit_gmm(
            x, 4, covariance_type=ct, init_mixture=mixture, max_iter=iterations, tol=0, reg_covar=1e-6
        )
        bounds, sk = _sklearn_trajectory(x.numpy(), mixture, iterations, 1e-6)
        np.testing.assert_allclose(result.log_likelihoods[:iterations].numpy(), bounds, rtol=1e-6)
        np.testing.assert_allclose(result.mixture.weights.numpy(), sk.weights_, rtol=1e-6, atol=1e-12)
        np.testing.assert_allclose(result.mixture.means.numpy(), sk.means_, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(result.mixture.covariances.numpy(), sk.covariances_, rtol=1e-6, atol=1e-12)


def test_sklearn_comparison_can_fail() -> None:
    """Power: a different reg_covar gives a trajectory scikit-learn does not reproduce at rel 1e-6."""
    x, _ = sample_gmm(two_clusters_nd(3), 400, generator=make_generator(7))
    mixture = start(x, 4, "full", 0)
    result = fit_gmm(x, 4, init_mixture=mixture, max_iter=10, tol=0, reg_covar=1e-2)
    bounds, _ = _sklearn_trajectory(x.numpy(), mixture, 10, 1e-6)
    assert not np.allclose(result.log_likelihoods[:10].numpy(), bounds, rtol=1e-6, atol=0)


# --------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_explicit_gradient_equals_autograd(ct: str, device: str) -> None:
    x = data(120, 8, device)
    params = to_unconstrained(start(x, 3, ct, 3))
    # move away from the initialization so that every block of the gradient is generic
    g = make_generator(1, device=device)
    params = params.map(lambda t: t + 0.1 * torch.randn(t.shape, generator=g, dtype=t.dtype, device=device))
    if ct == "full":
        params = params.map(lambda t: t.tril() if t.dim() == 3 else t)
    leaves = params.map(lambda t: t.detach().clone().requires_grad_())
    gmm_log_density(x, from_unconstrained(leaves)).sum().backward()
    explicit = expected_complete_gradient(x, params)
    for got, want in ((explicit.logits, leaves.logits.grad), (explicit.means, leaves.means.grad)):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)
    want_scales = leaves.scales.grad.tril() if ct == "full" else leaves.scales.grad
    torch.testing.assert_close(explicit.scales, want_scales, rtol=1e-9, atol=1e-9)
    # with Q held fixed it is the gradient of E_Q[log p(x, z | theta)]
    q = torch.distributions.Dirichlet(torch.ones(3, dtype=x.dtype, device=device)).sample((120,))
    leaves = params.map(lambda t: t.detach().clone().requires_grad_())
    (q * gmm_log_joint(x, from_unconstrained(leaves))).sum().backward()
    fixed = expected_complete_gradient(x, params, q.log())
    torch.testing.assert_close(fixed.means, leaves.means.grad, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(fixed.logits, leaves.logits.grad, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(
        fixed.scales, leaves.scales.grad.tril() if ct == "full" else leaves.scales.grad, rtol=1e-9, atol=1e-9
    )


def test_unconstrained_round_trip_and_gradient_methods_climb() -> None:
    x = data(300, 9)
    for ct in COVARIANCE_TYPES:
        mixture = start(x, 3, ct, 4)
        back = from_unconstrained(to_unconstrained(mixture))
        torch.testing.assert_close(back.covariances, mixture.covariances, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(back.weights, mixture.weights, rtol=1e-12, atol=1e-12)
        for method in ("gradient", "gem"):
            result = fit_gmm(
                x, 3, covariance_type=ct, init_mixture=mixture, method=method, lr=0.5, max_iter=15, tol=0
            )
            lls = result.log_likelihoods
            assert lls[-1] > lls[0] + 10
        small = gradient_step(x, to_unconstrained(mixture), 1e-4)
        assert log_likelihood(x, from_unconstrained(small)) > log_likelihood(x, mixture)


# --------------------------------------------------------------------------- init, collapse, errors


def test_initializations_are_seeded_and_pick_data_points() -> None:
    x = data(100, 0)
    for init in ("random", "kmeans++"):
        a = start(x, 5, "full", 3, init)
        b = start(x, 5, "full", 3, init)
        torch.testing.assert_close(a.means, b.means, rtol=0, atol=0)
        assert all(bool((x == m).all(dim=1).any()) for m in a.means)
        assert len({tuple(m.tolist()) for m in a.means}) == 5

    # k-means++ spreads the centres: over seeds it puts them further apart than uniform picks
    def spread(init: str) -> float:
        return float(
            np.mean([torch.pdist(start(x, 3, "full", s, init).means).min().item() for s in range(40)])
        )

    assert spread("kmeans++") > spread("random")


def _collapse_case() -> tuple[torch.Tensor, GaussianMixture]:
    x = torch.cat(
        [torch.randn(50, 2, generator=make_generator(0), dtype=torch.float64), torch.full((1, 2), 40.0)]
    )
    mixture = GaussianMixture(
        torch.tensor([0.5, 0.5], dtype=torch.float64),
        torch.tensor([[0.0, 0.0], [40.0, 40.0]], dtype=torch.float64),
        torch.stack([torch.eye(2, dtype=torch.float64)] * 2),
    )
    return x, mixture


def test_collapsing_component_raises_or_recovers() -> None:
    x, mixture = _collapse_case()  # component 1 holds a single point: its covariance becomes 0
    with pytest.raises(ComponentCollapseError, match="component 1 collapsed"):
        fit_gmm(x, 2, init_mixture=mixture, reg_covar=0.0)
    with pytest.raises(ComponentCollapseError, match="collapsed"):
        em_step(x, mixture)
    result = fit_gmm(
        x,
        2,
        init_mixture=mixture,
        reg_covar=0.0,
        on_collapse="reinit",
        max_iter=5,
        generator=make_generator(1),
    )
    assert result.collapses and result.collapses[0] == [1]
    assert torch.isfinite(result.log_likelihoods).all()
    # with a regularizer the single-point component survives and EM runs
    result = fit_gmm(x, 2, init_mixture=mixture, reg_covar=1e-3, max_iter=5)
    assert not result.collapses


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"num_components": 0}, ValueError, "num_components"),
        ({"method": "newton"}, ValueError, "method must be"),
        ({"on_collapse": "ignore"}, ValueError, "on_collapse"),
        ({"tol": -1.0}, ValueError, "tol must be"),
        ({"reg_covar": -1e-3}, ValueError, "reg_covar must be"),
        ({"lr": 0}, ValueError, "lr must be"),
        ({"init": "farthest"}, ValueError, "init must be"),
        ({"num_components": 500}, ValueError, "at least num_components"),
        ({"n_init": 0}, ValueError, "n_init"),
    ],
)
def test_fit_gmm_errors(kwargs: dict, error: type, match: str) -> None:
    x = data(100, 0)
    kwargs = {"num_components": 2, **kwargs}
    with pytest.raises(error, match=match):
        fit_gmm(x, **kwargs)


def test_other_errors() -> None:
    x = data(20, 0)
    mixture = start(x, 2, "full", 0)
    with pytest.raises(ValueError, match="log_q must have shape"):
        elbo(x, mixture, torch.zeros(20, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="log-distribution"):
        elbo(x, mixture, torch.zeros(20, 2, dtype=torch.float64))
    with pytest.raises(TypeError, match="UnconstrainedGMM"):
        from_unconstrained(mixture)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="init_mixture must have"):
        fit_gmm(x, 3, init_mixture=mixture)
    with pytest.raises(ValueError, match="n_init must be 1"):
        fit_gmm(x, 2, init_mixture=mixture, n_init=2)
    with pytest.raises(TypeError, match="dtype"):
        fit_gmm(x.float(), 2, init_mixture=mixture)
    assert isinstance(to_unconstrained(mixture), UnconstrainedGMM)
