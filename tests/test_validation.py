"""Wrong input gets a clear error that names the argument: every public function of
genlib.sampling, genlib.estimators and genlib.divergences is called here with bad arguments."""

from __future__ import annotations

import inspect
import math
from collections import Counter

import numpy as np
import pytest
import torch

import genlib.divergences
import genlib.estimators
import genlib.sampling
from genlib.device import make_generator
from genlib.divergences import (
    cross_entropy,
    entropy,
    kl_categorical,
    kl_monte_carlo,
    monte_carlo_estimate,
    running_mean,
)
from genlib.estimators import (
    bernoulli_log_likelihood,
    bernoulli_mle,
    categorical_log_likelihood,
    categorical_mle,
    categorical_mle_soft,
    gaussian_log_likelihood,
    gaussian_mle,
)
from genlib.sampling import (
    categorical_cdf,
    empirical_distribution,
    sample_categorical,
    sample_categorical_linear,
)

HAS_CUDA = torch.cuda.is_available()
requires_cuda = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")

P = torch.tensor([0.2, 0.3, 0.5])
NEGATIVE = torch.tensor([0.6, -0.1, 0.5])
UNNORMALISED = torch.tensor([0.2, 0.3, 0.4])
WITH_NAN = torch.tensor([0.5, float("nan"), 0.5])
INT_PROBS = torch.tensor([0, 1, 0])
LABELS = torch.tensor([0, 2, 1, 1])
EMPTY_LABELS = torch.zeros(0, dtype=torch.long)
X2 = torch.tensor([[0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
GAUSS = torch.randn(20, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
EYE2 = torch.eye(2, dtype=torch.float64)
ZERO2 = torch.zeros(2, dtype=torch.float64)


def _log_std(x: torch.Tensor) -> torch.Tensor:
    return torch.distributions.Normal(0.0, 1.0).log_prob(x)


CASES: list = []


def case(fn, exc, match, *args, **kwargs):
    """Register: ``fn(*args, **kwargs)`` raises ``exc`` with a message matching ``match``."""
    number = sum(1 for c in CASES if c.values[0] is fn)
    CASES.append(pytest.param(fn, exc, match, args, kwargs, id=f"{fn.__name__}-{number}"))


# --------------------------------------------------------------------------- sampling
for fn in (categorical_cdf, sample_categorical, sample_categorical_linear):
    extra = (5,) if fn is not categorical_cdf else ()
    case(fn, ValueError, "probs.*non-negative", NEGATIVE, *extra)
    case(fn, ValueError, "probs.*sum to 1", UNNORMALISED, *extra)
    case(fn, ValueError, "probs.*finite", WITH_NAN, *extra)
    case(fn, TypeError, "probs.*floating", INT_PROBS, *extra)
    case(fn, TypeError, "probs.*torch.Tensor", [0.5, 0.5], *extra)
    case(fn, ValueError, "probs.*shape", torch.tensor(1.0), *extra)
    case(fn, ValueError, "probs.*at least one category", torch.zeros(3, 0), *extra)
    case(fn, ValueError, "probs.*sum to 1", torch.tensor([[0.5, 0.5], [0.5, 0.6]]), *extra)
for fn in (sample_categorical, sample_categorical_linear):
    case(fn, ValueError, "num_samples.*>= 1", P, 0)
    case(fn, ValueError, "num_samples", P, -2)
    case(fn, TypeError, "num_samples.*int.*bool", P, True)
    case(fn, TypeError, "num_samples.*int.*float", P, 10.0)
    case(fn, TypeError, "num_samples", P, None)
    case(fn, TypeError, "generator.*torch.Generator", P, 5, generator=0)
    case(fn, TypeError, "generator", P, 5, generator=np.random.default_rng(0))
case(empirical_distribution, ValueError, "x.*at least 1", EMPTY_LABELS, 3)
case(empirical_distribution, ValueError, "x.*dimension", LABELS[None], 3)
case(empirical_distribution, TypeError, "x.*integer", LABELS.float(), 3)
case(empirical_distribution, TypeError, "x.*integer", LABELS.bool(), 3)
case(empirical_distribution, ValueError, "x.*labels in 0..2", torch.tensor([0, 3]), 3)
case(empirical_distribution, ValueError, "x.*labels", torch.tensor([-1, 0]), 3)
case(empirical_distribution, ValueError, "num_categories", LABELS, 0)
case(empirical_distribution, TypeError, "num_categories", LABELS, 3.0)
case(empirical_distribution, TypeError, "x.*torch.Tensor", [0, 1], 3)
case(empirical_distribution, ValueError, r"weights.*shape \(4,\)", LABELS, 3, weights=torch.ones(3))
case(empirical_distribution, ValueError, "weights.*dimension", LABELS, 3, weights=torch.ones(4, 1))
case(
    empirical_distribution,
    ValueError,
    "weights.*non-negative",
    LABELS,
    3,
    weights=torch.tensor([1.0, -1, 1, 1]),
)
case(empirical_distribution, ValueError, "weights.*zero", LABELS, 3, weights=torch.zeros(4))
case(
    empirical_distribution,
    ValueError,
    "weights.*finite",
    LABELS,
    3,
    weights=torch.tensor([1.0, math.nan, 1, 1]),
)
case(
    empirical_distribution, TypeError, "weights.*floating", LABELS, 3, weights=torch.ones(4, dtype=torch.long)
)

# --------------------------------------------------------------------------- estimators
case(bernoulli_mle, ValueError, "x.*at least 1", torch.zeros(0, 3))
case(bernoulli_mle, ValueError, "x.*dimension", torch.zeros(2, 2, 2))
case(bernoulli_mle, ValueError, "x.*zeros and ones", torch.tensor([0.0, 1.0, 2.0]))
case(bernoulli_mle, ValueError, "x.*zeros and ones", torch.tensor([0.0, math.nan]))
case(bernoulli_mle, TypeError, "x.*torch.Tensor", [0, 1, 1])
case(bernoulli_mle, ValueError, "weights.*shape", X2, weights=torch.ones(2))
case(bernoulli_mle, ValueError, "weights.*non-negative", X2, weights=torch.tensor([1.0, -0.5, 1.0]))
case(bernoulli_mle, ValueError, "weights.*zero", X2, weights=torch.zeros(3))
case(categorical_mle, ValueError, "x.*at least 1", EMPTY_LABELS, 3)
case(categorical_mle, TypeError, "x.*integer", LABELS.double(), 3)
case(categorical_mle, ValueError, "x.*labels", LABELS, 2)
case(categorical_mle, ValueError, "weights.*shape", LABELS, 3, weights=torch.ones(5))
case(categorical_mle, ValueError, "weights.*non-negative", LABELS, 3, weights=-torch.ones(4))
case(categorical_mle, ValueError, "weights.*zero", LABELS, 3, weights=torch.zeros(4))
case(categorical_mle_soft, ValueError, "responsibilities.*non-negative", torch.tensor([[0.5, -0.1]]))
case(categorical_mle_soft, ValueError, "responsibilities.*zero", torch.zeros(3, 2))
case(categorical_mle_soft, ValueError, "responsibilities.*dimension", torch.ones(3))
case(categorical_mle_soft, ValueError, "responsibilities.*at least 1", torch.ones(0, 3))
case(categorical_mle_soft, ValueError, "responsibilities.*column", torch.ones(3, 0))
case(categorical_mle_soft, ValueError, "responsibilities.*finite", torch.tensor([[0.5, math.nan]]))
case(categorical_mle_soft, TypeError, "responsibilities.*floating", torch.ones(3, 2, dtype=torch.long))
case(gaussian_mle, TypeError, "x.*floating", torch.ones(4, 2, dtype=torch.long))
case(gaussian_mle, ValueError, "x.*dimension", torch.ones(4, 2, 1))
case(gaussian_mle, ValueError, "x.*at least 1", torch.ones(0, 2))
case(gaussian_mle, ValueError, "x.*finite", torch.tensor([[1.0, math.inf]]))
case(gaussian_mle, ValueError, "covariance_type.*'tied'", GAUSS, covariance_type="tied")
case(gaussian_mle, ValueError, "covariance_type", GAUSS, covariance_type="FULL")
case(gaussian_mle, ValueError, "weights.*shape", GAUSS, weights=torch.ones(19, dtype=torch.float64))
case(gaussian_mle, ValueError, "weights.*non-negative", GAUSS[:2], weights=torch.tensor([1.0, -1.0]))
case(gaussian_mle, ValueError, "weights.*zero", GAUSS, weights=torch.zeros(20))
case(bernoulli_log_likelihood, ValueError, r"theta.*\[0, 1\]", X2, torch.tensor([0.5, 1.5]))
case(bernoulli_log_likelihood, ValueError, r"theta.*\[0, 1\]", X2, torch.tensor([0.5, math.nan]))
case(bernoulli_log_likelihood, ValueError, "theta.*shape", X2, torch.tensor([0.5, 0.5, 0.5]))
case(bernoulli_log_likelihood, ValueError, "theta.*shape", X2[:, 0], torch.tensor([0.5]))
case(bernoulli_log_likelihood, TypeError, "theta.*floating", X2, torch.tensor([0, 1]))
case(bernoulli_log_likelihood, ValueError, "x.*zeros and ones", X2 * 3, torch.tensor([0.5, 0.5]))
case(bernoulli_log_likelihood, ValueError, "x.*at least 1", torch.zeros(0, 2), torch.tensor([0.5, 0.5]))
case(categorical_log_likelihood, ValueError, r"probs.*\(K,\)", LABELS, P.expand(2, 3))
case(categorical_log_likelihood, ValueError, "probs.*sum to 1", LABELS, UNNORMALISED)
case(categorical_log_likelihood, ValueError, "probs.*non-negative", LABELS, NEGATIVE)
case(categorical_log_likelihood, ValueError, "x.*labels", torch.tensor([0, 3]), P)
case(categorical_log_likelihood, TypeError, "x.*integer", LABELS.float(), P)
case(categorical_log_likelihood, ValueError, "x.*at least 1", EMPTY_LABELS, P)
case(
    gaussian_log_likelihood,
    ValueError,
    "cov.*positive definite",
    GAUSS,
    ZERO2,
    torch.tensor([[1.0, 2.0], [2.0, 1.0]], dtype=torch.float64),
)
case(
    gaussian_log_likelihood,
    ValueError,
    "cov.*positive definite",
    GAUSS,
    ZERO2,
    torch.zeros(2, 2, dtype=torch.float64),
)
case(
    gaussian_log_likelihood,
    ValueError,
    "cov.*positive definite",
    GAUSS[:, 0],
    torch.tensor(0.0),
    torch.tensor(-1.0),
)
case(gaussian_log_likelihood, ValueError, "cov.*finite", GAUSS, ZERO2, EYE2 * math.nan)
case(gaussian_log_likelihood, ValueError, "mean.*shape", GAUSS, torch.zeros(3, dtype=torch.float64), EYE2)
case(gaussian_log_likelihood, ValueError, "cov", GAUSS, ZERO2, torch.eye(3, dtype=torch.float64))
case(gaussian_log_likelihood, ValueError, "mean and cov.*scalars", GAUSS[:, 0], ZERO2, EYE2)
case(gaussian_log_likelihood, TypeError, "x.*floating", torch.ones(3, 2, dtype=torch.long), ZERO2, EYE2)
case(gaussian_log_likelihood, ValueError, "x.*at least 1", torch.ones(0, 2), ZERO2, EYE2)
case(gaussian_log_likelihood, TypeError, "mean.*floating", GAUSS, torch.zeros(2, dtype=torch.long), EYE2)

# --------------------------------------------------------------------------- divergences
case(entropy, ValueError, "p.*non-negative", NEGATIVE)
case(entropy, ValueError, "p.*sum to 1", UNNORMALISED)
case(entropy, ValueError, "p.*finite", WITH_NAN)
case(entropy, TypeError, "p.*floating", INT_PROBS)
case(entropy, ValueError, "p.*shape", torch.tensor(1.0))
for fn in (cross_entropy, kl_categorical):
    case(fn, ValueError, "p and q.*same number of categories.*3 and 2", P, torch.tensor([0.5, 0.5]))
    case(fn, ValueError, "p and q.*broadcastable", P.expand(2, 3), P.expand(4, 3))
    case(fn, ValueError, "q.*non-negative", P, NEGATIVE)
    case(fn, ValueError, "p.*sum to 1", UNNORMALISED, P)
    case(fn, ValueError, "q.*finite", P, WITH_NAN)
    case(fn, TypeError, "q.*floating", P, INT_PROBS)
case(
    kl_monte_carlo,
    ValueError,
    r"log_p.*shape \(20,\).*\(20, 2\)",
    GAUSS,
    _log_std,
    lambda x: _log_std(x).sum(1),
)
case(
    kl_monte_carlo,
    ValueError,
    r"log_q.*shape \(20,\).*\(\)",
    GAUSS,
    lambda x: _log_std(x).sum(1),
    lambda x: _log_std(x).sum(),
)
case(kl_monte_carlo, ValueError, "log_q.*float", GAUSS[:, 0], _log_std, lambda x: 0.0)
case(kl_monte_carlo, ValueError, "log_p.*NaN", GAUSS[:, 0], lambda x: x.log(), _log_std)
case(kl_monte_carlo, TypeError, "log_p and log_q.*callables", GAUSS[:, 0], _log_std, 3.0)
case(kl_monte_carlo, ValueError, "x.*at least 1", torch.zeros(0), _log_std, _log_std)
case(kl_monte_carlo, TypeError, "x.*torch.Tensor", [0.0, 1.0], _log_std, _log_std)
case(monte_carlo_estimate, ValueError, "values.*at least 1", torch.zeros(0))
case(monte_carlo_estimate, ValueError, "values.*dimension", torch.zeros(3, 2))
case(monte_carlo_estimate, TypeError, "values.*floating", torch.arange(5))
case(monte_carlo_estimate, ValueError, "values.*finite", torch.tensor([1.0, math.inf]))
case(monte_carlo_estimate, ValueError, "values.*finite", torch.tensor([1.0, math.nan]))
case(running_mean, ValueError, "values.*at least 1", torch.zeros(0))
case(running_mean, ValueError, "values.*dimension", torch.zeros(3, 2))
case(running_mean, TypeError, "values.*floating", torch.arange(5))


@pytest.mark.parametrize(("fn", "exc", "match", "args", "kwargs"), CASES)
def test_bad_input_raises_a_clear_error(fn, exc, match, args, kwargs):
    with pytest.raises(exc, match=match):
        fn(*args, **kwargs)


def test_every_public_function_has_error_tests():
    tested = Counter(c.values[0].__name__ for c in CASES)
    for module in (genlib.sampling, genlib.estimators, genlib.divergences):
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isfunction(obj):
                assert tested[name] >= 3, f"{module.__name__}.{name} has {tested[name]} error tests"


def test_error_messages_say_what_was_got_and_how_to_fix_it():
    with pytest.raises(ValueError, match=r"probs must sum to 1.*off by 0\.1.*normalise"):
        sample_categorical(UNNORMALISED, 3)
    with pytest.raises(ValueError, match=r"smallest entry is -0\.1"):
        entropy(NEGATIVE)
    with pytest.raises(TypeError, match=r"torch\.int64"):
        categorical_cdf(INT_PROBS)
    with pytest.raises(ValueError, match=r"got values from 0 to 5"):
        empirical_distribution(torch.tensor([0, 5]), 3)
    with pytest.raises(ValueError, match=r"got shape \(1, 4\)"):
        empirical_distribution(LABELS[None], 3)
    with pytest.raises(ValueError, match=r"got 0 rows"):
        gaussian_mle(torch.ones(0, 2))


# --------------------------------------------------------------------------- not over-strict


def test_valid_edge_inputs_are_accepted():
    # float32 probabilities that sum to 1 only up to rounding, many categories.
    big = torch.full((1000,), 1 / 1000, dtype=torch.float32)
    assert sample_categorical(big, 10, generator=make_generator(0)).shape == (10,)
    assert entropy(big).item() == pytest.approx(math.log(1000), rel=1e-5)
    # Labels in any integer dtype.
    for dtype in (torch.uint8, torch.int16, torch.int32, torch.long):
        out = empirical_distribution(LABELS.to(dtype), 3)
        assert out.tolist() == pytest.approx([0.25, 0.5, 0.25])
    # Bernoulli data as bool, int or float; weights with zeros.
    assert bernoulli_mle(torch.tensor([True, False, True, True])).item() == 0.75
    assert bernoulli_mle(torch.tensor([1, 0]), weights=torch.tensor([0.0, 2.0])).item() == 0.0
    # KL and entropy of a single-category distribution.
    one = torch.ones(1)
    assert kl_categorical(one, one).item() == 0.0 and entropy(one).item() == 0.0
    # A single Monte Carlo sample and a single running mean.
    assert running_mean(torch.tensor([3.0])).tolist() == [3.0]


def test_make_generator_rejects_non_int_seed():
    with pytest.raises(TypeError, match="seed"):
        make_generator(1.5)
    with pytest.raises(TypeError, match="seed"):
        make_generator(True)


# --------------------------------------------------------------------------- devices (CUDA only)


@pytest.mark.gpu
@requires_cuda
@pytest.mark.parametrize("fn", [sample_categorical, sample_categorical_linear])
def test_generator_on_the_wrong_device(fn):
    with pytest.raises(ValueError, match="generator.*make_generator"):
        fn(P, 5, generator=make_generator(0, device="cuda"))
    with pytest.raises(ValueError, match="generator"):
        fn(P.cuda(), 5, generator=make_generator(0, device="cpu"))


@pytest.mark.gpu
@requires_cuda
def test_tensors_on_different_devices():
    with pytest.raises(ValueError, match="weights.*cuda"):
        empirical_distribution(LABELS, 3, weights=torch.ones(4, device="cuda"))
    with pytest.raises(ValueError, match="weights"):
        gaussian_mle(GAUSS.cuda(), weights=torch.ones(20, dtype=torch.float64))
    with pytest.raises(ValueError, match="weights"):
        bernoulli_mle(X2, weights=torch.ones(3, device="cuda"))
    with pytest.raises(ValueError, match="p is on"):
        kl_categorical(P, P.cuda())
    with pytest.raises(ValueError, match="p is on"):
        cross_entropy(P.cuda(), P)
