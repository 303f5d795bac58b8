"""Search at scale: embedding throughput (local engine, Ray with 1 and 2 workers), sharded vs
single index query time, and what ``--kind auto`` picks at 10k / 100k / 1M vectors.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_scale.py   # 20,000 images; --threads 1

1. 20,000 world images (``World(WorldConfig(n=20000, seed=7))``) written as PNG files, then
   embedded by mmkit.scale's pipeline with the default method (partitions of 256 files,
   exact index): images/s = embedded files / embedding seconds (the method's fit and the
   index build are timed separately). Ray: a fresh local cluster per worker count; its
   start-up and its per-partition scheduling overhead (empty partitions through the same
   ``map_batches``) are measured, not assumed.
2. Sharded vs single: exact and IVF (one shared quantizer) over 200k x 256 clustered unit
   vectors, 1,000 queries, 1 / 2 / 4 shards searched one after the other and merged.
3. ``choose_index`` at 10k, 100k, 1M x 256 (4 GiB budget): build, tune to recall@10 >= 0.95
   on 500 held-out queries, then measure recall@10 and queries/s on 1,000 other held-out
   queries (clustered vectors drawn in the same call as the database).
Writes benchmarks/results/scale.json.
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from mmkit.index import ExactIndex, build_index, clustered_vectors, neighbour_recall, tune
from mmkit.scale import ShardedIndex, choose_index
from mmkit.scale.shards import build_shard, shard_bounds, train_quantizer


def write_pngs(n: int, out: Path) -> float:
    from PIL import Image

    from mmkit.data.world import World, WorldConfig

    t = time.perf_counter()
    world = World(WorldConfig(n=n, seed=7), progress=False)
    out.mkdir(parents=True)
    for i in range(n):
        Image.fromarray(world.images[i]).save(out / f"{i:06d}.png")
    return time.perf_counter() - t


def embedding(n_images: int, tmp: Path,
              engines: tuple = (("local", 1), ("ray", 1), ("ray", 2))) -> dict:
    from mmkit.methods import DEFAULT_METHOD
    from mmkit.scale import build_folder_index
    from mmkit.scale.embed import prepare_method
    from mmkit.scale.ray_engine import ray_session, scheduling_overhead

    images = tmp / "images"
    res = {"n_images": n_images, "write_s": round(write_pngs(n_images, images), 1)}
    t = time.perf_counter()
    method, fit = prepare_method(DEFAULT_METHOD)
    res.update(method=DEFAULT_METHOD, fit_s=round(time.perf_counter() - t, 1))
    runs = []
    for engine, workers in engines:
        out = tmp / f"idx-{engine}-{workers}"
        extra = {}
        if engine == "ray":
            with ray_session(workers) as startup:
                overhead = scheduling_overhead(40, workers)
                m = build_folder_index(images, out, method=(method, fit), kind="exact",
                                       engine="ray", workers=workers, progress=False, quiet=True)
            extra = {"ray_start_s": round(startup, 2),
                     "empty_partition_ms": round(overhead["per_task_ms"], 1)}
        else:
            m = build_folder_index(images, out, method=(method, fit), kind="exact",
                                   progress=False, quiet=True)
        s = m["seconds"]
        runs.append({"engine": engine, "workers": workers, "embed_s": s["embed_s"],
                     "images_per_s": round(m["n_indexed"] / s["embed_s"], 1),
                     "index_s": s["index_s"], **extra})
        print(runs[-1], flush=True)
        shutil.rmtree(out)
    res["runs"] = runs
    return res


def timed(index, q, k=10, repeat=3):
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        r = index.search(q, k)
        best = min(best, time.perf_counter() - t)
    return r, best


def sharding(n: int = 200_000, dim: int = 256) -> list[dict]:
    x = clustered_vectors(n + 1000, dim, seed=11)
    q, x = x[:1000], x[1000:].numpy()
    ids = np.arange(n, dtype=np.int64)
    rows = []
    for kind, params in (("exact", {}), ("ivf", {"nlist": 1024, "nprobe": 16})):
        quant = train_quantizer(x, kind, params, metric="cosine", sample=64 * 1024)
        ref = None
        for shards in (1, 2, 4):
            idx = ShardedIndex([build_shard(quant, x[a:b], ids[a:b])
                                for a, b in shard_bounds(n, shards)])
            r, sec = timed(idx, q)
            ref = r.ids if ref is None else ref
            rows.append({"kind": kind, "shards": shards, "query_ms": round(1000 * sec / 1000, 4),
                         "qps": round(1000 / sec), "same_ids_as_1_shard": bool(
                             torch.equal(r.ids, ref))})
            print(rows[-1], flush=True)
    return rows


def auto(sizes=(10_000, 100_000, 1_000_000), dim: int = 256) -> list[dict]:
    rows = []
    for n in sizes:
        x = clustered_vectors(n + 1500, dim, seed=21)
        tune_q, test_q, db = x[:500], x[500:1500], x[1500:]
        choice = choose_index(n, dim)
        t = time.perf_counter()
        index = build_index(choice.kind, dim=dim, metric="cosine", **choice.params)
        index.add(db)
        build_s = time.perf_counter() - t
        exact = ExactIndex(dim, "cosine")
        exact.add(db)
        truth_tune = exact.search(tune_q, 10).ids
        truth_test = exact.search(test_q, 10).ids
        tuned = tune(index, tune_q, 0.95, 10, margin=0.01, ground_truth_ids=truth_tune)
        r, sec = timed(index, test_q)
        _, exact_sec = timed(exact, test_q)
        rows.append({"n": n, "kind": choice.kind, "params": choice.params,
                     "reason": choice.reason, "bytes_per_vector": choice.bytes_per_vector,
                     "build_s": round(build_s, 1), "knob": tuned.param, "value": tuned.value,
                     "recall_at_10": round(neighbour_recall(r.ids, truth_test), 4),
                     "qps": round(len(test_q) / sec), "exact_qps": round(len(test_q) / exact_sec)})
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=20_000)
    ap.add_argument("--skip", nargs="*", default=[], choices=["embedding", "sharding", "auto"])
    ap.add_argument("--engines", default="local:1,ray:1,ray:2",
                    help="comma-separated ENGINE:WORKERS runs of the embedding part")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch / faiss threads of this process (Ray workers use 1 each)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    try:
        import faiss

        faiss.omp_set_num_threads(args.threads)
    except ImportError:
        pass
    import os

    t_start = time.perf_counter()
    out = {"threads": args.threads, "load_average_at_start": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        if "embedding" not in args.skip:
            engines = tuple((e, int(w)) for e, w in (x.split(":") for x in args.engines.split(",")))
            out["embedding"] = embedding(args.images, Path(tmp), engines)
    if "sharding" not in args.skip:
        out["sharding"] = sharding()
    if "auto" not in args.skip:
        out["auto"] = auto()
    out["load_average_at_end"] = os.getloadavg()
    out["total_s"] = round(time.perf_counter() - t_start, 1)
    path = Path(__file__).parent / "results" / "scale.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
