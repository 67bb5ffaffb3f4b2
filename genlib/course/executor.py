"""nbgrader pieces for grading untrusted notebooks: execution that survives them, honest scores.

- :class:`SandboxedExecute` replaces nbgrader's ``Execute``. It caps each cell's output, keeps
  a whole-notebook time budget, and when the kernel dies (memory or CPU limit, a crash, an
  ``os._exit``) or ignores the interrupt after a cell timeout (a loop that catches
  ``KeyboardInterrupt``), it tells the student so in that cell, starts a fresh kernel, re-runs the
  cells above that are not tests (silently), and goes on, so the other parts are still graded.
- :class:`GuardPartialCredit` runs before ``SaveAutoGrades``: nbgrader reads a number shown as a
  test cell's result as partial credit, takes the first such result it finds, gives full marks
  for a negative one or NaN, and crashes on one above the cell's points. A submission can show
  numbers from inside a test cell (``sys.displayhook(-1)``), so a result counts only if it is the
  cell's last output, the cell ends with an expression, and the cell did not fail; a counted
  number outside ``0..points`` becomes an error (zero points).
- :class:`SandboxedAutograde` is nbgrader's ``Autograde`` whose execution pass runs in a working
  directory of the grader's choosing (only the student's files) with the sanitized notebook,
  which holds the hidden tests, removed from disk while the student's code runs.

This module imports nbgrader; the grading worker (:mod:`genlib.course.worker`) loads it.
"""

from __future__ import annotations

import ast
import math
import os
import time
from typing import Any

import nbformat
from jupyter_core.utils import ensure_async, run_sync
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbconvert.preprocessors import ClearMetadataPreprocessor
from nbformat.notebooknode import NotebookNode
from nbgrader import utils as nbutils
from nbgrader.converters import Autograde
from nbgrader.converters.base import BaseConverter
from nbgrader.preprocessors import (
    AssignLatePenalties,
    CheckCellMetadata,
    Execute,
    IgnorePattern,
    LimitOutput,
    NbGraderPreprocessor,
    SaveAutoGrades,
)
from traitlets import Integer, Unicode

#: Signals that end a kernel, and what to tell the student.
_DEATH_REASONS = {
    -24: "it used up its CPU-time limit",  # SIGXCPU
    -9: "it was killed (out of memory, or past its CPU-time limit)",  # SIGKILL
    -11: "it crashed (segmentation fault in native code)",
    -6: "it aborted (an error in native code)",
    -7: "it crashed (bus error in native code)",
}


def error_output(ename: str, evalue: str) -> NotebookNode:
    """An ``error`` output, as a kernel would send it."""
    return nbformat.v4.new_output("error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


def _message_size(msg: dict[str, Any]) -> int:
    content = msg.get("content", {})
    if "text" in content:
        return len(content["text"])
    if "data" in content:
        return sum(len(str(value)) for value in content["data"].values())
    if "traceback" in content:
        return sum(len(line) for line in content["traceback"])
    return 0


class SandboxedExecute(Execute):
    """nbgrader's ``Execute`` that no submission can stop from grading the rest of the notebook."""

    output_limit_kb = Integer(256, help="Most output (KiB) kept per cell.").tag(config=True)
    max_restarts = Integer(5, help="Kernel restarts allowed per notebook.").tag(config=True)
    notebook_timeout = Integer(600, help="Seconds after which no further cell starts.").tag(config=True)
    limits_text = Unicode(
        "", help="The kernel's limits in words, quoted when the kernel dies (e.g. '4096 MiB')."
    ).tag(config=True)

    # ------------------------------------------------------------------ per-notebook state

    def preprocess(self, nb: NotebookNode, resources: Any = None, km: Any = None) -> Any:
        self._replay: list[int] = []  # cells re-run after a restart: answers and setup, not tests
        self._restarts = 0
        self._stopped: str | None = None
        self._started = time.monotonic()
        self._output_bytes: dict[int, int] = {}
        self._truncated: set[tuple[int, str]] = set()
        self._timed_out = False
        return super().preprocess(nb, resources, km)

    # ------------------------------------------------------------------ cells

    def preprocess_cell(self, cell: NotebookNode, resources: Any, index: int) -> Any:
        if cell.cell_type != "code" or not cell.source.strip():
            return cell, resources
        if self._stopped is None and time.monotonic() - self._started > self.notebook_timeout:
            self._stopped = (
                f"the notebook used up its grading time ({self.notebook_timeout} s) before this cell"
            )
        if self._stopped is not None:
            cell.outputs = [error_output("NotRun", f"This cell was not run: {self._stopped}.")]
            return cell, resources
        self._timed_out = False
        try:
            cell, resources = super().preprocess_cell(cell, resources, index)
        except DeadKernelError:
            reason = run_sync(self._death_reason)()
            cell.outputs.append(
                error_output(
                    "KernelDied",
                    f"Python stopped while running this cell: {reason}. The grader started a fresh "
                    "Python and re-ran the cells above (not the tests) to grade the rest.",
                )
            )
            self._recover()
            return cell, self.resources
        except CellTimeoutError:
            cell.outputs.append(
                error_output(
                    "CellTimeoutError",
                    f"This cell ran longer than {self.timeout} s and did not stop when interrupted "
                    "(it catches or ignores KeyboardInterrupt, e.g. with a bare `except:`). The grader "
                    "started a fresh Python and re-ran the cells above (not the tests) to grade the rest.",
                )
            )
            self._recover()
            return cell, self.resources
        if not self._timed_out and (nbutils.is_solution(cell) or not nbutils.is_grade(cell)):
            self._replay.append(index)
        return cell, resources

    async def _async_handle_timeout(self, timeout: int, cell: NotebookNode | None = None) -> Any:
        self._timed_out = True
        message = f"this cell ran longer than {timeout} s and was stopped"
        self.error_on_timeout = {
            "ename": "CellTimeoutError",
            "evalue": message,
            "traceback": [f"CellTimeoutError: {message}; the cells after it still run"],
        }
        return await super()._async_handle_timeout(timeout, cell)

    # ------------------------------------------------------------------ output cap

    def output(self, outs: list, msg: dict, display_id: str | None, cell_index: int) -> Any:
        used = self._output_bytes.get(cell_index, 0) + _message_size(msg)
        self._output_bytes[cell_index] = used
        limit = self.output_limit_kb * 1024
        if used <= limit:
            return super().output(outs, msg, display_id, cell_index)
        msg_type = msg["msg_type"]
        content = msg["content"]
        if msg_type == "error":  # never dropped: an error decides the grade
            content["traceback"] = [line[:2000] for line in content.get("traceback", [])[-20:]]
            content["evalue"] = str(content.get("evalue", ""))[:4000]
            return super().output(outs, msg, display_id, cell_index)
        if msg_type == "execute_result":  # may be partial credit: keep its plain text only
            content["data"] = {"text/plain": str(content["data"].get("text/plain", ""))[:200]}
            return super().output(outs, msg, display_id, cell_index)
        stream = content.get("name", "stdout") if msg_type == "stream" else "stdout"
        if (cell_index, stream) not in self._truncated:
            self._truncated.add((cell_index, stream))
            outs.append(
                nbformat.v4.new_output(
                    "stream",
                    name=stream,  # a stderr marker keeps "wrote to stderr" visible to the grade
                    text=f"\n[... more output dropped: limit {self.output_limit_kb} KiB per cell ...]\n",
                )
            )
        return None

    # ------------------------------------------------------------------ recovery

    async def _death_reason(self) -> str:
        code = None
        try:
            provisioner = getattr(self.km, "provisioner", None)
            if provisioner is not None:
                code = await provisioner.poll()
        except Exception:  # the reason is a courtesy; never fail on it
            code = None
        if code in _DEATH_REASONS:
            reason = _DEATH_REASONS[code]
        elif isinstance(code, int) and code >= 0:
            reason = f"it exited with status {code} (os._exit, or sys.exit outside the main thread)"
        else:
            reason = "it ended (a crash, or a limit)"
        if self.limits_text:
            reason += f"; the limits are {self.limits_text}"
        return reason

    def _recover(self) -> None:
        """Restart the kernel and replay the cells that set up state; stop if that fails."""
        if self._restarts >= self.max_restarts:
            self._stopped = f"Python had to be restarted more than {self.max_restarts} times"
            return
        self._restarts += 1
        try:
            run_sync(self._async_restart)()
            for index in self._replay:
                if not run_sync(self._async_replay)(self.nb.cells[index].source):
                    self._stopped = "re-running the cells above after a restart failed"
                    return
        except Exception as error:  # a restart that fails ends the notebook, not the grading
            self.log.error("kernel restart failed: %s", error)
            self._stopped = "Python could not be restarted"

    async def _async_restart(self) -> None:
        assert self.km is not None
        if self.kc is not None:
            await ensure_async(self.kc.stop_channels())
        await ensure_async(self.km.restart_kernel(now=True, newports=True))
        self.kc = self.km.client()
        await ensure_async(self.kc.start_channels())
        await ensure_async(self.kc.wait_for_ready(timeout=self.startup_timeout))
        self.kc.allow_stdin = False

    async def _async_replay(self, source: str) -> bool:
        assert self.kc is not None
        msg_id = self.kc.execute(source, silent=True, store_history=False, stop_on_error=False)
        deadline = time.monotonic() + (self.timeout or 60)
        while time.monotonic() < deadline:
            try:
                msg = await ensure_async(self.kc.shell_channel.get_msg(timeout=1))
            except Exception:  # queue.Empty: nothing yet
                if not await ensure_async(self.kc.is_alive()):
                    return False
                continue
            if msg["parent_header"].get("msg_id") == msg_id:
                return True
        return False


def _ends_with_expression(source: str) -> bool:
    try:
        body = ast.parse(source).body
    except SyntaxError:
        return False
    return bool(body) and isinstance(body[-1], ast.Expr)


class GuardPartialCredit(NbGraderPreprocessor):
    """Make the number nbgrader reads as a test cell's partial credit trustworthy (see module)."""

    def preprocess_cell(self, cell: NotebookNode, resources: Any, index: int) -> Any:
        if cell.cell_type != "code" or not nbutils.is_grade(cell) or nbutils.is_solution(cell):
            return cell, resources
        results = [i for i, out in enumerate(cell.outputs) if out.output_type == "execute_result"]
        failed = any(
            out.output_type == "error" or (out.output_type == "stream" and out.get("name") == "stderr")
            for out in cell.outputs
        )
        # The cell's own result is shown last, after everything its code printed or showed.
        last = len(cell.outputs) - 1
        keep = (
            last
            if results and results[-1] == last and not failed and _ends_with_expression(cell.source)
            else None
        )
        for i in results:
            if i != keep:  # shown by the submission's code, not by the test: it is not a grade
                out = cell.outputs[i]
                cell.outputs[i] = nbformat.v4.new_output(
                    "display_data", data=out.get("data", {}), metadata=out.get("metadata", {})
                )
        if keep is not None:
            text = cell.outputs[keep].get("data", {}).get("text/plain", "")
            text = "".join(text) if isinstance(text, list) else str(text)
            try:
                value = float(text)
            except ValueError:
                return cell, resources
            points = float(cell.metadata["nbgrader"]["points"])
            if not (math.isfinite(value) and 0 <= value <= points):
                cell.outputs[keep] = error_output(
                    "PartialCreditError",
                    f"this test reported {text.strip()[:40]} points, outside 0..{points:g}: no points given",
                )
        return cell, resources


class SandboxedAutograde(Autograde):
    """nbgrader's ``Autograde`` whose execution pass runs in ``workdir`` (see module)."""

    workdir = Unicode("", help="Working directory of the kernel; default: the autograded folder.").tag(
        config=True
    )

    def convert_single_notebook(self, notebook_filename: str) -> None:
        self.log.info("Sanitizing %s", notebook_filename)
        self._sanitizing = True
        self._init_preprocessors()
        BaseConverter.convert_single_notebook(self, notebook_filename)

        built = os.path.join(self.writer.build_directory, os.path.basename(notebook_filename))
        self.log.info("Autograding %s", built)
        self._sanitizing = False
        self._init_preprocessors()
        try:
            resources = self.init_single_notebook_resources(built)
            nb = nbformat.read(built, as_version=4)
            os.remove(built)  # it holds the hidden tests: not on disk while the submission runs
            resources["metadata"] = {
                "name": resources["nbgrader"]["notebook"],
                "path": self.workdir or os.path.dirname(built),
            }
            with nbutils.setenv(NBGRADER_EXECUTION="autograde"):
                output, resources = self.exporter.from_notebook_node(nb, resources=resources)
            self.write_single_notebook(output, resources)
        finally:
            self._sanitizing = True


#: The autograding pass: nbgrader's, with the sandboxed executor and the partial-credit guard.
AUTOGRADE_PREPROCESSORS = [
    SandboxedExecute,
    IgnorePattern,
    ClearMetadataPreprocessor,
    LimitOutput,
    GuardPartialCredit,
    SaveAutoGrades,
    AssignLatePenalties,
    CheckCellMetadata,
]
