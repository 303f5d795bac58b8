"""Adversarial alignment and imagined-embedding search (notebook 06, issue 10's Quality bar).

Protocol: aligners train on fresh scenes (``World(n=6000, seed=3001)``, train split) over the
frozen features of the committed unimodal checkpoints (``visual_small_cnn``, ``gru_text``,
``audio_cnn_sound``); evaluation is the demo's world (n = 2,500, seed 0), test split: 441
images, 2,205 captions, ``score_direction`` + ``score_metrics``, and the fraction of the Bayes
ceiling (``mmkit.methods.evaluate.ceiling_results`` / ``fraction_of``).

Rows: the same ACMR aligner trained without (``adv_weight=0``) and with the modality
adversary (gradient reversal, lambda schedule), for each seed; the modality probe (linear,
held out, image vs text: chance 0.5) and the centroid gap; the conditional GAN's imagined
text->image and audio->image search against direct retrieval in the joint space (R@10); the
caption -> sound translation against the joint space's text -> sound similarity.

    .venv/bin/python benchmarks/bench_align.py [--seeds 0 1 2] [--threads 1] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def main() -> int:
    import torch

    from mmkit.align import STABLE, centroid_gap, modality_probe, train_aligner, train_cgan
    from mmkit.align import protocol
    from mmkit.align.features import world_features
    from mmkit.methods.evaluate import Embedded, fraction_of, score_direction, score_metrics
    from mmkit.metrics import hit_rate_at_k

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default="out/bench_align.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    train_w, eval_w = protocol.train_world(), protocol.eval_world()
    ft, fe = world_features(train_w), world_features(eval_w)
    tr, test = train_w.indices("train"), eval_w.indices("test")
    caps = eval_w.caption_indices(test)
    ceiling = protocol.ceilings(eval_w, test)
    print(f"features and ceiling ready in {time.perf_counter() - t0:.0f} s", flush=True)

    results: dict = {"ceiling": ceiling, "aligner": {}, "cgan": {}}
    joint = {}
    for adv in (0.0, 1.0):
        for seed in args.seeds:
            t1 = time.perf_counter()
            run = train_aligner(ft, tr, {"adv_weight": adv, "seed": seed})
            m = run.model
            vec = {k: m.embed(k, getattr(fe, k)) for k in ("image", "text", "audio")}
            if adv == 0.0 and seed == args.seeds[0]:
                joint = vec
            table = protocol.retrieval_table(eval_w, test, vec)
            zi, zt = vec["image"][test], vec["text"][caps]
            row = {"table": table, "of_ceiling": fraction_of(table, ceiling),
                   "probe": modality_probe(zi, zt),
                   "probe_image_audio": modality_probe(zi, vec["audio"][test]),
                   "centroid_gap": centroid_gap(zi, zt),
                   "disc_acc_last_epoch": run.history[-1]["disc_acc"],
                   "seconds": time.perf_counter() - t1}
            results["aligner"][f"adv={adv:g} seed={seed}"] = row
            t2i = table["text->image"]
            print(f"adv={adv:g} seed={seed}: t2i R@1 {t2i['R@1']:.3f} R@10 {t2i['R@10']:.3f} "
                  f"mAP {t2i['mAP']:.3f}; probe {row['probe']:.3f}, gap {row['centroid_gap']:.3f} "
                  f"({row['seconds']:.0f} s)", flush=True)

    def mean(adv, f):
        return float(np.mean([f(v) for k, v in results["aligner"].items()
                              if k.startswith(f"adv={adv:g} ")]))

    per = int(np.bincount(ft.caption_image).max())
    caps_tr = (tr[:, None] * per + np.arange(2)).ravel()       # 2 captions of each scene
    for source, cond, target in (("text", ft.text[caps_tr], ft.image[caps_tr // per]),
                                 ("audio", ft.audio[tr], ft.image[tr])):
        t1 = time.perf_counter()
        gan = train_cgan(cond, target, STABLE)
        d = f"{source}->image"
        q, g = eval_w.direction_ids(d, test)
        r = score_direction(eval_w, d, test,
                            Embedded(gan.model.imagine(getattr(fe, source)[q]), q),
                            Embedded(gan.model.target_space(fe.image[g]), g))
        res = score_metrics(r.scores, r.relevance, r.positives)
        direct = mean(0, lambda v, d=d: v["table"][d]["R@10"])
        results["cgan"][d] = {"imagined": res, "direct_R@10_mean": direct,
                              "ratio_R@10": res["R@10"] / direct,
                              "seconds": time.perf_counter() - t1}
        print(f"cGAN {d}: R@10 {res['R@10']:.3f} vs direct {direct:.3f} "
              f"({res['R@10'] / direct:.0%})", flush=True)

    # cross-modal translation: caption features -> sound features, each test caption searching
    # the test sounds for its own scene's clip
    t2a = train_cgan(ft.text[caps_tr], ft.audio[caps_tr // per], STABLE)
    own = eval_w.caption_image[caps][:, None] == test[None, :]
    translated = t2a.model.imagine(fe.text[caps]) @ t2a.model.target_space(fe.audio[test]).T
    direct_ta = joint["text"][caps] @ joint["audio"][test].T
    results["translation text->audio"] = {
        name: {f"R@{k}": float(hit_rate_at_k(s, own, k).mean()) for k in (1, 10)}
        for name, s in (("translated", translated), ("joint space", direct_ta))}
    print("translation text->audio:", results["translation text->audio"], flush=True)

    r1_plain = mean(0, lambda v: v["table"]["text->image"]["R@1"])
    r1_adv = mean(1, lambda v: v["table"]["text->image"]["R@1"])
    probe_adv = mean(1, lambda v: v["probe"])
    summary = {
        "probe_without": mean(0, lambda v: v["probe"]), "probe_with": probe_adv,
        "gap_without": mean(0, lambda v: v["centroid_gap"]),
        "gap_with": mean(1, lambda v: v["centroid_gap"]),
        "t2i_R@1_without": r1_plain, "t2i_R@1_with": r1_adv,
        "t2i_R@1_of_ceiling_without": r1_plain / ceiling["text->image"]["R@1"],
        "t2i_R@1_of_ceiling_with": r1_adv / ceiling["text->image"]["R@1"],
        "probe_at_most_0.6": probe_adv <= 0.6,
        "R@1_within_5pct": r1_adv >= 0.95 * r1_plain,
        "cgan_text_80pct": results["cgan"]["text->image"]["ratio_R@10"] >= 0.8,
        "cgan_audio_80pct": results["cgan"]["audio->image"]["ratio_R@10"] >= 0.8,
        "seconds": time.perf_counter() - t0, "threads": args.threads,
    }
    results["summary"] = summary
    print(json.dumps(summary, indent=1))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    with open(args.json, "w", encoding="utf-8") as fh:
        json.dump(results, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
