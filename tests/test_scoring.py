"""mmkit.scoring, the kit's one scoring code, checked from outside: the results table against
a per-query loop written here and pytrec_eval; the three ways of giving embeddings;
the table formatter; the evaluation world's unseen classes against the world itself; the
modality gap against a hand computation; bad input in one line."""
from __future__ import annotations

import math

import numpy as np
import pytest

from mmkit import scoring as S
from mmkit.data import World
from mmkit.errors import InputError

DIRECTIONS = ("text->image", "image->text", "image->image", "audio->image")


@pytest.fixture(scope="module")
def world():
    return World(n=150, seed=11, progress=False)


@pytest.fixture(scope="module")
def vectors(world):
    """Random unit vectors for every unit of the WHOLE world, by id."""
    rng = np.random.default_rng(0)

    def unit(n):
        x = rng.normal(size=(n, 12)).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    return {"image": unit(world.config.n), "text": unit(len(world.captions)),
            "audio": unit(world.config.n)}


# ------------------------------------------------------------------ naive references
def stable_order(row: np.ndarray) -> np.ndarray:
    """Score descending, ties by column ascending (the kit's rule)."""
    return np.lexsort((np.arange(len(row)), -row))


def naive_metrics(scores: np.ndarray, relevance: np.ndarray, positives: np.ndarray
                  ) -> dict[str, float]:
    """R@K (a positive in the top K) and AP (relevance 3 = relevant, divided by every
    relevant item; 0 without one), one query at a time; excluded items (-inf) are no
    part of the gallery."""
    hits = {k: [] for k in (1, 5, 10)}
    aps = []
    for s, rel, pos in zip(scores, relevance, positives):
        keep = np.flatnonzero(np.isfinite(s))
        order = keep[stable_order(s[keep])]
        for k in hits:
            hits[k].append(bool(pos[order[:k]].any()))
        relevant = rel[order] == 3
        found, total = 0, 0.0
        for rank, r in enumerate(relevant, start=1):
            if r:
                found += 1
                total += found / rank
        aps.append(total / relevant.sum() if relevant.sum() else 0.0)
    out = {f"R@{k}": float(np.mean(v)) for k, v in hits.items()}
    out["mAP"] = float(np.mean(aps))
    return out


def trec_metrics(scores: np.ndarray, relevance: np.ndarray) -> tuple[float, float]:
    """(mAP, NDCG@10 with linear gain) by pytrec_eval, scores replaced by their stable rank
    (so that trec_eval's own tie rule cannot change the order); queries with nothing relevant
    count 0, as the kit counts them."""
    pytrec_eval = pytest.importorskip("pytrec_eval")
    run, qrels_map, qrels_ndcg = {}, {}, {}
    for q, (s, rel) in enumerate(zip(scores, relevance)):
        keep = np.flatnonzero(np.isfinite(s))
        order = keep[stable_order(s[keep])]
        qid = f"q{q:05d}"
        run[qid] = {f"d{g}": float(len(order) - r) for r, g in enumerate(order)}
        qrels_ndcg[qid] = {f"d{g}": int(rel[g]) for g in np.flatnonzero(rel > 0)} or {"x": 0}
        qrels_map[qid] = {f"d{g}": 1 for g in np.flatnonzero(rel == 3)} or {"x": 0}
    ap = pytrec_eval.RelevanceEvaluator(qrels_map, {"map"}).evaluate(run)
    ndcg = pytrec_eval.RelevanceEvaluator(qrels_ndcg, {"ndcg_cut.10"}).evaluate(run)
    return (float(np.mean([ap[q]["map"] for q in run])),
            float(np.mean([ndcg[q]["ndcg_cut_10"] for q in run])))


# ------------------------------------------------------------------ the results table
def test_score_embeddings_matches_a_per_query_loop_and_pytrec_eval(world, vectors):
    test = world.indices("test")
    table = S.score_embeddings(world, test, vectors, DIRECTIONS, rows="all")
    assert list(table) == list(DIRECTIONS)
    for d in DIRECTIONS:
        qm, gm = d.split("->")
        qids, gids = world.direction_ids(d, test)
        scores = vectors[qm][qids] @ vectors[gm][gids].T
        rel, pos = world.ground_truth(d, test)
        if d == "image->image":                      # the query itself is no gallery item
            scores[qids[:, None] == gids[None, :]] = -np.inf
        want = naive_metrics(scores, rel, pos)
        ap, ndcg = trec_metrics(scores, rel)
        assert set(table[d]) == set(S.METRICS)
        for m in ("R@1", "R@5", "R@10", "mAP"):
            assert table[d][m] == pytest.approx(want[m], abs=1e-9), (d, m)
        assert table[d]["mAP"] == pytest.approx(ap, abs=1e-4), d
        assert table[d]["NDCG@10"] == pytest.approx(ndcg, abs=1e-4), d


def test_three_ways_of_giving_vectors_give_one_table(world, vectors):
    test = world.indices("test")
    by_id = S.score_embeddings(world, test, vectors, DIRECTIONS, rows="all")
    per_split = {m: v[world.unit_ids(m, test)] for m, v in vectors.items()}
    assert S.score_embeddings(world, test, per_split, DIRECTIONS) == by_id
    everything = {m: S.Embedded(v, np.arange(len(v))) for m, v in vectors.items()}
    assert S.score_embeddings(world, test, everything, DIRECTIONS) == by_id


def test_a_space_key_is_looked_up_before_the_modality(world, vectors):
    """``image@audio``: the images in the space shared with audio (a method with one space
    per pair) serve audio->image; the other directions keep ``image``."""
    test = world.indices("test")
    rng = np.random.default_rng(1)
    other = rng.normal(size=vectors["image"].shape).astype(np.float32)
    both = {**vectors, S.space_key("image", "audio"): other}
    got = S.score_embeddings(world, test, both, DIRECTIONS, rows="all")
    plain = S.score_embeddings(world, test, vectors, DIRECTIONS, rows="all")
    swapped = S.score_embeddings(world, test, {**vectors, "image": other}, ["audio->image"],
                                 rows="all")
    assert got["audio->image"] == swapped["audio->image"] != plain["audio->image"]
    assert {d: got[d] for d in DIRECTIONS[:3]} == {d: plain[d] for d in DIRECTIONS[:3]}


def test_runs_hold_the_scores_and_ids(world, vectors):
    test = world.indices("test")
    runs = S.score_runs(world, test, vectors, ["image->image"], rows="all")
    run = runs["image->image"]
    assert np.array_equal(run.query_ids, test) and np.array_equal(run.gallery_ids, test)
    assert np.isneginf(np.diag(run.scores)).all() and not run.positives.diagonal().any()
    assert run.metrics() == S.score_metrics(run.scores, run.relevance, run.positives)


def test_skip_missing_leaves_out_what_cannot_be_scored(world, vectors):
    test = world.indices("test")
    only = {"image": vectors["image"], "text": vectors["text"]}
    got = S.score_embeddings(world, test, only, DIRECTIONS, rows="all", skip_missing=True)
    assert list(got) == ["text->image", "image->text", "image->image"]


def test_bad_input_is_one_line(world, vectors):
    test = world.indices("test")
    per_split = {m: v[world.unit_ids(m, test)] for m, v in vectors.items()}
    cases = [
        ({"image": per_split["image"]}, {}, "text->image needs 'text' vectors"),
        ({**per_split, "text": per_split["text"][:-1]}, {}, r"'text' vectors must be \["),
        ({**per_split, "image": per_split["image"][:, 0]}, {}, r"'image' vectors must be"),
        ({**vectors, "image": vectors["image"][:3]}, {"rows": "all"}, "whole collection"),
        (per_split, {"rows": "some"}, "rows must be"),
        ([per_split["image"]], {}, "must be a dict"),
        ({**per_split, "text": np.full_like(per_split["text"], np.nan)}, {}, "NaN"),
        ({**per_split, "text": S.Embedded(vectors["text"][:5], np.arange(5))}, {},
         "no embedding for item"),
        ({**per_split, "text": per_split["text"][:, :4]}, {}, "dimensions"),
    ]
    for given, kwargs, words in cases:
        with pytest.raises(InputError, match=words) as info:
            S.score_embeddings(world, test, given, ["text->image"], **kwargs)
        assert "\n" not in str(info.value), info.value


def test_fraction_of_and_the_oracle(world):
    test = world.indices("test")
    oracle = S.oracle_results(world, test, ["text->image"])
    assert oracle["text->image"]["mAP"] == pytest.approx(1.0)
    half = {"text->image": {m: v / 2 for m, v in oracle["text->image"].items()}}
    assert S.fraction_of(half, oracle) == {"text->image": {m: 0.5 for m in S.METRICS}}


# ------------------------------------------------------------------ the table formatter
def test_plain_table_columns_and_brackets():
    results = {"text->image": {m: 0.1 * (i + 1) for i, m in enumerate(S.METRICS)}}
    oracle = {"text->image": {m: 0.9 for m in S.METRICS}}
    ceiling = {"text->image": {m: 0.8 for m in S.METRICS}}
    plain = S.format_table(results).splitlines()
    assert plain[0].split() == ["direction", *S.METRICS] and set(plain[1]) == {"-"}
    assert plain[2].split() == ["text->image", "0.100", "0.200", "0.300", "0.400", "0.500"]
    assert len(plain) == 3
    both = S.format_table(results, oracle, ceiling).splitlines()
    assert "0.100 (0.900 | 0.800)" in both[2] and "ceiling" in both[-1]
    assert len(both[0]) == 14 + 23 * len(S.METRICS)


def test_markdown_table_shows_fractions_of_the_ceiling():
    from mmkit.align import protocol
    from mmkit.demo import format_table as demo_table

    ceiling = {"text->image": {m: 0.5 for m in S.METRICS}}
    tables = {"a": {"text->image": {m: 0.25 for m in S.METRICS}}}
    md = S.format_table(tables, ceiling=ceiling, markdown=True).splitlines()
    assert md[0] == "| model | direction | R@1 | R@5 | R@10 | mAP | NDCG@10 |"
    assert md[2] == "| a | text->image | " + " | ".join(["0.250 (0.50)"] * 5) + " |"
    assert md[3] == "| ceiling | text->image | " + " | ".join(["0.500"] * 5) + " |"
    assert protocol.format_table(tables, ceiling) == "\n".join(md)
    assert demo_table is S.format_table                          # one formatter
    with pytest.raises(InputError, match="ceiling"):
        S.format_table(tables, ceiling, markdown=True)


# ------------------------------------------------------------------ the evaluation world
def test_one_evaluation_world():
    from mmkit import demo
    from mmkit.align import protocol
    from mmkit.encoders import joint, metric
    from mmkit.scale import embed

    w = S.eval_world()
    assert w is S.eval_world()                                   # one instance per process
    assert (w.config.n, w.config.seed) == (S.EVAL_WORLD["n"], S.EVAL_WORLD["seed"])
    assert len(w.indices(S.EVAL_SPLIT)) == 441
    assert joint.PROTOCOL is protocol.EVAL_WORLD is embed.FIT_WORLD is S.EVAL_WORLD
    assert demo.DEMO_N == S.EVAL_WORLD["n"]
    cfg = metric.CHECKPOINTS["metric_world_cnn"].config           # a checkpoint's config
    assert (cfg["n_eval"], cfg["eval_seed"]) == (2500, 0)


def test_unseen_classes_are_the_evaluation_worlds_unseen_split():
    from mmkit.encoders import joint, metric

    w = S.eval_world()
    unseen = S.unseen_classes()
    assert unseen.tolist() == sorted(unseen.tolist()) and len(unseen) == 8
    assert np.array_equal(unseen, w.unseen_classes)
    labels_of = {s: set(w.labels[w.indices(s)].tolist()) for s in ("train", "val", "test")}
    assert set(w.labels[w.indices("unseen")].tolist()) == set(unseen.tolist())
    assert all(not (labels & set(unseen.tolist())) for labels in labels_of.values())
    assert np.array_equal(joint.protocol_unseen_classes(), unseen)
    assert np.array_equal(~metric.seen_classes_mask(w.labels), np.isin(w.labels, unseen))
    other = World(n=300, seed=7, progress=False)
    assert np.array_equal(S.unseen_classes(7), other.unseen_classes)


# ------------------------------------------------------------------ the modality gap
def hand_gap(a: np.ndarray, b: np.ndarray) -> float:
    def unit_mean(rows):
        acc = [0.0] * len(rows[0])
        for r in rows:
            norm = math.sqrt(sum(v * v for v in r))
            acc = [s + v / norm / len(rows) for s, v in zip(acc, r)]
        return acc

    ma, mb = unit_mean(a.tolist()), unit_mean(b.tolist())
    return math.sqrt(sum((x - y) ** 2 for x, y in zip(ma, mb)))


def test_modality_gap_against_a_hand_computation():
    from mmkit.align import centroid_gap
    from mmkit.exercises import nb04

    rng = np.random.default_rng(2)
    a = rng.normal(size=(40, 6)) + 1.0
    b = rng.normal(size=(25, 6)) * 4
    assert S.modality_gap(a, b) == pytest.approx(hand_gap(a, b), abs=1e-12)
    assert S.modality_gap(a, 5 * a) == pytest.approx(0.0, abs=1e-12)   # scale-free
    e = np.eye(6)
    assert S.modality_gap(e[[0, 0]], e[[1]]) == pytest.approx(math.sqrt(2), abs=1e-12)
    assert S.modality_gap(e[[0]], -e[[0]]) == pytest.approx(2.0, abs=1e-12)
    assert centroid_gap(a, b) == nb04.modality_gap(a, b) == S.modality_gap(a, b)   # one gap


def test_modality_gap_bad_input_is_one_line():
    a = np.ones((4, 3))
    for b, words in [(np.ones((4, 2)), r"\[N, D\] and \[M, D\]"),
                     (np.full((4, 3), np.nan), "NaN"),
                     (np.zeros((2, 3)), "all zeros"),
                     (np.ones((0, 3)), "N, M >= 1")]:
        with pytest.raises(InputError, match=words) as info:
            S.modality_gap(a, b)
        assert "\n" not in str(info.value)
