"""The baseline method, the evaluation of four directions, the demo and its CLI."""
from __future__ import annotations

import numpy as np
import pytest

from mmkit.data import DEMO_DIRECTIONS, World
from mmkit.methods import available_methods, get_method
from mmkit.methods.evaluate import METRICS, evaluate, oracle_results, score_metrics


#: the demo's directions the CCA baseline does (it does not embed speech)
DIRECTIONS = [d for d in DEMO_DIRECTIONS if d != "speech->image"]


@pytest.fixture(scope="module")
def fitted():
    world = World(n=700, seed=2)
    method = get_method("baseline", progress=False).fit(world, world.indices("train"))
    return world, method


@pytest.mark.slow
def test_baseline_beats_chance_and_stays_below_the_oracle(fitted):
    world, method = fitted
    test = world.indices("test")
    results, runs = evaluate(method, world, test)
    oracle = oracle_results(world, test, DIRECTIONS)
    rng = np.random.default_rng(0)
    for d in DIRECTIONS:
        run = runs[d]
        chance = score_metrics(rng.random(run.scores.shape), run.relevance, run.positives)
        assert set(results[d]) == set(METRICS)
        assert all(0.0 <= v <= 1.0 for v in results[d].values())
        assert results[d]["mAP"] > 1.5 * chance["mAP"], d
        assert results[d]["NDCG@10"] > chance["NDCG@10"] + 0.05, d
        assert results[d]["R@10"] > chance["R@10"], d
    # the oracle ranks by relevance, so its mAP and NDCG@10 are 1 wherever a query has a
    # relevant item; the baseline is far from that, and far from the oracle's text->image R@1
    for d in ("text->image", "image->text", "audio->image"):
        assert oracle[d]["mAP"] == pytest.approx(1.0) and oracle[d]["NDCG@10"] == pytest.approx(1.0)
        assert results[d]["mAP"] < 0.6
    assert results["text->image"]["R@1"] < 0.6 * oracle["text->image"]["R@1"]


@pytest.mark.slow
def test_evaluation_is_deterministic(fitted):
    world, method = fitted
    test = world.indices("test")[:40]
    a, _ = evaluate(method, world, test, ("text->image",))
    b, _ = evaluate(method, world, test, ("text->image",))
    assert a == b


@pytest.mark.slow
def test_image_query_never_retrieves_itself(fitted):
    world, method = fitted
    from mmkit.methods.evaluate import run_direction

    run = run_direction(method, world, "image->image", world.indices("test")[:30])
    assert (run.scores.argmax(1) != np.arange(30)).all()


@pytest.mark.slow
def test_unknown_method_and_direction(fitted):
    world, method = fitted
    with pytest.raises(ValueError, match="unknown method"):
        get_method("clip-xxl")
    assert "baseline" in available_methods()
    from mmkit.methods.evaluate import run_direction

    with pytest.raises(ValueError, match="unknown direction"):
        run_direction(method, world, "smell->image", world.indices("test")[:5])
    with pytest.raises(ValueError, match="does not do speech->image"):
        run_direction(method, world, "speech->image", world.indices("test")[:5])


def test_demo_rejects_unknown_method(capsys):
    from mmkit.cli import main

    with pytest.raises(SystemExit) as info:
        main(["demo", "--method", "nope"])
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
