"""The checkers of notebook 04's exercises against answers computed independently: naive
loops with ``math``, and the brute-force walk through the caption generator of
``tests/test_ceiling.py``."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mmkit.data import World
from mmkit.errors import InputError
from mmkit.exercises import nb04
from test_ceiling import observable_structures  # tests/test_ceiling.py: brute force

SIM = [[0.9, 0.1, 0.3], [0.2, 0.8, 0.4], [0.5, 0.3, 0.7]]


def naive_infonce(sim, t):
    b = len(sim)
    rows = cols = 0.0
    for i in range(b):
        rows += -math.log(math.exp(sim[i][i] / t) / sum(math.exp(sim[i][k] / t) for k in range(b)))
        cols += -math.log(math.exp(sim[i][i] / t) / sum(math.exp(sim[k][i] / t) for k in range(b)))
    return rows / b, cols / b


def test_infonce_checker_accepts_the_hand_value_and_explains_mistakes():
    rows, cols = naive_infonce(SIM, 0.5)
    assert nb04.check_infonce(SIM, 0.5, None).correct is False
    assert "no answer" in nb04.check_infonce(SIM, 0.5, None).message
    good = nb04.check_infonce(SIM, 0.5, (rows + cols) / 2)
    assert good and "InfoNCE" in good.message
    one = nb04.check_infonce(SIM, 0.5, rows)
    assert not one and "one direction" in one.message
    r1, c1 = naive_infonce(SIM, 1.0)
    no_t = nb04.check_infonce(SIM, 0.5, (r1 + c1) / 2)
    assert not no_t and "temperature" in no_t.message
    summed = nb04.check_infonce(SIM, 0.5, rows + cols)
    assert not summed and "sum" in summed.message
    assert not nb04.check_infonce(SIM, 0.5, "two")
    assert not nb04.check_infonce(SIM, 0.5, (rows + cols) / 2 + 0.01)


def test_infonce_value_is_mmkit_loss_on_embeddings_with_that_similarity():
    # unit vectors whose Gram matrix is a valid cosine-similarity matrix
    g = torch.Generator().manual_seed(0)
    img = torch.nn.functional.normalize(torch.randn(4, 6, generator=g, dtype=torch.float64), dim=1)
    txt = torch.nn.functional.normalize(torch.randn(4, 6, generator=g, dtype=torch.float64), dim=1)
    from mmkit.losses import SymmetricInfoNCE

    expected = float(SymmetricInfoNCE(0.1, learnable=False)(img, txt))
    sim = (img @ txt.T).numpy()
    assert nb04.infonce_value(sim, 0.1) == pytest.approx(expected, abs=1e-9)
    rows, cols = naive_infonce(sim.tolist(), 0.1)
    assert nb04.infonce_value(sim, 0.1) == pytest.approx((rows + cols) / 2, abs=1e-12)


def test_infonce_bad_input():
    with pytest.raises(InputError, match="square"):
        nb04.infonce_value([[1.0, 2.0, 3.0]], 0.5)
    with pytest.raises(InputError, match="temperature"):
        nb04.infonce_value(SIM, 0.0)


def naive_captions_to_fraction(r1, ceiling, n, fraction=0.75):
    """Plain loop: add one hit at a time until R@1 reaches the fraction of the ceiling."""
    hits = round(r1 * n)
    more = 0
    while (hits + more) / n < fraction * ceiling:
        more += 1
    return more


def test_captions_to_fraction_checker():
    r1, ceiling, oracle, n = 0.317, 0.608, 0.525, 2205
    expected = naive_captions_to_fraction(r1, ceiling, n)
    assert nb04.captions_to_fraction(r1, ceiling, n) == expected
    assert not nb04.check_captions_to_fraction(r1, ceiling, n, None, oracle_r1=oracle)
    ok = nb04.check_captions_to_fraction(r1, ceiling, n, expected, oracle_r1=oracle)
    assert ok and f"{expected} more" in ok.message
    assert nb04.check_captions_to_fraction(r1, ceiling, n, np.int64(expected))
    assert nb04.check_captions_to_fraction(r1, ceiling, n, float(expected))
    total = nb04.check_captions_to_fraction(r1, ceiling, n, expected + round(r1 * n))
    assert not total and "subtract" in total.message
    short = nb04.check_captions_to_fraction(r1, ceiling, n, expected - 1)
    assert not short and "round up" in short.message
    by_oracle = naive_captions_to_fraction(r1, oracle, n)
    wrong_ref = nb04.check_captions_to_fraction(r1, ceiling, n, by_oracle, oracle_r1=oracle)
    assert not wrong_ref and "oracle" in wrong_ref.message
    assert not nb04.check_captions_to_fraction(r1, ceiling, n, 0.75 * ceiling - r1)
    assert not nb04.check_captions_to_fraction(r1, ceiling, n, "many")
    assert not nb04.check_captions_to_fraction(r1, ceiling, n, expected + 5)
    assert nb04.check_captions_to_fraction(0.5, 0.6, 100, 0)       # already above 0.75
    with pytest.raises(InputError):
        nb04.check_captions_to_fraction(r1, 0.0, n, 3)


@pytest.fixture(scope="module")
def world():
    return World(n=300, seed=1)


def brute_p(world, j, i) -> float:
    return observable_structures(world, i).get(world.caption_struct(j), 0.0)


def _pairs(world):
    """(caption, image a, image b) with both images fitting the caption fully (relevance 3),
    one pair with different brute-force probabilities, one with equal ones."""
    rel = world.caption_relevance()
    differ = equal = None
    for j in range(0, len(world.captions), 7):
        full = np.flatnonzero(rel[j] == 3)
        if len(full) < 2:
            continue
        a, b = int(full[0]), int(full[1])
        pa, pb = brute_p(world, j, a), brute_p(world, j, b)
        if differ is None and abs(pa - pb) > 1e-6 * max(pa, pb):
            differ = (j, a, b, pa, pb)
        if equal is None and abs(pa - pb) <= 1e-12 * max(pa, pb):
            equal = (j, a, b)
        if differ and equal:
            return differ, equal
    pytest.fail("the test world should hold both kinds of pairs")


def test_likelier_image_checker_against_brute_force(world):
    (j, a, b, pa, pb), (je, ae, be) = _pairs(world)
    right = "a" if pa > pb else "b"
    wrong = "b" if right == "a" else "a"
    assert not nb04.check_likelier_image(world, j, a, b, None)
    assert nb04.check_likelier_image(world, j, a, b, right)
    assert nb04.check_likelier_image(world, j, a, b, right.upper() + " ")
    assert nb04.check_likelier_image(world, j, b, a, wrong)     # the order of the images
    bad = nb04.check_likelier_image(world, j, a, b, wrong)
    assert not bad and "multiply" in bad.message
    assert not nb04.check_likelier_image(world, j, a, b, "equal")
    assert nb04.check_likelier_image(world, je, ae, be, "equal")
    eq_wrong = nb04.check_likelier_image(world, je, ae, be, "a")
    assert not eq_wrong and "same probability" in eq_wrong.message
    assert "answer 'a'" in nb04.check_likelier_image(world, j, a, b, 3).message


def naive_gap(img, txt):
    def unit_mean(rows):
        d = len(rows[0])
        acc = [0.0] * d
        for r in rows:
            n = math.sqrt(sum(v * v for v in r))
            for k in range(d):
                acc[k] += r[k] / n / len(rows)
        return acc
    a, b = unit_mean(img), unit_mean(txt)
    return math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b)))


def test_modality_gap_is_the_naive_one():
    rng = np.random.default_rng(0)
    img = rng.normal(size=(30, 8)) + 1.5
    txt = rng.normal(size=(50, 8)) * 3
    assert nb04.modality_gap(img, txt) == pytest.approx(naive_gap(img.tolist(), txt.tolist()),
                                                         abs=1e-12)
    with pytest.raises(InputError):
        nb04.modality_gap(img, txt[:, :4])


def test_voice_gap_checker(world):
    rng = np.random.default_rng(1)
    images = world.indices("test")
    captions = world.caption_indices(images)
    img = rng.normal(size=(len(images), 8)) + 1.5
    speakers = [world.speaker_of(int(j)) for j in captions]
    speech = rng.normal(size=(len(captions), 8)) * 2 + np.array(speakers)[:, None] * 0.3
    voice = speakers[0]
    mine = [row for row, v in zip(speech.tolist(), speakers) if v == voice]
    expected = naive_gap(img.tolist(), mine)
    assert not nb04.check_voice_gap(world, captions, img, speech, voice, None)
    ok = nb04.check_voice_gap(world, captions, img, speech, voice, expected)
    assert ok and f"{expected:.3f}" in ok.message
    every = nb04.check_voice_gap(world, captions, img, speech, voice,
                                 naive_gap(img.tolist(), speech.tolist()))
    assert not every and "all voices" in every.message
    other = next(v for v in speakers if v != voice)
    theirs = naive_gap(img.tolist(), [r for r, v in zip(speech.tolist(), speakers) if v == other])
    wrong_voice = nb04.check_voice_gap(world, captions, img, speech, voice, theirs)
    assert not wrong_voice and f"voice {other}" in wrong_voice.message
    b = np.array(mine)
    raw = nb04.check_voice_gap(world, captions, img, speech, voice,
                               float(np.linalg.norm(img.mean(0) - b.mean(0))))
    assert not raw and "normalise" in raw.message
    assert not nb04.check_voice_gap(world, captions, img, speech, voice, expected + 0.05)
    assert not nb04.check_voice_gap(world, captions, img, speech, voice, "far")
    with pytest.raises(InputError):
        nb04.check_voice_gap(world, captions, img, speech[:-1], voice, expected)
