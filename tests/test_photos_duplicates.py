"""The real-photo fixture (:mod:`mmkit.data.photos`) and near-duplicate groups
(:mod:`mmkit.scale.duplicates`): blockwise groups equal a naive O(N^2) union-find on planted
copies; the photos' edited copies join their originals and nothing else at the calibrated
threshold; the rotation-invariant descriptor is invariant; the fixture writes the same bytes
twice and refuses folders it did not write; bad input is one line."""
from __future__ import annotations

import json
import socket
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch

from mmkit.data.images import fit_image, load_image, read_image
from mmkit.data.photos import (EDITS, MANIFEST, PHOTOS, WORDS, PhotoRecord, photo_groups,
                               photo_records, read_photos, shipped_file, write_photos)
from mmkit.errors import InputError
from mmkit.features.ocr import OcrSettings, ocr_image
from mmkit.features.pretrained import efficientnet_lite0, imagenet_label, imagenet_tensor
from mmkit.scale.duplicates import (DEFAULT_THRESHOLD, ROUNDING, duplicate_groups,
                                    duplicate_pairs, rotation_invariant,
                                    rotation_invariant_features)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ============================================================================ references
def naive_pairs(vectors: np.ndarray, threshold: float) -> dict[tuple[int, int], float]:
    """Every pair i < j with cosine >= threshold, from the full float64 matrix."""
    v = vectors.astype(np.float64)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    s = v @ v.T
    n = len(v)
    return {(i, j): float(s[i, j]) for i in range(n) for j in range(i + 1, n)
            if s[i, j] >= threshold - ROUNDING}


def naive_groups(vectors: np.ndarray, threshold: float) -> list[list[int]]:
    """Union-find over :func:`naive_pairs`; groups of 2 or more, sorted."""
    parent = list(range(len(vectors)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in naive_pairs(vectors, threshold):
        parent[root(i)] = root(j)
    groups: dict[int, list[int]] = {}
    for i in range(len(vectors)):
        groups.setdefault(root(i), []).append(i)
    return sorted(g for g in groups.values() if len(g) >= 2)


def planted(n_base: int = 220, dim: int = 24, seed: int = 0) -> np.ndarray:
    """Random directions with planted near-copies (single copies, several copies of one
    row, and chains where a copy of a copy drifts away from the first), shuffled."""
    rng = np.random.default_rng(seed)
    rows = list(rng.standard_normal((n_base, dim)))
    for k in range(60):
        base = rows[int(rng.integers(n_base))]
        for _ in range(int(rng.integers(1, 4))):
            noise = (0.05, 0.15, 0.3)[k % 3]
            base = base + noise * np.linalg.norm(base) / np.sqrt(dim) * rng.standard_normal(dim)
            rows.append(base * rng.uniform(0.5, 2.0))     # the length must not matter
    v = np.array(rows, dtype=np.float32)
    return v[rng.permutation(len(v))]


#: nominal thresholds; each is moved to the middle of the gap between the planted data's
#: similarities that holds it, so float32 rounding cannot flip a pair (``random_vectors``)
THRESHOLDS = (0.3, 0.8, 0.9, 0.97, 0.995)


@pytest.fixture(scope="module")
def random_vectors() -> tuple[np.ndarray, dict[float, float]]:
    v = planted()
    u = v.astype(np.float64) / np.linalg.norm(v.astype(np.float64), axis=1, keepdims=True)
    s = np.sort((u @ u.T)[np.triu_indices(len(u), 1)])
    safe = {}
    for t in THRESHOLDS:           # the widest gap within 0.002 of t
        lo, hi = np.searchsorted(s, t - 2e-3), np.searchsorted(s, t + 2e-3)
        k = lo + int(np.argmax(np.diff(s[lo - 1:hi + 1])))
        safe[t] = float((s[k - 1] + s[k]) / 2)
        assert s[k] - s[k - 1] > 1e-5, t
    return v, safe


# ============================================================================ groups
@pytest.mark.parametrize("nominal", THRESHOLDS)
@pytest.mark.parametrize("block", [2, 7, 64, 100_000])
def test_groups_equal_the_naive_union_find(random_vectors, nominal, block):
    v, safe = random_vectors
    expected = naive_groups(v, safe[nominal])
    assert duplicate_groups(v, safe[nominal], block=block) == expected
    assert len(expected) >= 1 and any(len(g) > 2 for g in expected)


@pytest.mark.parametrize("nominal", THRESHOLDS)
def test_pairs_equal_the_naive_pairs_with_their_scores(random_vectors, nominal):
    v, safe = random_vectors
    expected = naive_pairs(v, safe[nominal])
    found = duplicate_pairs(v, safe[nominal], block=50)
    assert [(i, j) for i, j, _ in found] == sorted(expected)
    assert np.allclose([s for *_, s in found], [expected[p] for p in sorted(expected)],
                       atol=1e-5)
    groups = duplicate_groups(v, safe[nominal], block=50)
    member = {i: k for k, g in enumerate(groups) for i in g}
    assert all(member[i] == member[j] for i, j, _ in found)   # every pair inside one group


def test_groups_are_sorted_and_the_threshold_one_finds_equal_directions():
    v = np.array([[0, 1, 0], [3, 0, 0], [0, 0, 1], [1, 0, 0], [0, 2, 0], [0.1, 1, 0],
                  [0.3, 0.7, 0.2]], dtype=np.float32)
    assert duplicate_groups(v, 1.0) == [[0, 4], [1, 3]]
    assert duplicate_groups(v, 0.99, block=2) == [[0, 4, 5], [1, 3]]
    assert [(i, j) for i, j, _ in duplicate_pairs(v, 1.0)] == [(0, 4), (1, 3)]
    assert all(s <= 1.0 for *_, s in duplicate_pairs(v, 1.0))
    assert duplicate_groups(v[:1], 0.5) == [] and duplicate_pairs(v[:1], 0.5) == []
    assert duplicate_groups(v.astype(np.float64), 0.99) == [[0, 4, 5], [1, 3]]


def test_a_big_group_across_blocks():
    """256 members of one label meet each row of the next block 256 times in one tile."""
    rng = np.random.default_rng(2)
    v = (rng.standard_normal(8) + 1e-3 * rng.standard_normal((512, 8))).astype(np.float32)
    assert duplicate_groups(v, 0.9, block=256) == [list(range(512))]
    assert len(duplicate_pairs(v, 0.9, block=100)) == 512 * 511 // 2


def test_blocks_never_build_the_n_by_n_matrix():
    rng = np.random.default_rng(1)
    v = rng.standard_normal((12_000, 32)).astype(np.float32)
    v[6_000] = v[3] * 2
    v[11_999] = v[6_000] + 1e-3
    tracemalloc.start()
    groups = duplicate_groups(v, 0.95, block=1024)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert groups == [[3, 6_000, 11_999]]
    assert peak < 40e6, peak          # the full matrix would be 576 MB


@pytest.mark.parametrize("vectors, threshold, block, match", [
    (np.ones((3, 2)), 0.0 - 1.0, 8, "threshold must be in \\(-1, 1\\]"),
    (np.ones((3, 2)), 1.5, 8, "threshold must be in"),
    (np.ones((3, 2)), float("nan"), 8, "threshold must be a finite number"),
    (np.ones((3, 2)), True, 8, "threshold must be a number"),
    (np.ones((3, 2)), "0.9", 8, "threshold must be a number"),
    (np.ones((3, 2)), 0.9, 0, "block must be a positive integer"),
    (np.ones((3, 2)), 0.9, 2.5, "block must be a positive integer"),
    (np.ones(3), 0.9, 8, "vectors must be a 2-D array"),
    (np.ones((3, 0)), 0.9, 8, "vectors must be a 2-D array"),
    (np.array([[1.0, np.nan], [1.0, 0.0]]), 0.9, 8, "row 0 contains NaN"),
    (np.array([[1.0, 0.0], [1.0, np.inf]]), 0.9, 8, "row 1 contains NaN or infinite"),
    (np.array([[1.0, 0.0], [0.0, 0.0]]), 0.9, 8, "row 1 has zero length"),
    (np.array([["a", "b"]]), 0.9, 8, "real-valued"),
])
def test_bad_input_is_one_line(vectors, threshold, block, match):
    for func in (duplicate_groups, duplicate_pairs):
        with pytest.raises(InputError, match=match) as err:
            func(vectors, threshold, block=block)
        assert "\n" not in str(err.value)


# ============================================================================ rotations
def _pixels_embed(images: np.ndarray) -> np.ndarray:
    """A deterministic embedding that is NOT rotation-invariant: coarse pixels plus each
    row's mean brightness weighted by its position."""
    x = images.astype(np.float64) / 255.0
    coarse = x[:, ::4, ::4, :].reshape(len(x), -1)
    rows = x.mean(axis=(2, 3)) * np.linspace(1.0, 2.0, x.shape[1])
    return np.concatenate([coarse, rows], axis=1)


@pytest.fixture(scope="module")
def squares() -> np.ndarray:
    return np.stack([fit_image(PHOTOS[n].load(), 32) for n in ("chelsea", "coffee", "rocket")])


def test_rotation_invariant_with_a_deterministic_embed(squares):
    plain = _pixels_embed(squares)
    turned = np.rot90(squares, 1, axes=(1, 2))
    assert not np.allclose(plain, _pixels_embed(turned))       # the embed itself is not
    d = rotation_invariant(_pixels_embed, squares)
    assert d.dtype == np.float32 and d.shape == plain.shape
    assert np.allclose(np.linalg.norm(d, axis=1), 1.0, atol=1e-6)
    for k in (1, 2, 3):
        assert np.allclose(rotation_invariant(_pixels_embed, np.rot90(squares, k, axes=(1, 2))),
                           d, atol=1e-6)
    assert not np.allclose(d[0], d[1])                           # images still differ


def test_centre_crop_commutes_with_rotation():
    """The docstring's claim: the 224 px centre crop of a rotated photo is the rotated crop
    of the photo, up to resampling rounding and a one-pixel shift."""
    for name in ("chelsea", "rocket", "grace_hopper"):
        photo = PHOTOS[name].load()
        a = fit_image(EDITS["rot90"](photo), 224).astype(float)
        b = np.rot90(fit_image(photo, 224), 1).astype(float)
        assert np.abs(a - b).mean() < 6.0, name
        assert np.abs(a - b).mean() < 0.25 * np.abs(b - fit_image(photo, 224)).mean(), name


def test_rotation_invariant_refuses_bad_input(squares):
    with pytest.raises(InputError, match="must be square") as err:
        rotation_invariant(_pixels_embed, np.zeros((2, 8, 9, 3), np.uint8))
    assert "\n" not in str(err.value)
    with pytest.raises(InputError, match="embed returned shape"):
        rotation_invariant(lambda x: np.zeros(len(x)), squares)
    with pytest.raises(InputError, match="embed returned shape"):
        rotation_invariant(lambda x: np.zeros((len(x) + 1, 4)), squares)
    with pytest.raises(InputError, match="non-finite"):
        rotation_invariant(lambda x: np.full((len(x), 4), np.nan), squares)
    with pytest.raises(InputError, match="sum to zero"):
        rotation_invariant(lambda x: np.zeros((len(x), 4)), squares)
    with pytest.raises(InputError, match="size must be a positive integer"):
        rotation_invariant_features(squares, size=0)


@pytest.mark.slow
def test_rotation_invariant_with_efficientnet(squares):
    images = np.stack([fit_image(PHOTOS[n].load(), 224) for n in ("chelsea", "menu")])
    d = rotation_invariant_features(images, cache=False)
    turned = rotation_invariant_features(np.rot90(images, 1, axes=(1, 2)), cache=False)
    assert d.shape == (2, 1280) and d.dtype == np.float32
    assert np.allclose(d, turned, atol=1e-5)
    assert float(d[0] @ d[1]) < DEFAULT_THRESHOLD


# ============================================================================ the photos
@pytest.fixture(scope="module")
def written(tmp_path_factory) -> tuple[Path, list[PhotoRecord]]:
    folder = tmp_path_factory.mktemp("photos") / "set"
    return folder, write_photos(folder)


def test_the_photos_are_colour_photographs_that_ship_offline(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("a photo tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    assert len(PHOTOS) >= 13 and set(WORDS) <= set(PHOTOS)
    for name, (source, load) in PHOTOS.items():
        pixels = load()
        assert pixels.dtype == np.uint8 and pixels.ndim == 3 and pixels.shape[2] == 3, name
        assert pixels.flags.writeable and pixels.flags.c_contiguous, name
        for edit, func in EDITS.items():
            assert func(pixels).flags.writeable, (name, edit)
        assert min(pixels.shape[:2]) >= 256 and source, name
        if name not in WORDS:            # real colour: the channels differ
            assert np.abs(pixels[..., 0].astype(int) - pixels[..., 2]).mean() > 5, name
            assert np.array_equal(read_image(shipped_file(name)), pixels), name


def test_written_files_decode_to_the_photos_and_their_edits(written):
    folder, records = written
    assert records == photo_records() == read_photos(folder)
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) \
        == sorted([r.path for r in records] + [MANIFEST])
    for name in PHOTOS:
        pixels = PHOTOS[name].load()
        mine = [r for r in records if r.photo == name]
        assert [r.edit for r in mine] == [None, *EDITS], name
        for r in mine:
            want = pixels if r.edit is None else EDITS[r.edit](pixels)
            assert np.array_equal(read_image(folder / r.path), want), r.path
            assert r.words == WORDS.get(name, ())
        if name not in WORDS:            # the original is the shipped file itself
            assert (folder / mine[0].path).read_bytes() == shipped_file(name).read_bytes()
    h, w = pixels.shape[:2]
    assert EDITS["half"](pixels).shape == (h // 2, w // 2, 3)
    assert EDITS["crop"](pixels).shape == (round(0.8 * h), round(0.8 * w), 3)
    assert EDITS["rot90"](pixels).shape == (w, h, 3)


def test_ground_truth_groups(written):
    _, records = written
    groups = photo_groups(records)
    assert len(groups) == len(PHOTOS) and all(len(g) == 1 + len(EDITS) for g in groups)
    assert groups == sorted(groups) and all(g == sorted(g) for g in groups)
    assert "edited/chelsea-crop.png" in next(g for g in groups if "chelsea.png" in g)
    assert photo_groups(photo_records(edited=False)) == []


def test_writing_again_gives_the_same_bytes(written, tmp_path):
    folder, _ = written
    names = ["chelsea", "china", "menu"]        # a shipped PNG, a shipped JPEG, a drawn photo
    again = write_photos(tmp_path / "again", names=names)
    assert [r.photo for r in again][::1 + len(EDITS)] == names
    for r in again:
        assert (tmp_path / "again" / r.path).read_bytes() == (folder / r.path).read_bytes()


def test_rewriting_its_own_folder_removes_what_it_no_longer_lists(tmp_path):
    write_photos(tmp_path, names=["chelsea"])
    records = write_photos(tmp_path, names=["coffee"], edited=False)
    assert [r.path for r in records] == ["coffee.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["coffee.png", MANIFEST]
    assert json.loads((tmp_path / MANIFEST).read_text())["complete"] is True


def test_refuses_folders_it_did_not_write(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not empty and was not written by write_photos") \
            as err:
        write_photos(tmp_path, names=["chelsea"])
    assert "\n" not in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    (tmp_path / MANIFEST).write_text('{"format": "something else"}')
    with pytest.raises(InputError, match="not written by write_photos"):
        write_photos(tmp_path, names=["chelsea"])
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="exists and is not a folder"):
        write_photos(tmp_path / "file")
    with pytest.raises(InputError, match="unknown photo 'lena'"):
        write_photos(tmp_path / "new", names=["lena"])
    with pytest.raises(InputError, match="no photos.json"):
        read_photos(tmp_path / "new")
    assert not (tmp_path / "new").exists()


def test_an_unfinished_write_is_still_its_own(tmp_path):
    records = photo_records(["rocket"], edited=False)
    (tmp_path / MANIFEST).write_text(json.dumps(
        {"format": "mmkit.photos", "complete": False,
         "records": [{"path": r.path, "photo": r.photo, "edit": r.edit, "words": []}
                     for r in records]}))
    (tmp_path / "rocket.jpg").write_bytes(b"half a jpe")
    with pytest.raises(InputError, match="did not finish"):
        read_photos(tmp_path)
    assert write_photos(tmp_path, names=["rocket"], edited=False) == read_photos(tmp_path)
    assert (tmp_path / "rocket.jpg").read_bytes() == shipped_file("rocket").read_bytes()


def test_the_words_are_read_by_ocr_and_not_guessed_by_imagenet():
    model = efficientnet_lite0()
    for name, words in WORDS.items():
        pixels = PHOTOS[name].load()
        read = " ".join(b.text for b in ocr_image(pixels, OcrSettings(upscale=1))).upper()
        assert all(w in read for w in words), (name, read)
        with torch.no_grad():
            top5 = model(imagenet_tensor(pixels))[0].topk(5).indices.tolist()
        labels = " ".join(imagenet_label(i) for i in top5).upper()
        assert not any(w in labels for w in words), (name, labels)


# ============================================================================ calibration
@pytest.fixture(scope="module")
def descriptors(written) -> np.ndarray:
    folder, records = written
    images = np.stack([load_image(folder / r.path, 224) for r in records])
    return rotation_invariant_features(images)


@pytest.mark.slow
def test_the_detected_groups_are_the_true_groups(written, descriptors):
    _, records = written
    groups = duplicate_groups(descriptors, DEFAULT_THRESHOLD, block=16)
    assert sorted(sorted(records[i].path for i in g) for g in groups) == photo_groups(records)
    # the margin around the threshold (DEFAULT_THRESHOLD's comment gives the numbers)
    photo = np.array([r.photo for r in records])
    s = descriptors @ descriptors.T
    same = (photo[:, None] == photo[None, :]) & ~np.eye(len(photo), dtype=bool)
    assert s[same].min() > DEFAULT_THRESHOLD + 0.05
    assert s[photo[:, None] != photo[None, :]].max() < DEFAULT_THRESHOLD - 0.05
    pairs = duplicate_pairs(descriptors, DEFAULT_THRESHOLD)
    assert len(pairs) == sum(len(g) * (len(g) - 1) // 2 for g in groups)
    assert all(DEFAULT_THRESHOLD <= score <= 1.0 for *_, score in pairs)
