r"""Toy data sets whose true density is known exactly: Gaussian mixtures in 1, 2 and d dimensions.

Each function returns a :class:`genlib.mixtures.GaussianMixture`; draw data from it with
:func:`genlib.mixtures.sample_gmm` and evaluate the true log-density with
:func:`genlib.mixtures.gmm_log_density`. Because the truth is known, a density estimate
:math:`\hat P` can be scored against it: the average of :math:`\log P^\star(x) - \log \hat P(x)` over
fresh samples of :math:`P^\star` is a Monte Carlo estimate of :math:`\mathrm{KL}(P^\star \Vert \hat P)`.
"""

from __future__ import annotations

import math

import torch

from genlib.mixtures import GaussianMixture
from genlib.validation import check_positive_int

__all__ = ["bimodal_1d", "three_clusters_2d", "ring_2d", "two_clusters_nd"]


def _as(values: object, dtype: torch.dtype, device: torch.device | str | None) -> torch.Tensor:
    return torch.tensor(values, dtype=dtype, device=device)


def _check_dtype(dtype: object) -> torch.dtype:
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    return dtype


def bimodal_1d(
    *, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None
) -> GaussianMixture:
    r"""A skewed two-bump density on the line (``d = 1``), the running example for 1-D KDE.

    :math:`P^\star(x) = 0.3\,\mathcal N(x \mid -2, 0.5^2) + 0.7\,\mathcal N(x \mid 1.5, 1)`: a narrow
    bump and a wide one, so that no single bandwidth is ideal everywhere.
    """
    dtype = _check_dtype(dtype)
    return GaussianMixture(
        weights=_as([0.3, 0.7], dtype, device),
        means=_as([[-2.0], [1.5]], dtype, device),
        covariances=_as([0.25, 1.0], dtype, device),
        covariance_type="spherical",
    )


def three_clusters_2d(
    *, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None
) -> GaussianMixture:
    r"""Three overlapping 2-D clusters of different sizes, shapes and weights (full covariances)."""
    dtype = _check_dtype(dtype)
    return GaussianMixture(
        weights=_as([0.5, 0.3, 0.2], dtype, device),
        means=_as([[0.0, 0.0], [3.0, 2.5], [-2.5, 3.0]], dtype, device),
        covariances=_as(
            [
                [[1.5, 0.9], [0.9, 1.0]],
                [[0.4, -0.2], [-0.2, 0.6]],
                [[0.3, 0.0], [0.0, 1.2]],
            ],
            dtype,
            device,
        ),
        covariance_type="full",
    )


def ring_2d(
    num_components: int = 8,
    *,
    radius: float = 4.0,
    std: float = 0.5,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> GaussianMixture:
    r"""``num_components`` equal round clusters evenly spaced on a circle of ``radius``.

    Component :math:`k` has mean :math:`r(\cos 2\pi k/K, \sin 2\pi k/K)`, covariance
    :math:`\mathrm{std}^2 I` and weight :math:`1/K`.
    """
    num_components = check_positive_int(num_components, "num_components")
    dtype = _check_dtype(dtype)
    if not (radius >= 0 and std > 0):
        raise ValueError(f"radius must be >= 0 and std > 0, got radius={radius}, std={std}")
    angles = 2 * math.pi * torch.arange(num_components, dtype=dtype, device=device) / num_components
    return GaussianMixture(
        weights=torch.full((num_components,), 1.0 / num_components, dtype=dtype, device=device),
        means=radius * torch.stack([angles.cos(), angles.sin()], dim=1),
        covariances=torch.full((num_components,), std**2, dtype=dtype, device=device),
        covariance_type="spherical",
    )


def two_clusters_nd(
    dim: int,
    *,
    separation: float = 3.0,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> GaussianMixture:
    r"""Two equal, unit-variance clusters in ``dim`` dimensions, ``separation`` apart along :math:`x_1`.

    :math:`P^\star = \tfrac12 \mathcal N(-\tfrac s2 e_1, I) + \tfrac12 \mathcal N(\tfrac s2 e_1, I)`; used to
    watch a KDE degrade as the dimension grows while the shape of the problem stays the same.
    """
    dim = check_positive_int(dim, "dim")
    dtype = _check_dtype(dtype)
    means = torch.zeros(2, dim, dtype=dtype, device=device)
    means[0, 0], means[1, 0] = -separation / 2, separation / 2
    return GaussianMixture(
        weights=_as([0.5, 0.5], dtype, device),
        means=means,
        covariances=torch.ones(2, dtype=dtype, device=device),
        covariance_type="spherical",
    )
