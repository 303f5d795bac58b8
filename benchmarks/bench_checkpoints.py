"""Retrain every committed checkpoint from scratch and compare with its manifest.

For each model in ``mmkit train --list`` that has a committed checkpoint in ``mmkit/trained/``:
train it again with the package's own code (same config, same seed) into a temporary folder,
then print, per metric, the committed value, the fresh value and their ratio, with both wall
times. The sha256 column says whether the fresh weights are byte-identical (they should be
on the same machine and library versions: every draw is seeded).

    .venv/bin/python benchmarks/bench_checkpoints.py            # all models
    .venv/bin/python benchmarks/bench_checkpoints.py NAME ...   # some
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from pathlib import Path

import torch

from mmkit.checkpoints import PACKAGE_DIR, specs, train_and_save


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="models to retrain (default: all committed)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    found = specs()
    names = args.names or sorted(n for n in found if (PACKAGE_DIR / f"{n}.json").is_file())
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, "
          f"torch {torch.__version__.split('+')[0]}")
    rows = []
    for name in names:
        if name not in found:
            print(f"unknown model {name!r}", file=sys.stderr)
            return 2
        committed = json.loads((PACKAGE_DIR / f"{name}.json").read_text(encoding="utf-8"))
        with tempfile.TemporaryDirectory() as tmp:
            _, fresh = train_and_save(name, Path(tmp), progress=not args.quiet,
                                      seed=committed["seed"], **{
                                          k: v for k, v in committed["config"].items()
                                          if found[name].config.get(k) != v})
        same = "identical" if fresh["sha256"] == committed["sha256"] else "differs"
        rows.append(f"| {name} | wall time (s) | {committed['wall_time_s']} | "
                    f"{fresh['wall_time_s']} | {fresh['wall_time_s'] / max(committed['wall_time_s'], 1e-9):.2f} | {same} |")
        for metric, value in committed["metrics"].items():
            new = fresh["metrics"].get(metric)
            if isinstance(value, (int, float)) and isinstance(new, (int, float)):
                ratio = f"{new / value:.3f}" if value else "-"
                rows.append(f"| {name} | {metric} | {value:.4f} | {new:.4f} | {ratio} | |")
    print("\n| model | metric | committed | retrained | ratio | weights |")
    print("|---|---|---:|---:|---:|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
