"""mmkit.index: exact search against a numpy reference, the common API, errors, saving."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from mmkit.errors import MMKitError
from mmkit.index import (ExactIndex, SearchIndexError, build_index, chunked_topk,
                         clustered_vectors, load_index)


def reference(db: np.ndarray, queries: np.ndarray, k: int, metric: str,
              ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Naive float64 search: full score matrix, then a stable sort (score, then id)."""
    db, queries = db.astype(np.float64), queries.astype(np.float64)
    ids = np.arange(len(db)) if ids is None else ids
    if metric == "cosine":
        db = db / np.linalg.norm(db, axis=1, keepdims=True)
        queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    if metric == "l2":
        key = ((queries[:, None, :] - db[None, :, :]) ** 2).sum(-1)   # ascending
    else:
        key = -(queries @ db.T)                                      # descending score
    order = np.stack([np.lexsort((ids, row))[:k] for row in key])
    scores = np.take_along_axis(key, order, 1)
    return (scores if metric == "l2" else -scores), ids[order]


def small_ints(shape, seed, low=-2, high=3) -> np.ndarray:
    """Small integer vectors: exact dot products in float32 and many exact ties."""
    return np.random.default_rng(seed).integers(low, high, size=shape).astype(np.float32)


# ----------------------------------------------------------------------------- exact search

@pytest.fixture(autouse=True, params=["fused", "torch"])
def exact_path(request, monkeypatch):
    """Run every test on both CPU paths of chunked_topk: the fused numba scan, and the
    all-torch path that other devices use."""
    from mmkit.index import _scan

    if request.param == "torch":
        monkeypatch.setattr(_scan, "available", lambda: False)
    elif not _scan.available():
        pytest.skip("numba not installed")
    return request.param


@pytest.mark.parametrize("metric", ["ip", "cosine", "l2"])
@pytest.mark.parametrize("chunk_size", [2, 13, 64, 320, 599, 600, 4096])
def test_exact_matches_reference_with_ties_and_chunk_boundaries(metric, chunk_size):
    db, queries = small_ints((600, 6), 0), small_ints((37, 6), 1)
    if metric == "cosine":  # no zero rows for cosine
        db[np.abs(db).sum(1) == 0, 0] = 1
        queries[np.abs(queries).sum(1) == 0, 0] = 1
    index = build_index("exact", dim=6, metric=metric, chunk_size=chunk_size, query_batch=16)
    index.add(db)
    for k in (1, 10, 33):
        scores, ids = index.search(queries, k)
        ref_scores, ref_ids = reference(db, queries, k, metric)
        np.testing.assert_allclose(scores.numpy(), ref_scores, rtol=1e-5, atol=1e-5)
        if metric != "cosine":  # unit vectors in float32 break some float64 ties: scores only
            np.testing.assert_array_equal(ids.numpy(), ref_ids)


def test_ties_break_by_external_id_ascending():
    db = np.repeat(small_ints((50, 4), 2), 8, axis=0)          # every vector 8 times
    ids = np.random.default_rng(3).permutation(10_000)[:400] * 7 + 5
    queries = small_ints((20, 4), 4)
    for chunk_size in (3, 64, 400):
        index = build_index("exact", dim=4, chunk_size=chunk_size)
        index.add(db[:150], ids=ids[:150])
        index.add(torch.from_numpy(db[150:]), ids=torch.from_numpy(ids[150:]))
        got = index.search(queries, 30)
        ref_scores, ref_ids = reference(db, queries, 30, "ip", ids)
        np.testing.assert_array_equal(got.ids.numpy(), ref_ids)
        np.testing.assert_allclose(got.scores.numpy(), ref_scores, rtol=1e-6)


@pytest.mark.slow
def test_exact_on_float_data_and_large_k():
    x = clustered_vectors(5050, 32, n_clusters=20, seed=5).numpy()
    db, queries = x[:5000], x[5000:]
    index = build_index("exact", dim=32, chunk_size=640)   # 20 groups of 32 columns
    index.add(db)
    for k in (5, 19, 20, 21, 500, 5000):
        ref_scores, ref_ids = reference(db, queries, k, "ip")
        scores, ids = index.search(queries, k)
        np.testing.assert_allclose(scores.numpy(), ref_scores, atol=1e-5)
        assert (ids.numpy() == ref_ids).mean() > 0.999   # float32 vs float64 near-ties


def test_chunked_topk_bounds_the_score_block(monkeypatch):
    db, queries = torch.randn(3000, 16), torch.randn(50, 16)
    shapes = []
    real_mm = torch.mm

    def spy(a, b, *, out=None):
        shapes.append(tuple(out.shape))
        return real_mm(a, b, out=out)

    monkeypatch.setattr(torch, "mm", spy)
    scores, pos = chunked_topk(queries, db, 10, chunk_size=256, query_batch=20)
    monkeypatch.undo()
    assert max(r * c for r, c in shapes) <= 20 * 256
    ref = torch.topk(queries @ db.T, 10)
    torch.testing.assert_close(scores, ref.values)


def test_l2_returns_squared_distances_ascending():
    x = clustered_vectors(2020, 8, n_clusters=10, normalize=False, seed=6).numpy() * 3
    index = build_index("exact", dim=8, metric="l2")
    index.add(x[:2000])
    scores, ids = index.search(x[2000:], 15)
    assert (scores[:, 1:] >= scores[:, :-1]).all()
    true = ((x[2000:, None, :] - x[:2000][ids.numpy()]) ** 2).sum(-1)
    np.testing.assert_allclose(scores.numpy(), true, rtol=1e-4, atol=1e-4)
    assert (scores >= 0).all()
    index.add(x[2000:])                           # a query that is in the index: distance 0
    scores, ids = index.search(x[2000:2001], 1)
    assert ids.item() == 2000 and scores.item() == pytest.approx(0, abs=1e-5)


def test_cosine_normalises_vectors_and_queries():
    x = clustered_vectors(520, 16, n_clusters=5, seed=7).numpy()
    scale = np.random.default_rng(0).uniform(0.1, 50, size=(520, 1)).astype(np.float32)
    plain = build_index("exact", dim=16, metric="cosine")
    plain.add(x[:500])
    scaled = build_index("exact", dim=16, metric="cosine")
    scaled.add(x[:500] * scale[:500])
    a = plain.search(x[500:], 10)
    b = scaled.search(x[500:] * scale[500:], 10)
    torch.testing.assert_close(a.scores, b.scores)
    assert torch.equal(a.ids, b.ids)
    assert float(a.scores.max()) <= 1 + 1e-6
    torch.testing.assert_close(plain.vectors.norm(dim=1), torch.ones(500))


def test_search_is_deterministic_and_independent_of_batching():
    x = clustered_vectors(3100, 24, n_clusters=30, seed=8)
    one = build_index("exact", dim=24)
    one.add(x[:3000])
    many = build_index("exact", dim=24, chunk_size=96, query_batch=7)
    for start in range(0, 3000, 512):
        many.add(x[start:min(start + 512, 3000)])
    r1, r2, r3 = one.search(x[3000:], 10), one.search(x[3000:], 10), many.search(x[3000:], 10)
    assert torch.equal(r1.ids, r2.ids) and torch.equal(r1.scores, r2.scores)
    assert torch.equal(r1.ids, r3.ids)
    torch.testing.assert_close(r1.scores, r3.scores)


def test_inputs_outputs_and_ids():
    x = np.random.default_rng(1).standard_normal((40, 5))        # float64 numpy
    index = build_index("exact", dim=5)
    index.add(x[:20])
    index.add(torch.from_numpy(x[20:30]).half(), ids=list(range(100, 110)))
    index.add(x[30:])                                             # continues after 109
    assert len(index) == 40 and index.dim == 5 and index.metric == "ip"
    assert index.ids.tolist() == list(range(20)) + list(range(100, 120))
    res = index.search(x[:3], 4)
    assert res.scores.dtype == torch.float32 and res.ids.dtype == torch.int64
    assert res.scores.shape == res.ids.shape == (3, 4)
    ref_scores, ref_ids = reference(index.vectors.numpy(), x[:3].astype(np.float32), 4, "ip",
                                    index.ids.numpy())
    assert res.ids.tolist() == ref_ids.tolist()
    assert index.search(np.empty((0, 5)), 3).ids.shape == (0, 3)
    assert "ExactIndex" in repr(index)


def test_progress_bar_is_switchable(capsys):
    index = build_index("exact", dim=4)
    index.add(np.ones((10, 4)), progress=False)
    index.add(np.ones((10, 4)))                      # small: no bar by default
    assert capsys.readouterr().err == ""
    index.add(np.ones((10, 4)), progress=True)
    assert "adding" in capsys.readouterr().err


def test_device_argument_keeps_vectors_there():
    index = ExactIndex(4, device="cpu")
    index.add(np.eye(4))
    assert index.vectors.device.type == "cpu"
    if torch.cuda.is_available():
        gpu = ExactIndex(4, device="cuda")
        gpu.add(np.eye(4))
        assert gpu.search(np.eye(4), 1).ids.device.type == "cpu"


@pytest.mark.subprocess
def test_index_package_imports_no_model_code():
    code = ("import sys, mmkit.index; bad = [m for m in sys.modules if m.split('.')[0] in "
            "('transformers', 'torchvision') or "
            "m.startswith(('mmkit.features', 'mmkit.encoders'))]; print(bad); sys.exit(bool(bad))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


# ----------------------------------------------------------------------------- errors

def one_line_error(call, *words):
    with pytest.raises(SearchIndexError) as info:
        call()
    message = str(info.value)
    assert isinstance(info.value, MMKitError) and isinstance(info.value, ValueError)
    assert "\n" not in message, message
    for word in words:
        assert word in message, message
    return message


@pytest.fixture
def filled():
    index = build_index("exact", dim=3)
    index.add(np.arange(15, dtype=np.float32).reshape(5, 3))
    return index


def test_usage_errors(filled):
    one_line_error(lambda: filled.add(np.ones((2, 4))), "dimension mismatch", "dim=3")
    one_line_error(lambda: filled.search(np.ones((2, 4)), 1), "dimension mismatch")
    one_line_error(lambda: filled.search(np.ones(3), 1), "2-D")
    one_line_error(lambda: filled.search(np.ones((1, 3)), 6), "k=6", "5 vectors")
    one_line_error(lambda: filled.search(np.ones((1, 3)), 0), "k must be")
    one_line_error(lambda: filled.search(np.ones((1, 3)), 2.0), "k must be")
    one_line_error(lambda: filled.search(np.array([[1, np.nan, 0]]), 1), "NaN", "row 0")
    bad = np.ones((4, 3))
    bad[2, 1] = np.inf
    one_line_error(lambda: filled.add(bad), "NaN or infinite", "row 2")
    assert len(filled) == 5                                   # nothing of a bad add is stored
    one_line_error(lambda: filled.add(np.ones((2, 3)), ids=[3, 3]), "duplicates")
    one_line_error(lambda: filled.add(np.ones((2, 3)), ids=[1, 99]), "id 1 is already")
    one_line_error(lambda: filled.add(np.ones((2, 3)), ids=[-1, 99]), ">= 0")
    one_line_error(lambda: filled.add(np.ones((2, 3)), ids=[7]), "shape [2]")
    one_line_error(lambda: filled.add(np.ones((2, 3)), ids=[0.5, 7]), "integers")
    one_line_error(lambda: filled.add("abc"), "numeric")
    one_line_error(lambda: build_index("exact", dim=3).search(np.ones((1, 3)), 1), "empty")
    one_line_error(lambda: build_index("annoy", dim=3), "unknown index kind")
    one_line_error(lambda: build_index("exact", dim=3, metric="dot"), "unknown metric")
    one_line_error(lambda: build_index("exact", dim=0), "dim")
    one_line_error(lambda: build_index("exact"), "dim=")
    one_line_error(lambda: build_index("exact", dim=3, chunk_size=0), "chunk_size")
    cos = build_index("exact", dim=3, metric="cosine")
    one_line_error(lambda: cos.add(np.array([[1.0, 0, 0], [0, 0, 0]])), "row 1", "zeros")
    assert len(cos) == 0


@pytest.mark.parametrize("kind", ["exact", "flat"])
@pytest.mark.parametrize("metric", ["ip", "cosine", "l2"])
def test_vectors_whose_scores_would_overflow_are_refused(kind, metric):
    """Before: a stored vector came back as id -1 with score -inf although k <= n, because
    its inner product overflowed float32. Now such lengths are refused, with the row."""
    index = build_index(kind, dim=2, metric=metric)
    big = np.array([[1.0, 1.0], [3e19, -3e19], [-1.0, 2.0]], dtype=np.float32)
    one_line_error(lambda: index.add(big), "row 1", "overflow")
    assert len(index) == 0
    index.add(big[[0, 2]])
    one_line_error(lambda: index.search(big[1:2], 2), "queries row 0", "overflow")
    # the largest accepted lengths still give finite scores and every id
    from mmkit.index.base import MAX_NORM

    edge = np.array([[MAX_NORM * 0.99, 0.0], [0.0, -MAX_NORM * 0.99], [-MAX_NORM * 0.99, 0.0]],
                    dtype=np.float32)
    full = build_index(kind, dim=2, metric=metric)
    full.add(edge)
    scores, ids = full.search(edge, 3)
    assert torch.isfinite(scores).all() and sorted(ids[0].tolist()) == [0, 1, 2]
    ref_scores, ref_ids = reference(edge, edge, 3, metric)
    assert np.allclose(scores.numpy(), ref_scores, rtol=1e-5)
    if kind == "exact":  # faiss breaks the exact ties (0 = 0) its own way
        assert np.array_equal(ids.numpy(), ref_ids)


def test_numpy_integers_are_accepted_wherever_an_int_is():
    index = build_index("exact", dim=np.int64(3), chunk_size=np.int32(2),
                        query_batch=np.int64(1))
    index.add(small_ints((7, 3), 0))
    scores, ids = index.search(small_ints((2, 3), 1), np.int64(3))
    ref_scores, ref_ids = reference(small_ints((7, 3), 0), small_ints((2, 3), 1), 3, "ip")
    assert np.array_equal(ids.numpy(), ref_ids)
    for bad in (True, 2.0, "2"):
        one_line_error(lambda: build_index("exact", dim=3, chunk_size=bad), "chunk_size")


def test_file_errors(tmp_path, filled):
    one_line_error(lambda: load_index(tmp_path / "missing.idx"), "not found", "missing.idx")
    one_line_error(lambda: load_index(tmp_path), "not found")
    (tmp_path / "junk.idx").write_bytes(b"\x00garbage" * 100)
    one_line_error(lambda: load_index(tmp_path / "junk.idx"), "junk.idx", "corrupt")
    (tmp_path / "empty.idx").write_bytes(b"")
    one_line_error(lambda: load_index(tmp_path / "empty.idx"), "empty.idx")
    torch.save({"weights": torch.ones(3)}, tmp_path / "model.pt")
    one_line_error(lambda: load_index(tmp_path / "model.pt"), "model.pt", "not an mmkit index")
    np.save(tmp_path / "array.npy", np.ones(3))
    one_line_error(lambda: load_index(tmp_path / "array.npy"), "array.npy")

    filled.save(tmp_path / "good.idx")
    data = (tmp_path / "good.idx").read_bytes()
    (tmp_path / "cut.idx").write_bytes(data[: len(data) // 2])
    one_line_error(lambda: load_index(tmp_path / "cut.idx"), "cut.idx", "corrupt")

    state = torch.load(tmp_path / "good.idx", weights_only=True)
    torch.save({**state, "version": 99}, tmp_path / "future.idx")
    one_line_error(lambda: load_index(tmp_path / "future.idx"), "future.idx", "version 99")
    torch.save({**state, "kind": "magic"}, tmp_path / "kind.idx")
    one_line_error(lambda: load_index(tmp_path / "kind.idx"), "kind.idx", "corrupt")
    torch.save({**state, "vectors": state["vectors"][:2]}, tmp_path / "short.idx")
    one_line_error(lambda: load_index(tmp_path / "short.idx"), "short.idx", "bad vectors")
    one_line_error(lambda: load_index(tmp_path / "good.idx", nprobe=3), "unknown load option")


# ----------------------------------------------------------------------------- saving

def test_exact_save_load_round_trip(tmp_path):
    x = clustered_vectors(1010, 12, n_clusters=8, seed=9)
    for metric in ("ip", "cosine", "l2"):
        index = build_index("exact", dim=12, metric=metric, chunk_size=128)
        index.add(x[:1000], ids=np.arange(1000) * 3)
        index.save(tmp_path / f"{metric}.idx")
        loaded = load_index(tmp_path / f"{metric}.idx")
        assert isinstance(loaded, ExactIndex) and loaded.chunk_size == 128
        assert (len(loaded), loaded.dim, loaded.metric) == (1000, 12, metric)
        a, b = index.search(x[1000:], 7), loaded.search(x[1000:], 7)
        assert torch.equal(a.ids, b.ids) and torch.equal(a.scores, b.scores)
        assert torch.equal(loaded.ids, index.ids)
        loaded.add(x[1000:])                                   # still usable, ids continue
        assert loaded.ids[-1].item() == 3 * 999 + 10


def test_failed_save_leaves_no_file(tmp_path, filled, monkeypatch):
    target = tmp_path / "index.idx"

    def broken_save(obj, f, *args, **kwargs):
        with open(f, "wb") as fh:
            fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        filled.save(target)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()

    filled.save(target)                                      # an old file survives a failure
    before = target.read_bytes()
    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        filled.save(target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["index.idx"]
