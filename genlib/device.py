"""Where tensors live: the one helper that chooses a device for the caller."""

from __future__ import annotations

import torch

__all__ = ["default_device", "make_generator"]


def default_device() -> torch.device:
    """Return ``cuda`` when a CUDA device is available, the CPU otherwise.

    genlib never moves a tensor behind the caller's back; this is what the book and the tests call
    when *they* choose where to put their data.
    """
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def make_generator(seed: int, device: torch.device | str | None = None) -> torch.Generator:
    """A :class:`torch.Generator` on ``device`` (default: the CPU) seeded with ``seed``.

    The same seed on the same device gives the same stream of numbers. A sampler must be given a
    generator on the device of its tensors, because PyTorch draws CUDA randomness from a CUDA
    generator.
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    generator = torch.Generator(device=torch.device(device) if device is not None else "cpu")
    generator.manual_seed(seed)
    return generator
