"""mmkit.metrics against pytrec_eval, ranx, scikit-learn, scipy and naive loops (to 1e-9)."""
from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.stats

import mmkit.metrics as mm
from mmkit.errors import InputError

TOL = 1e-9


# ----------------------------------------------------------------------------- data
def make_data(seed: int, n_queries: int = 40, n_items: int = 50, *, ties: bool = True):
    """Scores with many ties (or none), graded labels 0..3, some queries without relevant."""
    rng = np.random.default_rng(seed)
    if ties:
        scores = rng.integers(0, 6, (n_queries, n_items)).astype(np.float64)
    else:
        scores = rng.permutation(n_queries * n_items).reshape(n_queries, n_items) / 7.0
    grades = rng.integers(1, 4, (n_queries, n_items))
    relevance = np.where(rng.random((n_queries, n_items)) < 0.2, grades, 0)
    relevance[::7] = 0  # queries with no relevant item
    relevance[1, :] = 0
    relevance[1, 3] = 2  # a query with a single relevant item
    return scores, relevance


def stable_order(scores_row) -> list[int]:
    """Our tie rule, written out: score descending, then column index ascending."""
    return sorted(range(len(scores_row)), key=lambda j: (-scores_row[j], j))


# ------------------------------------------------------------ naive reference loops
def naive(scores, relevance, k: int, level: float = 1, gain: str = "linear") -> dict:
    """Every per-query metric from plain Python loops over the ranked list."""
    out: dict[str, list[float]] = {}

    def put(name, value):
        out.setdefault(name, []).append(float(value))

    for s, rel in zip(scores, relevance):
        ranked = [float(rel[j]) for j in stable_order(s)]
        is_rel = [r >= level for r in ranked]
        n_rel = sum(float(r) >= level for r in rel)
        hits, ap, ap_k, ap_r, rr, first = 0, 0.0, 0.0, 0.0, 0.0, math.inf
        for i, r in enumerate(is_rel, start=1):
            if r:
                hits += 1
                ap += hits / i
                ap_k += hits / i if i <= k else 0.0
                ap_r += hits / i if i <= n_rel else 0.0
                if rr == 0.0:
                    rr, first = 1.0 / i, i
        top = sum(is_rel[:k])
        put("P", top / k)
        put("recall", top / n_rel if n_rel else 0.0)
        put("F1", 2 * (top / k) * (top / n_rel) / (top / k + top / n_rel) if top else 0.0)
        put("AP", ap / n_rel if n_rel else 0.0)
        put("AP@k", ap_k / n_rel if n_rel else 0.0)
        put("MAP@R", ap_r / n_rel if n_rel else 0.0)
        put("Rprec", sum(is_rel[:n_rel]) / n_rel if n_rel else 0.0)
        put("RR", rr)
        put("first", first)
        put("hit", float(first <= k))

        def g(r):
            return r if gain == "linear" else 2.0 ** r - 1.0

        dcg = sum(g(r) / math.log2(i + 1) for i, r in enumerate(ranked[:k], start=1))
        ideal = sorted((float(r) for r in rel), reverse=True)
        idcg = sum(g(r) / math.log2(i + 1) for i, r in enumerate(ideal[:k], start=1))
        put("DCG", dcg)
        put("NDCG", dcg / idcg if idcg > 0 else 0.0)
    return {name: np.array(v) for name, v in out.items()}


def close(a, b):
    np.testing.assert_allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float),
                               rtol=0, atol=TOL)


# ----------------------------------------------------------------- vs naive loops
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k", [1, 5, 10, 80])
def test_against_naive_loops(seed, k):
    scores, relevance = make_data(seed)
    ref = naive(scores, relevance, k)
    close(mm.precision_at_k(scores, relevance, k), ref["P"])
    close(mm.recall_at_k(scores, relevance, k), ref["recall"])
    close(mm.f1_at_k(scores, relevance, k), ref["F1"])
    close(mm.average_precision(scores, relevance), ref["AP"])
    close(mm.average_precision(scores, relevance, k), ref["AP@k"])
    close(mm.map_at_r(scores, relevance), ref["MAP@R"])
    close(mm.r_precision(scores, relevance), ref["Rprec"])
    close(mm.reciprocal_rank(scores, relevance), ref["RR"])
    close(mm.first_positive_rank(scores, relevance > 0), ref["first"])
    close(mm.hit_rate_at_k(scores, relevance > 0, k), ref["hit"])
    close(mm.dcg_at_k(scores, relevance, k), ref["DCG"])
    close(mm.ndcg_at_k(scores, relevance, k), ref["NDCG"])
    close(mm.ndcg_at_k(scores, relevance, k, gain="exp"),
          naive(scores, relevance, k, gain="exp")["NDCG"])


@pytest.mark.parametrize("level", [1, 2, 3])
def test_relevance_level(level):
    scores, relevance = make_data(3)
    ref = naive(scores, relevance, 10, level=level)
    close(mm.average_precision(scores, relevance, level=level), ref["AP"])
    close(mm.precision_at_k(scores, relevance, 10, level=level), ref["P"])
    close(mm.reciprocal_rank(scores, relevance, level=level), ref["RR"])
    close(mm.ndcg_at_k(scores, relevance, 10), ref["NDCG"])  # NDCG ignores the level


def test_aggregates_are_means():
    scores, relevance = make_data(4)
    assert mm.mean_average_precision(scores, relevance) == pytest.approx(
        mm.average_precision(scores, relevance).mean(), abs=TOL)
    assert mm.mean_reciprocal_rank(scores, relevance) == pytest.approx(
        mm.reciprocal_rank(scores, relevance).mean(), abs=TOL)
    first = mm.first_positive_rank(scores, relevance > 0)
    assert mm.median_rank(scores, relevance > 0) == np.median(first)
    assert mm.mean_rank(scores, relevance > 0) == np.mean(first)


# ------------------------------------------------------------------ vs pytrec_eval
def trec_dicts(scores, relevance, ids=None):
    """Our deterministic order as strictly decreasing scores, so trec_eval sees it too."""
    pytrec_eval = pytest.importorskip("pytrec_eval")
    run, qrels = {}, {}
    for q, (s, rel) in enumerate(zip(scores, relevance)):
        order = stable_order(s) if ids is None else [j for j in ids[q] if j >= 0]
        run[f"q{q:03d}"] = {f"d{j}": float(len(order) - pos) for pos, j in enumerate(order)}
        judged = {f"d{j}": int(r) for j, r in enumerate(rel) if r > 0 or j % 3 == 0}
        qrels[f"q{q:03d}"] = judged or {"d0": 0}  # keep queries without judgements
    return pytrec_eval, run, qrels


def pytrec_values(scores, relevance, measures, ids=None, level=1):
    pytrec_eval, run, qrels = trec_dicts(scores, relevance, ids)
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, set(measures), relevance_level=level)
    result = evaluator.evaluate(run)
    return {name: np.array([result[q][name] for q in sorted(run)])
            for name in result[next(iter(result))]}


@pytest.mark.parametrize("seed", [0, 5])
def test_against_pytrec_eval(seed):
    scores, relevance = make_data(seed, n_queries=60, n_items=40)
    ref = pytrec_values(scores, relevance, {"map", "map_cut", "P", "recall", "ndcg",
                                            "ndcg_cut", "recip_rank", "Rprec", "success",
                                            "iprec_at_recall", "num_rel", "num_rel_ret"})
    close(mm.average_precision(scores, relevance), ref["map"])
    close(mm.r_precision(scores, relevance), ref["Rprec"])
    close(mm.reciprocal_rank(scores, relevance), ref["recip_rank"])
    close(mm.ndcg_at_k(scores, relevance, None), ref["ndcg"])
    for k in (5, 10, 30):
        close(mm.average_precision(scores, relevance, k), ref[f"map_cut_{k}"])
        close(mm.precision_at_k(scores, relevance, k), ref[f"P_{k}"])
        close(mm.recall_at_k(scores, relevance, k), ref[f"recall_{k}"])
        close(mm.ndcg_at_k(scores, relevance, k), ref[f"ndcg_cut_{k}"])
    for k in (1, 5, 10):
        close(mm.hit_rate_at_k(scores, relevance, k), ref[f"success_{k}"])
    iprec = mm.interpolated_precision(scores, relevance)
    for i, t in enumerate(mm.RECALL_LEVELS):
        close(iprec[:, i], ref[f"iprec_at_recall_{t:.2f}"])
    named = mm.ranking_metrics(scores, relevance, ["num_rel", "num_rel_ret", "P_10", "map"])
    for name in named:
        close(named[name], ref[name])


def test_against_pytrec_eval_with_level():
    scores, relevance = make_data(6)
    ref = pytrec_values(scores, relevance, {"map", "P", "recip_rank", "ndcg_cut"}, level=2)
    close(mm.average_precision(scores, relevance, level=2), ref["map"])
    close(mm.precision_at_k(scores, relevance, 5, level=2), ref["P_5"])
    close(mm.reciprocal_rank(scores, relevance, level=2), ref["recip_rank"])
    close(mm.ndcg_at_k(scores, relevance, 10), ref["ndcg_cut_10"])


def test_ranked_lists_count_unretrieved_relevant():
    """Truncated, -1 padded lists: relevant items never retrieved stay in the denominators."""
    scores, relevance = make_data(7, n_queries=30, n_items=40)
    rng = np.random.default_rng(7)
    ids = np.full((30, 15), -1)
    for q, s in enumerate(scores):
        length = rng.integers(0, 16)
        ids[q, :length] = stable_order(s)[:length]
    lists = mm.RankedLists(ids)
    ref = pytrec_values(scores, relevance, {"map", "P", "recall", "ndcg", "ndcg_cut",
                                            "recip_rank", "Rprec", "num_ret"}, ids=ids)
    close(mm.average_precision(lists, relevance), ref["map"])
    close(mm.precision_at_k(lists, relevance, 10), ref["P_10"])
    close(mm.precision_at_k(lists, relevance, 20), ref["P_20"])
    close(mm.recall_at_k(lists, relevance, 5), ref["recall_5"])
    close(mm.ndcg_at_k(lists, relevance, None), ref["ndcg"])
    close(mm.ndcg_at_k(lists, relevance, 10), ref["ndcg_cut_10"])
    close(mm.reciprocal_rank(lists, relevance), ref["recip_rank"])
    close(mm.r_precision(lists, relevance), ref["Rprec"])
    close(mm.ranking_metrics(lists, relevance, ["num_ret"])["num_ret"], ref["num_ret"])


def test_full_ranked_lists_equal_score_matrix():
    scores, relevance = make_data(8)
    lists = mm.RankedLists(np.argsort(-scores, axis=1, kind="stable"))
    for metric in ("map", "P_5", "recall_10", "ndcg_cut_10", "recip_rank", "Rprec", "F1_3"):
        close(mm.ranking_metrics(lists, relevance, [metric])[metric],
              mm.ranking_metrics(scores, relevance, [metric])[metric])


# ------------------------------------------------------------------------ vs ranx
@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:unsafe cast")  # numba, inside ranx
def test_against_ranx():
    ranx = pytest.importorskip("ranx")
    scores, relevance = make_data(9, n_queries=30, n_items=40)
    _, run, qrels = trec_dicts(scores, relevance)
    qrels = {q: {d: r for d, r in judged.items() if r > 0} or {"d0": 0}
             for q, judged in qrels.items()}
    names = ["map", "map@5", "precision@5", "recall@10", "f1@10", "r-precision", "mrr",
             "ndcg@10", "ndcg_burges@10", "hit_rate@5"]
    ref = ranx.evaluate(ranx.Qrels(qrels), ranx.Run(run), names, return_mean=False)
    close(mm.average_precision(scores, relevance), ref["map"])
    close(mm.average_precision(scores, relevance, 5), ref["map@5"])
    close(mm.precision_at_k(scores, relevance, 5), ref["precision@5"])
    close(mm.recall_at_k(scores, relevance, 10), ref["recall@10"])
    close(mm.f1_at_k(scores, relevance, 10), ref["f1@10"])
    close(mm.r_precision(scores, relevance), ref["r-precision"])
    close(mm.reciprocal_rank(scores, relevance), ref["mrr"])
    close(mm.ndcg_at_k(scores, relevance, 10), ref["ndcg@10"])
    close(mm.ndcg_at_k(scores, relevance, 10, gain="exp"), ref["ndcg_burges@10"])
    close(mm.hit_rate_at_k(scores, relevance, 5), ref["hit_rate@5"])


# ----------------------------------------------------------------- vs scikit-learn
def test_against_sklearn_on_tie_free_scores():
    metrics = pytest.importorskip("sklearn.metrics")
    scores, relevance = make_data(10, ties=False)
    ap = mm.average_precision(scores, relevance)
    ndcg = mm.ndcg_at_k(scores, relevance, 10)
    for q in np.flatnonzero(relevance.any(axis=1)):
        assert ap[q] == pytest.approx(
            metrics.average_precision_score(relevance[q] > 0, scores[q]), abs=TOL)
        assert ndcg[q] == pytest.approx(
            metrics.ndcg_score(relevance[q:q + 1], scores[q:q + 1], k=10, ignore_ties=True),
            abs=TOL)


# ----------------------------------------------------------------------- tie rule
def test_tie_rule_hand_worked():
    # item 1 and item 2 tie at 2.0: item 1 (lower column) is ranked first
    scores = np.array([[1.0, 2.0, 2.0, 0.0]])
    relevance = np.array([[0, 0, 1, 0]])
    assert mm.first_positive_rank(scores, relevance)[0] == 2
    assert mm.reciprocal_rank(scores, relevance)[0] == 0.5
    assert mm.precision_at_k(scores, relevance, 1)[0] == 0.0
    assert mm.precision_at_k(scores, relevance[:, [0, 2, 1, 3]], 1)[0] == 1.0


def test_tie_rule_matches_stable_argsort():
    rng = np.random.default_rng(11)
    scores = rng.integers(0, 4, (50, 30)).astype(np.float32)
    scores[::2] = rng.standard_normal((25, 30))  # tie-free rows take the fast path
    scores[3, :5] = -0.0
    scores[3, 5:10] = 0.0  # -0.0 == 0.0 ties
    scores[4, :3] = [np.inf, -np.inf, np.inf]
    relevance = np.ones_like(scores)
    judged = mm.judged_ranks(scores, relevance)
    order = np.argsort(-scores, axis=1, kind="stable")
    expected = np.empty(scores.shape)
    np.put_along_axis(expected, order, np.arange(1.0, 31.0), axis=1)
    close(judged.ranks, expected)  # every item is relevant, so ranks are in column order


def test_hand_worked_ap_with_unretrieved_relevant():
    # ranked: item 0 (relevant), item 1, item 2 (relevant); item 3 relevant, not retrieved
    lists = mm.RankedLists(np.array([[0, 1, 2, -1]]))
    relevance = np.array([[1, 0, 1, 1]])
    assert mm.average_precision(lists, relevance)[0] == pytest.approx((1 + 2 / 3) / 3)
    assert mm.recall_at_k(lists, relevance, 10)[0] == pytest.approx(2 / 3)
    assert mm.precision_at_k(lists, relevance, 10)[0] == pytest.approx(2 / 10)


def test_no_relevant_query_scores_zero():
    scores = np.array([[0.3, 0.2, 0.1]])
    relevance = np.zeros((1, 3))
    for name, values in mm.ranking_metrics(scores, relevance, ["map", "P_2", "recall_2",
                                                               "ndcg", "ndcg_cut_2",
                                                               "recip_rank", "Rprec",
                                                               "F1_2", "map_at_R"]).items():
        assert values[0] == 0.0, name
    assert mm.first_positive_rank(scores, relevance)[0] == np.inf
    assert (mm.interpolated_precision(scores, relevance) == 0).all()


# ------------------------------------------------------------------------- curves
def test_precision_recall_curve_and_11_point():
    scores, relevance = make_data(12)
    precision, recall = mm.precision_recall_curve(scores, relevance)
    for k in (1, 7, 50):
        close(precision[:, k - 1], mm.precision_at_k(scores, relevance, k))
        close(recall[:, k - 1], mm.recall_at_k(scores, relevance, k))
    expected = []  # trec_eval's rule: max precision from the m-th relevant on, m = int(tR+.9)
    for p_q, r_q, rel in zip(precision, recall, relevance):
        n_rel = int((rel > 0).sum())
        hits = np.round(r_q * n_rel)
        row = []
        for t in [i / 10 for i in range(11)]:
            m = max(int(t * n_rel + 0.9), 1)
            row.append(max([p for p, h in zip(p_q, hits) if h >= m], default=0.0))
        expected.append(row)
    close(mm.interpolated_precision(scores, relevance), expected)


# ------------------------------------------------------------------ cross-modal
def test_image_text_retrieval():
    rng = np.random.default_rng(13)
    n_images, per_image = 12, 5
    caption_image = np.repeat(np.arange(n_images), per_image)
    sim = rng.standard_normal((n_images, n_images * per_image))
    sim[caption_image, np.arange(len(caption_image))] += 1.5
    result = mm.image_text_retrieval(sim, caption_image, ks=(1, 5))
    for k in (1, 5):  # naive: image hit if ANY caption in top k; caption ranks its image
        i2t = np.mean([any(caption_image[j] == i for j in stable_order(sim[i])[:k])
                       for i in range(n_images)])
        t2i = np.mean([caption_image[c] in stable_order(sim[:, c])[:k]
                       for c in range(len(caption_image))])
        assert result[f"i2t_hit@{k}"] == pytest.approx(i2t, abs=TOL)
        assert result[f"t2i_hit@{k}"] == pytest.approx(t2i, abs=TOL)
    t2i_ranks = [stable_order(sim[:, c]).index(caption_image[c]) + 1
                 for c in range(len(caption_image))]
    assert result["t2i_median_rank"] == np.median(t2i_ranks)
    assert result["t2i_mean_rank"] == pytest.approx(np.mean(t2i_ranks), abs=TOL)


# -------------------------------------------------------------------- correlation
def test_correlations_against_scipy_with_ties():
    rng = np.random.default_rng(14)
    a = rng.integers(0, 5, (20, 30))
    b = a + rng.integers(-2, 3, (20, 30))
    rho, tau = mm.spearman_rho(a, b), mm.kendall_tau_b(a, b)
    for q in range(20):
        assert rho[q] == pytest.approx(scipy.stats.spearmanr(a[q], b[q]).statistic, abs=TOL)
        ref = scipy.stats.kendalltau(a[q], b[q], variant="b").statistic
        assert tau[q] == pytest.approx(ref, abs=TOL)
    assert mm.kendall_tau_b(a[0], b[0]) == pytest.approx(tau[0], abs=TOL)
    assert isinstance(mm.spearman_rho(a[0], b[0]), float)
    assert math.isnan(mm.spearman_rho([1, 1, 1], [1, 2, 3]))
    assert math.isnan(mm.kendall_tau_b([1, 1, 1], [1, 2, 3]))


# ------------------------------------------------------- inputs and determinism
def test_input_types_agree():
    torch = pytest.importorskip("torch")
    scores, relevance = make_data(15)
    ref = mm.ranking_metrics(scores, relevance, ["map", "ndcg_cut_5", "P_5"])
    variants = [
        (torch.from_numpy(scores), torch.from_numpy(relevance)),
        (scores.astype(np.float32), sp.csr_array(relevance)),
        (torch.from_numpy(scores).to(torch.bfloat16), sp.coo_matrix(relevance)),
        (scores.astype(np.int64), relevance.astype(np.float32)),
    ]
    for s, r in variants:
        for name, values in mm.ranking_metrics(s, r, list(ref)).items():
            assert values.dtype == np.float64 and values.shape == (len(scores),)
            close(values, ref[name])
    hits = mm.hit_rate_at_k(torch.from_numpy(scores), torch.from_numpy(relevance > 0), 3)
    close(hits, mm.hit_rate_at_k(scores, relevance > 0, 3))


def test_deterministic_and_query_order_independent():
    scores, relevance = make_data(16)
    first = mm.ranking_metrics(scores, relevance, ["map", "ndcg_cut_10", "P_10"])
    again = mm.ranking_metrics(scores.copy(), relevance.copy(), list(first))
    perm = np.random.default_rng(0).permutation(len(scores))
    permuted = mm.ranking_metrics(scores[perm], relevance[perm], list(first))
    for name in first:
        np.testing.assert_array_equal(first[name], again[name])
        np.testing.assert_array_equal(first[name][perm], permuted[name])


def test_judged_ranks_is_reused():
    scores, relevance = make_data(17)
    judged = mm.judged_ranks(scores, relevance)
    close(mm.average_precision(judged, None), mm.average_precision(scores, relevance))
    close(mm.ndcg_at_k(judged, None, 10), mm.ndcg_at_k(scores, relevance, 10))


def test_metric_names():
    assert mm.metric_names(["P.5,10", "map", "P_5"]) == ["P_5", "P_10", "map"]
    assert mm.metric_names("success") == ["success_1", "success_5", "success_10"]
    assert len(mm.metric_names(["iprec_at_recall"])) == 11


# ------------------------------------------------------------------- bad input
S = np.zeros((2, 3))
R = np.ones((2, 3))


@pytest.mark.parametrize("call, message", [
    (lambda: mm.precision_at_k(S, np.ones((2, 4)), 1), "does not match"),
    (lambda: mm.precision_at_k(np.array([[np.nan, 0, 0], [0, 0, 0]]), R, 1), "NaN"),
    (lambda: mm.precision_at_k(S, R, 0), "positive integer"),
    (lambda: mm.precision_at_k(S, R, 2.5), "positive integer"),
    (lambda: mm.precision_at_k(S, R, True), "positive integer"),
    (lambda: mm.average_precision(S, -R), ">= 0"),
    (lambda: mm.average_precision(S, np.full((2, 3), np.nan)), ">= 0"),
    (lambda: mm.average_precision(S, R, level=0), "level"),
    (lambda: mm.ndcg_at_k(S, R, 2, gain="log"), "gain"),
    (lambda: mm.precision_at_k(np.zeros(3), R, 1), "2-D"),
    (lambda: mm.precision_at_k(np.array([["a"]]), R, 1), "numbers"),
    (lambda: mm.precision_at_k(S, None, 1), "2-D"),
    (lambda: mm.precision_at_k(mm.judged_ranks(S, R), R, 1), "None"),
    (lambda: mm.RankedLists(np.array([[0, -1, 1]])), "padding"),
    (lambda: mm.RankedLists(np.array([[0, 1, 0]])), "twice"),
    (lambda: mm.RankedLists(np.array([[0.0, 1.0]])), "integer"),
    (lambda: mm.RankedLists(np.array([[0, -2]])), "negative"),
    (lambda: mm.precision_at_k(mm.RankedLists(np.array([[0, 5]])), np.ones((1, 3)), 1),
     "not < 3"),
    (lambda: mm.precision_at_k(mm.RankedLists(np.array([[0, 1]])), R, 1), "queries"),
    (lambda: mm.spearman_rho([1, 2, 3], [1, 2]), "same shape"),
    (lambda: mm.kendall_tau_b([1.0, np.nan], [1, 2]), "NaN"),
    (lambda: mm.image_text_retrieval(S, np.array([0, 1, 2])), "caption_image"),
    (lambda: mm.ranking_metrics(S, R, ["P_0"]), "unknown metric"),
    (lambda: mm.ranking_metrics(S, R, ["mapp"]), "unknown metric"),
])
def test_bad_input(call, message):
    with pytest.raises(InputError, match=message) as error:
        call()
    assert isinstance(error.value, ValueError) and "\n" not in str(error.value)


@pytest.mark.subprocess
def test_imports_no_model_code():
    code = ("import sys, mmkit.metrics, mmkit.metrics.trec; "
            "bad = [m for m in sys.modules if m.split('.')[0] in "
            "('torch', 'torchvision', 'transformers') or m.startswith('mmkit.features')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
