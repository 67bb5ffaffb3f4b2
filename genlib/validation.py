"""Input checks shared by every public function of genlib.

Each check raises :class:`TypeError` (wrong kind of object or dtype) or :class:`ValueError` (wrong
shape or value) with a message that names the argument, says what it got and what was expected.
"""

from __future__ import annotations

import torch

__all__ = [
    "check_tensor",
    "check_probabilities",
    "check_labels",
    "check_weights",
    "check_positive_int",
    "check_generator",
]


def check_tensor(
    x: object,
    name: str,
    *,
    ndim: int | tuple[int, ...] | None = None,
    floating: bool | None = None,
    min_size: int = 0,
    finite: bool = False,
) -> torch.Tensor:
    """Check that ``x`` is a tensor with the given number of dimensions and kind of dtype.

    ``floating=True`` asks for a floating-point dtype, ``False`` for an integer one, ``None`` for
    either. ``min_size`` is the smallest allowed length of the first dimension (for data sets).
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else ndim
        if x.dim() not in allowed:
            expected = " or ".join(str(d) for d in allowed)
            raise ValueError(f"{name} must have {expected} dimension(s), got shape {tuple(x.shape)}")
    if floating is True and not x.is_floating_point():
        raise TypeError(f"{name} must have a floating-point dtype, got {x.dtype}")
    if floating is False and (x.is_floating_point() or x.is_complex() or x.dtype == torch.bool):
        raise TypeError(f"{name} must have an integer dtype (e.g. torch.long), got {x.dtype}")
    if min_size and (x.dim() == 0 or x.shape[0] < min_size):
        got = "a scalar" if x.dim() == 0 else f"{x.shape[0]} rows"
        raise ValueError(f"{name} must hold at least {min_size} rows (samples), got {got}")
    if finite and x.is_floating_point() and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} must be finite, but it holds NaN or infinite values")
    return x


def check_probabilities(
    p: object, name: str, *, atol: float | None = None, allow_batch: bool = True
) -> torch.Tensor:
    """Check that ``p`` holds probability vectors along its last dimension.

    Shape ``(K,)`` or, if ``allow_batch``, ``(..., K)`` with ``K >= 1``; a floating dtype; every
    entry in [0, 1]; each vector summing to one within ``atol`` (default: ``1e-4`` for float32 and
    wider, scaled by ``sqrt(K)``).
    """
    p = check_tensor(p, name, floating=True)
    if p.dim() == 0 or (not allow_batch and p.dim() != 1):
        expected = "(K,) or (..., K)" if allow_batch else "(K,)"
        raise ValueError(f"{name} must have shape {expected}, got shape {tuple(p.shape)}")
    if p.shape[-1] == 0:
        raise ValueError(f"{name} must have at least one category, got shape {tuple(p.shape)}")
    if not bool(torch.isfinite(p).all()):
        raise ValueError(f"{name} must be finite, but it holds NaN or infinite values")
    if bool((p < 0).any()):
        raise ValueError(f"{name} must be non-negative, but its smallest entry is {p.min().item():.3g}")
    sums = p.sum(dim=-1)
    if atol is None:
        atol = max(1e-4, 10 * torch.finfo(p.dtype).eps) * max(1.0, p.shape[-1] ** 0.5)
    worst = (sums - 1).abs().max().item()
    if worst > atol:
        raise ValueError(
            f"{name} must sum to 1 along its last dimension, but a sum is off by {worst:.3g} "
            f"(tolerance {atol:.1g}); normalise it, e.g. p / p.sum(-1, keepdim=True)"
        )
    return p


def check_labels(x: object, name: str, num_categories: int) -> torch.Tensor:
    """Check that ``x`` is a non-empty 1-D integer tensor of labels in ``{0, ..., K-1}``."""
    x = check_tensor(x, name, ndim=1, floating=False, min_size=1)
    lo, hi = int(x.min()), int(x.max())
    if lo < 0 or hi >= num_categories:
        raise ValueError(
            f"{name} must hold labels in 0..{num_categories - 1} (num_categories={num_categories}), "
            f"got values from {lo} to {hi}"
        )
    return x


def check_weights(w: object, name: str, n: int, *, like: torch.Tensor) -> torch.Tensor:
    """Check that ``w`` is a shape ``(n,)`` tensor of non-negative, finite weights, not all zero."""
    w = check_tensor(w, name, ndim=1, floating=True, finite=True)
    if w.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},), one weight per sample, got {tuple(w.shape)}")
    if w.device != like.device:
        raise ValueError(f"{name} is on {w.device} but the data are on {like.device}")
    if bool((w < 0).any()):
        raise ValueError(f"{name} must be non-negative, got a smallest weight of {w.min().item():.3g}")
    if not bool((w > 0).any()):
        raise ValueError(f"{name} must not all be zero: the weighted estimate would be 0/0")
    return w


def check_positive_int(k: object, name: str) -> int:
    """Check that ``k`` is a Python int >= 1 (bools are refused)."""
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(f"{name} must be an int, got {type(k).__name__}")
    if k < 1:
        raise ValueError(f"{name} must be >= 1, got {k}")
    return k


def check_generator(generator: object, device: torch.device) -> torch.Generator | None:
    """Check that ``generator`` is ``None`` or a :class:`torch.Generator` on ``device``'s type."""
    if generator is None:
        return None
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    if generator.device.type != device.type:
        raise ValueError(
            f"generator is on {generator.device} but the tensors are on {device}; make it with "
            f"genlib.device.make_generator(seed, device={device.type!r})"
        )
    return generator
