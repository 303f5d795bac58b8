"""Notebook 11's exercise checkers against answers computed independently (plain loops over
rankings), wrong answers rejected with a hint."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from mmkit.exercises import nb11
from mmkit.features.conse import conse
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
    rng = np.random.default_rng(3)
    n_images = 20
    scores = rng.normal(size=(5 * n_images, n_images)).astype(np.float32)
    scores[np.arange(5 * n_images), np.arange(5 * n_images) // 5] += 1.0
    pos = (np.arange(5 * n_images)[:, None] // 5) == np.arange(n_images)[None, :]
    t2i = DirectionRun("text->image", scores, pos.astype(np.int8) * 3, pos,
                       np.arange(5 * n_images), np.arange(n_images))
    i2t = DirectionRun("image->text", scores.T.copy(), (pos.T * 3).astype(np.int8), pos.T.copy(),
                       np.arange(n_images), np.arange(5 * n_images))
    return t2i, i2t


def test_first_caption_only(runs):
    _, i2t = runs
    first_only = i2t.positives & (np.arange(i2t.positives.shape[1]) % 5 == 0)[None, :]
    expect = np.mean([rank_of_first_hit(i2t.scores[q], first_only[q]) <= 5
                      for q in range(len(i2t.scores))])
    assert nb11.check_first_caption_only(i2t, expect)
    honest = np.mean([rank_of_first_hit(i2t.scores[q], i2t.positives[q]) <= 5
                      for q in range(len(i2t.scores))])
    assert honest != expect
    wrong = nb11.check_first_caption_only(i2t, honest)
    assert not wrong and "honest" in wrong.message
    assert not nb11.check_first_caption_only(i2t, "a lot")
    assert nb11.check_first_caption_only(i2t, None).message.startswith("no answer")


def test_repeated_gallery(runs):
    t2i, _ = runs
    hits = []
    for q in range(len(t2i.scores)):
        row = [t2i.scores[q, g] for g in range(t2i.scores.shape[1]) for _ in range(5)]
        pos = [g == q // 5 and c == q % 5 for g in range(t2i.scores.shape[1]) for c in range(5)]
        hits.append(rank_of_first_hit(np.array(row), np.array(pos)) == 1)
    expect = float(np.mean(hits))
    assert nb11.check_repeated_gallery(t2i, expect)
    assert expect < np.mean([rank_of_first_hit(t2i.scores[q], t2i.positives[q]) == 1
                             for q in range(len(t2i.scores))])
    assert not nb11.check_repeated_gallery(t2i, expect + 0.01)


def test_fold_mean(runs):
    t2i, _ = runs
    per_fold = []
    for f in range(5):
        images = range(4 * f, 4 * f + 4)
        hits = [rank_of_first_hit(t2i.scores[q, 4 * f:4 * f + 4], t2i.positives[q, 4 * f:4 * f + 4]) == 1
                for q in range(len(t2i.scores)) if q // 5 in images]
        per_fold.append(np.mean(hits))
    assert nb11.check_fold_mean(t2i, float(np.mean(per_fold)))
    full = float(np.mean([rank_of_first_hit(t2i.scores[q], t2i.positives[q]) == 1
                          for q in range(len(t2i.scores))]))
    wrong = nb11.check_fold_mean(t2i, full)
    assert not wrong and "whole split" in wrong.message


# ------------------------------------------------------------- exercise 4: ConSE's T
def naive_conse(probs, label_vectors, t):
    """Plain loops: each row's t most probable classes (ties: lower index), their vectors
    weighted by the renormalised probabilities, summed, L2-normalised."""
    out = []
    for row in probs:
        top = sorted(range(len(row)), key=lambda c: (-row[c], c))[:t]
        total = sum(row[c] for c in top)
        u = sum(row[c] / total * label_vectors[c].astype(np.float64) for c in top)
        out.append(u / np.sqrt((u ** 2).sum()))
    return np.array(out)


def naive_margins(probs, label_vectors, queries, right, ts=(1, 3, 10, 30)):
    margins = {}
    for t in ts:
        photos = naive_conse(probs, label_vectors, t)
        per_query = []
        for q, r in zip(queries, right):
            scores = [float(q @ p) for p in photos]
            per_query.append(scores[r] - max(s for g, s in enumerate(scores) if g != r))
        margins[t] = sum(per_query) / len(per_query)
    return margins


@pytest.fixture
def photos_like():
    """13 'photos' over 60 classes, 6 queries near some photos' top classes, 16-d labels."""
    rng = np.random.default_rng(11)
    labels = rng.normal(size=(60, 16)).astype(np.float32)
    labels /= np.linalg.norm(labels, axis=1, keepdims=True)
    logits = rng.normal(scale=2.0, size=(13, 60))
    probs = (np.exp(logits) / np.exp(logits).sum(1, keepdims=True)).astype(np.float32)
    right = np.array([2, 4, 12, 5, 3, 1])
    queries = labels[probs[right].argmax(1)] + 0.8 * rng.normal(size=(6, 16))
    queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)
    return probs, labels, queries, right


def test_top_t_accepts_the_margins_computed_by_loops(photos_like):
    probs, labels, queries, right = photos_like
    expect = naive_margins(probs, labels, queries, right)
    assert len({round(v, 4) for v in expect.values()}) == 4       # T matters on this data
    ok = nb11.check_top_t(probs, labels, queries, right, expect)
    assert ok, ok.message
    best = max(expect, key=expect.get)
    assert ok.message.startswith(f"T={best} separates best")
    # keys given as strings, values as numpy floats, a little float32 noise: still right
    noisy = {str(t): np.float32(v + 2e-5) for t, v in expect.items()}
    assert nb11.check_top_t(probs, labels, queries, right, noisy)


def test_top_t_rejects_wrong_answers_with_a_hint(photos_like):
    probs, labels, queries, right = photos_like
    expect = naive_margins(probs, labels, queries, right)

    def verdict(answer):
        fb = nb11.check_top_t(probs, labels, queries, right, answer)
        assert not fb and "\n" not in fb.message
        return fb.message

    assert verdict(None).startswith("no answer")
    assert "dict" in verdict([0.1, 0.2, 0.3, 0.4])
    assert "no mean margin for T = 30" in verdict({t: v for t, v in expect.items() if t != 30})
    assert "must be a number" in verdict({**expect, 10: "big"})
    assert "keys are the values of T" in verdict({**expect, "ten": 0.1})
    # the right photos' mean cosine, not the margin
    own = {t: float(np.mean([q @ p for q, p in zip(queries, naive_conse(probs, labels, t)[right])]))
           for t in expect}
    assert "mean cosine of the right photos" in verdict(own)
    # first minus second, whichever they are
    gap = {}
    for t in expect:
        s = np.sort(queries @ naive_conse(probs, labels, t).T, axis=1)
        gap[t] = float((s[:, -1] - s[:, -2]).mean())
    assert "best OTHER photo" in verdict(gap)
    # the label vectors averaged without their probabilities
    flat = {}
    for t in expect:
        photos = naive_conse((probs > np.sort(probs, 1)[:, [-t - 1]]).astype(np.float32),
                             labels, t)
        s = queries @ photos.T
        flat[t] = float(np.mean([s[q, r] - np.delete(s[q], r).max() for q, r in enumerate(right)]))
    assert "weight each by its class probability" in verdict(flat)
    assert "same for every T" in verdict({t: expect[10] for t in expect})
    msg = verdict({**expect, 3: expect[3] + 0.01})
    assert msg.startswith("T = 3 off")


def _notebook_cell(cell_id: str) -> str:
    nb = json.loads((Path(__file__).resolve().parents[1] / "notebooks"
                     / "11_real_datasets.ipynb").read_text(encoding="utf-8"))
    cell = next(c for c in nb["cells"] if c.get("id") == cell_id)
    return "".join(cell["source"])


def test_the_notebooks_conse_equals_mmkits(photos_like):
    """The notebook's own my_conse equals mmkit's conse (the exercise's worked solution is
    tested with the others in test_exercise_solutions.py)."""
    probs, labels, _, _ = photos_like
    source = _notebook_cell("photos-04-conse")
    definition = re.search(r"^def my_conse\(.*?(?=^\S)", source,
                           re.DOTALL | re.MULTILINE).group(0)
    space = {"np": np}
    exec(definition, space)  # noqa: S102 - the notebook's own code
    for t in (1, 3, 10, 30):
        assert np.allclose(space["my_conse"](probs, labels, t), conse(probs, labels, t),
                           atol=1e-6)
