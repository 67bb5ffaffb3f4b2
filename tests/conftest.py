"""Shared fixtures for the genlib tests.

``device`` parametrizes a test over ``"cpu"`` and, where CUDA is available, ``"cuda"`` (those cases
carry the ``gpu`` marker, so ``pytest -m gpu`` selects them and ``-m "not gpu"`` leaves them out).
``gen`` makes seeded generators on that device.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from genlib.device import make_generator

HAS_CUDA = torch.cuda.is_available()

requires_cuda = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")

#: Parameters for tests that run once per device; use as ``@pytest.mark.parametrize("device", DEVICES)``
#: or through the ``device`` fixture.
DEVICES = [
    "cpu",
    pytest.param("cuda", marks=[pytest.mark.gpu, requires_cuda], id="cuda"),
]


@pytest.fixture(params=DEVICES)
def device(request: pytest.FixtureRequest) -> str:
    """The device a test runs on: ``"cpu"``, and ``"cuda"`` when there is one."""
    return request.param


@pytest.fixture
def gen(device: str) -> Callable[[int], torch.Generator]:
    """``gen(seed)``: a :class:`torch.Generator` on the test's device, seeded with ``seed``."""

    def make(seed: int) -> torch.Generator:
        return make_generator(seed, device=device)

    return make


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Library tests use tiny tensors: one thread is faster there and does not oversubscribe the
    two cores that CI shares with the notebook kernels. Restored after each test."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
