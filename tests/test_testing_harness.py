"""genlib.testing, what graded notebooks use: check_function with correct, wrong, slow, crashing and
cheating student functions (written here, independently of genlib), compare_outputs, random_probs
and chi_square_test (against SciPy)."""

from __future__ import annotations

import functools
import math
import signal
import time

import numpy as np
import pytest
import scipy.stats
import torch

import genlib.estimators
import genlib.sampling
from genlib.device import make_generator
from genlib.divergences import MonteCarloEstimate, entropy, monte_carlo_estimate
from genlib.sampling import empirical_distribution
from genlib.sampling import sample_categorical as aliased_reference  # an alias made before the check
from genlib.testing import (
    Case,
    GradingFailure,
    ReferenceCalled,
    check_function,
    chi_square_test,
    compare_outputs,
    random_probs,
    reference_blocked,
    run_student,
    time_limit,
)

PROBS = torch.tensor([[0.1, 0.0, 0.6, 0.3], [0.25, 0.25, 0.25, 0.25]], dtype=torch.float64)
PARTIAL_REFERENCE = functools.partial(genlib.sampling.sample_categorical, num_samples=3)


# --------------------------------------------------------------------------- student functions


def student_entropy(p):
    """A correct entropy, written with torch operations only."""
    logs = torch.where(p > 0, p.log(), torch.zeros_like(p))
    return -(p * logs).sum(-1)


def student_entropy_in_bits(p):
    """A wrong entropy: log base 2."""
    return student_entropy(p) / math.log(2)


def student_sampler(probs, num_samples, *, generator=None):
    """A correct inverse-CDF sampler using the documented uniforms."""
    u = torch.rand(
        (*probs.shape[:-1], num_samples), generator=generator, dtype=probs.dtype, device=probs.device
    )
    levels = probs.cumsum(-1)
    levels = levels / levels[..., -1:]
    return (u[..., :, None] >= levels[..., None, :]).long().sum(-1)


def student_empirical(x, num_categories, *, weights=None, dtype=torch.float32):
    """A correct empirical distribution via one-hot vectors."""
    onehot = torch.nn.functional.one_hot(x, num_categories).to(dtype if weights is None else weights.dtype)
    w = torch.ones(x.shape[0], dtype=onehot.dtype, device=x.device) if weights is None else weights
    return (w[:, None] * onehot).sum(0) / w.sum()


def entropy_cases(device="cpu"):
    g = make_generator(0, device=device)
    return [
        Case("uniform over 4", (torch.full((4,), 0.25, device=device),)),
        Case("with zeros", (torch.tensor([0.5, 0.0, 0.5], device=device),), hint="0 log 0 = 0"),
        Case("batch", (random_probs(g, 6, (3,), num_zeros=2),), hint="sum over the last dimension only"),
    ]


def sampler_cases(device="cpu"):
    return [
        Case("one distribution", (PROBS[0].to(device), 50), {"generator": make_generator(1, device=device)}),
        Case("batch", (PROBS.to(device), 40), {"generator": make_generator(2, device=device)}),
    ]


# --------------------------------------------------------------------------- correct and wrong answers


def test_correct_student_passes(device, capsys):
    assert check_function(student_entropy, entropy, entropy_cases(device)) is None
    out = capsys.readouterr().out
    assert "ok    uniform over 4" in out and "ok    batch" in out and "all 3 cases passed" in out
    assert check_function(student_sampler, genlib.sampling.sample_categorical, sampler_cases(device)) is None
    assert "all 2 cases passed" in capsys.readouterr().out
    cases = [Case("labels", (torch.tensor([0, 2, 2, 1], device=device), 4))]
    cases.append(
        Case("weights", cases[0].args, {"weights": torch.tensor([1.0, 0.0, 2.0, 1.0], device=device)})
    )
    assert check_function(student_empirical, empirical_distribution, cases, verbose=False) is None
    assert capsys.readouterr().out == ""


def test_wrong_student_fails_naming_the_case_with_expected_got_and_hint(device):
    with pytest.raises(GradingFailure) as info:
        check_function(student_entropy_in_bits, entropy, entropy_cases(device))
    message = str(info.value)
    assert "3 of 3 cases failed" in message
    assert "all 3 cases passed" not in message
    assert "FAIL  with zeros" in message and "FAIL  uniform over 4" in message
    assert "expected" in message and "got" in message
    assert "hint:     0 log 0 = 0" in message
    assert "input:" in message
    # The expected value (log 4) and the student's (2 bits) both appear.
    assert f"{math.log(4):.6g}" in message and "expected: tensor(1.38629)" in message
    assert "got:      tensor(2" in message


def test_only_failing_cases_are_reported():
    def half_right(p):
        return student_entropy(p) if p.dim() == 1 else student_entropy(p) + 1

    with pytest.raises(GradingFailure) as info:
        check_function(half_right, entropy, entropy_cases(), verbose=False)
    message = str(info.value)
    assert "1 of 3 cases failed" in message
    assert "FAIL  batch" in message and "FAIL  uniform" not in message
    assert "hint:     sum over the last dimension only" in message


def test_passing_the_reference_itself_or_a_non_function_is_refused():
    with pytest.raises(GradingFailure, match="genlib's own function"):
        check_function(entropy, entropy, entropy_cases())
    with pytest.raises(GradingFailure, match="expected your function"):
        check_function(None, entropy, entropy_cases())


# --------------------------------------------------------------------------- calling the reference


def _uses_module_attribute(probs, num_samples, *, generator=None):
    return genlib.sampling.sample_categorical(probs, num_samples, generator=generator)


def _uses_alias(probs, num_samples, *, generator=None):
    return aliased_reference(probs, num_samples, generator=generator)


def _helper(*args, **kwargs):
    return aliased_reference(*args, **kwargs)


def _uses_wrapper(probs, num_samples, *, generator=None):
    return _helper(probs, num_samples, generator=generator)


def _uses_partial(probs, num_samples, *, generator=None):
    return PARTIAL_REFERENCE(probs, generator=generator)


def _uses_linear(probs, num_samples, *, generator=None):
    return genlib.sampling.sample_categorical_linear(probs, num_samples, generator=generator)


def _uses_categorical_mle(x, num_categories, *, weights=None, dtype=torch.float32):
    return genlib.estimators.categorical_mle(x, num_categories, weights=weights, dtype=dtype)


def _catches_and_reraises(probs, num_samples, *, generator=None):
    try:
        return aliased_reference(probs, num_samples, generator=generator)
    except ZeroDivisionError:  # not what is raised: the block must get through
        return None


def _assert_genlib_works_again():
    g1, g2 = make_generator(5), make_generator(5)
    got = genlib.sampling.sample_categorical(PROBS, 30, generator=g1)
    assert torch.equal(got, student_sampler(PROBS, 30, generator=g2))
    assert torch.equal(aliased_reference(PROBS, 30, generator=make_generator(5)), got)
    assert PARTIAL_REFERENCE(PROBS, generator=make_generator(5)).shape == (2, 3)
    labels = torch.tensor([0, 1, 1, 3])
    expected = torch.tensor([0.25, 0.5, 0.0, 0.25])
    assert torch.equal(genlib.estimators.categorical_mle(labels, 4), expected)
    assert torch.equal(empirical_distribution(labels, 4), expected)


@pytest.mark.parametrize(
    "student",
    [_uses_module_attribute, _uses_alias, _uses_wrapper, _uses_partial, _uses_linear, _catches_and_reraises],
)
def test_calling_the_reference_is_caught(student, device):
    with pytest.raises(GradingFailure) as info:
        check_function(student, genlib.sampling.sample_categorical, sampler_cases(device))
    message = str(info.value)
    assert "2 of 2 cases failed" in message
    assert "reference" in message
    assert "genlib.sampling.sample_categorical" in message
    _assert_genlib_works_again()


def test_calling_another_genlib_function_that_computes_the_reference_is_caught():
    cases = [Case("labels", (torch.tensor([0, 2, 2, 1]), 3))]
    with pytest.raises(GradingFailure) as info:
        check_function(_uses_categorical_mle, empirical_distribution, cases)
    assert "reference" in str(info.value)
    assert "genlib.estimators.categorical_mle" in str(info.value)
    _assert_genlib_works_again()


def test_reference_blocked_restores_functions_after_an_exception():
    original = genlib.sampling.sample_categorical.__code__
    with pytest.raises(ZeroDivisionError):
        with reference_blocked():
            with pytest.raises(ReferenceCalled, match="sample_categorical"):
                aliased_reference(PROBS, 3)
            with pytest.raises(ReferenceCalled):
                genlib.estimators.gaussian_mle(torch.ones(3, 2))
            # Helpers stay usable.
            assert make_generator(0).initial_seed() == 0
            _ = 1 / 0
    assert genlib.sampling.sample_categorical.__code__ is original
    _assert_genlib_works_again()


def test_genlib_works_again_after_the_student_raised_or_timed_out():
    def raises_after_calling(probs, num_samples, *, generator=None):
        try:
            aliased_reference(probs, num_samples, generator=generator)
        except ReferenceCalled:
            pass
        return 1 / 0

    with pytest.raises(GradingFailure, match="ZeroDivisionError"):
        check_function(raises_after_calling, genlib.sampling.sample_categorical, sampler_cases())
    _assert_genlib_works_again()

    def loops(probs, num_samples, *, generator=None):
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            pass
        return student_sampler(probs, num_samples, generator=generator)

    with pytest.raises(GradingFailure, match="longer than 0.3 s"):
        check_function(loops, genlib.sampling.sample_categorical, sampler_cases()[:1], seconds=0.3)
    _assert_genlib_works_again()


def test_a_student_may_build_genlib_result_types():
    """Building a MonteCarloEstimate (a NamedTuple) is not calling the reference."""

    def student_mc(values):
        n = values.shape[0]
        return MonteCarloEstimate(values.mean().item(), (values.std() / math.sqrt(n)).item(), n)

    v = torch.tensor(np.random.default_rng(0).normal(size=50))
    assert check_function(student_mc, monte_carlo_estimate, [Case("fifty", (v,))], verbose=False) is None


def test_a_correct_student_passes_where_the_reference_returns_nan():
    """monte_carlo_estimate documents a NaN standard error for N = 1; a correct student who returns
    the same NaN must pass, as NaN matches NaN for tensors."""

    def student_mc(values):
        n = values.shape[0]
        se = (values.std() / math.sqrt(n)).item() if n > 1 else math.nan
        return MonteCarloEstimate(values.mean().item(), se, n)

    cases = [Case("one sample", (torch.tensor([2.0]),)), Case("two", (torch.tensor([1.0, 3.0]),))]
    assert check_function(student_mc, monte_carlo_estimate, cases, verbose=False) is None


# --------------------------------------------------------------------------- time limit and crashes


def test_endless_loop_is_stopped_by_the_time_limit():
    def endless(p):
        deadline = time.monotonic() + 5.0  # bounded, so a broken limit fails instead of hanging
        while time.monotonic() < deadline:
            try:  # a student's `except Exception` cannot swallow the timeout
                sum(range(100))
            except Exception:
                pass
        return student_entropy(p)

    handler = signal.getsignal(signal.SIGALRM)
    cases = entropy_cases()
    with pytest.raises(GradingFailure) as info:
        check_function(endless, entropy, [cases[1], cases[0], cases[2]], seconds=0.3)
    message = str(info.value)
    assert "3 of 3 cases failed" in message
    assert "FAIL  with zeros" in message
    assert "ran longer than 0.3 s and was stopped" in message
    assert "hint:     0 log 0 = 0" in message
    # One endless loop is enough: the later cases are not run (so the check ends in time).
    assert "SKIP  uniform over 4" in message and "SKIP  batch" in message
    assert message.count("ran longer than") == 1
    # The alarm is off and the previous handler back.
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGALRM) is handler


def test_time_limit_none_sets_no_alarm():
    with time_limit(None):
        assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    with time_limit(30):
        assert signal.getitimer(signal.ITIMER_REAL)[0] > 0
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_exceptions_are_reported_with_their_name_and_line():
    def divides(p):
        return p / 0 + 1 / 0

    def unwritten(p):
        raise NotImplementedError

    def exits(p):
        raise SystemExit(3)

    with pytest.raises(GradingFailure) as info:
        check_function(divides, entropy, entropy_cases()[:1])
    message = str(info.value)
    assert "raised ZeroDivisionError: division by zero" in message
    assert "return p / 0 + 1 / 0" in message
    with pytest.raises(GradingFailure, match="NotImplementedError.*not been written"):
        check_function(unwritten, entropy, entropy_cases()[:1])
    with pytest.raises(GradingFailure, match="SystemExit"):
        check_function(exits, entropy, entropy_cases()[:1])


@pytest.mark.parametrize(
    ("student", "problem"),
    [
        (lambda p: student_entropy(p).double(), "dtype torch.float32, got torch.float64"),
        (lambda p: student_entropy(p)[None], "shape (), got shape (1,)"),
        (lambda p: student_entropy(p).item(), "should be a torch.Tensor, got float"),
        (lambda p: None, "should be a torch.Tensor, got NoneType"),
        (lambda p: student_entropy(p) * math.nan, "holds NaN"),
        (lambda p: (student_entropy(p), 0), "should be a torch.Tensor, got tuple"),
    ],
    ids=["dtype", "shape", "float", "none", "nan", "tuple"],
)
def test_wrong_kind_of_output_is_reported(student, problem):
    with pytest.raises(GradingFailure) as info:
        check_function(student, entropy, entropy_cases()[:1])
    message = str(info.value)
    assert problem in message
    assert "expected:" in message and "got:" in message


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_wrong_device_is_reported():
    with pytest.raises(GradingFailure, match="should be on cuda:0, got cpu"):
        check_function(lambda p: student_entropy(p).cpu(), entropy, entropy_cases("cuda"))


def test_run_student_returns_the_output_or_raises_a_grading_failure():
    p = torch.tensor([[0.5, 0.0, 0.5], [0.25, 0.25, 0.5]])
    got = run_student(student_entropy, p)
    torch.testing.assert_close(got, torch.tensor([math.log(2), 1.5 * math.log(2)]))
    # Keyword arguments are passed through, inputs are copies.
    draws = run_student(student_sampler, PROBS, 20, generator=make_generator(4))
    assert torch.equal(draws, student_sampler(PROBS, 20, generator=make_generator(4)))

    def mutating(x):
        x.zero_()
        return x.sum()

    run_student(mutating, p)
    assert p[0, 0].item() == 0.5
    with pytest.raises(GradingFailure, match="reference"):
        run_student(_uses_alias, PROBS, 5, generator=make_generator(0))
    _assert_genlib_works_again()
    with pytest.raises(GradingFailure, match="raised ZeroDivisionError"):
        run_student(lambda v: 1 / 0, p)

    def endless(v):
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            pass
        return v

    with pytest.raises(GradingFailure, match="longer than 0.3 s"):
        run_student(endless, p, seconds=0.3)


# --------------------------------------------------------------------------- copies of the inputs


def test_cases_are_cloned_so_mutation_does_not_leak():
    shared = torch.tensor([0.5, 0.0, 0.5])
    original = shared.clone()

    def mutating_student(p):
        result = student_entropy(p)
        p.fill_(7.0)
        return result

    cases = [Case("first", (shared,)), Case("second", {}.get("x", (shared,)))]
    assert check_function(mutating_student, entropy, cases, verbose=False) is None
    assert torch.equal(shared, original)

    def mutating_reference(p):
        result = entropy(p)
        p.mul_(0.0)
        return result

    assert check_function(student_entropy, mutating_reference, cases, verbose=False) is None
    assert torch.equal(shared, original)
    # Keyword arguments are cloned too.
    weights = torch.tensor([1.0, 2.0, 3.0])

    def mutating_weights(x, k, *, weights):
        out = student_empirical(x, k, weights=weights)
        weights.zero_()
        return out

    kw_cases = [Case("w", (torch.tensor([0, 1, 1]), 2), {"weights": weights})] * 2
    assert check_function(mutating_weights, empirical_distribution, kw_cases, verbose=False) is None
    assert weights.tolist() == [1.0, 2.0, 3.0]


def test_generators_are_copied_with_their_state(device):
    g = make_generator(123, device=device)
    torch.rand(17, generator=g, device=device)  # advance it: the copy must keep this state
    state = g.get_state()
    cases = [
        Case("a", (PROBS.to(device), 64), {"generator": g}),
        Case("b", (PROBS.to(device), 64), {"generator": g}),
    ]
    assert check_function(student_sampler, genlib.sampling.sample_categorical, cases, verbose=False) is None
    assert torch.equal(g.get_state(), state)  # the case's generator was not advanced
    # A student who draws differently (one uniform too many) fails.

    def skips_one(probs, num_samples, *, generator=None):
        torch.rand(1, generator=generator, dtype=probs.dtype, device=probs.device)
        return student_sampler(probs, num_samples, generator=generator)

    with pytest.raises(GradingFailure, match="differs in"):
        check_function(skips_one, genlib.sampling.sample_categorical, cases)


# --------------------------------------------------------------------------- compare_outputs


def test_compare_outputs_tensors():
    x = torch.tensor([1.0, 2.0, 3.0])
    assert compare_outputs(x.clone(), x) is None
    assert compare_outputs(x + 1e-7, x) is None  # inside rtol
    message = compare_outputs(torch.tensor([1.0, 2.5, 3.0]), x)
    assert message == (
        "the output differs in 1 of 3 entries; largest difference 0.5; "
        "first at index (1,): expected 2, got 2.5"
    )
    assert compare_outputs(x + 0.01, x, rtol=0.1) is None  # the tolerances are honoured
    assert compare_outputs(x + 0.01, x, atol=0.02) is None
    assert compare_outputs(x + 0.01, x) is not None
    assert "dtype" in compare_outputs(x.double(), x)
    assert "shape" in compare_outputs(x[None], x)
    assert "torch.Tensor" in compare_outputs(x.tolist(), x)
    assert "differs" in compare_outputs(torch.tensor([1, 2, 4]), torch.tensor([1, 2, 3]))
    assert compare_outputs(torch.tensor(3.0), torch.tensor(3.0)) is None
    assert "expected 3, got 4" in compare_outputs(torch.tensor(4.0), torch.tensor(3.0))
    # Device is compared (meta tensors stand in for a second device on a CPU-only machine).
    assert "should be on cpu, got meta" in compare_outputs(torch.empty(3, device="meta"), x)


def test_compare_outputs_tuples_and_numbers():
    a = (torch.tensor([1.0]), 2, 0.5)
    assert compare_outputs((torch.tensor([1.0]), 2, 0.5), a) is None
    assert compare_outputs([torch.tensor([1.0]), 2.0, 0.5 + 1e-9], a) is None
    assert "tuple of 3 items" in compare_outputs((torch.tensor([1.0]), 2), a)
    assert "tuple of 3 items" in compare_outputs(torch.tensor([1.0]), a)
    assert "item 1 of the output should be 2, got 3" in compare_outputs((torch.tensor([1.0]), 3, 0.5), a)
    assert "item 0 of the output" in compare_outputs((torch.tensor([1.5]), 2, 0.5), a)
    assert compare_outputs(torch.tensor(2.5), 2.5) is None  # 0-d tensor for a number
    assert "should be a number" in compare_outputs(True, 1)
    assert "should be a number" in compare_outputs("1", 1)
    assert "should be 1, got 1.1" in compare_outputs(1.1, 1)
    assert compare_outputs("abc", "abc") is None
    assert "should be 'abc'" in compare_outputs("abd", "abc")


def test_compare_outputs_infinities():
    inf = math.inf
    assert compare_outputs(inf, inf) is None
    assert compare_outputs(-inf, -inf) is None
    assert compare_outputs(-inf, inf) is not None
    assert compare_outputs(1e300, inf) is not None
    assert compare_outputs(inf, 1e300) is not None
    t = torch.tensor([inf, 1.0, -inf])
    assert compare_outputs(t.clone(), t) is None
    assert "differs in 1 of 3" in compare_outputs(torch.tensor([inf, 1.0, inf]), t)
    assert "differs in 1 of 3" in compare_outputs(torch.tensor([3e38, 1.0, -inf]), t)
    assert "differs" in compare_outputs(torch.tensor([1.0, 1.0, -inf]), t)


def test_compare_outputs_nan():
    nan = math.nan
    # NaN where a number is expected never passes.
    assert "NaN" in compare_outputs(torch.tensor([1.0, nan]), torch.tensor([1.0, 2.0]))
    assert compare_outputs(torch.tensor(nan), torch.tensor(2.0)) is not None
    assert compare_outputs(nan, 2.0) is not None
    assert compare_outputs(2.0, nan) is not None
    assert compare_outputs(torch.tensor([1.0, 2.0]), torch.tensor([1.0, nan])) is not None
    assert compare_outputs(torch.tensor([nan, 2.0]), torch.tensor([1.0, nan])) is not None
    # NaN where the reference returns NaN matches, for tensors and for Python numbers alike.
    assert compare_outputs(torch.tensor([1.0, nan]), torch.tensor([1.0, nan])) is None
    assert compare_outputs(nan, nan) is None
    assert compare_outputs(torch.tensor(nan), nan) is None


# --------------------------------------------------------------------------- random_probs


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("k", "num_zeros"), [(1, 0), (2, 1), (5, 0), (5, 3), (40, 39)])
def test_random_probs(dtype, k, num_zeros, device):
    p = random_probs(make_generator(3, device=device), k, (50, 2), num_zeros=num_zeros, dtype=dtype)
    assert p.shape == (50, 2, k) and p.dtype == dtype and p.device.type == device
    assert (p >= 0).all()
    torch.testing.assert_close(p.sum(-1), torch.ones(50, 2, dtype=dtype, device=device))
    assert ((p == 0).sum(-1) == num_zeros).all()
    again = random_probs(make_generator(3, device=device), k, (50, 2), num_zeros=num_zeros, dtype=dtype)
    assert torch.equal(p, again)
    if k > 1:
        other = random_probs(make_generator(4, device=device), k, (50, 2), num_zeros=num_zeros, dtype=dtype)
        assert not torch.equal(p, other)
        # The zeros fall in different places in different rows.
        assert len({tuple((row == 0).tolist()) for row in p.reshape(-1, k).cpu()}) > 1 or num_zeros == 0


def test_random_probs_is_flat_dirichlet():
    """A coordinate of a flat Dirichlet on K categories is Beta(1, K-1): Kolmogorov--Smirnov test."""
    k = 5
    p = random_probs(make_generator(11), k, (4000,)).numpy()
    for j in range(k):
        assert scipy.stats.kstest(p[:, j], scipy.stats.beta(1, k - 1).cdf).pvalue > 1e-3
    assert scipy.stats.kstest(p[:, 0], scipy.stats.beta(1.3, k - 1).cdf).pvalue < 1e-6
    # With zeros: the non-zero coordinates are a flat Dirichlet on the remaining K - num_zeros.
    pz = random_probs(make_generator(12), k, (4000,), num_zeros=2).numpy()
    first_nonzero = pz[np.arange(4000), np.argmax(pz > 0, axis=1)]
    assert scipy.stats.kstest(first_nonzero, scipy.stats.beta(1, k - 3).cdf).pvalue > 1e-3


def test_random_probs_rejects_bad_arguments():
    with pytest.raises(ValueError, match="num_zeros"):
        random_probs(make_generator(0), 3, num_zeros=3)
    with pytest.raises(ValueError, match="num_zeros"):
        random_probs(make_generator(0), 3, num_zeros=-1)
    with pytest.raises(ValueError, match="num_categories"):
        random_probs(make_generator(0), 0)


# --------------------------------------------------------------------------- chi_square_test


@pytest.mark.parametrize(
    ("counts", "probs"),
    [
        ([113, 0, 240, 395, 252], [0.1, 0.0, 0.25, 0.4, 0.25]),
        ([10, 30], [0.5, 0.5]),
        ([0, 0, 7, 1, 2], [0.0, 0.1, 0.4, 0.2, 0.3]),
        ([5000, 4890, 5200, 4910], [0.25, 0.25, 0.25, 0.25]),
    ],
)
def test_chi_square_test_matches_scipy(counts, probs):
    counts, probs = np.array(counts), np.array(probs)
    samples = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
    samples = samples[torch.randperm(len(samples), generator=make_generator(0))]  # order is irrelevant
    stat, pvalue = chi_square_test(samples, torch.tensor(probs))
    assert isinstance(stat, float) and isinstance(pvalue, float)
    support = probs > 0
    ref = scipy.stats.chisquare(counts[support], counts.sum() * probs[support])
    np.testing.assert_allclose(stat, ref.statistic, rtol=1e-8)
    np.testing.assert_allclose(pvalue, ref.pvalue, rtol=1e-8)
    # float32 probabilities: the same test up to their rounding.
    stat32, p32 = chi_square_test(samples, torch.tensor(probs, dtype=torch.float32))
    np.testing.assert_allclose([stat32, p32], [ref.statistic, ref.pvalue], rtol=1e-4)


def test_chi_square_test_zero_probability_sample_and_power():
    probs = torch.tensor([0.5, 0.0, 0.5])
    assert chi_square_test(torch.tensor([0, 2, 1, 0]), probs) == (math.inf, 0.0)
    assert chi_square_test(torch.tensor([0, 2, 3]), probs) == (math.inf, 0.0)
    assert chi_square_test(torch.tensor([0, -1]), probs) == (math.inf, 0.0)
    with pytest.raises(ValueError, match="probs"):
        chi_square_test(torch.tensor([0, 0]), torch.tensor([1.0, 0.0]))
    with pytest.raises(TypeError, match="samples"):
        chi_square_test(torch.tensor([0.0, 1.0]), probs)
    # Power: draws from the wrong distribution are rejected, from the right one accepted.
    g = make_generator(0)
    good = torch.multinomial(torch.tensor([0.3, 0.7]), 5000, replacement=True, generator=g)
    assert chi_square_test(good, torch.tensor([0.3, 0.7]))[1] > 1e-3
    assert chi_square_test(good, torch.tensor([0.35, 0.65]))[1] < 1e-6
