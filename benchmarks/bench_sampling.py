"""Timing of genlib's inverse-CDF categorical sampler against what a user would otherwise call.

Compares, for a batch of B distributions over K outcomes and S draws each:

- ``genlib.sampling.sample_categorical`` (binary search, O(log K) per draw),
- ``genlib.sampling.sample_categorical_linear`` (linear scan, O(K) per draw),
- ``torch.multinomial(probs, S, replacement=True)``,
- ``numpy.random.Generator.choice`` (one call per distribution; NumPy has no batched version),
  the usual NumPy way to draw from a categorical.

Run: ``.venv/bin/python benchmarks/bench_sampling.py [--device cuda]``. Prints a table of the
best-of-repeats time per call and the ratio to genlib.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable

import numpy as np
import torch

from genlib.device import default_device, make_generator
from genlib.sampling import sample_categorical, sample_categorical_linear
from genlib.testing import random_probs


def best_time(fn: Callable[[], object], device: torch.device, repeats: int = 5) -> float:
    fn()  # warm up
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default=str(default_device()))
    parser.add_argument("--draws", type=int, default=10_000, help="draws per distribution (S)")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    s = args.draws
    print(f"device {device}, threads {torch.get_num_threads()}, S = {s} draws per distribution")
    header = f"{'B':>5} {'K':>7} | {'genlib':>10} {'linear':>10} {'multinomial':>12} {'numpy':>10}"
    print(header + " | ratios to genlib")
    for b, k in [(1, 10), (1, 1000), (1, 100_000), (100, 10), (100, 1000), (1000, 100)]:
        t_gen, t_lin, t_mul, t_np = time_row(b, k, s, device)
        print(
            f"{b:>5} {k:>7} | {t_gen * 1e3:>8.2f}ms {t_lin * 1e3:>8.2f}ms {t_mul * 1e3:>10.2f}ms "
            f"{t_np * 1e3:>8.2f}ms | linear {t_lin / t_gen:5.1f}x  multinomial {t_mul / t_gen:5.2f}x  "
            f"numpy {t_np / t_gen:5.2f}x"
        )


def time_row(b: int, k: int, s: int, device: torch.device) -> tuple[float, float, float, float]:
    """Best times of genlib (binary search), genlib (scan), torch.multinomial and NumPy."""
    g = make_generator(0, device)
    probs = random_probs(make_generator(1, device), k, (b,), dtype=torch.float32)
    p_np = probs.double().cpu().numpy()
    p_np /= p_np.sum(axis=1, keepdims=True)
    rng = np.random.default_rng(0)
    t_gen = best_time(lambda: sample_categorical(probs, s, generator=g), device)
    # The scan materialises a (B, S, K) comparison: skip sizes that would not fit in memory.
    small = b * s * k <= 2e8
    t_lin = best_time(lambda: sample_categorical_linear(probs, s, generator=g), device) if small else math.nan
    t_mul = best_time(lambda: torch.multinomial(probs, s, replacement=True, generator=g), device)
    t_np = best_time(lambda: [rng.choice(k, size=s, p=row) for row in p_np], torch.device("cpu"))
    return t_gen, t_lin, t_mul, t_np


if __name__ == "__main__":
    main()
