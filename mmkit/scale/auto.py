"""Choose and size an index from the collection size and a memory budget, as autofaiss does.

autofaiss (clip-retrieval's index builder; ``autofaiss/external/optimize.py``) picks Flat
below 1k vectors, HNSW while it fits the memory budget and the collection is small, IVF-Flat
with ~4 sqrt(N) lists below 1M, and IVF-PQ sized to the budget beyond. The rule here keeps
that shape, adapted to this kit (its exact torch search is faster than faiss Flat, so
brute force goes further):

1. N < 10,000: ``exact``. Scanning fewer than 10k vectors costs microseconds per query in a
   batch; no approximate index is worth its build time or its lost recall.
2. N < 100,000 and the HNSW graph fits: ``hnsw`` (M = 32). Graph search gives the best
   recall per query-time at this size; its memory is the vectors plus ~2 M links of 4 bytes.
3. N < 1,000,000 and the vectors fit: ``ivf`` with nlist = 4 sqrt(N) rounded to a power of
   two (autofaiss: 30-256 training vectors per list; here 64 per list, capped at N).
4. otherwise (or when nothing above fits the budget): ``ivfpq``, nlist as above, with the
   largest code (m bytes per vector, m dividing D, m <= D / 4) that fits the budget. The cap
   keeps sub-vectors of at least 4 components: faiss trains 2-component sub-quantizers about
   20x slower than 4-component ones (measured on a busy 2-core machine, one thread, 32k
   training vectors at 256-d: PQ128x8 182 s, PQ64x8 8 s) for codes only twice as large.

Memory per vector (bytes, faiss's layouts; ids are 8 bytes in IVF lists): exact / flat 4 D;
hnsw 4 D + 8 M (level-0 links 2 M x 4 bytes; upper levels add ~1/M of that); ivf 4 D + 8;
ivfpq m + 8 (+ the centroids, 4 D nlist bytes in all).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from mmkit.errors import InputError

DEFAULT_MEMORY = 4 * 1024 ** 3        # 4 GiB: a laptop's share for one index
EXACT_BELOW = 10_000
HNSW_BELOW = 100_000
IVF_BELOW = 1_000_000
HNSW_M = 32
TRAIN_PER_LIST = 64


@dataclass
class IndexChoice:
    """What :func:`choose_index` picked, with its parameters and the reason in words."""

    kind: str                      # "exact", "hnsw", "ivf" or "ivfpq"
    params: dict[str, Any]         # for mmkit.index.build_index (nlist, M, m, train_size, ...)
    reason: str
    bytes_per_vector: float        # index memory per stored vector (bytes)
    total_bytes: int               # estimated index memory for all N vectors
    considered: list[str] = field(default_factory=list)


def bytes_per_vector(kind: str, dim: int, *, M: int = HNSW_M, m: int | None = None) -> float:
    """Index memory per stored vector in bytes for ``kind`` (see the module docstring)."""
    if kind in ("exact", "flat"):
        return 4.0 * dim
    if kind == "hnsw":
        return 4.0 * dim + 8.0 * M * (1 + 1 / M)
    if kind == "ivf":
        return 4.0 * dim + 8
    if kind == "ivfpq":
        return float((m if m is not None else dim // 8) + 8)
    raise InputError(f"unknown index kind {kind!r}")


def parse_memory(text: str) -> int:
    """'512M', '4G', '1.5GB', '100000' (bytes) -> bytes; one-line InputError otherwise."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgt]?)i?b?\s*", str(text), re.IGNORECASE)
    if not m:
        raise InputError(f"--memory {text!r}: expected a size such as 512M, 4G or 1.5GB")
    value = float(m.group(1)) * 1024 ** " kmgt".index(m.group(2).lower() or " ")
    if value < 1024 ** 2:
        raise InputError(f"--memory {text!r}: at least 1M is needed")
    return int(value)


def ivf_lists(n: int) -> int:
    """nlist = 4 sqrt(N) rounded to a power of two, at least 1 and at most N / 39."""
    target = 4 * math.sqrt(max(n, 1))
    nlist = 2 ** max(0, round(math.log2(target)))
    return max(1, min(nlist, n // 39 if n >= 39 else 1))


def choose_index(n: int, dim: int, memory: int = DEFAULT_MEMORY) -> IndexChoice:
    """The index kind and parameters for ``n`` vectors of length ``dim`` within ``memory``
    bytes (see the module docstring for the rule)."""
    if n < 1 or dim < 1:
        raise InputError(f"choose_index needs n >= 1 and dim >= 1, got n={n}, dim={dim}")
    considered = []

    def fits(kind: str, **kw) -> bool:
        total = n * bytes_per_vector(kind, dim, **kw)
        ok = total <= memory
        considered.append(f"{kind}: {total / 1e6:.1f} MB {'fits' if ok else 'exceeds'} "
                          f"the {memory / 1e6:.0f} MB budget")
        return ok

    def choice(kind: str, params: dict, reason: str, **kw) -> IndexChoice:
        bpv = bytes_per_vector(kind, dim, **kw)
        return IndexChoice(kind, params, reason, bpv, int(n * bpv), considered)

    if n < EXACT_BELOW and fits("exact"):
        return choice("exact", {}, f"N = {n:,} < {EXACT_BELOW:,}: brute force is fast and exact")
    if n < HNSW_BELOW and fits("hnsw", M=HNSW_M):
        return choice("hnsw", {"M": HNSW_M, "ef_construction": 40},
                      f"N = {n:,} < {HNSW_BELOW:,} and the HNSW graph fits the budget",
                      M=HNSW_M)
    nlist = ivf_lists(n)
    train = min(n, TRAIN_PER_LIST * nlist)
    if n < IVF_BELOW and fits("ivf"):
        return choice("ivf", {"nlist": nlist, "train_size": train},
                      f"N = {n:,} < {IVF_BELOW:,} and the full vectors fit: IVF{nlist},Flat")
    budget_m = memory // n - 8
    divisors = [m for m in range(1, max(1, dim // 4) + 1) if dim % m == 0 and m <= budget_m]
    if not divisors:
        raise InputError(f"no index fits: {n:,} vectors need at least {9 * n / 1e6:.0f} MB "
                         f"(IVF-PQ with 1-byte codes); raise --memory")
    m = max(divisors)
    train = min(n, max(train, 40 * 256))
    return choice("ivfpq", {"nlist": nlist, "m": m, "nbits": 8, "train_size": train},
                  f"N = {n:,}: IVF{nlist},PQ{m}x8, the largest code (m = {m} bytes) within "
                  f"the budget", m=m)
