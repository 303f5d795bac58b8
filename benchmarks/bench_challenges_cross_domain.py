"""Cross-domain retrieval (notebook 10, section 1): the query style x gallery style table.

Protocol: the committed cross-domain checkpoints (``mmkit.challenges.cross_domain.
CHECKPOINTS``), each trained on a fresh world (seed 1; the adversary's unlabelled sketches
and paintings from seed 1001); evaluation: the evaluation world's 441 test scenes drawn in
each of the three styles (``eval_scenes(style)``), every query against the other 440 scenes
(its own scene, in any style, left out). Per model: the full 3 x 3 R@1 and mAP, mean
same-style vs cross-style R@1 and their ratio, the styles' centroid gap and linear style
probe (mean over the 3 style pairs, chance 0.5), the same table after style normalisation
(each style's mean embedding removed), and the cross-style R@1 (mean of the 6 off-diagonal
cells) of the classes whose designed sibling differs in colour, texture or shape.

    .venv/bin/python benchmarks/bench_challenges_cross_domain.py [--threads 1] [--out PATH]
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

RESULT = Path(__file__).resolve().parent / "results" / "challenges_cross_domain.json"


def main() -> int:
    import torch

    from mmkit._io import atomic_write_text
    from mmkit.challenges import cross_domain as cd
    from mmkit.checkpoints import load

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(RESULT))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    results: dict = {"models": {}, "protocol": "eval world test split (441 scenes) drawn in "
                     "each style; own scene excluded", "threads": args.threads}
    cross = [(q, g) for q in cd.STYLES for g in cd.STYLES if q != g]
    for name in cd.CHECKPOINTS:
        t1 = time.perf_counter()
        model, manifest = load(name, progress=False)
        emb = cd.style_embeddings(model)
        entry: dict = {"train_seconds": manifest.get("seconds"),
                       "heldout_r1": manifest["metrics"].get("heldout_r1")}
        for variant, e in (("raw", emb), ("style_normalised", cd.normalise_styles(emb))):
            m = cd.style_matrix(e)
            entry[variant] = {**m.to_dict(), "summary": cd.domain_gap(m,
                                                                      cd.style_separation(e))}
        groups: dict[str, list[float]] = {}
        for q, g in cross:
            for group, row in cd.sibling_breakdown(emb, q, g).items():
                groups.setdefault(group, []).append(row["R@1"])
        entry["cross_style_r1_by_sibling"] = {k: round(float(np.mean(v)), 4)
                                              for k, v in groups.items()}
        entry["eval_seconds"] = round(time.perf_counter() - t1, 1)
        results["models"][name] = entry
        print(f"{name}: {entry['raw']['summary']} ({entry['eval_seconds']} s)", flush=True)
    results["wall_s"] = round(time.perf_counter() - t0, 1)
    results["loadavg"] = [round(x, 2) for x in os.getloadavg()]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(results, indent=1) + "\n")

    print("\n| model | same-style R@1 | cross-style R@1 | ratio | style-normalised ratio "
          "| centroid gap | style probe | colour / texture / shape sibling R@1 (cross) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, e in results["models"].items():
        s, n = e["raw"]["summary"], e["style_normalised"]["summary"]
        sib = e["cross_style_r1_by_sibling"]
        print(f"| {name} | {s['same_style_r1']:.3f} | {s['cross_style_r1']:.3f} | "
              f"{s['ratio']:.3f} | {n['ratio']:.3f} | {s['centroid_gap']:.3f} | "
              f"{s['style_probe']:.3f} | {sib['colour']:.3f} / {sib['texture']:.3f} / "
              f"{sib['shape']:.3f} |")
    for name, e in results["models"].items():
        print(f"\n{name} R@1 (rows: query, columns: gallery {', '.join(cd.STYLES)})")
        for q, row in zip(cd.STYLES, e["raw"]["R@1"]):
            print(f"  {q:9s}" + "".join(f"{v:8.3f}" for v in row))
    print(f"\n{results['wall_s']} s; load average {results['loadavg']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
