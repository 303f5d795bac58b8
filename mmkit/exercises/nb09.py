"""Exercises of notebook 09 (search at scale)."""
from __future__ import annotations

import math

import numpy as np

from mmkit.exercises import Feedback, close, not_answered
from mmkit.scale.auto import bytes_per_vector
from mmkit.scale.shards import merge_topk
from mmkit.validate import is_integer


def check_bytes_per_vector(kind: str, dim: int, answer: float | None, *, m: int | None = None,
                           M: int = 32) -> Feedback:
    """Exercise 1: the index memory per stored vector (bytes) of ``kind`` at ``dim``."""
    if answer is None:
        return not_answered()
    expected = bytes_per_vector(kind, dim, m=m, M=M)
    if close(answer, expected, 0.5):
        return Feedback(True, f"{kind} at {dim}-d takes about {expected:.0f} bytes per vector")
    hint = {"exact": "4 bytes per float32 component", "flat": "4 bytes per float32 component",
            "ivf": "the float32 vector plus its 8-byte id in the inverted list",
            "ivfpq": "one byte per sub-quantizer code (nbits = 8) plus the 8-byte id",
            "hnsw": "the float32 vector plus ~2 M links of 4 bytes (plus ~1/M for upper levels)"}
    return Feedback(False, f"not {answer}: count {hint.get(kind, 'what the index stores')}")


def check_machines(n: int, dim: int, kind: str, machine_bytes: float, answer: int | None, *,
                   m: int | None = None) -> Feedback:
    """Exercise 2: how many machines of ``machine_bytes`` RAM hold ``n`` vectors of ``kind``?"""
    if answer is None:
        return not_answered()
    if not is_integer(answer):
        return Feedback(False, f"answer with a whole number of machines, got {answer!r}")
    expected = math.ceil(n * bytes_per_vector(kind, dim, m=m) / machine_bytes)
    if int(answer) == expected:
        return Feedback(True, f"{expected} machine(s): {n:,} x "
                              f"{bytes_per_vector(kind, dim, m=m):.0f} bytes "
                              f"= {n * bytes_per_vector(kind, dim, m=m) / 1e9:,.1f} GB")
    return Feedback(False, "total bytes = n x bytes per vector; divide by one machine's "
                           "memory and round UP")


def check_merge(shard_scores: list[np.ndarray], shard_ids: list[np.ndarray], k: int,
                answer: np.ndarray | None) -> Feedback:
    """Exercise 3: the merged top-k ids [Q, k] of per-shard hits (score desc, then id asc)."""
    if answer is None:
        return not_answered()
    import torch

    got = np.asarray(answer)
    expected = merge_topk([torch.as_tensor(s) for s in shard_scores],
                          [torch.as_tensor(i) for i in shard_ids], k).ids.numpy()
    if got.shape != expected.shape:
        return Feedback(False, f"expected ids of shape {expected.shape}, got {got.shape}")
    if np.array_equal(got, expected):
        return Feedback(True, "the k best of the union of each shard's k best are the k best "
                              "overall: the merge is exact")
    rows = int((got != expected).any(axis=1).sum())
    return Feedback(False, f"{rows} query row(s) differ: concatenate the shards' hits, sort by "
                           "score (descending), break ties by the smaller id, keep k")


# ------------------------------------------------------------------ worked solutions
def solution_bytes_per_vector(m: int = 32, nbits: int = 8, id_bytes: int = 8) -> float:
    """Exercise 1. IVF-PQ stores, per vector, m codes of nbits bits and its 8-byte id in the
    inverted list; the dimension (256) does not matter: 32 + 8 = 40 bytes."""
    return m * nbits / 8 + id_bytes


def solution_machines(n: int = 10**9, code_bytes: int = 20, machine_bytes: float = 64e9,
                      id_bytes: int = 8) -> int:
    """Exercise 2 (the IVF-PQ part, which the checker asks for): n x (code + id) bytes,
    divided by one machine's memory, rounded UP: 1e9 x 28 B = 28 GB -> 1 machine. The flat
    index needs 1e9 x 96 x 4 B = 384 GB -> 6 machines."""
    return math.ceil(n * (code_bytes + id_bytes) / machine_bytes)


def solution_merge(shard_scores: list[np.ndarray], shard_ids: list[np.ndarray], k: int
                   ) -> np.ndarray:
    """Exercise 3. Call with ``[p.scores.numpy() for p in parts], [p.ids.numpy() for p in
    parts], K``: put all shards' hits side by side, sort each row by score (descending),
    ties by the smaller id, and keep the first k ids."""
    scores = np.concatenate(shard_scores, axis=1)
    ids = np.concatenate(shard_ids, axis=1)
    order = np.lexsort((ids, -scores), axis=1)                     # last key sorts first
    return np.take_along_axis(ids, order, axis=1)[:, :k]


SOLUTIONS = {1: solution_bytes_per_vector, 2: solution_machines, 3: solution_merge}
