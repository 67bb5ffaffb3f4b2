r"""What graded notebooks use to check a student's function against genlib's reference.

The centre is :func:`check_function`. It runs the reference and the student's function on the same
inputs (each on its own copy), compares the outputs (type, shape, dtype, device, values), and when
something is wrong raises :class:`GradingFailure` with a report a student can act on: which case
failed, the input, what was expected, what came back, where and by how much they differ, and a
hint. While the student's function runs:

- every function of genlib (but this module, :mod:`genlib.validation` and :mod:`genlib.device`) is
  switched off, so calling the reference, under any name it was imported as, raises
  :class:`ReferenceCalled` instead of earning the points;
- a time limit stops an endless loop with a clear message, before the autograder's own cell
  timeout would.

:func:`chi_square_test` and the ``random_*`` helpers build statistical checks and random cases.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import math
import pkgutil
import signal
import sys
import threading
import traceback
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from genlib.validation import check_positive_int, check_probabilities, check_tensor

__all__ = [
    "Case",
    "GradingFailure",
    "ReferenceCalled",
    "StudentTimeout",
    "check_function",
    "run_student",
    "reference_blocked",
    "time_limit",
    "compare_outputs",
    "chi_square_test",
    "random_probs",
    "describe",
    "UNBLOCKED_MODULES",
]

#: Modules whose functions stay usable while a student's function runs.
UNBLOCKED_MODULES = frozenset({"genlib", "genlib.testing", "genlib.validation", "genlib.device"})
#: Subpackages that hold no reference solution (instructor tooling): neither imported nor blocked.
TOOLING_PACKAGES = ("genlib.course",)


class GradingFailure(AssertionError):
    """A student's function gave a wrong answer, raised, ran too long or called the reference."""


class ReferenceCalled(RuntimeError):
    """Raised when a student's function calls genlib's reference implementation."""


class StudentTimeout(BaseException):
    """Raised inside a student's function that ran past its time limit.

    A ``BaseException`` so that a student's ``except Exception`` cannot swallow it.
    """


@dataclass(frozen=True)
class Case:
    """One input to check: positional ``args``, keyword ``kwargs``, a ``name`` and a ``hint``.

    Tensors in ``args`` and ``kwargs`` are cloned before each call, so neither function can change
    what the other sees. A ``torch.Generator`` is copied with its state, so both functions draw
    the same random numbers.
    """

    name: str
    args: tuple = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    hint: str = ""


# --------------------------------------------------------------------------- switching off genlib


def _refuse() -> None:
    frame = sys._getframe(1)
    name = f"{frame.f_globals.get('__name__', 'genlib')}.{frame.f_code.co_qualname}"
    raise ReferenceCalled(
        f"your code called {name}, which is part of genlib's reference solution. It is switched "
        "off while your function is checked: write the computation yourself with torch operations."
    )


def _blocked(*args: Any, **kwargs: Any) -> None:  # the body every genlib function gets while blocked
    __import__("genlib.testing", fromlist=["_refuse"])._refuse()


def _genlib_functions() -> list[types.FunctionType]:
    """Every Python function defined in genlib outside :data:`UNBLOCKED_MODULES`."""
    import genlib

    def is_tooling(name: str) -> bool:
        return any(name == t or name.startswith(t + ".") for t in TOOLING_PACKAGES)

    def import_all(path: list[str], prefix: str) -> None:  # like pkgutil.walk_packages, minus tooling
        for info in pkgutil.iter_modules(path, prefix):
            if is_tooling(info.name):
                continue
            module = importlib.import_module(info.name)
            if info.ispkg:
                import_all(list(module.__path__), info.name + ".")

    import_all(list(genlib.__path__), "genlib.")
    found: dict[int, types.FunctionType] = {}
    for module_name, module in list(sys.modules.items()):
        if (
            not module_name.startswith("genlib.")
            or module_name in UNBLOCKED_MODULES
            or is_tooling(module_name)
        ):
            continue
        for obj in vars(module).values():
            members = [obj]
            if inspect.isclass(obj) and obj.__module__ == module_name:
                members = [
                    m.__func__ if isinstance(m, (staticmethod, classmethod)) else m
                    for m in vars(obj).values()
                ]
            for member in members:
                if (
                    isinstance(member, types.FunctionType)
                    and member.__module__ == module_name
                    and not member.__code__.co_freevars
                ):
                    found[id(member)] = member
    return list(found.values())


@contextlib.contextmanager
def reference_blocked() -> Iterator[None]:
    """Within the block, every genlib function (see :data:`UNBLOCKED_MODULES`) raises
    :class:`ReferenceCalled`.

    The functions' code objects are swapped, not the module attributes, so an alias made earlier
    (``from genlib.sampling import sample_categorical as mine``) is switched off too.
    """
    functions = _genlib_functions()
    saved = [(f, f.__code__) for f in functions]
    try:
        for f, code in saved:
            f.__code__ = _blocked.__code__.replace(co_name=code.co_name, co_qualname=code.co_qualname)
        yield
    finally:
        for f, code in saved:
            f.__code__ = code


@contextlib.contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise :class:`StudentTimeout` in the block if it runs longer than ``seconds``.

    Uses ``SIGALRM``, so it works in the main thread on Unix (where notebook kernels run code);
    elsewhere, or with ``seconds=None``, it sets no limit.
    """
    if seconds is not None and not seconds > 0:
        raise ValueError(f"seconds must be positive or None, got {seconds}")
    usable = (
        seconds is not None
        and hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
    )
    if not usable:
        yield
        return

    def on_alarm(signum: int, frame: Any) -> None:
        raise StudentTimeout(f"stopped after {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# --------------------------------------------------------------------------- describing values


def describe(value: Any, max_items: int = 8) -> str:
    """A short, readable description of a value: tensors show shape, dtype, device and values."""
    if isinstance(value, torch.Tensor):
        meta = f"shape {tuple(value.shape)}, {value.dtype}" + (
            f", on {value.device}" if value.device.type != "cpu" else ""
        )
        flat = value.detach().reshape(-1).cpu()
        if flat.numel() <= max_items:
            return f"tensor({_format_values(flat, value.shape)}) [{meta}]"
        head = ", ".join(_format_scalar(v) for v in flat[:max_items].tolist())
        return f"tensor([{head}, ...]) [{meta}]"
    if isinstance(value, torch.Generator):
        return f"torch.Generator(device={value.device.type!r})"
    if isinstance(value, (tuple, list)):
        inner = ", ".join(describe(v, max_items) for v in value)
        return f"({inner})" if isinstance(value, tuple) else f"[{inner}]"
    if callable(value):
        return getattr(value, "__qualname__", None) or type(value).__name__
    return repr(value)


def _format_scalar(v: float | int | bool) -> str:
    if not isinstance(v, float):
        return str(v)
    text = f"{v:.6g}"
    return text if any(c in text for c in ".einfa") else text + "."  # 0. reads as a float, 0 as an int


def _format_values(flat: torch.Tensor, shape: torch.Size) -> str:
    def nest(values: Any) -> str:
        if isinstance(values, list):
            return "[" + ", ".join(nest(v) for v in values) + "]"
        return _format_scalar(values)

    return nest(flat.reshape(shape).tolist())


def _clone(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, torch.Generator):
        copy = torch.Generator(device=value.device)
        copy.set_state(value.get_state())
        return copy
    if isinstance(value, tuple):
        return tuple(_clone(v) for v in value)
    if isinstance(value, list):
        return [_clone(v) for v in value]
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    return value


# --------------------------------------------------------------------------- comparing outputs


def compare_outputs(
    got: Any, expected: Any, *, rtol: float = 1e-5, atol: float = 1e-6, where: str = "the output"
) -> str | None:
    """``None`` if ``got`` matches ``expected``, else one sentence that says how it does not.

    Tensors must agree in shape, dtype, device and values (``torch.isclose`` with ``rtol``,
    ``atol``; infinities must match exactly; NaN matches only where the reference is NaN too).
    Tuples and lists are compared item by item; Python numbers as 0-d tensors.
    """
    if isinstance(expected, (tuple, list)):
        if not isinstance(got, (tuple, list)) or len(got) != len(expected):
            return f"{where} should be a tuple of {len(expected)} items, got {describe(got)}"
        for i, (g, e) in enumerate(zip(got, expected, strict=True)):
            message = compare_outputs(g, e, rtol=rtol, atol=atol, where=f"item {i} of {where}")
            if message:
                return message
        return None
    if isinstance(expected, (int, float)) and not isinstance(expected, bool):
        if isinstance(got, torch.Tensor) and got.dim() == 0:
            got = got.item()
        if not isinstance(got, (int, float)) or isinstance(got, bool):
            return f"{where} should be a number, got {describe(got)}"
        if math.isnan(expected) or math.isnan(got):
            same = math.isnan(expected) and math.isnan(got)
            return None if same else f"{where} should be {expected:.6g}, got {got:.6g}"
        if not math.isclose(got, expected, rel_tol=rtol, abs_tol=atol):
            return f"{where} should be {expected:.6g}, got {got:.6g}"
        return None
    if not isinstance(expected, torch.Tensor):
        return None if got == expected else f"{where} should be {expected!r}, got {got!r}"
    if not isinstance(got, torch.Tensor):
        return f"{where} should be a torch.Tensor, got {type(got).__name__}: {describe(got)}"
    if got.shape != expected.shape:
        return f"{where} should have shape {tuple(expected.shape)}, got shape {tuple(got.shape)}"
    if got.dtype != expected.dtype:
        return f"{where} should have dtype {expected.dtype}, got {got.dtype}"
    if got.device != expected.device:
        return f"{where} should be on {expected.device}, got {got.device}"
    g, e = got.detach(), expected.detach()
    if not g.is_floating_point():
        bad = g != e
    else:
        if bool(g.isnan().any()) and not bool(e.isnan().any()):
            index = tuple(torch.nonzero(g.isnan())[0].tolist())
            return f"{where} holds NaN (first at index {index}); expected {describe(e)}"
        bad = ~torch.isclose(g, e, rtol=rtol, atol=atol, equal_nan=True)
    if not bool(bad.any()):
        return None
    index = tuple(torch.nonzero(bad)[0].tolist())
    count = int(bad.sum())
    diff = ""
    if g.is_floating_point():
        finite = torch.isfinite(g) & torch.isfinite(e)
        if bool(finite.any()):
            diff = f"; largest difference {(g - e)[finite].abs().max().item():.3g}"
    at = f"[{', '.join(map(str, index))}]" if index else ""
    return (
        f"{where} differs in {count} of {g.numel()} entries{diff}; first at index {index}: "
        f"expected {e[index].item() if e.dim() else e.item():.6g}, got "
        f"{g[index].item() if g.dim() else g.item():.6g}"
    ).replace("index ()", "index " + (at or "()"))


# --------------------------------------------------------------------------- the check


_TIMEOUT_PREFIX = "your function ran longer than"


def _call_student(fn: Callable[..., Any], case: Case, seconds: float | None) -> tuple[Any, str | None]:
    """Run the student's function on a copy of the case; return (output, problem or None)."""
    args, kwargs = _clone(case.args), _clone(dict(case.kwargs))
    try:
        with reference_blocked(), time_limit(seconds):
            return fn(*args, **kwargs), None
    except StudentTimeout:
        return None, (
            f"{_TIMEOUT_PREFIX} {seconds:g} s and was stopped; look for a loop that "
            "never ends, or a Python loop over every element where a tensor operation would do"
        )
    except ReferenceCalled as error:
        return None, str(error)
    except NotImplementedError:
        return None, "your function raises NotImplementedError: it has not been written yet"
    except (Exception, SystemExit) as error:  # the student's bug, reported, never re-raised
        frames = traceback.extract_tb(error.__traceback__)
        line = next((f" (line {f.lineno}: {f.line})" for f in reversed(frames) if f.line), "")
        return None, f"your function raised {type(error).__name__}: {error}{line}"


def run_student(fn: Callable[..., Any], *args: Any, seconds: float | None = 5.0, **kwargs: Any) -> Any:
    """Call a student's function as :func:`check_function` does, and return what it returns.

    For checks that compare with no reference output (statistical tests, properties): genlib is
    switched off and the time limit applies. Any problem (an exception, a timeout, a call of the
    reference) raises :class:`GradingFailure` with the explanation.
    """
    got, problem = _call_student(fn, Case("run", args, kwargs), seconds)
    if problem is not None:
        raise GradingFailure(problem)
    return got


def check_function(
    student_fn: Callable[..., Any],
    reference_fn: Callable[..., Any],
    cases: Sequence[Case],
    *,
    rtol: float = 1e-5,
    atol: float = 1e-6,
    seconds: float | None = 5.0,
    verbose: bool = True,
) -> None:
    """Check ``student_fn`` against ``reference_fn`` on every case; raise if any case fails.

    Args:
        student_fn: the function the student wrote.
        reference_fn: genlib's function with the same contract.
        cases: the inputs; the reference is run first on its own copy of each.
        rtol, atol: tolerances for floating outputs (see :func:`compare_outputs`).
        seconds: time limit for each call of the student's function (``None``: no limit).
        verbose: print one line per passing case (failures are in the exception's message).

    Returns:
        ``None``. (A test cell must not end in a number: nbgrader would read it as partial credit.)

    Raises:
        GradingFailure: with one paragraph per failing case.
    """
    if not callable(student_fn):
        raise GradingFailure(f"expected your function, got {describe(student_fn)}")
    if getattr(student_fn, "__code__", None) is getattr(reference_fn, "__code__", False):
        raise GradingFailure(f"your {reference_fn.__name__} is genlib's own function; write it yourself")
    failures = []
    timed_out = False
    for case in cases:
        if timed_out:  # one endless loop is enough; keep the whole check inside the cell's timeout
            failures.append(f"SKIP  {case.name}\n      not run: your function timed out on an earlier case")
            continue
        expected = reference_fn(*_clone(case.args), **_clone(dict(case.kwargs)))
        got, problem = _call_student(student_fn, case, seconds)
        timed_out = problem is not None and problem.startswith(_TIMEOUT_PREFIX)
        if problem is None:
            problem = compare_outputs(got, expected, rtol=rtol, atol=atol)
        if problem is None:
            if verbose:
                print(f"ok    {case.name}")
            continue
        inputs = ", ".join(
            [describe(a) for a in case.args] + [f"{k}={describe(v)}" for k, v in case.kwargs.items()]
        )
        report = [f"FAIL  {case.name}", f"      input:    {inputs}", f"      problem:  {problem}"]
        if got is not None or problem.startswith(("the output", "item")):
            report += [f"      expected: {describe(expected)}", f"      got:      {describe(got)}"]
        if case.hint:
            report.append(f"      hint:     {case.hint}")
        failures.append("\n".join(report))
    if failures:
        raise GradingFailure(
            f"{len(failures)} of {len(cases)} cases failed or were not run:\n\n" + "\n\n".join(failures)
        )
    if verbose:
        print(f"all {len(cases)} cases passed")


# --------------------------------------------------------------------------- statistics and cases


def chi_square_test(samples: torch.Tensor, probs: torch.Tensor) -> tuple[float, float]:
    r"""Pearson's chi-square goodness-of-fit test of categorical ``samples`` against ``probs``.

    The statistic is :math:`X^2 = \sum_k (n_k - N\pi_k)^2 / (N \pi_k)` over the categories with
    :math:`\pi_k > 0`; under the null hypothesis it is approximately :math:`\chi^2` with (number of
    such categories - 1) degrees of freedom, and the p-value is the regularised upper incomplete
    gamma function :math:`Q(\nu/2, X^2/2)`. A sample in a zero-probability category gives
    ``(inf, 0.0)``.

    Args:
        samples: shape ``(N,)``, integer labels in ``0 .. K-1``.
        probs: shape ``(K,)``, the hypothesised probabilities, at least two of them non-zero.

    Returns:
        ``(statistic, p_value)`` as Python floats.
    """
    probs = check_probabilities(probs, "probs", allow_batch=False).double()
    samples = check_tensor(samples, "samples", ndim=1, floating=False, min_size=1)
    k = probs.shape[0]
    if int(samples.min()) < 0 or int(samples.max()) >= k:
        return math.inf, 0.0
    counts = torch.bincount(samples.cpu(), minlength=k).double()
    probs = probs.cpu()
    support = probs > 0
    if bool((counts[~support] > 0).any()):
        return math.inf, 0.0
    dof = int(support.sum()) - 1
    if dof < 1:
        raise ValueError("probs must give non-zero probability to at least two categories")
    n = counts.sum()
    expected = n * probs[support]
    statistic = ((counts[support] - expected).square() / expected).sum()
    p_value = torch.special.gammaincc(torch.tensor(dof / 2, dtype=torch.float64), statistic / 2)
    return statistic.item(), p_value.item()


def random_probs(
    generator: torch.Generator,
    num_categories: int,
    batch_shape: tuple[int, ...] = (),
    *,
    num_zeros: int = 0,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """Random probability vectors, shape ``(*batch_shape, num_categories)``, on the generator's device.

    Drawn from a flat Dirichlet (normalised exponentials); ``num_zeros`` entries of each vector,
    chosen at random, are set to exactly zero before normalising, to exercise the edge cases.
    """
    num_categories = check_positive_int(num_categories, "num_categories")
    if not 0 <= num_zeros < num_categories:
        raise ValueError(f"num_zeros must be in 0..{num_categories - 1}, got {num_zeros}")
    shape = (*batch_shape, num_categories)
    device = generator.device
    u = torch.rand(shape, generator=generator, dtype=dtype, device=device)
    weights = (-torch.log1p(-u)).clamp_min(torch.finfo(dtype).tiny)  # Exponential(1), never 0
    if num_zeros:
        order = torch.rand(shape, generator=generator, device=device).argsort(dim=-1)
        weights = weights.masked_fill(order < num_zeros, 0.0)
    return weights / weights.sum(dim=-1, keepdim=True)
