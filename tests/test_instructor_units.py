"""The instructor tooling's parts, without running notebooks: collecting (file names to student
ids, LMS zips), reading and rebuilding submissions, the partial-credit guard, hiding hidden tests
from feedback, the gradebook merge, the kernel's resource limits, and the command line."""

from __future__ import annotations

import copy
import json
import shutil
import signal
import subprocess
import sys
import warnings
import zipfile

import nbformat
import pytest

from genlib.course import _kernel_launcher
from genlib.course.cli import main, parser
from genlib.course.collect import clean_id, collect, map_path
from genlib.course.course import Course, CourseError
from genlib.course.feedback import hide_hidden_tests, leaked_lines, secret_lines
from genlib.course.sandbox import Limits, write_kernelspec
from genlib.course.submission import Cell, flags, normalize, read_submission
from tests.nbgrader_course import ROOT

A = "ch00_foundations"
RELEASE = ROOT / "exercises" / A / f"{A}.ipynb"


@pytest.fixture
def course(tmp_path) -> Course:
    """A course with the released notebook only (enough to collect)."""
    shutil.copy(ROOT / "nbgrader_config.py", tmp_path / "nbgrader_config.py")
    (tmp_path / "exercises" / A).mkdir(parents=True)
    shutil.copy(RELEASE, tmp_path / "exercises" / A / f"{A}.ipynb")
    return Course.open(tmp_path)


def release() -> nbformat.NotebookNode:
    return nbformat.read(RELEASE, as_version=4)


def cells_of(nb: nbformat.NotebookNode) -> list[Cell]:
    return [Cell(c.cell_type, c.source, c.metadata.get("nbgrader", {}).get("grade_id")) for c in nb.cells]


def grade_id(cell) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")


# --------------------------------------------------------------------------- collecting


@pytest.mark.parametrize(
    ("path", "student", "rule"),
    [
        ("smithjane_12345_67890_ch00_foundations.ipynb", "smithjane_12345", "canvas"),
        ("smithjane_LATE_12345_67891_ch00_foundations-1.ipynb", "smithjane_12345", "canvas"),
        ("Jane Smith_12345_assignsubmission_file_/ch00_foundations.ipynb", "Jane_Smith_12345", "moodle"),
        ("Jane Smith_12345_assignsubmission_file_ch00_foundations.ipynb", "Jane_Smith_12345", "moodle"),
        ("ch00_foundations_jsmith_attempt_2024-03-01-10-00-00_mine.ipynb", "jsmith", "blackboard"),
        ("alice/ch00_foundations.ipynb", "alice", "folder"),
        ("alice/sub/folder/anything.ipynb", "alice", "folder"),
        ("bob.ipynb", "bob", "file"),
        ("bob_ch00_foundations.ipynb", "bob", "file"),
        ("CH00_FOUNDATIONS-bob.ipynb", "bob", "file"),
        ("bob (1).ipynb", "bob", "file"),
        ("José Ñ.ipynb", "Jos", "file"),
    ],
)
def test_file_names_map_to_student_ids(path, student, rule):
    item = map_path(path, A)
    assert (item.student, item.rule) == (student, rule)


def test_unmappable_names_are_reported_not_guessed():
    assert map_path("ch00_foundations.ipynb", A).student is None
    assert "no student id" in map_path("ch00_foundations.ipynb", A).reason
    assert map_path("!!!.ipynb", A).student is None
    assert clean_id("  ../../etc ") == "etc"
    assert clean_id("a b/c") == "a_b_c"


def test_pattern_overrides_the_rules():
    import re

    pattern = re.compile(r"^hw_(?P<student>[a-z]+)_final")
    assert map_path("hw_zoe_final.ipynb", A, pattern).student == "zoe"
    item = map_path("bob.ipynb", A, pattern)
    assert item.student is None and "does not match" in item.reason


def test_collect_an_lms_zip(course, tmp_path):
    nb = RELEASE.read_bytes()
    archive = tmp_path / "download.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("Jane Smith_12345_assignsubmission_file_/ch00_foundations.ipynb", nb)
        zf.writestr("Jane Smith_12345_assignsubmission_file_/notes.txt", "hello")
        zf.writestr("smithjohn_23456_999_ch00_foundations.ipynb", b"old")
        zf.writestr("smithjohn_LATE_23456_1000_ch00_foundations-1.ipynb", b"new")
        zf.writestr("ch00_foundations_kim_attempt_2024-03-01-10-00-00_ch00_foundations.ipynb", nb)
        zf.writestr("__MACOSX/._ch00_foundations.ipynb", b"junk")
        zf.writestr("../evil.ipynb", b"{}")
    items = collect(course, A, archive)
    status = {(i.path, i.student): i.status for i in items}
    assert (
        status[("Jane Smith_12345_assignsubmission_file_/ch00_foundations.ipynb", "Jane_Smith_12345")]
        == "new"
    )
    assert status[("smithjohn_LATE_23456_1000_ch00_foundations-1.ipynb", "smithjohn_23456")] == "new"
    assert status[("smithjohn_23456_999_ch00_foundations.ipynb", "smithjohn_23456")] == "ignored"
    assert status[("Jane Smith_12345_assignsubmission_file_/notes.txt", None)] == "skipped"
    assert status[("../evil.ipynb", None)] == "skipped"
    assert not any("__MACOSX" in i.path for i in items)
    submitted = course.submitted_dir
    assert (submitted / "smithjohn_23456" / A / f"{A}.ipynb").read_bytes() == b"new"
    assert (submitted / "Jane_Smith_12345" / A / f"{A}.ipynb").read_bytes() == nb
    assert (submitted / "kim" / A / "timestamp.txt").read_text().startswith("2024-03-01 10:00:00")
    assert not (tmp_path / "evil.ipynb").exists() and not (course.root / "evil.ipynb").exists()
    assert (course.reports_dir / A / "collect.csv").read_text().startswith("file,student,rule")
    again = collect(course, A, archive)
    assert {i.status for i in again if i.student and i.status != "ignored"} == {"unchanged"}


def test_collect_a_wrapped_zip_and_a_folder(course, tmp_path):
    archive = tmp_path / "wrapped.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("export/alice/ch00_foundations.ipynb", b"a")
        zf.writestr("export/bob/work.ipynb", b"b")
    assert sorted(i.student for i in collect(course, A, archive)) == ["alice", "bob"]
    folder = tmp_path / "inbox"
    (folder / "carol").mkdir(parents=True)
    (folder / "carol" / "scratch.ipynb").write_bytes(b"scratch")
    (folder / "carol" / "ch00_foundations.ipynb").write_bytes(b"real")
    (folder / "dave_ch00_foundations.ipynb").write_bytes(b"dave")
    (folder / "ch00_foundations.ipynb").write_bytes(b"whose?")
    items = {i.path: i for i in collect(course, A, folder)}
    assert items["carol/ch00_foundations.ipynb"].status == "new"
    assert items["carol/scratch.ipynb"].status == "ignored"
    assert items["dave_ch00_foundations.ipynb"].student == "dave"
    assert items["ch00_foundations.ipynb"].status == "unmapped"
    assert (course.submitted_dir / "carol" / A / f"{A}.ipynb").read_bytes() == b"real"
    with pytest.raises(CourseError, match="neither a folder nor a zip"):
        collect(course, A, tmp_path / "missing")
    with pytest.raises(CourseError, match="named group"):
        collect(course, A, folder, pattern="(x)")


# --------------------------------------------------------------------------- reading submissions


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "the file is empty"),
        (b"   \n", "the file is empty"),
        (b'{"cells": [', "not valid notebook JSON (line 1, column 12"),
        (b"<!DOCTYPE html><html><body>notebook</body></html>", "web page (HTML)"),
        (b"PK\x03\x04rest", "zip archive"),
        (b"[1, 2, 3]", "not a Jupyter notebook"),
        (b'{"metadata": {}}', "not a Jupyter notebook"),
    ],
)
def test_unreadable_submissions_say_why(tmp_path, content, reason):
    path = tmp_path / "nb.ipynb"
    path.write_bytes(content)
    cells, problem = read_submission(path)
    assert cells is None and reason in problem


def test_reading_is_tolerant(tmp_path):
    assert "no file named nb.ipynb" in read_submission(tmp_path / "nb.ipynb")[1]
    raw = {
        "cells": [
            {
                "cell_type": "code",
                "source": ["a = 1\n", "b = 2"],
                "metadata": {"nbgrader": {"grade_id": "x"}},
            },
            {"cell_type": "markdown", "source": "text", "id": "same"},
            {"cell_type": "markdown", "source": "more", "id": "same"},
            {"cell_type": "weird", "source": "?"},
            "not a cell",
            {"cell_type": "code", "source": 42},
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (tmp_path / "nb.ipynb").write_text(json.dumps(raw))
    cells, problem = read_submission(tmp_path / "nb.ipynb")
    assert problem is None
    assert cells == [Cell("code", "a = 1\nb = 2", "x"), Cell("markdown", "text"), Cell("markdown", "more")]


# --------------------------------------------------------------------------- rebuilding on the release


def test_a_clean_notebook_is_rebuilt_unchanged():
    nb = release()
    out = normalize(cells_of(nb), nb)
    assert out.notes == [] and not out.wrong_assignment
    assert [(c.cell_type, c.source, c.metadata) for c in out.notebook.cells] == [
        (c.cell_type, c.source, c.metadata) for c in nb.cells
    ]


def test_moved_deleted_edited_and_duplicated_cells_are_repaired():
    nb = release()
    cells = cells_of(nb)
    tests = [c for c in cells if c.grade_id and c.grade_id.endswith("visible")]
    answers = [c for c in cells if c.grade_id and c.grade_id.endswith("answer")]
    student = copy.deepcopy(cells)
    index = {c.grade_id: i for i, c in enumerate(student)}
    student[index[tests[1].grade_id]] = Cell("code", "print('passes')", tests[1].grade_id)  # edited
    student.insert(index[answers[0].grade_id] + 1, Cell("code", "def helper():\n    return 1"))  # added
    student.insert(0, student.pop(index[tests[0].grade_id] + 1))  # moved to the top
    student = [c for c in student if c.grade_id != tests[2].grade_id]  # deleted
    wrong_copy = Cell("code", "def broken(): pass", answers[3].grade_id)
    student.insert(next(i for i, c in enumerate(student) if c.grade_id == answers[3].grade_id), wrong_copy)
    out = normalize(student, nb)
    text = " ".join(out.notes)
    assert f"put back: {tests[2].grade_id}" in text
    assert f"graded as released: {tests[1].grade_id}" in text
    assert "out of the assignment's order" in text and tests[0].grade_id in text
    assert f"more than once: {answers[3].grade_id}" in text
    rebuilt = out.notebook.cells
    # Fixed cells are the release's, in the release's order; the added cell follows its answer.
    known = [grade_id(c) for c in rebuilt if grade_id(c)]
    assert known == [grade_id(c) for c in nb.cells if grade_id(c)]
    for cell in rebuilt:
        if grade_id(cell) and not cell.metadata["nbgrader"].get("solution"):
            assert cell.source == next(c.source for c in nb.cells if grade_id(c) == grade_id(cell))
    position = {grade_id(c): i for i, c in enumerate(rebuilt) if grade_id(c)}
    assert rebuilt[position[answers[0].grade_id] + 1].source == "def helper():\n    return 1"
    assert any(c.source == "def broken(): pass" for c in rebuilt)  # the earlier copy still runs, before
    assert rebuilt[position[answers[3].grade_id]].source == answers[3].source
    assert len({c["id"] for c in rebuilt}) == len(rebuilt)
    nbformat.validate(out.notebook)


def test_other_notebooks_are_recognised():
    nb = release()
    empty = normalize([], nb)
    assert "no cells" in empty.notes[0] and not empty.wrong_assignment
    scratch = normalize([Cell("code", "x = 1"), Cell("markdown", "my notes")], nb)
    assert scratch.wrong_assignment and "none of this assignment's cells" in scratch.notes[0]
    assert scratch.notebook.cells[0].source == "x = 1"  # kept, before the assignment's cells
    other = [Cell(c.cell_type, "other text " + c.source, c.grade_id) for c in cells_of(nb)]
    renamed = normalize(other, nb)
    assert renamed.wrong_assignment and "another assignment" in renamed.notes[0]


def test_flags_name_what_to_look_at():
    nb = release()
    answer = next(c for c in cells_of(nb) if c.grade_id and c.grade_id.endswith("answer"))
    found = flags([Cell("code", "import genlib.testing\nopen('x')\nimport subprocess", answer.grade_id)], nb)
    assert found == ["grading harness", "files", "processes"]
    assert flags(cells_of(nb), nb) == []  # the release's own test cells do not count


# --------------------------------------------------------------------------- partial credit


def _graded_cell(source: str, outputs: list, points: float = 2.0):
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["nbgrader"] = {"grade": True, "grade_id": "t", "points": points, "solution": False}
    cell.outputs = [nbformat.v4.new_output(**o) for o in outputs]
    return cell


def _result(value: str) -> dict:
    return {"output_type": "execute_result", "data": {"text/plain": value}, "execution_count": 1}


@pytest.mark.parametrize(
    ("source", "outputs", "score"),
    [
        (
            "check(f)",
            [_result("-1.0"), {"output_type": "error", "ename": "E", "evalue": "", "traceback": []}],
            0,
        ),
        ("check(f)", [_result("1000"), {"output_type": "stream", "name": "stdout", "text": "ok"}], 2.0),
        ("x = 1", [_result("0.5")], 2.0),
        ("score()", [_result("1.5")], 1.5),
        ("score()", [_result("7")], 0),
        ("score()", [_result("nan")], 0),
        ("score()", [_result("-1")], 0),
    ],
)
def test_only_the_cells_own_result_in_range_is_partial_credit(source, outputs, score):
    from nbgrader.utils import determine_grade

    from genlib.course.executor import GuardPartialCredit

    cell, _ = GuardPartialCredit().preprocess_cell(_graded_cell(source, outputs), {}, 0)
    assert determine_grade(cell)[0] == score


# --------------------------------------------------------------------------- feedback


def _hidden_notebook():
    secret = "assert secret_function(3) == 42, 'the hidden case'"
    test = nbformat.v4.new_code_cell(
        f'"""Part 1, hidden."""\n### BEGIN HIDDEN TESTS\n{secret}\n### END HIDDEN TESTS'
    )
    test.metadata["nbgrader"] = {"grade": True, "grade_id": "t", "points": 1}
    test.outputs = [
        nbformat.v4.new_output(
            "error", ename="AssertionError", evalue="the hidden case", traceback=["----> 4 " + secret, "boom"]
        )
    ]
    snoop = nbformat.v4.new_code_cell("print(In[-1])")
    snoop.outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"stolen: {secret}\n")]
    return nbformat.v4.new_notebook(cells=[test, snoop]), secret


def test_hidden_tests_are_hidden_from_feedback():
    nb, secret = _hidden_notebook()
    assert secret_lines(nb) == [secret]
    hidden = hide_hidden_tests(copy.deepcopy(nb))
    text = json.dumps(hidden)
    assert secret not in text
    assert "hidden tests: not shown" in hidden.cells[0].source
    assert hidden.cells[0].outputs[0].traceback == ["AssertionError: the hidden case"]
    assert "[hidden test line]" in hidden.cells[1].outputs[0].text
    assert leaked_lines(f"<p><span>{secret[:10]}</span>{secret[10:]}</p>", [secret]) == [secret]
    assert leaked_lines("<p>nothing here</p>", [secret]) == []


# --------------------------------------------------------------------------- gradebook merge


@pytest.fixture(autouse=True)
def _venv_on_path(monkeypatch):
    """nbgrader runs ``alembic`` by name when it creates a gradebook."""
    import os

    monkeypatch.setenv("PATH", f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ.get('PATH', '')}")


def _gradebook(path):
    from nbgrader.api import Gradebook

    gradebook = Gradebook(f"sqlite:///{path}", "c")
    gradebook.add_assignment("a1")
    gradebook.add_assignment("a2")
    gradebook.add_notebook("nb", "a1")
    gradebook.add_grade_cell("t1", "nb", "a1", max_score=1, cell_type="code")
    gradebook.add_grade_cell("t2", "nb", "a1", max_score=2, cell_type="code")
    gradebook.add_student("old")
    with warnings.catch_warnings():  # nbgrader's add_submission trips SQLAlchemy's autoflush warning
        warnings.simplefilter("ignore")
        gradebook.add_submission("a1", "old")
    return gradebook


@pytest.mark.slow  # nbgrader creates a gradebook with a subprocess (seconds)
def test_template_holds_the_assignment_and_no_student(tmp_path):
    from nbgrader.api import Gradebook

    from genlib.course.gradebook import make_template, zero_results

    _gradebook(tmp_path / "main.db").close()
    template = make_template(tmp_path / "main.db", "c", "a1", tmp_path / "template.db")
    with Gradebook(f"sqlite:///{template}", "c") as gradebook:
        assert gradebook.students == [] and [a.name for a in gradebook.assignments] == ["a1"]
    assert zero_results(template, "c", "a1")["notebooks"]["nb"]["grades"]["t2"]["max_score"] == 2


@pytest.mark.slow
def test_merge_replaces_automatic_scores_and_keeps_manual_ones(tmp_path):
    from genlib.course.gradebook import merge, total

    gradebook = _gradebook(tmp_path / "main.db")
    results = {
        "timestamp": "2024-03-01T10:00:00",
        "notebooks": {
            "nb": {
                "grades": {
                    "t1": {"auto_score": 1.0, "needs_manual_grade": False, "max_score": 1},
                    "t2": {"auto_score": 0.0, "needs_manual_grade": False, "max_score": 2},
                },
                "comments": {},
                "late_penalty": None,
            }
        },
    }
    assert total(results) == (1.0, 3.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        merge(gradebook, "a1", "new", results)
    assert gradebook.find_submission("a1", "new").score == 1.0
    gradebook.find_grade("t2", "nb", "a1", "new").manual_score = 1.5
    gradebook.db.commit()
    results["notebooks"]["nb"]["grades"]["t1"]["auto_score"] = 0.0
    merge(gradebook, "a1", "new", results)  # graded again
    assert gradebook.find_grade("t1", "nb", "a1", "new").score == 0.0
    assert gradebook.find_grade("t2", "nb", "a1", "new").score == 1.5  # the grader's score stays
    assert len(gradebook.assignment_submissions("a1")) == 2
    gradebook.close()


# --------------------------------------------------------------------------- the sandbox's limits


def _limited(
    code: str, memory_mb: int = 1024, cpu_seconds: int = 60, file_mb: int = 1
) -> subprocess.CompletedProcess:
    prelude = (
        f"import sys; sys.path.insert(0, {str(ROOT / 'genlib' / 'course')!r})\n"
        "import _kernel_launcher as L\n"
        f"L.apply_limits({memory_mb}, {cpu_seconds}, {file_mb})\n"
    )
    return subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True, timeout=60)


def test_memory_limit_makes_allocation_fail(tmp_path):
    result = _limited("try:\n    x = bytearray(2 * 1024**3)\nexcept MemoryError:\n    print('MemoryError')")
    assert result.stdout.strip() == "MemoryError"


def test_file_size_limit_makes_large_writes_fail(tmp_path):
    code = (
        f"f = open({str(tmp_path / 'big')!r}, 'wb')\n"
        "try:\n    f.write(b'x' * (3 * 1024**2))\n    f.flush()\n"
        "except OSError as e:\n    print('OSError', e.errno)"
    )
    result = _limited(code)
    assert result.stdout.strip() == "OSError 27"  # EFBIG
    assert (tmp_path / "big").stat().st_size <= 1024**2


def test_cpu_limit_ends_a_busy_process():
    result = _limited("while True:\n    pass", cpu_seconds=1)
    assert result.returncode == -signal.SIGXCPU


def test_limits_are_validated_and_written_to_the_kernelspec(tmp_path):
    with pytest.raises(ValueError, match="memory_mb"):
        Limits(memory_mb=0)
    with pytest.raises(ValueError, match="restarts"):
        Limits(restarts=-1)
    write_kernelspec(tmp_path, Limits(memory_mb=777, threads=3), zygote=tmp_path / "z.sock")
    spec = json.loads((tmp_path / "kernels" / "genlib-sandbox" / "kernel.json").read_text())
    assert spec["argv"][1] == _kernel_launcher.__file__
    assert spec["argv"][spec["argv"].index("--memory-mb") + 1] == "777"
    assert spec["argv"][spec["argv"].index("--zygote") + 1] == str(tmp_path / "z.sock")
    assert spec["env"]["OMP_NUM_THREADS"] == "3"


# --------------------------------------------------------------------------- command line


def test_every_step_is_one_subcommand():
    commands = parser()._subparsers._group_actions[0].choices
    assert set(commands) == {"release", "collect", "autograde", "feedback", "grades", "summary", "check"}


def test_command_line_errors_are_sentences(course, capsys):
    assert main(["--course", str(course.root), "autograde", "no_such_assignment"]) == 2
    assert "no released notebook" in capsys.readouterr().err
    assert main(["--course", str(course.root), "autograde", A, "--workers", "0"]) == 2
    assert main(["--course", str(course.root), "collect", A, str(course.root / "nothing")]) == 2
    assert "neither a folder nor a zip" in capsys.readouterr().err
