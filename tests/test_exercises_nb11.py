"""Notebook 11's exercises 1-4 (last caption R@5, repeated gallery R@10, 1K-style R@5 over
folds, ConSE's mean rank per T) against answers computed independently with plain loops over
rankings; wrong answers are rejected with a hint."""
from __future__ import annotations

import numpy as np
import pytest

from mmkit.exercises import nb11
from mmkit.methods.evaluate import DirectionRun


def rank_of_first_hit(row, pos):
    """Plain loop: the 1-based rank of the first positive (score desc, ties by column)."""
    order = sorted(range(len(row)), key=lambda g: (-row[g], g))
    for r, g in enumerate(order, 1):
        if pos[g]:
            return r
    return len(row) + 1


@pytest.fixture
def runs():
    rng = np.random.default_rng(7)
    n_images = 25
    scores = rng.normal(size=(5 * n_images, n_images)).astype(np.float32)
    scores[np.arange(5 * n_images), np.arange(5 * n_images) // 5] += 1.2
    scores[3, 7] = scores[3, 0]                                  # a tie or two
    pos = (np.arange(5 * n_images)[:, None] // 5) == np.arange(n_images)[None, :]
    t2i = DirectionRun("text->image", scores, pos.astype(np.int8) * 3, pos,
                       np.arange(5 * n_images), np.arange(n_images))
    i2t = DirectionRun("image->text", scores.T.copy(), (pos.T * 3).astype(np.int8), pos.T.copy(),
                       np.arange(n_images), np.arange(5 * n_images))
    return t2i, i2t


def _recall(scores, positives, k):
    return float(np.mean([rank_of_first_hit(scores[q], positives[q]) <= k
                          for q in range(len(scores))]))


def test_last_caption_only(runs):
    _, i2t = runs
    g = i2t.positives.shape[1]
    only = {c: i2t.positives & np.array([j % 5 == c for j in range(g)])[None, :] for c in range(5)}
    expect = _recall(i2t.scores, only[4], 5)
    fb = nb11.check_last_caption_only(i2t, expect)
    assert fb and f"{expect:.3f}" in fb.message
    honest = _recall(i2t.scores, i2t.positives, 5)
    assert honest > expect
    wrong = nb11.check_last_caption_only(i2t, honest)
    assert not wrong and "honest" in wrong.message
    first = _recall(i2t.scores, only[0], 5)
    if abs(first - expect) > 1e-9:
        wrong = nb11.check_last_caption_only(i2t, first)
        assert not wrong and "caption 0" in wrong.message
    at10 = _recall(i2t.scores, only[4], 10)
    if abs(at10 - expect) > 1e-9 and all(abs(at10 - _recall(i2t.scores, only[c], 5)) > 1e-9
                                         for c in range(4)):
        assert "top 5" in nb11.check_last_caption_only(i2t, at10).message
    assert not nb11.check_last_caption_only(i2t, "a lot")
    assert nb11.check_last_caption_only(i2t, None).message.startswith("no answer")


def test_repeated_gallery_at_10(runs):
    t2i, _ = runs
    n_img = t2i.scores.shape[1]
    hits = []
    for q in range(len(t2i.scores)):
        row = [t2i.scores[q, g] for g in range(n_img) for _ in range(5)]
        pos = [g == q // 5 and c == q % 5 for g in range(n_img) for c in range(5)]
        hits.append(rank_of_first_hit(np.array(row), np.array(pos)) <= 10)
    expect = float(np.mean(hits))
    assert nb11.check_repeated_gallery(t2i, expect, k=10)
    # five copies per image: R@10 of the repeated gallery is the honest R@2
    assert expect == pytest.approx(_recall(t2i.scores, t2i.positives, 2))
    honest = _recall(t2i.scores, t2i.positives, 10)
    assert honest > expect
    wrong = nb11.check_repeated_gallery(t2i, honest, k=10)
    assert not wrong and "honest" in wrong.message
    assert not nb11.check_repeated_gallery(t2i, expect + 0.01, k=10)
    assert not nb11.check_repeated_gallery(t2i, None, k=10)


def test_fold_mean_at_5(runs):
    t2i, _ = runs
    n_img = t2i.scores.shape[1]
    size = n_img // 5
    per_fold = {1: [], 5: []}
    for f in range(5):
        cols = range(size * f, size * (f + 1))
        for k, values in per_fold.items():
            hits = [rank_of_first_hit(t2i.scores[q, cols.start:cols.stop],
                                      t2i.positives[q, cols.start:cols.stop]) <= k
                    for q in range(len(t2i.scores)) if q // 5 in cols]
            values.append(np.mean(hits))
    expect = float(np.mean(per_fold[5]))
    fb = nb11.check_fold_mean(t2i, expect, k=5)
    assert fb and "R@5" in fb.message
    full = _recall(t2i.scores, t2i.positives, 5)
    wrong = nb11.check_fold_mean(t2i, full, k=5)
    assert not wrong and "whole split" in wrong.message
    r1 = float(np.mean(per_fold[1]))
    assert r1 != expect
    wrong = nb11.check_fold_mean(t2i, r1, k=5)
    assert not wrong and "top 5" in wrong.message
    assert not nb11.check_fold_mean(t2i, None, k=5)


# ------------------------------------------------------------- exercise 4: mean rank per T
def naive_conse(probs, label_vectors, t):
    out = []
    for row in probs:
        top = sorted(range(len(row)), key=lambda c: (-row[c], c))[:t]
        total = sum(row[c] for c in top)
        u = sum(row[c] / total * label_vectors[c].astype(np.float64) for c in top)
        out.append(u / np.sqrt((u ** 2).sum()))
    return np.array(out)


def naive_mean_ranks(probs, label_vectors, queries, right, ts=(1, 3, 10, 30)):
    ranks = {}
    for t in ts:
        photos = naive_conse(probs, label_vectors, t)
        per_query = []
        for q, r in zip(queries, right):
            scores = [float(q @ p) for p in photos]
            per_query.append(1 + sum(1 for s in scores if s > scores[r]))
        ranks[t] = sum(per_query) / len(per_query)
    return ranks


@pytest.fixture
def photos_like():
    rng = np.random.default_rng(12)
    labels = rng.normal(size=(60, 16)).astype(np.float32)
    labels /= np.linalg.norm(labels, axis=1, keepdims=True)
    logits = rng.normal(scale=2.0, size=(13, 60))
    probs = (np.exp(logits) / np.exp(logits).sum(1, keepdims=True)).astype(np.float32)
    right = np.array([2, 4, 12, 5, 3, 1])
    queries = labels[probs[right].argmax(1)] + 1.2 * rng.normal(size=(6, 16))
    queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)
    return probs, labels, queries, right


def test_mean_rank_accepts_loops(photos_like):
    probs, labels, queries, right = photos_like
    expect = naive_mean_ranks(probs, labels, queries, right)
    assert len(set(expect.values())) > 1 and max(expect.values()) > 1   # T matters here
    ok = nb11.check_mean_rank(probs, labels, queries, right, expect)
    assert ok and "ranks best" in ok.message and "\n" not in ok.message
    noisy = {str(t): np.float32(v + 2e-4) for t, v in expect.items()}
    assert nb11.check_mean_rank(probs, labels, queries, right, noisy)


def test_mean_rank_ties_either_way():
    """Two photos with the same top class are the same ConSE vector at T = 1: a tie."""
    rng = np.random.default_rng(0)
    labels = np.eye(40, dtype=np.float32)
    probs = rng.random((5, 40)) * 0.01
    probs[[0, 1], 0] = 1.0                                       # photos 0 and 1: top class 0
    probs[2, 5] = 1.0
    probs = (probs / probs.sum(1, keepdims=True)).astype(np.float32)
    queries, right = labels[[0, 5]], np.array([1, 2])
    ahead = naive_mean_ranks(probs, labels, queries, right)
    assert ahead[1] == 1.0                                       # the tie counted in its favour
    assert nb11.check_mean_rank(probs, labels, queries, right, ahead)
    by_position = {**ahead, 1: 1.5}                              # photo 0 ties and comes first
    assert nb11.check_mean_rank(probs, labels, queries, right, by_position)
    assert not nb11.check_mean_rank(probs, labels, queries, right, {**ahead, 1: 2.0})


def test_mean_rank_rejects_wrong_answers(photos_like):
    probs, labels, queries, right = photos_like
    expect = naive_mean_ranks(probs, labels, queries, right)

    def verdict(answer):
        fb = nb11.check_mean_rank(probs, labels, queries, right, answer)
        assert not fb and "\n" not in fb.message
        return fb.message

    assert verdict(None).startswith("no answer")
    assert "dict" in verdict([1, 2, 3, 4])
    assert "no mean rank for T = 30" in verdict({t: v for t, v in expect.items() if t != 30})
    assert "must be a number" in verdict({**expect, 10: "big"})
    assert "start at 1" in verdict({t: v - 1 for t, v in expect.items()})
    assert "from the bottom" in verdict({t: 14 - v for t, v in expect.items()})
    assert "at least 1" in verdict(nb11.conse_margins(probs, labels, queries, right))
    assert "same for every T" in verdict({t: expect[1] + 0.5 for t in expect})
    assert verdict({**expect, 3: expect[3] + 0.5}).startswith("T = 3 off")
