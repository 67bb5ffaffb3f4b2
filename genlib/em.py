r"""Fitting a Gaussian mixture by gradient ascent, generalized EM and EM, and the ELBO.

For data :math:`x^1, \dots, x^N` and a mixture :math:`P(x \mid \theta) = \sum_k \pi_k
\mathcal N(x \mid \mu_k, \Sigma_k)` (a :class:`genlib.mixtures.GaussianMixture`), the log-likelihood
:math:`\ell(\theta) = \sum_i \log P(x^i \mid \theta)` has no closed-form maximiser. For any
distributions :math:`Q(z \mid i)` over the component of each sample,

.. math::
    \ell(\theta) = \underbrace{\sum_i \sum_k Q(k \mid i)\,\log P(x^i, z = k \mid \theta)
        + \sum_i H(Q(\cdot \mid i))}_{\mathrm{ELBO}(Q, \theta)}
        + \sum_i \mathrm{KL}\big(Q(\cdot \mid i) \,\|\, P(z \mid x^i, \theta)\big),

so the ELBO is a lower bound with a gap equal to the KL divergence. Three ways to climb :math:`\ell`:

- **gradient ascent** on :math:`\ell`, whose gradient is the responsibility-weighted sum of the
  complete-data gradients, :math:`\nabla_\theta \ell = \sum_i \sum_k P(k \mid x^i, \theta)\,
  \nabla_\theta \log P(x^i, k \mid \theta)` (:func:`expected_complete_gradient`);
- **generalized EM**: set :math:`Q` to the posterior (E-step, closes the gap), then take a few
  gradient steps on :math:`\mathrm{ELBO}(Q, \cdot)` with :math:`Q` held fixed;
- **EM**: the same E-step, then the closed-form maximiser of :math:`\mathrm{ELBO}(Q, \cdot)`
  (:func:`genlib.mixtures.gaussian_mixture_mle`, the M-step). :math:`\ell` never decreases.

Gradient methods work on unconstrained parameters (:class:`UnconstrainedGMM`): logits for the
weights, the means, and log-variances (spherical, diagonal) or a Cholesky factor with a
log-diagonal (full).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch
from tqdm.auto import tqdm

from genlib.estimators import CovarianceType, gaussian_mle
from genlib.gaussian_statistics import (
    GaussianStatistics,
    em_pass,
    expected_complete_log_likelihood,
    mixture_parameters_from_statistics,
    natural_parameters,
    num_features,
    sufficient_statistics,
)
from genlib.mixtures import (
    COVARIANCE_TYPES,
    GaussianMixture,
    _check_mixture,
    _check_points,
    gmm_log_joint,
    log_responsibilities_from_joint,
)
from genlib.validation import check_generator, check_positive_int, check_tensor

__all__ = [
    "ComponentCollapseError",
    "FitResult",
    "UnconstrainedGMM",
    "e_step",
    "elbo",
    "em_step",
    "expected_complete_gradient",
    "fit_gmm",
    "from_unconstrained",
    "gradient_step",
    "initialize_gmm",
    "log_likelihood",
    "posterior_kl",
    "to_unconstrained",
]

Method = Literal["em", "gem", "gradient"]

#: The most elements of sufficient statistics (p x N) a fit keeps for all its passes (256 MB in float64);
#: above this they are rebuilt block by block in every pass.
_FEATURE_BUDGET = 2**25


class ComponentCollapseError(ValueError):
    """A component lost (nearly) all its responsibility or its covariance became singular."""


# --------------------------------------------------------------------------- log-likelihood and ELBO


def log_likelihood(x: torch.Tensor, mixture: GaussianMixture) -> torch.Tensor:
    r""":math:`\ell(\theta) = \sum_{i=1}^N \log P(x^i \mid \theta)`, a 0-d tensor in the mixture's dtype."""
    return torch.logsumexp(gmm_log_joint(x, mixture), dim=1).sum()


def e_step(x: torch.Tensor, mixture: GaussianMixture) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The E-step: :math:`\log Q(k \mid i) = \log P(z = k \mid x^i, \theta)`, in log space.

    Args:
        x: shape ``(N, d)``, in the mixture's dtype and on its device.
        mixture: :math:`\theta`.

    Returns:
        ``(log_q, log_likelihood)``: shape ``(N, K)`` (rows' exponentials sum to one) and the 0-d
        :math:`\ell(\theta)`, computed from the same ``logsumexp``.
    """
    log_q, log_marginal = log_responsibilities_from_joint(gmm_log_joint(x, mixture))
    return log_q, log_marginal.sum()


def _check_log_q(log_q: object, x: torch.Tensor, k: int) -> torch.Tensor:
    log_q = check_tensor(log_q, "log_q", ndim=2, floating=True)
    if tuple(log_q.shape) != (x.shape[0], k):
        raise ValueError(f"log_q must have shape ({x.shape[0]}, {k}), got {tuple(log_q.shape)}")
    if bool(log_q.isnan().any()) or bool((log_q > 1e-6).any()):
        raise ValueError("log_q must hold log-probabilities (no NaN, all <= 0)")
    sums = torch.logsumexp(log_q, dim=1)
    if not bool(torch.allclose(sums, torch.zeros_like(sums), atol=1e-4)):
        raise ValueError(
            "each row of log_q must be a log-distribution (logsumexp 0), "
            f"got a row with {sums.abs().max():.3g}"
        )
    return log_q


def elbo(x: torch.Tensor, mixture: GaussianMixture, log_q: torch.Tensor) -> torch.Tensor:
    r"""The evidence lower bound :math:`\mathrm{ELBO}(Q, \theta) = \mathbb E_Q[\log P(x, z | \theta)] + H(Q)`.

    .. math::
        \mathrm{ELBO}(Q, \theta) = \sum_{i=1}^N \sum_{k=1}^K Q(k \mid i)
            \big[\log P(x^i, z = k \mid \theta) - \log Q(k \mid i)\big] \le \ell(\theta),

    with the convention :math:`0 \log 0 = 0` (a component with :math:`Q(k \mid i) = 0` adds nothing,
    even where :math:`\log P(x^i, k) = -\infty`).

    Args:
        x: shape ``(N, d)``.
        mixture: :math:`\theta`.
        log_q: :math:`\log Q(k \mid i)`, shape ``(N, K)``, each row a log-distribution.

    Returns:
        A 0-d tensor in the mixture's dtype.
    """
    log_joint = gmm_log_joint(x, mixture)
    log_q = _check_log_q(log_q, x, mixture.num_components).to(log_joint.dtype)
    q = log_q.exp()
    terms = torch.where(q > 0, q * (log_joint - log_q), torch.zeros_like(q))
    return terms.sum()


def posterior_kl(x: torch.Tensor, mixture: GaussianMixture, log_q: torch.Tensor) -> torch.Tensor:
    r""":math:`\sum_i \mathrm{KL}(Q(\cdot \mid i) \,\|\, P(z \mid x^i, \theta))`, the gap
    :math:`\ell(\theta) - \mathrm{ELBO}(Q, \theta) \ge 0`, as a 0-d tensor."""
    log_post, _ = e_step(x, mixture)
    log_q = _check_log_q(log_q, x, mixture.num_components).to(log_post.dtype)
    q = log_q.exp()
    return torch.where(q > 0, q * (log_q - log_post), torch.zeros_like(q)).sum()


# --------------------------------------------------------------------------- unconstrained parameters


@dataclass(frozen=True, eq=False)
class UnconstrainedGMM:
    r"""Unconstrained parameters of a Gaussian mixture, for gradient methods.

    Attributes:
        logits: :math:`\alpha`, shape ``(K,)``, with :math:`\pi = \mathrm{softmax}(\alpha)`.
        means: :math:`\mu_k`, shape ``(K, d)``.
        scales: ``"spherical"``: :math:`\log\sigma_k^2`, shape ``(K,)``; ``"diag"``: the
            log-variances, shape ``(K, d)``; ``"full"``: shape ``(K, d, d)``, whose strictly lower
            triangle is that of the Cholesky factor :math:`L_k` (:math:`\Sigma_k = L_k L_k^\top`) and
            whose diagonal is :math:`\log (L_k)_{jj}`; the upper triangle is ignored.
        covariance_type: ``"full"``, ``"diag"`` or ``"spherical"``.
    """

    logits: torch.Tensor
    means: torch.Tensor
    scales: torch.Tensor
    covariance_type: CovarianceType = "full"

    def map(self, fn) -> UnconstrainedGMM:
        """Apply ``fn`` to each tensor."""
        return UnconstrainedGMM(fn(self.logits), fn(self.means), fn(self.scales), self.covariance_type)


def to_unconstrained(mixture: GaussianMixture) -> UnconstrainedGMM:
    """The :class:`UnconstrainedGMM` of ``mixture`` (weights must be positive)."""
    mixture = _check_mixture(mixture)
    if bool((mixture.weights <= 0).any()):
        raise ValueError("mixture.weights must be positive to have logits")
    logits = mixture.weights.log()
    if mixture.covariance_type == "full":
        chol = torch.linalg.cholesky(mixture.covariances)
        scales = chol.tril(-1) + torch.diag_embed(chol.diagonal(dim1=-2, dim2=-1).log())
    else:
        scales = mixture.covariances.log()
    return UnconstrainedGMM(logits, mixture.means, scales, mixture.covariance_type)


def _cholesky_from_scales(scales: torch.Tensor) -> torch.Tensor:
    return scales.tril(-1) + torch.diag_embed(scales.diagonal(dim1=-2, dim2=-1).exp())


def from_unconstrained(params: UnconstrainedGMM) -> GaussianMixture:
    r"""The :class:`~genlib.mixtures.GaussianMixture` of ``params`` (differentiable in them)."""
    if not isinstance(params, UnconstrainedGMM):
        raise TypeError(f"params must be a genlib.em.UnconstrainedGMM, got {type(params).__name__}")
    weights = torch.softmax(params.logits, dim=0)
    if params.covariance_type == "full":
        chol = _cholesky_from_scales(params.scales)
        covariances = chol @ chol.mT
        covariances = 0.5 * (covariances + covariances.mT)
    else:
        covariances = params.scales.exp()
    return GaussianMixture(weights, params.means, covariances, params.covariance_type)


def expected_complete_gradient(
    x: torch.Tensor, params: UnconstrainedGMM, log_q: torch.Tensor | None = None
) -> UnconstrainedGMM:
    r"""The gradient of :math:`\sum_i \sum_k Q(k \mid i) \log P(x^i, z = k \mid \theta)` in ``params``.

    With ``log_q=None``, :math:`Q` is the posterior at ``params`` itself, and the result is the
    gradient of the log-likelihood :math:`\ell(\theta)` (Fisher's identity). With :math:`N_k =
    \sum_i Q(k \mid i)`, :math:`c^i_k = x^i - \mu_k`, :math:`S_k = \sum_i Q(k \mid i)\, c^i_k c^{i\top}_k`:

    .. math::
        \frac{\partial}{\partial \alpha_k} = N_k - \pi_k \sum_{k'} N_{k'}, \qquad
        \frac{\partial}{\partial \mu_k} = \Sigma_k^{-1} \sum_i Q(k \mid i)\, c^i_k, \qquad
        \frac{\partial}{\partial \Sigma_k}
            = \tfrac12 \big(\Sigma_k^{-1} S_k \Sigma_k^{-1} - N_k \Sigma_k^{-1}\big) =: G_k,

    and by the chain rule :math:`\partial/\partial\log\sigma^2_{kj} = \tfrac12 \sum_i Q(k \mid i)
    \big((c^i_{kj})^2/\sigma^2_{kj} - 1\big)` (diagonal; summed over :math:`j` for spherical), and
    :math:`\partial/\partial L_k = 2 G_k L_k` (full; times :math:`(L_k)_{jj}` on the log-diagonal).

    Args:
        x: shape ``(N, d)``, in the dtype and on the device of the parameters.
        params: :math:`\theta`, unconstrained.
        log_q: :math:`\log Q(k \mid i)`, shape ``(N, K)``, or ``None`` for the posterior.

    Returns:
        An :class:`UnconstrainedGMM` holding the gradients (shapes as ``params``).
    """
    mixture = from_unconstrained(params)
    x = _check_points(x, mixture)
    if log_q is None:
        log_q, _ = e_step(x, mixture)
    else:
        log_q = _check_log_q(log_q, x, mixture.num_components).to(x.dtype)
    q = log_q.exp()  # (N, K)
    nk = q.sum(dim=0)  # (K,)
    g_logits = nk - mixture.weights * nk.sum()
    weighted_sum = q.T @ x  # (K, d)
    residual = weighted_sum - nk[:, None] * mixture.means  # sum_i Q c_ik, (K, d)
    if params.covariance_type == "full":
        chol = _cholesky_from_scales(params.scales)
        # Sigma^{-1} residual via two triangular solves
        g_means = torch.cholesky_solve(residual[:, :, None], chol).squeeze(-1)
        s = torch.einsum("nk,nd,ne->kde", q, x, x) - (
            weighted_sum[:, :, None] * mixture.means[:, None, :]
            + mixture.means[:, :, None] * weighted_sum[:, None, :]
        )
        s = s + nk[:, None, None] * mixture.means[:, :, None] * mixture.means[:, None, :]  # (K, d, d)
        eye = torch.eye(x.shape[1], dtype=x.dtype, device=x.device).expand_as(s)
        precision = torch.cholesky_solve(eye, chol)
        g_sigma = 0.5 * (precision @ s @ precision - nk[:, None, None] * precision)
        g_chol = 2 * g_sigma @ chol
        g_scales = g_chol.tril(-1) + torch.diag_embed(
            g_chol.diagonal(dim1=-2, dim2=-1) * chol.diagonal(dim1=-2, dim2=-1)
        )
    else:
        variances = mixture.variances()  # (K, d)
        g_means = residual / variances
        # sum_i Q c^2 per coordinate, without the (K, N, d) tensor
        sq = q.T @ x.square() - 2 * weighted_sum * mixture.means + nk[:, None] * mixture.means.square()
        per_coord = 0.5 * (sq / variances - nk[:, None])  # (K, d)
        g_scales = per_coord if params.covariance_type == "diag" else per_coord.sum(dim=1)
    return UnconstrainedGMM(g_logits, g_means, g_scales, params.covariance_type)


def gradient_step(
    x: torch.Tensor, params: UnconstrainedGMM, lr: float, log_q: torch.Tensor | None = None
) -> UnconstrainedGMM:
    r"""One step :math:`\theta \leftarrow \theta + \eta\, \tfrac1N \nabla_\theta`, with the gradient of
    :func:`expected_complete_gradient` (of :math:`\ell` when ``log_q`` is ``None``)."""
    if not (isinstance(lr, (int, float)) and not isinstance(lr, bool) and lr > 0):
        raise ValueError(f"lr must be a number > 0, got {lr!r}")
    grad = expected_complete_gradient(x, params, log_q)
    n = x.shape[0]
    return UnconstrainedGMM(
        params.logits + lr * grad.logits / n,
        params.means + lr * grad.means / n,
        params.scales + lr * grad.scales / n,
        params.covariance_type,
    )


# --------------------------------------------------------------------------- EM


def _data_covariance(x: torch.Tensor, covariance_type: str, k: int, reg_covar: float) -> torch.Tensor:
    _, cov = gaussian_mle(x, covariance_type=covariance_type)
    if covariance_type == "full":
        cov = cov + reg_covar * torch.eye(x.shape[1], dtype=x.dtype, device=x.device)
    else:
        cov = cov + reg_covar
    return cov.expand(k, *cov.shape).clone()


def _singular_components(covariances: torch.Tensor, covariance_type: str) -> list[int]:
    """Components whose covariance is not positive definite (or not finite)."""
    if covariance_type == "full":
        _, info = torch.linalg.cholesky_ex(covariances)
        bad = (info != 0) | ~torch.isfinite(covariances).all(dim=(-2, -1))
    elif covariance_type == "diag":
        bad = ~(covariances > 0).all(dim=-1) | ~torch.isfinite(covariances).all(dim=-1)
    else:
        bad = ~(covariances > 0) | ~torch.isfinite(covariances)
    return torch.nonzero(bad).flatten().tolist()


def _m_step(
    x: torch.Tensor,
    stats: GaussianStatistics,
    reg_covar: float,
    on_collapse: str,
    generator: torch.Generator | None,
) -> tuple[GaussianMixture, list[int]]:
    """The M-step from the sufficient statistics; on a collapsing component raise, or re-seed it.

    Returns the new mixture and the indices of the re-seeded components.
    """
    covariance_type = stats.covariance_type
    n = x.shape[0]
    nk = stats.counts
    tiny = 10 * torch.finfo(x.dtype).eps * n
    empty = torch.nonzero(nk <= tiny).flatten().tolist()
    safe = GaussianStatistics(nk.clamp_min(tiny), stats.sums, stats.centre, covariance_type)
    weights, means, covariances = mixture_parameters_from_statistics(safe, reg_covar, dtype=x.dtype)
    singular = [k for k in _singular_components(covariances, covariance_type) if k not in empty]
    bad = sorted(set(empty) | set(singular))
    if not bad:
        try:
            return GaussianMixture(weights, means, covariances, covariance_type), []
        except ValueError as error:  # positive definite in float64 but not in float32, say
            raise ComponentCollapseError(f"a component collapsed ({error}); increase reg_covar") from error
    if on_collapse == "raise":
        k = bad[0]
        if k in empty:
            raise ComponentCollapseError(
                f"component {k} collapsed: its total responsibility is {nk[k].item():.3g}; "
                "increase reg_covar, use fewer components, or use on_collapse='reinit'"
            )
        raise ComponentCollapseError(
            f"component {k} collapsed: its covariance became singular (not positive definite); "
            "increase reg_covar or use on_collapse='reinit'"
        )
    k_all = nk.shape[0]
    good = [k for k in range(k_all) if k not in bad]
    if not good:
        raise ComponentCollapseError("every component collapsed")
    nk_good = nk[good].sum()
    new_weights = torch.empty(k_all, dtype=x.dtype, device=x.device)
    new_weights[good] = (nk[good] / nk_good * (nk_good / (nk_good + len(bad) / n * nk.sum()))).to(x.dtype)
    new_weights[bad] = 1.0 / n
    new_weights = new_weights / new_weights.sum()
    covariances[bad] = _data_covariance(x, covariance_type, len(bad), reg_covar)
    rows = torch.randint(n, (len(bad),), generator=generator, device=x.device)
    means[bad] = x[rows]
    return GaussianMixture(new_weights, means, covariances, covariance_type), bad


def _fits_in_memory(x: torch.Tensor, covariance_type: str) -> bool:
    """Whether the ``(p, N)`` sufficient statistics of the whole data set are small enough to keep."""
    return (num_features(x.shape[1], covariance_type) + 1) * x.shape[0] <= _FEATURE_BUDGET


def _natural(mixture: GaussianMixture, centre: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return natural_parameters(
        mixture.weights, mixture.means, mixture.covariances, mixture.covariance_type, centre
    )


def em_step(
    x: torch.Tensor,
    mixture: GaussianMixture,
    *,
    reg_covar: float = 0.0,
) -> tuple[GaussianMixture, torch.Tensor, torch.Tensor]:
    r"""One EM iteration: E-step at :math:`\theta_t`, closed-form M-step.

    Returns:
        ``(new_mixture, log_likelihood, elbo)``: :math:`\theta_{t+1}`, :math:`\ell(\theta_t)` (the
        ELBO right after the E-step) and :math:`\mathrm{ELBO}(Q_t, \theta_{t+1})`, with
        :math:`\ell(\theta_t) \le \mathrm{ELBO}(Q_t, \theta_{t+1}) \le \ell(\theta_{t+1})`
        when ``reg_covar`` is 0.

    Raises:
        ComponentCollapseError: a component has no responsibility left or a singular covariance.
    """
    x = _check_points(x, _check_mixture(mixture))
    centre = x.mean(dim=0)
    theta, bias = _natural(mixture, centre)
    ll, stats = em_pass(x, theta, bias, mixture.covariance_type, centre)
    new, _ = _m_step(x, stats, reg_covar, "raise", None)
    return (
        new,
        ll.to(x.dtype),
        _elbo_after_m_step(ll, stats, (theta, bias), _natural(new, centre)).to(x.dtype),
    )


def _elbo_after_m_step(
    log_likelihood: torch.Tensor,
    stats: GaussianStatistics,
    old: tuple[torch.Tensor, torch.Tensor],
    new: tuple[torch.Tensor, torch.Tensor],
) -> torch.Tensor:
    r""":math:`\mathrm{ELBO}(Q_t, \theta_{t+1})` from the statistics of :math:`Q_t` alone:

    .. math::
        \mathrm{ELBO}(Q_t, \theta_{t+1}) = \ell(\theta_t) + \mathbb E_{Q_t}[\log P(x, z \mid \theta_{t+1})]
            - \mathbb E_{Q_t}[\log P(x, z \mid \theta_t)].


    Right after the E-step :math:`\mathrm{ELBO}(Q_t, \theta_t) = \ell(\theta_t)`; the entropy of
    :math:`Q_t` is the same at both parameters and cancels.
    """
    return (
        log_likelihood
        + expected_complete_log_likelihood(stats, *new)
        - expected_complete_log_likelihood(stats, *old)
    )


def _kmeans_plus_plus(x: torch.Tensor, k: int, generator: torch.Generator | None) -> torch.Tensor:
    """``k`` rows of ``x`` chosen by D^2 sampling (k-means++ seeding), shape ``(k, d)``."""
    n = x.shape[0]
    first = torch.randint(n, (1,), generator=generator, device=x.device)
    centres = [x[first[0]]]
    d2 = (x - centres[0]).square().sum(dim=1)
    for _ in range(1, k):
        total = d2.sum()
        probs = d2 / total if total > 0 else torch.full_like(d2, 1.0 / n)
        u = torch.rand((), generator=generator, dtype=x.dtype, device=x.device)
        cdf = probs.cumsum(0)
        index = int(torch.searchsorted(cdf, (u * cdf[-1]).reshape(1)).clamp(max=n - 1)[0])
        centres.append(x[index])
        d2 = torch.minimum(d2, (x - x[index]).square().sum(dim=1))
    return torch.stack(centres)


def initialize_gmm(
    x: torch.Tensor,
    num_components: int,
    *,
    covariance_type: CovarianceType = "full",
    init: Literal["random", "kmeans++"] = "kmeans++",
    reg_covar: float = 1e-6,
    generator: torch.Generator | None = None,
) -> GaussianMixture:
    r"""A starting mixture: means chosen among the data, equal weights, every :math:`\Sigma_k` the
    data's covariance (plus ``reg_covar``).

    ``init="random"`` picks :math:`K` distinct rows uniformly (``torch.randperm(N, generator=...)``);
    ``init="kmeans++"`` picks them by k-means++ seeding: the first uniformly, each next one with
    probability proportional to its squared distance to the nearest one picked.

    Args:
        x: shape ``(N, d)`` with :math:`N \ge K`, floating.
        num_components: :math:`K`.
        generator: on ``x``'s device; ``None`` uses the global generator.

    Returns:
        A :class:`~genlib.mixtures.GaussianMixture` in ``x``'s dtype and on its device.
    """
    x = check_tensor(x, "x", ndim=2, floating=True, min_size=1, finite=True)
    k = check_positive_int(num_components, "num_components")
    if x.shape[0] < k:
        raise ValueError(f"x must have at least num_components={k} rows, got {x.shape[0]}")
    if covariance_type not in COVARIANCE_TYPES:
        raise ValueError(f"covariance_type must be 'full', 'diag' or 'spherical', got {covariance_type!r}")
    generator = check_generator(generator, x.device)
    if init == "random":
        means = x[torch.randperm(x.shape[0], generator=generator, device=x.device)[:k]]
    elif init == "kmeans++":
        means = _kmeans_plus_plus(x, k, generator)
    else:
        raise ValueError(f"init must be 'random' or 'kmeans++', got {init!r}")
    weights = torch.full((k,), 1.0 / k, dtype=x.dtype, device=x.device)
    return GaussianMixture(
        weights, means.clone(), _data_covariance(x, covariance_type, k, reg_covar), covariance_type
    )


@dataclass
class FitResult:
    r"""The outcome of :func:`fit_gmm`.

    Attributes:
        mixture: the fitted :math:`\hat\theta` (of the best restart).
        log_likelihoods: :math:`\ell(\theta_t)` for :math:`t = 0, \dots, T`, shape ``(T + 1,)``
            (float64, on the CPU), from the initial to the final parameters.
        elbos: :math:`\mathrm{ELBO}(Q_t, \theta_{t+1})` with :math:`Q_t` the posterior at
            :math:`\theta_t`, shape ``(T,)``: between ``log_likelihoods[t]`` and
            ``log_likelihoods[t + 1]`` for EM.
        converged: whether :math:`(\ell(\theta_{t+1}) - \ell(\theta_t)) / N <` ``tol`` was reached.
        num_iterations: :math:`T`.
        collapses: indices of components re-seeded (``on_collapse="reinit"``), one list per iteration
            where it happened.
        restart_log_likelihoods: the final :math:`\ell` of every restart, shape ``(n_init,)``.
    """

    mixture: GaussianMixture
    log_likelihoods: torch.Tensor
    elbos: torch.Tensor
    converged: bool
    num_iterations: int
    collapses: list[list[int]] = field(default_factory=list)
    restart_log_likelihoods: torch.Tensor | None = None


def _fit_once(
    x, mixture, method, max_iter, tol, reg_covar, lr, inner_steps, on_collapse, generator, progress
) -> FitResult:
    ctype = mixture.covariance_type
    n = x.shape[0]
    lls: list[float] = []
    elbos: list[float] = []
    collapses: list[list[int]] = []
    converged = False
    if method == "em":
        # One pass over the data per iteration: E-step at theta_t and the statistics of Q_t together.
        centre = x.mean(dim=0)
        natural = _natural(mixture, centre)
        features = (
            sufficient_statistics(x, ctype, centre, with_ones=True) if _fits_in_memory(x, ctype) else None
        )
        ll, stats = em_pass(x, *natural, ctype, centre, features)
    else:
        log_q, ll = e_step(x, mixture)
    lls.append(ll.item())
    for _ in tqdm(range(max_iter), disable=not progress, desc=f"fit_gmm ({method})"):
        if method == "em":
            new, bad = _m_step(x, stats, reg_covar, on_collapse, generator)
            if bad:
                collapses.append(bad)
            new_natural = _natural(new, centre)
            elbos.append(_elbo_after_m_step(ll, stats, natural, new_natural).item())
            mixture, natural = new, new_natural
            ll, stats = em_pass(x, *natural, ctype, centre, features)
        else:
            params = to_unconstrained(mixture)
            if method == "gradient":
                params = gradient_step(x, params, lr, log_q)  # log_q is the posterior: gradient of l
            else:
                for _ in range(inner_steps):
                    params = gradient_step(x, params, lr, log_q)
            new = from_unconstrained(params)
            elbos.append(elbo(x, new, log_q).item())
            mixture = new
            log_q, ll = e_step(x, mixture)
        lls.append(ll.item())
        if not math.isfinite(lls[-1]):
            raise ComponentCollapseError(
                f"the log-likelihood became {lls[-1]} ({method}); lower lr or increase reg_covar"
            )
        if abs(lls[-1] - lls[-2]) / n < tol:
            converged = True
            break
    return FitResult(
        mixture,
        torch.tensor(lls, dtype=torch.float64),
        torch.tensor(elbos, dtype=torch.float64),
        converged,
        len(elbos),
        collapses,
    )


def fit_gmm(
    x: torch.Tensor,
    num_components: int,
    *,
    covariance_type: CovarianceType = "full",
    method: Method = "em",
    init: Literal["random", "kmeans++"] = "kmeans++",
    init_mixture: GaussianMixture | None = None,
    n_init: int = 1,
    max_iter: int = 100,
    tol: float = 1e-3,
    reg_covar: float = 1e-6,
    lr: float = 0.1,
    inner_steps: int = 5,
    on_collapse: Literal["raise", "reinit"] = "raise",
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> FitResult:
    r"""Fit a :math:`K`-component Gaussian mixture to ``x`` by EM, generalized EM or gradient ascent.

    Every iteration records :math:`\ell(\theta_t)` and :math:`\mathrm{ELBO}(Q_t, \theta_{t+1})`
    (see :class:`FitResult`). Runs ``n_init`` restarts from seeded initializations and keeps the
    one with the highest final log-likelihood.

    Args:
        x: the data, shape ``(N, d)``, floating, finite.
        num_components: :math:`K`.
        covariance_type: ``"full"``, ``"diag"`` or ``"spherical"``.
        method: ``"em"`` (closed-form M-step), ``"gem"`` (``inner_steps`` gradient steps on the ELBO
            with :math:`Q` fixed) or ``"gradient"`` (one gradient step on :math:`\ell` per iteration).
        init: ``"kmeans++"`` or ``"random"`` (:func:`initialize_gmm`); ignored with ``init_mixture``.
        init_mixture: start from these parameters (then ``n_init`` must be 1).
        n_init: the number of restarts.
        max_iter: the most iterations per restart.
        tol: stop when the mean log-likelihood per sample improves by less than this.
        reg_covar: added to every variance in the M-step (EM); ``0`` for exact EM.
        lr: the step size :math:`\eta` on the mean log-likelihood (gradient methods).
        inner_steps: gradient steps per generalized-EM iteration.
        on_collapse: when a component loses all responsibility or its covariance becomes singular in
            an M-step: ``"raise"`` a :class:`ComponentCollapseError`, or ``"reinit"`` it at a random data
            point with the data's covariance.
        generator: for the initializations and re-seeding, on ``x``'s device.
        progress: show a progress bar.

    Returns:
        A :class:`FitResult`.
    """
    x = check_tensor(x, "x", ndim=2, floating=True, min_size=1, finite=True)
    k = check_positive_int(num_components, "num_components")
    n_init = check_positive_int(n_init, "n_init")
    max_iter = check_positive_int(max_iter, "max_iter")
    if method not in ("em", "gem", "gradient"):
        raise ValueError(f"method must be 'em', 'gem' or 'gradient', got {method!r}")
    if on_collapse not in ("raise", "reinit"):
        raise ValueError(f"on_collapse must be 'raise' or 'reinit', got {on_collapse!r}")
    inner_steps = check_positive_int(inner_steps, "inner_steps")
    for name, value in (("tol", tol), ("reg_covar", reg_covar)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
            raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
        raise ValueError(f"lr must be a number > 0, got {lr!r}")
    generator = check_generator(generator, x.device)
    if init_mixture is not None:
        init_mixture = _check_mixture(init_mixture)
        _check_points(x, init_mixture)
        if n_init != 1:
            raise ValueError(f"n_init must be 1 when init_mixture is given, got {n_init}")
        if init_mixture.num_components != k or init_mixture.covariance_type != covariance_type:
            raise ValueError(
                f"init_mixture must have num_components={k} and covariance_type={covariance_type!r}, got "
                f"{init_mixture.num_components} and {init_mixture.covariance_type!r}"
            )
    best: FitResult | None = None
    finals = []
    for _ in range(n_init):
        start = init_mixture or initialize_gmm(
            x, k, covariance_type=covariance_type, init=init, reg_covar=reg_covar, generator=generator
        )
        result = _fit_once(
            x, start, method, max_iter, tol, reg_covar, lr, inner_steps, on_collapse, generator, progress
        )
        finals.append(result.log_likelihoods[-1].item())
        if best is None or finals[-1] > best.log_likelihoods[-1].item():
            best = result
    assert best is not None
    best.restart_log_likelihoods = torch.tensor(finals, dtype=torch.float64)
    return best
