"""Autograding end to end, through nbgrader itself, in a temporary course directory.

For every assignment in ``solutions/``: the release in ``exercises/`` equals a fresh
``nbgrader generate_assignment`` and leaks no solution or hidden test; the solution earns full
marks and the untouched release earns zero. With the sample submissions, typical
wrong, broken and dishonest submissions (``tests/submissions/<assignment>.py``) earn exactly the
points they should, and the student is told why.
"""

from __future__ import annotations

import nbformat
import pytest

from tests.nbgrader_course import ROOT, Course, assignments, grade_ids, solution_code, with_answers
from tests.submissions import SOLVED, load

pytestmark = pytest.mark.slow


def _grade(assignment: str, where) -> Course:
    """Release ``assignment`` in a fresh course and autograde the solution, the blank release
    and the sample submissions, in one nbgrader run."""
    course = Course.create(where)
    released = course.release(assignment)
    solved = {
        c.metadata["nbgrader"]["grade_id"]: solution_code(c.source)
        for c in course.source(assignment).cells
        if c.metadata.get("nbgrader", {}).get("solution")
    }
    course.submit("solution", assignment, with_answers(released, solved))
    course.submit("blank", assignment, released)
    for sub in load(assignment):
        answers = {k: solved[k] if v == SOLVED else v for k, v in sub.answers.items()}
        course.submit(sub.student, assignment, with_answers(released, answers))
    course.autograde(assignment)
    return course


@pytest.fixture(scope="session")
def graded(tmp_path_factory):
    """``graded(assignment)`` -> the autograded course, graded once per session."""
    courses: dict[str, Course] = {}

    def get(assignment: str) -> Course:
        if assignment not in courses:
            courses[assignment] = _grade(assignment, tmp_path_factory.mktemp(assignment))
        return courses[assignment]

    return get


def _cells(nb: nbformat.NotebookNode) -> list[tuple[str, str, dict]]:
    return [(c.cell_type, c.source, c.metadata.get("nbgrader", {})) for c in nb.cells]


@pytest.mark.parametrize("assignment", assignments())
def test_release_equals_a_fresh_generation(assignment, tmp_path):
    fresh = Course.create(tmp_path).release(assignment)
    committed = nbformat.read(ROOT / "exercises" / assignment / f"{assignment}.ipynb", as_version=4)
    assert _cells(committed) == _cells(fresh), (
        f"exercises/{assignment} is stale: run `make release` and commit the result"
    )


@pytest.mark.parametrize("assignment", assignments())
def test_release_leaks_no_solution_or_hidden_test(assignment):
    text = (ROOT / "exercises" / assignment / f"{assignment}.ipynb").read_text()
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "HIDDEN TESTS"):
        assert marker not in text
    source = nbformat.read(ROOT / "solutions" / assignment / f"{assignment}.ipynb", as_version=4)
    released = nbformat.read(ROOT / "exercises" / assignment / f"{assignment}.ipynb", as_version=4)
    released_code = "\n".join(c.source for c in released.cells if c.cell_type == "code")
    from tests.nbgrader_course import SOLUTION_REGION

    for cell in source.cells:
        for region in SOLUTION_REGION.findall(cell.source):
            for line in region.splitlines():
                if len(line.strip()) > 25:  # a line of solution code, not a bare `return x`
                    assert line.strip() not in released_code, f"solution line leaked: {line.strip()}"
        if "BEGIN HIDDEN TESTS" in cell.source:
            hidden = cell.source.split("### BEGIN HIDDEN TESTS")[1].split("### END HIDDEN TESTS")[0]
            for line in hidden.splitlines():
                if len(line.strip()) > 25:
                    assert line.strip() not in released_code, f"hidden test leaked: {line.strip()}"


@pytest.mark.parametrize("assignment", assignments())
def test_solution_gets_full_marks(graded, assignment):
    course = graded(assignment)
    scores = course.scores("solution", assignment)
    released = course.released(assignment)
    assert len(grade_ids(released, kind="tests")) >= 4
    failed = {k: v for k, v in scores.items() if k != "total" and v == 0}
    assert not failed, f"the solution lost points in {sorted(failed)}"
    total = _max_score(course, assignment)
    assert scores["total"] == total > 0


@pytest.mark.parametrize("assignment", assignments())
def test_release_gets_zero(graded, assignment):
    course = graded(assignment)
    assert course.scores("blank", assignment)["total"] == 0


def _max_score(course: Course, assignment: str) -> float:
    return sum(
        c.metadata["nbgrader"]["points"]
        for c in course.source(assignment).cells
        if c.metadata.get("nbgrader", {}).get("grade")
    )


def _output_text(cell: nbformat.NotebookNode) -> str:
    parts = []
    for out in cell.get("outputs", []):
        parts.append(out.get("text", ""))
        parts.append(out.get("evalue", ""))
        parts.append(out.get("ename", ""))
        parts.extend(out.get("traceback", []))
        parts.append(str(out.get("data", {}).get("text/plain", "")))
    return "\n".join(parts)


def _submission_cases():
    return [pytest.param(a, s, id=f"{a}-{s.student}") for a in assignments() for s in load(a)]


@pytest.mark.parametrize(("assignment", "submission"), _submission_cases())
def test_submission_earns_what_it_should(graded, assignment, submission):
    course = graded(assignment)
    scores = course.scores(submission.student, assignment)
    source = course.source(assignment)
    points = {
        c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"]["points"]
        for c in source.cells
        if c.metadata.get("nbgrader", {}).get("grade")
    }
    expected = {
        grade_id: submission.scores.get(
            grade_id, points[grade_id] if grade_id in submission.full_marks else 0
        )
        for grade_id in points
    }
    got = {k: v for k, v in scores.items() if k != "total"}
    assert got == expected
    assert 0 < scores["total"] < sum(points.values())

    autograded = {
        c.metadata.get("nbgrader", {}).get("grade_id"): c
        for c in course.autograded(submission.student, assignment).cells
    }
    for grade_id, snippets in submission.feedback.items():
        shown = _output_text(autograded[grade_id])
        for snippet in snippets:
            assert snippet in shown, f"{grade_id}: the student is not told {snippet!r}:\n{shown}"
    # nbgrader put the original tests back, whatever the student did to them.
    original = {c.metadata["nbgrader"]["grade_id"]: c.source for c in course.released(assignment).cells}
    for grade_id in points:
        if "HIDDEN" not in autograded[grade_id].source:
            assert autograded[grade_id].source == original[grade_id]
