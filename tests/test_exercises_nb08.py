"""Notebook 08's checkers accept the right answers and reject wrong ones; the AP conventions
written out in mmkit.exercises.nb08 agree with the libraries they describe."""
from __future__ import annotations

import numpy as np
import pytest

import mmkit.metrics as mm
from mmkit.exercises import nb08


def random_query(seed: int) -> tuple[dict[str, float], dict[str, int]]:
    """A run with tied scores and a qrels with relevant documents that were not retrieved."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(4, 12))
    docs = [f"x{j:02d}" for j in rng.permutation(n)]  # listed in a shuffled docno order
    run = {d: float(s) for d, s in zip(docs, rng.integers(0, 4, n) / 4)}
    qrels = {d: int(r) for d, r in zip(docs, rng.random(n) < 0.4) if r}
    qrels.update({f"y{j}": 1 for j in range(int(rng.integers(0, 3)))})  # never retrieved
    if not any(d in run for d in qrels):
        qrels[docs[0]] = 1
    return run, qrels


def library_values(run, qrels) -> dict[str, float]:
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
    return {"trec_eval": trec, "ranx": float(rx), "torchmetrics": tm, "sklearn": sk}


@pytest.mark.parametrize("seed", range(12))
def test_ap_conventions_match_the_libraries(seed):
    run, qrels = random_query(seed)
    mine = nb08.ap_conventions(run, qrels)
    ref = library_values(run, qrels)
    for name in ("trec_eval", "ranx", "sklearn"):
        assert mine[name] == pytest.approx(ref[name], abs=1e-9), name
    # torch's sort does not promise to keep tied items in order; compare without ties
    if len(set(run.values())) == len(run):
        assert mine["torchmetrics"] == pytest.approx(ref["torchmetrics"], abs=1e-6)


def test_exercise_query_separates_the_libraries():
    mine = nb08.ap_conventions(nb08.LIBRARY_RUN, nb08.LIBRARY_QRELS)
    ref = library_values(nb08.LIBRARY_RUN, nb08.LIBRARY_QRELS)
    for name in nb08.LIBRARIES:  # torchmetrics computes in float32
        assert mine[name] == pytest.approx(ref[name], abs=1e-6 if name == "torchmetrics" else 1e-9)
    assert len({round(v, 4) for v in mine.values()}) == 4  # four different answers
    assert nb08.REPORTED_AP == round(ref["sklearn"], 4)


def test_ap_by_hand():
    ranks = [r for r, rel in enumerate(nb08.AP_RANKING, start=1) if rel]
    relevance = np.zeros((1, 12))
    relevance[0, [r - 1 for r in ranks] + [11]] = 1  # the 5th relevant item is never retrieved
    lists = mm.RankedLists(np.array([list(range(len(nb08.AP_RANKING)))]))
    expected = float(mm.average_precision(lists, relevance)[0])
    assert nb08.AP_N_RELEVANT == len(ranks) + 1
    assert nb08.check_ap_by_hand(expected)
    assert nb08.check_ap_by_hand(round(expected, 3))
    wrong = nb08.check_ap_by_hand(expected * nb08.AP_N_RELEVANT / len(ranks))
    assert not wrong and "torchmetrics" in str(wrong)
    assert not nb08.check_ap_by_hand(expected + 0.01)
    assert not nb08.check_ap_by_hand("half")
    assert not nb08.check_ap_by_hand(None) and "no answer yet" in str(nb08.check_ap_by_hand(None))


def test_library():
    assert nb08.check_library("sklearn") and nb08.check_library(" Scikit-Learn ")
    for wrong in ("trec_eval", "pytrec_eval", "ranx", "mmkit", "torchmetrics"):
        assert not nb08.check_library(wrong)
    assert "answer one of" in str(nb08.check_library("excel"))
    assert not nb08.check_library(None)


def ap_per_image(scores, relevance, caption_image):
    ap = mm.average_precision(scores, relevance, level=3)
    return np.bincount(caption_image, ap) / np.bincount(caption_image)


def test_image_level_test(small_world):
    w = small_world
    test = w.indices("test")
    relevance, _ = w.ground_truth("text->image", test)
    caption_image = np.repeat(np.arange(len(test)), w.config.captions_per_image)
    rng = np.random.default_rng(0)
    oracle = relevance + rng.random(relevance.shape)  # close to perfect
    noise = rng.random(relevance.shape)
    for d, a in ((oracle, noise), (noise, oracle), (noise, noise + 0.01 * rng.random(noise.shape))):
        r = mm.paired_permutation_test(ap_per_image(d, relevance, caption_image),
                                       ap_per_image(a, relevance, caption_image))
        truth = bool(r.mean_diff > 0 and r.p_value < 0.05)
        assert nb08.check_image_level_test(d, a, relevance, caption_image, truth)
        assert nb08.check_image_level_test(d, a, relevance, caption_image,
                                           "yes" if truth else "no")
        assert not nb08.check_image_level_test(d, a, relevance, caption_image, not truth)
    assert nb08.check_image_level_test(oracle, noise, relevance, caption_image, True)
    assert not nb08.check_image_level_test(oracle, noise, relevance, caption_image, "maybe")
    assert not nb08.check_image_level_test(oracle, noise, relevance, caption_image, None)


def test_image_level_test_names_the_caption_level_mistake():
    """An effect shared by an image's 5 captions: significant per caption, not per image."""
    rng = np.random.default_rng(1)
    n_images, per = 40, 5
    caption_image = np.repeat(np.arange(n_images), per)
    queries = np.arange(n_images * per)
    relevance = np.zeros((n_images * per, n_images), dtype=np.int8)
    relevance[queries, caption_image] = 3  # one relevant image per caption: AP = 1 / rank
    for _ in range(100):  # fixed seed: the same pair is found on every run
        a = rng.random(relevance.shape)
        d = a.copy()
        d[queries, caption_image] += rng.normal(0.05, 0.3, n_images)[caption_image]
        ap_d, ap_a = (mm.average_precision(s, relevance, level=3) for s in (d, a))
        cap = mm.paired_permutation_test(ap_d, ap_a)
        img = mm.paired_permutation_test(ap_per_image(d, relevance, caption_image),
                                         ap_per_image(a, relevance, caption_image))
        cap_yes = bool(cap.mean_diff > 0 and cap.p_value < 0.05)
        img_yes = bool(img.mean_diff > 0 and img.p_value < 0.05)
        if cap_yes != img_yes:
            break
    assert cap_yes and not img_yes
    fb = nb08.check_image_level_test(d, a, relevance, caption_image, True)
    assert not fb and "caption-level" in str(fb)
    assert nb08.check_image_level_test(d, a, relevance, caption_image, False)


def test_i2t_recall():
    rng = np.random.default_rng(2)
    n_images, per = 30, 5
    caption_image = np.repeat(np.arange(n_images), per)
    scores = rng.random((n_images, n_images * per))
    scores[caption_image, np.arange(n_images * per)] += 0.3  # own captions score higher
    positives = caption_image[None, :] == np.arange(n_images)[:, None]
    right = float(mm.hit_rate_at_k(scores, positives, 5).mean())
    assert nb08.check_i2t_recall(scores, caption_image, right)
    first = positives & (np.arange(n_images * per) % per == 0)[None, :]
    wrong = float(mm.hit_rate_at_k(scores, first, 5).mean())
    assert wrong != right
    fb = nb08.check_i2t_recall(scores, caption_image, wrong)
    assert not fb and "first caption" in str(fb)
    t2i = float(mm.hit_rate_at_k(scores.T, positives.T, 5).mean())
    if t2i != right:
        assert "text->image" in str(nb08.check_i2t_recall(scores, caption_image, t2i))
    assert nb08.check_i2t_recall(scores, caption_image,
                                 float(mm.hit_rate_at_k(scores, positives, 1).mean()), k=1)
    assert not nb08.check_i2t_recall(scores, caption_image, right + 0.05)
    assert not nb08.check_i2t_recall(scores, caption_image, None)
