r"""Small binarized images from a data set that ships with an installed package.

scikit-learn bundles the UCI optical-digits data set (``sklearn.datasets.load_digits``): 1797
handwritten digits, each an :math:`8 \times 8` image with grey levels :math:`0, \dots, 16`. Nothing is
downloaded. Thresholding the grey levels gives binary images :math:`x \in \{0, 1\}^{D}`,
:math:`D = 64`, small enough that a PixelCNN trains on them in seconds on a CPU, and that an image can
be sampled pixel by pixel in :math:`D` network evaluations.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = ["BinaryImages", "binarized_digits", "train_test_split"]


class BinaryImages(NamedTuple):
    """Binary images and their class labels.

    ``images``: shape ``(N, 1, H, W)``, ``torch.float32`` zeros and ones (one channel, so that they
    go straight into a convolution). ``labels``: shape ``(N,)``, ``torch.long``, the digit shown.
    """

    images: torch.Tensor
    labels: torch.Tensor


def binarized_digits(
    threshold: int = 8,
    *,
    digits: tuple[int, ...] | None = None,
    device: torch.device | str | None = None,
) -> BinaryImages:
    r"""scikit-learn's bundled :math:`8 \times 8` digits, binarized: pixel = :math:`[\text{grey} \ge t]`.

    Args:
        threshold: the grey level :math:`t` in ``1 .. 16`` from which a pixel is on (grey levels run
            from 0 to 16). The default 8 keeps the strokes and drops the faint borders.
        digits: keep only these classes (e.g. ``(0, 1)``); ``None`` keeps all ten.
        device: where to put the tensors (default: the CPU).

    Returns:
        :class:`BinaryImages` with ``images`` of shape ``(N, 1, 8, 8)`` (``N = 1797`` for all ten
        digits) and ``labels`` of shape ``(N,)``, in the data set's fixed order.
    """
    if isinstance(threshold, bool) or not isinstance(threshold, int):
        raise TypeError(f"threshold must be an int grey level, got {type(threshold).__name__}")
    if not 1 <= threshold <= 16:
        raise ValueError(f"threshold must be a grey level in 1..16, got {threshold}")
    try:
        from sklearn.datasets import load_digits
    except ImportError as error:  # scikit-learn is in the dev extra, not a core dependency
        raise ImportError(
            "binarized_digits needs scikit-learn (pip install scikit-learn): the digits ship with it"
        ) from error
    bunch = load_digits()
    grey = torch.as_tensor(bunch.images)  # (N, 8, 8), float64 grey levels 0..16
    labels = torch.as_tensor(bunch.target, dtype=torch.long)
    if digits is not None:
        wanted = sorted(set(digits))
        if not wanted or any(
            isinstance(d, bool) or not isinstance(d, int) or not 0 <= d <= 9 for d in wanted
        ):
            raise ValueError(f"digits must be a non-empty tuple of classes in 0..9, got {digits!r}")
        keep = torch.isin(labels, torch.tensor(wanted))
        grey, labels = grey[keep], labels[keep]
    images = (grey >= threshold).to(torch.float32).unsqueeze(1)  # (N, 1, 8, 8)
    return BinaryImages(images.to(device), labels.to(device))


def train_test_split(
    x: torch.Tensor, test_fraction: float = 0.2, *, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split the rows of ``x`` (shape ``(N, ...)``) at random into a training and a test part.

    The permutation is ``torch.randperm(N, generator=generator)`` (on the CPU), so a seeded generator
    gives the same split every time. Returns ``(train, test)`` with ``round(test_fraction * N)`` test
    rows, at least one row in each part.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() == 0 or x.shape[0] < 2:
        raise ValueError(f"x must hold at least 2 rows to split, got shape {tuple(x.shape)}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    if generator is not None and generator.device.type != "cpu":
        raise ValueError(
            f"generator must be a CPU generator (the permutation is drawn there), got {generator.device}"
        )
    n = x.shape[0]
    num_test = min(max(round(test_fraction * n), 1), n - 1)
    order = torch.randperm(n, generator=generator).to(x.device)
    return x[order[num_test:]], x[order[:num_test]]
