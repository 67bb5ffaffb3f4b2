"""Feedback HTML per student, without the hidden tests.

nbgrader's ``generate_feedback`` renders the autograded notebook, and the autograded notebook
holds the hidden tests (nbgrader restored them to run them): its feedback shows their source, and
the traceback of a failed hidden test quotes the failing line. Here nbgrader's converter runs
with :class:`HideHiddenTests` added, which

- replaces each hidden-test region of a test cell by one comment line;
- shortens the error of a test cell that has hidden tests to ``Name: message`` (the message is
  what the tests wrote for the student: the failing case, expected and got, a hint);
- removes any line of hidden-test source that still appears in any output (a submission can
  print the code that calls it).

A submission that could not be graded (not a notebook, empty, ...) gets a short page saying why.
Every page written is then checked for hidden-test lines (:func:`leaked_lines`); a leak is an
error, never a silent success.
"""

from __future__ import annotations

import html
import logging
import re
from html.parser import HTMLParser
from typing import Any

import nbformat
from nbformat.notebooknode import NotebookNode

from genlib.course.course import Course

BEGIN, END = "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"
PLACEHOLDER = "# (hidden tests: not shown in feedback)"
REDACTED = "[hidden test line]"
#: Hidden-test lines shorter than this (``)``, ``],``, ``import torch``) say nothing and are not redacted.
MIN_LINE = 16


def hidden_lines(source: str) -> list[str]:
    """The lines inside the hidden-test regions of ``source`` worth hiding (stripped)."""
    lines, inside = [], False
    for line in source.splitlines():
        if BEGIN in line:
            inside = True
        elif END in line:
            inside = False
        elif inside and len(line.strip()) >= MIN_LINE:
            lines.append(line.strip())
    return lines


def _without_hidden(source: str) -> str:
    out, inside = [], False
    for line in source.splitlines():
        if BEGIN in line:
            inside = True
            out.append(line[: len(line) - len(line.lstrip())] + PLACEHOLDER)
        elif END in line:
            inside = False
        elif not inside:
            out.append(line)
    return "\n".join(out)


def _redact(text: str, lines: list[str]) -> str:
    for line in lines:
        if line in text:
            text = text.replace(line, REDACTED)
    return text


def secret_lines(nb: NotebookNode) -> list[str]:
    """Hidden-test lines of ``nb`` that appear nowhere else in it (longest first)."""
    hidden, shown = set(), set()
    for cell in nb.cells:
        hidden.update(hidden_lines(cell.source))
        shown.update(line.strip() for line in _without_hidden(cell.source).splitlines())
    return sorted(hidden - shown, key=len, reverse=True)


def hide_hidden_tests(nb: NotebookNode) -> NotebookNode:
    """Remove hidden tests from ``nb`` (in place) as described in the module docstring."""
    secret = secret_lines(nb)
    for cell in nb.cells:
        if BEGIN in cell.source:
            cell.source = _without_hidden(cell.source)
            for out in cell.get("outputs", []):
                if out.get("output_type") == "error":
                    out["traceback"] = [f"{out.get('ename', 'Error')}: {out.get('evalue', '')}"]
    if not secret:
        return nb
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if "text" in out:
                out["text"] = _redact("".join(out["text"]), secret)
            if "evalue" in out:
                out["evalue"] = _redact(str(out["evalue"]), secret)
            if "traceback" in out:
                out["traceback"] = [_redact(line, secret) for line in out["traceback"]]
            for mime, value in list(out.get("data", {}).items()):
                if isinstance(value, (str, list)) and mime.startswith("text/"):
                    out["data"][mime] = _redact("".join(value), secret)
    return nb


def _preprocessor_class() -> type:
    from nbconvert.preprocessors import Preprocessor
    from traitlets import Bool

    class HideHiddenTests(Preprocessor):
        """nbgrader preprocessor: :func:`hide_hidden_tests`."""

        enabled = Bool(True)

        def preprocess(self, nb: NotebookNode, resources: Any) -> tuple[NotebookNode, Any]:
            return hide_hidden_tests(nb), resources

    return HideHiddenTests


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def page_text(page: str) -> str:
    """The visible text of an HTML page (tags dropped, entities decoded)."""
    parser = _Text()
    parser.feed(page)
    return "".join(parser.parts)


def leaked_lines(page: str, secret: list[str]) -> list[str]:
    """The hidden-test lines that appear in the text of the HTML ``page`` (whitespace-insensitive)."""
    squash = re.compile(r"\s+")
    text = squash.sub("", page_text(page))
    return [line for line in secret if squash.sub("", line) in text]


def _status_page(student: str, assignment: str, row: dict[str, Any]) -> str:
    notes = "".join(f"<li>{html.escape(note)}</li>" for note in row.get("notes", []))
    reason = html.escape(row.get("message") or "unknown reason")
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f"<title>{html.escape(assignment)}: feedback</title></head><body>\n"
        f"<h1>{html.escape(assignment)}: feedback for {html.escape(student)}</h1>\n"
        f"<p><strong>Score: {row.get('score', 0):g} / {row.get('max_score', 0):g}</strong></p>\n"
        f"<p>Your submission could not be graded: {reason}.</p>\n"
        + (f"<ul>{notes}</ul>\n" if notes else "")
        + "<p>Hand in the assignment's notebook (the .ipynb file, saved after "
        "Kernel &rarr; Restart &amp; Run All).</p>\n"
        "</body></html>\n"
    )


def generate_feedback(
    course: Course, assignment: str, students: list[str] | None = None
) -> list[dict[str, Any]]:
    """Write ``feedback/<student>/<assignment>/<notebook>.html`` for graded submissions.

    Returns one row per student: ``student``, ``status`` (``"written"``, ``"not gradable"``
    page written, or ``"failed"``), ``files``, ``message``. Raises ``RuntimeError`` if a page
    shows a hidden-test line.
    """
    from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
    from nbgrader.converters import GenerateFeedback
    from nbgrader.coursedir import CourseDirectory
    from nbgrader.preprocessors import GetGrades
    from traitlets.config import Config

    from genlib.course.autograde import load_report

    course.check_assignment(assignment)
    report = load_report(course, assignment)
    graded = sorted(
        p.parent.parent.name for p in course.autograded_dir.glob(f"*/{assignment}/*.ipynb") if p.is_file()
    )
    everyone = sorted(set(graded) | set(report))
    chosen = [s for s in everyone if not students or s in students]
    rows = []
    log = logging.getLogger("genlib.course.feedback")
    log.setLevel(logging.ERROR)
    for student in chosen:
        dest = course.feedback_dir / student / assignment
        if student not in graded:
            row = report.get(student, {})
            dest.mkdir(parents=True, exist_ok=True)
            for name in course.release_notebooks(assignment):
                (dest / f"{name}.html").write_text(_status_page(student, assignment, row))
            rows.append(
                {"student": student, "status": "not gradable", "files": [], "message": row.get("message", "")}
            )
            continue
        config = Config()
        config.merge(course.config)
        over = Config()
        over.CourseDirectory.root = str(course.root)
        over.CourseDirectory.assignment_id = assignment
        over.CourseDirectory.student_id = student
        over.GenerateFeedback.preprocessors = [GetGrades, _preprocessor_class(), CSSHTMLHeaderPreprocessor]
        config.merge(over)
        converter = GenerateFeedback(coursedir=CourseDirectory(config=config), config=config, log=log)
        converter.force = True
        try:
            converter.start()
            status, message = "written", ""
        except Exception as error:  # one student's page must not stop the others
            status, message = "failed", f"{type(error).__name__}: {error}"
        files = sorted(dest.glob("*.html"))
        for path in files:
            autograded = course.autograded_dir / student / assignment / f"{path.stem}.ipynb"
            secret = secret_lines(nbformat.read(autograded, as_version=4))
            leaks = leaked_lines(path.read_text(), secret)
            if leaks:
                path.unlink()
                raise RuntimeError(f"feedback for {student} showed hidden tests ({leaks[0]!r}); page removed")
        rows.append(
            {"student": student, "status": status, "files": [str(p) for p in files], "message": message}
        )
    return rows
