"""The Ray engine: embedding as Ray Data ``map_batches`` over partitions, shards as Ray tasks.

One row of the Ray Dataset is one partition number; ``map_batches`` with ``batch_size=1``
and ``concurrency=N`` runs at most N tasks at a time, each embedding one partition and
writing its file: clip-retrieval's "one task per output partition". The method goes into
Ray's object store once and is unpickled once per worker process, not per partition. Shard indexes are built
by Ray tasks from the bytes of one trained quantizer and come back as bytes.

On a laptop :func:`ray_session` starts a local cluster (``num_cpus=N``, no dashboard, bound
to 127.0.0.1, usage statistics off: no traffic beyond loopback) and shuts it down at the
end; ``address="ray://..."`` or ``"HOST:PORT"`` joins an existing cluster instead. On a real
cluster the image folder and the index folder must be on storage that every node sees
(NFS, a mounted bucket), as for clip-retrieval.

``ray`` is imported only inside these functions: ``import mmkit`` never imports it.
"""
from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from mmkit.errors import MMKitError
from mmkit.scale.embed import embed_and_write
from mmkit.scale.shards import build_shard, index_bytes


def _quiet_ray_env() -> None:
    # before ray is imported: no usage-statistics upload, no token-auth banner on stderr
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")


#: a local cluster is started up to this many times: Ray waits a fixed 30 s for its raylet to
#: register, which a heavily loaded 2-core machine can miss once
START_ATTEMPTS = 2


@contextlib.contextmanager
def ray_session(workers: int = 2, address: str | None = None) -> Iterator[float]:
    """Start (or join) Ray for the block; yields the start-up time in seconds.

    If Ray is already initialised in this process (a notebook, a test fixture), it is used
    as it is and left running. A local cluster that does not come up is tried once more;
    a failure is one line (:class:`~mmkit.errors.MMKitError`).
    """
    _quiet_ray_env()
    import ray

    if ray.is_initialized():
        yield 0.0
        return
    t0 = time.perf_counter()
    opts: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False,
                                logging_level=logging.ERROR)
    for attempt in range(1 if address else START_ATTEMPTS):
        try:
            if address:
                ray.init(address=address, **opts)
            else:
                ray.init(num_cpus=int(workers), _node_ip_address="127.0.0.1", **opts)
            break
        except Exception as e:  # a bare Exception when the node times out starting
            if not isinstance(e, (ConnectionError, RuntimeError, ValueError, TimeoutError)) \
                    and type(e) is not Exception:
                raise
            ray.shutdown()                      # whatever half of it started
            if address or attempt == START_ATTEMPTS - 1:
                raise MMKitError(_start_failure(address, e)) from None
    _quiet_ray_data()
    try:
        yield time.perf_counter() - t0
    finally:
        ray.shutdown()


def _start_failure(address: str | None, error: BaseException) -> str:
    first = (str(error).strip().splitlines() or [type(error).__name__])[0]
    where = f"the Ray cluster at --address {address}" if address else "a local Ray cluster"
    return f"could not start or join {where}: {first}"


def _quiet_ray_data() -> None:
    """No progress bars or per-dataset INFO lines from Ray Data (they go to stderr)."""
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    for attr in ("enable_operator_progress_bars", "print_on_execution_start",
                 "enable_rich_progress_bars"):
        if hasattr(ctx, attr):
            setattr(ctx, attr, False)
    for name in ("ray.data", "ray"):
        logging.getLogger(name).setLevel(logging.ERROR)


_WORKER_METHODS: dict[str, Any] = {}   # per worker process: method object by ObjectRef id


def _embed_partitions(batch: dict[str, np.ndarray], method_ref: list, plan: dict[str, Any],
                      out: str) -> dict[str, np.ndarray]:
    """Ray Data batch function: embed and write each partition number of ``batch``.

    The method comes as [ObjectRef] (in a list, so Ray passes the reference, not the value)
    and is fetched and unpickled once per worker process, then reused for every partition.
    """
    import ray
    import torch

    key = method_ref[0].hex()
    if key not in _WORKER_METHODS:
        torch.set_num_threads(1)          # one core per worker
        _WORKER_METHODS.clear()
        _WORKER_METHODS[key] = ray.get(method_ref[0])
    method = _WORKER_METHODS[key]
    rows = [embed_and_write(method, plan, out, int(k)) for k in batch["part"]]
    return {key: np.array([r[key] for r in rows]) for key in rows[0]}


def embed_ray(method: Any, plan: dict[str, Any], out: Path, todo: list[int], *,
              workers: int = 2,
              on_partition: Callable[[dict[str, Any]], None] | None = None) -> list[dict]:
    """Embed the ``todo`` partitions on ``workers`` Ray workers (Ray must be initialised:
    use :func:`ray_session`). Returns one stats dict per partition, in completion order."""
    _quiet_ray_env()
    import ray
    import ray.data

    _quiet_ray_data()
    if not todo:
        return []
    ds = ray.data.from_items([{"part": int(k)} for k in todo], override_num_blocks=len(todo))
    ds = ds.map_batches(_embed_partitions, batch_size=1, concurrency=int(workers), num_cpus=1,
                        fn_kwargs={"method_ref": [ray.put(method)], "plan": plan,
                                   "out": str(out)})
    stats = []
    for row in ds.iter_rows():
        stats.append({"part": int(row["part"]), "n_ok": int(row["n_ok"]),
                      "n_failed": int(row["n_failed"]), "seconds": float(row["seconds"])})
        if on_partition is not None:
            on_partition(stats[-1])
    return stats


def _build_shard_bytes(quantizer: bytes, vectors: np.ndarray, ids: np.ndarray) -> bytes:
    import torch

    torch.set_num_threads(1)
    return index_bytes(build_shard(quantizer, vectors, ids))


def build_shards_ray(quantizer: bytes, vectors: np.ndarray, ids: np.ndarray,
                     bounds: list[tuple[int, int]]) -> list[bytes]:
    """Shard s = ``quantizer`` + rows ``bounds[s]``, built by one Ray task each, in parallel;
    returns the saved bytes of each shard index, in shard order."""
    _quiet_ray_env()
    import ray

    task = ray.remote(num_cpus=1)(_build_shard_bytes)
    q_ref = ray.put(quantizer)
    refs = [task.remote(q_ref, vectors[a:b], ids[a:b]) for a, b in bounds]
    return ray.get(refs)


def scheduling_overhead(n_tasks: int = 20, workers: int = 2) -> dict[str, float]:
    """Seconds for ``n_tasks`` empty partitions through the same map_batches pipeline (Ray
    must be initialised): what Ray costs per partition when the work itself is nothing."""
    _quiet_ray_env()
    import ray.data

    _quiet_ray_data()
    t0 = time.perf_counter()
    ds = ray.data.from_items([{"part": k} for k in range(n_tasks)], override_num_blocks=n_tasks)
    ds = ds.map_batches(_noop, batch_size=1, concurrency=int(workers), num_cpus=1)
    n = sum(1 for _ in ds.iter_rows())
    total = time.perf_counter() - t0
    return {"tasks": n, "seconds": total, "per_task_ms": 1000 * total / max(n, 1)}


def _noop(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return batch
