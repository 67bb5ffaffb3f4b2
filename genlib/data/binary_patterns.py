r"""Bars and stripes: small binary images with a known distribution, for Boltzmann machines.

A bars-and-stripes image (MacKay, *Information Theory, Inference, and Learning Algorithms*, 2003) is
an :math:`n \times n` image whose rows are each all on or all off (stripes), or whose columns are
(bars). There are :math:`2^{n+1} - 2` distinct patterns (all-off and all-on are both), and the data
distribution is uniform over them, so its entropy :math:`\log(2^{n+1} - 2)` is the floor for the
negative log-likelihood of any model.

Larger binary images (scikit-learn's digits) are in ``genlib.data.images``.

Images are flattened row by row: pixel :math:`(r, c)` is entry :math:`r n + c`.
"""

from __future__ import annotations

import itertools

import torch

from genlib.sampling import sample_categorical
from genlib.validation import check_generator, check_positive_int

__all__ = ["bars_and_stripes", "sample_bars_and_stripes"]


def bars_and_stripes(
    side: int, *, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> torch.Tensor:
    r"""All :math:`2^{n+1} - 2` distinct bars-and-stripes patterns of side :math:`n`, one per row.

    The stripes (rows on or off, :math:`2^n` patterns) come first, then the bars that are not also
    stripes (all but all-off and all-on). Within each group, pattern :math:`k` switches on the rows
    (columns) given by the bits of :math:`k`, the first row (column) the most significant.

    Args:
        side: :math:`n \ge 1`, at most 6 (126 patterns of 36 pixels).

    Returns:
        Shape ``(2**(side + 1) - 2, side * side)``, values 0 and 1.
    """
    side = check_positive_int(side, "side")
    if side > 6:
        raise ValueError(f"side must be at most 6 (126 patterns of 36 pixels), got {side}")
    patterns = []
    for bits in itertools.product((0, 1), repeat=side):
        rows = torch.tensor(bits, dtype=dtype, device=device)
        patterns.append(rows[:, None].expand(side, side).reshape(-1))  # stripes: row r is bits[r]
    for bits in itertools.product((0, 1), repeat=side):
        if 0 < sum(bits) < side:
            cols = torch.tensor(bits, dtype=dtype, device=device)
            patterns.append(cols[None, :].expand(side, side).reshape(-1))  # bars: column c is bits[c]
    return torch.stack(patterns)


def sample_bars_and_stripes(
    num_samples: int,
    side: int,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    r"""``num_samples`` patterns drawn uniformly from :func:`bars_and_stripes`, by
    :func:`genlib.sampling.sample_categorical` on the uniform distribution over them.

    Returns:
        Shape ``(num_samples, side * side)``.
    """
    num_samples = check_positive_int(num_samples, "num_samples")
    patterns = bars_and_stripes(side, dtype=dtype, device=device)
    generator = check_generator(generator, patterns.device)
    uniform = torch.full(
        (patterns.shape[0],), 1.0 / patterns.shape[0], dtype=torch.float64, device=patterns.device
    )
    return patterns[sample_categorical(uniform, num_samples, generator=generator)]
