"""What bench_photos.py and bench_serve.py share: fresh-process runs with their wall time and
peak RSS (through :data:`LAUNCHER`), the load average, the results file written after every
part (a skipped part keeps its numbers from the file), the work folder, and the text queries.

Not a benchmark itself (``make bench`` runs ``benchmarks/bench_*.py``); the scripts import it
as ``_common`` (their own folder is on ``sys.path`` when run as ``python benchmarks/X.py``).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
BIN = Path(sys.executable).parent
MMKIT = str(BIN / "mmkit") if (BIN / "mmkit").exists() else None

#: distinct text queries: bench_photos.py's warm queries, bench_serve.py's ``pretrained`` part
TEXT_QUERIES = [
    "a cat", "a dog", "a cup of coffee", "a rocket launch", "flowers", "a bakery", "a menu",
    "a horse", "a sports car", "a bridge", "a mountain lake", "a clock", "coins", "a bird",
    "a boat on the sea", "a pizza", "a red wine glass", "a chessboard", "a castle",
    "a butterfly", "a train", "a laptop computer", "a guitar", "a tiger", "a strawberry",
    "a lighthouse", "an umbrella", "a bicycle", "a teapot", "a volcano", "a church",
    "a bowl of soup", "a penguin", "a snowy street", "a wooden fence", "a fountain pen",
    "a banana", "a violin", "an aeroplane", "a candle", "a key", "a pumpkin", "a zebra",
    "a parrot", "a tennis ball", "a steam locomotive", "a mushroom", "a lemon", "a daisy",
    "a space shuttle",
]


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def median(xs: list[float]) -> float:
    return round(float(np.median(xs)), 3)


def mmkit_cmd(*args: str) -> list[str]:
    return [MMKIT, *args] if MMKIT else [sys.executable, "-m", "mmkit", *args]


#: runs a command and writes its wall time and peak RSS (wait4) to a file. A child's
#: ru_maxrss on Linux starts at its parent's peak RSS (the parent's memory is the child's
#: until exec, and exec keeps that high-water mark; with vfork, which subprocess uses, it is
#: the parent's own peak), so measured from a benchmark's process (a loaded method, rendered
#: images, torch imported) every child would report at least that process's peak: the
#: command is started from this small launcher instead.
LAUNCHER = """
import json, os, subprocess, sys, time
t = time.perf_counter()
p = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(p.pid, 0)
wall = time.perf_counter() - t
p.returncode = os.waitstatus_to_exitcode(status)
with open(sys.argv[1], "w") as f:
    json.dump({"wall_s": wall, "max_rss_mib": usage.ru_maxrss / 1024,
               "returncode": p.returncode}, f)
"""


def timed_run(cmd: list[str], env: dict | None = None) -> dict:
    """Run ``cmd`` in a fresh process started by :data:`LAUNCHER` (with ``env``, else this
    process's environment): wall seconds (from the launcher, so its own start-up is not
    counted), peak RSS (MiB), stdout and the tail of stderr. Raises on a non-zero exit."""
    with tempfile.TemporaryDirectory() as d:
        report = Path(d) / "run.json"
        p = subprocess.run([sys.executable, "-c", LAUNCHER, str(report), *cmd],
                           check=False, capture_output=True, env=env, cwd=ROOT)
        r = json.loads(report.read_text()) if report.is_file() else {"returncode": -1}
    stdout, stderr = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
    if p.returncode != 0 or r["returncode"] != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r['returncode']}):\n{stderr[-3000:]}")
    return {"wall_s": round(r["wall_s"], 3), "max_rss_mib": round(r["max_rss_mib"], 1),
            "stdout": stdout, "stderr_tail": stderr[-500:]}


def cold_searches(index: Path, text: str, runs: int) -> dict:
    """``mmkit search --index INDEX --text TEXT``, a fresh process each, ``runs`` times: the
    wall seconds of each, their median, the largest peak RSS (MiB)."""
    searches = [timed_run(mmkit_cmd("search", "--index", str(index), "--text", text))
                for _ in range(runs)]
    walls = [r["wall_s"] for r in searches]
    return {"search_s": walls, "search_median_s": median(walls),
            "search_max_rss_mib": max(r["max_rss_mib"] for r in searches)}


# ------------------------------------------------------------------------- the script
def add_run_args(ap: argparse.ArgumentParser, parts: tuple[str, ...], results: str,
                 keep_help: str) -> None:
    """``--skip`` (parts), ``--keep DIR`` and ``--out`` (default ``results/<results>``)."""
    ap.add_argument("--skip", nargs="*", default=[], choices=list(parts))
    ap.add_argument("--keep", default=None, metavar="DIR", help=keep_help)
    ap.add_argument("--out", default=str(RESULTS / results),
                    help="results file; parts skipped keep their numbers from it")


@contextlib.contextmanager
def workdir(keep: str | None, *, exist_ok: bool) -> Iterator[Path]:
    """``keep`` (made here; ``exist_ok`` as :meth:`Path.mkdir`'s) and kept, or a temporary
    folder removed at the end."""
    if keep:
        tmp = Path(keep)
        tmp.mkdir(parents=True, exist_ok=exist_ok)
        yield tmp
    else:
        with tempfile.TemporaryDirectory() as d:
            yield Path(d)


class Results:
    """The results file: ``{"runs": {part: header of the run that measured it}, part: ...}``,
    written after every part, so that a later failure keeps what was measured. Parts in
    ``skip`` keep their numbers (and their run's header) from the file as it was. ``header``
    describes this run (its start, the machine, the options)."""

    def __init__(self, path: str | Path, parts: tuple[str, ...], skip: list[str],
                 header: dict) -> None:
        self.path = Path(path)
        self.parts = parts
        old = json.loads(self.path.read_text()) if self.path.is_file() else {}
        self.out = {p: old[p] for p in parts if p in old and p in skip}
        self.runs = dict(old.get("runs", {}))
        self.t_start = time.perf_counter()
        self.header = header

    def elapsed(self) -> float:
        return round(time.perf_counter() - self.t_start, 1)

    def add(self, part: str, value: dict) -> dict:
        """Record ``part`` and write the file (with this run's header, the load average now
        and the seconds since the start)."""
        self.out[part] = value
        self.header.update(load_average_now=loadavg(), elapsed_s=self.elapsed())
        self.runs[part] = dict(self.header)
        self.path.parent.mkdir(exist_ok=True, parents=True)
        self.path.write_text(json.dumps(
            {"runs": self.runs, **{p: self.out[p] for p in self.parts if p in self.out}},
            indent=1) + "\n")
        return value

    def done(self) -> None:
        print(f"wrote {self.path} ({self.elapsed()} s, load average {loadavg()})")
