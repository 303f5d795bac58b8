"""``--kind auto``'s rule (:func:`mmkit.scale.auto.choose_index`): its boundaries in N and in
the memory budget, its memory formulas against faiss's layouts, and small real builds through
the build pipeline's own steps that reach the recall target wherever the rule promises it."""
from __future__ import annotations

import numpy as np
import pytest

from mmkit.errors import InputError
from mmkit.index import build_index, clustered_vectors, neighbour_recall
from mmkit.index.exact import ExactIndex
from mmkit.index.tune import tune_leave_one_out
from mmkit.scale.auto import (DEFAULT_MEMORY, bytes_per_vector, choose_index, ivf_lists,
                              parse_memory, pq_code_bytes)
from mmkit.scale.shards import build_shard, train_quantizer

D = 256
FLAT = 4 * D + 8            # IVF-Flat bytes per vector at 256-d: 1032
PQ64 = 64 + 8               # IVF-PQ64x8: 72
REFINE = 64 + 8 + 4 * D     # IVF-PQ64x8 + RFlat: 1096


def refined(choice) -> bool:
    return bool(choice.params.get("refine"))


# ------------------------------------------------------------------ the rule in N

@pytest.mark.parametrize("n, kind", [(1, "exact"), (9_999, "exact"), (10_000, "hnsw"),
                                     (99_999, "hnsw"), (100_000, "ivf"), (1_000_000, "ivf")])
def test_default_budget_size_boundaries(n, kind):
    c = choose_index(n, D)
    assert c.kind == kind and not refined(c)
    assert c.total_bytes == int(n * c.bytes_per_vector) <= DEFAULT_MEMORY


def test_1m_x_256_is_ivf_flat_within_the_default_budget():
    c = choose_index(1_000_000, D)
    assert (c.kind, c.params) == ("ivf", {"nlist": 4096, "train_size": 4096 * 64})
    assert c.bytes_per_vector == FLAT and c.total_bytes == 1_032_000_000
    assert "full vectors fit" in c.reason and "IVF4096,Flat" in c.reason
    assert "\n" not in c.reason


def test_ivf_flat_has_no_size_threshold_only_the_budget():
    largest = DEFAULT_MEMORY // FLAT                     # 4,161,821 vectors of 256-d
    c = choose_index(largest, D)
    assert c.kind == "ivf" and c.params["nlist"] == ivf_lists(largest) == 8192
    over = choose_index(largest + 1, D)
    assert over.kind == "ivfpq" and over.params["m"] == 64 and not refined(over)
    assert "do not fit" in over.reason and "cap recall" in over.reason


# ------------------------------------------------------------------ the rule in the budget

@pytest.mark.parametrize("memory, kind, m", [
    (1_000_000 * REFINE, "ivf", None),          # refine would fit too: IVF-Flat is preferred
    (1_000_000 * FLAT, "ivf", None),            # exactly the vectors + ids
    (1_000_000 * FLAT - 1, "ivfpq", 64),        # one byte short: compressed codes
    (parse_memory("1G"), "ivf", None),          # 1,073,741,824 >= 1,032,000,000
    (parse_memory("512M"), "ivfpq", 64),
    (1_000_000 * (8 + 16), "ivfpq", 16),
    (1_000_000 * (8 + 15), "ivfpq", 8),         # m must divide 256
    (1_000_000 * 9, "ivfpq", 1),
])
def test_budget_boundaries_at_1m(memory, kind, m):
    c = choose_index(1_000_000, D, memory)
    assert c.kind == kind and c.params.get("m") == m and not refined(c)
    assert c.total_bytes <= memory


def test_too_small_a_budget_is_one_line_input_error():
    with pytest.raises(InputError, match="raise --memory") as err:
        choose_index(1_000_000, D, 1_000_000 * 9 - 1)
    assert "\n" not in str(err.value)
    with pytest.raises(InputError):
        choose_index(0, D)


@pytest.mark.parametrize("n, memory, kind", [
    (9_999, 5 * 2 ** 20, "ivfpq"),       # not even exact (10.2 MB) fits: exact -> hnsw -> ivf
    (10_000, 5 * 2 ** 20, "ivfpq"),
    (50_000, 60 * 10 ** 6, "ivf"),       # HNSW (64.4 MB) does not fit, the vectors (51.6 MB) do
    (100_000, 100 * 10 ** 6, "ivfpq"),   # the vectors need 103.2 MB
    (100_000, 104 * 10 ** 6, "ivf"),
])
def test_small_budgets_step_down(n, memory, kind):
    c = choose_index(n, D, memory)
    assert c.kind == kind and c.total_bytes <= memory and not refined(c)


def test_refine_never_fits_where_ivf_flat_does_not():
    """IVF-PQ + refine keeps the codes AND the vectors (m + 8 + 4 D > 4 D + 8): no budget makes
    it the only index that keeps the full vectors, so the rule never needs it."""
    for dim in (32, 64, 256, 768):
        for m in (mm for mm in range(1, dim // 4 + 1) if dim % mm == 0):
            assert bytes_per_vector("ivfpq", dim, m=m, refine=4) > bytes_per_vector("ivf", dim)


def test_rule_sweep_respects_budget_and_order():
    for dim in (64, 256, 768):
        for n in (1_000, 9_999, 10_000, 50_000, 100_000, 500_000, 1_000_000, 10 ** 7, 10 ** 8):
            for memory in (2 ** 20, 10 ** 8, 2 ** 30, DEFAULT_MEMORY, 16 * 2 ** 30):
                try:
                    c = choose_index(n, dim, memory)
                except InputError:
                    assert n * 9 > memory                 # not even 1-byte codes fit
                    continue
                assert c.total_bytes <= memory and not refined(c)
                if c.kind == "ivfpq":                     # compressed only when it must be
                    assert n * bytes_per_vector("ivf", dim) > memory
                    m = c.params["m"]
                    assert dim % m == 0 and m <= max(1, dim // 4)
                    assert m == pq_code_bytes(dim, memory / n - 8)   # the largest that fits
                if c.kind == "ivf" and n >= 100_000:
                    assert c.params["nlist"] == ivf_lists(n)


# ------------------------------------------------------------------ memory per vector

def test_bytes_per_vector_numbers_at_256d():
    assert bytes_per_vector("exact", D) == bytes_per_vector("flat", D) == 1024
    assert bytes_per_vector("hnsw", D) == 1024 + 8 * 32 + 8 == 1288
    assert bytes_per_vector("ivf", D) == FLAT == 1032
    assert bytes_per_vector("ivfpq", D, m=64) == PQ64 == 72
    assert bytes_per_vector("ivfpq", D, m=64, refine=4) == REFINE == 1096
    assert bytes_per_vector("ivfpq", D, m=64, refine=0) == 72
    with pytest.raises(InputError, match="unknown index kind"):
        bytes_per_vector("lsh", D)


def _serialized_per_vector(kind: str, dim: int, x: np.ndarray, **params) -> float:
    """Growth of faiss's serialized index per added vector (codes / vectors, ids, links)."""
    import faiss

    index = build_index(kind, dim=dim, metric="ip", **params)
    index.add(x[:1000], progress=False)                # trains IVF kinds on these rows
    before = faiss.serialize_index(index.faiss_index).size
    index.add(x[1000:], progress=False)
    after = faiss.serialize_index(index.faiss_index).size
    return (after - before) / (len(x) - 1000)


@pytest.mark.parametrize("kind, params, formula, tol", [
    ("flat", {}, {}, 0),
    ("ivf", {"nlist": 8}, {}, 0),
    ("ivfpq", {"nlist": 8, "m": 8, "nbits": 8}, {"m": 8}, 0),
    ("ivfpq", {"nlist": 8, "m": 8, "nbits": 8, "refine": 4}, {"m": 8, "refine": 4}, 0),
    ("hnsw", {"M": 32, "ef_construction": 16}, {"M": 32}, 0.03),  # upper levels: random
])
def test_bytes_per_vector_matches_faiss_layouts(kind, params, formula, tol):
    dim = 32
    x = clustered_vectors(3000, dim, seed=1).numpy()
    measured = _serialized_per_vector(kind, dim, x, **params)
    assert measured == pytest.approx(bytes_per_vector(kind, dim, **formula), rel=tol)


# ------------------------------------------------------------------ real builds, recall

N_SMALL, D_SMALL = 20_000, 64
FORCE = {   # budget -> the kind it forces at 20,000 x 64 (hnsw 10.4 MB, ivf 5.28 MB)
    "hnsw": DEFAULT_MEMORY,
    "ivf": 6 * 10 ** 6,
    "ivfpq": 250_000,            # 12.5 bytes per vector: PQ4x8 codes + ids
}


@pytest.fixture(scope="module")
def small_collection():
    x = clustered_vectors(N_SMALL + 300, D_SMALL, seed=5)
    return x[300:].numpy(), x[:300]


def _build_as_the_pipeline_does(choice, x: np.ndarray):
    """One shard, as ``build_folder_index`` builds it: quantizer trained on a sample, then
    a copy of it filled with the vectors, then nprobe / ef_search tuned leave-one-out."""
    ids = np.arange(len(x), dtype=np.int64)
    quantizer = train_quantizer(x, choice.kind, choice.params, metric="cosine")
    index = build_shard(quantizer, x, ids)
    tuned, _ = tune_leave_one_out(index, x, ids, target_recall=0.95, k=10)
    return index, tuned


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize("kind", sorted(FORCE))
def test_real_build_reaches_the_target_where_promised(kind, small_collection):
    x, queries = small_collection
    choice = choose_index(N_SMALL, D_SMALL, FORCE[kind])
    assert choice.kind == kind and choice.total_bytes <= FORCE[kind]
    index, tuned = _build_as_the_pipeline_does(choice, x)
    exact = ExactIndex(D_SMALL, "cosine")
    exact.add(x, progress=False)
    held_out = neighbour_recall(index.search(queries, 10).ids, exact.search(queries, 10).ids)
    if kind == "ivfpq":             # codes only: the rule promises the budget, not the recall
        assert choice.params["m"] == 4 and tuned.recall < 1.0 and held_out < 1.0
    else:
        assert tuned.reached and tuned.recall >= 0.95
        assert held_out >= 0.93     # 300 other queries: within sampling noise of the target


def test_forcing_budgets_pick_their_kind():
    for kind, memory in FORCE.items():
        assert choose_index(N_SMALL, D_SMALL, memory).kind == kind
    assert choose_index(5_000, D_SMALL).kind == "exact"
