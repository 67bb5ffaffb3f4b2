"""Sample submissions for the autograding tests, one module per assignment.

A module named like the assignment (``ch00_foundations.py``) defines ``SUBMISSIONS``, a list of
:class:`Submission`: typical wrong, broken and dishonest notebooks and the points each must earn.
``tests/test_autograding.py`` grades them with nbgrader next to the solution and the blank release.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass, field

#: An answer given as ``SOLVED`` is taken from the solution notebook.
SOLVED = "<the solution's code>"


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


def load(assignment: str) -> list[Submission]:
    """The sample submissions for ``assignment`` (none if it has no module here)."""
    name = f"tests.submissions.{assignment}"
    if importlib.util.find_spec(name) is None:
        return []
    return list(importlib.import_module(name).SUBMISSIONS)
