"""Explaining text->image results, graded against the world (notebook 10, section 5), on every
test caption.

Protocol: the committed ``joint_world`` checkpoint (``get_method("joint")``, trained on fresh
scenes of seed 2001), the evaluation world (n = 2,500, seed 0), test split: 441 scenes, all
five captions of each (2,205). Pixels: the similarity Grad-CAM of each caption on its own
image and on the image it ranks first among the 441; the pointing game with a 4 px tolerance
(15 px at 224 px, Zhang et al. 2016, scaled to 64 px) against the image centre and the exact
random-point rate, by caption kind. Words: occlusion (remove / unknown token) and integrated
gradients (padding baseline, trapezoid rule), the share of captions whose top word names the
main object's shape, colour or texture against a word picked at random, and integrated
gradients' completeness gap.

    .venv/bin/python benchmarks/bench_challenges_explain.py [--per-image 5] [--steps 32]
        [--threads 1] [--out benchmarks/results/challenges_explain.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> int:
    import torch

    from mmkit._io import atomic_write_text
    from mmkit.challenges import explain
    from mmkit.methods import get_method
    from mmkit.scoring import eval_world

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--per-image", type=int, default=5, help="captions per test scene")
    ap.add_argument("--steps", type=int, default=32, help="integrated gradients' steps")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(RESULTS / "challenges_explain.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    load_start = [round(x, 2) for x in os.getloadavg()]
    world = eval_world()
    test = world.indices("test")
    images = np.stack([world.render(int(i)) for i in test])
    joint = get_method("joint", progress=False)

    t1 = time.perf_counter()
    game = explain.pointing_game(joint, world, images=images, per_image=args.per_image,
                                 top_ranked=True)
    pointing_s = time.perf_counter() - t1
    print(f"pointing game: {len(game.hit)} captions in {pointing_s:.0f} s", flush=True)

    t2 = time.perf_counter()
    pos = np.searchsorted(test, world.caption_image[game.captions])
    words = explain.word_game(joint, world, captions=game.captions, images=images[pos],
                              steps=args.steps)
    words_s = time.perf_counter() - t2
    print(f"word attributions: {len(words.captions)} captions in {words_s:.0f} s", flush=True)

    out = {
        "setup": {"checkpoint": "joint_world", "world": "eval_world() n=2500 seed=0, test split",
                  "scenes": len(test), "captions": len(game.hit),
                  "tolerance_px": game.tol, "ig_steps": args.steps, "threads": args.threads,
                  "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                  "load_average_start": load_start,
                  "load_average_end": [round(x, 2) for x in os.getloadavg()],
                  "pointing_s": round(pointing_s, 1), "words_s": round(words_s, 1),
                  "total_s": round(time.perf_counter() - t0, 1)},
        "pointing": game.table(),
        "top_ranked": {**game.top_ranked(), **game.extra},
        "words": words.table(),
        "ig_completeness_gap": {"max": float(words.completeness_gap.max()),
                                "median": float(np.median(words.completeness_gap))},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(out, indent=1) + "\n")

    print("\n| captions | n | heat-map peak | centre | random point | miss on another object |")
    print("|---|---:|---:|---:|---:|---:|")
    for kind, row in out["pointing"].items():
        print(f"| {kind} | {row['n']} | {row['heat map']:.3f} | {row['centre']:.3f} | "
              f"{row['random']:.3f} | {row['miss on another object']:.3f} |")
    top = out["top_ranked"]
    print(f"\nfirst-ranked image: has the object {top['first image has the object']:.3f}, is "
          f"the own image {top['first image is the own image']:.3f}; peak on the object "
          f"{top['heat map on the first image']:.3f} (other scenes only: "
          f"{top['heat map on the first image, other scenes']:.3f})")
    print("\n| attribution | top word names shape/colour/texture | chance | shape | colour | "
          "texture | size | second object | other |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for how, row in out["words"].items():
        print(f"| {how} | {row['top word is an attribute word']:.3f} | {row['chance']:.3f} | "
              + " | ".join(f"{row[f'top word: {g}']:.3f}" for g in
                           ("shape", "colour", "texture", "size", "second object", "other"))
              + " |")
    gap = out["ig_completeness_gap"]
    print(f"\nintegrated gradients ({args.steps} steps): completeness gap max {gap['max']:.4f}, "
          f"median {gap['median']:.5f}")
    print(f"wrote {args.out} ({out['setup']['total_s']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
