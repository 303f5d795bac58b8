"""Exact top-k search: mmkit's chunked torch search vs faiss IndexFlatIP vs numpy.

    .venv/bin/python benchmarks/bench_search.py            # 1M x 256, 1,000 queries, k=10

All methods search the same clustered unit vectors; they are timed in turns (round
robin, ``--repeat`` rounds, best time kept) in ONE run, next to the machine's matmul
peak (4096^3 float32 torch matmuls between the rounds, median) and next to "matmul
alone": the very matmuls of mmkit's search without any top-k, its ceiling. Load from
other processes thus affects all of them alike. A query costs 2 N D flops.
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import faiss
import numpy as np
import torch

from mmkit.index import build_index, clustered_vectors


def peak_gflops(size: int = 4096, tries: int = 3) -> float:
    """Best float32 GFLOP/s of a large square torch matmul (the machine's practical peak)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    out = torch.empty(size, size)
    torch.mm(a, b, out=out)                               # warm-up
    best = float("inf")
    for _ in range(tries):
        t = time.perf_counter()
        torch.mm(a, b, out=out)
        best = min(best, time.perf_counter() - t)
    return 2 * size ** 3 / best / 1e9


def matmul_alone(db: torch.Tensor, queries: torch.Tensor, chunk: int) -> None:
    """The matmuls of mmkit's exact search and nothing else (no top-k): its ceiling."""
    out = torch.empty(len(queries) * chunk)
    for start in range(0, len(db), chunk):
        block = db[start:start + chunk]
        scores = out[:len(queries) * len(block)].view(len(queries), len(block))
        torch.mm(queries, block.T, out=scores)


def numpy_search(db: np.ndarray, queries: np.ndarray, k: int, chunk: int = 65536):
    """numpy baseline: matmul per database chunk, argpartition, then merge the chunk winners."""
    cand_s, cand_i = [], []
    for start in range(0, len(db), chunk):
        scores = queries @ db[start:start + chunk].T
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        cand_s.append(np.take_along_axis(scores, top, 1))
        cand_i.append(top + start)
    scores, ids = np.concatenate(cand_s, 1), np.concatenate(cand_i, 1)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, 1), np.take_along_axis(ids, order, 1)


def torch_naive_search(db: torch.Tensor, queries: torch.Tensor, k: int, chunk: int = 65536):
    """The textbook torch version: matmul per chunk, topk, merge with a running top-k."""
    best_s = torch.full((len(queries), k), -float("inf"))
    best_i = torch.full((len(queries), k), -1, dtype=torch.int64)
    for start in range(0, len(db), chunk):
        s, i = torch.topk(queries @ db[start:start + chunk].T, k, dim=1)
        s, j = torch.topk(torch.cat([best_s, s], 1), k, dim=1)
        best_i = torch.cat([best_i, i + start], 1).gather(1, j)
        best_s = s
    return best_s, best_i


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--chunk-size", type=int, default=4096)
    parser.add_argument("--skip-slow", action="store_true", help="leave out numpy and naive torch")
    args = parser.parse_args()
    n, d, nq, k = args.n, args.dim, args.queries, args.k

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"faiss {faiss.__version__}")
    t = time.perf_counter()
    x = clustered_vectors(n + nq, d, seed=0)
    db, queries = x[:n], x[n:].clone()
    db_np, q_np = db.numpy(), queries.numpy()
    print(f"data: {n:,} x {d} clustered unit vectors, {nq:,} queries, k={k} "
          f"({time.perf_counter() - t:.1f} s to generate)")

    exact = build_index("exact", dim=d, metric="ip", chunk_size=args.chunk_size)
    exact.add(db, progress=False)
    flat = faiss.IndexFlatIP(d)
    flat.add(db_np)

    alone = f"(matmul alone, {args.chunk_size}-row blocks, no top-k)"
    methods = {
        alone: lambda: matmul_alone(db, queries, args.chunk_size),
        "mmkit exact (torch, chunked)": lambda: exact.search(queries, k).ids.numpy(),
        "faiss IndexFlatIP": lambda: flat.search(q_np, k)[1],
    }
    if not args.skip_slow:
        methods["numpy matmul + argpartition"] = lambda: numpy_search(db_np, q_np, k)[1]
        methods["torch matmul + topk (naive)"] = \
            lambda: torch_naive_search(db, queries, k)[1].numpy()

    times = {name: [] for name in methods}
    results = {}
    peaks = [peak_gflops()]
    for _ in range(args.repeat):
        for name, run in methods.items():
            t = time.perf_counter()
            results[name] = run()
            times[name].append(time.perf_counter() - t)
        peaks.append(peak_gflops())
    peak = float(np.median(peaks))

    reference = results["faiss IndexFlatIP"]
    ceiling = times[alone]
    flops = 2 * n * d * nq
    print(f"\nmatmul peak: {peak:.0f} GFLOP/s = median of the 4096^3 float32 torch.mm "
          f"measurements between the rounds ({', '.join(f'{p:.0f}' for p in peaks)})")
    print(f"best of {args.repeat} rounds; 1 query = 2 N D = {2 * n * d / 1e6:.0f} MFLOP; "
          "'of matmul alone' = median over rounds of (matmul-alone time / method time)\n")
    print("| method | time (s) | queries/s | GFLOP/s | % of matmul peak | % of matmul alone "
          "| same ids as faiss |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, ts in times.items():
        best = min(ts)
        of_alone = float(np.median([c / t for c, t in zip(ceiling, ts)]))
        same = "" if results[name] is None else f"{100 * (results[name] == reference).mean():.2f}%"
        print(f"| {name} | {best:.2f} | {nq / best:,.0f} | {flops / best / 1e9:.0f} | "
              f"{100 * flops / best / 1e9 / peak:.0f}% | {100 * of_alone:.0f}% | {same} |")


if __name__ == "__main__":
    main()
