"""The benchmark harness behind ``make bench``: genlib and its anchor, same process, alternating.

A :class:`Case` names one comparison (genlib against the library a user would otherwise pick) and
knows how to build both callables on the same inputs. :func:`run_case` then

1. builds the inputs once (``setup``), checks that both sides compute the same thing (``check``),
2. runs each side once untimed (the warm-up: allocator, thread pool, lazy imports),
3. alternates ``genlib, anchor, genlib, anchor, ...`` for ``repeats`` rounds, so that a slow spell
   of the machine falls on both sides alike,
4. reports the median time of each side and the ratio ``anchor / genlib`` (above 1: genlib is
   faster), and whether the case's target is met.

Nothing here is a unit test: timings are never asserted, only written to JSON and markdown.
"""

from __future__ import annotations

import gc
import json
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

#: What ``setup`` returns: the genlib callable, the anchor callable, and optional agreement figures.
Prepared = tuple[Callable[[], Any], Callable[[], Any], dict[str, Any]]


@dataclass
class Case:
    """One comparison of genlib with an anchor library.

    Attributes:
        key: a short unique name, e.g. ``"kde_float32"``.
        title: what is computed, as shown in the table, e.g. ``"KDE log-density, n = m = 20,000, d = 2"``.
        anchor: the library call genlib is compared with, e.g. ``"scipy.stats.gaussian_kde.logpdf"``.
        setup: builds the inputs and returns ``(genlib_fn, anchor_fn, agreement)``; ``agreement`` is a
            dict of figures (largest relative difference, ...) computed once from both results.
        target: the required ``anchor / genlib`` ratio: 20 means "genlib 20x faster"; 1/1.5 means
            "genlib at most 1.5x slower". ``None``: no target, shown for information.
        repeats: timed rounds per side.
        device: ``"cpu"`` or ``"cuda"``, the device genlib runs on.
        per: each timed call does this many units of work (iterations, steps); times are divided by it.
        notes: how the comparison is set up, shown under the table.
    """

    key: str
    title: str
    anchor: str
    setup: Callable[[], Prepared]
    target: float | None = None
    repeats: int = 5
    device: str = "cpu"
    per: int = 1
    notes: str = ""


@dataclass
class Result:
    key: str
    title: str
    anchor: str
    device: str
    genlib_s: float
    anchor_s: float
    ratio: float
    target: float | None
    met: bool | None
    genlib_times: list[float] = field(default_factory=list)
    anchor_times: list[float] = field(default_factory=list)
    agreement: dict[str, Any] = field(default_factory=dict)
    notes: str = ""


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_once(fn: Callable[[], Any], device: str = "cpu") -> float:
    """Wall-clock seconds of one call of ``fn`` (synchronising the GPU before and after)."""
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def run_case(case: Case) -> Result:
    """Warm up, then alternate the two sides ``case.repeats`` times; medians and their ratio."""
    genlib_fn, anchor_fn, agreement = case.setup()
    genlib_fn()  # warm-up, untimed
    anchor_fn()
    genlib_times, anchor_times = [], []
    for _ in range(case.repeats):
        gc.collect()
        genlib_times.append(time_once(genlib_fn, case.device) / case.per)
        gc.collect()
        anchor_times.append(time_once(anchor_fn, case.device) / case.per)
    g, a = statistics.median(genlib_times), statistics.median(anchor_times)
    ratio = a / g
    met = None if case.target is None else ratio >= case.target
    return Result(
        case.key, case.title, case.anchor, case.device, g, a, ratio, case.target, met,
        genlib_times, anchor_times, agreement, case.notes,
    )  # fmt: skip


def machine_info() -> dict[str, Any]:
    """What the figures were measured on."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": _cpu_name(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def format_target(target: float | None) -> str:
    if target is None:
        return "–"
    if target >= 1:
        return f">= {target:g}x faster"
    return f"within {1 / target:.3g}x"


def format_seconds(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.0f} µs"


def markdown_table(results: list[Result]) -> str:
    """The results as a markdown table (one row per case)."""
    lines = [
        "| case | device | genlib | anchor | anchor call | speed-up | target | met |",
        "| --- | --- | ---: | ---: | --- | ---: | --- | :---: |",
    ]
    for r in results:
        met = "–" if r.met is None else ("yes" if r.met else "**no**")
        lines.append(
            f"| {r.title} | {r.device} | {format_seconds(r.genlib_s)} | {format_seconds(r.anchor_s)} | "
            f"`{r.anchor}` | {r.ratio:.2f}x | {format_target(r.target)} | {met} |"
        )
    return "\n".join(lines) + "\n"


def write_results(path: str, payload: dict[str, Any]) -> None:
    with open(path, "w") as f:
        json.dump(payload, f, indent=2, default=float)
        f.write("\n")
