r"""Finite mixtures, and Gaussian mixture models (GMMs) with spherical, diagonal or full covariances.

A finite mixture draws a latent component :math:`z \in \{1, \dots, K\}` and then :math:`x` from that
component:

.. math::
    P(x \mid \theta) = \sum_{z=1}^K P(z \mid \theta)\, P(x \mid z, \theta)
                     = \sum_{z=1}^K \pi_z\, \mathcal N(x \mid \mu_z, \Sigma_z) \quad \text{(a GMM)}.

Everything is computed in log space: the :math:`(N, K)` matrix of
:math:`\log P(x^i, z = k \mid \theta) = \log \pi_k + \log \mathcal N(x^i \mid \mu_k, \Sigma_k)` is reduced
with ``logsumexp`` to the log-density :math:`\log P(x^i \mid \theta)`, and normalised to the
responsibilities :math:`Q(z = k \mid i) = P(z = k \mid x^i, \theta)`.

Sampling follows the lecture's two schemes for a batch :math:`x^1, \dots, x^n`:

1. one :math:`z \sim P(z)` for the whole batch, then :math:`x^i \sim P(x \mid z)`
   (:func:`sample_gmm_shared_z`), whose batch likelihood is
   :math:`\sum_z P(z) \prod_i P(x^i \mid z)` (:func:`batch_log_likelihood_shared_z`);
2. a fresh :math:`z^i \sim P(z)` for every sample, :math:`x^i \sim P(x \mid z^i)` (:func:`sample_gmm`),
   whose batch likelihood is :math:`\prod_i \sum_{z^i} P(z^i) P(x^i \mid z^i)`
   (:func:`batch_log_likelihood_per_sample_z`).

Parameters live in a :class:`GaussianMixture`. In code, components are numbered ``0 .. K-1``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from genlib.estimators import CovarianceType, categorical_mle_soft
from genlib.gaussian_statistics import (
    log_joint,
    mixture_parameters_from_statistics,
    natural_parameters,
    statistics_from_responsibilities,
)
from genlib.sampling import sample_categorical
from genlib.validation import check_generator, check_positive_int, check_probabilities, check_tensor

__all__ = [
    "GaussianMixture",
    "gaussian_component_log_densities",
    "gmm_log_joint",
    "gmm_log_density",
    "log_responsibilities_from_joint",
    "gmm_log_responsibilities",
    "gmm_responsibilities",
    "sample_gmm",
    "sample_gmm_shared_z",
    "batch_log_likelihood_per_sample_z",
    "batch_log_likelihood_shared_z",
    "gaussian_mixture_mle",
]

COVARIANCE_TYPES = ("full", "diag", "spherical")
_LOG_2PI = math.log(2 * math.pi)


def _covariance_shape(covariance_type: str, k: int, d: int) -> tuple[int, ...]:
    return {"full": (k, d, d), "diag": (k, d), "spherical": (k,)}[covariance_type]


@dataclass(frozen=True, eq=False)
class GaussianMixture:
    r"""The parameters :math:`\theta = \{\pi_k, \mu_k, \Sigma_k\}_{k=1}^K` of a Gaussian mixture in
    :math:`d` dimensions, checked when the object is made.

    Attributes:
        weights: the mixing proportions :math:`\pi`, shape ``(K,)``, floating, non-negative,
            summing to one.
        means: :math:`\mu_k` as rows, shape ``(K, d)``.
        covariances: depends on ``covariance_type``:

            - ``"full"``: :math:`\Sigma_k`, shape ``(K, d, d)``, symmetric positive definite;
            - ``"diag"``: the variances on the diagonal of :math:`\Sigma_k`, shape ``(K, d)``,
              positive;
            - ``"spherical"``: :math:`\sigma_k^2` with :math:`\Sigma_k = \sigma_k^2 I`, shape ``(K,)``,
              positive.
        covariance_type: ``"full"`` (default), ``"diag"`` or ``"spherical"``.

    All three tensors must share one floating dtype and one device; the mixture's functions
    return tensors in that dtype, on that device. One-dimensional mixtures have ``d = 1``.

    Raises:
        TypeError: a tensor of the wrong kind or dtype, or dtypes that differ.
        ValueError: a wrong shape, weights that are not a probability vector, non-positive
            variances, or a covariance that is not symmetric positive definite.
    """

    weights: torch.Tensor
    means: torch.Tensor
    covariances: torch.Tensor
    covariance_type: CovarianceType = "full"

    def __post_init__(self) -> None:
        if self.covariance_type not in COVARIANCE_TYPES:
            raise ValueError(
                f"covariance_type must be 'full', 'diag' or 'spherical', got {self.covariance_type!r}"
            )
        weights = check_probabilities(self.weights, "weights", allow_batch=False)
        means = check_tensor(self.means, "means", ndim=2, floating=True, finite=True)
        covariances = check_tensor(self.covariances, "covariances", floating=True, finite=True)
        k, d = means.shape
        if weights.shape[0] != k:
            raise ValueError(
                f"weights must have shape ({k},), one per row of means (shape {tuple(means.shape)}), "
                f"got shape {tuple(weights.shape)}"
            )
        if d == 0:
            raise ValueError("means must have at least one column (d >= 1), got shape (K, 0)")
        for name, tensor in (("weights", weights), ("covariances", covariances)):
            if tensor.dtype != means.dtype:
                raise TypeError(f"{name} has dtype {tensor.dtype} but means has {means.dtype}; use one dtype")
            if tensor.device != means.device:
                raise ValueError(f"{name} is on {tensor.device} but means is on {means.device}")
        expected = _covariance_shape(self.covariance_type, k, d)
        if tuple(covariances.shape) != expected:
            raise ValueError(
                f"covariances must have shape {expected} for covariance_type={self.covariance_type!r} "
                f"with K={k} components in d={d} dimensions, got shape {tuple(covariances.shape)}"
            )
        if self.covariance_type == "full":
            if not torch.allclose(covariances, covariances.mT, rtol=1e-5, atol=1e-8):
                raise ValueError("covariances must be symmetric; a matrix differs from its transpose")
            _, info = torch.linalg.cholesky_ex(covariances)
            bad = torch.nonzero(info).flatten().tolist()
            if bad:
                raise ValueError(
                    f"covariances[{bad[0]}] is not positive definite (its Cholesky factorisation failed); "
                    "add a small multiple of the identity (reg_covar) to it"
                )
        elif bool((covariances <= 0).any()):
            raise ValueError(
                f"covariances must be positive variances for covariance_type={self.covariance_type!r}, "
                f"got a smallest value of {covariances.min().item():.3g}"
            )

    @property
    def num_components(self) -> int:
        """:math:`K`, the number of components."""
        return self.means.shape[0]

    @property
    def dim(self) -> int:
        """:math:`d`, the dimension of :math:`x`."""
        return self.means.shape[1]

    def cholesky_factors(self) -> torch.Tensor:
        r"""Lower-triangular :math:`L_k` with :math:`L_k L_k^\top = \Sigma_k`, shape ``(K, d, d)``."""
        if self.covariance_type == "full":
            return torch.linalg.cholesky(self.covariances)
        return torch.diag_embed(self.variances().sqrt())

    def variances(self) -> torch.Tensor:
        r"""The diagonal of every :math:`\Sigma_k`, shape ``(K, d)``."""
        if self.covariance_type == "full":
            return self.covariances.diagonal(dim1=-2, dim2=-1)
        if self.covariance_type == "diag":
            return self.covariances
        return self.covariances[:, None].expand(-1, self.dim)

    def full_covariances(self) -> torch.Tensor:
        r"""Every :math:`\Sigma_k` as a matrix, shape ``(K, d, d)``, whatever the covariance type."""
        if self.covariance_type == "full":
            return self.covariances
        return torch.diag_embed(self.variances())


def _check_mixture(mixture: object) -> GaussianMixture:
    if not isinstance(mixture, GaussianMixture):
        raise TypeError(f"mixture must be a genlib.mixtures.GaussianMixture, got {type(mixture).__name__}")
    return mixture


def _check_points(x: object, mixture: GaussianMixture, name: str = "x") -> torch.Tensor:
    """``x`` of shape ``(N, d)`` in the mixture's dtype and on its device."""
    x = check_tensor(x, name, ndim=2, floating=True, min_size=1)
    if x.shape[1] != mixture.dim:
        raise ValueError(
            f"{name} must have shape (N, {mixture.dim}) for a mixture in d={mixture.dim} dimensions, "
            f"got shape {tuple(x.shape)}"
        )
    if x.dtype != mixture.means.dtype:
        raise TypeError(
            f"{name} has dtype {x.dtype} but the mixture has {mixture.means.dtype}; use one dtype"
        )
    if x.device != mixture.means.device:
        raise ValueError(f"{name} is on {x.device} but the mixture is on {mixture.means.device}")
    return x


def gaussian_component_log_densities(x: torch.Tensor, mixture: GaussianMixture) -> torch.Tensor:
    r""":math:`\log \mathcal N(x^i \mid \mu_k, \Sigma_k)` for every sample and component.

    .. math::
        \log \mathcal N(x \mid \mu, \Sigma) = -\tfrac12 (x - \mu)^\top \Sigma^{-1} (x - \mu)
            - \tfrac12 \log\det\Sigma - \tfrac d2 \log 2\pi .

    Computed as one matrix product of natural parameters and sufficient statistics
    (:mod:`genlib.gaussian_statistics`): the quadratic form expanded,
    :math:`-\tfrac12 x^\top\Sigma_k^{-1}x + x^\top\Sigma_k^{-1}\mu_k - \tfrac12\mu_k^\top\Sigma_k^{-1}\mu_k`,
    with :math:`x` and :math:`\mu_k` centred at the mean of ``x`` first, and
    :math:`\tfrac12\log\det\Sigma_k = \sum_j \log (L_k)_{jj}` from the Cholesky factor
    :math:`L_k L_k^\top = \Sigma_k`.

    Args:
        x: shape ``(N, d)``, in the mixture's dtype and on its device.
        mixture: the parameters.

    Returns:
        Shape ``(N, K)``. Memory: the result and one block of a few thousand samples.
    """
    mixture = _check_mixture(mixture)
    x = _check_points(x, mixture)
    centre = x.mean(dim=0)
    ones = torch.ones_like(mixture.weights)
    ctype = mixture.covariance_type
    theta, bias = natural_parameters(ones, mixture.means, mixture.covariances, ctype, centre)
    return log_joint(x, theta, bias, ctype, centre)


def gmm_log_joint(x: torch.Tensor, mixture: GaussianMixture) -> torch.Tensor:
    r""":math:`\log P(x^i, z = k \mid \theta) = \log \pi_k + \log \mathcal N(x^i \mid \mu_k, \Sigma_k)`.

    Args:
        x: shape ``(N, d)``.
        mixture: the parameters.

    Returns:
        Shape ``(N, K)``; :math:`-\infty` in the columns of components with :math:`\pi_k = 0`.
    """
    return gaussian_component_log_densities(x, mixture) + mixture.weights.log()


def gmm_log_density(x: torch.Tensor, mixture: GaussianMixture) -> torch.Tensor:
    r"""The log-density :math:`\log P(x^i \mid \theta) = \log \sum_k \pi_k \mathcal N(x^i | \mu_k, \Sigma_k)`.

    Computed as a ``logsumexp`` over the components of :func:`gmm_log_joint`, so it stays finite
    for points far from every component (where each density underflows to zero).

    Args:
        x: shape ``(N, d)``.
        mixture: the parameters.

    Returns:
        Shape ``(N,)``, in the mixture's dtype, on its device.
    """
    return torch.logsumexp(gmm_log_joint(x, mixture), dim=1)


def log_responsibilities_from_joint(log_joint: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Normalise a matrix of :math:`\log P(x^i, z = k)` over :math:`k`: the E-step of any mixture.

    .. math::
        \log Q(z = k \mid i) = \log P(x^i, z = k) - \log \sum_{k'} P(x^i, z = k'),

    the posterior :math:`P(z = k \mid x^i)` by Bayes' rule, in log space.

    Args:
        log_joint: shape ``(N, K)``, floating, no NaN and no :math:`+\infty`; each row must have a
            finite entry (a sample that no component can explain has no posterior).

    Returns:
        ``(log_responsibilities, log_marginal)``: shape ``(N, K)`` with each row's exponentials
        summing to one, and shape ``(N,)``, :math:`\log P(x^i)`.
    """
    log_joint = check_tensor(log_joint, "log_joint", ndim=2, floating=True, min_size=1)
    if log_joint.shape[1] == 0:
        raise ValueError("log_joint must have at least one column (component), got shape (N, 0)")
    if bool(log_joint.isnan().any()) or bool((log_joint == math.inf).any()):
        raise ValueError("log_joint must not hold NaN or +inf")
    log_marginal = torch.logsumexp(log_joint, dim=1)  # (N,)
    if not bool(torch.isfinite(log_marginal).all()):
        row = int(torch.nonzero(~torch.isfinite(log_marginal))[0])
        raise ValueError(f"row {row} of log_joint is -inf everywhere: no component can explain sample {row}")
    return log_joint - log_marginal[:, None], log_marginal


def gmm_log_responsibilities(x: torch.Tensor, mixture: GaussianMixture) -> torch.Tensor:
    r""":math:`\log Q(z = k \mid i) = \log P(z = k \mid x^i, \theta)`, shape ``(N, K)``.

    See :func:`log_responsibilities_from_joint`. Stable for points far from every component: the
    nearest component then takes (nearly) all the responsibility instead of :math:`0/0`.
    """
    log_resp, _ = log_responsibilities_from_joint(gmm_log_joint(x, mixture))
    return log_resp


def gmm_responsibilities(x: torch.Tensor, mixture: GaussianMixture) -> torch.Tensor:
    r"""The responsibilities :math:`Q(z = k \mid i)`, shape ``(N, K)``, each row summing to one."""
    return gmm_log_responsibilities(x, mixture).exp()


def _transform_noise(mixture: GaussianMixture, z: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    r""":math:`\mu_{z^i} + L_{z^i} \epsilon^i` for each row of ``noise`` (shape ``(n, d)``)."""
    if mixture.covariance_type != "full":
        return mixture.means[z] + mixture.variances()[z].sqrt() * noise
    chol = mixture.cholesky_factors()  # (K, d, d)
    x = torch.empty_like(noise)
    for k in torch.unique(z).tolist():  # one matrix product per component: O(n d) memory, not O(n d^2)
        rows = z == k
        x[rows] = mixture.means[k] + noise[rows] @ chol[k].T
    return x


def sample_gmm(
    mixture: GaussianMixture, num_samples: int, *, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Scheme 2: a fresh component for every sample, :math:`z^i \sim P(z)`, :math:`x^i \sim P(x \mid z^i)`.

    The samples are i.i.d. draws from the mixture density :math:`P(x \mid \theta)`. The random
    numbers are drawn in this order, from ``generator``:

    1. ``z = genlib.sampling.sample_categorical(weights, num_samples, generator=generator)``;
    2. ``noise = torch.randn((num_samples, d), generator=generator, dtype=..., device=...)``;

    and :math:`x^i = \mu_{z^i} + L_{z^i}\,\epsilon^i` with :math:`L_k L_k^\top = \Sigma_k`.

    Args:
        mixture: the parameters.
        num_samples: :math:`n \ge 1`.
        generator: on the mixture's device.

    Returns:
        ``(x, z)``: ``x`` of shape ``(n, d)`` in the mixture's dtype, ``z`` of shape ``(n,)``
        (``torch.long``, values in ``0 .. K-1``), both on the mixture's device.
    """
    mixture = _check_mixture(mixture)
    num_samples = check_positive_int(num_samples, "num_samples")
    generator = check_generator(generator, mixture.means.device)
    means = mixture.means
    z = sample_categorical(mixture.weights, num_samples, generator=generator)  # (n,)
    noise = torch.randn(
        (num_samples, mixture.dim), generator=generator, dtype=means.dtype, device=means.device
    )
    return _transform_noise(mixture, z, noise), z


def sample_gmm_shared_z(
    mixture: GaussianMixture, num_samples: int, *, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Scheme 1: one component for the whole batch, :math:`z \sim P(z)`, then :math:`x^i \sim P(x \mid z)`.

    The samples are *not* independent draws from the mixture: they all come from one component,
    so the batch looks like one Gaussian cluster. Random numbers are drawn in this order:

    1. ``z = genlib.sampling.sample_categorical(weights, 1, generator=generator)[0]``;
    2. ``noise = torch.randn((num_samples, d), generator=generator, dtype=..., device=...)``.

    Returns:
        ``(x, z)``: ``x`` of shape ``(n, d)``; ``z`` a 0-d ``torch.long`` tensor, the one component.
    """
    mixture = _check_mixture(mixture)
    num_samples = check_positive_int(num_samples, "num_samples")
    generator = check_generator(generator, mixture.means.device)
    means = mixture.means
    z = sample_categorical(mixture.weights, 1, generator=generator)[0]  # ()
    noise = torch.randn(
        (num_samples, mixture.dim), generator=generator, dtype=means.dtype, device=means.device
    )
    return _transform_noise(mixture, z.expand(num_samples), noise), z


def batch_log_likelihood_per_sample_z(x: torch.Tensor, mixture: GaussianMixture) -> torch.Tensor:
    r"""The log-likelihood of a batch under scheme 2 (one :math:`z^i` per sample):

    .. math::
        \log P(x^1, \dots, x^n) = \sum_{i=1}^n \log \sum_{z^i=1}^K P(z^i)\, P(x^i \mid z^i).

    Args:
        x: the batch, shape ``(n, d)``.

    Returns:
        A 0-d tensor.
    """
    return gmm_log_density(x, mixture).sum()


def batch_log_likelihood_shared_z(x: torch.Tensor, mixture: GaussianMixture) -> torch.Tensor:
    r"""The log-likelihood of a batch under scheme 1 (one :math:`z` for the whole batch):

    .. math::
        \log P(x^1, \dots, x^n) = \log \sum_{z=1}^K P(z) \prod_{i=1}^n P(x^i \mid z)
            = \operatorname{logsumexp}_z \Big(\log \pi_z
                + \sum_{i=1}^n \log \mathcal N(x^i \mid \mu_z, \Sigma_z)\Big).

    The sum over samples is taken *inside* the sum over components: the whole batch must be
    explained by a single component.

    Args:
        x: the batch, shape ``(n, d)``.

    Returns:
        A 0-d tensor.
    """
    per_component = gaussian_component_log_densities(x, mixture).sum(dim=0)  # (K,)
    return torch.logsumexp(per_component + mixture.weights.log(), dim=0)


def gaussian_mixture_mle(
    x: torch.Tensor,
    responsibilities: torch.Tensor,
    *,
    covariance_type: CovarianceType = "full",
    reg_covar: float = 0.0,
) -> GaussianMixture:
    r"""The weighted maximum-likelihood mixture for soft assignments :math:`Q(z = k \mid i)`.

    Maximises :math:`\sum_i \sum_k Q(k \mid i) \log[\pi_k \mathcal N(x^i \mid \mu_k, \Sigma_k)]`, which
    splits into one weighted estimate per parameter:

    .. math::
        \hat\pi_k = \frac{\sum_i Q(k \mid i)}{\sum_i \sum_{k'} Q(k' \mid i)}, \quad
        \hat\mu_k = \frac{\sum_i Q(k \mid i)\, x^i}{\sum_i Q(k \mid i)}, \quad
        \hat\Sigma_k = \frac{\sum_i Q(k \mid i)\,(x^i - \hat\mu_k)(x^i - \hat\mu_k)^\top}{\sum_i Q(k \mid i)},

    (what :func:`genlib.estimators.categorical_mle_soft` and :func:`genlib.estimators.gaussian_mle` give
    with ``weights = Q[:, k]``, computed for all :math:`k` at once from the sufficient statistics
    :math:`N_k = \sum_i Q(k \mid i)` and :math:`S_k = \sum_i Q(k \mid i)\,T(x^i)` of
    :mod:`genlib.gaussian_statistics`). With one-hot rows (the true labels) it is the ML fit of labelled data;
    with posterior responsibilities it is the M-step of EM.

    Args:
        x: shape ``(N, d)``, floating, finite.
        responsibilities: :math:`Q(z = k \mid i)`, shape ``(N, K)``, non-negative; every column
            must have some weight.
        covariance_type: ``"full"``, ``"diag"`` or ``"spherical"``.
        reg_covar: ``>= 0``, added to every variance (the diagonal of each :math:`\hat\Sigma_k`) so
            that a component on very few points stays positive definite.

    Returns:
        A :class:`GaussianMixture` in the dtype and on the device of ``x``.
    """
    x = check_tensor(x, "x", ndim=2, floating=True, min_size=1, finite=True)
    q = check_tensor(responsibilities, "responsibilities", ndim=2, floating=True, finite=True)
    if q.shape[0] != x.shape[0]:
        raise ValueError(
            f"responsibilities must have one row per sample: shape ({x.shape[0]}, K), got {tuple(q.shape)}"
        )
    if isinstance(reg_covar, bool) or not isinstance(reg_covar, (int, float)) or not reg_covar >= 0:
        raise ValueError(f"reg_covar must be a number >= 0, got {reg_covar!r}")
    if covariance_type not in COVARIANCE_TYPES:
        raise ValueError(f"covariance_type must be 'full', 'diag' or 'spherical', got {covariance_type!r}")
    q = q.to(x.dtype)
    categorical_mle_soft(q)  # checks: non-negative, not all zero
    stats = statistics_from_responsibilities(x, q, covariance_type, x.mean(dim=0))
    empty = torch.nonzero(stats.counts <= 0).flatten().tolist()
    if empty:
        raise ValueError(
            f"component {empty[0]} has no responsibility (its column sums to 0): it cannot be fitted"
        )
    weights, means, covariances = mixture_parameters_from_statistics(stats, reg_covar)
    try:
        return GaussianMixture(weights, means, covariances, covariance_type)
    except ValueError as error:
        raise ValueError(f"{error}. The fitted covariance is singular: increase reg_covar") from error
