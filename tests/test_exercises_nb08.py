"""Notebook 08's checkers accept the right answers and reject wrong ones; the AP conventions
written out in mmkit.exercises.nb08 agree with the libraries they describe.

Expected answers come from the real libraries (pytrec_eval, ranx, torchmetrics, sklearn,
scipy.stats.permutation_test) or from naive python loops, never from the mmkit functions the
checkers call.
"""
from __future__ import annotations

import itertools
import re

import numpy as np
import pytest

import mmkit.metrics as mm
from mmkit.exercises import nb08


# ------------------------------------------------------------------ library references
def random_query(seed: int) -> tuple[dict[str, float], dict[str, int]]:
    """A run with tied scores (5+ documents, 4 score values) and a qrels with relevant
    documents that were not retrieved."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 12))
    docs = [f"x{j:02d}" for j in rng.permutation(n)]  # listed in a shuffled docno order
    run = {d: float(s) for d, s in zip(docs, rng.integers(0, 4, n) / 4)}
    qrels = {d: int(r) for d, r in zip(docs, rng.random(n) < 0.4) if r}
    qrels.update({f"y{j}": 1 for j in range(int(rng.integers(0, 3)))})  # never retrieved
    if not any(d in run for d in qrels):
        qrels[docs[0]] = 1
    return run, qrels


def distinct_query(seed: int) -> tuple[dict[str, float], dict[str, int]]:
    """As :func:`random_query` but with all scores distinct, listed in no particular order.

    Scores are positive: torchmetrics (1.9) treats a document scored <= 0 as not relevant,
    which the written-out convention does not model (see the report of this test's author).
    """
    rng = np.random.default_rng(1000 + seed)
    n = int(rng.integers(4, 12))
    docs = [f"x{j:02d}" for j in rng.permutation(n)]
    scores = (rng.permutation(n) + 1) / n  # distinct, in (0, 1]
    run = {d: float(s) for d, s in zip(docs, scores)}
    qrels = {d: int(r) for d, r in zip(docs, rng.random(n) < 0.4) if r}
    qrels.update({f"y{j}": 1 for j in range(int(rng.integers(0, 3)))})
    if not any(d in run for d in qrels):
        qrels[docs[int(rng.integers(n))]] = 1
    return run, qrels


def library_values(run, qrels) -> dict[str, float]:
    """AP of one query by each real library."""
    pytrec_eval = pytest.importorskip("pytrec_eval")
    ranx = pytest.importorskip("ranx")
    torch = pytest.importorskip("torch")
    from sklearn.metrics import average_precision_score
    from torchmetrics.functional.retrieval import retrieval_average_precision

    trec = pytrec_eval.RelevanceEvaluator({"q": qrels}, {"map"}).evaluate({"q": run})["q"]["map"]
    rx = ranx.evaluate(ranx.Qrels({"q": qrels}), ranx.Run({"q": run}), "map")
    target = np.array([qrels.get(d, 0) > 0 for d in run])
    preds = np.array(list(run.values()))
    tm = retrieval_average_precision(torch.tensor(preds, dtype=torch.float64),
                                     torch.tensor(target)).item()
    sk = average_precision_score(target, preds)
    return {"trec_eval": float(trec), "ranx": float(rx), "torchmetrics": float(tm),
            "sklearn": float(sk)}


def tie_orders(run: dict[str, float]):
    """Every way to order ``run`` by score, tied documents in any order, as runs with
    distinct positive scores (the first yielded keeps ties in the order given)."""
    groups = [[d for d in run if run[d] == s] for s in sorted(set(run.values()), reverse=True)]
    for choice in itertools.product(*(itertools.permutations(g) for g in groups)):
        order = [d for g in choice for d in g]
        yield {d: float(len(order) - r) for r, d in enumerate(order)}


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(12))
def test_ap_conventions_match_the_libraries(seed):
    # tied scores: trec_eval (docno descending), ranx (order given) and sklearn (tie groups)
    run, qrels = random_query(seed)
    assert len(set(run.values())) < len(run)  # there are ties to break
    mine = nb08.ap_conventions(run, qrels)
    ref = library_values(run, qrels)
    for name in ("trec_eval", "ranx", "sklearn"):
        assert mine[name] == pytest.approx(ref[name], abs=1e-9), name
    # distinct scores: every convention, torchmetrics included, for every seed
    run, qrels = distinct_query(seed)
    assert len(set(run.values())) == len(run)
    mine = nb08.ap_conventions(run, qrels)
    ref = library_values(run, qrels)
    for name in nb08.LIBRARIES:
        assert mine[name] == pytest.approx(ref[name], abs=1e-6), name


@pytest.mark.slow
def test_exercise_query_separates_the_libraries():
    run, qrels = nb08.LIBRARY_RUN, nb08.LIBRARY_QRELS
    mine = nb08.ap_conventions(run, qrels)
    ref = library_values(run, qrels)
    for name in ("trec_eval", "ranx", "sklearn"):
        assert mine[name] == pytest.approx(ref[name], abs=1e-9), name
    # torchmetrics does not promise an order for ties: compare with the ties broken in the
    # order given (distinct scores), as the written-out convention claims
    given = library_values(next(tie_orders(run)), qrels)["torchmetrics"]
    assert mine["torchmetrics"] == pytest.approx(given, abs=1e-6)
    # the exercise (and the checker's message) rely on torch keeping that order here too;
    # with e3 before e2 and e6 before e5 torchmetrics would give exactly sklearn's value
    assert ref["torchmetrics"] == pytest.approx(given, abs=1e-6)
    # four different answers, and only sklearn's is the reported one
    assert len({round(v, 4) for v in ref.values()}) == 4
    assert nb08.REPORTED_AP == round(ref["sklearn"], 4)
    assert [n for n, v in ref.items() if round(v, 4) == nb08.REPORTED_AP] == ["sklearn"]


@pytest.mark.slow
def test_library():
    run, qrels = nb08.LIBRARY_RUN, nb08.LIBRARY_QRELS
    ref = library_values(run, qrels)  # torchmetrics: ties as torch orders them
    # mmkit's convention (ties in the order given), by mmkit itself on the ranked list
    docs = list(run) + [d for d in qrels if d not in run]
    relevance = np.array([[qrels.get(d, 0) for d in docs]], float)
    ranked = sorted(range(len(run)), key=lambda c: -run[docs[c]])  # stable: order given
    mmkit_ap = float(mm.average_precision(mm.RankedLists(np.array([ranked])), relevance)[0])
    assert mmkit_ap == pytest.approx(ref["ranx"], abs=1e-9)
    values = {**ref, "pytrec_eval": ref["trec_eval"], "trec": ref["trec_eval"],
              "mmkit": mmkit_ap, "scikit-learn": ref["sklearn"], " Scikit-Learn ": ref["sklearn"],
              "scikit_learn": ref["sklearn"], "SKLEARN": ref["sklearn"]}
    right = [name for name, v in values.items() if round(v, 4) == nb08.REPORTED_AP]
    assert {name.strip().lower() for name in right} == {"sklearn", "scikit-learn", "scikit_learn"}
    for name, v in values.items():
        fb = nb08.check_library(name)
        if name in right:
            assert fb, name
        else:
            assert not fb, name
            assert f"convention gives {v:.4f}, not {nb08.REPORTED_AP}" in str(fb), (name, fb)
    for wrong in ("excel", "", "numpy"):
        assert "answer one of" in str(nb08.check_library(wrong))
    assert not nb08.check_library(None)


# ------------------------------------------------------------------------- AP by hand
def test_ap_by_hand():
    pytrec_eval = pytest.importorskip("pytrec_eval")
    torch = pytest.importorskip("torch")
    from torchmetrics.functional.retrieval import retrieval_average_precision

    ranking = nb08.AP_RANKING
    n_missed = nb08.AP_N_RELEVANT - sum(ranking)
    assert n_missed == 1  # "one of them was never retrieved"
    run = {f"d{r:02d}": float(len(ranking) - r) for r in range(len(ranking))}
    qrels = {f"d{r:02d}": 1 for r, rel in enumerate(ranking) if rel}
    qrels.update({f"missed{m}": 1 for m in range(n_missed)})
    expected = pytrec_eval.RelevanceEvaluator({"q": qrels}, {"map"}).evaluate(
        {"q": run})["q"]["map"]
    assert nb08.check_ap_by_hand(expected)
    assert nb08.check_ap_by_hand(round(expected, 3))
    assert nb08.check_ap_by_hand(str(expected))
    assert f"{expected:.4f}" in str(nb08.check_ap_by_hand(expected))
    # the torchmetrics convention: only the relevant items it was given
    tm = retrieval_average_precision(torch.tensor(list(run.values()), dtype=torch.float64),
                                     torch.tensor([bool(r) for r in ranking])).item()
    assert abs(tm - expected) > 1e-2
    wrong = nb08.check_ap_by_hand(tm)
    assert not wrong and "torchmetrics" in str(wrong)
    for other in (expected + 0.01, expected - 0.01, sum(ranking) / len(ranking), "half"):
        fb = nb08.check_ap_by_hand(other)
        assert not fb and "torchmetrics" not in str(fb) and "divide by" in str(fb), other
    assert not nb08.check_ap_by_hand(None) and "no answer yet" in str(nb08.check_ap_by_hand(None))


# ------------------------------------------------------------- image-level significance
def naive_ap(scores_row, relevant_row) -> float:
    """AP of one query: precision at each relevant item's rank, over all relevant items."""
    order = sorted(range(len(scores_row)), key=lambda c: -scores_row[c])
    hits, total = 0, 0.0
    for rank, c in enumerate(order, start=1):
        if relevant_row[c]:
            hits += 1
            total += hits / rank
    n_relevant = sum(bool(r) for r in relevant_row)
    return total / n_relevant if n_relevant else 0.0


def naive_per_image(scores, relevance, caption_image) -> dict[int, float]:
    """{image: mean AP (relevant = grade 3) of its captions}."""
    per: dict[int, list[float]] = {}
    for q in range(len(scores)):
        ap = naive_ap(list(scores[q]), [g >= 3 for g in relevance[q]])
        per.setdefault(int(caption_image[q]), []).append(ap)
    return {i: sum(v) / len(v) for i, v in sorted(per.items())}


def scipy_paired(x, y, n_resamples=10000, seed=0) -> tuple[float, float]:
    """(mean difference, two-sided p) of scipy's paired permutation (sign-flip) test."""
    from scipy.stats import permutation_test

    x, y = np.asarray(x, float), np.asarray(y, float)
    res = permutation_test((x, y), lambda a, b, axis: np.mean(a - b, axis=axis),
                           permutation_type="samples", vectorized=True,
                           n_resamples=n_resamples, alternative="two-sided",
                           rng=np.random.default_rng(seed))
    return float(np.mean(x - y)), float(res.pvalue)


def reference_decisions(d, a, relevance, caption_image, alpha=0.05):
    """(image-level diff, p), (caption-level diff, p) from naive APs and scipy."""
    img_d = naive_per_image(d, relevance, caption_image)
    img_a = naive_per_image(a, relevance, caption_image)
    img = scipy_paired([img_d[i] for i in img_d], [img_a[i] for i in img_d])
    cap_d = [naive_ap(list(d[q]), [g >= 3 for g in relevance[q]]) for q in range(len(d))]
    cap_a = [naive_ap(list(a[q]), [g >= 3 for g in relevance[q]]) for q in range(len(a))]
    cap = scipy_paired(cap_d, cap_a)
    return img, cap


_DETAIL = re.compile(r"mAP difference ([+-]\d+\.\d{4}), p = (\d\.\d{3}); per caption: p = "
                     r"(\d\.\d{3})")


def test_image_level_test(small_world):
    from naive_world import naive_grade

    w = small_world
    test = [int(i) for i in w.indices("test")]
    rng = np.random.default_rng(0)
    seen_truths = set()
    for images in (test[:12], test):  # 2^12 sign vectors: exact for both; all 21: sampled
        exact = len(images) <= 13
        captions = [j for i in images for j in w.captions_of(i)]
        relevance = np.array([[naive_grade(w, j, i) for i in images] for j in captions], np.int8)
        caption_image = np.array([images.index(int(w.caption_image[j])) for j in captions])
        oracle = relevance + rng.random(relevance.shape)  # every grade-3 image first: AP = 1
        noise = rng.random(relevance.shape)
        half = 0.4 * (relevance == 3) + rng.random(relevance.shape)
        for d, a in ((oracle, noise), (noise, oracle), (half, noise),
                     (noise, noise + 0.01 * rng.random(noise.shape))):
            (img_diff, img_p), (_, cap_p) = reference_decisions(d, a, relevance, caption_image)
            if not exact:  # the checker samples other sign vectors: stay clear of alpha
                assert abs(img_p - 0.05) > 0.02, img_p
            truth = bool(img_diff > 0 and img_p < 0.05)
            seen_truths.add(truth)
            fb = nb08.check_image_level_test(d, a, relevance, caption_image, truth)
            assert fb, fb
            diff_s, p_s, cap_s = _DETAIL.search(str(fb)).groups()
            assert float(diff_s) == pytest.approx(img_diff, abs=5e-5 + 1e-12)
            assert float(p_s) == pytest.approx(img_p, abs=(5e-4 + 1e-9) if exact else 0.025)
            assert float(cap_s) == pytest.approx(cap_p, abs=0.025)  # both sampled
            assert nb08.check_image_level_test(d, a, relevance, caption_image,
                                               "yes" if truth else "no")
            assert nb08.check_image_level_test(d, a, relevance, caption_image,
                                               np.bool_(truth))
            assert not nb08.check_image_level_test(d, a, relevance, caption_image, not truth)
            assert not nb08.check_image_level_test(d, a, relevance, caption_image,
                                                   "no" if truth else "yes")
        # the captions' order does not matter: the same images, the same verdict
        perm = rng.permutation(len(captions))
        (img_diff, img_p), _ = reference_decisions(half[perm], noise[perm], relevance[perm],
                                                   caption_image[perm])
        truth = bool(img_diff > 0 and img_p < 0.05)
        assert nb08.check_image_level_test(half[perm], noise[perm], relevance[perm],
                                           caption_image[perm], truth)
        assert not nb08.check_image_level_test(oracle, noise, relevance, caption_image, "maybe")
        assert "answer True" in str(nb08.check_image_level_test(oracle, noise, relevance,
                                                                caption_image, 3))
        assert not nb08.check_image_level_test(oracle, noise, relevance, caption_image, None)
    assert seen_truths == {True, False}


def test_image_level_test_names_the_caption_level_mistake():
    """An effect shared by an image's 5 captions: significant per caption, not per image."""
    rng = np.random.default_rng(1)
    n_images, per = 40, 5
    caption_image = np.repeat(np.arange(n_images), per)
    queries = np.arange(n_images * per)
    relevance = np.zeros((n_images * per, n_images), dtype=np.int8)
    relevance[queries, caption_image] = 3  # one relevant image per caption
    found = False
    for _ in range(100):  # fixed seed: the same pair is found on every run
        a = rng.random(relevance.shape)
        d = a.copy()
        d[queries, caption_image] += rng.normal(0.05, 0.3, n_images)[caption_image]
        (img_diff, img_p), (cap_diff, cap_p) = reference_decisions(d, a, relevance,
                                                                   caption_image)
        # clear of alpha on both sides, so that the checker's own sampling agrees
        if cap_diff > 0 and cap_p < 0.03 and img_p > 0.07:
            found = True
            break
    assert found
    fb = nb08.check_image_level_test(d, a, relevance, caption_image, True)
    assert not fb and "caption-level" in str(fb)
    assert nb08.check_image_level_test(d, a, relevance, caption_image, False)
    assert nb08.check_image_level_test(d, a, relevance, caption_image, "no")


# -------------------------------------------------------------------------- i2t recall
def naive_i2t(scores, caption_image, k, positive=None) -> float:
    """Share of images with one of their captions (``positive(i, c)``) in their top k."""
    positive = positive or (lambda i, c: caption_image[c] == i)
    hits = 0
    for i in range(len(scores)):
        top = sorted(range(len(scores[i])), key=lambda c: -scores[i][c])[:k]
        hits += any(positive(i, c) for c in top)
    return hits / len(scores)


def naive_t2i(scores, caption_image, k) -> float:
    """Share of captions whose own image is in their top k images."""
    hits = 0
    for c in range(len(caption_image)):
        top = sorted(range(len(scores)), key=lambda i: -scores[i][c])[:k]
        hits += caption_image[c] in top
    return hits / len(caption_image)


def test_i2t_recall():
    rng = np.random.default_rng(2)
    n_images = 30
    caption_image = np.repeat(np.arange(n_images), rng.integers(1, 8, n_images))
    caption_image = caption_image[rng.permutation(len(caption_image))]  # interleaved
    n_captions = len(caption_image)
    scores = rng.random((n_images, n_captions))
    scores[caption_image, np.arange(n_captions)] += 0.3  # own captions score higher
    assert len(np.unique(scores)) == scores.size  # no ties to break
    s = scores.tolist()
    owner = caption_image.tolist()
    first = {i: min(c for c in range(n_captions) if owner[c] == i) for i in range(n_images)}
    for k in (1, 5, 10):
        right = naive_i2t(s, owner, k)
        fb = nb08.check_i2t_recall(scores, caption_image, right, k=k)
        assert fb and f"R@{k} = {right:.4f}" in str(fb), (k, fb)
        wrong_first = naive_i2t(s, owner, k, positive=lambda i, c: c == first[i])
        t2i = naive_t2i(s, owner, k)
        assert abs(wrong_first - right) > 1e-6 and abs(t2i - right) > 1e-6 and \
            abs(t2i - wrong_first) > 1e-6, (k, right, wrong_first, t2i)
        fb = nb08.check_i2t_recall(scores, caption_image, wrong_first, k=k)
        assert not fb and "first caption" in str(fb)
        fb = nb08.check_i2t_recall(scores, caption_image, t2i, k=k)
        assert not fb and "text->image" in str(fb) and f"{n_images} images" in str(fb)
        for other in (right + 0.05, right - 1 / n_images, "most"):
            fb = nb08.check_i2t_recall(scores, caption_image, other, k=k)
            assert not fb and "hit_rate_at_k" in str(fb), other
    assert nb08.check_i2t_recall(scores, caption_image, naive_i2t(s, owner, 5))  # default k
    assert not nb08.check_i2t_recall(scores, caption_image, None)
