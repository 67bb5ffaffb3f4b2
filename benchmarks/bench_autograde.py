"""Wall time of ``course autograde`` on 100 submissions of one assignment, with 1 and 2 workers.

The submissions are copies of a mixed set (``tests/crafted_submissions.mixed``): the solution, the
blank release, the assignment's sample submissions (a cheater, typical mistakes, a broken
notebook), an exception, a syntax error, edited tests, invalid JSON, genlib's own function handed
in. A temporary course releases the assignment, collects the copies, and grades them all, once
per worker count, from scratch; the scores of the runs must agree.

Run: ``.venv/bin/python benchmarks/bench_autograde.py [--copies 100] [--workers 1 2] [--no-zygote]``.
Prints the wall time of each run (worker start-up included), per submission, and the
processor's load while it ran (the machine is shared: other work slows it).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from genlib.course.autograde import autograde  # noqa: E402
from genlib.course.collect import collect  # noqa: E402
from genlib.course.course import Course  # noqa: E402
from genlib.course.release import release  # noqa: E402
from tests.crafted_submissions import Assignment, mixed  # noqa: E402


def prepare(where: Path, assignment: str, copies: int) -> Course:
    """A course with ``assignment`` released and ``copies`` submissions collected."""
    where.mkdir(parents=True)
    shutil.copy(ROOT / "nbgrader_config.py", where / "nbgrader_config.py")
    shutil.copytree(ROOT / "solutions" / assignment, where / "solutions" / assignment)
    course = Course.open(where)
    release(course, assignment)
    kinds = mixed(Assignment(assignment))
    inbox = where.parent / f"{where.name}-inbox"
    inbox.mkdir()
    for i in range(copies):
        name, content = kinds[i % len(kinds)]
        (inbox / f"s{i:03d}-{name}.ipynb").write_bytes(content)
    collect(course, assignment, inbox)
    return course


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--assignment", default="ch00_foundations")
    parser.add_argument("--copies", type=int, default=100)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--no-zygote", action="store_true", help="start every kernel as a fresh Python")
    args = parser.parse_args()
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    kinds = [name for name, _ in mixed(Assignment(args.assignment))]
    print(
        f"{args.copies} submissions of {args.assignment}, copies of {len(kinds)} kinds: {', '.join(kinds)}; "
        f"{os.cpu_count()} cores; kernels {'fresh' if args.no_zygote else 'forked from a zygote'}"
    )
    scores = {}
    with tempfile.TemporaryDirectory(prefix="bench-autograde-") as tmp:
        base = prepare(Path(tmp) / "base", args.assignment, args.copies)
        for workers in args.workers:
            course = Course.open(shutil.copytree(base.root, Path(tmp) / f"w{workers}"))
            load_before = os.getloadavg()[0]
            start = time.perf_counter()
            rows = autograde(
                course, args.assignment, workers=workers, progress=False, zygote=not args.no_zygote
            )
            wall = time.perf_counter() - start
            load_after = os.getloadavg()[0]
            statuses: dict[str, int] = {}
            for row in rows:
                statuses[row["status"]] = statuses.get(row["status"], 0) + 1
            scores[workers] = {row["student"]: row["cells"] for row in rows}
            print(
                f"{workers} worker(s): {len(rows)} submissions in {wall:.1f} s "
                f"({wall / len(rows):.2f} s each); {statuses}; "
                f"load average {load_before:.1f} -> {load_after:.1f}"
            )
    runs = list(scores.values())
    same = all(run == runs[0] for run in runs[1:])
    print("scores agree across runs" if same else "SCORES DIFFER between runs")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
