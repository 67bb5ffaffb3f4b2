"""Autograde every submission of an assignment across worker processes.

Design (why the course gradebook stays correct under concurrency; details in
:mod:`genlib.course.gradebook`):

- ``N`` worker processes (:mod:`genlib.course.worker`) each grade one submission at a time,
  each submission in its own stage folder against its own copy of a template gradebook. A
  thread per worker hands it the next submission and waits for its result with a deadline; a
  worker that dies or overruns is killed with everything it started, its submission is recorded
  as an error, and a fresh worker takes the next one.
- Results come back as plain data. The main thread alone merges them into the course gradebook
  (:func:`genlib.course.gradebook.merge`), copies the autograded notebook into
  ``autograded/<student>/<assignment>/``, and records the outcome in
  ``reports/<assignment>/autograde.csv`` (status, score, time, notes, flags, message).

A submission is graded again when it changed since it was last graded, or when its grading failed
(or with ``force``). For a failed one, ``reports/<assignment>/logs/<student>.log`` keeps the logs.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import queue
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from genlib.course import gradebook as gradebook_io
from genlib.course.course import Course, CourseError
from genlib.course.sandbox import Limits, kill_descendants

REPORT_FIELDS = [
    "student",
    "status",
    "score",
    "max_score",
    "seconds",
    "restarts",
    "message",
    "notes",
    "flags",
    "graded_at",
]


def threads_per_kernel(workers: int) -> int:
    """Threads each kernel may use so that ``workers`` kernels share the cores without contention."""
    return max(1, (os.cpu_count() or 1) // max(1, workers))


# --------------------------------------------------------------------------- worker processes


class _Worker:
    """One worker process and the pipe to it."""

    def __init__(self, index: int, root: Path, limits: Limits, zygote: bool = True) -> None:
        self.zygote = zygote
        self.log = root / f"worker-{index}.log"
        self.spec_dir = root / f"worker-{index}-kernels"
        self.limits = limits
        self.proc: subprocess.Popen | None = None
        self._buffer = b""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 600) -> None:
        self._buffer = b""
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "genlib.course.worker",
                str(self.log),
                str(self.spec_dir),
                json.dumps(asdict(self.limits)),
                *(["zygote"] if self.zygote else []),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            start_new_session=True,
        )
        if self._readline(timeout) is None:
            self.kill()
            raise CourseError(f"a grading worker did not start; see {self.log}")

    def run(self, task: dict[str, Any], timeout: float) -> dict[str, Any] | None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(task).encode() + b"\n")
        self.proc.stdin.flush()
        line = self._readline(timeout)
        return None if line is None else json.loads(line)

    def _readline(self, timeout: float) -> str | None:
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                return None
            chunk = os.read(fd, 1 << 16)
            if not chunk:  # the worker died
                return None
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode()

    def kill(self) -> None:
        """Kill the worker and every process it started (kernels run in their own sessions)."""
        if self.proc is None:
            return
        kill_descendants(self.proc.pid)
        self.proc.kill()
        self.proc.wait()
        self.proc = None

    def stop(self) -> None:
        if not self.alive():
            self.proc = None
            return
        assert self.proc is not None and self.proc.stdin is not None
        try:
            self.proc.stdin.write(b"null\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=30)
            self.proc = None
        except (OSError, subprocess.TimeoutExpired):
            self.kill()


def _drive(worker: _Worker, todo: queue.Queue, done: queue.Queue, deadline: float) -> None:
    """Feed ``worker`` submissions from ``todo`` until there are none; put results on ``done``."""
    while True:
        try:
            task = todo.get_nowait()
        except queue.Empty:
            break
        result, problem = None, ""
        try:
            if not worker.alive():
                worker.start()
            result = worker.run(task, deadline)
        except Exception as error:
            problem = f"{type(error).__name__}: {error}"
        if result is None:
            died = worker.proc is not None and worker.proc.poll() is not None
            worker.kill()
            if not problem:
                problem = "the grading process died" if died else f"grading took longer than {deadline:.0f} s"
            result = {
                "student": task["student"],
                "status": "error",
                "message": f"{problem}; the notebook was not graded",
                "notes": [],
                "flags": [],
            }
        done.put((task, result))
    worker.stop()


# --------------------------------------------------------------------------- reports


def report_path(course: Course, assignment: str) -> Path:
    return course.reports_dir / assignment / "autograde.json"


def load_report(course: Course, assignment: str) -> dict[str, dict[str, Any]]:
    """The last grading outcome of each student of ``assignment`` (empty if never graded)."""
    path = report_path(course, assignment)
    return json.loads(path.read_text()) if path.is_file() else {}


def write_report(course: Course, assignment: str, rows: dict[str, dict[str, Any]]) -> Path:
    """Write ``autograde.json`` and ``autograde.csv`` under ``reports/<assignment>/``."""
    path = report_path(course, assignment)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, indent=1, sort_keys=True))
    with open(path.with_suffix(".csv"), "w", newline="") as handle:
        writer = csv.DictWriter(handle, REPORT_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for student in sorted(rows):
            row = dict(rows[student])
            row["notes"] = " | ".join(row.get("notes", []))
            row["flags"] = ", ".join(row.get("flags", []))
            writer.writerow(row)
    return path


def _changed_since(folder: Path, when: str | None) -> bool:
    if not when:
        return True
    graded = dt.datetime.fromisoformat(when).timestamp()
    return any(p.stat().st_mtime > graded for p in folder.rglob("*") if p.is_file()) or (
        folder.stat().st_mtime > graded
    )


# --------------------------------------------------------------------------- the run


def autograde(
    course: Course,
    assignment: str,
    *,
    workers: int = 1,
    limits: Limits | None = None,
    students: list[str] | None = None,
    force: bool = False,
    student_timeout: float | None = None,
    keep_stage: bool = False,
    progress: bool = True,
    zygote: bool = True,
) -> list[dict[str, Any]]:
    """Grade the submissions of ``assignment`` with ``workers`` worker processes.

    Args:
        course: the course directory.
        assignment: a released assignment (in the gradebook).
        workers: worker processes; each grades one submission at a time.
        limits: the sandbox's limits (default: :class:`Limits` with the course's cell timeout
            and the cores shared among the workers).
        students: grade only these (default: every student with a submission).
        force: grade again submissions that have not changed since they were graded.
        student_timeout: seconds one submission may take in all before its worker is killed
            (default: the notebook budget plus restarts plus a margin, per notebook).
        keep_stage: keep the temporary stage folders (for debugging).
        progress: show a progress bar.
        zygote: fork kernels from a preloaded zygote per worker (fast); False starts each kernel
            as a fresh Python (slow, the same results).

    Returns:
        One row per graded submission (the fields of ``reports/<assignment>/autograde.csv``
        plus ``cells``, the points of each graded cell).
    """
    from nbgrader.api import Gradebook
    from tqdm.auto import tqdm

    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    course.check_assignment(assignment)
    limits = limits or Limits(cell_timeout=course.cell_timeout, threads=threads_per_kernel(workers))
    release = course.release_notebooks(assignment)
    available = course.students(assignment)
    if students:
        unknown = sorted(set(students) - set(available))
        if unknown:
            raise CourseError(f"no submission of {assignment} from: {', '.join(unknown)}")
        chosen = [s for s in available if s in set(students)]
    else:
        chosen = available
    previous = load_report(course, assignment)
    if not force:  # new, changed, or failed last time
        chosen = [
            s
            for s in chosen
            if previous.get(s, {}).get("status") == "error"
            or _changed_since(course.submitted_dir / s / assignment, previous.get(s, {}).get("graded_at"))
        ]
    if not chosen:
        return []

    grading_root = Path(tempfile.mkdtemp(prefix="genlib-grading-"))
    work_root = Path(tempfile.mkdtemp(prefix="genlib-work-"))
    template = gradebook_io.make_template(
        course.db_path, course.course_id, assignment, grading_root / "template.db"
    )
    config_file = course.root / "nbgrader_config.py"
    todo: queue.Queue = queue.Queue()
    for student in chosen:
        todo.put(
            {
                "student": student,
                "assignment": assignment,
                "course_id": course.course_id,
                "config_file": str(config_file) if config_file.is_file() else None,
                "submission_dir": str(course.submitted_dir / student / assignment),
                "release_notebooks": {name: str(path) for name, path in release.items()},
                "release_dir": str(course.release_dir / assignment),
                "template_db": str(template),
                "stage": str(grading_root / "stage" / student),
                "work_root": str(work_root),
                "limits": asdict(limits),
            }
        )
    deadline = student_timeout or len(release) * (
        limits.notebook_seconds + limits.cell_timeout * (limits.restarts + 2) + 120
    )
    done: queue.Queue = queue.Queue()
    pool = [_Worker(i, grading_root, limits, zygote) for i in range(min(workers, len(chosen)))]
    threads = [
        threading.Thread(target=_drive, args=(worker, todo, done, deadline), daemon=True) for worker in pool
    ]
    rows: list[dict[str, Any]] = []
    try:
        for thread in threads:
            thread.start()
        with (
            Gradebook(course.db_url, course.course_id) as gradebook,
            tqdm(total=len(chosen), desc=f"grading {assignment}", disable=not progress) as bar,
        ):
            for _ in chosen:
                task, result = done.get()
                rows.append(_finish(course, assignment, task, result, gradebook, template, keep_stage))
                bar.update()
        for thread in threads:
            thread.join()
    finally:
        for worker in pool:
            worker.kill()
        if not keep_stage:
            shutil.rmtree(grading_root, ignore_errors=True)
        shutil.rmtree(work_root, ignore_errors=True)

    report = load_report(course, assignment)
    for row in rows:
        report[row["student"]] = {k: v for k, v in row.items() if k in REPORT_FIELDS}
    write_report(course, assignment, report)
    return sorted(rows, key=lambda r: r["student"])


def _finish(
    course: Course,
    assignment: str,
    task: dict[str, Any],
    result: dict[str, Any],
    gradebook: Any,
    template: Path,
    keep_stage: bool,
) -> dict[str, Any]:
    """Merge one result into the course (main thread only): gradebook, autograded folder, row."""
    student = task["student"]
    results = result.get("results") or gradebook_io.zero_results(template, course.course_id, assignment)
    dest = course.autograded_dir / student / assignment
    if dest.exists():
        shutil.rmtree(dest)
    source = result.get("autograded_dir")
    if source and Path(source).is_dir():
        shutil.copytree(source, dest)
    gradebook_io.merge(gradebook, assignment, student, results)
    score, maximum = gradebook_io.total(results)
    if result.get("status") == "error":  # keep what the instructor needs to see why
        logs = course.reports_dir / assignment / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        parts = [result.get("message", ""), result.get("traceback", "")]
        for name in ("grading.log", "kernel.log"):
            path = Path(task["stage"]) / name
            if path.is_file():
                parts.append(f"--- {name}\n" + path.read_text(errors="replace")[-20_000:])
        (logs / f"{student}.log").write_text("\n".join(parts))
    if not keep_stage:
        shutil.rmtree(task["stage"], ignore_errors=True)
    return {
        "student": student,
        "status": result.get("status", "error"),
        "score": score,
        "max_score": maximum,
        "seconds": round(float(result.get("seconds", 0.0)), 2),
        "restarts": int(result.get("restarts", 0)),
        "message": result.get("message", ""),
        "notes": list(result.get("notes", [])),
        "flags": list(result.get("flags", [])),
        "graded_at": dt.datetime.now().isoformat(timespec="seconds"),
        "cells": {
            cell: grade["auto_score"]
            for notebook in results["notebooks"].values()
            for cell, grade in notebook["grades"].items()
        },
    }
