"""genlib.mcmc against independent references.

- Stationarity on discrete targets small enough to enumerate: Metropolis (bit flips), Gibbs sweeps of
  a Boltzmann machine and block Gibbs of an RBM reach the exact Boltzmann distribution (total
  variation below a bound), and the same test rejects a chain that targets the wrong distribution.
- Stationarity on continuous targets with known moments: KS tests (SciPy) and moment checks for
  random-walk Metropolis, MALA and ULA, including ULA's exact O(eps) bias on a Gaussian, and binned
  total variation on a 2-D mixture whose cell probabilities are known exactly.
- A Langevin step whose noise does not match its step size is caught.
- Each step equals a by-hand implementation that draws the same random numbers.
- Autocorrelation, integrated autocorrelation time / ESS and split R-hat against direct numpy
  computations written independently here (no FFT, loops over lags), and against AR(1) closed forms.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch

from genlib.data.toy_densities import gmm_box_probabilities
from genlib.ebm import (
    binary_states,
    bm_energy,
    boltzmann_log_probs,
    random_bm,
    rbm_energy,
    rbm_log_partition,
    rbm_log_prob,
)
from genlib.mcmc import (
    autocorrelation,
    bm_gibbs_sweep,
    effective_sample_size,
    empirical_state_distribution,
    integrated_autocorrelation_time,
    langevin_step,
    mala_step,
    metropolis_accept,
    metropolis_flip_step,
    metropolis_hastings_step,
    rbm_gibbs_step,
    run_chain,
    split_rhat,
    total_variation,
)
from genlib.mixtures import GaussianMixture, gmm_log_density, sample_gmm

#: Total-variation bound for the discrete stationarity tests; the power checks show a wrong target is
#: well above it, and a correct chain with these sample sizes lands around 0.01.
TV_BOUND = 0.03
#: The bound for 2-D samples binned into 8 x 8 cells (65 with the outside): 20000 exact i.i.d. draws
#: already sit near 0.015 from the truth, so the bound is looser; a wrong kernel lands near 0.2.
BINNED_TV_BOUND = 0.04


def print_tv(name: str, value: float) -> None:
    """The TV figures are reported in the chapter's notes; ``pytest -s`` shows them."""
    print(f"TV[{name}] = {value:.4f}")


# --------------------------------------------------------------------------- discrete targets


def bm_target(device: str, seed: int = 3, num_units: int = 5, scale: float = 0.9):
    generator = torch.Generator(device=device).manual_seed(seed)
    weight, bias = random_bm(num_units, scale=scale, generator=generator, device=device)
    probs = boltzmann_log_probs(lambda s: bm_energy(s, weight, bias), num_units, device=device).exp()
    return weight, bias, probs


def test_metropolis_flips_reach_the_boltzmann_distribution(device, gen):
    weight, bias, probs = bm_target(device)
    x0 = torch.zeros(2000, 5, dtype=torch.float64, device=device)  # every chain starts in one state
    g = gen(0)
    chain = run_chain(
        lambda x: metropolis_flip_step(x, lambda s: bm_energy(s, weight, bias), generator=g),
        x0,
        20,
        burn_in=100,
        thin=5,
    )
    tv = total_variation(empirical_state_distribution(chain.samples), probs).item()
    print_tv("Metropolis flips, BM D=5", tv)
    assert tv < TV_BOUND
    # Power: the same samples are far from the distribution of a slightly different machine.
    wrong = boltzmann_log_probs(lambda s: bm_energy(s, weight, bias), 5, temperature=1.4, device=device).exp()
    assert total_variation(empirical_state_distribution(chain.samples), wrong).item() > 2 * TV_BOUND
    assert 0.2 < chain.acceptance_rate.mean().item() < 0.9


def test_gibbs_sweeps_reach_the_boltzmann_distribution(device, gen):
    weight, bias, probs = bm_target(device)
    x0 = torch.ones(2000, 5, dtype=torch.float64, device=device)
    g = gen(1)
    chain = run_chain(lambda x: bm_gibbs_sweep(x, weight, bias, generator=g), x0, 20, burn_in=30, thin=2)
    assert chain.acceptance_rate is None
    tv = total_variation(empirical_state_distribution(chain.samples), probs).item()
    print_tv("Gibbs sweeps, BM D=5", tv)
    assert tv < TV_BOUND
    # A sweep at another temperature samples that temperature's distribution, not this one.
    hot = run_chain(
        lambda x: bm_gibbs_sweep(x, weight, bias, temperature=2.0, generator=g), x0, 20, burn_in=30
    )
    hot_probs = boltzmann_log_probs(
        lambda s: bm_energy(s, weight, bias), 5, temperature=2.0, device=device
    ).exp()
    assert total_variation(empirical_state_distribution(hot.samples), hot_probs).item() < TV_BOUND
    assert total_variation(empirical_state_distribution(hot.samples), probs).item() > 2 * TV_BOUND


def test_a_gibbs_sweep_with_a_wrong_conditional_is_rejected(device, gen):
    """Power of the TV test: a sweep that forgets the coupling of each unit to the others."""
    weight, bias, probs = bm_target(device)
    g = gen(2)

    def bias_only_sweep(x):
        u = torch.rand(x.shape, generator=g, dtype=x.dtype, device=x.device)
        return (u < torch.sigmoid(bias)).to(x.dtype)

    chain = run_chain(
        bias_only_sweep, torch.zeros(2000, 5, dtype=torch.float64, device=device), 20, burn_in=5
    )
    assert total_variation(empirical_state_distribution(chain.samples), probs).item() > 2 * TV_BOUND


def rbm_target(device: str, d: int = 4, h: int = 3, seed: int = 5):
    g = torch.Generator(device=device).manual_seed(seed)
    w = 1.2 * torch.randn(d, h, generator=g, dtype=torch.float64, device=device)
    b = torch.randn(d, generator=g, dtype=torch.float64, device=device)
    c = torch.randn(h, generator=g, dtype=torch.float64, device=device)
    return w, b, c


def test_block_gibbs_reaches_the_rbm_marginal_and_joint(device, gen):
    w, b, c = rbm_target(device)
    d, h = w.shape
    g = gen(3)
    v = torch.zeros(3000, d, dtype=torch.float64, device=device)
    vs, hs = [], []
    for t in range(60):
        v, hid = rbm_gibbs_step(v, w, b, c, generator=g)
        if t >= 20 and t % 2 == 0:
            vs.append(v)
            hs.append(hid)
    visible = binary_states(d, dtype=torch.float64, device=device)
    exact_marginal = rbm_log_prob(visible, w, b, c).exp()
    tv = total_variation(empirical_state_distribution(torch.stack(vs)), exact_marginal).item()
    print_tv("block Gibbs, RBM visible marginal D=4 H=3", tv)
    assert tv < TV_BOUND
    # The (h, v') pairs drawn in one step: h ~ P(h | v) with v from the model, then v' ~ P(v | h).
    # Both (v, h) and (v', h) are distributed as the joint; check (v', h) over all 2^(D+H) states.
    joint_states = binary_states(d + h, dtype=torch.float64, device=device)
    log_joint = -rbm_energy(joint_states[:, h:], joint_states[:, :h], w, b, c) - rbm_log_partition(w, b, c)
    pairs = torch.cat([torch.stack(hs), torch.stack(vs)], dim=-1)  # h first, as in joint_states
    tv_joint = total_variation(empirical_state_distribution(pairs), log_joint.exp()).item()
    print_tv("block Gibbs, RBM joint (h, v) 2^7 states", tv_joint)
    assert tv_joint < 1.5 * TV_BOUND
    # Power: the marginal of a different RBM (visible bias shifted by 0.3) is rejected.
    wrong = rbm_log_prob(visible, w, b + 0.3, c).exp()
    assert total_variation(empirical_state_distribution(torch.stack(vs)), wrong).item() > 2 * TV_BOUND


# --------------------------------------------------------------------------- continuous targets


def gaussian_energy(mean: float, std: float):
    def energy(x):
        return ((x - mean) / std).square().sum(dim=tuple(range(1, x.dim()))) / 2

    return energy


def final_states(step, x0, num_steps):
    """The last state of independent chains: independent draws, so a KS test applies."""
    return run_chain(step, x0, 1, burn_in=num_steps - 1).final


def test_random_walk_metropolis_ks_and_moments(device, gen):
    mean, std = 1.5, 0.7
    g = gen(4)
    x0 = torch.full((4000, 1), -3.0, dtype=torch.float64, device=device)  # far from the mode
    energy = gaussian_energy(mean, std)
    x = final_states(lambda x: metropolis_hastings_step(x, energy, 1.0, generator=g), x0, 200)
    draws = x.squeeze(1).cpu().numpy()
    assert scipy.stats.kstest(draws, "norm", args=(mean, std)).pvalue > 1e-3
    assert abs(draws.mean() - mean) < 4 * std / math.sqrt(4000)
    assert abs(draws.var() / std**2 - 1) < 4 * math.sqrt(2 / 4000)
    # Power: a 15% wider Gaussian, or one shifted by 0.1 standard deviations, is rejected.
    assert scipy.stats.kstest(draws, "norm", args=(mean, 1.15 * std)).pvalue < 1e-4
    assert scipy.stats.kstest(draws, "norm", args=(mean + 0.1 * std, std)).pvalue < 1e-3


def test_random_walk_metropolis_respects_a_hard_boundary(device, gen):
    """E = +inf outside x > 0: a half-normal. Proposals out of the support are always rejected."""
    g = gen(5)

    def half_normal(x):
        e = x.square().sum(dim=1) / 2
        return torch.where(x[:, 0] > 0, e, torch.full_like(e, math.inf))

    x = final_states(
        lambda x: metropolis_hastings_step(x, half_normal, 1.5, generator=g),
        torch.full((3000, 1), 0.5, dtype=torch.float64, device=device),
        150,
    )
    draws = x.squeeze(1).cpu().numpy()
    assert (draws > 0).all()
    assert scipy.stats.kstest(draws, "halfnorm").pvalue > 1e-3


def test_metropolis_is_blind_to_the_normalising_constant(device, gen):
    """Adding a huge constant to the energy (dividing P by e^{2^20}, far below float underflow)
    changes nothing: the ratio is computed in log space."""
    energy = gaussian_energy(0.0, 1.0)
    x0 = torch.linspace(-2, 2, 50, dtype=torch.float64, device=device)[:, None]
    shifted = lambda x: energy(x) + 2.0**20  # noqa: E731
    g1 = gen(6)
    a = run_chain(lambda x: metropolis_hastings_step(x, energy, 0.8, generator=g1), x0, 30)
    g2 = gen(6)
    b = run_chain(lambda x: metropolis_hastings_step(x, shifted, 0.8, generator=g2), x0, 30)
    assert torch.equal(a.samples, b.samples)
    assert not bool(torch.isnan(b.samples).any())


def correlated_gaussian(device: str):
    cov = torch.tensor([[1.0, 0.8], [0.8, 1.5]], dtype=torch.float64, device=device)
    mean = torch.tensor([0.5, -1.0], dtype=torch.float64, device=device)
    precision = torch.linalg.inv(cov)

    def energy(x):
        z = x - mean
        return 0.5 * ((z @ precision) * z).sum(dim=1)

    return mean, cov, energy


def test_mala_is_exact_for_any_step_size(device, gen):
    mean, cov, energy = correlated_gaussian(device)
    g = gen(7)
    x0 = torch.zeros(3000, 2, dtype=torch.float64, device=device)
    chain = run_chain(lambda x: mala_step(x, energy, 0.4, generator=g), x0, 1, burn_in=79)
    x = chain.final
    assert 0.3 < chain.acceptance_rate.mean().item() < 0.95
    n = x.shape[0]
    sample_cov = torch.cov(x.T)
    assert (x.mean(0) - mean).abs().max().item() < 4 * math.sqrt(1.5 / n)
    assert (sample_cov - cov).abs().max().item() < 0.12
    for direction in ([1.0, 0.0], [0.0, 1.0], [0.6, -0.8]):
        u = torch.tensor(direction, dtype=torch.float64, device=device)
        proj = (x @ u).cpu().numpy()
        sd = math.sqrt(float(u @ cov @ u))
        assert scipy.stats.kstest(proj, "norm", args=(float(u @ mean), sd)).pvalue > 1e-3


@pytest.mark.parametrize("step_size", [0.1, 0.5])
def test_ula_has_exactly_the_predicted_bias(step_size, device, gen):
    r"""On E = x^2 / (2 s^2), ULA is the AR(1) chain x' = (1 - eps/s^2) x + sqrt(2 eps) xi, with
    stationary law N(0, s^2 / (1 - eps / (2 s^2))): the samples must follow it (KS), and for the large
    step size they must *not* follow the target N(0, s^2)."""
    s = 1.2
    g = gen(8)
    x = final_states(
        lambda x: langevin_step(x, gaussian_energy(0.0, s), step_size, generator=g),
        torch.full((5000, 1), 4.0, dtype=torch.float64, device=device),
        150,
    )
    draws = x.squeeze(1).cpu().numpy()
    ula_std = s / math.sqrt(1 - step_size / (2 * s**2))
    assert scipy.stats.kstest(draws, "norm", args=(0.0, ula_std)).pvalue > 1e-3
    if step_size == 0.5:
        assert scipy.stats.kstest(draws, "norm", args=(0.0, s)).pvalue < 1e-3


def wrong_noise_langevin_step(x, energy, step_size, *, generator=None):
    """A common mistake: noise of standard deviation sqrt(eps) instead of sqrt(2 eps)."""
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(energy(x).sum(), x)
    xi = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    return (x - step_size * grad + math.sqrt(step_size) * xi).detach()


def test_a_langevin_step_with_the_wrong_noise_is_caught(device, gen):
    """The stationarity test used above fails for noise sqrt(eps): the chain's variance is then
    about half the target's, for any small step size."""
    s, eps = 1.0, 0.05
    target_std = s / math.sqrt(1 - eps / (2 * s**2))
    x0 = torch.zeros((5000, 1), dtype=torch.float64, device=device)
    energy = gaussian_energy(0.0, s)
    g = gen(9)
    right = (
        final_states(lambda x: langevin_step(x, energy, eps, generator=g), x0, 200).squeeze(1).cpu().numpy()
    )
    wrong = final_states(lambda x: wrong_noise_langevin_step(x, energy, eps, generator=g), x0, 200)
    wrong = wrong.squeeze(1).cpu().numpy()
    assert scipy.stats.kstest(right, "norm", args=(0.0, target_std)).pvalue > 1e-3
    assert scipy.stats.kstest(wrong, "norm", args=(0.0, target_std)).pvalue < 1e-6
    assert abs(wrong.var() / target_std**2 - 0.5) < 0.05
    # And one step on a flat energy moves by exactly sqrt(2 eps) times the generator's normals.
    flat = lambda x: 0.0 * x.sum(dim=1)  # noqa: E731
    x = torch.randn(7, 3, dtype=torch.float64, device=device, generator=gen(10))
    moved = langevin_step(x, flat, 0.3, generator=gen(11)) - x
    xi = torch.randn((7, 3), generator=gen(11), dtype=torch.float64, device=device)
    torch.testing.assert_close(moved, math.sqrt(0.6) * xi)


def mixture_2d(device: str) -> GaussianMixture:
    return GaussianMixture(
        weights=torch.tensor([0.35, 0.65], dtype=torch.float64, device=device),
        means=torch.tensor([[-1.0, 0.0], [1.0, 0.5]], dtype=torch.float64, device=device),
        covariances=torch.tensor([[0.5, 0.6], [0.7, 0.4]], dtype=torch.float64, device=device) ** 2,
        covariance_type="diag",
    )


def mixture_energy(mixture: GaussianMixture):
    return lambda x: -gmm_log_density(x, mixture)


@pytest.mark.parametrize(
    ("sampler", "step_size", "tv_bound"),
    [("mala", 0.15, BINNED_TV_BOUND), ("ula", 0.005, BINNED_TV_BOUND), ("ula_wrong_noise", 0.005, None)],
)
def test_langevin_on_a_binned_2d_mixture(sampler, step_size, tv_bound, device, gen):
    """Samples binned on an 8 x 8 grid against the exact cell probabilities of the mixture.

    The chains start from exact samples of the target: a kernel that leaves it invariant keeps them
    there, a wrong one (the wrong noise scale) drifts away within a few hundred steps. (That chains
    started elsewhere get there is the burn-in question, tested on the discrete targets above.)"""
    mixture = mixture_2d(device)
    energy = mixture_energy(mixture)
    step = {
        "mala": lambda x: mala_step(x, energy, step_size, generator=g),
        "ula": lambda x: langevin_step(x, energy, step_size, generator=g),
        "ula_wrong_noise": lambda x: wrong_noise_langevin_step(x, energy, step_size, generator=g),
    }[sampler]
    g = gen(12)
    x0, _ = sample_gmm(mixture, 4000, generator=g)
    chain = run_chain(step, x0, 5, burn_in=30, thin=30)
    edges = torch.linspace(-3.0, 3.0, 9, dtype=torch.float64, device=device)
    exact = gmm_box_probabilities(mixture, edges).flatten()
    exact = torch.cat([exact, (1 - exact.sum()).reshape(1)])  # the last "cell": outside the grid
    points = chain.samples.reshape(-1, 2)
    cell = torch.bucketize(points.contiguous(), edges) - 1  # -1 or 8 outside
    inside = ((cell >= 0) & (cell < 8)).all(dim=1)
    index = torch.where(inside, cell[:, 0] * 8 + cell[:, 1], torch.full_like(cell[:, 0], 64))
    freq = torch.bincount(index, minlength=65).double() / index.shape[0]
    tv = total_variation(freq, exact).item()
    print_tv(f"{sampler} eps={step_size}, 2-D mixture binned 8x8", tv)
    if tv_bound is not None:
        assert tv < tv_bound
    else:
        assert tv > 2 * TV_BOUND


# --------------------------------------------------------------------------- steps by hand


def test_metropolis_hastings_step_draws_in_the_documented_order(device, gen):
    energy = gaussian_energy(0.3, 0.9)
    x = torch.randn(64, 2, generator=gen(20), dtype=torch.float64, device=device)
    got, accepted = metropolis_hastings_step(x, energy, 0.7, generator=gen(21))
    g = gen(21)
    proposal = x + 0.7 * torch.randn((64, 2), generator=g, dtype=torch.float64, device=device)
    u = torch.rand(64, generator=g, dtype=torch.float64, device=device)
    ratio = torch.exp(energy(x) - energy(proposal))  # fine here: energies of order one
    expected_accept = u < torch.clamp(ratio, max=1.0)
    assert torch.equal(accepted, expected_accept)
    assert torch.equal(got, torch.where(expected_accept[:, None], proposal, x))
    assert 0 < accepted.sum() < 64  # both branches are exercised


def test_metropolis_accept_decides_in_log_space(device):
    x = torch.zeros(4, 1, device=device)
    prop = torch.ones(4, 1, device=device)
    log_r = torch.tensor([-math.inf, 1000.0, -1000.0, 0.0], device=device)
    g = torch.Generator(device=device).manual_seed(0)
    nxt, acc = metropolis_accept(x, prop, log_r, generator=g)
    assert acc.tolist()[:3] == [False, True, False]
    assert acc[3].item()  # ratio 1: always accepted (u < 1)
    assert torch.equal(nxt[:, 0], acc.float())
    with pytest.raises(ValueError, match="log_accept_ratio.*NaN"):
        metropolis_accept(x, prop, torch.full((4,), math.nan, device=device))


def test_flip_step_changes_at_most_one_unit_and_is_symmetric(device, gen):
    weight, bias, _ = bm_target(device)
    x = (torch.rand(500, 5, generator=gen(22), device=device) < 0.5).double()
    nxt, accepted = metropolis_flip_step(x, lambda s: bm_energy(s, weight, bias), generator=gen(23))
    changed = (nxt != x).sum(dim=1)
    assert torch.equal(changed, accepted.long())
    # Flat energy: every proposal accepted, the flipped unit uniform over 0..4.
    flat = lambda s: torch.zeros(s.shape[0], dtype=s.dtype, device=s.device)  # noqa: E731
    nxt, accepted = metropolis_flip_step(x.repeat(8, 1), flat, generator=gen(24))
    assert accepted.all()
    units = (nxt != x.repeat(8, 1)).double().argmax(dim=1)
    counts = torch.bincount(units, minlength=5).cpu().numpy()
    assert scipy.stats.chisquare(counts).pvalue > 1e-3


def test_gibbs_steps_equal_thresholded_uniforms(device, gen):
    w, b, c = rbm_target(device, d=6, h=4)
    v = (torch.rand(10, 6, generator=gen(25), device=device) < 0.5).double()
    v_next, h = rbm_gibbs_step(v, w, b, c, generator=gen(26))
    g = gen(26)
    h_exp = (
        torch.rand((10, 4), generator=g, dtype=torch.float64, device=device) < torch.sigmoid(v @ w + c)
    ).double()
    v_exp = (
        torch.rand((10, 6), generator=g, dtype=torch.float64, device=device) < torch.sigmoid(h_exp @ w.T + b)
    ).double()
    assert torch.equal(h, h_exp) and torch.equal(v_next, v_exp)
    # A fully visible BM sweep: unit by unit, each seeing the units updated before it.
    weight, bias, _ = bm_target(device)
    x = (torch.rand(10, 5, generator=gen(27), device=device) < 0.5).double()
    got = bm_gibbs_sweep(x, weight, bias, generator=gen(28))
    u = torch.rand((10, 5), generator=gen(28), dtype=torch.float64, device=device)
    expected = x.clone()
    for j in range(5):
        p = torch.sigmoid(expected @ weight[j] + bias[j])
        expected[:, j] = (u[:, j] < p).double()
    assert torch.equal(got, expected)


def test_rbm_gibbs_num_steps_equals_repeated_steps(device, gen):
    # num_steps=k draws the same random numbers as k calls in a row, for any batch shape and dtype,
    # leaves the caller's v alone, and takes parameters that require grad (samples carry none).
    w, b, c = rbm_target(device, d=6, h=4)
    for dtype, batch in ((torch.float64, (10,)), (torch.float32, (3, 5)), (torch.float64, ())):
        params = (w.to(dtype), b.to(dtype), c.to(dtype))
        v = (torch.rand(*batch, 6, generator=gen(31), device=device) < 0.5).to(dtype)
        v_before = v.clone()
        for k in (1, 2, 5):
            g = gen(32)
            v_loop = v
            for _ in range(k):
                v_loop, h_loop = rbm_gibbs_step(v_loop, *params, generator=g)
            g_after_loop = torch.rand(3, generator=g, device=device)
            g = gen(32)
            v_k, h_k = rbm_gibbs_step(v, *params, generator=g, num_steps=k)
            assert v_k.shape == (*batch, 6) and h_k.shape == (*batch, 4)
            assert v_k.dtype == dtype and h_k.dtype == dtype
            assert torch.equal(v_k, v_loop) and torch.equal(h_k, h_loop)
            assert torch.equal(torch.rand(3, generator=g, device=device), g_after_loop)
        assert torch.equal(v, v_before)
    weight = torch.nn.Parameter(w.clone())
    v_next, h = rbm_gibbs_step((torch.rand(7, 6, device=device) < 0.5).double(), weight, b, c, num_steps=3)
    assert not v_next.requires_grad and not h.requires_grad and weight.grad is None
    # no chains at all: empty results of the right shapes
    v_next, h = rbm_gibbs_step(torch.zeros(0, 6, dtype=torch.float64, device=device), w, b, c)
    assert v_next.shape == (0, 6) and h.shape == (0, 4)


def test_rbm_gibbs_step_checks_its_inputs(device):
    w, b, c = rbm_target(device, d=3, h=2)
    v = torch.tensor([[0.0, 1.0, 1.0], [1.0, 0.0, -0.0]], dtype=torch.float64, device=device)
    rbm_gibbs_step(v, w, b, c)  # binary, -0.0 included
    for bad in (0.5, 2.0, -1.0, 1e-300, 1 - 1e-16, math.inf, -math.inf, math.nan):
        v_bad = v.clone()
        v_bad[1, 2] = bad
        with pytest.raises(ValueError, match="v must hold binary values 0 and 1"):
            rbm_gibbs_step(v_bad, w, b, c)
    with pytest.raises(ValueError, match=r"v must have shape \(\.\.\., 3\)"):
        rbm_gibbs_step(v[:, :2], w, b, c)
    with pytest.raises(TypeError, match="v has dtype torch.float32 but weight has torch.float64"):
        rbm_gibbs_step(v.float(), w, b, c)
    with pytest.raises(TypeError, match="v must have a floating-point dtype"):
        rbm_gibbs_step(v.long(), w, b, c)
    with pytest.raises(ValueError, match=r"hidden_bias must have shape \(2,\)"):
        rbm_gibbs_step(v, w, b, b)
    with pytest.raises(ValueError, match="weight must be finite"):
        rbm_gibbs_step(v, w * math.nan, b, c)
    with pytest.raises(ValueError, match="num_steps must be >= 1"):
        rbm_gibbs_step(v, w, b, c, num_steps=0)
    with pytest.raises(TypeError, match="num_steps must be an int"):
        rbm_gibbs_step(v, w, b, c, num_steps=2.0)


def test_langevin_and_mala_steps_by_hand(device, gen):
    mean, cov, energy = correlated_gaussian(device)
    precision = torch.linalg.inv(cov)
    x = torch.randn(50, 2, generator=gen(29), dtype=torch.float64, device=device)
    eps = 0.3
    grad = (x - mean) @ precision  # the analytic gradient of the energy
    xi = torch.randn((50, 2), generator=gen(30), dtype=torch.float64, device=device)
    torch.testing.assert_close(
        langevin_step(x, energy, eps, generator=gen(30)), x - eps * grad + math.sqrt(2 * eps) * xi
    )
    # MALA: the Hastings ratio with the Gaussian proposal densities from SciPy.
    got, accepted = mala_step(x, energy, eps, generator=gen(30))
    g = gen(30)
    xi = torch.randn((50, 2), generator=g, dtype=torch.float64, device=device)
    prop = x - eps * grad + math.sqrt(2 * eps) * xi
    u = torch.rand(50, generator=g, dtype=torch.float64, device=device).cpu().numpy()
    grad_prop = (prop - mean) @ precision
    xs, ps = x.cpu().numpy(), prop.cpu().numpy()
    fwd_mean, back_mean = (x - eps * grad).cpu().numpy(), (prop - eps * grad_prop).cpu().numpy()
    expected = []
    for i in range(50):
        log_q_fwd = scipy.stats.multivariate_normal(fwd_mean[i], 2 * eps * np.eye(2)).logpdf(ps[i])
        log_q_back = scipy.stats.multivariate_normal(back_mean[i], 2 * eps * np.eye(2)).logpdf(xs[i])
        log_r = float(energy(x[i : i + 1]) - energy(prop[i : i + 1])) + log_q_back - log_q_fwd
        expected.append(np.log(u[i]) < log_r)
    assert accepted.cpu().numpy().tolist() == expected
    assert torch.equal(got, torch.where(accepted[:, None], prop, x))


def test_steps_keep_dtype_device_and_are_reproducible(device, gen):
    energy = gaussian_energy(0.0, 1.0)
    for dtype in (torch.float32, torch.float64):
        x = torch.zeros(8, 3, dtype=dtype, device=device)
        for step in (
            lambda x, g: metropolis_hastings_step(x, energy, 0.5, generator=g)[0],
            lambda x, g: langevin_step(x, energy, 0.1, generator=g),
            lambda x, g: mala_step(x, energy, 0.1, generator=g)[0],
        ):
            a, b, c = step(x, gen(1)), step(x, gen(1)), step(x, gen(2))
            assert a.dtype == dtype and a.device == x.device and a.shape == x.shape
            assert not a.requires_grad
            assert torch.equal(a, b) and not torch.equal(a, c)
    # Langevin under no_grad, on an energy with parameters: no gradient reaches the parameters.
    scale = torch.tensor(2.0, dtype=torch.float64, device=device, requires_grad=True)
    with torch.no_grad():
        out = langevin_step(
            torch.ones(4, 2, dtype=torch.float64, device=device), lambda x: scale * x.square().sum(1), 0.1
        )
    assert out.shape == (4, 2) and scale.grad is None


# --------------------------------------------------------------------------- running chains


def test_run_chain_burn_in_thinning_and_acceptance(device):
    def counter(x):
        return x + 1, (x[:, 0] % 2 == 0)  # "accepted" on even steps

    x0 = torch.zeros(3, 2, device=device)
    chain = run_chain(counter, x0, 4, burn_in=5, thin=3)
    # Steps 6, 9, 12, 15 are recorded (state after step t is t).
    assert chain.samples[:, 0, 0].tolist() == [8.0, 11.0, 14.0, 17.0]
    assert chain.final[0, 0].item() == 5 + 4 * 3
    # Acceptance counted over the 12 steps after burn-in: states 5..16 before each step, 6 even.
    torch.testing.assert_close(chain.acceptance_rate, torch.full((3,), 0.5, device=device))
    assert run_chain(lambda x: x + 1, x0, 2).acceptance_rate is None
    with pytest.raises(ValueError, match="burn_in"):
        run_chain(counter, x0, 2, burn_in=-1)
    with pytest.raises(ValueError, match="thin"):
        run_chain(counter, x0, 2, thin=0)
    with pytest.raises(ValueError, match="step must return states of shape"):
        run_chain(lambda x: x[:1], x0, 2)


# --------------------------------------------------------------------------- diagnostics


def numpy_autocorrelation(chain: np.ndarray, max_lag: int) -> np.ndarray:
    """rho(t) = sum_s (x_s - m)(x_{s+t} - m) / sum_s (x_s - m)^2, one lag at a time."""
    z = chain - chain.mean()
    denom = np.dot(z, z)
    return np.array([np.dot(z[: len(z) - t], z[t:]) / denom for t in range(max_lag + 1)])


def numpy_tau(samples: np.ndarray) -> float:
    """Stan's multi-chain estimate of the integrated autocorrelation time (Geyer's initial monotone
    sequence), written out with loops for samples of shape (S, C)."""
    n, m = samples.shape
    acov = np.empty((m, n))
    for c in range(m):
        z = samples[:, c] - samples[:, c].mean()
        for t in range(n):
            acov[c, t] = np.dot(z[: n - t], z[t:]) / n
    mean_var = acov[:, 0].mean() * n / (n - 1)
    var_plus = mean_var * (n - 1) / n
    if m > 1:
        var_plus += samples.mean(axis=0).var(ddof=1)
    rho = 1 - (mean_var - acov.mean(axis=0)) / var_plus
    total, previous = 0.0, math.inf
    for k in range(n // 2):
        pair = rho[2 * k] + rho[2 * k + 1]
        if pair <= 0:
            break
        previous = min(previous, pair)
        total += previous
    return -1 + 2 * total


def numpy_split_rhat(samples: np.ndarray) -> float:
    n = samples.shape[0] // 2
    halves = np.concatenate([samples[:n], samples[samples.shape[0] - n :]], axis=1)
    w = halves.var(axis=0, ddof=1).mean()
    b_over_n = halves.mean(axis=0).var(ddof=1)
    return math.sqrt(((n - 1) / n * w + b_over_n) / w)


def ar1(phi: float, length: int, chains: int, seed: int, offsets=None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((length, chains))
    x = np.empty((length, chains))
    x[0] = noise[0] / math.sqrt(1 - phi**2)  # start in the stationary law
    for t in range(1, length):
        x[t] = phi * x[t - 1] + noise[t]
    return x if offsets is None else x + np.asarray(offsets)


def test_autocorrelation_equals_the_direct_sum(device):
    samples = ar1(0.7, 300, 3, seed=0)
    rho = autocorrelation(torch.tensor(samples, device=device), max_lag=40).cpu().numpy()
    assert rho.shape == (41, 3)
    for c in range(3):
        np.testing.assert_allclose(rho[:, c], numpy_autocorrelation(samples[:, c], 40), atol=1e-10)
    # Trailing coordinates are handled one by one; a float32 input gives a float32 result.
    multi = torch.tensor(np.stack([samples, -2 * samples], axis=-1), dtype=torch.float32, device=device)
    out = autocorrelation(multi, max_lag=5)
    assert out.shape == (6, 3, 2) and out.dtype == torch.float32
    torch.testing.assert_close(out[..., 0], out[..., 1])
    # A chain that never moves is perfectly correlated with itself.
    stuck = autocorrelation(torch.ones(10, 2, device=device))
    assert torch.equal(stuck, torch.ones(10, 2, device=device))


@pytest.mark.parametrize(("phi", "chains"), [(0.0, 1), (0.5, 4), (0.9, 2), (-0.4, 3)])
def test_tau_and_ess_equal_an_independent_implementation(phi, chains, device):
    samples = ar1(phi, 400, chains, seed=int(10 * abs(phi)) + chains)
    tau = integrated_autocorrelation_time(torch.tensor(samples, device=device)).item()
    assert tau == pytest.approx(numpy_tau(samples), rel=1e-8)
    ess = effective_sample_size(torch.tensor(samples, device=device)).item()
    assert ess == pytest.approx(400 * chains / numpy_tau(samples), rel=1e-8)


@pytest.mark.parametrize("phi", [0.0, 0.6, 0.9])
def test_ess_of_ar1_chains_matches_the_closed_form(phi, device):
    """tau = (1 + phi) / (1 - phi) for x_{t+1} = phi x_t + noise; long chains pin the estimate."""
    samples = torch.tensor(ar1(phi, 20_000, 4, seed=1), device=device)
    tau = integrated_autocorrelation_time(samples).item()
    assert tau == pytest.approx((1 + phi) / (1 - phi), rel=0.15)
    # Thinning by 20 gives an AR(1) chain with coefficient phi^20: tau falls to (1 + phi^20) / (1 - phi^20).
    thinned = samples[::20]
    tau_thinned = integrated_autocorrelation_time(thinned).item()
    assert tau_thinned == pytest.approx((1 + phi**20) / (1 - phi**20), rel=0.15)


def test_ess_sees_chains_that_disagree(device):
    """Two chains stuck around different means: R-hat and tau both sound the alarm."""
    agree = ar1(0.5, 1000, 4, seed=2)
    disagree = ar1(0.5, 1000, 4, seed=2, offsets=[0.0, 0.0, 3.0, 3.0])
    t_agree = torch.tensor(agree, device=device)
    t_disagree = torch.tensor(disagree, device=device)
    assert split_rhat(t_agree).item() < 1.01
    assert split_rhat(t_disagree).item() > 1.5
    assert effective_sample_size(t_disagree).item() < 0.1 * effective_sample_size(t_agree).item()
    for s in (agree, disagree):
        assert split_rhat(torch.tensor(s, device=device)).item() == pytest.approx(
            numpy_split_rhat(s), rel=1e-10
        )
    # A chain still burning in (a trend) disagrees with itself between its halves.
    trend = agree + np.linspace(0, 4, 1000)[:, None]
    assert split_rhat(torch.tensor(trend, device=device)).item() > 1.2


def test_mcmc_chain_ess_is_below_the_sample_count(device, gen):
    """A random-walk Metropolis chain with a small step is strongly correlated."""
    energy = gaussian_energy(0.0, 1.0)
    g = gen(31)
    x0 = torch.randn(4, 1, generator=gen(32), dtype=torch.float64, device=device)
    chain = run_chain(lambda x: metropolis_hastings_step(x, energy, 0.3, generator=g), x0, 2000, burn_in=200)
    ess = effective_sample_size(chain.samples.squeeze(-1)).item()
    assert 30 < ess < 0.2 * 8000
    assert split_rhat(chain.samples.squeeze(-1)).item() < 1.05


def test_total_variation_and_state_frequencies(device):
    rng = np.random.default_rng(0)
    p, q = rng.dirichlet(np.ones(6), size=2)
    tv = total_variation(torch.tensor(p, device=device), torch.tensor(q, device=device)).item()
    assert tv == pytest.approx(0.5 * np.abs(p - q).sum(), rel=1e-12)
    # TV = max over events |P(A) - Q(A)|: the event {p > q} attains it.
    assert tv == pytest.approx((p - q)[p > q].sum(), rel=1e-12)
    x = torch.tensor(rng.integers(0, 2, size=(200, 3)), dtype=torch.float64, device=device)
    freq = empirical_state_distribution(x).cpu().numpy()
    numbers = (x.cpu().numpy() * [4, 2, 1]).sum(axis=1).astype(int)
    np.testing.assert_allclose(freq, np.bincount(numbers, minlength=8) / 200)


def test_input_errors_name_the_argument(device):
    energy = gaussian_energy(0.0, 1.0)
    x = torch.zeros(4, 2, device=device)
    with pytest.raises(ValueError, match="step_size must be positive"):
        metropolis_hastings_step(x, energy, 0.0)
    with pytest.raises(TypeError, match="step_size"):
        langevin_step(x, energy, "big")
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        metropolis_hastings_step([0.0], energy, 0.1)
    with pytest.raises(TypeError, match="energy must be a callable"):
        metropolis_hastings_step(x, "E", 0.1)
    with pytest.raises(ValueError, match=r"energy must map states of shape \(4, 2\) to shape \(4,\)"):
        metropolis_hastings_step(x, lambda s: s.sum(), 0.1)
    with pytest.raises(ValueError, match="energy returned NaN"):
        mala_step(x, lambda s: s.sum(1) * math.nan, 0.1)
    with pytest.raises(ValueError, match="does not depend on x"):
        langevin_step(x, lambda s: torch.zeros(4, device=s.device), 0.1)
    with pytest.raises(ValueError, match="x must hold binary values"):
        bm_gibbs_sweep(x[:, :1] + 0.5, torch.zeros(1, 1, device=device), torch.zeros(1, device=device))
    with pytest.raises(ValueError, match="weight must be symmetric"):
        bm_gibbs_sweep(
            x, torch.tensor([[0.0, 1.0], [0.0, 0.0]], device=device), torch.zeros(2, device=device)
        )
    if device != "cpu":
        with pytest.raises(ValueError, match="generator is on"):
            metropolis_hastings_step(x, energy, 0.1, generator=torch.Generator())
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        rbm_gibbs_step(
            x,
            torch.zeros(2, 3, device=device),
            torch.zeros(2, device=device),
            torch.zeros(3, device=device),
            generator=1,
        )
    with pytest.raises(ValueError, match="samples must hold at least 4 steps"):
        effective_sample_size(torch.zeros(3, 2, device=device))
    with pytest.raises(ValueError, match=r"samples must have shape \(S, C, ...\)"):
        autocorrelation(torch.zeros(5, device=device))
    with pytest.raises(ValueError, match="max_lag"):
        autocorrelation(torch.zeros(5, 1, device=device), max_lag=5)
    with pytest.raises(ValueError, match="p and q must have the same shape"):
        total_variation(torch.tensor([0.5, 0.5]), torch.tensor([1.0, 0.0, 0.0]))
