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


def test_fraction_of_ceiling_checker():
    value, ceiling, oracle = 0.3, 0.6, 0.5
    assert not nb04.check_fraction_of_ceiling(value, ceiling, None, oracle)
    assert nb04.check_fraction_of_ceiling(value, ceiling, 0.5, oracle)
    wrong_ref = nb04.check_fraction_of_ceiling(value, ceiling, value / oracle, oracle)
    assert not wrong_ref and "oracle" in wrong_ref.message
    pct = nb04.check_fraction_of_ceiling(value, ceiling, 50.0, oracle)
    assert not pct and "percentage" in pct.message
    assert not nb04.check_fraction_of_ceiling(value, ceiling, 0.6, oracle)
    assert not nb04.check_fraction_of_ceiling(value, ceiling, "half", oracle)
    with pytest.raises(InputError):
        nb04.check_fraction_of_ceiling(value, 0.0, 0.5)


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


def test_modality_gap_checker():
    rng = np.random.default_rng(0)
    img = rng.normal(size=(30, 8)) + 1.5
    txt = rng.normal(size=(50, 8)) * 3
    expected = naive_gap(img.tolist(), txt.tolist())
    assert nb04.modality_gap(img, txt) == pytest.approx(expected, abs=1e-12)
    assert not nb04.check_modality_gap(img, txt, None)
    assert nb04.check_modality_gap(img, txt, expected)
    raw = nb04.check_modality_gap(img, txt, float(np.linalg.norm(img.mean(0) - txt.mean(0))))
    assert not raw and "normalise" in raw.message
    sq = nb04.check_modality_gap(img, txt, expected ** 2)
    assert not sq and "squared" in sq.message
    assert not nb04.check_modality_gap(img, txt, expected + 0.05)
    with pytest.raises(InputError):
        nb04.modality_gap(img, txt[:, :4])
