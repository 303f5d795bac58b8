"""The exercise checkers of notebook 00 accept the right answers and reject wrong ones.

Every expected answer is derived here independently of the code the checker calls:
"fits fully" is a naive per-(caption, image) predicate written from the rules in the
docstring of mmkit.data.relevance and read from the world's raw arrays (not
``caption_relevance``); the oracle's R@1 is a closed form checked against exhaustive
enumeration of tie orders and a Monte-Carlo simulation (not ``oracle_hit_rate``); the colour
of the lowest note is found by measuring the pitch of synthesised clips.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from mmkit.data import vocab as V
from mmkit.data.sound import synth_scene
from mmkit.exercises import Feedback, nb00
from naive_world import fits_fully, naive_grade  # tests/naive_world.py


def test_feedback_prints_one_line():
    fb = Feedback(True, "well done")
    assert bool(fb) and str(fb) == "correct: well done"
    bad = Feedback(False, "try again")
    assert not bad and str(bad) == "not yet: try again" and "\n" not in str(bad)
    assert not nb00.check_lowest_note(None)
    assert "no answer yet" in str(nb00.check_lowest_note(None))


def test_naive_predicate_sees_every_clause(small_world):
    """The naive predicate is not vacuous: the caption's own image always fits (docstring),
    and each clause (main mention, relation, style, sign word) rejects some image."""
    w = small_world
    rejected_by = {"main": 0, "relation": 0, "style": 0, "word": 0}
    for j in range(0, len(w.captions), 7):
        s = w.caption_struct(j)
        assert fits_fully(w, j, int(w.caption_image[j])), j
        for i in range(0, len(w), 5):
            g = naive_grade(w, j, i)
            if g < 2:
                rejected_by["main"] += 1
            elif g == 2:
                rejected_by["style"] += s.style >= 0 and s.style != w.styles[i]
                rejected_by["word"] += s.word >= 0 and s.word != w.words[i]
                rejected_by["relation"] += (s.relation >= 0 and s.style in (-1, w.styles[i])
                                            and s.word in (-1, w.words[i]))
    assert all(v > 0 for v in rejected_by.values()), rejected_by


# -------------------------------------------------------- exercise 1: most ambiguous
def test_most_ambiguous_caption(small_world):
    w = small_world
    images = range(0, len(w), 4)
    checked_rejections = 0
    for image in images:
        caps = w.captions_of(image)
        assert caps == [j for j in range(len(w.captions)) if w.caption_image[j] == image]
        counts = {j: sum(fits_fully(w, j, i) for i in range(len(w))) for j in caps}
        top = max(counts.values())
        for j in caps:
            fb = nb00.check_most_ambiguous_caption(w, image, j)
            if counts[j] == top:
                assert fb, (image, j, counts, fb)
                assert f"fits {top} images fully" in str(fb)
            else:
                assert not fb, (image, j, counts, fb)
                assert f"caption {j} fits {counts[j]} images;" in str(fb)
                assert "another caption fits more" in str(fb)
                checked_rejections += 1
        # a caption of another image, even the most ambiguous one there, is not an answer
        other = (image + 1) % len(w)
        for j in w.captions_of(other):
            fb = nb00.check_most_ambiguous_caption(w, image, j)
            assert not fb and "is not one of" in str(fb)
        assert not nb00.check_most_ambiguous_caption(w, image, 10**6)
        assert not nb00.check_most_ambiguous_caption(w, image, None)
        best = w.captions_of(image)[0]
        for not_an_index in ("x", best + 0.7, float(best), True, [best]):
            fb = nb00.check_most_ambiguous_caption(w, image, not_an_index)
            assert not fb and "integer" in str(fb)
    assert checked_rejections > 0  # the "another caption fits more" branch ran


# ----------------------------------------------------------- exercise 2: oracle R@1
def closed_form_r1(rel_row, pos_row) -> float:
    """P(the item ranked first is a positive) when ranking by ``rel_row`` and breaking ties
    uniformly at random: only the block of items at the highest level can come first, each
    with the same probability."""
    top = max(rel_row)
    block = [g == top for g in rel_row]
    return sum(b and p for b, p in zip(block, pos_row)) / sum(block)


def enumerated_r1(rel_row, pos_row) -> float:
    """The same expectation by enumerating every tie-break order (every permutation of the
    items as tie-break priorities, each equally likely)."""
    n = len(rel_row)
    hits = total = 0
    for prio in itertools.permutations(range(n)):
        first = min(range(n), key=lambda c: (-rel_row[c], prio[c]))
        hits += bool(pos_row[first])
        total += 1
    return hits / total


def stable_r1(rel_row, pos_row) -> float:
    """A plausible mistake: ties broken by column order instead of at random."""
    first = max(range(len(rel_row)), key=lambda c: (rel_row[c], -c))
    return float(pos_row[first])


class _StubWorld:
    """Just enough of a World for check_oracle_r1: a fixed (relevance, positives)."""

    def __init__(self, rel, pos):
        self.rel, self.pos = np.array(rel, np.int8), np.array(pos, bool)

    def ground_truth(self, direction, images):
        assert direction == "text->image"
        assert len(images) == self.rel.shape[1]
        return self.rel.copy(), self.pos.copy()


SMALL_REL = [[3, 3, 2, 0, 3],   # positive in a tied top block of 3
             [2, 3, 3, 3, 1],   # the only positive is below the top level: never first
             [3, 2, 2, 1, 0],   # the positive alone at the top: always first
             [1, 1, 0, 0, 0],   # the top level is 1 and both items there are positives
             [3, 3, 3, 3, 3],   # everything tied, two positives
             [0, 0, 0, 0, 0]]   # nothing relevant at all, one positive
SMALL_POS = [[0, 1, 0, 1, 0],
             [1, 0, 0, 0, 0],
             [1, 0, 0, 0, 0],
             [1, 1, 0, 0, 0],
             [0, 0, 0, 1, 1],
             [0, 0, 1, 0, 0]]


def test_oracle_r1_on_a_small_case_by_enumeration():
    enum = [enumerated_r1(r, p) for r, p in zip(SMALL_REL, SMALL_POS)]
    closed = [closed_form_r1(r, p) for r, p in zip(SMALL_REL, SMALL_POS)]
    assert enum == pytest.approx(closed, abs=1e-12)  # the closed form is right
    expected = sum(enum) / len(enum)
    stub = _StubWorld(SMALL_REL, SMALL_POS)
    images = np.arange(5)
    assert nb00.check_oracle_r1(stub, images, expected)
    assert f"{expected:.4f}" in str(nb00.check_oracle_r1(stub, images, expected))
    assert f"{expected:.4f}" in str(nb00.check_oracle_r1(stub, images, expected))
    stable = sum(stable_r1(r, p) for r, p in zip(SMALL_REL, SMALL_POS)) / len(SMALL_REL)
    assert abs(stable - expected) > 1e-3
    for wrong in (stable, expected + 0.01, expected - 0.01, 1.0, "a lot", [expected]):
        fb = nb00.check_oracle_r1(stub, images, wrong)
        assert not fb and "ground_truth" in str(fb), wrong
    assert not nb00.check_oracle_r1(stub, images, None)


def test_oracle_r1_on_the_test_split(small_world):
    w = small_world
    test = [int(i) for i in w.indices("test")]
    assert test == [i for i in range(len(w)) if w.split[i] == "test"]
    captions = [j for i in test for j in w.captions_of(i)]
    grades = np.array([[naive_grade(w, j, i) for i in test] for j in captions])
    own = np.array([[int(w.caption_image[j]) == i for i in test] for j in captions])
    assert (own.sum(1) == 1).all() and (grades[own] == 3).all()
    # the own image is at the top level (3), so R@1 = 1 / #(test images fitting fully)
    per_caption = np.array([1.0 / sum(fits_fully(w, j, i) for i in test) for j in captions])
    expected = float(per_caption.mean())
    assert per_caption == pytest.approx([closed_form_r1(g, p) for g, p in zip(grades, own)])
    assert 0 < expected < 1 - 1e-3  # partial captions: the ceiling is below 1

    # Monte-Carlo: rank by grade, random tie-break, count how often the own image is first
    rng = np.random.default_rng(0)
    trials = 4000
    hits = 0
    for _ in range(trials // 500):
        keys = grades[None] + rng.random((500,) + grades.shape)  # tie-break inside a level
        first = keys.argmax(-1)
        hits += int(np.take_along_axis(np.broadcast_to(own, keys.shape), first[..., None],
                                       -1).sum())
    mc = hits / (trials * len(captions))
    se = math.sqrt(float(np.mean(per_caption * (1 - per_caption))) / (trials * len(captions)))
    assert abs(mc - expected) < 5 * se + 1e-9

    assert nb00.check_oracle_r1(w, np.array(test), expected)
    assert f"{expected:.4f}" in str(nb00.check_oracle_r1(w, np.array(test), expected))
    stable = float(np.mean([stable_r1(g, p) for g, p in zip(grades, own)]))
    fraction_unique = float(np.mean(per_caption == 1.0))  # "share of captions that fit one"
    for wrong in (expected + 0.01, expected - 0.01, 1.0, stable, fraction_unique, "a lot"):
        if isinstance(wrong, float):
            assert abs(wrong - expected) > 1e-6, wrong
        fb = nb00.check_oracle_r1(w, np.array(test), wrong)
        assert not fb and "ground_truth" in str(fb), wrong
    assert not nb00.check_oracle_r1(w, np.array(test), None)


# -------------------------------------------------------- exercise 3: the lowest note
_SR = 16000


def _clip(attrs: tuple[int, ...], x: float) -> np.ndarray:
    objects = np.array([attrs], dtype=np.int16)
    xy = np.array([[x, 0.5]], np.float32)
    return synth_scene(objects, xy, 1, _SR, 1.0, np.random.default_rng(0), noise=0.0)


def _pitch(clip: np.ndarray) -> float:
    """Fundamental frequency (Hz, 100-1000) from the first strong autocorrelation peak."""
    c = clip.astype(np.float64) - clip.mean()
    ac = np.fft.irfft(np.abs(np.fft.rfft(c, 2 * len(c))) ** 2)[:len(c)]
    lo, hi = _SR // 1000, _SR // 100
    seg = ac[lo:hi + 1]
    for lag in range(1, len(seg) - 1):
        if seg[lag] >= 0.8 * seg.max() and seg[lag] >= seg[lag - 1] and seg[lag] >= seg[lag + 1]:
            return _SR / (lo + lag)
    raise AssertionError("no pitch found")


def _semitones(f1: float, f2: float) -> float:
    return abs(12 * math.log2(f1 / f2))


def test_lowest_note_by_listening():
    """Synthesise one clean note per colour (a circle, the purest tone, and a diamond, whose
    2nd harmonic is the strongest) and measure its pitch: the colour of the lowest note is
    the answer, every other colour a wrong one."""
    lowest = set()
    for shape in (0, 3):
        pitches = {c: _pitch(_clip((shape, k, 0, 1, 1), 0.5)) for k, c in enumerate(V.COLOURS)}
        ordered = sorted(pitches, key=pitches.get)
        assert _semitones(pitches[ordered[1]], pitches[ordered[0]]) > 1.0, pitches
        lowest.add(ordered[0])
    assert len(lowest) == 1
    answer = ordered[0]
    fb = nb00.check_lowest_note(answer)
    assert fb and answer in str(fb)
    assert nb00.check_lowest_note(f" {answer.upper()} ")
    for wrong in ordered[1:]:
        fb = nb00.check_lowest_note(wrong)
        assert not fb and ("semitones above" in str(fb) or "highest" in str(fb)), wrong
    assert "highest" in str(nb00.check_lowest_note(ordered[-1]))
    assert nb00.check_lowest_note("grey").correct is (answer == "gray")
    for nonsense in ("mauve", "colour", "", 3):
        fb = nb00.check_lowest_note(nonsense)
        assert not fb and "not a colour" in str(fb), nonsense
