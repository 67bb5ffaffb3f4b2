"""A per-assignment summary: the distribution of scores and the pass rate of each graded part.

A *graded part* is one of nbgrader's graded cells (a test cell with points). Its pass rate is
the share of submissions that earned all of its points; the share with some but not all points
is given as well. Written to ``reports/<assignment>/``: ``summary.png`` (histogram of total
scores, and the pass rates as bars), ``summary.md`` (the same as tables) and ``parts.csv``.
"""

from __future__ import annotations

import csv
import statistics
from pathlib import Path
from typing import Any

from genlib.course.course import Course


def summarize(course: Course, assignment: str) -> dict[str, Any]:
    """The numbers of the summary (no files written): totals and per-part counts."""
    from genlib.course.autograde import load_report
    from genlib.course.gradebook import assignment_scores

    course.check_assignment(assignment)
    data = assignment_scores(course.db_url, course.course_id, assignment)
    students = data["students"]
    maximum = sum(points for _, _, points in data["cells"])
    totals = [s["score"] for s in students.values()]
    parts = []
    for notebook, cell, points in data["cells"]:
        got = [s["cells"].get((notebook, cell), 0.0) or 0.0 for s in students.values()]
        n = len(got)
        full = sum(1 for g in got if g >= points)
        partial = sum(1 for g in got if 0 < g < points)
        parts.append(
            {
                "part": cell if len({nb for nb, _, _ in data["cells"]}) == 1 else f"{notebook}/{cell}",
                "points": points,
                "submissions": n,
                "pass_rate": full / n if n else 0.0,
                "partial_rate": partial / n if n else 0.0,
                "mean_points": sum(got) / n if n else 0.0,
            }
        )
    statuses: dict[str, int] = {}
    for row in load_report(course, assignment).values():
        statuses[row.get("status", "graded")] = statuses.get(row.get("status", "graded"), 0) + 1
    return {
        "assignment": assignment,
        "max_score": maximum,
        "submissions": len(totals),
        "totals": sorted(totals),
        "mean": statistics.fmean(totals) if totals else 0.0,
        "median": statistics.median(totals) if totals else 0.0,
        "full_marks": sum(1 for t in totals if t >= maximum) if maximum else 0,
        "parts": parts,
        "statuses": statuses,
    }


def markdown(summary: dict[str, Any]) -> str:
    """The summary as markdown: overall numbers, score table, part table."""
    lines = [
        f"# {summary['assignment']}: summary",
        "",
        f"{summary['submissions']} submissions; score out of {summary['max_score']:g}: "
        f"mean {summary['mean']:.2f}, median {summary['median']:g}, "
        f"{summary['full_marks']} with full marks.",
    ]
    if summary["statuses"]:
        shown = ", ".join(f"{k}: {v}" for k, v in sorted(summary["statuses"].items()))
        lines += ["", f"Grading outcomes: {shown}."]
    lines += ["", "| score | submissions |", "| ---: | ---: |"]
    counts: dict[float, int] = {}
    for total in summary["totals"]:
        counts[total] = counts.get(total, 0) + 1
    lines += [f"| {score:g} | {count} |" for score, count in sorted(counts.items())]
    lines += [
        "",
        "| graded part | points | pass rate (all points) | some points | mean points |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for part in summary["parts"]:
        lines.append(
            f"| {part['part']} | {part['points']:g} | {100 * part['pass_rate']:.0f}% | "
            f"{100 * part['partial_rate']:.0f}% | {part['mean_points']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def plot(summary: dict[str, Any], path: Path) -> Path:
    """Histogram of total scores and pass rates per part, side by side, saved as PNG."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parts = summary["parts"]
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(11, max(3.5, 0.35 * len(parts) + 1.5)), gridspec_kw={"width_ratios": [1, 1.2]}
    )
    maximum = summary["max_score"] or 1
    step = 1 if maximum <= 40 else maximum / 40
    edges = [i * step - step / 2 for i in range(int(maximum / step) + 2)]
    left.hist(summary["totals"], bins=edges, color="tab:blue", edgecolor="white", label="submissions")
    left.axvline(summary["mean"], color="black", linestyle="--", label=f"mean {summary['mean']:.1f}")
    left.set_xlabel(f"total score (out of {maximum:g})")
    left.set_ylabel("number of submissions")
    left.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    left.set_title(f"{summary['assignment']}: scores of {summary['submissions']} submissions")
    left.legend()
    names = [p["part"] for p in parts][::-1]
    full = [100 * p["pass_rate"] for p in parts][::-1]
    partial = [100 * p["partial_rate"] for p in parts][::-1]
    right.barh(names, full, color="tab:green", label="all points")
    right.barh(names, partial, left=full, color="tab:orange", label="some points")
    right.set_xlim(0, 100)
    right.set_xlabel("share of submissions (%)")
    right.set_title("pass rate of each graded part")
    right.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_summary(course: Course, assignment: str, output_dir: str | Path | None = None) -> dict[str, Any]:
    """Write ``summary.png``, ``summary.md`` and ``parts.csv``; return the summary with their paths."""
    summary = summarize(course, assignment)
    folder = Path(output_dir) if output_dir else course.reports_dir / assignment
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "summary.md").write_text(markdown(summary))
    with open(folder / "parts.csv", "w", newline="") as handle:
        writer = csv.DictWriter(
            handle, ["part", "points", "submissions", "pass_rate", "partial_rate", "mean_points"]
        )
        writer.writeheader()
        for part in summary["parts"]:
            writer.writerow({k: (round(v, 4) if isinstance(v, float) else v) for k, v in part.items()})
    summary["files"] = {
        "png": str(plot(summary, folder / "summary.png")),
        "markdown": str(folder / "summary.md"),
        "csv": str(folder / "parts.csv"),
    }
    return summary
