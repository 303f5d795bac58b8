"""Notebook 06 exercise checkers (mmkit.exercises.nb06) against independent answers."""
from __future__ import annotations

import math

import numpy as np


def test_exercise_lambda():
    from mmkit.exercises import nb06

    assert nb06.check_lambda(0.25, None).correct is False
    p = 0.25
    assert nb06.check_lambda(p, math.tanh(5 * p))            # 2 sigmoid(x) - 1 = tanh(x / 2)
    wrong = nb06.check_lambda(p, 1 / (1 + math.exp(-10 * p)))
    assert not wrong and "logistic" in wrong.message
    assert not nb06.check_lambda(p, 0.5)


def test_exercise_centroid_gap():
    from mmkit.exercises import nb06

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(30, 4)), rng.normal(1, 1, size=(20, 4))
    ma = [sum(a[i, k] for i in range(30)) / 30 for k in range(4)]
    mb = [sum(b[i, k] for i in range(20)) / 20 for k in range(4)]
    want = math.sqrt(sum((x - y) ** 2 for x, y in zip(ma, mb)))
    assert nb06.check_centroid_gap(a, b, want)
    pairs = np.mean([np.linalg.norm(x - y) for x in a for y in b])
    wrong = nb06.check_centroid_gap(a, b, pairs)
    assert not wrong and "pairs" in wrong.message
    assert nb06.check_centroid_gap(a, b, None).correct is False


def test_exercise_spread():
    from mmkit.exercises import nb06

    rng = np.random.default_rng(1)
    real, gen = rng.normal(size=(40, 5)), 0.1 * rng.normal(size=(40, 5))
    def sd(x, k):
        return math.sqrt(sum((x[i, k] - x[:, k].mean()) ** 2 for i in range(len(x))) / len(x))

    want = np.mean([sd(gen, k) for k in range(5)]) / np.mean([sd(real, k) for k in range(5)])
    ok = nb06.check_spread(gen, real, want)
    assert ok and "collapsed" in ok.message
    wrong = nb06.check_spread(gen, real, gen.std(1).mean() / real.std(1).mean())
    assert not wrong and "axis 0" in wrong.message
    assert nb06.check_spread(gen, real, None).correct is False
