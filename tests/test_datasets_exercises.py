"""Notebook 11's exercise checkers against answers computed independently (plain loops over
rankings), wrong answers rejected with a hint."""
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
