"""mmkit.metrics vs ranx, pytrec_eval and torchmetrics: AP, NDCG@10 and P@10 together.

    .venv/bin/python benchmarks/bench_metrics.py [--queries 10000] [--items 1000]

Data: a score matrix [Q, N] (float32, as embedding similarities are) with graded relevance
(~5% of items relevant, grades 1-3). The scores are tie-free, so that every library ranks
identically and the values must agree; the script checks that they do. Each library gets the
input it is built for, and its conversion is timed apart from its computation:

- mmkit: ``ranking_metrics`` on the score matrix and a scipy.sparse relevance (best of 3);
- ranx: the numba kernels on pre-converted typed lists (best of 3, on all cores and on one;
  conversion from the matrix timed apart), and ``ranx.evaluate`` from dicts (Qrels/Run
  construction included);
- pytrec_eval: ``RelevanceEvaluator`` from dicts (construction + evaluate);
- torchmetrics: the functional API (one call per query and metric) and the class API.

Ratios are seconds / seconds of ranx's kernel. Not part of the test suite.
"""
from __future__ import annotations

import argparse
import time
from typing import Callable

import numba
import numpy as np
import pytrec_eval
import ranx
import scipy.sparse as sp
import torch
from numba.typed import List
from ranx.metrics import average_precision, ndcg, precision
from torchmetrics.functional.retrieval import (retrieval_average_precision,
                                               retrieval_normalized_dcg, retrieval_precision)
from torchmetrics.retrieval import RetrievalMAP, RetrievalNormalizedDCG, RetrievalPrecision

import mmkit.metrics as mm


def best_of(fn: Callable, repeat: int) -> tuple[float, object]:
    """(best wall time in seconds over ``repeat`` calls, the last result)."""
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def make_data(n_queries: int, n_items: int, seed: int = 0):
    """Tie-free positive float32 scores [Q, N] favouring relevant items; graded int8 relevance.

    Positive, because torchmetrics treats an item scored <= 0 as not relevant.
    """
    rng = np.random.default_rng(seed)
    relevant = rng.random((n_queries, n_items)) < 0.05
    relevance = (relevant * rng.integers(1, 4, (n_queries, n_items))).astype(np.int8)
    noisy = rng.standard_normal((n_queries, n_items)) + 0.5 * relevance
    rank_in_row = np.argsort(np.argsort(noisy, axis=1), axis=1)  # 0..N-1, distinct per row
    scores = ((rank_in_row + 1) / n_items).astype(np.float32)
    assert (np.diff(np.sort(scores, axis=1), axis=1) > 0).all(), "scores must be tie-free"
    return scores, relevance


def run_mmkit(scores, relevance):
    values = mm.ranking_metrics(scores, relevance, ("map", "ndcg_cut_10", "P_10"))
    return values["map"], values["ndcg_cut_10"], values["P_10"]


def to_ranx_lists(scores, relevance):
    """numba typed lists: qrels [[doc, rel]] by rel descending, run [[doc, score]] ranked."""
    qrels, run = List(), List()
    order = np.argsort(-scores, axis=1, kind="stable")
    for q in range(len(scores)):
        docs = np.flatnonzero(relevance[q])
        docs = docs[np.argsort(-relevance[q, docs], kind="stable")]
        qrels.append(np.column_stack([docs, relevance[q, docs]]).astype(np.float64))
        run.append(np.column_stack([order[q], scores[q, order[q]]]).astype(np.float64))
    return qrels, run


def run_ranx_kernel(qrels, run):
    return average_precision(qrels, run), ndcg(qrels, run, 10), precision(qrels, run, 10)


def to_dicts(scores, relevance):
    """trec-style dicts {qid: {docid: value}} (every query keeps a judgement)."""
    names = np.array([f"d{j}" for j in range(scores.shape[1])])
    run, qrels = {}, {}
    for q in range(len(scores)):
        run[f"q{q:05d}"] = dict(zip(names.tolist(), scores[q].astype(np.float64).tolist()))
        docs = np.flatnonzero(relevance[q])
        qrels[f"q{q:05d}"] = dict(zip(names[docs].tolist(), relevance[q, docs].tolist())) \
            or {"d0": 0}
    return run, qrels


def run_ranx_dicts(run, qrels):
    values = ranx.evaluate(ranx.Qrels(qrels), ranx.Run(run), ["map", "ndcg@10", "precision@10"],
                           return_mean=False)
    return values["map"], values["ndcg@10"], values["precision@10"]


def run_pytrec_eval(run, qrels):
    result = pytrec_eval.RelevanceEvaluator(qrels, {"map", "ndcg_cut.10", "P.10"}).evaluate(run)
    return tuple(np.array([result[q][name] for q in sorted(result)])
                 for name in ("map", "ndcg_cut_10", "P_10"))


def run_torchmetrics_functional(preds, target):
    binary = target > 0
    values = [(retrieval_average_precision(p, b), retrieval_normalized_dcg(p, t, top_k=10),
               retrieval_precision(p, b, top_k=10)) for p, t, b in zip(preds, target, binary)]
    return tuple(np.array([float(v[i]) for v in values]) for i in range(3))


def run_torchmetrics_classes(preds, target):
    indexes = torch.arange(len(preds)).repeat_interleave(preds.shape[1])
    flat_preds, flat_target = preds.flatten(), target.flatten()
    means = []
    for metric, labels in ((RetrievalMAP(), flat_target > 0),
                           (RetrievalNormalizedDCG(top_k=10), flat_target),
                           (RetrievalPrecision(top_k=10), flat_target > 0)):
        metric.update(flat_preds, labels, indexes=indexes)
        means.append(float(metric.compute()))
    return tuple(np.array([m]) for m in means)  # the class API gives means only


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--items", type=int, default=1_000)
    args = parser.parse_args()
    scores, relevance = make_data(args.queries, args.items)
    csr = sp.csr_array(relevance)
    rows: list[tuple[str, float, tuple]] = []

    def measure(name, fn, repeat=1):
        seconds, values = best_of(fn, repeat)
        rows.append((name, seconds, values))
        print(f"  {name}: {seconds:.3f} s", flush=True)

    print(f"{args.queries} queries x {args.items} items, "
          f"{np.count_nonzero(relevance) / relevance.size:.1%} relevant")
    measure("mmkit ranking_metrics (float32 scores, sparse relevance)",
            lambda: run_mmkit(scores, csr), repeat=3)
    measure("mmkit ranking_metrics (float32 scores, dense relevance)",
            lambda: run_mmkit(scores, relevance), repeat=3)
    scores64 = scores.astype(np.float64)
    measure("mmkit ranking_metrics (float64 scores, sparse relevance)",
            lambda: run_mmkit(scores64, csr), repeat=3)

    # numba compiles on the first call: warm every ranx path up on 10 queries first
    run_ranx_kernel(*to_ranx_lists(scores[:10], relevance[:10]))
    run_ranx_dicts(*to_dicts(scores[:10], relevance[:10]))
    start = time.perf_counter()
    qrels_lists, run_lists = to_ranx_lists(scores, relevance)
    convert = time.perf_counter() - start
    measure("ranx kernels (pre-converted typed lists)",
            lambda: run_ranx_kernel(qrels_lists, run_lists), repeat=3)
    threads = numba.get_num_threads()
    numba.set_num_threads(1)  # mmkit runs on one core: the same work on one core
    measure("ranx kernels, 1 numba thread", lambda: run_ranx_kernel(qrels_lists, run_lists),
            repeat=3)
    numba.set_num_threads(threads)
    rows.append(("ranx conversion matrix -> typed lists (once)", convert, ()))

    run_dict, qrels_dict = to_dicts(scores, relevance)
    measure("ranx.evaluate from dicts", lambda: run_ranx_dicts(run_dict, qrels_dict))
    measure("pytrec_eval from dicts", lambda: run_pytrec_eval(run_dict, qrels_dict))
    del run_dict, qrels_dict

    preds, target = torch.from_numpy(scores), torch.from_numpy(relevance.astype(np.int64))
    measure("torchmetrics functional (per query)",
            lambda: run_torchmetrics_functional(preds, target))
    measure("torchmetrics classes (RetrievalMAP, ...)",
            lambda: run_torchmetrics_classes(preds, target))

    reference = rows[0][2]
    kernel = next(seconds for name, seconds, _ in rows if name.startswith("ranx kernels"))
    print("\n| method | seconds | vs ranx kernel | max abs diff of means vs mmkit |")
    print("|---|---:|---:|---:|")
    for name, seconds, values in rows:
        diff = max(abs(float(np.mean(v)) - float(np.mean(r)))
                   for v, r in zip(values, reference)) if values else None
        print(f"| {name} | {seconds:.3f} | {seconds / kernel:.2f}x | "
              f"{'-' if diff is None else f'{diff:.1e}'} |")
    for name, _, values in rows:  # per query where the library gives per-query values
        if values and len(values[0]) == len(scores):
            tolerance = 1e-6 if name.startswith("torchmetrics") else 1e-9  # float32 there
            worst = max(float(np.abs(v - r).max()) for v, r in zip(values, reference))
            assert worst <= tolerance, f"{name} disagrees with mmkit by {worst}"
    print("\nper-query values agree (1e-9; torchmetrics computes in float32: 1e-6)")


if __name__ == "__main__":
    main()
