"""A throwaway nbgrader course directory for the autograding tests.

It copies the repository's ``nbgrader_config.py`` and ``solutions/`` into a temporary folder, so
``generate_assignment`` and ``autograde`` run exactly as an instructor's would, without touching
the repository's gradebook or folders.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SOLUTION_REGION = re.compile(r"^[ \t]*### BEGIN SOLUTION\n(.*?)^[ \t]*### END SOLUTION\n?", re.S | re.M)


def assignments() -> list[str]:
    """The assignments in solutions/, e.g. ``["ch00_foundations"]``."""
    return sorted(p.name for p in (ROOT / "solutions").iterdir() if (p / f"{p.name}.ipynb").exists())


def nbgrader(course: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the nbgrader command line in ``course``, with the virtual environment on PATH."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(
        [str(BIN / "nbgrader"), *args],
        cwd=course,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise RuntimeError(f"nbgrader {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


@dataclass
class Course:
    root: Path

    @classmethod
    def create(cls, where: Path) -> Course:
        where.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / "nbgrader_config.py", where / "nbgrader_config.py")
        shutil.copytree(ROOT / "solutions", where / "solutions")
        return cls(where)

    def release(self, assignment: str) -> nbformat.NotebookNode:
        nbgrader(self.root, "generate_assignment", assignment, "--force")
        return self.released(assignment)

    def source(self, assignment: str) -> nbformat.NotebookNode:
        return nbformat.read(self.root / "solutions" / assignment / f"{assignment}.ipynb", as_version=4)

    def released(self, assignment: str) -> nbformat.NotebookNode:
        return nbformat.read(self.root / "exercises" / assignment / f"{assignment}.ipynb", as_version=4)

    def submit(self, student: str, assignment: str, nb: nbformat.NotebookNode) -> None:
        folder = self.root / "submitted" / student / assignment
        folder.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, folder / f"{assignment}.ipynb")

    def autograde(self, assignment: str) -> subprocess.CompletedProcess:
        return nbgrader(self.root, "autograde", assignment, "--force")

    def autograded(self, student: str, assignment: str) -> nbformat.NotebookNode:
        path = self.root / "autograded" / student / assignment / f"{assignment}.ipynb"
        return nbformat.read(path, as_version=4)

    def scores(self, student: str, assignment: str) -> dict[str, float]:
        """Points per graded cell (grade_id -> score) and the total under ``"total"``."""
        from nbgrader.api import Gradebook

        with Gradebook(f"sqlite:///{self.root / 'gradebook.db'}") as gradebook:
            submission = gradebook.find_submission_notebook(assignment, assignment, student)
            scores = {grade.name: grade.score for grade in submission.grades}
            scores["total"] = submission.score
        return scores


def solution_code(cell_source: str) -> str:
    """A solution cell's code as a student who solved it would hand it in (markers removed)."""
    return SOLUTION_REGION.sub(lambda m: m.group(1), cell_source)


def with_answers(nb: nbformat.NotebookNode, answers: dict[str, str]) -> nbformat.NotebookNode:
    """A copy of ``nb`` whose cells with the given grade_ids have their source replaced."""
    nb = nbformat.from_dict(nb)
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in answers:
            cell.source = answers[grade_id]
    return nb


def grade_ids(nb: nbformat.NotebookNode, *, kind: str) -> list[str]:
    """grade_ids of the ``kind`` cells: "answer" (solution cells) or "tests" (graded cells)."""
    key = "solution" if kind == "answer" else "grade"
    return [c.metadata["nbgrader"]["grade_id"] for c in nb.cells if c.metadata.get("nbgrader", {}).get(key)]
