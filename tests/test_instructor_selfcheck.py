"""``course check NOTEBOOK``: what a student sees when running the visible tests before handing in."""

from __future__ import annotations

import json

import pytest

from genlib.course.cli import main
from tests.crafted_submissions import Assignment

pytestmark = pytest.mark.slow

ASSIGNMENT = "ch00_foundations"


def _check(path, capsys) -> tuple[int, str]:
    code = main(["check", str(path)])
    return code, capsys.readouterr().out


def test_a_partly_done_notebook(tmp_path, capsys):
    a = Assignment(ASSIGNMENT)
    done, wrong, edited = a.parts[0], a.parts[1], a.parts[2]
    stubs = {c.metadata["nbgrader"]["grade_id"]: c.source for c in a.release.cells}
    answers = {p.answer: stubs[p.answer] for p in a.parts[3:]}
    nb = a.notebook(
        {
            wrong.answer: f"def {wrong.function}(*args, **kwargs):\n    return None\n",
            edited.tests[0]: "print('I pass')",
            **answers,  # the later parts are still the release's stubs
        }
    )
    path = tmp_path / f"{ASSIGNMENT}.ipynb"
    path.write_text(json.dumps(nb))
    before = path.read_bytes()
    code, out = _check(path, capsys)
    assert code == 1
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ") and line.split()}
    assert lines[done.tests[0]].endswith("pass")
    assert "FAIL" in lines[wrong.tests[0]]
    assert "the output should be a torch.Tensor, got NoneType" in out  # what the visible test said
    assert "FAIL" in lines[edited.tests[0]] and "you changed this test cell" in out
    for part in a.parts[3:]:
        assert "FAIL" in lines[part.tests[0]]
    assert "NotImplementedError" in out
    hidden = [t for p in a.parts for t in p.tests[1:]]
    assert all("hidden" in lines[t] for t in hidden)
    assert f"1 of {len(a.parts)} visible tests pass." in out
    assert path.read_bytes() == before  # the student's file is not touched


def test_a_finished_notebook(tmp_path, capsys):
    a = Assignment(ASSIGNMENT)
    path = tmp_path / f"{ASSIGNMENT}.ipynb"
    path.write_text(json.dumps(a.notebook()))
    code, out = _check(path, capsys)
    assert code == 0
    assert f"{len(a.parts)} of {len(a.parts)} visible tests pass." in out
    assert "All visible tests pass." in out


def test_a_broken_file(tmp_path, capsys):
    path = tmp_path / f"{ASSIGNMENT}.ipynb"
    path.write_text('{"cells": [')
    code, out = _check(path, capsys)
    assert code == 1 and "cannot be graded: it is not valid notebook JSON" in out
