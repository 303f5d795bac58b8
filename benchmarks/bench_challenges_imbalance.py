"""Class imbalance: head / middle / tail retrieval and classification of the committed
long-tailed challenge models (notebook 10, section 2), on the notebook's evaluation scenes and
on a larger fresh balanced world.

Protocol: the models of :data:`mmkit.challenges.imbalance.CHECKPOINTS` (``World(n=4000,
seed=1)`` at imbalance 1, 10, 100 with uniform sampling, and at imbalance 100 with balanced
sampling, inverse-frequency re-weighting and logit adjustment; one budget: the same steps and
batch) are scored by :func:`~mmkit.challenges.imbalance.head_tail_table` on

- ``eval``: the evaluation world's 441 test scenes (what the notebook prints);
- ``fresh``: the seen-class scenes of a fresh balanced ``World(n=N, seed=5001)`` (about
  seven times as many queries per class, so the group means are steadier);

classes grouped into thirds by the imbalance-100 world's designed frequency. Also the post-hoc
logit adjustment curve of the plain imbalance-100 model (balanced accuracy for each tau).

    .venv/bin/python benchmarks/bench_challenges_imbalance.py [--n 4000] [--threads 2]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> int:
    import torch

    from mmkit.challenges import imbalance as I
    from mmkit.challenges.data import eval_scenes, train_scenes
    from mmkit.exercises.nb10 import imbalance as ex

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=4000, help="scenes of the fresh balanced world")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=str(RESULTS / "challenges_imbalance.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    rows = {f"imbalance {k:g}": v for k, v in I.WORLD_MODELS.items()}
    rows.update({k: v for k, v in I.REMEDIES.items() if k != "uniform sampling"})
    models = I.load_models(rows)
    sets = {"eval": eval_scenes(), "fresh": train_scenes(args.n, 5001, progress=False)}
    out: dict = {"models": rows, "steps": I.STEPS, "groups_by": "imbalance 100, seed 1",
                 "sets": {}, "load_avg_start": list(os.getloadavg())}
    for key, scenes in sets.items():
        res = I.head_tail_table(models, 100.0, scenes=scenes)
        out["sets"][key] = {"scenes": len(scenes), "group_sizes": res.group_sizes(),
                            "group_training_counts": res.group_counts(), "table": res.table}
        for metric in ("mAP", "R@1", "acc"):
            print(f"\n[{key}: {len(scenes)} scenes]\n{res.format(metric)}")
    accs = ex.posthoc_accuracies(models["imbalance 100"])
    out["posthoc_tau"] = {str(t): round(a, 4) for t, a in accs.items()}
    print("\npost-hoc logit adjustment (imbalance 100, eval scenes): balanced accuracy by tau")
    print("  " + "  ".join(f"tau={t:g}: {a:.3f}" for t, a in accs.items()))
    out.update(wall_s=round(time.perf_counter() - t0, 1), load_avg_end=list(os.getloadavg()),
               machine=f"{platform.machine()}, {os.cpu_count()} cores, torch threads "
                       f"{args.threads}", python=platform.python_version(),
               torch=torch.__version__)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    print("\n| model | set | mAP | mAP head | mAP middle | mAP tail | R@1 | acc head | acc tail |")
    print("|---|---|---|---|---|---|---|---|---|")
    for key in sets:
        for name, r in out["sets"][key]["table"].items():
            print(f"| {name} | {key} | {r['mAP']:.3f} | {r['mAP head']:.3f} | "
                  f"{r['mAP middle']:.3f} | {r['mAP tail']:.3f} | {r['R@1']:.3f} | "
                  f"{r['acc head']:.3f} | {r['acc tail']:.3f} |")
    print(f"\nwrote {args.json} in {out['wall_s']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
