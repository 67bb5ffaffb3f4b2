"""The grading sandbox's kernels: the zygote, and execution that survives what a notebook does.

:class:`genlib.course.executor.SandboxedExecute` runs small notebooks here directly (no
nbgrader course around them), through the sandbox kernelspec, with and without the zygote: a
kernel that dies (CPU-time limit) or ignores the interrupt is restarted and the cells above are
replayed, so the cells below still run; output is capped; the notebook's time budget stops
further cells with a message.
"""

from __future__ import annotations

import os

import nbformat
import pytest

from genlib.course import sandbox

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=["zygote", "fresh"])
def kernels(request, tmp_path_factory):
    """JUPYTER_PATH pointing at the sandbox kernelspec, with or without a running zygote."""
    folder = tmp_path_factory.mktemp(f"kernels-{request.param}")
    limits = sandbox.Limits(cell_timeout=4, memory_mb=2048)
    zygote = None
    if request.param == "zygote":
        zygote = sandbox.start_zygote(folder / "zygote.sock", limits)
        assert (folder / "zygote.sock").exists(), "the zygote did not start"
    sandbox.write_kernelspec(folder, limits, zygote=folder / "zygote.sock" if zygote else None)
    saved = {k: os.environ.get(k) for k in ("JUPYTER_PATH", sandbox.HOME_VARIABLE)}
    os.environ["JUPYTER_PATH"] = sandbox.jupyter_path_with(folder)
    os.environ[sandbox.HOME_VARIABLE] = str(folder / "home")  # the kernels' HOME, removed with tmp
    yield request.param, folder
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    if zygote is not None:
        zygote.stdin.close()
        zygote.wait(timeout=30)


def _notebook(*cells: tuple[str, bool]) -> nbformat.NotebookNode:
    """Code cells from ``(source, is_test)``; tests are nbgrader graded cells."""
    nb = nbformat.v4.new_notebook()
    for i, (source, is_test) in enumerate(cells):
        cell = nbformat.v4.new_code_cell(source)
        if is_test:
            cell.metadata["nbgrader"] = {"grade": True, "grade_id": f"t{i}", "points": 1, "solution": False}
        nb.cells.append(cell)
    return nb


def _run(nb: nbformat.NotebookNode, workdir, **settings) -> list[str]:
    from genlib.course.executor import SandboxedExecute

    executor = SandboxedExecute(
        kernel_name=sandbox.KERNEL_NAME, timeout=4, limits_text="the test's limits", **settings
    )
    executor.preprocess(nb, {"metadata": {"path": str(workdir)}})
    shown = []
    for cell in nb.cells:
        text = []
        for out in cell.outputs:
            text += [out.get("text", ""), out.get("ename", ""), str(out.get("evalue", ""))]
        shown.append("\n".join(text))
    return shown


def test_kernels_survive_death_and_deafness(kernels, tmp_path):
    mode, _ = kernels
    nb = _notebook(
        (
            "import sys, os\nx = 41\nprint('preloaded' if 'torch' in sys.modules else 'fresh', os.getcwd())",
            False,
        ),
        ("print(x + 1)", True),
        ("import os, signal\nos.kill(os.getpid(), signal.SIGXCPU)", False),
        ("print(x + 1)", True),
        ("import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass", False),
        ("print(x + 1)", True),
        ("import time\ntime.sleep(60)", False),
        ("print('flood ' * 100_000)\nprint(x + 1)", True),
    )
    shown = _run(nb, tmp_path, output_limit_kb=64)
    assert shown[0].startswith("preloaded" if mode == "zygote" else "fresh")
    assert str(tmp_path) in shown[0]
    assert shown[1].strip() == "42"
    assert "KernelDied" in shown[2] and "CPU-time limit" in shown[2]
    assert shown[3].strip() == "42"  # a fresh kernel, with the cells above (not the tests) re-run
    assert "did not stop when interrupted" in shown[4]
    assert shown[5].strip() == "42"
    assert "KeyboardInterrupt" in shown[6] and "ran longer than 4 s" in shown[6]  # interrupted, alive
    assert "more output dropped" in shown[7] and len(shown[7]) < 70 * 1024
    assert nb.cells[7].outputs[-1].get("name") != "stderr"


def test_the_notebook_budget_stops_later_cells(kernels, tmp_path):
    nb = _notebook(("import time\ntime.sleep(2)", False), ("print('late')", True))
    shown = _run(nb, tmp_path, notebook_timeout=1)
    assert "NotRun" in shown[1] and "grading time (1 s)" in shown[1]


def test_too_many_restarts_stop_the_notebook(kernels, tmp_path):
    die = ("import os\nos._exit(3)", False)
    nb = _notebook(die, die, ("print('never')", True))
    shown = _run(nb, tmp_path, max_restarts=1)
    assert "exited with status 3" in shown[0]
    assert "KernelDied" in shown[1]
    assert "NotRun" in shown[2] and "restarted more than 1 times" in shown[2]
