"""``course release A``: generate the student version of an assignment and record it.

Runs ``nbgrader generate_assignment A --force`` in the course directory, which writes
``<release>/A/`` and records the assignment (its cells, points, and the hidden tests) in the
course gradebook, where autograding finds them. Then checks that no solution or hidden test
leaked into the release.
"""

from __future__ import annotations

from pathlib import Path

from genlib.course.course import Course, CourseError

MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")


def release(course: Course, assignment: str) -> list[Path]:
    """Release ``assignment``; return the released notebooks. Raises on a leak."""
    if not (course.source_dir / assignment).is_dir():
        raise CourseError(f"no source folder {course.source_dir / assignment}")
    course.nbgrader("generate_assignment", assignment, "--force")
    notebooks = sorted((course.release_dir / assignment).glob("*.ipynb"))
    if not notebooks:
        raise CourseError(f"nbgrader wrote no notebook to {course.release_dir / assignment}")
    for path in notebooks:
        text = path.read_text()
        found = [m for m in MARKERS if m in text]
        if found:
            raise CourseError(f"{path} contains {found[0]!r}: the release leaks a solution or hidden test")
    return notebooks
