"""Choose and size an index from the collection size and a memory budget, as autofaiss does.

autofaiss (clip-retrieval's index builder; ``autofaiss/external/optimize.py``) picks Flat
below 1k vectors, HNSW while it fits the memory budget and the collection is small, IVF-Flat
with ~4 sqrt(N) lists below 1M, and IVF-PQ sized to the budget beyond. The rule here keeps
that shape, adapted to this kit (its exact torch search is faster than faiss Flat, so
brute force goes further), but lets memory, not a size threshold, decide when the full
vectors must give way to compressed codes, so that the search knob can be tuned to the
recall target wherever the budget allows it:

1. N < 10,000: ``exact``. Scanning fewer than 10k vectors costs microseconds per query in a
   batch; no approximate index is worth its build time or its lost recall.
2. N < 100,000 and the HNSW graph fits: ``hnsw`` (M = 32). Graph search gives the best
   recall per query-time at this size; its memory is the vectors plus ~2 M links of 4 bytes.
3. otherwise, while the full vectors fit the budget (any N >= 100,000; below that only when
   the HNSW graph does not fit): ``ivf``, IVF-Flat with nlist = 4 sqrt(N) rounded to a power
   of two (autofaiss: 30-256 training vectors per list; here 64 per list, capped at N). No
   size threshold: autofaiss switches to IVF-PQ at 1M, but 1M x 256 float32 is 1 GB, well
   within the default 4 GiB, and IVF-Flat reaches any recall target there by nprobe alone
   (recall@10 0.98 at nprobe 4 of 4,096 on ``benchmarks/bench_scale.py``'s clustered data).
4. otherwise (the full vectors do not fit the budget): ``ivfpq``, nlist as above, with the
   largest code (m bytes per vector, m dividing D, m <= D / 4) that fits the budget. Its
   recall is capped by the codes (~0.76 recall@10 with PQ64x8 at 1M x 256 in
   ``benchmarks/README.md``), so the recall target may be out of reach
   (:func:`mmkit.index.tune` then says ``reached=False``). The cap on m keeps sub-vectors
   of at least 4 components: faiss trains 2-component sub-quantizers about 20x slower than
   4-component ones (measured on a busy 2-core machine, one thread, 32k training vectors at
   256-d: PQ128x8 182 s, PQ64x8 8 s) for codes only twice as large.

Why not IVF-PQ + refine (faiss ``IndexRefineFlat``: the k_factor x k best PQ hits re-ranked
with the exact vectors; ``build_index("ivfpq", refine=4)``)? It keeps the full vectors beside
the codes, m + 8 + 4 D bytes per vector, more than IVF-Flat's 4 D + 8, so it fits only where
IVF-Flat fits: no budget makes it the only way to keep full recall. Where both fit, IVF-Flat
measured the better pick (1M x 256, IVF4096, one thread, timed in turns on a shared 2-core
machine; ``benchmarks/README.md``, "Search at scale"): both need nprobe 4 for recall@10 0.95
(+0.01 margin), refine served 0.67x-1.04x IVF-Flat's queries/s (each query is compared with
all 4,096 centroids first, four times the ~1,000 vectors IVF-Flat then scans, so scanning
64-byte codes instead saves little), took 1.5x-2.9x as long to build in three of four runs
(PQ training and encoding on top of the same k-means), needs 6% more memory and caps recall
below 1 (only 4 k candidates are re-ranked). So the rule never picks it.

Memory per vector (bytes, faiss's layouts; ids are 8 bytes in IVF lists): exact / flat 4 D;
hnsw 4 D + 8 M (level-0 links 2 M x 4 bytes; upper levels add ~1/M of that); ivf 4 D + 8;
ivfpq m + 8; ivfpq + refine m + 8 + 4 D (IndexRefineFlat keeps a flat copy of the vectors
beside the IVF-PQ codes). IVF kinds add the centroids, 4 D nlist bytes in all (4 MB at
IVF4096 x 256), not counted here. At D = 256: exact 1024, hnsw 1288, ivf 1032, ivfpq
(PQ64x8) 72, ivfpq + refine 1096.
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


def bytes_per_vector(kind: str, dim: int, *, M: int = HNSW_M, m: int | None = None,
                     refine: int | bool = 0) -> float:
    """Index memory per stored vector in bytes for ``kind`` (see the module docstring).

    ``refine``: for "ivfpq", whether the exact vectors are kept for re-ranking (any k_factor
    > 0 adds 4 ``dim`` bytes).
    """
    if kind in ("exact", "flat"):
        return 4.0 * dim
    if kind == "hnsw":
        return 4.0 * dim + 8.0 * M * (1 + 1 / M)
    if kind == "ivf":
        return 4.0 * dim + 8
    if kind == "ivfpq":
        return float((m if m is not None else dim // 8) + 8 + (4 * dim if refine else 0))
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


def pq_code_bytes(dim: int, budget: float) -> int | None:
    """The largest PQ code m (bytes) with m dividing ``dim``, m <= dim / 4 and m <= ``budget``
    (bytes per vector left for the code); None if not even m = 1 fits."""
    fitting = [m for m in range(1, max(1, dim // 4) + 1) if dim % m == 0 and m <= budget]
    return max(fitting) if fitting else None


def choose_index(n: int, dim: int, memory: int = DEFAULT_MEMORY) -> IndexChoice:
    """The index kind and parameters for ``n`` vectors of length ``dim`` within ``memory``
    bytes (see the module docstring for the rule)."""
    if n < 1 or dim < 1:
        raise InputError(f"choose_index needs n >= 1 and dim >= 1, got n={n}, dim={dim}")
    considered = []

    def fits(label: str, kind: str, **kw) -> bool:
        total = n * bytes_per_vector(kind, dim, **kw)
        ok = total <= memory
        considered.append(f"{label}: {total / 1e6:.1f} MB {'fits' if ok else 'exceeds'} "
                          f"the {memory / 1e6:.0f} MB budget")
        return ok

    def choice(kind: str, params: dict, reason: str, **kw) -> IndexChoice:
        bpv = bytes_per_vector(kind, dim, **kw)
        return IndexChoice(kind, params, reason, bpv, int(n * bpv), considered)

    if n < EXACT_BELOW and fits("exact", "exact"):
        return choice("exact", {}, f"N = {n:,} < {EXACT_BELOW:,}: brute force is fast and exact")
    if n < HNSW_BELOW and fits("hnsw", "hnsw", M=HNSW_M):
        return choice("hnsw", {"M": HNSW_M, "ef_construction": 40},
                      f"N = {n:,} < {HNSW_BELOW:,} and the HNSW graph fits the budget",
                      M=HNSW_M)
    nlist = ivf_lists(n)
    train = min(n, TRAIN_PER_LIST * nlist)
    pq_train = min(n, max(train, 40 * 256))

    if fits(f"IVF{nlist},Flat", "ivf"):
        return choice("ivf", {"nlist": nlist, "train_size": train},
                      f"N = {n:,}: the full vectors fit the budget ({4 * dim + 8} bytes each): "
                      f"IVF{nlist},Flat, whose recall nprobe alone tunes")
    m = pq_code_bytes(dim, memory / n - 8)
    if m is None:
        raise InputError(f"no index fits: {n:,} vectors need at least {9 * n / 1e6:.0f} MB "
                         f"(IVF-PQ with 1-byte codes); raise --memory")
    fits(f"IVF{nlist},PQ{m}x8", "ivfpq", m=m)
    return choice("ivfpq", {"nlist": nlist, "m": m, "nbits": 8, "train_size": pq_train},
                  f"N = {n:,}: the full vectors do not fit the budget ({4 * dim + 8} bytes "
                  f"each): IVF{nlist},PQ{m}x8, the largest code (m = {m} bytes) within it; "
                  f"the codes cap recall, so the target may be out of reach", m=m)
