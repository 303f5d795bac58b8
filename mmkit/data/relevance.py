"""Ground-truth graded relevance of the world (0-3), computed from what captions say.

Caption -> image (:func:`caption_relevance`):

- **3** the image has an object matching every attribute of the caption's main mention, and
  everything else the caption says holds too (second object and spatial relation, style, sign);
- **2** the main mention is fully matched but something else the caption says is not;
- **1** some object matches at least half of the main mention's attributes;
- **0** otherwise.

Scene -> scene (:func:`scene_relevance`): the number of the main object's (shape, colour,
texture) that agree, so 3 means the same fine-grained class.

A caption's own image always gets 3. Because captions are partial, other images often get 3
too: that is why even a perfect system cannot always rank the paired image first
(:func:`oracle_hit_rate`).
"""
from __future__ import annotations

import numpy as np

from mmkit.data.vocab import RELATIONS
from mmkit.validate import positive_int

_CHUNK = 256


def relation_table(xy: np.ndarray, n_objects: np.ndarray) -> np.ndarray:
    """bool [N, K, K, 4]: object a stands in relation r to object b (a != b, both real).

    Relations follow :data:`mmkit.data.vocab.RELATIONS`: left of, right of, above, below
    (image y grows downwards).
    """
    n, k, _ = xy.shape
    x, y = xy[..., 0], xy[..., 1]
    real = np.arange(k)[None, :] < n_objects[:, None]
    pair = real[:, :, None] & real[:, None, :] & ~np.eye(k, dtype=bool)[None]
    table = np.stack([x[:, :, None] < x[:, None, :], x[:, :, None] > x[:, None, :],
                      y[:, :, None] < y[:, None, :], y[:, :, None] > y[:, None, :]], axis=-1)
    assert table.shape[-1] == len(RELATIONS)
    return table & pair[..., None]


def _mention_match(mention: np.ndarray, objects: np.ndarray, real: np.ndarray):
    """(full match bool [c, N, K], matched-attribute count [c, N, K]) of mentions [c, 5]."""
    said = mention[:, None, None, :] >= 0
    equal = mention[:, None, None, :] == objects[None]
    agree = said & equal
    full = np.all(~said | equal, axis=-1) & real[None]
    return full, (agree.sum(-1) * real[None])


def caption_relevance(main: np.ndarray, second: np.ndarray, relation: np.ndarray,
                      style: np.ndarray, word: np.ndarray, objects: np.ndarray, xy: np.ndarray,
                      n_objects: np.ndarray, styles: np.ndarray, words: np.ndarray) -> np.ndarray:
    """Graded relevance int8 [M, N] of M captions to N images (rules in the module docstring).

    Args:
        main, second: int [M, 5] mentioned attributes, -1 = not said.
        relation, style, word: int [M], -1 = not said.
        objects: int [N, K, 5]; xy: float [N, K, 2]; n_objects: int [N];
        styles, words: int [N] (-1 = no sign).
    """
    m, n = len(main), len(objects)
    real = np.arange(objects.shape[1])[None, :] < np.asarray(n_objects)[:, None]
    rel_tab = np.moveaxis(relation_table(xy, np.asarray(n_objects)), -1, 0)  # [4, N, K, K]
    out = np.zeros((m, n), np.int8)
    for lo in range(0, m, _CHUNK):
        sl = slice(lo, min(m, lo + _CHUNK))
        full, count = _mention_match(main[sl], objects, real)
        main_full = full.any(-1)
        said = np.maximum((main[sl] >= 0).sum(-1), 1)[:, None]
        half = (count.max(-1) * 2 >= said)
        rel_c = relation[sl]
        has_second = rel_c >= 0
        sec_full, _ = _mention_match(second[sl], objects, real)
        pair_ok = rel_tab[np.maximum(rel_c, 0)]  # [c, N, K, K]
        second_ok = np.any(full[:, :, :, None] & sec_full[:, :, None, :] & pair_ok, axis=(2, 3))
        extras = ((style[sl, None] < 0) | (style[sl, None] == styles[None])) & \
                 ((word[sl, None] < 0) | (word[sl, None] == words[None])) & \
                 (~has_second[:, None] | second_ok)
        block = np.where(main_full & extras, 3, np.where(main_full, 2, np.where(half, 1, 0)))
        out[sl] = block
    return out


def scene_relevance(query_attrs: np.ndarray, image_attrs: np.ndarray) -> np.ndarray:
    """int8 [Q, N]: how many of (shape, colour, texture) of the main objects agree (0-3).

    Args:
        query_attrs: int [Q, 3]; image_attrs: int [N, 3].
    """
    q, i = np.asarray(query_attrs), np.asarray(image_attrs)
    return (q[:, None, :] == i[None, :, :]).sum(-1).astype(np.int8)


def oracle_hit_rate(relevance: np.ndarray, positives: np.ndarray, k: int,
                    exclude: np.ndarray | None = None) -> np.ndarray:
    """Expected Recall@K hit rate per query [Q] of an oracle that ranks by ``relevance`` and
    breaks ties uniformly at random.

    A query is a hit when any positive is in the top ``k``. Positives that are not in the
    top relevance level can never be reached before the items above them, which the formula
    accounts for exactly (hypergeometric probability over the tied block).

    Args:
        relevance: int [Q, N] graded relevance. positives: bool [Q, N]. k: cut-off.
        exclude: optional bool [Q, N], items removed from the query's gallery (ranked last,
            never hits; e.g. the query image itself in image->image).
    """

    k = positive_int(k, "k")
    relevance = np.asarray(relevance)
    positives = np.asarray(positives, dtype=bool)
    keep = np.ones(relevance.shape, bool) if exclude is None else ~np.asarray(exclude, bool)
    out = np.zeros(len(relevance))
    for qi, (rel, pos, ok) in enumerate(zip(relevance, positives, keep)):
        rel, pos = rel[ok], pos[ok]
        remaining = k
        for level in np.unique(rel)[::-1]:
            block = rel == level
            size, hits = int(block.sum()), int((block & pos).sum())
            if hits and remaining > 0:
                if remaining >= size:
                    out[qi] = 1.0
                else:  # P(at least one of `hits` among `remaining` drawn from `size`)
                    miss = 1.0
                    for t in range(remaining):
                        miss *= (size - hits - t) / (size - t)
                    out[qi] = 1.0 - max(miss, 0.0)
                break
            remaining -= size
            if remaining <= 0:
                break
    return out
