"""The instructor's path end to end, through the ``course`` tooling and nbgrader itself.

One temporary course releases an assignment, collects the crafted submissions of
``tests/crafted_submissions.py`` from a folder, and grades them all with two worker processes.
Every crafted case must get exactly its expected points per test cell, its status, and the
message the student sees -- and no case may disturb the grading of the others (the solution in
the same run earns full marks). Then: feedback without hidden tests, ``grades.csv``, the summary,
grading one by one equals grading in parallel, and a worker that overruns is replaced.
"""

from __future__ import annotations

import csv
import json
import shutil

import nbformat
import pytest

from genlib.course.autograde import autograde, load_report
from genlib.course.collect import collect
from genlib.course.course import Course
from genlib.course.feedback import generate_feedback, leaked_lines, page_text, secret_lines
from genlib.course.gradebook import assignment_scores
from genlib.course.grades import export_grades
from genlib.course.release import release
from genlib.course.sandbox import Limits
from genlib.course.summary import write_summary
from tests.crafted_submissions import Assignment, crafted
from tests.nbgrader_course import ROOT

pytestmark = pytest.mark.slow

ASSIGNMENT = "ch00_foundations"
#: Small limits keep the slow cases short: a 15-s cell timeout, 2 GiB per kernel.
LIMITS = Limits(cell_timeout=15, memory_mb=2048, notebook_seconds=300)
#: Graded again one at a time, to compare with the parallel run.
SERIAL = ("solved", "exception", "kills_python", "deleted_tests", "duplicate_ids", "invalid_json")


def _new_course(where) -> Course:
    where.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "nbgrader_config.py", where / "nbgrader_config.py")
    shutil.copytree(ROOT / "solutions" / ASSIGNMENT, where / "solutions" / ASSIGNMENT)
    return Course.open(where)


@pytest.fixture(scope="module")
def assignment() -> Assignment:
    return Assignment(ASSIGNMENT)


@pytest.fixture(scope="module")
def cases(assignment):
    return {case.student: case for case in crafted(assignment)}


@pytest.fixture(scope="module")
def released(tmp_path_factory, cases):
    """A course with the assignment released and the crafted submissions collected."""
    course = _new_course(tmp_path_factory.mktemp("released"))
    release(course, ASSIGNMENT)
    inbox = course.root.parent / "inbox"
    inbox.mkdir()
    for case in cases.values():
        (inbox / f"{case.student}.ipynb").write_bytes(case.content)
    items = collect(course, ASSIGNMENT, inbox)
    assert sorted(i.student for i in items if i.status == "new") == sorted(cases)
    return course


@pytest.fixture(scope="module")
def graded(released, tmp_path_factory):
    """The crafted submissions graded with two workers: (course, rows by student)."""
    course = Course.open(shutil.copytree(released.root, tmp_path_factory.mktemp("parallel") / "course"))
    rows = autograde(course, ASSIGNMENT, workers=2, limits=LIMITS, progress=False)
    return course, {row["student"]: row for row in rows}


def _outputs(course: Course, student: str) -> dict[str, str]:
    """Text shown in each cell of the autograded notebook (by grade id; ``notes`` for the grader's notes)."""
    path = course.autograded_dir / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    shown: dict[str, str] = {}
    for cell in nbformat.read(path, as_version=4).cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id is None and cell.source.startswith("**Notes from the grader**"):
            shown["notes"] = cell.source
        if grade_id is None:
            continue
        parts = []
        for out in cell.get("outputs", []):
            parts += [out.get("text", ""), out.get("ename", ""), str(out.get("evalue", ""))]
            parts.append(str(out.get("data", {}).get("text/plain", "")))
        shown[grade_id] = "\n".join(parts)
    return shown


def _case_ids():
    return [case.student for case in crafted(Assignment(ASSIGNMENT))]


@pytest.mark.parametrize("student", _case_ids())
def test_crafted_submission(graded, assignment, cases, student):
    course, rows = graded
    case, row = cases[student], rows[student]
    assert row["status"] == case.status, row
    assert row["cells"] == assignment.expected(case.broken), case.description
    assert row["score"] == sum(assignment.expected(case.broken).values())
    # The course gradebook holds what the row says.
    scores = assignment_scores(course.db_url, course.course_id, ASSIGNMENT)["students"][student]
    assert {cell: score for (_, cell), score in scores["cells"].items()} == row["cells"]

    if case.status == "graded":
        shown = _outputs(course, student)
        for where, snippets in case.messages.items():
            for snippet in snippets:
                assert snippet in shown.get(where, ""), f"{where} does not tell the student {snippet!r}"
        # nbgrader restored every test cell: visible ones equal the release, hidden ones hold the tests.
        released = {c.metadata["nbgrader"].get("grade_id"): c.source for c in assignment.release.cells}
        source = {c.metadata["nbgrader"].get("grade_id"): c.source for c in assignment.source.cells}
        autograded = nbformat.read(
            course.autograded_dir / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4
        )
        for cell in autograded.cells:
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
            if grade_id in assignment.points:
                expected = (
                    source[grade_id] if "BEGIN HIDDEN TESTS" in source[grade_id] else released[grade_id]
                )
                assert cell.source == expected, f"{grade_id} was not restored"
    else:
        assert not (course.autograded_dir / student / ASSIGNMENT).exists()
        for snippet in case.messages.get("message", ()):
            assert snippet in row["message"]


def test_the_solution_in_the_same_run_gets_full_marks(graded, assignment):
    _, rows = graded
    assert rows["solved"]["score"] == assignment.total
    assert all(row["status"] in ("graded", "not gradable") for row in rows.values())


def test_nothing_written_into_the_course(graded):
    course, _ = graded
    assert not list(course.root.rglob("escaped.txt")), "a submission wrote into the course directory"
    report = json.loads((course.reports_dir / ASSIGNMENT / "autograde.json").read_text())
    assert "files" in report["reads_outside"]["flags"]
    assert "notebook machinery" in report["forged_credit"]["flags"]


def test_feedback_shows_messages_but_no_hidden_tests(graded, cases):
    course, rows = graded
    written = {row["student"]: row for row in generate_feedback(course, ASSIGNMENT)}
    assert sorted(written) == sorted(rows)
    source = nbformat.read(course.source_dir / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    secret = secret_lines(source)
    assert len(secret) > 10  # the check below is not vacuous
    for student in rows:
        page = (course.feedback_dir / student / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text()
        assert leaked_lines(page, secret) == [], student
        assert "BEGIN HIDDEN TESTS" not in page
    text = page_text((course.feedback_dir / "kills_python" / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text())
    assert "Python stopped while running this cell" in text
    assert "hidden tests: not shown" in text
    text = page_text((course.feedback_dir / "deleted_tests" / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text())
    assert "Test cells missing from your notebook were put back" in text
    text = page_text((course.feedback_dir / "invalid_json" / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text())
    assert "could not be graded" in text and "not valid notebook JSON" in text
    assert written["invalid_json"]["status"] == "not gradable"


def test_feedback_of_plain_nbgrader_would_show_hidden_tests(graded):
    """What the feedback step guards against: nbgrader's own feedback shows the hidden tests."""
    course, _ = graded
    course.nbgrader("generate_feedback", ASSIGNMENT, "--student", "solved", "--force")
    source = nbformat.read(course.source_dir / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    page = (course.feedback_dir / "solved" / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text()
    assert leaked_lines(page, secret_lines(source))
    generate_feedback(course, ASSIGNMENT, ["solved"])  # and ours, written again, does not
    page = (course.feedback_dir / "solved" / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text()
    assert leaked_lines(page, secret_lines(source)) == []


def test_grades_csv(graded, assignment):
    course, rows = graded
    from nbgrader.api import Gradebook

    with Gradebook(course.db_url, course.course_id) as gradebook:
        gradebook.update_or_create_student("absent")  # enrolled, handed in nothing
    path = export_grades(course)
    assert path == course.root / "grades.csv"
    with open(path, newline="") as handle:
        table = list(csv.DictReader(handle))
    assert set(table[0]) == {
        "student_id",
        "assignment",
        "score",
        "max_score",
        "percent",
        "late_penalty",
        "status",
        "timestamp",
    }
    got = {r["student_id"]: r for r in table}
    assert sorted(got) == sorted([*rows, "absent"])
    for student, row in rows.items():
        assert float(got[student]["score"]) == row["score"]
        assert float(got[student]["max_score"]) == assignment.total
        assert got[student]["status"] == row["status"]
        assert float(got[student]["percent"]) == pytest.approx(
            100 * row["score"] / assignment.total, abs=0.05
        )
    assert got["absent"]["status"] == "missing" and float(got["absent"]["score"]) == 0


def test_summary(graded, assignment):
    course, rows = graded
    summary = write_summary(course, ASSIGNMENT)
    assert summary["submissions"] == len(rows)
    assert summary["totals"] == sorted(row["score"] for row in rows.values())
    assert summary["full_marks"] == sum(1 for row in rows.values() if row["score"] == assignment.total)
    for part in summary["parts"]:
        points = assignment.points[part["part"]]
        full = sum(1 for row in rows.values() if row["cells"][part["part"]] == points)
        assert part["pass_rate"] == pytest.approx(full / len(rows))
        assert part["points"] == points
    assert [p["part"] for p in summary["parts"]] == list(assignment.points)
    png = (course.reports_dir / ASSIGNMENT / "summary.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    markdown = (course.reports_dir / ASSIGNMENT / "summary.md").read_text()
    first = summary["parts"][0]
    assert f"| {first['part']} | {first['points']:g} | {100 * first['pass_rate']:.0f}% |" in markdown
    with open(course.reports_dir / ASSIGNMENT / "parts.csv", newline="") as handle:
        assert [r["part"] for r in csv.DictReader(handle)] == list(assignment.points)


def test_serial_grading_equals_parallel(graded, released, tmp_path_factory):
    parallel_course, parallel = graded
    course = Course.open(shutil.copytree(released.root, tmp_path_factory.mktemp("serial") / "course"))
    rows = autograde(course, ASSIGNMENT, workers=1, limits=LIMITS, students=list(SERIAL), progress=False)
    assert [r["student"] for r in rows] == sorted(SERIAL)
    for row in rows:
        other = parallel[row["student"]]
        for key in ("status", "score", "cells", "notes", "flags", "message", "restarts"):
            assert row[key] == other[key], (row["student"], key)
    serial_scores = assignment_scores(course.db_url, course.course_id, ASSIGNMENT)["students"]
    parallel_scores = assignment_scores(parallel_course.db_url, parallel_course.course_id, ASSIGNMENT)[
        "students"
    ]
    assert sorted(serial_scores) == sorted(SERIAL)
    for student in SERIAL:
        assert serial_scores[student]["cells"] == parallel_scores[student]["cells"]
    # One submission per student in the parallel gradebook, none lost or doubled by the merge.
    assert sorted(parallel_scores) == sorted(parallel)


def test_overrunning_worker_is_replaced_and_unchanged_work_is_skipped(graded, tmp_path_factory, assignment):
    source, _ = graded
    course = Course.open(shutil.copytree(source.root, tmp_path_factory.mktemp("overrun") / "course"))
    assert autograde(course, ASSIGNMENT, limits=LIMITS, progress=False) == []  # nothing changed
    rows = autograde(
        course,
        ASSIGNMENT,
        students=["ignores_interrupt", "solved"],
        force=True,
        limits=LIMITS,
        student_timeout=10,
        progress=False,
    )
    by = {row["student"]: row for row in rows}
    assert by["ignores_interrupt"]["status"] == "error"
    assert "longer than 10 s" in by["ignores_interrupt"]["message"]
    assert by["ignores_interrupt"]["score"] == 0
    assert by["solved"]["status"] == "graded" and by["solved"]["score"] == assignment.total
    assert load_report(course, ASSIGNMENT)["ignores_interrupt"]["status"] == "error"
    assert (
        "longer than 10 s" in (course.reports_dir / ASSIGNMENT / "logs" / "ignores_interrupt.log").read_text()
    )
    # A submission handed in again is graded again, and so is one whose grading failed; no other.
    target = course.submitted_dir / "exception" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    target.write_bytes(json.dumps(assignment.notebook()).encode())
    again = {r["student"]: r for r in autograde(course, ASSIGNMENT, limits=LIMITS, progress=False)}
    assert sorted(again) == ["exception", "ignores_interrupt"]
    assert again["exception"]["score"] == assignment.total
    assert again["ignores_interrupt"]["status"] == "graded"
