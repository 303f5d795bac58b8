"""Fine-grained retrieval: where the wrong top-1 results of five retrieval setups land
(notebook 10, section 3, on a larger gallery).

Protocol: the evaluation world (``World(n=2500, seed=0)``); the gallery and the queries are
all its seen-class scenes (train, val and test splits: no model trained on this world), in
their own styles; image -> image by class with each query's own scene left out
(:func:`mmkit.challenges.evaluate.class_retrieval`). ``joint text->image``: one class-name
query per class ("a red striped circle"). Models: the joint model (``joint_world``), the
triplet model of notebook 05 (``metric_world_cnn``), ``challenge_plain`` and
``challenge_attributes``. Columns: R@1 over all queries, over the queries of classes with
and without a sibling, the share of wrong top-1 results that are the query's sibling and
the share chance predicts (:func:`mmkit.challenges.fine_grained.sibling_confusion`), with
95% bootstrap intervals over queries (1,000 resamples) for the R@1 gap and the share; and
the re-ranking of the exercise (``challenge_plain``'s top 10 + the cosine of
``challenge_attributes``'s predicted attributes) on the same gallery.

    .venv/bin/python benchmarks/bench_challenges_fine_grained.py [--split test] [--threads 2]
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "challenges_fine_grained.json"


def bootstrap(values: np.ndarray, stat, n: int = 1000, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    out = [stat(values[rng.integers(len(values), size=len(values))]) for _ in range(n)]
    return [round(float(np.nanpercentile(out, 2.5)), 4), round(float(np.nanpercentile(out, 97.5)),
                                                               4)]


def main() -> int:
    import torch

    from mmkit.challenges import fine_grained as fg
    from mmkit.challenges.data import scene_set
    from mmkit.exercises.nb10 import fine_grained as ex
    from mmkit.scoring import eval_world

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--split", default="seen", help="'seen' (train+val+test) or one split")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=str(RESULTS))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    world = eval_world()
    splits = ("train", "val", "test") if args.split == "seen" else (args.split,)
    idx = np.sort(np.concatenate([world.indices(s) for s in splits]))
    scenes = scene_set(world, idx)
    sib = fg.has_sibling()
    runs = fg.model_runs(scenes)
    table, detail = {}, {}
    for name, run in runs.items():
        conf = fg.sibling_confusion(run, scenes.labels)
        table[name] = conf.row(3)
        has = sib[run.labels]
        hit, wrong = run.hit1, run.top1 != run.labels
        sib_err = fg.sibling_matrix()[run.labels, run.top1]
        pairs = np.stack([hit, has.astype(float), wrong.astype(float), sib_err.astype(float)], 1)

        def gap(p):
            a, b = p[p[:, 1] == 1, 0], p[p[:, 1] == 0, 0]
            return a.mean() - b.mean() if len(a) and len(b) else np.nan

        def share(p):
            w = p[:, 2] == 1
            return p[w, 3].mean() if w.any() else np.nan

        detail[name] = {
            **table[name], "queries": len(run.labels), "errors": conf.errors,
            "queries sibling classes": conf.n_sibling,
            "queries no-sibling classes": conf.n_no_sibling,
            "R@1 gap (sibling - no-sibling) 95% CI": bootstrap(pairs, gap),
            "sibling share 95% CI": bootstrap(pairs, share),
            "by attribute": {k: {kk: round(float(vv), 4) for kk, vv in v.items()}
                             for k, v in conf.by_attribute.items()}}
        print(f"{name}: {table[name]} ({time.perf_counter() - t0:.0f} s)", flush=True)

    z = fg.embed_model("challenge_plain", scenes.images)
    attrs = ex.attribute_vectors(scenes.images)
    rerank = {f"w={w:g}": round(ex.rerank_sibling_r1(z @ z.T, attrs, scenes.labels, w), 4)
              for w in (0.0, 0.5, 1.0, 2.0)}
    print("re-ranked challenge_plain, R@1 sibling classes:", rerank, flush=True)

    result = {
        "protocol": {"world": {"n": 2500, "seed": 0}, "splits": list(splits),
                     "gallery": len(scenes), "threads": args.threads},
        "table": table, "detail": detail,
        "rerank_challenge_plain_top10_R@1_sibling_classes": rerank,
        "seconds": round(time.perf_counter() - t0, 1),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }
    cols = fg.COLUMNS
    print("\n| model | " + " | ".join(cols) + " |")
    print("|---|" + "---:|" * len(cols))
    for name, row in table.items():
        print(f"| {name} | " + " | ".join(f"{row[c]:.3f}" for c in cols) + " |")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    from mmkit._io import atomic_write_text

    atomic_write_text(out, json.dumps(result, indent=1) + "\n")
    print(f"\nwrote {out} ({result['seconds']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
