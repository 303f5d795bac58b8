"""Approximate search: recall@10 vs queries/s for HNSW, IVF and IVF-PQ, and mmkit's tuner.

    .venv/bin/python benchmarks/bench_ann.py                 # 1M x 256, ~6 minutes on 2 cores

Clustered unit vectors (mmkit.index.clustered_vectors); 1,000 held-out queries tune the
search parameter (nprobe / ef_search) and 1,000 others measure it, both against exact
ground truth. Throughput is queries/s for a batch of 1,000 queries (best of ``--repeat``),
next to mmkit's exact search on the same data in the same run (for the tuned settings
the two are timed in turns). Writes benchmarks/results/ann_curves.png.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import NamedTuple

import faiss
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from mmkit.index import build_index, clustered_vectors, neighbour_recall, tune  # noqa: E402

class Row(NamedTuple):
    label: str
    build_s: float
    per_vector: float
    setting: str
    tune_recall: float
    test_recall: float
    qps: float
    exact_qps: float          # exact search timed in turns with this row


SWEEPS = {
    "nprobe": [1, 2, 3, 4, 6, 8, 12, 16, 32, 64],
    "ef_search": [10, 16, 32, 48, 64, 96, 128, 192, 256],
}


def timed_search(index, queries: torch.Tensor, k: int, repeat: int):
    """(ids [Q, k], queries/s): best of ``repeat`` searches of the whole batch."""
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        ids = index.search(queries, k).ids
        best = min(best, time.perf_counter() - t)
    return ids, len(queries) / best


def side_by_side(index, exact, queries: torch.Tensor, k: int, repeat: int):
    """(ids, queries/s of index, queries/s of exact): the two timed in turns, best of each."""
    best_index = best_exact = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        ids = index.search(queries, k).ids
        t1 = time.perf_counter()
        exact.search(queries, k)
        t2 = time.perf_counter()
        best_index, best_exact = min(best_index, t1 - t), min(best_exact, t2 - t1)
    return ids, len(queries) / best_index, len(queries) / best_exact


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--target", type=float, default=0.95)
    parser.add_argument("--nlist", type=int, default=2048)
    parser.add_argument("--train-size", type=int, default=100_000)
    parser.add_argument("--hnsw-m", type=int, default=32)
    parser.add_argument("--pq-m", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--refine", type=int, default=4, help="k_factor of IVF-PQ + refine")
    parser.add_argument("--margin", type=float, default=0.01, help="tune's safety margin")
    parser.add_argument("--kinds", default="ivf,ivfpq,ivfpq+refine,hnsw")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "ann_curves.png"))
    args = parser.parse_args()
    n, d, k, nq = args.n, args.dim, args.k, 1000

    t = time.perf_counter()
    x = clustered_vectors(n + 2 * nq, d, seed=0)
    db, tune_q, test_q = x[:n], x[n:n + nq].clone(), x[n + nq:].clone()
    print(f"data: {n:,} x {d} clustered unit vectors, metric ip, k={k}, 1,000 tuning + "
          f"1,000 test queries ({time.perf_counter() - t:.0f} s); faiss {faiss.__version__}, "
          f"torch {torch.get_num_threads()} threads")

    exact = build_index("exact", dim=d)
    exact.add(db, progress=False)
    true_tune = exact.search(tune_q, k).ids
    true_test, exact_qps = timed_search(exact, test_q, k, args.repeat)
    print(f"exact (mmkit, torch): {exact_qps:,.0f} queries/s\n", flush=True)

    pq = dict(nlist=args.nlist, m=args.pq_m, nbits=8, train_size=args.train_size)
    configs = {
        "ivf": (f"IVF{args.nlist},Flat", dict(nlist=args.nlist, train_size=args.train_size)),
        "ivfpq": (f"IVF{args.nlist},PQ{args.pq_m}x8", pq),
        "ivfpq+refine": (f"IVF{args.nlist},PQ{args.pq_m}x8,RFlat (k_factor {args.refine})",
                         dict(pq, refine=args.refine)),
        "hnsw": (f"HNSW{args.hnsw_m}", dict(M=args.hnsw_m, ef_construction=40)),
    }
    curves: dict[str, tuple[str, list]] = {}     # label -> (knob, [(value, recall, q/s)])
    rows: list[Row] = []
    for kind in args.kinds.split(","):
        label, params = configs[kind]
        index = build_index(kind.split("+")[0], dim=d, **params)
        t = time.perf_counter()
        index.train(db)                                   # no-op for HNSW
        index.add(db, progress=False)
        build_s = time.perf_counter() - t
        per_vector = faiss.serialize_index(index.faiss_index).size / n
        knob = index.search_knob
        low, high = index.knob_range()
        curve = []
        for value in SWEEPS[knob]:
            if low <= value <= high:
                index.set_search_params(**{knob: value})
                ids, qps = timed_search(index, test_q, k, args.repeat)
                curve.append((value, neighbour_recall(ids, true_test), qps))
        curves[label] = (knob, curve)
        chosen = tune(index, tune_q, args.target, k, margin=args.margin,
                      ground_truth_ids=true_tune)
        ids, qps, paired_exact = side_by_side(index, exact, test_q, k, args.repeat + 2)
        rows.append(Row(label, build_s, per_vector, f"{knob}={chosen.value}", chosen.recall,
                        neighbour_recall(ids, true_test), qps, paired_exact))
        print(f"{label}: built in {build_s:.0f} s, {per_vector:.0f} B/vector; "
              + ", ".join(f"{knob}={v}: R={r:.3f} {q:,.0f}/s" for v, r, q in curve), flush=True)
        del index
        exact_qps = max(exact_qps, paired_exact)

    print(f"\nexact search: {exact_qps:,.0f} queries/s (mmkit; best of all its measurements)\n")
    print("| index | build (s) | bytes/vector | "
          f"tune(target={args.target}, margin={args.margin}) | "
          "tuning recall | test recall | queries/s | exact queries/s (in turns) | x exact |")
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row.label} | {row.build_s:.0f} | {row.per_vector:.0f} | {row.setting} | "
              f"{row.tune_recall:.3f} | {row.test_recall:.3f} | {row.qps:,.0f} | "
              f"{row.exact_qps:,.0f} | {row.qps / row.exact_qps:.0f}x |")
    good = [row for row in rows if row.test_recall >= args.target]
    if good:
        best = max(good, key=lambda row: row.qps / row.exact_qps)
        print(f"\nfastest tuned index with test recall@{k} >= {args.target}: {best.label}, "
              f"{best.qps / best.exact_qps:.0f}x exact search")

    print("\nfull curves (test queries):\n")
    print(f"| index | setting | recall@{k} | queries/s | x exact |")
    print("|---|---|---:|---:|---:|")
    for label, (knob, curve) in curves.items():
        for value, recall, qps in curve:
            print(f"| {label} | {knob}={value} | {recall:.3f} | {qps:,.0f} | "
                  f"{qps / exact_qps:.0f}x |")

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, (_, curve) in curves.items():
        ax.plot([r for _, r, _ in curve], [q for _, _, q in curve], "o-", label=label, ms=4)
    ax.axhline(exact_qps, color="k", ls="--", lw=1, label="exact (mmkit)")
    ax.axvline(args.target, color="grey", ls=":", lw=1)
    ax.set(xlabel=f"recall@{k}", ylabel="queries / s (1,000-query batch)", yscale="log",
           title=f"{n:,} x {d} clustered vectors, {os.cpu_count()} CPU cores")
    ax.grid(alpha=0.3)
    ax.legend()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print(f"\nplot: {out}")


if __name__ == "__main__":
    main()
