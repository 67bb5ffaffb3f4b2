"""``course check NOTEBOOK``: a student runs the visible tests before handing in.

The notebook is run top to bottom in a fresh Python (the grading sandbox's kernel: the same
limits and cell timeout as the autograder), without changing the file. Then every test cell is
reported: ``pass``, ``FAIL`` with the first lines of what the test said, ``hidden`` (its tests
are run only by the autograder), or ``not run`` (the notebook stopped before it). A test cell
whose code was changed is pointed out: the autograder uses the original.
"""

from __future__ import annotations

import ast
import os
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from genlib.course import sandbox
from genlib.course.submission import read_submission


@dataclass
class Row:
    """The outcome of one test cell."""

    grade_id: str
    points: float
    result: str  # "pass", "FAIL", "hidden", "not run"
    detail: str = ""
    edited: bool = False


@dataclass
class Check:
    """The outcome of a self-check: per test cell, and problems with the notebook as a whole."""

    notebook: str
    rows: list[Row] = field(default_factory=list)
    problem: str = ""

    @property
    def visible(self) -> list[Row]:
        return [r for r in self.rows if r.result != "hidden"]

    @property
    def ok(self) -> bool:
        return not self.problem and bool(self.visible) and all(r.result == "pass" for r in self.visible)


def _hidden(source: str) -> bool:
    """A released test cell whose tests are hidden: nothing in it but a docstring or comments."""
    try:
        body = ast.parse(source).body
    except SyntaxError:
        return False
    return all(isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant) for s in body)


def _detail(outputs: list) -> str | None:
    """What a failed test cell said, in a few lines; None if it passed."""
    for out in outputs:
        if out.get("output_type") == "error":
            lines = [ln for ln in str(out.get("evalue", "")).splitlines() if ln.strip()]
            keep = (
                lines[:1]
                + [ln.strip() for ln in lines[1:] if ln.strip().startswith(("FAIL", "problem:"))][:4]
            )
            return f"{out.get('ename', 'Error')}: " + "\n".join(keep or [""])
    for out in outputs:
        if out.get("output_type") == "stream" and out.get("name") == "stderr":
            first = "".join(out.get("text", "")).strip().splitlines()[:1]
            return "wrote to stderr (a test cell that does earns no points): " + (first[0] if first else "")
    return None


def _checksum_changed(cell: nbformat.NotebookNode) -> bool:
    expected = cell.metadata.get("nbgrader", {}).get("checksum")
    if not expected:
        return False
    try:
        from nbgrader.utils import compute_checksum
    except ImportError:
        return False
    return compute_checksum(cell) != expected


def self_check(path: str | Path, *, limits: sandbox.Limits | None = None) -> Check:
    """Run the notebook at ``path`` and report its test cells (see the module docstring)."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    path = Path(path)
    check = Check(path.name)
    cells, problem = read_submission(path)
    if problem is not None:
        check.problem = f"{path.name} cannot be graded: {problem}"
        return check
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate cell ids are repaired with a warning
        nb = nbformat.read(path, as_version=4)
    tests = [c for c in nb.cells if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")]
    if not tests:
        check.problem = f"{path.name} has no test cells: is it a graded notebook of the course?"
        return check
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    edited = {id(c) for c in tests if _checksum_changed(c)}

    limits = limits or sandbox.Limits()
    with tempfile.TemporaryDirectory(prefix="genlib-check-") as spec_dir:
        sandbox.write_kernelspec(spec_dir, limits)
        saved = {k: os.environ.get(k) for k in ("JUPYTER_PATH", sandbox.HOME_VARIABLE)}
        os.environ["JUPYTER_PATH"] = sandbox.jupyter_path_with(spec_dir)
        os.environ[sandbox.HOME_VARIABLE] = os.path.join(spec_dir, "home")
        client = NotebookClient(
            nb,
            timeout=limits.cell_timeout,
            kernel_name=sandbox.KERNEL_NAME,
            allow_errors=True,
            interrupt_on_timeout=True,
            resources={"metadata": {"path": str(path.parent.resolve())}},
        )
        try:
            client.execute()
        except DeadKernelError:
            check.problem = "Python stopped while running the notebook (memory, CPU time, or a crash)"
        except CellTimeoutError:
            check.problem = f"a cell ran longer than {limits.cell_timeout} s and could not be interrupted"
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    for cell in tests:
        meta = cell.metadata["nbgrader"]
        row = Row(
            str(meta.get("grade_id", "?")), float(meta.get("points", 0)), "pass", edited=id(cell) in edited
        )
        if _hidden(cell.source):
            row.result = "hidden"
        elif row.edited:
            row.result = "FAIL"
            row.detail = "you changed this test cell, so its result says nothing: undo the change"
        elif cell.execution_count is None and not cell.outputs:
            row.result = "not run"
        else:
            detail = _detail(cell.outputs)
            if detail is not None:
                row.result, row.detail = "FAIL", detail
        check.rows.append(row)
    return check


def render(check: Check) -> str:
    """The self-check as the text the student reads."""
    lines = [f"Self-check of {check.notebook} (visible tests only; hidden tests decide the grade)", ""]
    width = max([len(r.grade_id) for r in check.rows] + [4])
    for row in check.rows:
        result = {"hidden": "hidden: run by the autograder only"}.get(row.result, row.result)
        lines.append(f"  {row.grade_id:<{width}}  {row.points:>4g} pt  {result}")
        if row.detail:
            lines += [f"  {'':<{width}}           {ln}" for ln in row.detail.splitlines()]
        if row.edited:
            lines.append(f"  {'':<{width}}           (the autograder runs the original test)")
    lines.append("")
    if check.problem:
        lines.append(f"Problem: {check.problem}.")
    visible = check.visible
    passed = sum(1 for r in visible if r.result == "pass")
    if visible:
        lines.append(f"{passed} of {len(visible)} visible tests pass.")
    if check.ok:
        lines.append("All visible tests pass. Save the notebook and hand it in.")
    return "\n".join(lines)
