"""Reading a handed-in notebook whatever state it is in, and rebuilding it on the assignment.

:func:`read_submission` turns a file into a list of cells, or into a sentence that says why it is
not a notebook (empty, not JSON, an HTML page, a zip, too large). :func:`normalize` then rebuilds
the notebook on the released one: every fixed cell (instructions, setup, tests) comes from the
release in the release's order, the student's answer cells are put in their places, and cells the
student added keep their place after the cell they followed. So a test cell that was edited,
deleted, moved or duplicated is back as released (nbgrader then restores the hidden tests from the
gradebook), duplicate cell ids cannot confuse nbgrader, and a notebook of another assignment is
recognised. What was repaired is returned as notes for the student.

:func:`flags` lists patterns in the student's code that an instructor may want to look at (use of
the grading harness, files, processes, Python internals); they do not change the grade.
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from nbformat.notebooknode import NotebookNode

#: Submissions larger than this are not graded (a notebook with outputs cleared is kilobytes).
MAX_BYTES = 50 * 1024 * 1024


@dataclass
class Cell:
    """One cell of a submission as far as grading cares: type, source, nbgrader id."""

    cell_type: str
    source: str
    grade_id: str | None = None


@dataclass
class Normalized:
    """The rebuilt notebook, what was repaired (for the student), and whether it looks like the
    right assignment."""

    notebook: NotebookNode
    notes: list[str] = field(default_factory=list)
    wrong_assignment: bool = False


# --------------------------------------------------------------------------- reading


def _source(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "".join(value)
    return None


def _grade_id(metadata: Any) -> str | None:
    if not isinstance(metadata, dict):
        return None
    nbgrader = metadata.get("nbgrader")
    if not isinstance(nbgrader, dict):
        return None
    grade_id = nbgrader.get("grade_id")
    return grade_id if isinstance(grade_id, str) and grade_id else None


def _not_json_reason(data: bytes, error: ValueError) -> str:
    head = data[:200].lstrip().lower()
    if data[:2] == b"PK":
        return "it is a zip archive, not a notebook: unpack it and hand in the .ipynb file"
    if head.startswith((b"<!doctype html", b"<html")):
        return (
            "it is a web page (HTML), not a notebook: download the .ipynb file itself "
            "(File > Download in Jupyter) instead of saving the page"
        )
    if head.startswith((b"%pdf",)):
        return "it is a PDF, not a notebook"
    where = ""
    if isinstance(error, json.JSONDecodeError):
        where = f" (line {error.lineno}, column {error.colno}: {error.msg})"
    return (
        f"it is not valid notebook JSON{where}. Open it in Jupyter: if Jupyter cannot open it "
        "either, the file was damaged; hand in a fresh copy"
    )


def read_submission(path: str | Path) -> tuple[list[Cell] | None, str | None]:
    """The cells of the notebook at ``path``, or ``(None, reason)`` when it cannot be graded.

    Tolerant of what the nbformat schema would reject (sources as lists or strings, missing
    metadata, duplicate or missing cell ids, nbformat 3); strict only about what cannot be a
    notebook at all.
    """
    path = Path(path)
    if not path.is_file():
        return None, f"no file named {path.name} was handed in"
    size = path.stat().st_size
    if size > MAX_BYTES:
        return (
            None,
            f"the file is {size / 2**20:.0f} MB; notebooks over {MAX_BYTES // 2**20} MB are not graded",
        )
    data = path.read_bytes()
    if not data.strip():
        return None, "the file is empty (0 bytes of notebook): save the notebook before handing it in"
    try:
        raw = json.loads(data.decode("utf-8-sig", errors="replace"))
    except ValueError as error:
        return None, _not_json_reason(data, error)
    if not isinstance(raw, dict) or not isinstance(raw.get("cells", raw.get("worksheets")), list):
        return None, "it is valid JSON but not a Jupyter notebook (it has no list of cells)"
    if raw.get("nbformat") == 3 or "worksheets" in raw:
        try:
            raw = nbformat.convert(nbformat.from_dict(raw), 4)
        except Exception:
            return None, "it is an old (nbformat 3) notebook that could not be converted"
    cells = []
    for item in raw.get("cells", []):
        if not isinstance(item, dict):
            continue
        cell_type = item.get("cell_type")
        source = _source(item.get("source", ""))
        if cell_type not in ("code", "markdown", "raw") or source is None:
            continue
        cells.append(Cell(cell_type, source, _grade_id(item.get("metadata"))))
    return cells, None


# --------------------------------------------------------------------------- rebuilding


def _is_answer(cell: NotebookNode) -> bool:
    return bool(cell.metadata.get("nbgrader", {}).get("solution"))


def _is_test(cell: NotebookNode) -> bool:
    meta = cell.metadata.get("nbgrader", {})
    return bool(meta.get("grade")) and not meta.get("solution")


def _new_id() -> str:
    return uuid.uuid4().hex[:8]


def _out_of_order(order: list[int]) -> set[int]:
    """Items of ``order`` outside one longest increasing subsequence: the ones that moved."""
    if not order:
        return set()
    best: list[list[int]] = []
    for value in order:
        options = [chain for chain in best if chain[-1] < value]
        chain = (max(options, key=len) if options else []) + [value]
        best.append(chain)
    keep = set(max(best, key=len))
    return {value for value in order if value not in keep}


def _list(ids: list[str]) -> str:
    shown = ", ".join(ids[:6]) + (f" and {len(ids) - 6} more" if len(ids) > 6 else "")
    return shown


def normalize(cells: list[Cell], release: NotebookNode) -> Normalized:
    """Rebuild a submission on the released notebook ``release`` (see the module docstring)."""
    release_ids = [c.metadata.get("nbgrader", {}).get("grade_id") for c in release.cells]
    position = {gid: i for i, gid in enumerate(release_ids) if gid}
    kinds = {gid: release.cells[i] for gid, i in position.items()}
    notes: list[str] = []

    # The graded copy of each known cell is its last occurrence; anything else is the student's.
    last = {c.grade_id: i for i, c in enumerate(cells) if c.grade_id in position}
    attached: dict[str | None, list[Cell]] = {}  # extra cells, by the known cell they follow
    anchor: str | None = None
    duplicates: set[str] = set()
    for i, cell in enumerate(cells):
        if cell.grade_id in position and last[cell.grade_id] == i:
            anchor = cell.grade_id
            continue
        if cell.grade_id in position:
            duplicates.add(cell.grade_id)
            if not _is_answer(kinds[cell.grade_id]):
                continue  # a copy of a fixed cell: the release has the original
        attached.setdefault(anchor, []).append(Cell(cell.cell_type, cell.source))

    if not cells:
        notes.append("Your notebook has no cells; it was graded as the blank assignment.")
    known = [gid for gid in last]
    fixed = [gid for gid in position if not _is_answer(kinds[gid])]
    matching = sum(1 for gid in fixed if gid in last and cells[last[gid]].source == kinds[gid].source)
    wrong = bool(cells) and (not known or (fixed and matching < len(fixed) / 2))
    if wrong and not known:
        notes.append(
            "Your notebook has none of this assignment's cells: is it the notebook of another "
            "assignment, or one made from scratch? Only the assignment's own notebook can be graded."
        )
    elif wrong:
        notes.append(
            f"Only {matching} of the {len(fixed)} fixed cells of this assignment match your notebook's: "
            "is it the notebook of another assignment?"
        )

    if cells and not wrong:
        missing = [gid for gid in position if gid not in last]
        missing_tests = [gid for gid in missing if _is_test(kinds[gid])]
        missing_answers = [gid for gid in missing if _is_answer(kinds[gid])]
        if missing_tests:
            notes.append(f"Test cells missing from your notebook were put back: {_list(missing_tests)}.")
        if missing_answers:
            notes.append(
                f"Your notebook has no answer cell {_list(missing_answers)}: graded as not answered."
            )
        edited = [
            gid
            for gid in fixed
            if gid in last and _is_test(kinds[gid]) and cells[last[gid]].source != kinds[gid].source
        ]
        if edited:
            notes.append(f"Test cells you changed were graded as released: {_list(edited)}.")
        moved = _out_of_order([position[gid] for gid in known])
        if moved:
            notes.append(
                "Cells were out of the assignment's order and were put back in place: "
                f"{_list([release_ids[p] for p in sorted(moved)])}."
            )
        if duplicates:
            notes.append(
                f"Cells that appear more than once: {_list(sorted(duplicates))}; the last copy was graded."
            )

    out = nbformat.v4.new_notebook(metadata=copy.deepcopy(release.metadata))
    out.nbformat, out.nbformat_minor = 4, max(5, release.get("nbformat_minor", 5))

    def add_extras(key: str | None) -> None:
        for extra in attached.get(key, []):
            make = {
                "code": nbformat.v4.new_code_cell,
                "markdown": nbformat.v4.new_markdown_cell,
                "raw": nbformat.v4.new_raw_cell,
            }[extra.cell_type]
            out.cells.append(make(extra.source, id=_new_id()))

    add_extras(None)
    for cell in release.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if not gid:
            continue  # unmarked release cells: the student's own copies stand in for them
        new = copy.deepcopy(cell)
        new["id"] = cell.get("id") or _new_id()
        if new.cell_type == "code":
            new.outputs, new.execution_count = [], None
        if _is_answer(cell) and gid in last:
            new.source = cells[last[gid]].source
        out.cells.append(new)
        add_extras(gid)

    ids = set()
    for cell in out.cells:  # ids unique, whatever the student's notebook held
        while cell["id"] in ids:
            cell["id"] = _new_id()
        ids.add(cell["id"])
    return Normalized(out, notes, wrong)


def notes_cell(notes: list[str]) -> NotebookNode:
    """A markdown cell that tells the student what the grader repaired."""
    body = "\n".join(f"- {note}" for note in notes)
    return nbformat.v4.new_markdown_cell(f"**Notes from the grader**\n\n{body}", id=_new_id())


# --------------------------------------------------------------------------- flags for the instructor

_FLAGS = {
    "grading harness": r"genlib\.testing|from\s+genlib\s+import\s+testing|\b_T\.",
    "python internals": (
        r"sys\.modules|__code__|__globals__|__builtins__|\bbuiltins\b|importlib|sys\._getframe|\binspect\."
    ),
    "files": r"\bopen\(|pathlib|os\.(listdir|walk|scandir|remove|unlink|rename|chdir|makedirs)|shutil|glob\.",
    "processes": r"subprocess|os\.(system|popen|fork|kill|_exit|exec)|multiprocessing|signal\.",
    "network": r"\bsocket\b|urllib|requests|http\.client",
    "native code": r"\bctypes\b|\bcffi\b",
    "notebook machinery": r"displayhook|get_ipython|\bIPython\b",
}


def flags(cells: list[Cell], release: NotebookNode) -> list[str]:
    """Names of the patterns in :data:`_FLAGS` found in the student's own code cells."""
    fixed = {
        c.metadata["nbgrader"]["grade_id"]
        for c in release.cells
        if c.metadata.get("nbgrader", {}).get("grade_id") and not _is_answer(c)
    }
    code = "\n".join(c.source for c in cells if c.cell_type == "code" and c.grade_id not in fixed)
    return [name for name, pattern in _FLAGS.items() if re.search(pattern, code)]
