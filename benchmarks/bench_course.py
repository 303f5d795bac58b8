"""How long the course takes a learner: every notebook executed from an empty cache, timed.

A learner's first run starts with no ``data/`` folder (no rendered worlds, no cached features,
no compiled numba kernels). This script points ``MMKIT_DATA`` and ``NUMBA_CACHE_DIR`` at fresh
temporary folders and executes the notebooks in order with nbconvert (copies; the committed
notebooks are not touched), timing each one:

- ``course`` mode (default): one empty data folder for the whole run, notebooks in order, as a
  learner who runs 00 to 11 in one sitting (later notebooks reuse what earlier ones cached);
- ``--each-cold``: every notebook with its own empty folder (the "at most 3 minutes on its own"
  check).

Usage::

    python benchmarks/bench_course.py                   # the whole course, in order
    python benchmarks/bench_course.py 10 11 --each-cold
    make course-time

Writes ``benchmarks/results/course_runtime[_each_cold].json`` and prints a markdown table with
the machine (cores, load average before and after) so a number can be read with its context.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbconvert.preprocessors import ExecutePreprocessor

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
RESULTS = ROOT / "benchmarks" / "results"
#: the per-notebook and whole-course budgets, in seconds (2 cores, empty cache)
NOTEBOOK_BUDGET_S = 180
COURSE_BUDGET_S = 15 * 60


def notebooks(selected: list[str]) -> list[Path]:
    found = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if not selected:
        return found
    chosen = [p for p in found if p.name[:2] in {s.zfill(2) for s in selected}]
    missing = sorted({s.zfill(2) for s in selected} - {p.name[:2] for p in chosen})
    if missing:
        sys.exit(f"bench_course: no notebook numbered {', '.join(missing)}")
    return chosen


def execute(path: Path, data_dir: Path, numba_dir: Path, timeout: int) -> float:
    """Run ``path`` (a copy, in its own folder as Jupyter would) with the given cache folders;
    seconds of wall time."""
    env_before = {k: os.environ.get(k) for k in ("MMKIT_DATA", "NUMBA_CACHE_DIR", "MPLBACKEND")}
    os.environ["MMKIT_DATA"] = str(data_dir)
    os.environ["NUMBA_CACHE_DIR"] = str(numba_dir)
    os.environ.pop("MPLBACKEND", None)
    try:
        nb = nbformat.read(path, as_version=4)
        ep = ExecutePreprocessor(timeout=timeout, kernel_name="python3")
        t0 = time.perf_counter()
        ep.preprocess(nb, {"metadata": {"path": str(path.parent)}})
        return time.perf_counter() - t0
    finally:
        for k, v in env_before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("numbers", nargs="*", help="notebook numbers (default: all)")
    ap.add_argument("--each-cold", action="store_true",
                    help="give every notebook its own empty cache")
    ap.add_argument("--timeout", type=int, default=900, help="seconds per cell")
    args = ap.parse_args()
    chosen = notebooks(args.numbers)
    load_before = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory(prefix="mmkit-course-") as tmp:
        shared = Path(tmp) / "data", Path(tmp) / "numba"
        for path in chosen:
            if args.each_cold:
                own = Path(tmp) / path.stem
                dirs = own / "data", own / "numba"
            else:
                dirs = shared
            for d in dirs:
                d.mkdir(parents=True, exist_ok=True)
            seconds = execute(path, *dirs, timeout=args.timeout)
            rows.append({"notebook": path.stem, "seconds": round(seconds, 1)})
            print(f"{path.stem}: {seconds:.1f} s", file=sys.stderr, flush=True)
    total = sum(r["seconds"] for r in rows)
    result = {
        "mode": "each notebook from its own empty cache" if args.each_cold
        else "the course in order from one empty cache",
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(),
                    "load_average_before": [round(x, 2) for x in load_before],
                    "load_average_after": [round(x, 2) for x in os.getloadavg()]},
        "notebooks": rows, "total_seconds": round(total, 1),
        "budgets": {"notebook_s": NOTEBOOK_BUDGET_S, "course_s": COURSE_BUDGET_S},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "course_runtime_each_cold.json" if args.each_cold else "course_runtime.json"
    if args.numbers:
        name = name.replace(".json", "_" + "_".join(sorted(args.numbers)) + ".json")
    (RESULTS / name).write_text(json.dumps(result, indent=2) + "\n")
    print(f"| notebook | seconds | within {NOTEBOOK_BUDGET_S} s |\n|---|---:|---|")
    for r in rows:
        print(f"| {r['notebook']} | {r['seconds']:.1f} | "
              f"{'yes' if r['seconds'] <= NOTEBOOK_BUDGET_S else 'no'} |")
    print(f"| **total** | **{total:.1f}** | course budget {COURSE_BUDGET_S} s: "
          f"{'within' if total <= COURSE_BUDGET_S else 'over'} |")
    print(f"\n{result['mode']}; {result['machine']['cores']} cores; load average before "
          f"{result['machine']['load_average_before']}, after "
          f"{result['machine']['load_average_after']}")


if __name__ == "__main__":
    main()
