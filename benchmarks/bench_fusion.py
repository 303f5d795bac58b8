"""Multimodal fusion on the demo protocol (notebook 07): the issue's quality lines.

World(n=2500, seed=0); every number on the test split (441 images, 2,205 captions); weights,
RRF's k and the graph's settings tuned on the val split (221 images) of the same world (the
convex weights on a grid of step 0.02);
nothing learned here (the learned fusions are in the notebook). Embeddings from
``mmkit.fusion.protocol.pick_method()`` ("joint" when registered, else the CCA baseline),
cached in data/cache.

1. text + sound: the best fusion's R@1 vs the best single modality's (goal: +10% relative);
2. one modality missing for every query: the fusion vs that remaining modality alone (>=);
3. composed image + text: R@10 vs image only and text only (goal: above both);
4. graph re-ranking: mAP after vs its input ranking (goal: higher).

    .venv/bin/python benchmarks/bench_fusion.py
"""
from __future__ import annotations

import time

import numpy as np

#: the convex weights' grid (0, 0.02, ..., 1), searched on the val split
STEP = 0.02


def main() -> None:
    from mmkit.fusion import graph as G
    from mmkit.fusion import protocol as P
    from mmkit.fusion import scores as S
    from mmkit.scoring import eval_world

    t0 = time.perf_counter()
    world = eval_world()
    method = P.LazyMethod(P.pick_method(), world)
    test = P.embed_scenes(world, world.indices("test"), method)
    val = P.embed_scenes(world, world.indices("val"), method)
    print(f"method {method.name}; embeddings in {time.perf_counter() - t0:.0f} s")

    def fmt(m):
        return " ".join(f"{k} {v:.3f}" for k, v in m.items())

    def r_at(qs, k):
        return lambda f: qs.metrics(f)[k]

    # 1. text + sound
    ts, ts_val = P.text_sound_queries(world, test), P.text_sound_queries(world, val)
    w, _ = S.tune_weights(ts_val.stack(), r_at(ts_val, "R@1"), step=STEP)
    k, _ = S.tune_rrf_k(ts_val.stack(), r_at(ts_val, "R@1"))
    runs = {f"{m} only": ts.scores[m] for m in ts.modalities}
    runs.update({"z-sum equal": S.weighted_sum(ts.stack()),
                 f"convex {np.round(w, 2).tolist()} (val)": S.weighted_sum(ts.stack(), w),
                 "CombSUM": S.comb_sum(ts.stack()), "CombMNZ": S.comb_mnz(ts.stack()),
                 "RRF k=60": S.reciprocal_rank_fusion(ts.stack(), 60),
                 f"RRF k={k:g} (val)": S.reciprocal_rank_fusion(ts.stack(), k)})
    res = {name: ts.metrics(f) for name, f in runs.items()}
    print("\n1. text + sound (pair positives), test:")
    for name, m in res.items():
        print(f"  {name:28s} {fmt(m)}")
    single = max(res[f"{m} only"]["R@1"] for m in ts.modalities)
    fusion = max(v["R@1"] for n, v in res.items() if "only" not in n)
    print(f"  best fusion R@1 {fusion:.3f} vs best single {single:.3f}: "
          f"{(fusion / single - 1) * 100:+.1f}% (goal +10%): {'met' if fusion >= 1.1 * single else 'MISSED'}")

    # 2. missing modality
    print("\n2. one modality missing for every query (tuned convex fusion), test:")
    for gone, left in (("sound", "text"), ("text", "sound")):
        q = P.drop_modality(ts, gone, 1.0)
        got = q.metrics(S.weighted_sum(q.stack(), w))
        alone = res[f"{left} only"]
        ok = all(got[m] >= alone[m] - 1e-12 for m in got)
        print(f"  {gone} missing: {fmt(got)} | {left} alone: {fmt(alone)}: {'met' if ok else 'MISSED'}")

    # 3. composed
    comp, _ = P.composed_queries(world, test)
    comp_val, _ = P.composed_queries(world, val)
    wc, _ = S.tune_weights(comp_val.stack(), r_at(comp_val, "R@10"), step=STEP)
    print(f"\n3. composed image + text ({len(comp.query_scene)} queries), test:")
    cres = {"image only": comp.metrics(comp.scores["image"]),
            "text only": comp.metrics(comp.scores["text"]),
            f"convex {np.round(wc, 2).tolist()} (val)": comp.metrics(S.weighted_sum(comp.stack(), wc)),
            "RRF k=60": comp.metrics(S.reciprocal_rank_fusion(comp.stack(), 60))}
    for name, m in cres.items():
        print(f"  {name:28s} {fmt(m)}")
    best = max(v["R@10"] for n, v in cres.items() if "only" not in n)
    ok = best > max(cres["image only"]["R@10"], cres["text only"]["R@10"])
    print(f"  composed R@10 {best:.3f}: {'met' if ok else 'MISSED'}")

    # 4. graph re-ranking
    per = world.config.captions_per_image

    def layers(emb):
        cap = emb.text.reshape(len(emb.images), per, -1).mean(1)
        cap /= np.linalg.norm(cap, axis=1, keepdims=True)
        return [G.knn_graph(x @ x.T, 10) for x in (emb.image_image, emb.audio, cap)]

    fv, ft = S.weighted_sum(ts_val.stack(), w), S.weighted_sum(ts.stack(), w)
    setting, _ = G.tune_graph(fv, layers(val), r_at(ts_val, "mAP"), layer_grid=(0.0, 1.0),
                              inter_grid=(0.5, 2.0), restart_grid=(0.3, 0.6), tops=(20,))
    before, after = ts.metrics(ft), ts.metrics(G.rerank_with(ft, layers(test), setting))
    print(f"\n4. graph re-ranking of the tuned convex text + sound fusion ({setting}):")
    print(f"  before {fmt(before)}\n  after  {fmt(after)}: "
          f"{'met' if after['mAP'] > before['mAP'] else 'MISSED'}")
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
