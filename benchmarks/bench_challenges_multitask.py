"""Multi-task vs retrieval alone, scarce vs plenty (notebook 10, section 4), at full size.

Models: the four committed checkpoints of :mod:`mmkit.challenges.multitask` (supervised
NT-Xent retrieval alone or with class + attribute heads, trained on ~350 or ~3,500 fresh
scenes of ``World(n=400|4000, seed=1)``, 600 steps of 128 each). Measured:

- the notebook's table on the evaluation split (441 test scenes of ``World(n=2500, seed=0)``);
- the same class retrieval with a larger gallery: every seen-class scene of the evaluation
  world (train, val and test splits: none of them was trained on), own scene excluded;
- the attribute probe (logistic regression on the retrieval embedding, half/half split of
  the 441 scenes) for each attribute group, mean over 5 split seeds;
- the cosine between the retrieval loss's gradient and the class / attribute losses'
  gradients on the shared backbone (8 batches of each model's own training scenes).

    .venv/bin/python benchmarks/bench_challenges_multitask.py [--threads 2] [--out PATH]
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

    from mmkit import checkpoints
    from mmkit._io import atomic_write_text
    from mmkit.challenges import multitask as mt
    from mmkit.challenges.data import scene_set
    from mmkit.challenges.evaluate import class_retrieval
    from mmkit.scoring import eval_world

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--probe-seeds", type=int, default=5)
    ap.add_argument("--out", default=str(RESULTS / "challenges_multitask.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    load0 = [round(x, 2) for x in os.getloadavg()]

    table = mt.multitask_table()
    print(f"table ready in {time.perf_counter() - t0:.0f} s", flush=True)

    world = eval_world()
    seen = np.sort(np.concatenate([world.indices(s) for s in ("train", "val", "test")]))
    big = scene_set(world, seen)
    large: dict[str, dict[str, float]] = {}
    for name in mt.MODELS:
        model, _ = checkpoints.load(name, progress=False)
        emb = model.embed_images(big.images)
        large[name] = class_retrieval(emb, big.labels, emb, big.labels, big.scenes,
                                      big.scenes).metrics()

    probes = [mt.probe_table(seed=s) for s in range(args.probe_seeds)]
    probe = {name: {g: round(float(np.mean([p[name][g] for p in probes])), 4)
                    for g in probes[0][name]} for name in mt.MODELS}
    grad = {name: mt.task_gradient_cosine(name, batches=8) for name in mt.MODELS}

    manifests = {name: checkpoints.load(name, progress=False)[1] for name in mt.MODELS}
    results = {
        "table_441": table, "large_gallery": {"scenes": len(seen), "rows": large},
        "probe_mean_over_seeds": {"seeds": args.probe_seeds, "rows": probe},
        "gradient_cosine": grad,
        "training": {name: {"wall_time_s": m["wall_time_s"], "bytes": m["bytes"],
                            **m["metrics"]} for name, m in manifests.items()},
        "machine": {"cpus": os.cpu_count(), "threads": args.threads,
                    "python": platform.python_version(), "torch": torch.__version__,
                    "loadavg_start": load0,
                    "loadavg_end": [round(x, 2) for x in os.getloadavg()]},
        "seconds": round(time.perf_counter() - t0, 1),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(args.out), json.dumps(results, indent=1) + "\n")

    cols = list(mt.COLUMNS)
    print("| model | " + " | ".join(cols) + f" | R@1 ({len(seen)}) | mAP ({len(seen)}) |")
    print("|---" * (len(cols) + 3) + "|")
    for name in mt.MODELS:
        row = table[name]
        print(f"| {name} | " + " | ".join(f"{row[c]:.4g}" for c in cols)
              + f" | {large[name]['R@1']:.3f} | {large[name]['mAP']:.3f} |")
    print()
    groups = list(mt.ATTRIBUTE_GROUPS) + ["mean"]
    print("| probe accuracy | " + " | ".join(groups) + " | grad cos class | grad cos attr |")
    print("|---" * (len(groups) + 3) + "|")
    for name in mt.MODELS:
        print(f"| {name} | " + " | ".join(f"{probe[name][g]:.3f}" for g in groups)
              + f" | {grad[name]['class']:.3f} | {grad[name]['attribute']:.3f} |")
    print(f"\n{results['seconds']:.0f} s, load average {load0} -> "
          f"{results['machine']['loadavg_end']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
