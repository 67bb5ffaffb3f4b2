r"""``course collect A SOURCE``: put handed-in notebooks where nbgrader expects them.

``SOURCE`` is a folder or a ``.zip`` (an LMS "download all submissions"). Every ``.ipynb`` in it
is mapped to a student id by the first rule that matches its path (relative to ``SOURCE``, with
``/`` separators), and written to ``submitted/<student>/A/<notebook>.ipynb``:

========== ============================================================= =========================
rule       path looks like                                               student id
========== ============================================================= =========================
pattern    your ``--pattern`` regex, with a group ``(?P<student>...)``   that group
canvas     ``smithjane_LATE_12345_67890_<file>`` (``LATE_`` optional)    ``smithjane_12345``
moodle     ``Jane Smith_12345_assignsubmission_file_/<file>`` (or ``_``) ``Jane_Smith_12345``
blackboard ``<assignment>_jsmith_attempt_2024-03-01-10-00-00_<file>``    ``jsmith`` (+ timestamp)
folder     ``<student>/<anything>/<file>.ipynb``                         ``<student>``
file       ``<student>.ipynb``, ``<student>_A.ipynb``, ``A-<student>.ipynb`` ``<student>``
========== ============================================================= =========================

Ids keep letters, digits and ``_ . @ + -``; any other run of characters becomes ``_``. When a
student has several notebooks, the one named like the assignment's notebook wins, then the
latest (LMS timestamp, then Canvas resubmission number ``-1``, ``-2``..., then file time); the
others are reported as ignored. A file no rule maps is reported, never guessed. Blackboard's
timestamp is written to ``timestamp.txt`` (nbgrader uses it for late penalties). An unchanged
submission is not rewritten, so it is not graded again.

A zip whose entries all sit in one top-level folder is read as if that folder were the zip.
Zip members are read in memory: no path from the archive is ever used to write a file.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from genlib.course.course import STUDENT_ID, Course, CourseError

MAX_BYTES = 50 * 1024 * 1024

CANVAS = re.compile(r"^(?P<name>[a-z][a-z0-9-]*)_(?:LATE_)?(?P<uid>\d+)_(?P<sub>\d+)_(?P<file>.+)$")
MOODLE = re.compile(r"^(?P<name>[^/]+?)_(?P<uid>\d+)_assignsubmission_[a-z]+_(?:/.*/|/|_)?(?P<file>[^/]+)$")
BLACKBOARD = re.compile(
    r"^(?P<assignment>[^/]+?)_(?P<student>[^_/]+)_attempt_"
    r"(?P<ts>\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2})(?:_(?P<file>[^/]+))?$"
)
RESUBMISSION = re.compile(r"-(\d+)$")


@dataclass
class Item:
    """One file found in the source and what became of it."""

    path: str
    student: str | None = None
    rule: str = ""
    notebook: str | None = None
    status: str = ""  # "new", "updated", "unchanged", "ignored", "unmapped", "skipped"
    reason: str = ""
    timestamp: dt.datetime | None = None
    attempt: int = 0
    mtime: float = 0.0
    read: Callable[[], bytes] = field(default=lambda: b"", repr=False)


def clean_id(raw: str) -> str:
    """A student id made safe as a folder name (see the module docstring)."""
    text = re.sub(r"[^A-Za-z0-9_.@+-]+", "_", raw.strip()).strip("._-")
    return text[:100]


def _file_rule(name: str, assignment: str) -> str | None:
    stem = PurePosixPath(name).stem
    rest = re.sub(re.escape(assignment), "", stem, flags=re.I)
    rest = re.sub(r"\s*\(\d+\)$", "", rest)  # "alice (1).ipynb": a browser's second download
    return rest.strip(" _-.") or None


def map_path(path: str, assignment: str, pattern: re.Pattern[str] | None = None) -> Item:
    """Apply the rules to one relative path (``/`` separators); ``student`` is None if none matched."""
    item = Item(path)
    parts = PurePosixPath(path).parts
    name = parts[-1]
    if pattern is not None:
        match = pattern.search(path)
        if match and match.groupdict().get("student"):
            item.student, item.rule = match.group("student"), "pattern"
        else:
            item.reason = "does not match --pattern"
            return item
    elif m := CANVAS.match(name):
        item.student, item.rule = f"{m['name']}_{m['uid']}", "canvas"
        if resub := RESUBMISSION.search(PurePosixPath(m["file"]).stem):
            item.attempt = int(resub.group(1))
    elif m := MOODLE.match(path):
        item.student, item.rule = f"{m['name']}_{m['uid']}", "moodle"
    elif m := BLACKBOARD.match(name):
        item.student, item.rule = m["student"], "blackboard"
        item.timestamp = dt.datetime.strptime(m["ts"], "%Y-%m-%d-%H-%M-%S")
    elif len(parts) >= 2:
        item.student, item.rule = parts[0], "folder"
    else:
        item.student, item.rule = _file_rule(name, assignment), "file"
        if item.student is None:
            item.reason = "the file name holds no student id (only the assignment's name)"
            return item
    student = clean_id(item.student or "")
    if not STUDENT_ID.match(student):
        item.student, item.reason = None, f"no usable student id in {path!r}"
    else:
        item.student = student
    return item


def _scan(source: Path) -> tuple[list[Item], list[Item]]:
    """Notebooks in ``source`` (folder or zip), and files skipped on the way."""
    found, skipped = [], []

    def consider(rel: str, size: int, mtime: float, read: Callable[[], bytes]) -> None:
        parts = PurePosixPath(rel).parts
        if any(p.startswith(".") or p == "__MACOSX" for p in parts):
            return
        if not rel.lower().endswith(".ipynb"):
            skipped.append(Item(rel, status="skipped", reason="not a notebook"))
        elif size > MAX_BYTES:
            skipped.append(Item(rel, status="skipped", reason=f"larger than {MAX_BYTES // 2**20} MB"))
        else:
            found.append(Item(rel, mtime=mtime, read=read))

    if source.is_dir():
        for path in sorted(source.rglob("*")):
            if path.is_file() and not path.is_symlink():
                rel = path.relative_to(source).as_posix()
                stat = path.stat()
                consider(rel, stat.st_size, stat.st_mtime, path.read_bytes)
    elif zipfile.is_zipfile(source):
        archive = zipfile.ZipFile(source)
        members = [i for i in archive.infolist() if not i.is_dir()]
        names = [PurePosixPath(i.filename.replace("\\", "/").lstrip("/")) for i in members]
        tops = {n.parts[0] for n in names if len(n.parts) > 1 and n.parts[0] != "__MACOSX"}
        wrapped = len(tops) == 1 and all(len(n.parts) > 1 for n in names if n.parts[0] != "__MACOSX")
        for info, name in zip(members, names, strict=True):
            rel = (
                PurePosixPath(*name.parts[1:]).as_posix()
                if wrapped and len(name.parts) > 1
                else name.as_posix()
            )
            if ".." in PurePosixPath(rel).parts:
                skipped.append(Item(rel, status="skipped", reason="unsafe path in the archive"))
                continue
            mtime = dt.datetime(*info.date_time).timestamp()
            consider(rel, info.file_size, mtime, lambda info=info: archive.read(info))
    else:
        raise CourseError(f"{source} is neither a folder nor a zip file")
    return found, skipped


def collect(
    course: Course,
    assignment: str,
    source: str | Path,
    *,
    pattern: str | None = None,
    dry_run: bool = False,
) -> list[Item]:
    """Collect the notebooks in ``source`` as submissions of ``assignment`` (see the module docstring).

    Returns every file considered, with its student, rule and status; also written to
    ``reports/<assignment>/collect.csv`` (unless ``dry_run``).
    """
    notebooks = list(course.release_notebooks(assignment))
    regex = re.compile(pattern) if pattern else None
    if regex is not None and "student" not in regex.groupindex:
        raise CourseError("--pattern needs a named group (?P<student>...)")
    found, skipped = _scan(Path(source))
    by_student: dict[str, list[Item]] = {}
    unmapped = []
    for raw in found:
        item = map_path(raw.path, assignment, regex)
        item.mtime, item.read = raw.mtime, raw.read
        if item.student is None:
            item.status = "unmapped"
            unmapped.append(item)
        else:
            by_student.setdefault(item.student, []).append(item)

    chosen: list[Item] = []
    for _, items in sorted(by_student.items()):
        for notebook in notebooks:
            named = [i for i in items if notebook.lower() in PurePosixPath(i.path).name.lower()]
            pool = named or (items if len(notebooks) == 1 else [])
            if not pool:
                continue
            best = max(pool, key=lambda i: (i.timestamp or dt.datetime.min, i.attempt, i.mtime, i.path))
            best.notebook = notebook
            chosen.append(best)
        for item in items:
            if item.notebook is None:
                item.status = "ignored"
                item.reason = (
                    "another notebook of the same student was taken (named like the assignment, or newer)"
                )

    for item in chosen:
        assert item.student is not None and item.notebook is not None
        folder = course.submitted_dir / item.student / assignment
        target = folder / f"{item.notebook}.ipynb"
        data = item.read()
        if target.is_file() and target.read_bytes() == data:
            item.status = "unchanged"
            continue
        item.status = "updated" if target.exists() else "new"
        if dry_run:
            continue
        folder.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        if item.timestamp is not None:
            (folder / "timestamp.txt").write_text(item.timestamp.strftime("%Y-%m-%d %H:%M:%S.%f"))

    items = sorted(
        chosen + [i for v in by_student.values() for i in v if i.status == "ignored"] + unmapped + skipped,
        key=lambda i: i.path,
    )
    if not dry_run:
        out = course.reports_dir / assignment / "collect.csv"
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["file", "student", "rule", "notebook", "status", "reason"])
            for item in items:
                writer.writerow(
                    [item.path, item.student or "", item.rule, item.notebook or "", item.status, item.reason]
                )
    return items
