"""Categorical sampling: genlib's inverse-CDF sampler against ``torch.multinomial``.

Both sides draw ``NUM_DRAWS`` = 10^7 outcomes, with replacement, from one categorical distribution
over ``K`` = 1,000 outcomes (a flat-Dirichlet draw, float32), each from its own generator:

- genlib: ``sample_categorical(probs, NUM_DRAWS, generator=g)``: ``torch.rand`` uniforms, the
  cumulative levels, ``torch.searchsorted`` (a binary search per draw);
- PyTorch: ``torch.multinomial(probs, NUM_DRAWS, replacement=True, generator=g)``.

The draws differ (different algorithms), so agreement is statistical: a chi-square goodness-of-fit
test of each side's counts against ``probs``, and the largest difference between the two sides'
empirical frequencies.
"""

from __future__ import annotations

import numpy as np
import scipy.stats
import torch

from benchmarks.harness import Case, Prepared, markdown_table, run_case
from genlib.device import make_generator
from genlib.sampling import sample_categorical
from genlib.testing import random_probs

NUM_DRAWS = 10**7
NUM_CATEGORIES = 1000


def _agreement(probs: torch.Tensor, ours: torch.Tensor, theirs: torch.Tensor) -> dict:
    r"""Chi-square p-values of both sides' counts against ``probs`` ``(K,)``, and the largest
    difference of the two empirical frequencies over the ``K`` outcomes (each has standard deviation
    :math:`\sqrt{2 p_k (1 - p_k) / N}`, 1.4e-5 at :math:`p_k = 1/K`; the largest a few times that)."""
    k = probs.shape[-1]
    expected = probs.double().cpu().numpy()
    expected = expected / expected.sum() * NUM_DRAWS
    counts = {}
    for name, draws in (("genlib", ours), ("torch", theirs)):
        counts[name] = torch.bincount(draws, minlength=k).cpu().numpy().astype(np.float64)
    return {
        "chisquare_pvalue_genlib": float(scipy.stats.chisquare(counts["genlib"], expected).pvalue),
        "chisquare_pvalue_torch": float(scipy.stats.chisquare(counts["torch"], expected).pvalue),
        "max_abs_frequency_difference": float(np.abs(counts["genlib"] - counts["torch"]).max() / NUM_DRAWS),
        "dtype": str(probs.dtype).removeprefix("torch."),
    }


def _prepare(dtype: torch.dtype, device: str) -> Prepared:
    probs = random_probs(make_generator(1, device), NUM_CATEGORIES, dtype=dtype)  # (K,)
    g_ours, g_theirs = make_generator(2, device), make_generator(3, device)
    agreement = _agreement(
        probs,
        sample_categorical(probs, NUM_DRAWS, generator=g_ours),
        torch.multinomial(probs, NUM_DRAWS, replacement=True, generator=g_theirs),
    )

    def genlib_fn() -> torch.Tensor:
        return sample_categorical(probs, NUM_DRAWS, generator=g_ours)

    def anchor_fn() -> torch.Tensor:
        return torch.multinomial(probs, NUM_DRAWS, replacement=True, generator=g_theirs)

    return genlib_fn, anchor_fn, agreement


def cases(device: str = "cpu") -> list[Case]:
    """10^7 draws from one categorical over K = 1,000 outcomes, float32, on ``device`` (both sides)."""
    where = "" if device == "cpu" else f", {device}"
    return [
        Case(
            key="categorical_1e7" if device == "cpu" else f"categorical_1e7_{device}",
            title="10^7 categorical draws, K = 1,000" + where,
            anchor="torch.multinomial (replacement=True)",
            setup=lambda: _prepare(torch.float32, device),
            target=1 / 1.5,
            repeats=5,
            device=device,
            notes="one call of 10^7 draws on each side, float32 probabilities, each side its own "
            "generator; genlib: rand + searchsorted (inverse CDF)",
        )
    ]


if __name__ == "__main__":
    results = [run_case(c) for c in cases()]
    print(markdown_table(results))
    for r in results:
        print(f"{r.key}: {r.agreement}")
