"""Gradebooks for parallel grading: a per-submission copy, and the merge into the course's one.

The design that keeps the course gradebook correct under concurrency is to never share it:

1. :func:`make_template` copies the course gradebook (SQLite's backup API, so the copy is
   consistent) and deletes every student and every other assignment from the copy: what is left
   is the assignment, its notebooks and cells (what nbgrader needs to restore and run tests).
2. Each submission is graded by its own nbgrader run against its own copy of the template, in
   its own folder (:mod:`genlib.course.worker`). Workers share no file that either writes.
3. :func:`read_results` reads what that run stored (scores, comments, late penalty, timestamp)
   as plain data, and the orchestrator alone -- one thread, one writer -- applies it to the course
   gradebook with :func:`merge`, one submission per transaction.

Because no worker reads anything another worker writes, a submission's result cannot depend on
which worker graded it or when: grading in parallel gives what grading one by one gives.
"""

from __future__ import annotations

import sqlite3
import warnings
from pathlib import Path
from typing import Any

from nbgrader.api import Gradebook, MissingEntry


def make_template(main_db: Path, course_id: str, assignment: str, dest: Path) -> Path:
    """A copy of ``main_db`` holding ``assignment`` and no students, written to ``dest``."""
    source = sqlite3.connect(f"file:{main_db}?mode=ro", uri=True)
    target = sqlite3.connect(dest)
    with target:
        source.backup(target)
    source.close()
    target.close()
    with Gradebook(f"sqlite:///{dest}", course_id) as gradebook:
        for student in [s.id for s in gradebook.students]:
            gradebook.remove_student(student)
        for other in [a.name for a in gradebook.assignments if a.name != assignment]:
            gradebook.remove_assignment(other)
    return dest


def zero_results(db: Path, course_id: str, assignment: str) -> dict[str, Any]:
    """Results that give every graded cell of ``assignment`` zero points (nothing gradable)."""
    notebooks = {}
    with Gradebook(f"sqlite:///{db}", course_id) as gradebook:
        for notebook in gradebook.find_assignment(assignment).notebooks:
            notebooks[notebook.name] = {
                "grades": {
                    cell.name: {"auto_score": 0.0, "needs_manual_grade": False, "max_score": cell.max_score}
                    for cell in notebook.grade_cells
                },
                "comments": {},
                "late_penalty": None,
            }
    return {"timestamp": None, "notebooks": notebooks}


def read_results(db: Path, course_id: str, assignment: str, student: str) -> dict[str, Any] | None:
    """What a grading run stored for ``student`` in its gradebook ``db``, as plain data."""
    with Gradebook(f"sqlite:///{db}", course_id) as gradebook:
        try:
            submission = gradebook.find_submission(assignment, student)
        except MissingEntry:
            return None
        notebooks = {}
        for notebook in submission.notebooks:
            notebooks[notebook.name] = {
                "grades": {
                    grade.name: {
                        "auto_score": grade.auto_score,
                        "needs_manual_grade": bool(grade.needs_manual_grade),
                        "max_score": grade.max_score,
                    }
                    for grade in notebook.grades
                },
                "comments": {comment.name: comment.auto_comment for comment in notebook.comments},
                "late_penalty": notebook.late_submission_penalty,
            }
        timestamp = submission.timestamp.isoformat() if submission.timestamp else None
    return {"timestamp": timestamp, "notebooks": notebooks}


def merge(gradebook: Gradebook, assignment: str, student: str, results: dict[str, Any]) -> None:
    """Write one submission's ``results`` (from :func:`read_results`) into ``gradebook``.

    Automatic scores, comments and late penalties are replaced; scores a grader entered by hand
    (``manual_score``) are kept, as nbgrader's own re-grading keeps them.
    """
    gradebook.update_or_create_student(student)
    extra = {"timestamp": results["timestamp"]} if results.get("timestamp") else {}
    with warnings.catch_warnings():  # nbgrader's add_submission trips SQLAlchemy's autoflush warning
        warnings.simplefilter("ignore")
        gradebook.update_or_create_submission(assignment, student, **extra)
    for name, notebook in results["notebooks"].items():
        submitted = gradebook.find_submission_notebook(name, assignment, student)
        for cell, grade in notebook["grades"].items():
            row = gradebook.find_grade(cell, name, assignment, student)
            row.auto_score = grade["auto_score"]
            row.needs_manual_grade = bool(grade["needs_manual_grade"]) or row.manual_score is not None
        for cell, text in notebook["comments"].items():
            gradebook.find_comment(cell, name, assignment, student).auto_comment = text
        submitted.late_submission_penalty = notebook.get("late_penalty")
    gradebook.db.commit()


def total(results: dict[str, Any]) -> tuple[float, float]:
    """(points earned, points possible) of plain results."""
    score = maximum = 0.0
    for notebook in results["notebooks"].values():
        for grade in notebook["grades"].values():
            score += grade["auto_score"] or 0.0
            maximum += grade["max_score"] or 0.0
    return score, maximum


def assignment_scores(db_url: str, course_id: str, assignment: str) -> dict[str, Any]:
    """Scores of every submission of ``assignment`` in the course gradebook.

    Returns ``{"cells": [(notebook, cell, max_score), ...], "students": {student: {"cells":
    {(notebook, cell): score}, "score": total, "max_score": max, "timestamp": ..., "late_penalty":
    ...}}}``; a score is the manual one where a grader gave one, else the automatic one.
    """
    with Gradebook(db_url, course_id) as gradebook:
        found = gradebook.find_assignment(assignment)
        cells = [(nb.name, cell.name, cell.max_score) for nb in found.notebooks for cell in nb.grade_cells]
        students: dict[str, Any] = {}
        for submission in found.submissions:
            scores = {}
            for notebook in submission.notebooks:
                for grade in notebook.grades:
                    scores[(notebook.name, grade.name)] = grade.score
            late = sum(nb.late_submission_penalty or 0.0 for nb in submission.notebooks)
            students[submission.student.id] = {
                "cells": scores,
                "score": submission.score,
                "max_score": submission.max_score,
                "late_penalty": late,
                "timestamp": submission.timestamp.isoformat() if submission.timestamp else "",
            }
    return {"cells": cells, "students": students}
