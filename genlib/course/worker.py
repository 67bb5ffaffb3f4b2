"""A grading worker: grades one submission at a time in its own staged folders, in-process.

The orchestrator (:mod:`genlib.course.autograde`) starts workers as separate processes
(``python -m genlib.course.worker LOG KERNELSPEC_DIR``) and talks to each over a private pipe:
one JSON task per line in, one JSON result per line out. A worker imports nbgrader once and then
runs nbgrader's autograder (the sandboxed variant of :mod:`genlib.course.executor`) per
submission, so a submission costs one kernel start, not one nbgrader start.

Per submission (:func:`grade`), everything lives under a fresh stage folder:

``stage/gradebook.db``
    a copy of the template gradebook (the assignment, no students: see
    :mod:`genlib.course.gradebook`);
``stage/nbgrader/submitted/<student>/<assignment>/``
    the rebuilt notebook (:func:`genlib.course.submission.normalize`) nbgrader grades;
``stage/nbgrader/autograded/...``
    nbgrader's output;
``work/<random>/`` (a different temporary tree)
    the kernel's working directory: the assignment's released data files and the student's own
    non-notebook files, nothing else.

The worker's own standard streams go to its log; the protocol uses duplicated descriptors that
the kernels it starts do not inherit.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import nbformat

from genlib.course import gradebook as gradebook_io
from genlib.course import sandbox
from genlib.course.submission import flags, normalize, notes_cell, read_submission

MAX_EXTRA_FILE = 50 * 1024 * 1024


def _copy_files(source: Path, dest: Path, skip_notebooks: bool) -> None:
    """Copy the regular files under ``source`` to ``dest`` (no links, nothing huge)."""
    if not source.is_dir():
        return
    for path in sorted(source.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        if skip_notebooks and path.suffix == ".ipynb" or path.name == "timestamp.txt":
            continue
        if ".ipynb_checkpoints" in path.parts or path.stat().st_size > MAX_EXTRA_FILE:
            continue
        target = dest / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)


def _config(task: dict[str, Any], course_root: Path, db: Path, workdir: Path) -> Any:
    from traitlets.config import Config
    from traitlets.config.loader import PyFileConfigLoader

    from genlib.course.executor import AUTOGRADE_PREPROCESSORS

    limits = sandbox.Limits(**task["limits"])
    config = Config()
    if task.get("config_file"):
        path = Path(task["config_file"])
        config.merge(PyFileConfigLoader(path.name, path=str(path.parent)).load_config())
    over = Config()
    over.CourseDirectory.root = str(course_root)
    over.CourseDirectory.db_url = f"sqlite:///{db}"
    over.CourseDirectory.course_id = task["course_id"]
    over.CourseDirectory.source_directory = "source"
    over.CourseDirectory.submitted_directory = "submitted"
    over.CourseDirectory.autograded_directory = "autograded"
    over.CourseDirectory.assignment_id = task["assignment"]
    over.CourseDirectory.student_id = task["student"]
    over.CourseDirectory.notebook_id = "*"
    over.Autograde.autograde_preprocessors = AUTOGRADE_PREPROCESSORS
    over.Autograde.create_student = True
    over.SandboxedAutograde.workdir = str(workdir)
    over.OverwriteCells.add_missing_cells = True
    over.Execute.kernel_name = sandbox.KERNEL_NAME
    over.Execute.timeout = limits.cell_timeout
    over.Execute.interrupt_on_timeout = True
    over.Execute.raise_on_iopub_timeout = True
    over.Execute.extra_arguments = ["--HistoryManager.hist_file=:memory:"]
    over.SandboxedExecute.output_limit_kb = limits.output_kb
    over.SandboxedExecute.max_restarts = limits.restarts
    over.SandboxedExecute.notebook_timeout = limits.notebook_seconds
    over.SandboxedExecute.limits_text = (
        f"{limits.memory_mb} MiB of memory and {limits.cpu_seconds} s of CPU time"
    )
    config.merge(over)
    return config


def grade(task: dict[str, Any]) -> dict[str, Any]:
    """Grade one submission described by ``task`` (see :mod:`genlib.course.autograde`)."""
    started = time.monotonic()
    student, assignment = task["student"], task["assignment"]
    stage = Path(task["stage"])
    course_root = stage / "nbgrader"
    db = stage / "gradebook.db"
    workdir = Path(tempfile.mkdtemp(prefix="work-", dir=task["work_root"]))
    submitted = course_root / "submitted" / student / assignment
    submitted.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(task["template_db"], db)
    result: dict[str, Any] = {
        "student": student,
        "status": "graded",
        "message": "",
        "notes": [],
        "flags": [],
        "restarts": 0,
        "autograded_dir": None,
        "log": str(stage / "grading.log"),
    }

    source = Path(task["submission_dir"])
    problems, gradable = [], 0
    for name, release_path in task["release_notebooks"].items():
        cells, problem = read_submission(source / f"{name}.ipynb")
        if problem is not None:
            others = sorted(p.name for p in source.glob("*.ipynb")) if source.is_dir() else []
            hint = (
                f" (the folder holds: {', '.join(others[:5])})"
                if others and problem.startswith("no file")
                else ""
            )
            problems.append(f"{name}.ipynb: {problem}{hint}")
            continue
        release = nbformat.read(release_path, as_version=4)
        rebuilt = normalize(cells, release)
        result["notes"] += rebuilt.notes
        result["flags"] += [f for f in flags(cells, release) if f not in result["flags"]]
        if rebuilt.notes:
            rebuilt.notebook.cells.insert(0, notes_cell(rebuilt.notes))
        nbformat.write(rebuilt.notebook, submitted / f"{name}.ipynb")
        gradable += 1
    if (source / "timestamp.txt").is_file():
        shutil.copyfile(source / "timestamp.txt", submitted / "timestamp.txt")
    _copy_files(source, workdir, skip_notebooks=True)
    _copy_files(Path(task["release_dir"]), workdir, skip_notebooks=True)

    if not gradable:
        result.update(status="not gradable", message="; ".join(problems))
        result["results"] = gradebook_io.zero_results(db, task["course_id"], assignment)
        result["seconds"] = time.monotonic() - started
        return result
    if problems:
        result["notes"] += problems

    log_stream = io.StringIO()
    logger = logging.getLogger(f"genlib.course.worker.{os.getpid()}")
    handler = logging.StreamHandler(log_stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    os.environ[sandbox.HOME_VARIABLE] = str(stage / "home")
    os.environ[sandbox.LOG_VARIABLE] = str(stage / "kernel.log")
    try:
        from nbgrader.coursedir import CourseDirectory

        from genlib.course.executor import SandboxedAutograde

        config = _config(task, course_root, db, workdir)
        coursedir = CourseDirectory(config=config)
        converter = SandboxedAutograde(coursedir=coursedir, config=config, log=logger)
        converter.force = True
        converter.start()
    except Exception as error:  # nbgrader reports per-submission failures this way
        logger.error("grading failed: %s\n%s", error, traceback.format_exc())
    finally:
        (stage / "grading.log").write_text(log_stream.getvalue())
        shutil.rmtree(workdir, ignore_errors=True)

    autograded = course_root / "autograded" / student / assignment
    results = gradebook_io.read_results(db, task["course_id"], assignment, student)
    if results is None or not any(autograded.glob("*.ipynb")):
        result.update(
            status="error",
            message="the grader could not run this notebook; see the grading log",
            results=gradebook_io.zero_results(db, task["course_id"], assignment),
        )
    else:
        result["results"] = results
        result["autograded_dir"] = str(autograded)
        result["restarts"] = sum(_restarts(path) for path in autograded.glob("*.ipynb"))
    result["seconds"] = time.monotonic() - started
    return result


def _restarts(path: Path) -> int:
    """How many times the kernel was restarted while grading the autograded notebook ``path``."""
    count = 0
    for cell in nbformat.read(path, as_version=4).cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error" and (
                out.get("ename") == "KernelDied" or "did not stop when interrupted" in out.get("evalue", "")
            ):
                count += 1
    return count


def _kill_strays(keep: int | None = None) -> None:
    """Kill processes this worker started that outlived their submission (a kernel, a kernel's
    child), all but the zygote ``keep``."""
    sandbox.kill_descendants(keep=keep)


def main(argv: list[str] | None = None) -> None:
    """Serve tasks: ``python -m genlib.course.worker LOG KERNELSPEC_DIR LIMITS_JSON [zygote]``."""
    args = argv or sys.argv[1:]
    log_path, spec_dir, limits_json = args[:3]
    use_zygote = args[3:4] == ["zygote"]
    # The protocol gets private copies of stdin/stdout (not inherited by kernels); the standard
    # descriptors become /dev/null and the log, so nothing a kernel writes can reach the pipe.
    inbox = os.fdopen(os.dup(0), "r", encoding="utf-8")
    outbox = os.fdopen(os.dup(1), "w", encoding="utf-8")
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(log, 1)
    os.dup2(log, 2)
    limits = sandbox.Limits(**json.loads(limits_json))
    zygote = None
    socket_path = Path(spec_dir) / "zygote.sock"
    if len(str(socket_path)) > 100:  # the limit of a Unix socket's path
        socket_path = Path(tempfile.mkdtemp(prefix="zygote-")) / "sock"
    if use_zygote:
        zygote = sandbox.start_zygote(socket_path, limits)
    sandbox.write_kernelspec(spec_dir, limits, zygote=socket_path if use_zygote else None)
    os.environ["JUPYTER_PATH"] = sandbox.jupyter_path_with(spec_dir)
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    for var, value in sandbox.kernel_environment(limits).items():
        if var in sandbox.THREAD_VARIABLES:
            os.environ[var] = value  # the worker's own torch import stays small too
    import nbgrader.converters  # noqa: F401 -- pay the import once, before the first task

    outbox.write(json.dumps({"ready": os.getpid()}) + "\n")
    outbox.flush()
    for line in inbox:
        task = json.loads(line)
        if task is None:
            break
        try:
            result = grade(task)
        except Exception as error:  # never let one submission end the worker silently
            result = {
                "student": task.get("student"),
                "status": "error",
                "message": f"the grader failed: {type(error).__name__}: {error}",
                "traceback": traceback.format_exc(),
            }
        _kill_strays(keep=zygote.pid if zygote is not None else None)
        outbox.write(json.dumps(result, default=str) + "\n")
        outbox.flush()


if __name__ == "__main__":
    main()
