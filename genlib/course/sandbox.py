"""The grading sandbox: resource limits for a submission's kernel, as a Jupyter kernelspec.

A kernelspec named :data:`KERNEL_NAME` is written into a private folder; putting that folder first
on ``JUPYTER_PATH`` makes ``nbclient`` (and so nbgrader) start submissions' kernels through
:mod:`genlib.course._kernel_launcher`, which lowers the limits in :class:`Limits` and then runs an
ordinary ``ipykernel``. The kernel's working directory is chosen by whoever executes the notebook
(see :mod:`genlib.course.worker`): a fresh folder holding only the student's files.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from genlib.course import _kernel_launcher

KERNEL_NAME = "genlib-sandbox"
HOME_VARIABLE = _kernel_launcher.HOME_VARIABLE
LOG_VARIABLE = _kernel_launcher.LOG_VARIABLE

#: Thread-count variables of the numerical libraries, pinned so that parallel kernels do not
#: oversubscribe the cores.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")


@dataclass(frozen=True)
class Limits:
    """What one submission's kernel may use.

    Attributes:
        memory_mb: address-space limit of the kernel process (``RLIMIT_AS``), in MiB. An
            allocation beyond it fails (``MemoryError``, or torch's "can't allocate memory").
        cpu_seconds: CPU time of one kernel process (``RLIMIT_CPU``); past it the kernel is
            killed and the grader restarts it for the remaining cells.
        cell_timeout: wall-clock seconds one cell may run before it is interrupted.
        notebook_seconds: wall-clock budget of a whole notebook; cells that would start after
            it is spent are not run (they earn no points, and the student is told why).
        file_mb: largest file the kernel may write (``RLIMIT_FSIZE``), in MiB.
        output_kb: the most output one cell may produce, in KiB; the rest is dropped.
        threads: threads per kernel for torch/OpenMP/BLAS.
        restarts: how many times a dead or unresponsive kernel is restarted per notebook.
    """

    memory_mb: int = 4096
    cpu_seconds: int = 600
    cell_timeout: int = 30
    notebook_seconds: int = 600
    file_mb: int = 64
    output_kb: int = 256
    threads: int = 1
    restarts: int = 5

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            minimum = 0 if name == "restarts" else 1
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                raise ValueError(f"Limits.{name} must be an integer >= {minimum}, got {value!r}")


def kernel_environment(limits: Limits) -> dict[str, str]:
    """Environment variables set in every sandboxed kernel."""
    env = {name: str(limits.threads) for name in THREAD_VARIABLES}
    env.update(
        {
            "MALLOC_ARENA_MAX": "2",  # glibc reserves 64 MiB of address space per arena otherwise
            "MPLBACKEND": "Agg",
            "PYTHONNOUSERSITE": "1",
            "PYTHONUNBUFFERED": "1",
            "GENLIB_GRADING": "1",
        }
    )
    return env


def write_kernelspec(
    directory: str | os.PathLike[str], limits: Limits, zygote: str | os.PathLike[str] | None = None
) -> Path:
    """Write the sandbox kernelspec under ``directory/kernels/`` and return ``directory``.

    Put the returned folder first on ``JUPYTER_PATH`` (see :func:`jupyter_path_with`) for kernels
    named :data:`KERNEL_NAME` to start through the launcher with these limits. With ``zygote``
    (a socket path from :func:`start_zygote`), kernels are forked from that zygote when it is up.
    """
    root = Path(directory)
    spec_dir = root / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [
            sys.executable,
            _kernel_launcher.__file__,
            *(["--zygote", str(zygote)] if zygote else []),
            "--memory-mb",
            str(limits.memory_mb),
            "--cpu-seconds",
            str(limits.cpu_seconds),
            "--file-mb",
            str(limits.file_mb),
            "--",
            "-f",
            "{connection_file}",
        ],
        "display_name": "Python 3 (genlib grading sandbox)",
        "language": "python",
        "interrupt_mode": "signal",
        "env": kernel_environment(limits),
        "metadata": {"genlib_sandbox": asdict(limits)},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1))
    return root


def start_zygote(
    socket_path: str | os.PathLike[str], limits: Limits, timeout: float = 120
) -> subprocess.Popen:
    """Start the kernel zygote (see :mod:`genlib.course._kernel_launcher`) and wait until it listens.

    It preloads ipykernel, numpy, torch and genlib, so a kernel forked from it starts in a fraction
    of a second. It exits when the returned process's stdin is closed. If it is not listening
    within ``timeout`` seconds, kernels simply start the ordinary way.
    """
    env = {**os.environ, **kernel_environment(limits), "OPENBLAS_NUM_THREADS": "1"}
    Path(socket_path).parent.mkdir(parents=True, exist_ok=True)
    with open(f"{socket_path}.log", "ab") as log:
        process = subprocess.Popen(
            [sys.executable, _kernel_launcher.__file__, "--serve", str(socket_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=log,
            env=env,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None and not os.path.exists(socket_path):
        time.sleep(0.1)
    return process


def jupyter_path_with(directory: str | os.PathLike[str]) -> str:
    """``JUPYTER_PATH`` with ``directory`` first, keeping whatever was there."""
    old = os.environ.get("JUPYTER_PATH")
    return os.pathsep.join([str(directory), *([old] if old else [])])


def kill_descendants(pid: int | None = None, *, keep: int | None = None) -> None:
    """Kill every descendant of process ``pid`` (default: this process) except ``keep``.

    Best effort: processes that already exited, or a missing psutil, are ignored.
    """
    try:
        import psutil

        for child in psutil.Process(pid).children(recursive=True):
            if child.pid != keep:
                try:
                    child.kill()
                except psutil.Error:
                    pass
    except Exception:
        pass
