"""mmkit.index faiss kinds: recall against exact search, saving, training, tuning."""
from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch

from mmkit.index import (FaissIndex, SearchIndexError, TuneResult, build_index,
                         clustered_vectors, exact_neighbours, load_index, neighbour_recall, tune)

DIM = 32
# small, fast settings (PQ: 8 sub-quantizers of 4 dims, 64 centroids each)
KINDS = {
    "flat": {},
    "ivf": {"nlist": 32, "nprobe": 4},
    "hnsw": {"M": 16, "ef_search": 32},
    "ivfpq": {"nlist": 32, "nprobe": 4, "m": 8, "nbits": 6},
    "ivfpq+refine": {"nlist": 32, "nprobe": 4, "m": 8, "nbits": 6, "refine": 8},
}
MIN_RECALL = {"flat": 0.999, "ivf": 0.9, "hnsw": 0.9, "ivfpq": 0.4, "ivfpq+refine": 0.9}


@pytest.fixture(scope="module")
def data():
    x = clustered_vectors(8400, DIM, n_clusters=40, spread=1.0, noise=0.1, seed=11)
    return x[:8000], x[8000:8200], x[8200:]          # database, queries, tuning queries


def make(kind: str, data, metric: str = "ip") -> FaissIndex:
    index = build_index(kind.split("+")[0], dim=DIM, metric=metric, **KINDS[kind])
    index.add(data[0], ids=np.arange(8000) * 2 + 1)
    return index


@pytest.fixture(scope="module")
def indexes(data):
    return {kind: make(kind, data) for kind in KINDS}


@pytest.fixture(scope="module")
def exact_ids(data):
    exact = build_index("exact", dim=DIM)
    exact.add(data[0], ids=np.arange(8000) * 2 + 1)
    return exact.search(data[1], 10).ids


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(KINDS))
def test_recall_against_exact_on_clustered_data(kind, indexes, data, exact_ids):
    scores, ids = indexes[kind].search(data[1], 10)
    assert scores.dtype == torch.float32 and ids.dtype == torch.int64
    assert (scores[:, :-1] >= scores[:, 1:]).all()                 # best first
    assert neighbour_recall(ids, exact_ids) >= MIN_RECALL[kind]


@pytest.mark.parametrize("metric", ["cosine", "l2"])
@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_metrics_agree_with_exact(kind, metric, data):
    x = data[0] * torch.linspace(0.5, 2.0, 8000)[:, None]          # unequal norms
    exact = build_index("exact", dim=DIM, metric=metric)
    exact.add(x)
    approx = build_index(kind, dim=DIM, metric=metric, **KINDS[kind])
    approx.add(x)
    a, b = exact.search(data[1], 10), approx.search(data[1], 10)
    assert neighbour_recall(b.ids, a.ids) >= MIN_RECALL[kind]
    if metric == "l2":
        assert (b.scores[:, 1:] >= b.scores[:, :-1]).all()        # ascending distances
    if kind == "flat":
        torch.testing.assert_close(a.scores, b.scores, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("kind", list(KINDS))
def test_save_load_round_trip_gives_identical_results(kind, indexes, data, tmp_path):
    index = indexes[kind]
    index.save(tmp_path / "index.mmidx")
    loaded = load_index(tmp_path / "index.mmidx")
    assert isinstance(loaded, FaissIndex)
    assert (loaded.kind, loaded.dim, loaded.metric, len(loaded)) == (index.kind, DIM, "ip", 8000)
    assert loaded.search_params == index.search_params and loaded.params == index.params
    a, b = index.search(data[1], 10), loaded.search(data[1], 10)
    assert torch.equal(a.ids, b.ids) and torch.equal(a.scores, b.scores)
    assert torch.equal(loaded.ids, index.ids)


def test_corrupt_faiss_payload_is_caught(indexes, tmp_path):
    indexes["ivf"].save(tmp_path / "ivf.mmidx")
    state = torch.load(tmp_path / "ivf.mmidx", weights_only=True)
    flipped = state["faiss"].clone()
    flipped[len(flipped) // 2] ^= 0xFF
    torch.save({**state, "faiss": flipped}, tmp_path / "flipped.mmidx")
    with pytest.raises(SearchIndexError, match="flipped.mmidx.*checksum"):
        load_index(tmp_path / "flipped.mmidx")
    garbage = torch.randint(0, 256, (500,), dtype=torch.uint8)
    torch.save({**state, "faiss": garbage, "crc32": zlib.crc32(garbage.numpy())},
               tmp_path / "garbage.mmidx")
    with pytest.raises(SearchIndexError, match="garbage.mmidx.*corrupt"):
        load_index(tmp_path / "garbage.mmidx")
    torch.save({**state, "dim": DIM + 1}, tmp_path / "dim.mmidx")
    with pytest.raises(SearchIndexError, match="does not match"):
        load_index(tmp_path / "dim.mmidx")


def test_ivf_training_rules(data):
    index = build_index("ivf", dim=DIM, nlist=64)
    assert not index.is_trained
    with pytest.raises(SearchIndexError, match="not trained.*64"):
        index.add(data[0][:10])
    assert len(index) == 0
    with pytest.raises(SearchIndexError, match="at least 64"):
        index.train(data[0][:10])
    index.train(data[0][:3000])
    assert index.is_trained
    index.add(data[0][:10])                              # small adds are fine once trained
    with pytest.raises(SearchIndexError, match="already holds"):
        index.train(data[0])
    auto = build_index("ivf", dim=DIM)                   # nlist from the first add
    auto.add(data[0])
    assert auto.is_trained and auto.params["nlist"] == min(int(4 * 8000 ** 0.5), 8000 // 39)


def test_faiss_usage_errors(indexes, data):
    ivf = indexes["ivf"]
    with pytest.raises(SearchIndexError, match="dimension mismatch"):
        ivf.search(np.ones((2, DIM + 1)), 3)
    with pytest.raises(SearchIndexError, match="k=8001"):
        ivf.search(data[1], 8001)
    with pytest.raises(SearchIndexError, match="NaN"):
        ivf.search(np.full((1, DIM), np.nan), 3)
    with pytest.raises(SearchIndexError, match="empty"):
        build_index("hnsw", dim=DIM).search(data[1], 3)
    with pytest.raises(SearchIndexError, match="unknown parameter.*nlist"):
        build_index("hnsw", dim=DIM, nlist=4)
    with pytest.raises(SearchIndexError, match="m=7 must divide"):
        build_index("ivfpq", dim=DIM, m=7)
    with pytest.raises(SearchIndexError, match=r"nprobe must be an integer in \[1, 32\]"):
        ivf.set_search_params(nprobe=33)
    with pytest.raises(SearchIndexError, match="no search parameter"):
        ivf.set_search_params(ef_search=3)
    with pytest.raises(SearchIndexError, match="no search parameters"):
        build_index("exact", dim=DIM).set_search_params(nprobe=3)


def test_missing_hits_are_marked(data):
    for metric, fill in (("ip", -np.inf), ("l2", np.inf)):
        index = build_index("ivf", dim=DIM, metric=metric, nlist=64, nprobe=1)
        index.add(data[0])
        scores, ids = index.search(data[1], 1000)           # one list holds < 1000 vectors
        missing = ids == -1
        assert missing.any() and (scores[missing] == fill).all()
        assert (ids[~missing] >= 0).all()


def test_tune_reaches_the_target_with_the_smallest_value(data, exact_ids):
    for kind in ("ivf", "hnsw"):
        index = make(kind, data)
        result = tune(index, data[2], target_recall=0.95, k=10)
        assert isinstance(result, TuneResult) and result.reached
        assert result.param == index.search_knob
        assert index.search_params[result.param] == result.value
        assert result.recall >= 0.95
        tried = dict(result.curve)
        lowest = 10 if kind == "hnsw" else 1                     # ef_search starts at k
        assert result.value == lowest or tried[result.value - 1] < 0.95   # the smallest
        assert neighbour_recall(index.search(data[1], 10).ids, exact_ids) >= 0.9   # held-out queries


def test_tune_inputs(indexes, data, exact_ids):
    pq = indexes["ivfpq"]
    with pytest.raises(SearchIndexError, match="database="):
        tune(pq, data[2])
    result = tune(pq, data[2], target_recall=0.999, database=data[0])
    assert not result.reached and result.curve[-1][0] == 32          # tried up to all lists
    best = max(r for _, r in result.curve)                          # kept: cheapest best
    assert result.recall == best and result.value == min(v for v, r in result.curve if r == best)
    truth = exact_neighbours(indexes["flat"], data[1], 10)
    assert torch.equal(truth, exact_ids)
    given = tune(make("ivf", data), data[1], 0.9, ground_truth_ids=exact_ids)
    assert given.reached and given.recall >= 0.9
    flat = tune(indexes["flat"], data[1], ground_truth_ids=exact_ids)
    assert flat.param is None and flat.recall == pytest.approx(1.0)
    strict = tune(make("ivf", data), data[1], 0.9, margin=0.05, ground_truth_ids=exact_ids)
    assert strict.recall >= 0.95 and strict.value >= given.value
    with pytest.raises(SearchIndexError, match="target_recall"):
        tune(indexes["ivf"], data[2], target_recall=1.5)
    with pytest.raises(SearchIndexError, match="margin"):
        tune(indexes["ivf"], data[2], margin=-0.1)
    with pytest.raises(SearchIndexError, match="ground_truth_ids must be"):
        tune(indexes["ivf"], data[2], ground_truth_ids=exact_ids[:5])


def test_works_after_faiss_torch_utils_patches_faiss(data):
    """pytorch-metric-learning imports faiss.contrib.torch_utils, which patches faiss
    globally (reconstruct_n then returns torch tensors): the backend must not care."""
    import faiss.contrib.torch_utils  # noqa: F401 - the patch is the point

    index = build_index("flat", dim=data[0].shape[1])
    index.add(data[0])
    truth = exact_neighbours(index, data[1], 10)
    scores, ids = index.search(data[1], 10)
    assert torch.equal(ids, truth) and scores.dtype == torch.float32
    assert index.stored_vectors().shape == tuple(data[0].shape)
