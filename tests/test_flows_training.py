"""Flows as densities: log_prob integrates to one (2-D quadrature), samples follow log_prob
(chi-square on a grid, with a power check), maximum-likelihood training beats a Gaussian on
held-out two-moons data, and dequantization gives an upper bound on the discrete NLL."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch

from genlib.data.two_moons import sample_two_moons, two_moons_log_prob
from genlib.device import make_generator
from genlib.estimators import gaussian_log_likelihood, gaussian_mle
from genlib.flows import (
    Compose,
    ElementwiseAffine,
    Flow,
    Logit,
    build_glow,
    build_nice,
    build_realnvp,
    dequantized_bits_per_dim,
    dequantized_log_prob,
    fit_flow,
    mean_nll,
    standard_normal_log_prob,
    uniform_dequantize,
)

BUILDERS = {
    "nice": lambda seed: build_nice(2, num_couplings=4, hidden_features=16, seed=seed),
    "realnvp": lambda seed: build_realnvp(2, num_couplings=4, hidden_features=16, seed=seed),
    "glow": lambda seed: build_glow(2, num_steps=3, hidden_features=16, seed=seed),
}


def random_flow(name: str, seed: int, device: str, scale: float = 0.15) -> Flow:
    """A 2-D flow of family ``name`` with every parameter moved by Gaussian noise (not the identity)."""
    flow = Flow(BUILDERS[name](seed), (2,)).to(device=device, dtype=torch.float64)
    init = torch.randn(256, 2, generator=make_generator(seed, device), dtype=torch.float64, device=device)
    with torch.no_grad():
        flow.log_prob(init)  # ActNorm's data-dependent initialization
        generator = make_generator(seed + 1)
        for p in flow.parameters():
            p.add_(scale * torch.randn(p.shape, generator=generator, dtype=p.dtype).to(device))
    return flow


def grid(limit: float, n: int, device: str) -> tuple[torch.Tensor, float]:
    """Cell centres of an n x n grid over [-limit, limit]^2, shape (n*n, 2), and the cell area."""
    h = 2 * limit / n
    c = -limit + h * (torch.arange(n, dtype=torch.float64, device=device) + 0.5)
    xx, yy = torch.meshgrid(c, c, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1), h * h


@pytest.mark.parametrize("name", BUILDERS)
def test_log_prob_integrates_to_one(name, device):
    flow = random_flow(name, 0, device)
    points, area = grid(9.0, 600, device)
    with torch.no_grad():
        density = flow.log_prob(points).exp()
        z, ladj = flow.transform.call_and_ladj(points)
        wrong_sign = (standard_normal_log_prob(z) - ladj).exp()
    assert abs(density.sum().item() * area - 1) < 2e-3
    # power: the density with the log-determinant's sign flipped is not normalised
    assert abs(wrong_sign.sum().item() * area - 1) > 0.03


def cell_probabilities(flow: Flow, edges: np.ndarray, sub: int = 12) -> np.ndarray:
    """P(cell) for the cells of a square grid with the given edges, by midpoint quadrature."""
    n = len(edges) - 1
    h = (edges[1] - edges[0]) / sub
    centres = edges[0] + h * (np.arange(n * sub) + 0.5)
    xx, yy = np.meshgrid(centres, centres, indexing="ij")
    points = torch.tensor(np.stack([xx.ravel(), yy.ravel()], axis=1), dtype=flow.dtype, device=flow.device)
    with torch.no_grad():
        density = flow.log_prob(points).exp().cpu().numpy().reshape(n * sub, n * sub)
    return density.reshape(n, sub, n, sub).sum(axis=(1, 3)) * h * h


def chi_square_pvalue(samples: np.ndarray, probs: np.ndarray, edges: np.ndarray) -> float:
    counts, _, _ = np.histogram2d(samples[:, 0], samples[:, 1], bins=[edges, edges])
    inside = counts.ravel()
    observed = np.append(inside, len(samples) - inside.sum())  # the last cell: outside the grid
    p = np.append(probs.ravel(), max(1 - probs.sum(), 1e-12))
    return scipy.stats.chisquare(observed, len(samples) * p / p.sum()).pvalue


@pytest.mark.parametrize("name", BUILDERS)
def test_samples_follow_log_prob(name, device):
    flow = random_flow(name, 3, device)
    edges = np.linspace(-3, 3, 9)
    probs = cell_probabilities(flow, edges)
    samples = flow.sample(20_000, generator=make_generator(4, device)).cpu().numpy()
    assert chi_square_pvalue(samples, probs, edges) > 1e-3
    # power: samples of another flow of the same family are rejected
    other = random_flow(name, 5, device).sample(20_000, generator=make_generator(4, device)).cpu().numpy()
    assert chi_square_pvalue(other, probs, edges) < 1e-6


@pytest.mark.parametrize("name", BUILDERS)
def test_training_beats_a_gaussian_on_two_moons(name, device):
    train = sample_two_moons(2000, generator=make_generator(0, device), device=device)
    test = sample_two_moons(2000, generator=make_generator(1, device), device=device)
    mean, cov = gaussian_mle(train)
    gaussian_nll = -gaussian_log_likelihood(test, mean, cov).mean().item()
    true_nll = -two_moons_log_prob(test).mean().item()
    flow = Flow(BUILDERS[name](0), (2,)).to(device)
    before = mean_nll(flow, test).item()
    history = fit_flow(
        flow,
        train,
        num_steps=300,
        lr=5e-3,
        generator=make_generator(2, device),
        valid_data=test,
        progress=False,
    )
    after = mean_nll(flow, test).item()
    assert after == pytest.approx(history.valid_nll[-1], rel=1e-6)
    assert after < gaussian_nll - 0.2 < before  # far better than the best single Gaussian
    assert after > true_nll - 0.05  # and, on held-out data, not better than the truth


def test_fit_flow_is_seeded_and_records_its_history():
    train = sample_two_moons(500, generator=make_generator(0))
    valid = sample_two_moons(200, generator=make_generator(1))

    def run(seed: int) -> tuple[list[float], torch.Tensor]:
        flow = Flow(BUILDERS["realnvp"](0), (2,))
        history = fit_flow(
            flow, train, num_steps=30, batch_size=64, generator=make_generator(seed), valid_data=valid,
            eval_every=10, progress=False,
        )  # fmt: skip
        assert history.valid_steps == [10, 20, 30] and len(history.train_nll) == 30
        return history.train_nll, flow.sample(5, generator=make_generator(0))

    a, b, c = run(7), run(7), run(8)
    assert a[0] == b[0] and torch.equal(a[1], b[1])
    assert a[0] != c[0]
    with pytest.raises(ValueError, match="num_steps"):
        fit_flow(Flow(BUILDERS["nice"](0), (2,)), train, num_steps=0)
    with pytest.raises(TypeError, match="flow must be"):
        fit_flow(BUILDERS["nice"](0), train, num_steps=1)


def test_mean_nll_is_the_average_negative_log_prob(device):
    flow = random_flow("glow", 6, device)
    x = torch.randn(2500, 2, generator=make_generator(7, device), dtype=torch.float64, device=device)
    expected = -flow.log_prob(x).mean()
    torch.testing.assert_close(mean_nll(flow, x, batch_size=1000), expected.detach())
    assert flow.training  # mean_nll switched to eval mode and back


# --------------------------------------------------------------------------- dequantization


def test_uniform_dequantize(device):
    b = torch.randint(0, 4, (1000, 3), generator=make_generator(0, device), device=device)
    x = uniform_dequantize(b, 4, generator=make_generator(1, device))
    assert x.shape == b.shape and x.dtype == torch.float32 and x.device == b.device
    assert torch.equal(torch.floor(x * 4).long(), b)
    assert bool((x >= 0).all()) and bool((x < 1).all())
    # the offsets within each cell are uniform (KS test) and seeded
    offsets = (x.double() * 4 - b).reshape(-1).cpu().numpy()
    assert scipy.stats.kstest(offsets, "uniform").pvalue > 1e-3
    assert torch.equal(x, uniform_dequantize(b, 4, generator=make_generator(1, device)))
    with pytest.raises(ValueError, match="0..3"):
        uniform_dequantize(b + 1, 4)
    with pytest.raises(TypeError, match="integer"):
        uniform_dequantize(b.float(), 4)


def test_dequantized_nll_bounds_the_discrete_nll():
    """A Logit flow on [0, 1): P(b) = Phi(z((b+1)/K)) - Phi(z(b/K)) exactly; the dequantized NLL
    plus D log K is above -log P(b) (Jensen) and not far above."""
    k = 4
    flow = Flow(Logit(0.05), (1,)).double()

    def z_of(x: float) -> float:
        y = 0.05 + 0.9 * x
        return math.log(y) - math.log1p(-y)

    for b in range(k):
        exact = -math.log(scipy.stats.norm.cdf(z_of((b + 1) / k)) - scipy.stats.norm.cdf(z_of(b / k)))
        data = torch.full((200_000, 1), b)
        dequantize = lambda v, g: uniform_dequantize(v, k, generator=g, dtype=torch.float64)  # noqa: E731
        nll = mean_nll(flow, data, preprocess=dequantize, generator=make_generator(b))
        bound = nll.item() + math.log(k)
        assert exact < bound < exact + 0.3, (b, exact, bound)
        bits = dequantized_bits_per_dim(nll.item(), 1, k)
        assert bits == pytest.approx(bound / math.log(2))


def test_dequantized_log_prob_tightens_towards_the_exact_probability():
    """Same Logit flow: S = 1 averages to the Jensen bound; many draws approach the exact log P(b)."""
    k = 4
    flow = Flow(Compose(Logit(0.05), ElementwiseAffine(1)), (1,)).double()  # the affine layer is the identity
    b = torch.arange(k)[:, None].repeat(2000, 1)  # (8000, 1)

    def z_of(x: float) -> float:
        y = 0.05 + 0.9 * x
        return math.log(y) - math.log1p(-y)

    exact = torch.tensor(
        [
            math.log(scipy.stats.norm.cdf(z_of((v + 1) / k)) - scipy.stats.norm.cdf(z_of(v / k)))
            for v in range(k)
        ],
        dtype=torch.float64,
    )
    one = dequantized_log_prob(flow, b, k, generator=make_generator(0)).reshape(2000, k).mean(0)
    many = (
        dequantized_log_prob(flow, b[: 50 * k], k, num_samples=500, generator=make_generator(1))
        .reshape(50, k)
        .mean(0)
    )
    assert bool((one < exact + 5e-3).all()) and one.sum() < exact.sum() - 0.2  # the Jensen gap, at the edges
    torch.testing.assert_close(many, exact, atol=1e-2, rtol=0)  # the edge cells had a gap of 0.18
    # S = 1 is the bound that mean_nll measures on dequantized data
    dequantize = lambda v, g: uniform_dequantize(v, k, generator=g, dtype=torch.float64)  # noqa: E731
    nll = mean_nll(flow, b, preprocess=dequantize, generator=make_generator(0))
    assert nll.item() + math.log(k) == pytest.approx(-one.mean().item(), rel=1e-9)
