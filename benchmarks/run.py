"""``make bench``: every benchmark case, the scaling runs and the roofline; JSON and markdown out.

Run from the repository root::

    .venv/bin/python -m benchmarks.run                   # CPU, everything (about 5 minutes here)
    .venv/bin/python -m benchmarks.run --only kde,em     # some groups
    .venv/bin/python -m benchmarks.run --device cuda     # on a GPU machine

Writes ``benchmarks/results/<device>.json`` (machine, every case with all its timings and agreement
figures, scaling series, roofline) and ``benchmarks/results/<device>.md`` (the table). The book's
appendix page *Performance* reads these files; it never runs a benchmark itself.
"""

from __future__ import annotations

import argparse
import importlib
import os
import time
from dataclasses import asdict

import torch
from tqdm.auto import tqdm

from benchmarks.harness import machine_info, markdown_table, run_case, write_results

GROUPS = ("sampling", "kde", "em", "rbm")
RESULTS = os.path.join(os.path.dirname(__file__), "results")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument(
        "--only", default=",".join(GROUPS), help="comma-separated groups: " + ", ".join(GROUPS)
    )
    parser.add_argument("--no-scaling", action="store_true", help="skip the scaling runs and the roofline")
    parser.add_argument("--out", default=RESULTS, help="folder for <device>.json and <device>.md")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device here")
    groups = [g for g in args.only.split(",") if g]
    unknown = sorted(set(groups) - set(GROUPS))
    if unknown:
        parser.error(f"unknown group(s) {unknown}; choose from {list(GROUPS)}")
    started = time.perf_counter()
    modules = {g: importlib.import_module(f"benchmarks.cases.{g}") for g in groups}
    cases = [case for g in groups for case in modules[g].cases(args.device)]
    results = []
    for case in tqdm(cases, desc="benchmark cases", unit="case"):
        results.append(run_case(case))
        tqdm.write(f"{case.key}: genlib {results[-1].genlib_s:.4g} s, anchor {results[-1].anchor_s:.4g} s, "
                   f"{results[-1].ratio:.2f}x")  # fmt: skip
    payload: dict = {"machine": machine_info(), "device": args.device, "cases": [asdict(r) for r in results]}
    if not args.no_scaling:
        payload["scaling"] = {}
        for g in tqdm([g for g in groups if hasattr(modules[g], "scaling")], desc="scaling", unit="group"):
            payload["scaling"][g] = modules[g].scaling(args.device)
        if "em" in modules:
            payload["roofline"] = modules["em"].roofline(args.device)
    payload["seconds"] = time.perf_counter() - started
    os.makedirs(args.out, exist_ok=True)
    json_path = os.path.join(args.out, f"{args.device}.json")
    md_path = os.path.join(args.out, f"{args.device}.md")
    write_results(json_path, payload)
    table = markdown_table(results)
    with open(md_path, "w") as f:
        info = payload["machine"]
        f.write(f"Measured {info['date']} on {info['processor']} ({info['torch_threads']} torch threads, "
                f"torch {info['torch']}, device {args.device}).\n\n")  # fmt: skip
        f.write(table)
        notes = [f"- `{r.key}`: {r.notes}" for r in results if r.notes]
        if notes:
            f.write("\n" + "\n".join(notes) + "\n")
    print(table)
    print(f"wrote {json_path} and {md_path} in {payload['seconds']:.0f} s")


if __name__ == "__main__":
    main()
