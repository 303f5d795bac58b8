"""Near-duplicate groups: the images of a collection that are copies of one another (a crop,
a smaller copy, a re-compressed JPEG, a rotated or brightened copy).

- :func:`rotation_invariant`: any image embedding made invariant to rotations by 90
  degrees (the L2-normalised sum over the 4 rotations);
- :func:`rotation_invariant_features`: that, over the frozen ImageNet EfficientNet-Lite0
  (:func:`~mmkit.features.pretrained.pretrained_features`): the kit's duplicate descriptor;
- :func:`duplicate_pairs`: every pair with cosine similarity >= a threshold, with its score;
- :func:`duplicate_groups`: the connected components of that pair graph
  (:func:`scipy.sparse.csgraph.connected_components`), found block by block: 100 000
  vectors never make a 100 000 x 100 000 matrix.

>>> images = np.stack([load_image(p, 224) for p in paths])     # mmkit.data.images
>>> groups = duplicate_groups(rotation_invariant_features(images), DEFAULT_THRESHOLD)
>>> [[paths[i] for i in g] for g in groups]

- :func:`index_duplicates`: the groups of an index folder (``mmkit duplicates``), with the
  descriptors stored in the folder per file SHA-256, so a second run or a run after an
  update computes only the new files.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from mmkit.data.images import check_images
from mmkit.errors import InputError
from mmkit.features.pretrained import efficientnet_lite0_weights_path, pretrained_features
from mmkit.scale.files import load_images
from mmkit.scale.search import FolderIndex
from mmkit.scale.store import read_npz, sha256_of, write_npz
from mmkit.training import progress_bar
from mmkit.validate import number, positive_int

#: the file of an index folder that keeps the duplicate descriptors (by file SHA-256)
DESCRIPTORS = "duplicates.npz"

#: The cosine similarity of :func:`rotation_invariant_features` (EfficientNet-Lite0 at
#: 224 px, images made with ``load_image(path, 224)``) from which two images are copies.
#:
#: Calibrated on :func:`mmkit.data.photos.write_photos` (13 photos, each with its 5 edited
#: copies: centre crop to 80 %, half size, JPEG quality 30, rotation by 90 degrees,
#: brightness + 15 %; 78 files). Within the true groups the lowest similarity of any two
#: files is 0.775 (``retina``'s crop and its brightened copy; the lowest of an edited copy
#: to its original is 0.802, ``retina``'s crop); between files of two different photos the
#: highest is 0.588 (``astronaut`` and ``menu``, both halved). The threshold is the middle
#: of that margin of 0.187, rounded: every edited copy joins its original's group, even
#: with all within-group pairs required, and no two photos join.
#:
#: Without the sum over rotations (the plain pooled features) no threshold works: the
#: rotated copy of ``china`` scores 0.476 with its original, while ``astronaut`` and
#: ``grace_hopper`` (two portraits in front of a US flag) score 0.474.
DEFAULT_THRESHOLD = 0.68


#: float32 rounding allowed when a similarity is compared with the threshold: a pair counts
#: when its score >= threshold - ROUNDING (so threshold 1.0 finds rows of one direction,
#: whose float32 dot product may come out as 0.99999994)
ROUNDING = 1e-6


# ====================================================================== descriptors
def rotation_invariant(embed: Callable[[np.ndarray], np.ndarray],
                       images: np.ndarray) -> np.ndarray:
    """A descriptor that does not change when the image is rotated by a multiple of 90
    degrees: the L2-normalised sum of ``embed`` over the 4 rotations of each image.

    The 4 rotations of a rotated image are the same 4 images in another order, so the sum
    is the same (up to float rounding). To give a rotated photo the descriptor of the
    original, make the square input with the centre crop (``fit_image`` / ``load_image``
    with rule ``"crop"``): a centre crop commutes with a rotation by 90 degrees. The
    rotation maps the image's centre to itself and its shorter side onto the (rotated)
    image's shorter side, so resizing the shorter side to S and cutting the centre S x S
    square of the rotated photo gives the rotated square of the original
    (``crop(rot(x)) == rot(crop(x))``), up to the resampler's rounding and a one-pixel shift
    of the crop when the longer side's surplus is odd. A squashed or padded input has the
    same property; a top-left crop does not.

    Method-agnostic: ``embed`` is any function images -> vectors (a model's image
    encoder, :func:`~mmkit.features.pretrained.pretrained_features`, a colour histogram).

    Args:
        embed: uint8 [M, S, S, 3] -> float [M, d]; called 4 times, once per rotation
            (0, 90, 180, 270 degrees counter-clockwise) with all N images.
        images: uint8 [N, S, S, 3], square (anything
            :func:`~mmkit.data.images.check_images` converts to that).

    Returns:
        float32 [N, d], rows of unit length.

    Raises:
        InputError: non-square images; ``embed`` returning the wrong shape, non-finite
            values, or a sum of zero length.
    """
    x = check_images(images, name="rotation_invariant images", batch_only=True)
    n, h, w = x.shape[:3]
    if h != w:
        raise InputError(f"rotation_invariant images must be square [N, S, S, 3], got "
                         f"[{n}, {h}, {w}, 3] (make them with fit_image / load_image)")
    total = None
    for k in range(4):
        rotated = np.ascontiguousarray(np.rot90(x, k, axes=(1, 2)))
        e = np.asarray(embed(rotated))
        if e.ndim != 2 or e.shape[0] != n or (total is not None and e.shape != total.shape):
            want = f"[{n}, d]" if total is None else str(list(total.shape))
            raise InputError(f"rotation_invariant: embed returned shape {list(e.shape)} for "
                             f"{n} images, expected {want}")
        if not np.issubdtype(e.dtype, np.number) or not np.isfinite(e).all():
            raise InputError("rotation_invariant: embed returned non-finite values")
        total = e.astype(np.float64) if total is None else total + e
    norms = np.linalg.norm(total, axis=1, keepdims=True)
    if (norms == 0).any():
        raise InputError(f"rotation_invariant: the rotations' embeddings of image "
                         f"{int(np.flatnonzero(norms[:, 0] == 0)[0])} sum to zero")
    return (total / norms).astype(np.float32)


def rotation_invariant_features(images: np.ndarray, *, size: int = 224,
                                cache: bool = True) -> np.ndarray:
    """The kit's duplicate descriptor: :func:`rotation_invariant` over the frozen ImageNet
    EfficientNet-Lite0's pooled features (:func:`~mmkit.features.pretrained.pretrained_features`
    at ``size`` px, cached per rotation).

    Args:
        images: uint8 [N, S, S, 3] (``load_image(path, 224)``: the centre crop).
        size: the network's input size.
        cache: use the feature cache.

    Returns:
        float32 [N, 1280], rows of unit length; compare with :data:`DEFAULT_THRESHOLD`.
    """
    size = positive_int(size, "size")
    return rotation_invariant(lambda x: pretrained_features(x, size, cache=cache), images)


# ====================================================================== pairs and groups
def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    v = np.asarray(vectors)
    if v.ndim != 2 or v.shape[1] == 0:
        raise InputError(f"vectors must be a 2-D array [N, d] with d >= 1, got shape "
                         f"{list(v.shape)}")
    if v.dtype == object or not (np.issubdtype(v.dtype, np.floating)
                                 or np.issubdtype(v.dtype, np.integer)):
        raise InputError(f"vectors must be a real-valued array, got dtype {v.dtype}")
    v = v.astype(np.float32, copy=False)
    if not np.isfinite(v).all():
        bad = int(np.flatnonzero(~np.isfinite(v).all(axis=1))[0])
        raise InputError(f"vectors: row {bad} contains NaN or infinite values")
    norms = np.linalg.norm(v.astype(np.float64), axis=1)
    if (norms == 0).any():
        raise InputError(f"vectors: row {int(np.flatnonzero(norms == 0)[0])} has zero length "
                         "(its cosine similarity is undefined)")
    return (v / norms[:, None]).astype(np.float32)


def _check(vectors: np.ndarray, threshold: float, block: int) -> tuple[np.ndarray, float, int]:
    t = number(threshold, "threshold", low=-1.0, high=1.0, low_open=True)
    b = positive_int(block, "block")
    return _unit_rows(vectors), t, b


def _tiles(v: np.ndarray, threshold: float, block: int
           ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """For each tile of the upper triangle (block x block similarities at most): the pairs
    ``i < j`` with cosine >= threshold as (i int64 [E], j int64 [E], score float32 [E])."""
    n = len(v)
    for a in range(0, n, block):
        rows = v[a:a + block]
        for b in range(a, n, block):
            sims = rows @ v[b:b + block].T                   # float32 [<=block, <=block]
            hit = sims >= threshold - ROUNDING
            if a == b:
                hit = np.triu(hit, k=1)                      # i < j: no self-pairs
            if hit.any():
                i, j = np.nonzero(hit)
                yield i + a, j + b, np.minimum(sims[i, j], 1.0)


def duplicate_pairs(vectors: np.ndarray, threshold: float, *,
                    block: int = 4096) -> list[tuple[int, int, float]]:
    """Every pair of rows whose cosine similarity is >= ``threshold`` (up to
    :data:`ROUNDING`).

    Args:
        vectors: float [N, d] (L2-normalised here first; finite, no zero rows).
        threshold: in (-1, 1].
        block: rows per block: the similarities are computed block x block at a time.

    Returns:
        ``(i, j, score)`` with ``i < j``, sorted by ``(i, j)``; ``score`` the cosine
        similarity (float32 dot product of the unit rows, at most 1). Memory grows with
        the number of pairs found, not with N x N.

    Raises:
        InputError: threshold outside (-1, 1], block < 1, vectors not [N, d], non-finite or
            zero rows.
    """
    v, t, b = _check(vectors, threshold, block)
    parts = list(_tiles(v, t, b))
    if not parts:
        return []
    i, j, s = (np.concatenate(p) for p in zip(*parts))
    order = np.lexsort((j, i))
    return [(int(i[k]), int(j[k]), float(s[k])) for k in order]


def duplicate_groups(vectors: np.ndarray, threshold: float, *,
                     block: int = 4096) -> list[list[int]]:
    """The near-duplicate groups: connected components of the graph whose edges are the
    pairs with cosine similarity >= ``threshold`` (:func:`duplicate_pairs`), so a copy of a
    copy joins its original's group even when the two are less similar.

    Found block by block: the edges of each block x block tile of similarities are merged
    into the component labels at once (:func:`scipy.sparse.csgraph.connected_components` on
    the labels' graph), so memory is O(N + block^2) whatever the number of pairs.

    Args:
        vectors: float [N, d] (L2-normalised here first; finite, no zero rows).
        threshold: in (-1, 1]; :data:`DEFAULT_THRESHOLD` for
            :func:`rotation_invariant_features`.
        block: rows per block.

    Returns:
        The groups of two or more rows: each a sorted list of row indices, the groups
        sorted by their first member. Rows in no group are copies of nothing.

    Raises:
        InputError: as :func:`duplicate_pairs`.
    """
    from scipy.sparse import coo_array
    from scipy.sparse.csgraph import connected_components

    v, t, b = _check(vectors, threshold, block)
    n = len(v)
    labels = np.arange(n)
    for i, j, _ in _tiles(v, t, b):
        li, lj = labels[i], labels[j]
        keep = li != lj
        if not keep.any():
            continue
        # float weights: repeated label pairs are summed, and a narrow int could wrap to 0
        graph = coo_array((np.ones(int(keep.sum()), dtype=np.float32), (li[keep], lj[keep])),
                          shape=(n, n))
        _, component = connected_components(graph, directed=False)
        labels = component[labels]
    order = np.argsort(labels, kind="stable")            # members ascending within a label
    starts = np.flatnonzero(np.r_[True, labels[order][1:] != labels[order][:-1]])
    groups = [g.tolist() for g in np.split(order, starts[1:]) if len(g) >= 2]
    return sorted(groups)


__all__ = ["DEFAULT_THRESHOLD", "ROUNDING", "duplicate_groups", "duplicate_pairs",
           "rotation_invariant", "rotation_invariant_features"]


def index_duplicates(index: str | Path | FolderIndex, threshold: float = DEFAULT_THRESHOLD,
                     *, batch_size: int = 32, progress: bool = True) -> list[dict[str, Any]]:
    """The near-duplicate groups among the images of an index folder.

    Every indexed file gets the rotation-invariant EfficientNet-Lite0 descriptor
    (:func:`rotation_invariant_features`, whatever method built the index: a copy is a copy);
    descriptors are kept in ``INDEX_DIR/duplicates.npz`` by file SHA-256 and weight checksum,
    written atomically, so later runs compute only files they have not seen.

    Returns ``[{"paths": [...], "score": lowest similarity of a group member to its nearest
    fellow member, "pairs": n}]``, largest group first, then by first path.
    """
    fi = index if isinstance(index, FolderIndex) else FolderIndex.open(index)
    threshold = number(threshold, "--threshold", low=-1, high=1, low_open=True)
    ids = sorted(fi.stored_ids())
    shas = [fi.entries[i].sha256 for i in ids]
    weights = sha256_of(efficientnet_lite0_weights_path())
    path = fi.path / DESCRIPTORS
    known: dict[str, np.ndarray] = {}
    if path.is_file():
        try:
            old = read_npz(path, what="duplicate descriptors")
            if str(old.get("weights")) == weights:
                known = dict(zip(old["sha"].tolist(), old["vectors"]))
        except InputError:
            known = {}
    todo = [i for i, s in zip(ids, shas) if s not in known]
    root = fi.manifest["root"]
    for start in progress_bar(range(0, len(todo), batch_size), desc="duplicate descriptors",
                              progress=progress and bool(todo)):
        part = todo[start:start + batch_size]
        images, ok, errors = load_images(root, [fi.entries[i].path for i in part], 224)
        if errors:
            raise InputError(f"{errors[0][0]}: {errors[0][1]} (the folder changed since the "
                             f"build? run 'mmkit index update {fi.path}')")
        for i, vec in zip(part, rotation_invariant_features(images, cache=False)):
            known[fi.entries[i].sha256] = vec
    if todo:
        write_npz(path, {"sha": np.array(list(known), dtype=str),
                         "vectors": np.stack(list(known.values())).astype(np.float32),
                         "weights": np.array(weights)})
    vectors = np.stack([known[s] for s in shas]) if shas else np.zeros((0, 1280), np.float32)
    if len(vectors) < 2:
        return []
    pairs = duplicate_pairs(vectors, threshold)
    best: dict[int, float] = {}
    for i, j, score in pairs:
        best[i] = max(best.get(i, -1.0), score)
        best[j] = max(best.get(j, -1.0), score)
    out = []
    for group in duplicate_groups(vectors, threshold):
        out.append({"paths": fi.paths([ids[g] for g in group]),
                    "score": round(float(min(best[g] for g in group)), 4),
                    "pairs": sum(1 for i, j, _ in pairs if i in group and j in group)})
    return sorted(out, key=lambda g: (-len(g["paths"]), g["paths"][0]))
