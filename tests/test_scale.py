"""mmkit.scale: folder -> partitions -> sharded index -> search, locally and on Ray.

References are independent of the code under test: brute-force numpy top-k for the
sharded merge, faiss's own code sizes for the memory rule, PIL for the image conversions,
a build killed with SIGKILL for resuming. One local Ray cluster (num_cpus=2, loopback only)
serves the whole module and is shut down at the end.
"""
from __future__ import annotations

import json
import pickle
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

from mmkit.errors import InputError
from mmkit.exercises import nb09
from mmkit.index import ExactIndex, build_index, clustered_vectors
from mmkit.scale import (FolderIndex, ShardedIndex, build_folder_index, choose_index,
                         list_images, load_image, merge_topk, search_folder, shard_bounds)
from mmkit.scale.auto import bytes_per_vector, parse_memory
from mmkit.scale.shards import build_shard, train_quantizer

FIT = {"pretrained": False, "world": {"n": 120, "seed": 3}, "split": "train"}


# ------------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def method(small_world):
    from mmkit.methods import get_method

    m = get_method("baseline", progress=False)
    return m.fit(small_world, np.flatnonzero(small_world.split == "train"))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """An exported world (150 PNGs in images/) plus bad and odd files in a subfolder."""
    from PIL import Image

    from mmkit.data import World
    from mmkit.data.export import export_world

    root = tmp_path_factory.mktemp("scale") / "world"
    export_world(World(n=150, seed=1), root, progress=False)
    odd = root / "images" / "odd"
    odd.mkdir()
    good = (root / "images" / "000000.png").read_bytes()
    (odd / "truncated.png").write_bytes(good[: len(good) // 2])
    (odd / "not_an_image.jpg").write_text("hello")
    (odd / "empty.png").write_bytes(b"")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 90), dtype=np.uint8)).save(odd / "gray.JPEG")
    (odd / "notes.txt").write_text("not an image: ignored")
    return root


@pytest.fixture(scope="module")
def ray_cluster():
    """One local cluster for the module: num_cpus=2, 127.0.0.1, no dashboard, no usage stats;
    shut down at the end."""
    from mmkit.scale.ray_engine import ray_session

    with ray_session(workers=2):
        import ray

        yield ray
    assert not ray.is_initialized()


# ------------------------------------------------------------------ files

def test_list_images_finds_png_and_jpeg_sorted(folder):
    files = list_images(folder / "images")
    assert len(files) == 150 + 4
    assert files == sorted(files)
    assert "odd/gray.JPEG" in files and "odd/notes.txt" not in files


def test_load_image_conversions_match_pil(folder, tmp_path):
    from PIL import Image, ImageOps

    rgb = load_image(folder / "images" / "000003.png", 64)      # 64 x 64: passed through
    assert rgb.flags.writeable and rgb.dtype == np.uint8
    assert np.array_equal(rgb, np.asarray(Image.open(folder / "images" / "000003.png")))
    gray = load_image(folder / "images" / "odd" / "gray.JPEG", 32)
    assert gray.shape == (32, 32, 3) and np.array_equal(gray[..., 0], gray[..., 2])
    ref = ImageOps.fit(Image.open(folder / "images" / "odd" / "gray.JPEG").convert("RGB"),
                       (32, 32), Image.Resampling.BICUBIC)
    assert np.abs(gray.astype(int) - np.asarray(ref).astype(int)).mean() < 8
    rgba = np.zeros((10, 10, 4), np.uint8)
    rgba[..., 1] = 200
    Image.fromarray(rgba).save(tmp_path / "a.png")
    # fully transparent: composited over white (mmkit.data.images), not the hidden colour
    assert np.array_equal(load_image(tmp_path / "a.png", 10)[0, 0], [255, 255, 255])
    for bad in ("truncated.png", "not_an_image.jpg", "empty.png"):
        with pytest.raises(InputError, match=bad):
            load_image(folder / "images" / "odd" / bad, 64)


def test_list_images_refuses_empty_and_non_folders(tmp_path):
    with pytest.raises(InputError, match="no PNG or JPEG"):
        list_images(tmp_path)
    (tmp_path / "f.png").write_bytes(b"x")
    with pytest.raises(InputError, match="not a folder"):
        list_images(tmp_path / "f.png")
    with pytest.raises(InputError, match="no such folder"):
        list_images(tmp_path / "missing")


# ------------------------------------------------------------------ auto rule, memory

def test_choose_index_follows_the_size_rule():
    assert choose_index(5_000, 256).kind == "exact"
    assert choose_index(50_000, 256).kind == "hnsw"
    c = choose_index(500_000, 256)
    assert c.kind == "ivf" and c.params["nlist"] == 2048     # 4 sqrt(5e5) = 2828 -> 2^11
    big = choose_index(20_000_000, 256)
    assert big.kind == "ivfpq" and big.total_bytes <= 4 * 1024 ** 3 and 256 % big.params["m"] == 0
    assert big.params["m"] == 64                # the largest code with >= 4-d sub-vectors fits
    # a small budget pushes a mid-size collection to IVF-PQ
    tight = choose_index(500_000, 256, memory=parse_memory("100M"))
    assert tight.kind == "ivfpq" and tight.total_bytes <= 100 * 1024 ** 2
    with pytest.raises(InputError, match="raise --memory"):
        choose_index(10 ** 9, 256, memory=parse_memory("1G"))
    with pytest.raises(InputError):
        parse_memory("lots")


def test_bytes_per_vector_matches_faiss_code_sizes():
    import faiss

    d = 64
    x = clustered_vectors(3000, d, seed=1).numpy()
    # code sizes are fixed when faiss builds the (untrained) index
    pq = faiss.index_factory(d, "IVF16,PQ8x8", faiss.METRIC_INNER_PRODUCT)
    flat = faiss.index_factory(d, "IVF16,Flat", faiss.METRIC_INNER_PRODUCT)
    ids_bytes = np.dtype(np.int64).itemsize            # faiss stores one idx_t per entry
    assert bytes_per_vector("ivfpq", d, m=8) == pq.code_size + ids_bytes
    assert bytes_per_vector("ivf", d) == flat.code_size + ids_bytes
    assert bytes_per_vector("exact", d) == faiss.IndexFlatIP(d).code_size


# ------------------------------------------------------------------ shards and merge

def _brute_topk(x: np.ndarray, ids: np.ndarray, q: np.ndarray, k: int):
    """numpy reference: cosine scores, sorted by score desc then id asc."""
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    s = (qn @ xn.T).astype(np.float32)
    return np.stack([ids[np.lexsort((ids, -s[r]))[:k]] for r in range(len(q))])


def test_sharded_exact_equals_unsharded_exact_with_ties():
    x = clustered_vectors(900, 32, n_clusters=20, seed=2).numpy()
    x[500:520] = x[100:120]                       # exact duplicates: tied scores
    ids = np.random.default_rng(0).permutation(5000)[:900].astype(np.int64)
    q = np.concatenate([x[100:110], clustered_vectors(40, 32, n_clusters=20, seed=3).numpy()])
    one = ExactIndex(32, "cosine")
    one.add(x, ids=ids)
    single = one.search(q, 15)
    for shards in (2, 3, 7):
        parts = [build_shard(build_index("exact", dim=32, metric="cosine"), x[a:b], ids[a:b])
                 for a, b in shard_bounds(900, shards)]
        merged = ShardedIndex(parts).search(q, 15)
        assert torch.equal(merged.ids, single.ids)
        assert torch.allclose(merged.scores, single.scores)
    assert np.array_equal(single.ids.numpy(), _brute_topk(x, ids, q, 15))


def test_ivf_shards_from_one_quantizer_match_one_ivf_index():
    x = clustered_vectors(3000, 32, n_clusters=30, seed=4).numpy()
    ids = np.arange(3000, dtype=np.int64)
    q = clustered_vectors(50, 32, n_clusters=30, seed=5).numpy()
    quant = train_quantizer(x, "ivf", {"nlist": 16, "nprobe": 4}, metric="cosine")
    whole = build_shard(quant, x, ids).search(q, 10)
    parts = ShardedIndex([build_shard(quant, x[a:b], ids[a:b]) for a, b in shard_bounds(3000, 3)])
    merged = parts.search(q, 10)
    # same centroids, same probed lists: the union of the shards' lists is the whole list
    assert torch.equal(merged.ids, whole.ids)


def test_merge_pads_missing_hits_and_checks_shards():
    s = [torch.tensor([[0.9, 0.1]]), torch.tensor([[0.5, -float("inf")]])]
    i = [torch.tensor([[3, 1]]), torch.tensor([[7, -1]])]
    r = merge_topk(s, i, 4)
    assert r.ids.tolist() == [[3, 7, 1, -1]]
    with pytest.raises(Exception, match="at least one vector"):
        shard_bounds(3, 4)


# ------------------------------------------------------------------ build and search

@pytest.mark.slow
def test_local_build_reports_bad_files_and_searches(folder, method, tmp_path):
    man = build_folder_index(folder / "images", tmp_path / "idx", method=(method, FIT),
                             kind="exact", shards=3, partition_size=40, progress=False,
                             quiet=True)
    assert man["n_files"] == 154 and man["n_indexed"] == 151 and man["n_errors"] == 3
    assert sorted(e["path"] for e in man["errors"]) == ["odd/empty.png", "odd/not_an_image.jpg",
                                                        "odd/truncated.png"]
    assert set(man["spaces"]) == {"text", "image", "audio"}
    one = build_folder_index(folder / "images", tmp_path / "idx1", method=(method, FIT),
                             kind="exact", shards=1, partition_size=40, progress=False,
                             quiet=True)
    a, b = FolderIndex.open(tmp_path / "idx"), FolderIndex.open(tmp_path / "idx1")
    q = method.embed_texts(["a red circle", "a blue square on the left"])
    assert torch.equal(a.search_vectors("text", q, 10).ids, b.search_vectors("text", q, 10).ids)
    # the image query of a stored image finds itself first; the path is the file's
    hit = search_folder(a, image=str(folder / "images" / "000007.png"), k=3,
                        method=(method, FIT))
    assert hit["space"] == "image" and hit["results"][0]["path"].endswith("images/000007.png")
    assert hit["results"][0]["score"] == pytest.approx(1.0, abs=1e-5)
    text = search_folder(a, text="a red circle", k=5, method=(method, FIT))
    assert text["space"] == "text" and len(text["results"]) == 5
    scores = [r["score"] for r in text["results"]]
    assert scores == sorted(scores, reverse=True)
    sound = search_folder(a, audio=str(folder / "audio" / "000007.wav"), k=5,
                          method=(method, FIT))
    assert sound["space"] == "audio" and len(sound["results"]) == 5
    with pytest.raises(InputError, match="made by method 'baseline', not 'clip'"):
        a.check_method("clip", FIT)
    with pytest.raises(InputError, match="fitted differently"):
        a.check_method("baseline", {"pretrained": True})
    with pytest.raises(InputError, match="dimension 48"):
        a.search_vectors("text", np.ones((1, 7), np.float32))
    # building into it again is an update that embeds nothing
    again = build_folder_index(folder / "images", tmp_path / "idx", method=(method, FIT),
                               kind="exact", shards=3, partition_size=40, progress=False,
                               quiet=True)
    assert again["update"] == {"embedded": 0, "reused": 151, "new_paths": 0,
                               "dropped_paths": 0}


@pytest.mark.slow
def test_local_and_ray_engines_agree(folder, method, tmp_path, ray_cluster):
    common = dict(method=(method, FIT), shards=2, partition_size=40, progress=False,
                  quiet=True)
    for kind in ("exact", "ivf"):
        loc = build_folder_index(folder / "images", tmp_path / f"loc-{kind}", kind=kind,
                                 engine="local", **common)
        ray_ = build_folder_index(folder / "images", tmp_path / f"ray-{kind}", kind=kind,
                                  engine="ray", workers=2, **common)
        assert ray_["engine"] == "ray" and ray_["n_indexed"] == loc["n_indexed"] == 151
        a, b = FolderIndex.open(tmp_path / f"loc-{kind}"), FolderIndex.open(tmp_path / f"ray-{kind}")
        for space in ("text", "audio"):
            pa, pb = a.stored_vectors(space)[0], b.stored_vectors(space)[0]
            assert np.array_equal(pa, pb)
            q = pa[40:65]
            assert torch.equal(a.search_vectors(space, q, 10).ids,
                               b.search_vectors(space, q, 10).ids)
        assert loc["spaces"]["text"]["search_params"] == ray_["spaces"]["text"]["search_params"]


RESUME_SCRIPT = """
import pickle, sys, time
from mmkit.scale import build_folder_index
method, fit = pickle.load(open(sys.argv[3], "rb"))
def slow(stats):
    print("part", stats["part"], flush=True)
    time.sleep(0.3)
build_folder_index(sys.argv[1], sys.argv[2], method=(method, fit), kind="exact",
                   partition_size=10, progress=False, quiet=True, on_partition=slow)
"""


@pytest.mark.slow
@pytest.mark.subprocess
def test_killed_build_resumes_from_finished_partitions(folder, method, tmp_path):
    blob = tmp_path / "method.pkl"
    blob.write_bytes(pickle.dumps((method, FIT)))
    out = tmp_path / "idx"
    proc = subprocess.Popen([sys.executable, "-c", RESUME_SCRIPT, str(folder / "images"),
                             str(out), str(blob)], stdout=subprocess.PIPE, text=True)
    seen = 0
    while seen < 3:
        line = proc.stdout.readline()
        assert line, "the build ended before it could be killed"
        seen += line.startswith("part")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    parts = sorted((out / "store").glob("*.npz"))
    assert 3 <= len(parts) < 16 and not (out / "manifest.json").exists()
    with pytest.raises(InputError, match="unfinished build"):
        FolderIndex.open(out)
    before = {p.name: p.stat().st_mtime_ns for p in parts}
    done = []
    man = build_folder_index(folder / "images", out, method=(method, FIT), kind="exact",
                             partition_size=10, progress=False, quiet=True,
                             on_partition=lambda s: done.append(s))
    assert man["resumed"] and man["n_indexed"] == 151
    assert {p.name: p.stat().st_mtime_ns for p in parts} == before   # never redone
    finished = sum(np.load(p)["sha"].shape[0] + np.load(p)["failed"].shape[0] for p in parts)
    assert sum(s["n_ok"] + s["n_failed"] for s in done) == 154 - finished   # only the rest
    assert man["update"]["embedded"] == 151 - sum(np.load(p)["sha"].shape[0] for p in parts)
    assert not list(out.rglob(".*.tmp"))
    fresh = build_folder_index(folder / "images", tmp_path / "fresh", method=(method, FIT),
                               kind="exact", partition_size=10, progress=False, quiet=True)
    q = method.embed_texts(["a green triangle"])
    assert torch.equal(FolderIndex.open(out).search_vectors("text", q, 20).ids,
                       FolderIndex.open(tmp_path / "fresh").search_vectors("text", q, 20).ids)
    assert fresh["n_errors"] == man["n_errors"] == 3


def test_resume_refuses_another_method_or_fit(folder, method, tmp_path):
    out = tmp_path / "idx"
    out.mkdir()
    plan = {"format": "mmkit.scale.index", "version": 2, "method": "baseline", "fit": FIT,
            "spaces": ["text", "image", "audio"], "input_size": 64, "options": {},
            "partition_size": 256, "ocr": False, "todo": []}
    (out / "plan.json").write_text(json.dumps({**plan, "method": "joint"}))
    with pytest.raises(InputError, match="built with another method"):
        build_folder_index(folder / "images", out, method=(method, FIT), progress=False)
    (out / "plan.json").write_text(json.dumps({**plan, "fit": {**FIT, "split": "val"}}))
    with pytest.raises(InputError, match="built with another fit"):
        build_folder_index(folder / "images", out, method=(method, FIT), progress=False)
    (out / "plan.json").write_text(json.dumps({**plan, "version": 1}))
    with pytest.raises(InputError, match="format version 1"):
        build_folder_index(folder / "images", out, method=(method, FIT), progress=False)


def test_auto_kind_on_a_folder_is_exact_below_10k(folder, method, tmp_path):
    man = build_folder_index(folder / "images", tmp_path / "idx", method=(method, FIT),
                             kind="auto", progress=False, quiet=True)
    assert {s["kind"] for s in man["spaces"].values()} == {"exact"}
    assert "brute force" in man["spaces"]["text"]["reason"]


def test_ray_start_failure_is_one_line(monkeypatch):
    import ray

    from mmkit.errors import MMKitError
    from mmkit.scale.ray_engine import ray_session

    def timed_out(**kwargs):
        raise Exception("The current node timed out during startup.\nmore detail")

    calls = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kw: calls.append(kw) or timed_out())
    with pytest.raises(MMKitError, match=r"^could not start or join a local Ray cluster: The "
                                         r"current node timed out during startup\.$"):
        with ray_session(2):
            pass
    assert len(calls) == 2 and calls[0]["num_cpus"] == 2        # a local start is retried once
    assert calls[0]["_node_ip_address"] == "127.0.0.1" and not calls[0]["include_dashboard"]
    monkeypatch.setattr(ray, "init", lambda **kw: (_ for _ in ()).throw(ConnectionError("refused")))
    with pytest.raises(MMKitError, match="the Ray cluster at --address 10.0.0.1:6379: refused"):
        with ray_session(2, address="10.0.0.1:6379"):
            pass


@pytest.mark.subprocess
def test_import_mmkit_does_not_import_ray():
    code = "import mmkit, mmkit.scale, mmkit.cli, sys; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ------------------------------------------------------------------ exercises of notebook 09

def test_nb09_bytes_per_vector_checker():
    assert nb09.check_bytes_per_vector("ivfpq", 256, None).correct is False
    assert nb09.check_bytes_per_vector("ivfpq", 256, 32 + 8, m=32)
    assert nb09.check_bytes_per_vector("exact", 768, 768 * 4)
    wrong = nb09.check_bytes_per_vector("ivfpq", 256, 32, m=32)
    assert not wrong and "8-byte id" in wrong.message


def test_nb09_machines_checker():
    n, d, ram = 10 ** 9, 768, 256e9
    expected = -(-n * d * 4 // int(ram))              # ceil by integer arithmetic
    assert nb09.check_machines(n, d, "exact", ram, int(expected))
    assert not nb09.check_machines(n, d, "exact", ram, int(expected) - 1)
    assert not nb09.check_machines(n, d, "exact", ram, 2.5)
    assert nb09.check_machines(n, 96, "ivfpq", 64e9, 1, m=20)


def test_nb09_merge_checker():
    rng = np.random.default_rng(1)
    scores = [np.sort(rng.random((4, 5)).astype(np.float32), axis=1)[:, ::-1].copy()
              for _ in range(3)]
    ids = [rng.permutation(100)[:20].reshape(4, 5) + 100 * s for s in range(3)]
    allS, allI = np.concatenate(scores, 1), np.concatenate(ids, 1)
    naive = np.array([[allI[r, j] for j in sorted(range(15), key=lambda j: (-allS[r, j],
                                                                            allI[r, j]))[:5]]
                      for r in range(4)])
    assert nb09.check_merge(scores, ids, 5, naive)
    assert not nb09.check_merge(scores, ids, 5, np.concatenate([i[:, :2] for i in ids], 1)[:, :5])
    assert not nb09.check_merge(scores, ids, 5, naive[:, :4])
