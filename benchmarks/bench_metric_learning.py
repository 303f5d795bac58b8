"""Metric learning on classes never trained on: the committed loss + miner encoders against
handcrafted, pretrained and PCA baselines (MAP@R, P@1, R-precision, 1-/5-shot accuracy).

World: the unseen split (8 classes) of ``World(n=2500, seed=0)``; the encoder was trained
on the other 56 classes of fresh scenes (seed 1400). Digits: scikit-learn's 8 x 8 digits
5-9 (899 images); the encoder was trained on digits 0-4. Retrieval: every image queries all
the others (cosine), PML conventions; few-shot: nearest prototype, 20 random support sets.
The first row of each block is cross-checked against PML's AccuracyCalculator.

    .venv/bin/python benchmarks/bench_metric_learning.py
"""
from __future__ import annotations

import numpy as np


def pml_scores(feats: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    import torch
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

    calc = AccuracyCalculator(include=("mean_average_precision_at_r", "precision_at_1",
                                       "r_precision"), k="max_bin_count")
    f = torch.nn.functional.normalize(torch.as_tensor(feats, dtype=torch.float32), dim=1)
    y = torch.as_tensor(labels)
    return calc.get_accuracy(f, y, f, y, ref_includes_query=True)


def rows_for(named: dict[str, np.ndarray], labels: np.ndarray, sims: dict[str, np.ndarray]):
    from mmkit.encoders.metric import few_shot_accuracy, retrieval_scores, similarity_scores

    out = []
    for name, f in named.items():
        s = retrieval_scores(f, labels)
        out.append((name, s["map_at_r"], s["p_at_1"], s["r_precision"],
                    few_shot_accuracy(f, labels, 1), few_shot_accuracy(f, labels, 5)))
    for name, sim in sims.items():
        s = similarity_scores(sim, labels)
        out.append((name, s["map_at_r"], s["p_at_1"], s["r_precision"], float("nan"),
                    float("nan")))
    return out


def main() -> int:
    from sklearn.decomposition import PCA

    from mmkit import checkpoints
    from mmkit.encoders import metric as M
    from mmkit.features.visual import handcrafted_visual
    from mmkit.features.visual_cnn import embed_images
    from mmkit.scoring import eval_world

    world = eval_world()
    ui = world.indices("unseen")
    images, y = world.images[ui], world.labels[ui]
    cnn, _ = checkpoints.load("metric_world_cnn", progress=False)
    feats = {"handcrafted (colour+LBP+HOG)": handcrafted_visual(images, progress=False),
             "EfficientNet-Lite0 (ImageNet, frozen)": M.pretrained_features(images),
             "metric_world_cnn (triplet + semi-hard)": embed_images(cnn, images, progress=False)}
    sims = {"ensemble: average of Lite0 + metric cosines": (
        M.cosine_similarity(feats["EfficientNet-Lite0 (ImageNet, frozen)"])
        + M.cosine_similarity(feats["metric_world_cnn (triplet + semi-hard)"])) / 2}
    table = [("World unseen classes (8 classes, %d images; chance MAP@R ~ %.3f)"
              % (len(y), _chance(y)), rows_for(feats, y, sims),
              pml_scores(feats["metric_world_cnn (triplet + semi-hard)"], y))]

    d_img, d_lab = M.digits_images()
    ev = d_lab >= 5
    pix = d_img[..., 0].reshape(len(d_img), -1).astype(np.float64)
    dcnn, _ = checkpoints.load("metric_digits_cnn", progress=False)
    dfe = {"pixels (64-d)": pix[ev],
           "PCA-32 of pixels (fit on 0-4)": PCA(32, random_state=0).fit(pix[~ev]).transform(pix[ev]),
           "metric_digits_cnn (triplet + batch-all, trained on 0-4)":
               embed_images(dcnn, d_img[ev], progress=False)}
    dsims = {"ensemble: average of PCA + metric cosines": (
        M.cosine_similarity(dfe["PCA-32 of pixels (fit on 0-4)"])
        + M.cosine_similarity(dfe["metric_digits_cnn (triplet + batch-all, trained on 0-4)"])) / 2}
    table.append(("Digits 5-9 (never trained on; %d images)" % ev.sum(),
                  rows_for(dfe, d_lab[ev], dsims),
                  pml_scores(dfe["metric_digits_cnn (triplet + batch-all, trained on 0-4)"],
                             d_lab[ev])))
    all_pca = PCA(32, random_state=0).fit_transform(pix)
    s_all = M.retrieval_scores(all_pca, d_lab)
    print(f"{'encoder':<58} {'MAP@R':>6} {'P@1':>6} {'R-prec':>6} {'1-shot':>6} {'5-shot':>6}")
    for title, rows, pml in table:
        print(f"\n{title}")
        for name, *vals in rows:
            print(f"  {name:<56} " + " ".join(f"{v:6.3f}" if v == v else f"{'-':>6}"
                                              for v in vals))
        print(f"  (PML AccuracyCalculator on the metric encoder: MAP@R "
              f"{pml['mean_average_precision_at_r']:.3f}, P@1 {pml['precision_at_1']:.3f}, "
              f"R-prec {pml['r_precision']:.3f})")
    print(f"\nDigits, all ten, PCA-32 (the issue's baseline): MAP@R {s_all['map_at_r']:.3f}, "
          f"P@1 {s_all['p_at_1']:.3f}, R-precision {s_all['r_precision']:.3f}")
    return 0


def _chance(labels: np.ndarray) -> float:
    """Expected MAP@R of a random ranking, estimated with 5 random score matrices."""
    from mmkit.encoders.metric import similarity_scores

    rng = np.random.default_rng(0)
    return float(np.mean([similarity_scores(rng.random((len(labels), len(labels))),
                                            labels)["map_at_r"] for _ in range(5)]))


if __name__ == "__main__":
    raise SystemExit(main())
