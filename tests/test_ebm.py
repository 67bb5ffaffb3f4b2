"""genlib.ebm and genlib.ebm_training against independent references.

- Exact log Z by chunked enumeration equals a brute-force sum written with itertools and SciPy's
  logsumexp in float64; it stays finite where exp(-E) overflows.
- The RBM free energy equals the explicit sum over hidden states; log Z summed over either layer
  equals the brute-force sum over the joint; the conditionals equal ratios of joint probabilities.
- The exact data-minus-model gradients equal autograd's gradient of the exact log-likelihood.
- On a tiny RBM, the expected CD-k gradient (computed exactly with the k-step transition matrix)
  approaches the exact gradient as k grows, and sampled CD-k agrees with its expectation.
- Training increases the exact log-likelihood; the neural energy, the replay buffer and the data
  sets behave as documented.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.special
import scipy.stats
import torch

from genlib.data.binary_patterns import bars_and_stripes, sample_bars_and_stripes
from genlib.data.toy_densities import Banana, gmm_box_probabilities
from genlib.ebm import (
    MAX_ENUMERATION_UNITS,
    RBM,
    NeuralEnergy,
    binary_states,
    bm_conditional_probs,
    bm_energy,
    bm_exact_gradient,
    bm_log_partition,
    bm_log_prob,
    boltzmann_log_probs,
    grid_log_partition,
    log_partition,
    random_bm,
    rbm_energy,
    rbm_exact_gradient,
    rbm_free_energy,
    rbm_gradient,
    rbm_hidden_free_energy,
    rbm_hidden_probs,
    rbm_log_partition,
    rbm_log_prob,
    rbm_sample_exact,
    rbm_visible_probs,
    state_index,
)
from genlib.ebm_training import (
    ReplayBuffer,
    rbm_cd_gradient,
    rbm_pcd_gradient,
    short_run_langevin,
    train_neural_energy,
    train_rbm,
)
from genlib.mixtures import GaussianMixture
from genlib.sampling import sample_categorical


def all_states(d: int) -> np.ndarray:
    """{0,1}^d in itertools order (unit 1 most significant), float64."""
    return np.array(list(itertools.product([0.0, 1.0], repeat=d)))


def bm_params(d: int, scale: float, seed: int, device: str, dtype=torch.float64):
    rng = np.random.default_rng(seed)
    a = rng.normal(0, scale, (d, d))
    w = np.triu(a, 1) + np.triu(a, 1).T
    b = rng.normal(0, scale, d)
    return w, b, torch.tensor(w, dtype=dtype, device=device), torch.tensor(b, dtype=dtype, device=device)


def bm_energy_numpy(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """-sum_{j<k} W_jk x_j x_k - b.x, written pair by pair."""
    e = -(x @ b)
    d = len(b)
    for j in range(d):
        for k in range(j + 1, d):
            e = e - w[j, k] * x[:, j] * x[:, k]
    return e


def rbm_params(d: int, h: int, scale: float, seed: int, device: str, dtype=torch.float64):
    rng = np.random.default_rng(seed)
    w, b, c = rng.normal(0, scale, (d, h)), rng.normal(0, 1, d), rng.normal(0, 1, h)
    return (w, b, c), tuple(torch.tensor(t, dtype=dtype, device=device) for t in (w, b, c))


# --------------------------------------------------------------------------- enumeration


def test_binary_states_order_and_state_index(device):
    states = binary_states(4, device=device)
    np.testing.assert_array_equal(states.cpu().numpy(), all_states(4))
    assert states.dtype == torch.float32 and states.device.type == torch.device(device).type
    assert torch.equal(state_index(states), torch.arange(16, device=device))
    part = binary_states(10, start=100, stop=140, dtype=torch.float64, device=device)
    assert torch.equal(state_index(part), torch.arange(100, 140, device=device))
    assert binary_states(3, start=8).shape == (0, 3)
    with pytest.raises(ValueError, match=f"exact enumeration is for at most {MAX_ENUMERATION_UNITS} units"):
        binary_states(MAX_ENUMERATION_UNITS + 1)
    with pytest.raises(ValueError, match="start and stop"):
        binary_states(3, start=2, stop=9)
    with pytest.raises(ValueError, match="x must hold binary values"):
        state_index(torch.tensor([0.0, 2.0]))


@pytest.mark.parametrize(
    ("d", "scale", "temperature"), [(1, 1.0, 1.0), (4, 1.0, 0.5), (8, 0.7, 1.0), (11, 0.3, 3.0)]
)
def test_bm_log_partition_equals_brute_force(d, scale, temperature, device):
    w, b, weight, bias = bm_params(d, scale, seed=d, device=device)
    brute = scipy.special.logsumexp(-bm_energy_numpy(all_states(d), w, b) / temperature)
    for chunk_size in (1, 7, 2**16):
        got = bm_log_partition(weight, bias, temperature=temperature, chunk_size=chunk_size)
        assert got.shape == () and got.dtype == torch.float64
        assert got.item() == pytest.approx(brute, rel=1e-12, abs=1e-12)
    # The energy itself, pair by pair.
    x = torch.tensor(all_states(d), device=device)
    np.testing.assert_allclose(
        bm_energy(x, weight, bias).cpu().numpy(), bm_energy_numpy(all_states(d), w, b), atol=1e-12
    )


def test_log_partition_is_stable_where_exp_overflows(device):
    """Couplings of size 60 in float32: exp(-E) overflows (and the naive log Z is inf), the chunked
    logsumexp does not, and agrees with float64 brute force."""
    w, b, weight, bias = bm_params(9, 60.0, seed=1, device=device, dtype=torch.float32)
    energies = bm_energy(binary_states(9, device=device), weight, bias)
    assert torch.isinf(torch.exp(-energies).sum().log())  # the naive way fails
    got = bm_log_partition(weight, bias, chunk_size=100)
    brute = scipy.special.logsumexp(
        -bm_energy_numpy(all_states(9), w.astype(np.float32), b.astype(np.float32))
    )
    assert torch.isfinite(got) and got.dtype == torch.float32
    assert got.item() == pytest.approx(brute, rel=1e-5)


def test_boltzmann_probabilities_and_temperature(device):
    w, b, weight, bias = bm_params(6, 1.0, seed=2, device=device)
    energy = lambda s: bm_energy(s, weight, bias)  # noqa: E731
    e = bm_energy_numpy(all_states(6), w, b)
    for t in (0.3, 1.0, 5.0):
        p = boltzmann_log_probs(energy, 6, temperature=t, device=device).exp().cpu().numpy()
        np.testing.assert_allclose(p, scipy.special.softmax(-e / t), rtol=1e-10)
        np.testing.assert_allclose(
            bm_log_prob(torch.tensor(all_states(6), device=device), weight, bias, temperature=t)
            .exp()
            .cpu()
            .numpy(),
            p,
            rtol=1e-10,
        )
    # T -> 0 concentrates on the lowest energy; T -> infinity spreads evenly.
    cold = boltzmann_log_probs(energy, 6, temperature=0.01, device=device).exp().cpu().numpy()
    hot = boltzmann_log_probs(energy, 6, temperature=1e4, device=device).exp().cpu().numpy()
    assert cold[np.argmin(e)] > 0.999
    np.testing.assert_allclose(hot, 1 / 64, rtol=1e-2)

    # log_partition takes any energy: states with +inf energy have probability zero.
    def constrained(s):  # only the 15 states with two units on
        return torch.where(s.sum(1) == 2, torch.zeros(s.shape[0], dtype=s.dtype, device=s.device), math.inf)

    assert log_partition(constrained, 6, device=device).item() == pytest.approx(math.log(15))


def test_bm_conditionals_are_ratios_of_the_joint(device):
    w, b, weight, bias = bm_params(5, 1.2, seed=3, device=device)
    x = all_states(5)
    p = scipy.special.softmax(-bm_energy_numpy(x, w, b) / 0.7)
    index = {tuple(row): i for i, row in enumerate(x)}
    cond = bm_conditional_probs(torch.tensor(x, device=device), weight, bias, temperature=0.7).cpu().numpy()
    for i, row in enumerate(x):
        for j in range(5):
            on, off = row.copy(), row.copy()
            on[j], off[j] = 1, 0
            expected = p[index[tuple(on)]] / (p[index[tuple(on)]] + p[index[tuple(off)]])
            assert cond[i, j] == pytest.approx(expected, rel=1e-10)


def test_bm_exact_gradient_equals_autograd(device):
    d = 6
    _, _, weight, bias = bm_params(d, 0.8, seed=4, device=device)
    data = (
        torch.rand(40, d, generator=torch.Generator(device=device).manual_seed(0), device=device) < 0.3
    ).double()
    grad_w, grad_b = bm_exact_gradient(data, weight, bias, chunk_size=13)
    # Autograd: the couplings as one parameter per pair (the upper triangle), log P by enumeration.
    upper = torch.triu(weight, 1).clone().requires_grad_(True)
    b = bias.clone().requires_grad_(True)
    sym = upper + upper.T
    log_z = torch.logsumexp(
        0.5
        * (
            (binary_states(d, dtype=torch.float64, device=device) @ sym)
            * binary_states(d, dtype=torch.float64, device=device)
        ).sum(1)
        + binary_states(d, dtype=torch.float64, device=device) @ b,
        0,
    )
    mean_ll = (0.5 * ((data @ sym) * data).sum(1) + data @ b).mean() - log_z
    mean_ll.backward()
    torch.testing.assert_close(torch.triu(grad_w, 1), torch.triu(upper.grad, 1))
    torch.testing.assert_close(grad_w, grad_w.T)
    assert torch.count_nonzero(grad_w.diagonal()) == 0
    torch.testing.assert_close(grad_b, b.grad)


def test_random_bm_is_a_valid_machine(device):
    g = torch.Generator(device=device).manual_seed(0)
    w, b = random_bm(7, scale=2.0, generator=g, device=device)
    assert torch.equal(w, w.T) and torch.count_nonzero(w.diagonal()) == 0 and b.shape == (7,)
    w2, _ = random_bm(7, scale=2.0, generator=torch.Generator(device=device).manual_seed(0), device=device)
    assert torch.equal(w, w2)


# --------------------------------------------------------------------------- RBM


@pytest.mark.parametrize(("d", "h"), [(5, 3), (3, 6), (4, 4)])
def test_rbm_free_energy_and_log_partition_equal_explicit_sums(d, h, device):
    (w, b, c), (weight, vb, hb) = rbm_params(d, h, 1.3, seed=d * 10 + h, device=device)
    v, hs = all_states(d), all_states(h)
    joint = -(v @ w @ hs.T) - (v @ b)[:, None] - (hs @ c)[None, :]  # E(v, h), shape (2^D, 2^H)
    np.testing.assert_allclose(
        rbm_energy(
            torch.tensor(v, device=device)[:, None], torch.tensor(hs, device=device)[None], weight, vb, hb
        )
        .cpu()
        .numpy(),
        joint,
        atol=1e-12,
    )
    free_v = rbm_free_energy(torch.tensor(v, device=device), weight, vb, hb).cpu().numpy()
    np.testing.assert_allclose(free_v, -scipy.special.logsumexp(-joint, axis=1), atol=1e-12)
    free_h = rbm_hidden_free_energy(torch.tensor(hs, device=device), weight, vb, hb).cpu().numpy()
    np.testing.assert_allclose(free_h, -scipy.special.logsumexp(-joint, axis=0), atol=1e-12)
    brute = scipy.special.logsumexp(-joint)
    assert rbm_log_partition(weight, vb, hb, chunk_size=3).item() == pytest.approx(brute, rel=1e-12)
    # Summing out the other layer gives the same number: swap the roles of the layers.
    assert rbm_log_partition(weight.T.contiguous(), hb, vb).item() == pytest.approx(brute, rel=1e-12)
    log_p = rbm_log_prob(torch.tensor(v, device=device), weight, vb, hb)
    assert torch.logsumexp(log_p, 0).item() == pytest.approx(0.0, abs=1e-12)


def test_rbm_conditionals_are_ratios_of_the_joint(device):
    (w, b, c), (weight, vb, hb) = rbm_params(3, 2, 1.5, seed=7, device=device)
    v, hs = all_states(3), all_states(2)
    joint = np.exp(v @ w @ hs.T + (v @ b)[:, None] + (hs @ c)[None, :])  # unnormalised P(v, h)
    p_h = rbm_hidden_probs(torch.tensor(v, device=device), weight, hb).cpu().numpy()
    p_v = rbm_visible_probs(torch.tensor(hs, device=device), weight, vb).cpu().numpy()
    for k in range(2):
        on = hs[:, k] == 1
        np.testing.assert_allclose(p_h[:, k], joint[:, on].sum(1) / joint.sum(1), rtol=1e-12)
    for j in range(3):
        on = v[:, j] == 1
        np.testing.assert_allclose(p_v[:, j], joint[on].sum(0) / joint.sum(0), rtol=1e-12)


@pytest.mark.parametrize(("d", "h"), [(6, 3), (3, 5)])
def test_rbm_exact_gradient_equals_autograd(d, h, device):
    _, (weight, vb, hb) = rbm_params(d, h, 1.0, seed=d + h, device=device)
    data = (
        torch.rand(30, d, generator=torch.Generator(device=device).manual_seed(1), device=device) < 0.5
    ).double()
    grads = rbm_exact_gradient(data, weight, vb, hb, chunk_size=5)
    params = [t.clone().requires_grad_(True) for t in (weight, vb, hb)]
    mean_ll = (-rbm_free_energy(data, *params) - rbm_log_partition(*params)).mean()
    auto = torch.autograd.grad(mean_ll, params)
    for got, expected in zip(grads, auto, strict=True):
        torch.testing.assert_close(got, expected)


def exact_model_samples(weight, vb, hb, n, generator):
    d = weight.shape[0]
    probs = rbm_log_prob(binary_states(d, dtype=weight.dtype, device=weight.device), weight, vb, hb).exp()
    return binary_states(d, dtype=weight.dtype, device=weight.device)[
        sample_categorical(probs, n, generator=generator)
    ]


def test_rbm_gradient_with_exact_model_samples_is_unbiased(device):
    _, (weight, vb, hb) = rbm_params(5, 3, 1.0, seed=11, device=device)
    g = torch.Generator(device=device).manual_seed(2)
    data = (torch.rand(50, 5, generator=g, device=device) < 0.4).double()
    exact = rbm_exact_gradient(data, weight, vb, hb)
    negative = exact_model_samples(weight, vb, hb, 200_000, g)
    estimate = rbm_gradient(data, negative, weight, vb, hb)
    for got, expected in zip(estimate, exact, strict=True):
        assert (got - expected).abs().max().item() < 5 * 0.5 / math.sqrt(200_000)


def test_rbm_exact_samples_follow_the_joint(device):
    """Ancestral samples through the exact hidden marginal: chi-square against P(v, h) over all states."""
    (w, b, c), (weight, vb, hb) = rbm_params(3, 3, 1.5, seed=13, device=device)
    v, h = rbm_sample_exact(60_000, weight, vb, hb, generator=torch.Generator(device=device).manual_seed(0))
    assert v.shape == (60_000, 3) and h.shape == (60_000, 3) and v.dtype == torch.float64
    joint = all_states(6)  # (v, h) with v first
    log_p = joint[:, :3] @ w @ joint[:, 3:].T
    log_p = np.diag(log_p) + joint[:, :3] @ b + joint[:, 3:] @ c
    p = scipy.special.softmax(log_p)
    counts = torch.bincount(state_index(torch.cat([v, h], dim=1)), minlength=64).cpu().numpy()
    assert scipy.stats.chisquare(counts, 60_000 * p).pvalue > 1e-3
    # Power: the same counts against the joint of an RBM with a slightly different hidden bias.
    q = scipy.special.softmax(log_p + 0.2 * joint[:, 3])
    assert scipy.stats.chisquare(counts, 60_000 * q).pvalue < 1e-6


def cd_expectation(data, weight, vb, hb, k):
    """The exact expected CD-k gradient: the chain's distribution after k steps from each data vector
    is a row of T^k, with T(v' | v) = sum_h P(h | v) P(v' | h) computed by enumeration."""
    d, h = weight.shape
    vs = binary_states(d, dtype=weight.dtype, device=weight.device)
    hs = binary_states(h, dtype=weight.dtype, device=weight.device)

    def bernoulli(states, probs):  # P(states | probs) for every pair: (M, S)
        return torch.exp(
            torch.xlogy(states[None], probs[:, None]).sum(-1)
            + torch.xlogy(1 - states[None], 1 - probs[:, None]).sum(-1)
        )

    p_h_given_v = bernoulli(hs, torch.sigmoid(vs @ weight + hb))  # (2^D, 2^H)
    p_v_given_h = bernoulli(vs, torch.sigmoid(hs @ weight.T + vb))  # (2^H, 2^D)
    transition = p_h_given_v @ p_v_given_h  # (2^D, 2^D)
    start = torch.zeros(vs.shape[0], dtype=weight.dtype, device=weight.device)
    start.index_add_(
        0,
        state_index(data),
        torch.full((data.shape[0],), 1.0 / data.shape[0], dtype=weight.dtype, device=weight.device),
    )
    negative = start @ torch.linalg.matrix_power(transition, k)  # (2^D,)
    h_mean = torch.sigmoid(vs @ weight + hb)
    h_data = torch.sigmoid(data @ weight + hb)
    return (
        data.T @ h_data / data.shape[0] - (vs * negative[:, None]).T @ h_mean,
        data.mean(0) - negative @ vs,
        h_data.mean(0) - negative @ h_mean,
    )


def test_cd_k_approaches_the_exact_gradient_as_k_grows(device):
    _, (weight, vb, hb) = rbm_params(4, 3, 2.5, seed=3, device=device)  # strong weights: slow mixing
    data = bars_and_stripes(2, dtype=torch.float64, device=device)  # the 6 patterns of a 2 x 2 image
    exact = rbm_exact_gradient(data, weight, vb, hb)
    errors = []
    for k in (1, 2, 5, 20, 100):
        expected_cd = cd_expectation(data, weight, vb, hb, k)
        errors.append(max((e - x).abs().max().item() for e, x in zip(expected_cd, exact, strict=True)))
    assert errors[0] > 0.05  # CD-1 is clearly biased on this model
    assert all(
        later < earlier for earlier, later in zip(errors[:-1], errors[1:], strict=True)
    )  # and the bias shrinks
    assert errors[-1] < 1e-6  # to nothing
    # Sampled CD-k agrees with its exact expectation (each data row repeated 20000 times).
    big = data.repeat(20_000, 1)
    g = torch.Generator(device=device).manual_seed(4)
    for k in (1, 5):
        sampled = rbm_cd_gradient(big, weight, vb, hb, k=k, generator=g)
        for got, expected in zip(sampled, cd_expectation(data, weight, vb, hb, k), strict=True):
            assert (got - expected).abs().max().item() < 5 * 0.5 / math.sqrt(big.shape[0])


def test_cd_and_pcd_draw_as_documented(device):
    _, (weight, vb, hb) = rbm_params(6, 4, 1.0, seed=5, device=device)
    data = (
        torch.rand(20, 6, generator=torch.Generator(device=device).manual_seed(0), device=device) < 0.5
    ).double()
    from genlib.mcmc import rbm_gibbs_step

    g = torch.Generator(device=device).manual_seed(9)
    v = data
    for _ in range(3):
        v, _ = rbm_gibbs_step(v, weight, vb, hb, generator=g)
    expected = rbm_gradient(data, v, weight, vb, hb)
    got = rbm_cd_gradient(data, weight, vb, hb, k=3, generator=torch.Generator(device=device).manual_seed(9))
    for a, b in zip(got, expected, strict=True):
        assert torch.equal(a, b)
    chains = data[:7].clone()
    grads, chains_next = rbm_pcd_gradient(
        data, chains, weight, vb, hb, k=3, generator=torch.Generator(device=device).manual_seed(9)
    )
    v = chains
    g = torch.Generator(device=device).manual_seed(9)
    for _ in range(3):
        v, _ = rbm_gibbs_step(v, weight, vb, hb, generator=g)
    assert torch.equal(chains_next, v)
    for a, b in zip(grads, rbm_gradient(data, v, weight, vb, hb), strict=True):
        assert torch.equal(a, b)


def test_training_raises_the_exact_log_likelihood(device):
    """CD-1 and PCD on 3 x 3 bars and stripes: the exact log-likelihood goes up, towards the floor
    -log 14 of the data distribution, and a seed reproduces a run."""
    data = sample_bars_and_stripes(
        300, 3, generator=torch.Generator(device=device).manual_seed(0), device=device
    )
    floor = -math.log(14)
    final = {}
    for method in ("cd", "pcd"):
        rbm = RBM(9, 16, init_std=0.1, generator=torch.Generator(device=device).manual_seed(1), device=device)
        rbm.init_visible_bias(data)
        history = train_rbm(
            rbm,
            data,
            method=method,
            k=1,
            num_epochs=60,
            batch_size=20,
            learning_rate=0.3,
            eval_every=20,
            generator=torch.Generator(device=device).manual_seed(2),
        )
        assert history.epochs == [0, 20, 40, 60]
        ll = history.train_log_likelihood
        assert ll[-1] > ll[0] + 1.0 and ll[-1] < floor
        assert math.isnan(history.eval_log_likelihood[0])
        final[method] = ll[-1]
    rbm = RBM(9, 16, init_std=0.1, generator=torch.Generator(device=device).manual_seed(1), device=device)
    rbm.init_visible_bias(data)
    again = train_rbm(
        rbm,
        data,
        method="pcd",
        num_epochs=60,
        batch_size=20,
        learning_rate=0.3,
        eval_every=20,
        generator=torch.Generator(device=device).manual_seed(2),
    )
    assert again.train_log_likelihood[-1] == final["pcd"]


def test_rbm_module_matches_the_functions(device):
    rbm = RBM(
        5,
        3,
        init_std=0.5,
        generator=torch.Generator(device=device).manual_seed(0),
        dtype=torch.float64,
        device=device,
    )
    v = binary_states(5, dtype=torch.float64, device=device)
    torch.testing.assert_close(rbm.free_energy(v), rbm_free_energy(v, *rbm.params))
    torch.testing.assert_close(
        rbm.log_prob(v).exp().sum(), torch.tensor(1.0, dtype=torch.float64, device=device)
    )
    assert rbm.log_partition().item() == pytest.approx(rbm_log_partition(*rbm.params).item())
    data = torch.tensor([[1.0, 1, 0, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.float64, device=device)
    rbm.init_visible_bias(data, eps=0.01)
    torch.testing.assert_close(
        torch.sigmoid(rbm.visible_bias.detach()),
        torch.tensor([0.99, 0.5, 0.01, 0.01, 0.01], dtype=torch.float64, device=device),
    )


# --------------------------------------------------------------------------- neural energy


def test_grid_log_partition_of_known_energies(device):
    """A Gaussian energy x^2 / (2 s^2) has log Z = (d/2) log(2 pi s^2); a normalised density has 0."""
    s = 0.8
    gauss = lambda x: x.square().sum(1) / (2 * s**2)  # noqa: E731
    for dim in (1, 2, 3):
        got = grid_log_partition(gauss, -7.0, 7.0, num_points=60 if dim == 3 else 400, dim=dim, device=device)
        assert got.item() == pytest.approx(dim / 2 * math.log(2 * math.pi * s**2), abs=1e-6)
    banana = Banana(1.0, 0.3, 0.5, dtype=torch.float64, device=device)
    assert grid_log_partition(
        banana.energy, -8.0, 8.0, num_points=500, chunk_size=10_000, device=device
    ).item() == pytest.approx(0.0, abs=1e-4)


def test_neural_energy_shapes_integrability_and_seed(device):
    g = torch.Generator(device=device).manual_seed(0)
    model = NeuralEnergy(2, 16, generator=g, device=device)
    x = torch.randn(7, 2, device=device)
    e = model(x)
    assert e.shape == (7,) and e.dtype == torch.float32
    twin = NeuralEnergy(2, 16, generator=torch.Generator(device=device).manual_seed(0), device=device)
    torch.testing.assert_close(twin(x), e)
    # The quadratic term dominates far away: the energy grows like |x|^2 / (2 s^2), so Z is finite.
    far = torch.tensor([[100.0, 0.0], [0.0, -200.0]], device=device)
    assert (model(far) > 0.9 * far.square().sum(1) / (2 * model.prior_std**2)).all()
    log_z = grid_log_partition(model, -30.0, 30.0, num_points=300, dtype=torch.float32, device=device)
    assert torch.isfinite(log_z)
    with pytest.raises(ValueError, match=r"x must have shape \(N, 2\)"):
        model(torch.zeros(3, 3, device=device))


def test_replay_buffer(device):
    g = torch.Generator(device=device).manual_seed(0)
    buffer = ReplayBuffer(1000, -2.0, 2.0, reinit_prob=0.3, generator=g, device=device)
    assert buffer.samples.shape == (1000, 2) and buffer.samples.min() >= -2 and buffer.samples.max() <= 2
    buffer.update(torch.arange(1000, device=device), torch.full((1000, 2), 0.5, device=device))
    x, slots = buffer.sample(5000, generator=g)
    fresh = (x != 0.5).any(dim=1).double().mean().item()
    assert fresh == pytest.approx(0.3, abs=0.03)  # the reinitialised fraction
    assert slots.shape == (5000,) and slots.max() < 1000
    buffer.update(slots[:3], torch.tensor([[9.0, -9.0], [0.1, 0.2], [1.0, 1.0]], device=device))
    torch.testing.assert_close(buffer.samples[slots[0]], torch.tensor([2.0, -2.0], device=device))  # clamped


def test_neural_energy_training_moves_mass_to_the_data(device):
    """A few hundred steps on a Gaussian blob: the normalised model puts its mean near the data's, and
    short-run Langevin samples from the trained energy end up near the data."""
    g = torch.Generator(device=device).manual_seed(0)
    centre = torch.tensor([1.5, -1.0], device=device)
    data = centre + 0.4 * torch.randn(2000, 2, generator=g, device=device)
    model = NeuralEnergy(2, 32, num_layers=2, generator=g, device=device)
    buffer = ReplayBuffer(500, -4.0, 4.0, generator=g, device=device)
    history = train_neural_energy(
        model,
        data,
        num_steps=150,
        batch_size=64,
        langevin_steps=10,
        step_size=0.05,
        buffer=buffer,
        learning_rate=5e-3,
        generator=g,
    )
    assert len(history.loss) == 150 and all(math.isfinite(v) for v in history.loss)
    # The model's mean by quadrature on a grid.
    n = 120
    axis = torch.linspace(-5, 5, n, device=device)
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), dim=-1).reshape(-1, 2)
    with torch.no_grad():
        weights = torch.softmax(-model(grid), dim=0)
    model_mean = weights @ grid
    assert (model_mean - centre).norm().item() < 0.5
    samples = short_run_langevin(model, buffer.samples[:300].clone(), 20, 0.05, generator=g)
    assert (samples.mean(0) - centre).norm().item() < 0.5


# --------------------------------------------------------------------------- data


def test_bars_and_stripes(device):
    for side in (1, 2, 3, 4):
        patterns = bars_and_stripes(side, device=device)
        assert patterns.shape == (2 ** (side + 1) - 2, side * side)
        assert torch.unique(patterns, dim=0).shape[0] == patterns.shape[0]
        images = patterns.reshape(-1, side, side)
        rows_constant = (images == images[:, :, :1]).all(dim=(1, 2))
        cols_constant = (images == images[:, :1, :]).all(dim=(1, 2))
        assert (rows_constant | cols_constant).all()
    samples = sample_bars_and_stripes(
        14_000, 3, generator=torch.Generator(device=device).manual_seed(0), device=device
    )
    counts = torch.bincount(state_index(samples), minlength=512).cpu().numpy()
    allowed = state_index(bars_and_stripes(3, device=device)).cpu().numpy()
    assert counts.sum() == counts[allowed].sum()
    assert scipy.stats.chisquare(counts[allowed]).pvalue > 1e-3


def test_banana_moments_and_density(device):
    banana = Banana(1.2, 0.5, 0.4, dtype=torch.float64, device=device)
    x = banana.sample(200_000, generator=torch.Generator(device=device).manual_seed(0))
    torch.testing.assert_close(x.mean(0), banana.mean(), atol=0.02, rtol=0)
    torch.testing.assert_close(torch.cov(x.T), banana.covariance(), atol=0.03, rtol=0.03)
    # log P against SciPy's normal densities, factor by factor.
    pts = x[:5].cpu().numpy()
    expected = scipy.stats.norm(0, 1.2).logpdf(pts[:, 0]) + scipy.stats.norm(
        0.5 * (pts[:, 0] ** 2 - 1.44), 0.4
    ).logpdf(pts[:, 1])
    np.testing.assert_allclose(banana.log_prob(x[:5]).cpu().numpy(), expected, rtol=1e-12)


def test_gmm_box_probabilities(device):
    mixture = GaussianMixture(
        weights=torch.tensor([0.2, 0.8], dtype=torch.float64, device=device),
        means=torch.tensor([[0.0, 1.0], [-1.0, 0.5]], dtype=torch.float64, device=device),
        covariances=torch.tensor([[0.5, 2.0], [1.0, 0.3]], dtype=torch.float64, device=device),
        covariance_type="diag",
    )
    edges = torch.tensor([-8.0, -1.0, 0.0, 0.5, 8.0], dtype=torch.float64, device=device)
    probs = gmm_box_probabilities(mixture, edges).cpu().numpy()
    assert probs.shape == (4, 4) and probs.sum() == pytest.approx(1.0, abs=1e-6)
    # One cell against SciPy's multivariate normal CDF (inclusion-exclusion over the corners).
    lo, hi = np.array([-1.0, 0.0]), np.array([0.0, 0.5])
    expected = 0.0
    for w, m, v in zip([0.2, 0.8], [[0.0, 1.0], [-1.0, 0.5]], [[0.5, 2.0], [1.0, 0.3]], strict=True):
        mvn = scipy.stats.multivariate_normal(m, np.diag(v))
        expected += w * (mvn.cdf(hi) - mvn.cdf([lo[0], hi[1]]) - mvn.cdf([hi[0], lo[1]]) + mvn.cdf(lo))
    assert probs[1, 2] == pytest.approx(expected, rel=1e-5)
    full = GaussianMixture(mixture.weights, mixture.means, torch.diag_embed(mixture.covariances))
    with pytest.raises(ValueError, match="diagonal or spherical"):
        gmm_box_probabilities(full, edges)


# --------------------------------------------------------------------------- input checks


def test_input_errors_name_the_argument(device):
    w = torch.zeros(3, 3, device=device)
    b = torch.zeros(3, device=device)
    x = torch.zeros(2, 3, device=device)
    with pytest.raises(ValueError, match="weight must be symmetric"):
        bm_energy(x, torch.triu(torch.ones(3, 3, device=device), 1), b)
    with pytest.raises(ValueError, match="weight must have a zero diagonal"):
        bm_energy(x, torch.eye(3, device=device), b)
    with pytest.raises(ValueError, match=r"bias must have shape \(3,\)"):
        bm_energy(x, w, torch.zeros(4, device=device))
    with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., 3\)"):
        bm_energy(torch.zeros(2, 4, device=device), w, b)
    with pytest.raises(ValueError, match="x must hold binary values"):
        bm_energy(x + 0.5, w, b)
    with pytest.raises(TypeError, match="bias has dtype torch.float64 but weight has torch.float32"):
        bm_energy(x, w, b.double())
    with pytest.raises(ValueError, match="temperature must be positive"):
        bm_log_partition(w, b, temperature=0.0)
    with pytest.raises(TypeError, match="temperature"):
        bm_log_partition(w, b, temperature="hot")
    with pytest.raises(ValueError, match="the number of units D is 30"):
        bm_log_partition(torch.zeros(30, 30, device=device), torch.zeros(30, device=device))
    with pytest.raises(ValueError, match="energy must map states"):
        log_partition(lambda s: s, 3)
    with pytest.raises(ValueError, match="energy returned NaN"):
        log_partition(lambda s: s.sum(1) * math.nan, 3)
    with pytest.raises(ValueError, match="both layers are too large"):
        rbm_log_partition(
            torch.zeros(30, 30, device=device), torch.zeros(30, device=device), torch.zeros(30, device=device)
        )
    with pytest.raises(ValueError, match=r"hidden_bias must have shape \(2,\)"):
        rbm_free_energy(x, torch.zeros(3, 2, device=device), b, torch.zeros(3, device=device))
    with pytest.raises(ValueError, match="method must be 'cd' or 'pcd'"):
        train_rbm(RBM(3, 2, device=device), x, method="pc")
    with pytest.raises(ValueError, match="k must be >= 1"):
        rbm_cd_gradient(x, torch.zeros(3, 2, device=device), b, torch.zeros(2, device=device), k=0)
    with pytest.raises(ValueError, match="dim must be 1, 2 or 3"):
        grid_log_partition(lambda p: p.sum(1), -1.0, 1.0, dim=4)
