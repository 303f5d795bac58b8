"""The joint embedding's quality on the fixed protocol, against the CCA baseline and the ceiling.

Protocol: the demo world (``WorldConfig(n=2500, seed=0)``), its test split (441 images, 2,205
captions). Loads the committed ``joint_world`` + ``joint_speech`` checkpoints (trained on fresh
scenes of other seeds) and fits the CCA baseline on the world's train split, then prints every
direction's metrics, the ratios the joint-embedding issue sets as targets, and every learned
R@K as a fraction of the Bayes ceiling (:func:`mmkit.methods.evaluate.ceiling_results`).

    .venv/bin/python benchmarks/bench_joint.py                 # quality table
    .venv/bin/python benchmarks/bench_joint.py --sizes 1250 2500 5000 10000
        # R@1 against training-set size: trains the recipe budget's InfoNCE model on fresh
        # worlds of each size (same steps) and writes benchmarks/results/joint_data_size.json

    .venv/bin/python benchmarks/bench_joint.py --frozen-vs-finetuned
        # the main model's config with the image tower's conv stages frozen (twice the
        # steps) and fine-tuned (the same steps as the old frozen main model), one torch
        # thread each; writes benchmarks/results/joint_frozen_vs_finetuned.json

Retraining a committed checkpoint and comparing it with its manifest is
``benchmarks/bench_checkpoints.py joint_world joint_speech``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def quality() -> int:
    from mmkit.methods import get_method
    from mmkit.methods.evaluate import evaluate
    from mmkit.scoring import EVAL_WORLD, ceiling_results, eval_world, fraction_of, oracle_results

    world = eval_world()
    test = world.indices("test")
    t0 = time.perf_counter()
    joint = get_method("joint", progress=False).fit(world, test)
    learned, _ = evaluate(joint, world, test)
    t_joint = time.perf_counter() - t0
    base = get_method("baseline", progress=False).fit(world, world.indices("train"))
    cca, _ = evaluate(base, world, test)
    directions = list(learned)
    oracle = oracle_results(world, test, directions)
    ceiling = ceiling_results(world, test, directions, oracle)
    frac = fraction_of(learned, ceiling)
    print(f"protocol: n={EVAL_WORLD['n']} seed {EVAL_WORLD['seed']}, test split {len(test)} images, {len(test) * 5} captions; "
          f"joint evaluated in {t_joint:.0f} s")
    print("\n| direction | method | R@1 | R@5 | R@10 | mAP | NDCG@10 | R@1 / ceiling | "
          "R@10 / ceiling |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for d in directions:
        for name, res in (("joint", learned), ("CCA", cca), ("ceiling", ceiling)):
            if d not in res:
                continue
            r = res[d]
            fr = (f"{frac[d]['R@1']:.2f} | {frac[d]['R@10']:.2f}" if name == "joint"
                  else " | ")
            print(f"| {d} | {name} | {r['R@1']:.3f} | {r['R@5']:.3f} | {r['R@10']:.3f} | "
                  f"{r['mAP']:.3f} | {r['NDCG@10']:.3f} | {fr} |")
    targets = [
        ("text->image R@1 >= 0.30", learned["text->image"]["R@1"], 0.30),
        ("image->text R@1 >= 0.40", learned["image->text"]["R@1"], 0.40),
        ("audio->image R@1 >= 3x CCA", learned["audio->image"]["R@1"] / cca["audio->image"]["R@1"], 3.0),
        ("image->image R@1 >= 2x CCA", learned["image->image"]["R@1"] / cca["image->image"]["R@1"], 2.0),
        ("speech->image R@10 >= 0.7x text->image R@10",
         learned["speech->image"]["R@10"] / learned["text->image"]["R@10"], 0.7),
    ]
    print("\n| target | measured | goal | met |\n|---|---:|---:|---|")
    for label, value, goal in targets:
        print(f"| {label} | {value:.3f} | {goal:.2f} | {'yes' if value >= goal else 'NO'} |")
    return 0


def sizes(ns: list[int]) -> int:
    from mmkit.encoders.joint_training import BASE_CONFIG, RECIPE_BUDGET, train_joint

    out = {"sizes": ns, "budget": {k: v for k, v in RECIPE_BUDGET.items() if k != "world"},
           "note": "InfoNCE, the recipe budget's steps (epochs of the 10,000-scene world), "
                   "fresh worlds of seed 2002 of each size; protocol test split", "results": []}
    steps = RECIPE_BUDGET["epochs"] * (10000 * 7 // 8 // BASE_CONFIG["batch_size"])
    for n in ns:   # the same number of steps for every size: small worlds repeat more epochs
        cfg = {**BASE_CONFIG, **RECIPE_BUDGET, "epochs": 10**6, "max_steps": steps,
               "world": {"n": n, "seed": 2002}}
        t0 = time.perf_counter()
        trained = train_joint(cfg, progress=True)
        row = {"n": n, "epochs_seen": trained.data["epochs_seen"],
               "steps": trained.metrics["steps"],
               "seconds": round(time.perf_counter() - t0, 1),
               **{k: v for k, v in trained.metrics.items() if k.startswith("protocol_")},
               "train_loss_end": trained.metrics["train_loss_end"]}
        out["results"].append(row)
        print(json.dumps(row), flush=True)
    RESULTS.mkdir(exist_ok=True)
    from mmkit._io import atomic_write_text

    atomic_write_text(RESULTS / "joint_data_size.json", json.dumps(out, indent=1))
    return 0


#: the two runs of ``--frozen-vs-finetuned`` (changes to BASE_CONFIG; 136 steps = 1 epoch)
FREEZE_RUNS: dict[str, dict] = {
    "frozen, 2,800 steps": {"max_steps": 2800, "epochs": 30, "eval_every": 400},
    "fine-tuned, 1,360 steps": {"image_frozen": False, "max_steps": 1400, "eval_every": 200},
}


def frozen_vs_finetuned() -> int:
    """Is it the steps or the frozen conv stages? Both runs: BASE_CONFIG (20,000 fresh
    scenes of seed 2001, InfoNCE), one torch thread."""
    import torch

    from mmkit._io import atomic_write_text
    from mmkit.encoders.joint_training import BASE_CONFIG, train_joint

    torch.set_num_threads(1)
    out = {"note": "BASE_CONFIG with the changes below, one torch thread; protocol test split",
           "results": []}
    for label, changes in FREEZE_RUNS.items():
        t0 = time.perf_counter()
        trained = train_joint({**BASE_CONFIG, **changes}, progress=True)
        row = {"run": label, "changes": changes, "wall_seconds": round(time.perf_counter() - t0, 1),
               **trained.metrics, "history": trained.data["history"]}
        out["results"].append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "history"}), flush=True)
    RESULTS.mkdir(exist_ok=True)
    atomic_write_text(RESULTS / "joint_frozen_vs_finetuned.json", json.dumps(out, indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", help="training-set sizes to sweep")
    parser.add_argument("--frozen-vs-finetuned", action="store_true",
                        help="the conv stages frozen (more steps) against fine-tuned")
    args = parser.parse_args(argv)
    if args.frozen_vs_finetuned:
        return frozen_vs_finetuned()
    return sizes(args.sizes) if args.sizes else quality()


if __name__ == "__main__":
    sys.exit(main())
