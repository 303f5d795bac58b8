"""How long the world takes to generate on this machine (not a test).

    python benchmarks/bench_world.py [--n 5000]

Prints one line per stage and the total for N scenes with captions, images and audio, plus the
cost of spoken captions (espeak-ng, per utterance) and of the ground-truth relevance.
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from mmkit.data import World, WorldConfig


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--speech", type=int, default=30, help="captions to speak")
    args = parser.parse_args()
    rows = []
    t0 = time.perf_counter()
    world = World(WorldConfig(n=args.n, seed=0))
    rows.append(("scenes + captions + splits", time.perf_counter() - t0))
    t = time.perf_counter()
    world.images  # noqa: B018
    rows.append((f"images ({world.config.image_size} px)", time.perf_counter() - t))
    t = time.perf_counter()
    world.audio  # noqa: B018
    rows.append(("sound clips (1 s, 16 kHz)", time.perf_counter() - t))
    total = sum(r[1] for r in rows)
    t = time.perf_counter()
    test = world.indices("test")
    rel = world.caption_relevance(world.caption_indices(test), test)
    rows.append((f"relevance, test split ({rel.shape[0]} x {rel.shape[1]})", time.perf_counter() - t))
    t = time.perf_counter()
    for j in range(args.speech):
        world.speech(j)
    per = (time.perf_counter() - t) / max(1, args.speech)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    print(f"world n={args.n}, seed=0")
    for name, sec in rows:
        print(f"  {name:<42} {sec:7.2f} s")
    print(f"  {'TOTAL: scenes, captions, images, audio':<42} {total:7.2f} s")
    print(f"  {'spoken caption (espeak-ng, per caption)':<42} {per:7.3f} s")
    print(f"  memory: images {world.images.nbytes / 2**20:.0f} MiB, audio {world.audio.nbytes / 2**20:.0f} MiB")
    assert np.isfinite(world.audio).all()


if __name__ == "__main__":
    main()
