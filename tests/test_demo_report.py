"""The demo's report, checked from outside: run the real command on the README's protocol,
recompute every figure of its JSON from the score matrices it saved (naive loops and
pytrec_eval, not mmkit.metrics), and compare the README's world card with the fresh run, so
that the README cannot drift from the code."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mmkit.data import World
from mmkit.data.directions import DEMO_DIRECTIONS

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, "-m", "mmkit", "demo", "--json", "--out", str(out)],
                          capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    scores = np.load(out / "scores.npz")
    return report, scores, out


def stable_order(row: np.ndarray) -> np.ndarray:
    """Score descending, ties by column ascending (the kit's stated rule)."""
    return np.lexsort((np.arange(len(row)), -row))


def naive_hit_rate(scores, positives, k) -> float:
    return float(np.mean([positives[q, stable_order(s)[:k]].any()
                          for q, s in enumerate(scores)]))


def trec_values(scores, relevance) -> tuple[float, float]:
    """(mAP with relevance 3 = relevant, NDCG@10 with linear gain) by pytrec_eval.

    Scores are replaced by their stable rank so that trec_eval's own tie rule cannot change
    the order; queries with nothing relevant count 0, as the kit counts them.
    """
    pytrec_eval = pytest.importorskip("pytrec_eval")
    run, qrels_map, qrels_ndcg = {}, {}, {}
    for q, (s, rel) in enumerate(zip(scores, relevance)):
        order = stable_order(s)
        qid = f"q{q:05d}"
        run[qid] = {f"d{g}": float(len(order) - r) for r, g in enumerate(order)}
        qrels_ndcg[qid] = {f"d{g}": int(rel[g]) for g in np.flatnonzero(rel > 0)} or {"d0": 0}
        qrels_map[qid] = {f"d{g}": 1 for g in np.flatnonzero(rel == 3)} or {"d0": 0}
    ap = pytrec_eval.RelevanceEvaluator(qrels_map, {"map"}).evaluate(run)
    ndcg = pytrec_eval.RelevanceEvaluator(qrels_ndcg, {"ndcg_cut.10"}).evaluate(run)
    return (float(np.mean([ap[q]["map"] for q in run])),
            float(np.mean([ndcg[q]["ndcg_cut_10"] for q in run])))


@pytest.mark.slow
@pytest.mark.subprocess
def test_json_figures_are_recomputed_from_the_saved_scores(demo):
    report, scores, _ = demo
    world = World(n=report["world"]["n_images"], seed=report["world"]["seed"])
    test = world.indices("test")
    assert report["world"]["n_test"] == len(test)
    assert report["directions"] == demo_directions(report["method"]) == list(report["results"])
    for d in report["directions"]:
        s = scores[f"{d}/scores"]
        qids, gids = scores[f"{d}/query_ids"], scores[f"{d}/gallery_ids"]
        expect_q, expect_g = world.direction_ids(d, test)
        assert np.array_equal(qids, expect_q) and np.array_equal(gids, expect_g)
        relevance, positives = world.ground_truth(d, test)
        row = report["results"][d]
        for k in (1, 5, 10):
            assert row[f"R@{k}"] == pytest.approx(naive_hit_rate(s, positives, k), abs=1e-9), d
        ap, ndcg = trec_values(s, relevance)
        assert row["mAP"] == pytest.approx(ap, abs=1e-4), d
        assert row["NDCG@10"] == pytest.approx(ndcg, abs=1e-4), d
        # the oracle's R@1 in closed form: P(a positive is first among the top relevance level)
        oracle_r1 = []
        for q in range(len(s)):
            keep = np.isfinite(s[q])                  # excluded items are not in the gallery
            rel, pos = relevance[q, keep], positives[q, keep]
            top = rel == rel.max()
            oracle_r1.append(pos[top].sum() / top.sum())
        assert report["oracle"][d]["R@1"] == pytest.approx(np.mean(oracle_r1), abs=1e-9), d
        # the ceiling: no system does better in expectation; on the caption directions it
        # beats the relevance oracle, which cannot tell the fully matching images apart
        ceiling = report["ceiling"][d]
        assert all(0 <= ceiling[f"R@{k}"] <= 1 for k in (1, 5, 10))
        assert ceiling["R@1"] <= ceiling["R@5"] <= ceiling["R@10"], d
        if d in ("text->image", "image->text", "speech->image"):
            assert ceiling["R@1"] > report["oracle"][d]["R@1"], d
        assert row["R@1"] <= ceiling["R@1"] + 0.02, d     # the learned model is below it


def readme_table() -> dict[str, dict[str, tuple[float, float, float]]]:
    """The world card's calibration table: {direction: {metric: (value, oracle, ceiling)}}."""
    text = README.read_text(encoding="utf-8")
    head = re.search(r"^\| direction \| (R@1 .+) \|$", text, re.M)
    assert head, "README: no '| direction | ...' table"
    metrics = [m.strip() for m in head.group(1).split("|")]
    table = {}
    for line in text[head.end():].splitlines()[2:]:
        if not line.startswith("|"):
            break
        # cells are split at unescaped pipes; a cell reads "value (oracle \\| ceiling)"
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
        values = [re.fullmatch(r"([\d.]+) \(([\d.]+) \\\| ([\d.]+)\)", c) for c in cells[1:]]
        assert all(values), f"README: cannot read the row {line!r}"
        table[cells[0]] = {m: (float(v.group(1)), float(v.group(2)), float(v.group(3)))
                           for m, v in zip(metrics, values)}
    return table


@pytest.mark.slow
@pytest.mark.subprocess
def test_readme_world_card_matches_a_fresh_run(demo):
    report, _, _ = demo
    table = readme_table()
    assert list(table) == list(report["results"])
    drift = []
    for d, row in table.items():
        for m, readme in row.items():
            run = (report["results"][d][m], report["oracle"][d][m], report["ceiling"][d][m])
            if [f"{v:.3f}" for v in run] != [f"{v:.3f}" for v in readme]:
                drift.append(f"{d} {m}: README {readme}, run {run}")
    assert not drift, "README world card drifted from `mmkit demo`: " + "; ".join(drift)
    w = report["world"]
    text = " ".join(README.read_text(encoding="utf-8").split())
    assert f"test split of {w['n_test']} images, {w['n_test'] * 5:,} captions" in text


def demo_directions(method: str) -> list[str]:
    """The demo's directions, in order, that ``method`` does (the baseline does no speech)."""
    from mmkit.methods.baseline import BaselineMethod
    from mmkit.methods.joint import JointMethod

    supported = {"baseline": BaselineMethod, "joint": JointMethod}[method].directions
    return [d for d in DEMO_DIRECTIONS if d in supported]


@pytest.mark.slow
@pytest.mark.subprocess
def test_demo_writes_its_figure_and_scores(demo):
    report, scores, out = demo
    assert Path(report["figure"]) == out / "gallery.png"
    assert (out / "gallery.png").stat().st_size > 10_000
    assert sorted(scores.files) == sorted(f"{d}/{part}" for d in demo_directions(report["method"])
                                          for part in ("scores", "query_ids", "gallery_ids"))


def test_table_puts_each_value_in_its_column():
    from mmkit.demo import format_table
    from mmkit.methods.evaluate import METRICS

    results = {"text->image": {m: 0.1 * (i + 1) for i, m in enumerate(METRICS)},
               "audio->image": {m: 0.01 * (i + 1) for i, m in enumerate(METRICS)}}
    oracle = {d: {m: 1 - v for m, v in row.items()} for d, row in results.items()}
    ceiling = {d: {m: 1 - v / 2 for m, v in row.items()} for d, row in results.items()}
    lines = format_table(results, oracle).splitlines()
    header = lines[0].split()
    assert header == ["direction", *METRICS]
    for d, line in zip(results, lines[2:4]):
        cells = re.findall(r"([\d.]+) \(([\d.]+)\)", line)
        assert line.split()[0] == d and len(cells) == len(METRICS)
        for m, (value, bracket) in zip(METRICS, cells):
            assert value == f"{results[d][m]:.3f}" and bracket == f"{oracle[d][m]:.3f}"
    assert "oracle" in lines[-1]
    lines = format_table(results, oracle, ceiling).splitlines()
    for d, line in zip(results, lines[2:4]):
        cells = re.findall(r"([\d.]+) \(([\d.]+) \| ([\d.]+)\)", line)
        assert len(cells) == len(METRICS)
        for m, (value, o, c) in zip(METRICS, cells):
            assert (value, o, c) == tuple(f"{x[d][m]:.3f}" for x in (results, oracle, ceiling))
    assert "ceiling" in lines[-1] and "oracle" in lines[-1]
    assert "(" not in format_table(results).splitlines()[2]
