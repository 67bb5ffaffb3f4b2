"""The course directory as nbgrader sees it: folders, gradebook, assignments and students.

Everything is read from the course's ``nbgrader_config.py`` (the repository root's for this
course), so the ``course`` command works on any nbgrader course laid out the usual way:
``<source>/<assignment>/``, ``<release>/<assignment>/``, ``submitted/<student>/<assignment>/``,
``autograded/...``, ``feedback/...`` and a SQLite gradebook.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: What a student id may contain after collection (it becomes a folder name).
STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,99}$")


class CourseError(RuntimeError):
    """A problem with the course directory that the instructor has to fix (message says how)."""


def _config_value(config: Any, section: str, key: str, default: Any) -> Any:
    try:
        part = config[section]
        return part[key] if key in part else default
    except (KeyError, TypeError):
        return default


@dataclass
class Course:
    """A course directory: its root, its ``nbgrader_config.py`` and the folders it names."""

    root: Path
    config: Any  # traitlets Config loaded from nbgrader_config.py (empty when there is none)

    @classmethod
    def open(cls, root: str | os.PathLike[str] = ".") -> Course:
        """The course at ``root``: the folder that holds ``nbgrader_config.py``, or a parent of it."""
        from traitlets.config import Config
        from traitlets.config.loader import PyFileConfigLoader

        start = Path(root).resolve()
        for folder in [start, *start.parents]:
            if (folder / "nbgrader_config.py").is_file():
                config = PyFileConfigLoader("nbgrader_config.py", path=str(folder)).load_config()
                return cls(folder, config)
        if start.is_dir():
            return cls(start, Config())
        raise CourseError(f"{start} is not a folder")

    # ------------------------------------------------------------------ folders and settings

    def _dir(self, key: str, default: str) -> Path:
        return self.root / str(_config_value(self.config, "CourseDirectory", key, default))

    @property
    def source_dir(self) -> Path:
        return self._dir("source_directory", "source")

    @property
    def release_dir(self) -> Path:
        return self._dir("release_directory", "release")

    @property
    def submitted_dir(self) -> Path:
        return self._dir("submitted_directory", "submitted")

    @property
    def autograded_dir(self) -> Path:
        return self._dir("autograded_directory", "autograded")

    @property
    def feedback_dir(self) -> Path:
        return self._dir("feedback_directory", "feedback")

    @property
    def reports_dir(self) -> Path:
        """Where ``course`` writes its reports (per assignment: grading log, summary)."""
        return self.root / "reports"

    @property
    def course_id(self) -> str:
        return str(_config_value(self.config, "CourseDirectory", "course_id", "default_course"))

    @property
    def db_url(self) -> str:
        url = _config_value(self.config, "CourseDirectory", "db_url", "")
        return str(url) if url else f"sqlite:///{self.root / 'gradebook.db'}"

    @property
    def db_path(self) -> Path:
        """The gradebook's SQLite file (parallel grading copies it, so it must be SQLite)."""
        url = self.db_url
        if not url.startswith("sqlite:///"):
            raise CourseError(f"the gradebook must be a SQLite file for `course` to use it, got {url}")
        return Path(url[len("sqlite:///") :])

    @property
    def cell_timeout(self) -> int:
        """Seconds a cell may run (nbgrader's ``Execute.timeout``; 30 when unset)."""
        value = _config_value(self.config, "Execute", "timeout", 30)
        return int(value) if value and value > 0 else 30

    # ------------------------------------------------------------------ assignments and students

    def assignments(self) -> list[str]:
        """Assignments with a source notebook folder."""
        if not self.source_dir.is_dir():
            return []
        return sorted(p.name for p in self.source_dir.iterdir() if p.is_dir() and any(p.glob("*.ipynb")))

    def release_notebooks(self, assignment: str) -> dict[str, Path]:
        """The released notebooks of ``assignment``, by notebook name (without ``.ipynb``)."""
        folder = self.release_dir / assignment
        notebooks = {p.stem: p for p in sorted(folder.glob("*.ipynb"))}
        if not notebooks:
            raise CourseError(
                f"{assignment} has no released notebook in {folder}: run `course release {assignment}` first"
            )
        return notebooks

    def students(self, assignment: str) -> list[str]:
        """Students with a submission folder for ``assignment``."""
        if not self.submitted_dir.is_dir():
            return []
        return sorted(
            p.name
            for p in self.submitted_dir.iterdir()
            if (p / assignment).is_dir() and STUDENT_ID.match(p.name)
        )

    def check_assignment(self, assignment: str) -> None:
        """Raise :class:`CourseError` unless ``assignment`` is released and in the gradebook."""
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", assignment):
            raise CourseError(f"not an assignment name: {assignment!r}")
        self.release_notebooks(assignment)
        from nbgrader.api import Gradebook, MissingEntry

        if not self.db_path.is_file():
            raise CourseError(f"no gradebook at {self.db_path}: run `course release {assignment}` first")
        with Gradebook(self.db_url, self.course_id) as gradebook:
            try:
                gradebook.find_assignment(assignment)
            except MissingEntry:
                raise CourseError(
                    f"{assignment} is not in the gradebook: run `course release {assignment}` first"
                ) from None

    # ------------------------------------------------------------------ nbgrader's command line

    def nbgrader(self, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
        """Run ``nbgrader ARGS`` in the course root with the environment's ``bin/`` on PATH."""
        bin_dir = Path(sys.executable).parent
        env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
        command = [str(bin_dir / "nbgrader"), *args]
        result = subprocess.run(
            command, cwd=self.root, env=env, capture_output=True, text=True, timeout=timeout
        )
        if result.returncode != 0:
            raise CourseError(f"nbgrader {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result
