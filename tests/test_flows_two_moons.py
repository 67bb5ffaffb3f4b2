"""genlib.data.two_moons: the sampler against its own known density, and the density against SciPy's
adaptive quadrature; a chi-square test of the samples on a grid, with a power check."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.integrate
import scipy.stats
import torch

from genlib.data.two_moons import sample_two_moons, two_moons_centres, two_moons_log_prob
from genlib.device import make_generator


def scipy_density(x: np.ndarray, noise: float) -> float:
    """P(x) by scipy.integrate.quad over the angle, moon by moon."""

    def integrand(theta: float, moon: int) -> float:
        s = 1 - 2 * moon
        m = np.array([s * (math.cos(theta) - 0.5), s * (math.sin(theta) - 0.25)])
        return math.exp(-0.5 * np.sum((x - m) ** 2) / noise**2) / (2 * math.pi * noise**2)

    total = sum(
        scipy.integrate.quad(integrand, 0, math.pi, args=(c,), epsabs=0, epsrel=1e-10, limit=200)[0]
        for c in (0, 1)
    )
    return total / (2 * math.pi)


@pytest.mark.parametrize("noise", [0.1, 0.25])
def test_log_prob_matches_scipy_quadrature(noise):
    points = np.array([[0.0, 0.0], [0.5, 0.75], [-0.5, -0.25], [1.5, -0.25], [0.3, -0.4], [-1.4, 0.1]])
    got = two_moons_log_prob(torch.tensor(points, dtype=torch.float64), noise).numpy()
    expected = np.log([scipy_density(p, noise) for p in points])
    np.testing.assert_allclose(got, expected, atol=1e-3)


def test_log_prob_integrates_to_one(device):
    h = 5.0 / 200
    c = -2.5 + h * (torch.arange(200, dtype=torch.float64, device=device) + 0.5)
    xx, yy = torch.meshgrid(c, c, indexing="ij")
    points = torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)
    total = two_moons_log_prob(points, num_nodes=256).exp().sum().item() * h * h
    assert total == pytest.approx(1.0, abs=1e-6)


def test_centres_lie_on_the_two_half_circles():
    theta = torch.linspace(0, math.pi, 50, dtype=torch.float64)
    m0 = two_moons_centres(theta, torch.zeros(50))
    m1 = two_moons_centres(theta, torch.ones(50))
    torch.testing.assert_close(
        (m0 + torch.tensor([0.5, 0.25], dtype=torch.float64)).norm(dim=1), torch.ones(50, dtype=torch.float64)
    )
    torch.testing.assert_close(m1, -m0)
    assert bool((m0[:, 1] >= -0.25 - 1e-12).all())  # the upper half-circle


def test_samples_shape_dtype_device_and_seed(device):
    x = sample_two_moons(100, generator=make_generator(0, device), dtype=torch.float64, device=device)
    assert x.shape == (100, 2) and x.dtype == torch.float64 and x.device.type == torch.device(device).type
    assert torch.equal(
        x, sample_two_moons(100, generator=make_generator(0, device), dtype=torch.float64, device=device)
    )
    assert not torch.equal(
        x, sample_two_moons(100, generator=make_generator(1, device), dtype=torch.float64, device=device)
    )
    with pytest.raises(ValueError, match="noise"):
        sample_two_moons(10, noise=0.0)
    with pytest.raises(ValueError, match="shape"):
        two_moons_log_prob(torch.zeros(3, 3))


def chi_square_pvalue(samples: np.ndarray, noise: float) -> float:
    """Samples binned on an 8 x 8 grid (plus one cell outside it) against the density's cell masses."""
    edges = np.linspace(-2, 2, 9)
    sub, n = 10, 8
    h = (edges[1] - edges[0]) / sub
    centres = edges[0] + h * (np.arange(n * sub) + 0.5)
    xx, yy = np.meshgrid(centres, centres, indexing="ij")
    points = torch.tensor(np.stack([xx.ravel(), yy.ravel()], axis=1))
    density = two_moons_log_prob(points, noise).exp().numpy().reshape(n, sub, n, sub)
    probs = density.sum(axis=(1, 3)).ravel() * h * h
    counts, _, _ = np.histogram2d(samples[:, 0], samples[:, 1], bins=[edges, edges])
    observed = np.append(counts.ravel(), len(samples) - counts.sum())
    p = np.append(probs, max(1 - probs.sum(), 1e-12))
    keep = p > 1e-9
    assert observed[~keep].sum() == 0
    return scipy.stats.chisquare(observed[keep], len(samples) * p[keep] / p[keep].sum()).pvalue


def test_samples_follow_the_density(device):
    x = sample_two_moons(20_000, generator=make_generator(3, device), dtype=torch.float64, device=device)
    assert chi_square_pvalue(x.cpu().numpy(), 0.1) > 1e-3
    # power: the same samples are rejected by the density of moons with 30% more noise
    assert chi_square_pvalue(x.cpu().numpy(), 0.13) < 1e-6
