"""``grades.csv``: one row per student and assignment, from the course gradebook.

Columns: ``student_id, assignment, score, max_score, percent, late_penalty, status, timestamp``.
``score`` is nbgrader's (a grader's manual score replaces the automatic one) minus the late
penalty; ``status`` is ``graded``, ``not gradable`` or ``error`` as the last ``course autograde``
recorded it, or ``missing`` (score 0) for a student in the gradebook with no submission.
"""

from __future__ import annotations

import csv
from pathlib import Path

from genlib.course.course import Course

FIELDS = ["student_id", "assignment", "score", "max_score", "percent", "late_penalty", "status", "timestamp"]


def grade_rows(course: Course, assignments: list[str] | None = None) -> list[dict[str, object]]:
    """The rows of ``grades.csv`` (see the module docstring)."""
    from nbgrader.api import Gradebook

    from genlib.course.autograde import load_report
    from genlib.course.gradebook import assignment_scores

    with Gradebook(course.db_url, course.course_id) as gradebook:
        known = sorted(a.name for a in gradebook.assignments)
        students = sorted(s.id for s in gradebook.students)
    chosen = [a for a in known if not assignments or a in assignments]
    rows = []
    for assignment in chosen:
        scores = assignment_scores(course.db_url, course.course_id, assignment)
        maximum = sum(points for _, _, points in scores["cells"])
        report = load_report(course, assignment)
        for student in students:
            found = scores["students"].get(student)
            if found is None:
                row = {"score": 0.0, "late_penalty": 0.0, "status": "missing", "timestamp": ""}
            else:
                row = {
                    "score": max(0.0, found["score"] - found["late_penalty"]),
                    "late_penalty": found["late_penalty"],
                    "status": report.get(student, {}).get("status", "graded"),
                    "timestamp": found["timestamp"],
                }
            row.update(
                student_id=student,
                assignment=assignment,
                max_score=maximum,
                percent=round(100 * row["score"] / maximum, 1) if maximum else 0.0,
            )
            rows.append(row)
    return rows


def export_grades(
    course: Course, output: str | Path | None = None, assignments: list[str] | None = None
) -> Path:
    """Write ``grades.csv`` (default: in the course root) and return its path."""
    path = Path(output) if output else course.root / "grades.csv"
    rows = grade_rows(course, assignments)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:g}" if isinstance(v, float) else v) for k, v in row.items()})
    return path
