"""Incremental, verified index folders and composed queries (mmkit.scale.store / build / search).

References are independent of the code under test: a fresh build into a new folder (what an
update must equal), cosine similarities computed here with numpy from the method's own
embeddings of the files (what a composed query must return), and flipped bytes / edited
manifests (what verification must catch).
"""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import torch

from mmkit.errors import InputError
from mmkit.scale import FolderIndex, build_folder_index, load_image, search_folder
from mmkit.scale.search import Term, copy_hits, parse_term
from mmkit.scale.store import folder_changes, scan_folder

FIT = {"pretrained": False, "world": {"n": 120, "seed": 3}, "split": "train"}
OPTS = dict(kind="exact", partition_size=16, progress=False, quiet=True)


@pytest.fixture(scope="module")
def method(small_world):
    from mmkit.methods import get_method

    m = get_method("baseline", progress=False)
    return m.fit(small_world, np.flatnonzero(small_world.split == "train"))


@pytest.fixture()
def photos(tmp_path_factory):
    """A fresh copy (per test) of 40 exported world PNGs."""
    from mmkit.data import World
    from mmkit.data.export import export_world

    src = tmp_path_factory.getbasetemp() / "update-src"
    if not src.exists():
        export_world(World(n=40, seed=5), src, progress=False)
    dst = tmp_path_factory.mktemp("photos")
    shutil.copytree(src / "images", dst / "images")
    return dst / "images"


def _same(a: FolderIndex, b: FolderIndex, q: np.ndarray, space: str = "text") -> None:
    ra, rb = a.search_vectors(space, q, 25), b.search_vectors(space, q, 25)
    assert a.relative_paths(ra.ids[0]) == b.relative_paths(rb.ids[0])
    assert torch.equal(ra.scores, rb.scores)


def test_update_embeds_only_new_or_changed_files_and_equals_a_fresh_build(method, photos,
                                                                            tmp_path):
    idx = tmp_path / "idx"
    first = build_folder_index(photos, idx, method=(method, FIT), **OPTS)
    assert first["update"]["embedded"] == 40 and first["generation"] == "g0001"
    # rename one, move one into a subfolder, delete one, add a copy, change one's bytes
    os.rename(photos / "000001.png", photos / "renamed.png")
    (photos / "sub").mkdir()
    os.rename(photos / "000002.png", photos / "sub" / "moved.png")
    os.remove(photos / "000003.png")
    shutil.copy(photos / "000004.png", photos / "copy-of-4.png")
    pixels = load_image(photos / "000005.png", 64)
    from PIL import Image

    Image.fromarray(255 - pixels).save(photos / "000005.png")
    changed = folder_changes(photos, FolderIndex.open(idx).entries)
    assert changed == {"new": 3, "deleted": 3, "modified": 1}
    seen = []
    second = build_folder_index(photos, idx, method=(method, FIT), on_partition=seen.append,
                                **OPTS)
    assert second["update"]["embedded"] == 1 == sum(s["n_ok"] for s in seen)   # 000005 only
    assert second["update"]["reused"] == 39 and second["n_indexed"] == 40
    assert second["update"]["dropped_paths"] == 3 and second["update"]["new_paths"] == 3
    assert sorted(os.listdir(idx / "index")) == ["g0002"]                   # old generation gone
    fresh = build_folder_index(photos, tmp_path / "fresh", method=(method, FIT), **OPTS)
    a, b = FolderIndex.open(idx), FolderIndex.open(tmp_path / "fresh")
    assert [e.row()[:3] for e in a.entries] == [e.row()[:3] for e in b.entries]
    q = method.embed_texts(["a red circle", "a green triangle on the right"])
    for space in ("text", "image"):
        _same(a, b, q[:1] if space == "text" else a.stored_vectors("image")[0][:1], space)
    assert fresh["spaces"]["text"]["n"] == second["spaces"]["text"]["n"]
    # nothing changed: an update embeds nothing and rewrites the same index
    third = build_folder_index(None, idx, **{**OPTS, "method": (method, FIT)})
    assert third["update"]["embedded"] == 0 and third["generation"] == "g0003"
    # the store keeps only chunks that hold live files
    live = {e.sha256 for e in FolderIndex.open(idx).entries}
    for chunk in (idx / "store").glob("*.npz"):
        z = np.load(chunk)
        assert live & (set(z["sha"].tolist()) | set(z["failed"].tolist()))


def test_search_warns_when_the_folder_changed_and_drops_deleted_files(method, photos,
                                                                      tmp_path):
    idx = tmp_path / "idx"
    build_folder_index(photos, idx, method=(method, FIT), **OPTS)
    report = search_folder(idx, text="a red circle", k=40, method=(method, FIT))
    assert report["warnings"] == [] and report["total"] == 40
    gone = report["results"][0]["path"]
    os.remove(gone)
    report = search_folder(idx, text="a red circle", k=40, method=(method, FIT))
    assert "changed since the index was built (0 new, 0 modified, 1 deleted" in \
        report["warnings"][0]
    assert report["warnings"][1] == "1 hits left out: their files are gone"
    assert gone not in [r["path"] for r in report["results"]] and report["total"] == 39


def test_damaged_files_and_another_model_are_one_line_errors(method, photos, tmp_path):
    idx = tmp_path / "idx"
    man = build_folder_index(photos, idx, method=(method, FIT), **OPTS)
    shard = idx / man["spaces"]["text"]["shards"][0]
    data = bytearray(shard.read_bytes())
    data[-20] ^= 0xFF                                    # one flipped byte in the vectors
    shard.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"text/shard-000.mmidx is damaged .*index update"):
        FolderIndex.open(idx)
    data[-20] ^= 0xFF
    shard.write_bytes(bytes(data))
    chunk = sorted((idx / "store").glob("*.npz"))[0]
    raw = bytearray(chunk.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    chunk.write_bytes(bytes(raw))
    fi = FolderIndex.open(idx)
    with pytest.raises(InputError, match="store/.*npz is damaged"):
        fi.stored_vectors("text")
    state = idx / "method.npz"
    state.write_bytes(state.read_bytes() + b"junk")
    with pytest.raises(InputError, match="method.npz: the fitted method is damaged"):
        search_folder(idx, text="a red circle")
    # another model of the same method: refused, with the command that fixes it
    other = {**FIT, "fingerprint": "baseline|text_dims=48|another"}
    with pytest.raises(InputError, match="built with another model .*mmkit index update"):
        fi.check_method("baseline", other)
    # an index of the previous folder format
    (idx / "manifest.json").write_text(json.dumps({**json.loads(
        (idx / "manifest.json").read_text()), "version": 1}))
    with pytest.raises(InputError, match="format version 1.*build the index again"):
        FolderIndex.open(idx)


def test_a_build_of_only_unreadable_files_leaves_nothing(method, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.png").write_bytes(b"not a png")
    (bad / "b.jpg").write_bytes(b"")
    with pytest.raises(InputError, match="none of the 2 image files could be read"):
        build_folder_index(bad, tmp_path / "idx", method=(method, FIT), **OPTS)
    assert not (tmp_path / "idx").exists()


def test_composed_queries_equal_weighted_cosines_computed_by_hand(method, photos, tmp_path):
    idx = tmp_path / "idx"
    build_folder_index(photos, idx, method=(method, FIT), **OPTS)
    files = sorted(photos.glob("*.png"))
    pixels = np.stack([load_image(f, 64) for f in files])
    unit = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)  # noqa: E731
    text_space = unit(method.embed_images(pixels, partner="text"))
    image_space = unit(method.embed_images(pixels, partner="image"))
    t1, t2 = unit(method.embed_texts(["a red circle", "a blue square"]))
    qi = unit(method.embed_images(pixels[7:8], partner="image"))[0]
    terms = [Term("text", "a red circle"), Term("image", str(files[7]), 0.5),
             Term("text", "a blue square", -1.0)]
    want = text_space @ t1 + 0.5 * (image_space @ qi) - text_space @ t2
    order = np.lexsort((np.arange(len(files)), -want))
    report = search_folder(idx, terms=terms, k=8, method=(method, FIT))
    assert [r["path"] for r in report["results"]] == [str(files[i].resolve())
                                                      for i in order[:8]]
    assert np.allclose([r["score"] for r in report["results"]], want[order[:8]], atol=1e-5)
    page = search_folder(idx, terms=terms, k=4, offset=4, method=(method, FIT))
    assert [r["path"] for r in page["results"]] == [r["path"] for r in report["results"][4:]]
    cut = float(want[order[5]])
    above = search_folder(idx, terms=terms, k=40, threshold=cut, method=(method, FIT))
    assert above["total"] == int((want >= cut - 1e-6).sum())
    copied = copy_hits(report["results"][:3], tmp_path / "hits")
    assert [p.split("/")[-1] for p in copied] == [f"0{r + 1}-{files[order[r]].name}"
                                                  for r in range(3)]
    with pytest.raises(InputError, match="--copy-to .*new or empty folder"):
        copy_hits(report["results"][:3], tmp_path / "hits")


def test_query_terms_parse_weights_and_refuse_nonsense(tmp_path):
    assert parse_term("text", "a cat") == Term("text", "a cat", 1.0)
    assert parse_term("text", "0.5:snow") == Term("text", "snow", 0.5)
    assert parse_term("text", "-2: a dog") == Term("text", "a dog", -2.0)
    assert parse_term("text", "a dog", weight=-1) == Term("text", "a dog", -1.0)
    assert parse_term("text", "10:30 in the morning").weight == 10.0   # documented syntax
    odd = tmp_path / "2:photo.png"
    odd.write_bytes(b"x")
    assert parse_term("image", str(odd)).value == str(odd)             # an existing file wins
    with pytest.raises(InputError, match="non-zero"):
        parse_term("text", "0:a cat")
    with pytest.raises(InputError, match="empty"):
        parse_term("text", "0.5:  ")
    with pytest.raises(InputError, match="negative weight"):
        search_folder(tmp_path, terms=[Term("text", "a dog", -1.0)])


def test_scan_reuses_hashes_of_untouched_files(photos):
    first = scan_folder(photos)
    again = scan_folder(photos, [e.__class__(e.path, "0" * 64, e.size, e.mtime_ns)
                                 for e in first])
    assert {e.sha256 for e in again} == {"0" * 64}                # no file was read again
    import hashlib

    assert first[0].sha256 == hashlib.sha256((photos / first[0].path).read_bytes()).hexdigest()
