"""Autograding end to end, through nbgrader itself, in a temporary course directory.

For every assignment in ``solutions/``: the release in ``exercises/`` equals a fresh
``nbgrader generate_assignment`` and leaks no solution or hidden test; the solution earns full
marks and the untouched release earns zero. For the assignments listed in ``SUBMISSIONS``, typical
wrong, broken and dishonest submissions earn exactly the points they should, and the student is
told why.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import nbformat
import pytest

from tests.nbgrader_course import ROOT, Course, assignments, grade_ids, solution_code, with_answers

pytestmark = pytest.mark.slow


@dataclass
class Submission:
    """A student's notebook: answer cells (by grade_id) replaced, and the points it must earn.

    ``answers`` may also replace test cells: nbgrader must restore those from the source.
    ``scores`` lists the expected points of the graded cells named; the rest must earn zero, or
    full marks for those in ``full_marks``. ``feedback`` maps a graded cell to text its output
    must show the student.
    """

    student: str
    answers: dict[str, str]
    scores: dict[str, float] = field(default_factory=dict)
    full_marks: tuple[str, ...] = ()
    feedback: dict[str, tuple[str, ...]] = field(default_factory=dict)


CH00_SOLVED = "ch00_foundations"  # marker: an answer taken from the solution notebook

SUBMISSIONS: dict[str, list[Submission]] = {
    "ch00_foundations": [
        Submission(
            "cheater",
            {
                "part1_answer": "from genlib.sampling import sample_categorical",
                "part2_answer": CH00_SOLVED,
                "part3_answer": (
                    "import genlib.estimators as mine\n"
                    "def gaussian_mle(x, weights=None):\n"
                    "    return mine.gaussian_mle(x, weights=weights)"
                ),
                "part4_answer": (
                    "import genlib.divergences\n"  # the reference under the student's name
                    "kl_categorical = genlib.divergences.kl_categorical"
                ),
                "part5_answer": (
                    "from genlib.divergences import kl_monte_carlo as _kl\n"
                    "def kl_monte_carlo(x, log_p, log_q):\n"
                    "    return _kl(x, log_p, log_q)"
                ),
            },
            full_marks=("part2_visible", "part2_hidden"),
            feedback={
                "part1_visible": ("genlib's own function",),
                "part3_visible": ("genlib.estimators.gaussian_mle", "reference solution"),
                "part5_hidden": ("genlib.divergences.kl_monte_carlo",),
            },
        ),
        Submission(
            "mistakes",
            {
                # torch.multinomial samples the right distribution, but not by thresholding the
                # given uniforms: the statistics pass, the draw-for-draw comparisons do not.
                "part1_answer": (
                    "def sample_categorical(probs, num_samples, generator=None):\n"
                    "    flat = probs.reshape(-1, probs.shape[-1])\n"
                    "    draws = torch.multinomial(\n"
                    "        flat, num_samples, replacement=True, generator=generator\n"
                    "    )\n"
                    "    return draws.reshape(*probs.shape[:-1], num_samples)"
                ),
                # Forgets minlength: right unless the last categories never occur.
                "part2_answer": (
                    "def categorical_mle(x, num_categories, weights=None):\n"
                    "    if weights is None:\n"
                    "        counts = torch.bincount(x).float()\n"
                    "    else:\n"
                    "        counts = torch.zeros(num_categories, dtype=weights.dtype)\n"
                    "        counts = counts.index_add_(0, x, weights)\n"
                    "    return counts / counts.sum()"
                ),
                # The unbiased covariance (divides by N - 1) is not the ML estimate.
                "part3_answer": (
                    "def gaussian_mle(x, weights=None):\n"
                    "    w = torch.ones(x.shape[0], dtype=x.dtype) if weights is None else weights\n"
                    "    mean = (w[:, None] * x).sum(0) / w.sum()\n"
                    "    return mean, torch.cov(x.T, aweights=w)"
                ),
                # 0 * log 0 gives nan.
                "part4_answer": ("def kl_categorical(p, q):\n    return (p * (p / q).log()).sum(-1)"),
                # The sign is the wrong way round.
                "part5_answer": (
                    "def kl_monte_carlo(x, log_p, log_q):\n    return (log_q(x) - log_p(x)).mean()"
                ),
            },
            scores={"part1_statistics": 1, "part2_visible": 1, "part4_visible": 1},
            feedback={
                "part2_hidden": ("should have shape (9,)", "minlength"),
                "part3_visible": ("N - 1",),
                "part4_hidden": ("NaN", "torch.xlogy"),
            },
        ),
        Submission(
            "broken",
            {
                "part1_answer": "def sample_categorical(probs, num_samples, generator=None)\n    return 0",
                "part2_answer": (
                    "def categorical_mle(x, num_categories, weights=None):\n"
                    "    while True:\n"
                    "        try:\n"
                    "            pass\n"
                    "        except Exception:\n"
                    "            pass"
                ),
                "part3_answer": CH00_SOLVED,
                "part4_answer": "def kl_categorical(p, q):\n    return torch.zeros(p.shape[:-1])",
                "part4_visible": "pass  # the student deleted the test",
                "part4_hidden": "assert True",
                "part5_answer": "def kl_monte_carlo(x, log_p, log_q):\n    import sys\n    sys.exit(1)",
            },
            full_marks=("part3_visible", "part3_hidden"),
            feedback={
                "part1_visible": ("NameError",),
                "part2_visible": ("ran longer than",),
                "part4_visible": ("KL(p || q)",),
                "part5_visible": ("SystemExit",),
            },
        ),
    ],
}


@pytest.fixture(scope="module", params=assignments())
def graded(request, tmp_path_factory):
    """(assignment, course) after releasing the assignment and autograding every submission."""
    assignment = request.param
    course = Course.create(tmp_path_factory.mktemp(assignment))
    released = course.release(assignment)
    source = course.source(assignment)
    solved = {
        c.metadata["nbgrader"]["grade_id"]: solution_code(c.source)
        for c in source.cells
        if c.metadata.get("nbgrader", {}).get("solution")
    }
    course.submit("solution", assignment, with_answers(released, solved))
    course.submit("blank", assignment, released)
    for sub in SUBMISSIONS.get(assignment, []):
        answers = {k: solved[k] if v == assignment else v for k, v in sub.answers.items()}
        course.submit(sub.student, assignment, with_answers(released, answers))
    course.autograde(assignment)
    return assignment, course


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


def test_solution_gets_full_marks(graded):
    assignment, course = graded
    scores = course.scores("solution", assignment)
    released = course.released(assignment)
    assert len(grade_ids(released, kind="tests")) >= 4
    failed = {k: v for k, v in scores.items() if k != "total" and v == 0}
    assert not failed, f"the solution lost points in {sorted(failed)}"
    total = _max_score(course, assignment)
    assert scores["total"] == total > 0


def test_release_gets_zero(graded):
    assignment, course = graded
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
    return [pytest.param(a, s, id=f"{a}-{s.student}") for a, subs in SUBMISSIONS.items() for s in subs]


@pytest.mark.parametrize(("assignment", "submission"), _submission_cases())
def test_submission_earns_what_it_should(graded, assignment, submission):
    graded_assignment, course = graded
    if graded_assignment != assignment:
        pytest.skip("graded in the fixture of its own assignment")
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
