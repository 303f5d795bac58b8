"""Exercises of notebook 08 (evaluation).

1. :func:`check_ap_by_hand`: AP of :data:`AP_RANKING` with :data:`AP_N_RELEVANT` relevant items.
2. :func:`check_library`: which library reported :data:`REPORTED_AP` for the query
   :data:`LIBRARY_RUN` / :data:`LIBRARY_QRELS`?
3. :func:`check_image_level_test`: does system D beat system A at p < 0.05 when the test
   images (not the captions) are the units?
4. :func:`check_i2t_recall`: image->text R@K with the COCO/Flickr convention.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from mmkit.exercises import Feedback, close, not_answered
from mmkit.metrics import (average_precision, hit_rate_at_k, image_text_retrieval,
                           paired_permutation_test)

# ------------------------------------------------------------------ exercise 1
AP_RANKING = (0, 1, 1, 0, 0, 1, 0, 0, 0, 1)
"""Exercise 1: relevance (1/0) of a system's top 10 results, best first."""
AP_N_RELEVANT = 5
"""Exercise 1: relevant items in the collection (one of them was never retrieved)."""


def _ap(ranks: list[int], n_relevant: int) -> float:
    """AP from the 1-based ranks of the retrieved relevant items, divided by ``n_relevant``."""
    ranks = sorted(ranks)
    return sum((m + 1) / r for m, r in enumerate(ranks)) / n_relevant if n_relevant else 0.0


def check_ap_by_hand(answer: float | None) -> Feedback:
    """Exercise 1: AP (trec_eval convention) of :data:`AP_RANKING`."""
    if answer is None:
        return not_answered()
    ranks = [r for r, rel in enumerate(AP_RANKING, start=1) if rel]
    expected = _ap(ranks, AP_N_RELEVANT)
    if close(answer, expected, 5e-4):
        return Feedback(True, f"AP = {expected:.4f}: the missed relevant item adds 0 to the sum "
                              f"but still counts in the denominator ({AP_N_RELEVANT})")
    if close(answer, _ap(ranks, len(ranks)), 5e-4):
        return Feedback(False, f"you divided by the {len(ranks)} relevant items retrieved "
                               f"(torchmetrics' convention); trec_eval divides by all "
                               f"{AP_N_RELEVANT} relevant items")
    return Feedback(False, "add up the precision at the rank of each relevant item "
                           "(m / rank of the m-th relevant), then divide by the number of "
                           "relevant items in the collection")


# ------------------------------------------------------------------ exercise 2
LIBRARY_RUN = {"e1": 0.95, "e2": 0.90, "e3": 0.90, "e4": 0.70, "e5": 0.60, "e6": 0.60,
               "e7": 0.40}
"""Exercise 2: one query's results ``{docid: score}``, in the order a system returned them."""
LIBRARY_QRELS = {"e2": 1, "e5": 1, "e7": 1, "e9": 1}
"""Exercise 2: the query's judgements ``{docid: relevance}`` (e9 was never retrieved)."""

LIBRARIES = ("trec_eval", "ranx", "torchmetrics", "sklearn")
_ALIASES = {"trec_eval": "trec_eval", "pytrec_eval": "trec_eval", "trec": "trec_eval",
            "ranx": "ranx", "mmkit": "ranx", "torchmetrics": "torchmetrics",
            "sklearn": "sklearn", "scikit-learn": "sklearn", "scikit_learn": "sklearn"}


def ap_conventions(run: dict[str, float], qrels: dict[str, int]) -> dict[str, float]:
    """AP of one query under each library's convention, written out (no library imported).

    - trec_eval: order by score, ties by docno descending; divide by all relevant judged.
    - ranx (and mmkit): order by score, ties kept in the order given; divide by all relevant.
    - torchmetrics: divide by the relevant items it was given (retrieved); ties are written
      here in the order given (torchmetrics itself keeps whatever order torch's sort returns).
    - sklearn ``average_precision_score``: tied scores form one threshold (precision is
      taken after the whole tie group); divide by the relevant items it was given.
    """
    relevant = {d for d, r in qrels.items() if r > 0}
    listed = list(run)  # insertion order
    stable = sorted(listed, key=lambda d: -run[d])  # Python's sort is stable
    docno = sorted(listed, key=lambda d: (run[d], d), reverse=True)
    ranks_stable = [r for r, d in enumerate(stable, start=1) if d in relevant]
    ranks_docno = [r for r, d in enumerate(docno, start=1) if d in relevant]
    n_retrieved = len(ranks_stable)
    # sklearn: precision at each distinct score threshold, weighted by the recall it adds
    sk, seen, hits = 0.0, 0, 0
    for s in sorted(set(run.values()), reverse=True):
        group = [d for d in listed if run[d] == s]
        seen, new = seen + len(group), sum(d in relevant for d in group)
        hits += new
        sk += new / max(n_retrieved, 1) * hits / seen
    return {"trec_eval": _ap(ranks_docno, len(relevant)),
            "ranx": _ap(ranks_stable, len(relevant)),
            "torchmetrics": _ap(ranks_stable, n_retrieved),
            "sklearn": sk}


REPORTED_AP = round(ap_conventions(LIBRARY_RUN, LIBRARY_QRELS)["sklearn"], 4)
"""Exercise 2: the AP a colleague reported for the query (rounded to 4 decimals)."""


def check_library(answer: str | None) -> Feedback:
    """Exercise 2: which library's convention gives :data:`REPORTED_AP`?"""
    if answer is None:
        return not_answered()
    values = ap_conventions(LIBRARY_RUN, LIBRARY_QRELS)
    name = _ALIASES.get(str(answer).strip().lower())
    if name is None:
        return Feedback(False, f"answer one of {', '.join(LIBRARIES)}")
    table = ", ".join(f"{k} {v:.4f}" for k, v in values.items())
    if close(values[name], REPORTED_AP, 5e-5):
        return Feedback(True, f"{table}: only sklearn takes each group of tied scores (0.90, "
                              "0.60) as one threshold; it also ignores the missed e9")
    return Feedback(False, f"{name}'s convention gives {values[name]:.4f}, not {REPORTED_AP}; "
                           "check the tie at 0.90 and the relevant e9 that was never retrieved")


# ------------------------------------------------------------------ exercise 3
def _per_image(per_query: np.ndarray, caption_image: np.ndarray) -> np.ndarray:
    """Mean of the per-caption values of each image (images in index order)."""
    counts = np.bincount(caption_image)
    return np.bincount(caption_image, per_query)[counts > 0] / counts[counts > 0]


def _as_bool(answer: Any) -> bool | None:
    if isinstance(answer, (bool, np.bool_)):
        return bool(answer)
    if isinstance(answer, str) and answer.strip().lower() in ("yes", "no", "true", "false"):
        return answer.strip().lower() in ("yes", "true")
    return None


def check_image_level_test(scores_d: np.ndarray, scores_a: np.ndarray, relevance: np.ndarray,
                           caption_image: np.ndarray, answer: bool | None,
                           alpha: float = 0.05) -> Feedback:
    """Exercise 3: is D better than A at p < ``alpha`` with images as the units?

    Per-caption AP (relevant = grade 3) of both systems, averaged over each image's captions
    (``caption_image``: [Q] image index of each caption query), then the paired permutation
    test (10,000 sign flips, seed 0). "Better" = higher mean and p < alpha.
    """
    if answer is None:
        return not_answered()
    decision = _as_bool(answer)
    if decision is None:
        return Feedback(False, "answer True (D is significantly better) or False")
    caption_image = np.asarray(caption_image)
    ap_d = average_precision(scores_d, relevance, level=3)
    ap_a = average_precision(scores_a, relevance, level=3)
    img = paired_permutation_test(_per_image(ap_d, caption_image),
                                  _per_image(ap_a, caption_image))
    cap = paired_permutation_test(ap_d, ap_a)
    expected = img.mean_diff > 0 and img.p_value < alpha
    caption_level = cap.mean_diff > 0 and cap.p_value < alpha
    detail = (f"per image: mAP difference {img.mean_diff:+.4f}, p = {img.p_value:.3f}; "
              f"per caption: p = {cap.p_value:.3f}")
    if decision == expected:
        return Feedback(True, detail)
    if decision == caption_level:
        return Feedback(False, f"that is the caption-level decision; the 5 captions of an image "
                               f"are not independent - average them per image first ({detail})")
    return Feedback(False, "average each image's caption APs (np.bincount), then run "
                           "mmkit.metrics.paired_permutation_test(d, a)")


# ------------------------------------------------------------------ exercise 4
def check_i2t_recall(image_scores: np.ndarray, caption_image: np.ndarray, answer: float | None,
                     k: int = 5) -> Feedback:
    """Exercise 4: image->text R@k, a hit if ANY of the image's captions is in the top k.

    ``image_scores``: [I, C] image-caption scores; ``caption_image``: [C] image of each caption.
    """
    if answer is None:
        return not_answered()
    caption_image = np.asarray(caption_image)
    expected = image_text_retrieval(image_scores, caption_image, ks=(k,))[f"i2t_hit@{k}"]
    if close(answer, expected, 1e-6):
        return Feedback(True, f"i2t R@{k} = {expected:.4f} (any of the captions counts)")
    n_images = np.asarray(image_scores).shape[0]
    first = np.zeros(np.asarray(image_scores).shape, dtype=bool)
    first_caption = np.unique(caption_image, return_index=True)[1]
    first[caption_image[first_caption], first_caption] = True
    if close(answer, float(hit_rate_at_k(image_scores, first, k).mean()), 1e-6):
        return Feedback(False, "you counted only each image's first caption as a positive: "
                               "any of its captions in the top k is a hit")
    t2i = image_text_retrieval(image_scores, caption_image, ks=(k,))[f"t2i_hit@{k}"]
    if close(answer, t2i, 1e-6):
        return Feedback(False, "that is text->image; the queries here are the "
                               f"{n_images} images")
    return Feedback(False, "use mmkit.metrics.hit_rate_at_k(image_scores, positives, k) with "
                           "positives[i, c] = (caption_image[c] == i), then average")


# ------------------------------------------------------------------ worked solutions
def solution_ap_by_hand(ranking=AP_RANKING, n_relevant: int = AP_N_RELEVANT) -> float:
    """Exercise 1. Precision at the rank of each relevant result (1/2, 2/3, 3/6, 4/10),
    summed and divided by ALL relevant items of the collection (5), the missed one
    included."""
    hits, total = 0, 0.0
    for rank, relevant in enumerate(ranking, start=1):
        if relevant:
            hits += 1
            total += hits / rank
    return total / n_relevant


def solution_library(run=LIBRARY_RUN, qrels=LIBRARY_QRELS, reported: float = REPORTED_AP
                     ) -> str:
    """Exercise 2. Compute the query's AP under each library's convention and name the one
    that gives the reported value. The conventions differ in two places: the tie at 0.90
    (by docno descending, in the order given, or one threshold for the whole group) and the
    denominator (all relevant judged, or only those retrieved)."""
    relevant = {d for d, r in qrels.items() if r > 0}
    retrieved = len(relevant & set(run))

    def ap(order, denominator):
        hits, total = 0, 0.0
        for rank, doc in enumerate(order, start=1):
            if doc in relevant:
                hits += 1
                total += hits / rank
        return total / denominator

    in_given_order = sorted(run, key=lambda d: -run[d])            # a stable sort keeps ties
    by_docno = sorted(run, key=lambda d: (run[d], d), reverse=True)
    # sklearn: one precision per distinct score, taken after the whole tie group
    sklearn, seen, hits = 0.0, 0, 0
    for score in sorted(set(run.values()), reverse=True):
        group = [d for d in run if run[d] == score]
        new = sum(d in relevant for d in group)
        seen, hits = seen + len(group), hits + new
        sklearn += new * hits / seen
    values = {"trec_eval": ap(by_docno, len(relevant)),
              "ranx": ap(in_given_order, len(relevant)),
              "torchmetrics": ap(in_given_order, retrieved),
              "sklearn": sklearn / retrieved}
    return min(values, key=lambda name: abs(values[name] - reported))


def solution_image_level_test(scores_d, scores_a, relevance, caption_image,
                              alpha: float = 0.05) -> bool:
    """Exercise 3. Call with ``scores_d, scores_a, relevance, caption_image``: AP per
    caption (relevant = grade 3), the mean of each image's captions, then the paired
    permutation test over the images."""
    caption_image = np.asarray(caption_image)
    images = np.unique(caption_image)
    ap_d = average_precision(scores_d, relevance, level=3)
    ap_a = average_precision(scores_a, relevance, level=3)
    per_image_d = np.array([ap_d[caption_image == i].mean() for i in images])
    per_image_a = np.array([ap_a[caption_image == i].mean() for i in images])
    test = paired_permutation_test(per_image_d, per_image_a)       # 10,000 flips, seed 0
    return bool(test.mean_diff > 0 and test.p_value < alpha)


def solution_i2t_recall(image_scores, caption_image, k: int = 5) -> float:
    """Exercise 4. Call with ``first_dims(image, 8) @ first_dims(text, 8).T, caption_image``:
    an image query is a hit when ANY of its own captions is among its k best captions."""
    image_scores = np.asarray(image_scores)
    caption_image = np.asarray(caption_image)
    top = np.argsort(-image_scores, axis=1, kind="stable")[:, :k]   # [I, k] caption indices
    own = caption_image[top] == np.arange(len(image_scores))[:, None]
    return float(own.any(axis=1).mean())


SOLUTIONS = {1: solution_ap_by_hand, 2: solution_library, 3: solution_image_level_test,
             4: solution_i2t_recall}
