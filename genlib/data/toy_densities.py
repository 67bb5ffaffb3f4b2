r"""Continuous toy targets with a known, normalised density, for checking samplers against the truth.

Gaussian mixtures live in ``genlib.mixtures`` (with ready-made ones in
``genlib.data.known_densities``); this module adds

- :class:`Banana`, a curved 2-D density with an exact log-density and an exact sampler:
  :math:`x_1 \sim \mathcal N(0, a^2)`, :math:`x_2 \mid x_1 \sim \mathcal N(b(x_1^2 - a^2), s^2)`;
- :func:`gmm_box_probabilities`, the exact probability of every cell of a grid under a mixture with
  diagonal (or spherical) covariances, so that a binned histogram of Markov chain samples can be
  compared with the truth in total variation.
"""

from __future__ import annotations

import math

import torch

from genlib.mixtures import GaussianMixture
from genlib.validation import check_generator, check_positive_int, check_tensor

__all__ = ["Banana", "gmm_box_probabilities"]

_LOG_2PI = math.log(2 * math.pi)


class Banana:
    r"""A curved 2-D density: :math:`x_1 \sim \mathcal N(0, a^2)` and
    :math:`x_2 \mid x_1 \sim \mathcal N(b (x_1^2 - a^2), s^2)`, so

    .. math::
        \log P(x) = \log \mathcal N(x_1;\, 0, a^2) + \log \mathcal N\big(x_2;\, b(x_1^2 - a^2), s^2\big),

    normalised exactly. :math:`\mathbb E[x] = 0`, :math:`\operatorname{Var}[x_1] = a^2`,
    :math:`\operatorname{Var}[x_2] = s^2 + 2 b^2 a^4`, :math:`\operatorname{Cov}[x_1, x_2] = 0`. Its
    ridge bends, so a sampler with one step size must follow a narrow curved valley.

    Args:
        a, s: positive scales. b: the curvature. dtype, device: of the samples and moments.
    """

    def __init__(
        self,
        a: float = 1.0,
        b: float = 1.0,
        s: float = 0.5,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        for name, value in (("a", a), ("b", b), ("s", s)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise TypeError(f"{name} must be a finite number, got {value!r}")
        if not (a > 0 and s > 0):
            raise ValueError(f"a and s must be positive, got a={a}, s={s}")
        self.a, self.b, self.s = float(a), float(b), float(s)
        self.dtype = dtype
        self.device = torch.device(device) if device is not None else torch.device("cpu")

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        r"""The exact :math:`\log P(x)`, shape ``(N,)``, for ``x`` of shape ``(N, 2)``."""
        x = check_tensor(x, "x", ndim=2, floating=True)
        if x.shape[1] != 2:
            raise ValueError(f"x must have shape (N, 2), got {tuple(x.shape)}")
        x1, x2 = x[:, 0], x[:, 1]
        centre = self.b * (x1.square() - self.a**2)
        return (
            -0.5 * (x1 / self.a).square()
            - 0.5 * ((x2 - centre) / self.s).square()
            - math.log(self.a * self.s)
            - _LOG_2PI
        )

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`E(x) = -\log P(x)`: normalised, so :math:`Z = 1`. Shape ``(N,)``."""
        return -self.log_prob(x)

    def sample(self, num_samples: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        r"""Exact samples ``(num_samples, 2)``: :math:`\xi` = ``torch.randn((num_samples, 2))``,
        :math:`x_1 = a\xi_1`, :math:`x_2 = b(x_1^2 - a^2) + s\xi_2`."""
        num_samples = check_positive_int(num_samples, "num_samples")
        generator = check_generator(generator, self.device)
        xi = torch.randn((num_samples, 2), generator=generator, dtype=self.dtype, device=self.device)
        x1 = self.a * xi[:, 0]
        return torch.stack([x1, self.b * (x1.square() - self.a**2) + self.s * xi[:, 1]], dim=1)

    def mean(self) -> torch.Tensor:
        """:math:`(0, 0)`, shape ``(2,)``."""
        return torch.zeros(2, dtype=self.dtype, device=self.device)

    def covariance(self) -> torch.Tensor:
        r""":math:`\operatorname{diag}(a^2,\; s^2 + 2b^2a^4)`, shape ``(2, 2)``."""
        variances = [self.a**2, self.s**2 + 2 * self.b**2 * self.a**4]
        return torch.diag(torch.tensor(variances, dtype=self.dtype, device=self.device))


def gmm_box_probabilities(mixture: GaussianMixture, edges: torch.Tensor) -> torch.Tensor:
    r"""The exact probability of every cell of a grid under a Gaussian mixture with ``"diag"`` or
    ``"spherical"`` covariances.

    A diagonal Gaussian factorises over the axes, so the box :math:`[l, u]` has probability
    :math:`\sum_k \pi_k \prod_j \big(\Phi(z^u_{kj}) - \Phi(z^l_{kj})\big)` with
    :math:`z^u_{kj} = (u_j - \mu_{kj})/\sigma_{kj}`, :math:`z^l_{kj}` likewise, and :math:`\Phi` the
    standard normal CDF. The cells cover only the grid: their probabilities sum to the mass inside it.

    Args:
        mixture: a ``genlib.mixtures.GaussianMixture`` in :math:`d \le 4` dimensions.
        edges: shape ``(B + 1,)``, increasing: the cell boundaries, the same along every axis.

    Returns:
        Shape ``(B,) * d``; entry :math:`(i_1, \dots, i_d)` is the probability of the cell
        :math:`\prod_j [\text{edges}_{i_j}, \text{edges}_{i_j + 1})`.
    """
    if not isinstance(mixture, GaussianMixture):
        raise TypeError(f"mixture must be a genlib.mixtures.GaussianMixture, got {type(mixture).__name__}")
    if mixture.covariance_type not in ("diag", "spherical"):
        raise ValueError(
            f"mixture must have diagonal or spherical covariances, got {mixture.covariance_type!r}"
        )
    if mixture.dim > 4:
        raise ValueError(f"mixture must have at most 4 dimensions (a grid of B**d cells), got {mixture.dim}")
    edges = check_tensor(edges, "edges", ndim=1, floating=True, finite=True)
    if edges.shape[0] < 2 or not bool((edges[1:] > edges[:-1]).all()):
        raise ValueError("edges must be an increasing 1-D tensor of at least two points")
    means = mixture.means  # (K, d)
    stds = mixture.variances().sqrt()  # (K, d)
    z = (edges.to(means)[None, None, :] - means[..., None]) / stds[..., None]  # (K, d, B + 1)
    cdf = torch.special.ndtr(z)
    mass = cdf[..., 1:] - cdf[..., :-1]  # (K, d, B)
    letters = "abcd"[: mixture.dim]
    spec = "k," + ",".join(f"k{a}" for a in letters) + "->" + letters
    return torch.einsum(spec, mixture.weights, *[mass[:, j] for j in range(mixture.dim)])
