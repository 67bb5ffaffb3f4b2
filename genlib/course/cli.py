"""The ``course`` command: one command per step of running the course.

::

    course release A                      # student version of A into the release folder + gradebook
    course collect A SOURCE               # a folder of notebooks or an LMS zip -> submitted/<student>/A/
    course autograde A --workers 2        # grade in parallel, sandboxed -> gradebook, autograded/
    course feedback A                     # feedback/<student>/A/*.html, without hidden tests
    course grades                         # grades.csv
    course summary A                      # reports/A/summary.{png,md} and parts.csv
    course check NOTEBOOK                 # (students) run the visible tests, see which parts pass

``--course DIR`` names the course directory (default: the folder holding ``nbgrader_config.py``,
found from the current folder upwards). ``python -m genlib.course`` is the same command.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from genlib.course.course import Course, CourseError


def _course(args: argparse.Namespace) -> Course:
    return Course.open(args.course)


def cmd_release(args: argparse.Namespace) -> int:
    from genlib.course.release import release

    for path in release(_course(args), args.assignment):
        print(f"released {path}")
    return 0


def cmd_collect(args: argparse.Namespace) -> int:
    from genlib.course.collect import collect

    items = collect(_course(args), args.assignment, args.source, pattern=args.pattern, dry_run=args.dry_run)
    width = max([len(i.path) for i in items] + [4])
    for item in items:
        who = f"-> {item.student} ({item.rule})" if item.student else ""
        why = f"  [{item.reason}]" if item.reason else ""
        print(f"  {item.status:<9} {item.path:<{width}} {who}{why}")
    counts: dict[str, int] = {}
    for item in items:
        counts[item.status] = counts.get(item.status, 0) + 1
    print(", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "nothing found")
    if args.dry_run:
        print("(dry run: nothing written)")
    return 1 if counts.get("unmapped") else 0


def cmd_autograde(args: argparse.Namespace) -> int:
    from genlib.course.autograde import autograde, threads_per_kernel
    from genlib.course.sandbox import Limits

    course = _course(args)
    limits = Limits(
        memory_mb=args.memory_mb,
        cpu_seconds=args.cpu_seconds,
        cell_timeout=args.cell_timeout or course.cell_timeout,
        notebook_seconds=args.notebook_timeout,
        threads=threads_per_kernel(args.workers),
    )
    started = time.monotonic()
    rows = autograde(
        course,
        args.assignment,
        workers=args.workers,
        limits=limits,
        students=args.student or None,
        force=args.force,
        keep_stage=args.keep_stage,
        progress=not args.quiet,
        zygote=not args.no_zygote,
    )
    wall = time.monotonic() - started
    if not rows:
        print("nothing to grade (no submission changed since it was graded; --force grades again)")
        return 0
    width = max(len(r["student"]) for r in rows)
    for row in rows:
        extra = "; ".join(filter(None, [row["message"], *row["notes"][:2]]))
        flags = f"  flags: {', '.join(row['flags'])}" if row["flags"] else ""
        print(
            f"  {row['student']:<{width}}  {row['score']:>5g} / {row['max_score']:<4g} {row['status']:<12}"
            f" {row['seconds']:6.1f} s  {extra[:100]}{flags}"
        )
    bad = [r for r in rows if r["status"] != "graded"]
    print(
        f"graded {len(rows) - len(bad)} of {len(rows)} submissions of {args.assignment} in {wall:.1f} s "
        f"with {args.workers} worker(s); report: reports/{args.assignment}/autograde.csv"
    )
    return 0


def cmd_feedback(args: argparse.Namespace) -> int:
    from genlib.course.feedback import generate_feedback

    course = _course(args)
    rows = generate_feedback(course, args.assignment, args.student or None)
    for row in rows:
        print(f"  {row['student']:<20} {row['status']:<12} {row['message']}")
    print(f"feedback for {len(rows)} students in {course.feedback_dir}/<student>/{args.assignment}/")
    return 1 if any(r["status"] == "failed" for r in rows) else 0


def cmd_grades(args: argparse.Namespace) -> int:
    from genlib.course.grades import export_grades

    path = export_grades(_course(args), args.output, args.assignment or None)
    print(f"wrote {path}")
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    from genlib.course.summary import write_summary

    summary = write_summary(_course(args), args.assignment, args.output_dir)
    print(Path(summary["files"]["markdown"]).read_text())
    print(f"figure: {summary['files']['png']}; table: {summary['files']['csv']}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from genlib.course.sandbox import Limits
    from genlib.course.selfcheck import render, self_check

    check = self_check(args.notebook, limits=Limits(cell_timeout=args.timeout))
    print(render(check))
    return 0 if check.ok else 1


def parser() -> argparse.ArgumentParser:
    """The argument parser of the ``course`` command."""
    main = argparse.ArgumentParser(
        prog="course", description="Run the course: release, collect, autograde, feedback, grades."
    )
    main.add_argument("--course", default=".", help="the course directory (default: found from here)")
    sub = main.add_subparsers(dest="command", required=True)

    p = sub.add_parser("release", help="generate the student version of an assignment")
    p.add_argument("assignment")
    p.set_defaults(run=cmd_release)

    p = sub.add_parser("collect", help="collect submissions from a folder or an LMS zip")
    p.add_argument("assignment")
    p.add_argument("source", help="a folder of notebooks, or a .zip downloaded from the LMS")
    p.add_argument("--pattern", help="regex with a group (?P<student>...) matched against each path")
    p.add_argument("--dry-run", action="store_true", help="show the mapping, write nothing")
    p.set_defaults(run=cmd_collect)

    p = sub.add_parser("autograde", help="grade submissions in parallel, sandboxed")
    p.add_argument("assignment")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--student", action="append", help="grade only this student (repeatable)")
    p.add_argument("--force", action="store_true", help="grade again even if unchanged")
    p.add_argument(
        "--cell-timeout", type=int, default=None, help="seconds per cell (default: Execute.timeout)"
    )
    p.add_argument("--notebook-timeout", type=int, default=600, help="seconds per notebook (default 600)")
    p.add_argument("--memory-mb", type=int, default=4096, help="kernel memory limit in MiB (default 4096)")
    p.add_argument("--cpu-seconds", type=int, default=600, help="kernel CPU-time limit (default 600)")
    p.add_argument("--keep-stage", action="store_true", help="keep the temporary grading folders")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--no-zygote", action="store_true", help="start every kernel as a fresh Python (slower)")
    p.set_defaults(run=cmd_autograde)

    p = sub.add_parser("feedback", help="feedback HTML per student, without hidden tests")
    p.add_argument("assignment")
    p.add_argument("--student", action="append", help="only this student (repeatable)")
    p.set_defaults(run=cmd_feedback)

    p = sub.add_parser("grades", help="export grades.csv")
    p.add_argument("--output", help="where to write (default: grades.csv in the course directory)")
    p.add_argument("--assignment", action="append", help="only this assignment (repeatable)")
    p.set_defaults(run=cmd_grades)

    p = sub.add_parser("summary", help="histogram of scores and pass rate per graded part")
    p.add_argument("assignment")
    p.add_argument("--output-dir", help="default: reports/<assignment>/")
    p.set_defaults(run=cmd_summary)

    p = sub.add_parser("check", help="(students) run a notebook's visible tests")
    p.add_argument("notebook")
    p.add_argument("--timeout", type=int, default=30, help="seconds per cell (default 30)")
    p.set_defaults(run=cmd_check)
    return main


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``course`` console script."""
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except (CourseError, ValueError) as error:
        print(f"course {args.command}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
