"""Notebook 03's exercise 3 checker (chance P@10 with same-colour positives) against an
answer computed by plain loops and by simulation, wrong answers rejected with a hint."""
from __future__ import annotations

import numpy as np
import pytest

from mmkit.data import World
from mmkit.exercises import nb03


@pytest.fixture(scope="module")
def world():
    return World(n=300, seed=2)


def test_colour_chance_p10_against_brute_force(world):
    images = world.indices("train")
    colours = [int(world.objects[i, 0, 1]) for i in images]      # the main object's colour
    n = len(images)
    per_query = []
    for q in range(n):
        positives = sum(1 for g in range(n) if g != q and colours[g] == colours[q])
        per_query.append(positives / (n - 1))
    expected = float(np.mean(per_query))
    fb = nb03.check_colour_chance_p10(world, images, expected)
    assert fb and f"{expected:.4f}" in fb.message
    rng = np.random.default_rng(5)                               # Monte Carlo agrees too
    labels = np.array(colours)
    hits = []
    for _ in range(400):
        q = rng.integers(n)
        top = rng.choice(np.delete(np.arange(n), q), 10, replace=False)
        hits.append(np.mean(labels[top] == labels[q]))
    assert abs(np.mean(hits) - expected) < 0.02


def test_colour_chance_p10_rejects_wrong_answers(world):
    images = world.indices("train")
    colours = world.objects[images, 0, 1]
    n = len(images)
    assert not nb03.check_colour_chance_p10(world, images, None)
    assert "no answer" in nb03.check_colour_chance_p10(world, images, None).message
    with_self = float(np.mean([np.sum(colours == c) / n for c in colours]))
    fb = nb03.check_colour_chance_p10(world, images, with_self)
    assert not fb and "own gallery" in fb.message
    labels = world.labels[images]
    by_class = float(np.mean([(np.sum(labels == c) - 1) / (n - 1) for c in labels]))
    fb = nb03.check_colour_chance_p10(world, images, by_class)
    assert not fb and "same-class" in fb.message
    fb = nb03.check_colour_chance_p10(world, images, 0.1)
    assert not fb and "equally frequent" in fb.message
    assert not nb03.check_colour_chance_p10(world, images, 0.5)
    assert not nb03.check_colour_chance_p10(world, images, "a lot")
