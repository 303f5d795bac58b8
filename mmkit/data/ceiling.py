"""The world's Bayes ceiling: rank by the caption generator's own likelihood.

The relevance oracle (:func:`mmkit.methods.evaluate.oracle_results`: rank by graded relevance
0-3, ties broken at random) is *not* the best any system can do. Among the images that fit a
caption completely, the generator was more likely to have written that caption from some than
from others: an image with one object never yields a relation caption, a sign is mentioned 70 %
of the time when there is one, a caption that names no second object is likelier from a
one-object scene (probability 1) than from a busier one (0.55), and so on. A system that has
learnt these regularities beats the relevance oracle; the true ceiling ranks by the
probability the generator assigns to what a caption says.

This module computes that probability exactly from the generator's own numbers
(:func:`mmkit.data.captions.make_caption` and ``_choose_main_attrs`` draw with the named
constants :data:`~mmkit.data.captions.KEEP_P`, ``P_SECOND``, ... that this module reads; a
Monte-Carlo test against ``make_caption`` checks the derivation):

- ``p(structure | scene)`` (:func:`caption_log_likelihood`): what a caption *says*
  (:class:`~mmkit.data.captions.CaptionStruct`: main mention, second object and relation,
  style, sign word). The wording is drawn afterwards with probabilities that do not depend on
  the scene, so it cancels from every comparison and is left out.
- the scene's main object and class as an observer of the image can infer them
  (:func:`main_posterior`, :func:`class_posterior`),
- the Bayes-optimal ranking scores of every direction (:func:`ceiling_scores`) and their
  expected hit rates under random tie-breaking (:func:`ceiling_hit_rates`).

**What an observer sees** (``observable=True``, the default). The picture (and the sound)
shows every object's attributes and position, but not which of several equally large objects
the generator treated as the main one (row 0 of :attr:`World.objects`). Scene generation draws
the class from ``class_probs``, gives the main object the largest size ``m``, draws every other
object's shape, colour and texture uniformly (1/320 per combination, whatever the class) and
its size uniformly in ``0..m``. Given the unordered objects, the probability that object ``t``
was the main one is therefore proportional to

    [size_t is the largest size] * [(shape, colour, texture)_t is a class the image's split can
    hold] * class_probs[class_t]

because every other factor (the non-main objects' attributes and sizes, rotations, tints) is
the same whichever object is called main and cancels in the normalisation. "Can hold": train,
val and test images hold only seen classes, unseen-split images only the unseen classes
(:attr:`World.unseen_classes`). With ``observable=False`` row 0 is known to be the main object
(the generator's truth), as a system that could read the scene's internals would know.

**Approximations, both documented and small:**

- The five captions of an image are made different sentences (``World._build_captions``
  redraws a caption whose text was already used, up to 20 times). This module ignores the
  redraw, i.e. it treats every caption as an independent draw. Measured on the demo world
  (``WorldConfig(n=2500, seed=0)``): 3 of its 12,500 captions (0.02 %) needed a redraw (the
  wording has enough variety that equal sentences are rare), so the distribution of a
  caption's structure moves by a few hundredths of a percent at most.
- Object placement (``_place``) is sequential rejection sampling, so the density of the
  objects' positions is not exactly symmetric between two equally large objects near the
  borders; the observer model treats it as symmetric. It does not affect ``observable=False``.
- Scene -> caption ranking (image->text) treats the captions of the gallery independently:
  the constraint that every image has exactly five captions (a matching problem) is not used.
"""
from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import numpy as np

from mmkit.data import vocab as V
from mmkit.data.captions import KEEP_P, P_SECOND, P_SECOND_COLOUR, P_STYLE, P_WORD
from mmkit.data.directions import Direction, check_image_set, get_direction
from mmkit.data.relevance import oracle_hit_rate
from mmkit.errors import InputError
from mmkit.validate import positive_int

if TYPE_CHECKING:  # pragma: no cover
    from mmkit.data.world import World

__all__ = ["KEEP_P", "P_SECOND", "P_SECOND_COLOUR", "P_STYLE", "P_WORD", "acceptance_probability",
           "relation_matrix", "class_index_table", "main_prior", "structure_log_likelihood",
           "caption_log_likelihood", "main_posterior", "class_posterior", "ceiling_scores",
           "ceiling_hit_rates"]

#: decimals to which log-probabilities are rounded, so that equal values compare equal
DECIMALS = 10
_CHUNK = 256


def _accepted(keep: np.ndarray) -> np.ndarray:
    """bool [...]: a keep mask [..., 5] passes ``_choose_main_attrs``'s rejection test."""
    keep = np.asarray(keep, bool)
    return (keep.sum(-1) >= 2) & (keep[..., 0] | keep[..., 1])


def acceptance_probability(keep_p: tuple[float, ...] = KEEP_P) -> float:
    """P(a keep mask drawn with ``keep_p`` passes the rejection test), summed over the 32
    masks. The main mention's distribution is the masked product divided by this."""
    total = 0.0
    for mask in itertools.product((False, True), repeat=len(keep_p)):
        if _accepted(np.array(mask)):
            total += float(np.prod([p if k else 1 - p for p, k in zip(keep_p, mask)]))
    return total


def relation_matrix(xy: np.ndarray, n_objects: np.ndarray) -> np.ndarray:
    """int8 [N, K, K]: ``relation_between(xy[t], xy[j])`` (index into
    :data:`~mmkit.data.vocab.RELATIONS`: the *dominant* relation "t REL j") for every pair of
    real objects ``t != j``, -1 elsewhere.

    Same arithmetic as :func:`mmkit.data.captions.relation_between` (float32 differences,
    horizontal wins ties), so the result is identical bit for bit.
    """
    xy = np.asarray(xy)
    n, k, _ = xy.shape
    dx = xy[:, :, None, 0] - xy[:, None, :, 0]
    dy = xy[:, :, None, 1] - xy[:, None, :, 1]
    left, right, above, below = (V.RELATIONS.index(r)
                                 for r in ("left of", "right of", "above", "below"))
    rel = np.where(np.abs(dx) >= np.abs(dy), np.where(dx < 0, left, right),
                   np.where(dy < 0, above, below)).astype(np.int8)
    real = np.arange(k)[None, :] < np.asarray(n_objects)[:, None]
    pair = real[:, :, None] & real[:, None, :] & ~np.eye(k, dtype=bool)[None]
    return np.where(pair, rel, -1).astype(np.int8)


def class_index_table() -> np.ndarray:
    """int16 [shapes, colours, textures]: the class index of each combination, -1 if none."""
    table = np.full((len(V.SHAPES), len(V.COLOURS), len(V.TEXTURES)), -1, np.int16)
    for c in V.CLASSES:
        table[c.shape, c.colour, c.texture] = c.index
    return table


def _object_classes(objects: np.ndarray, n_objects: np.ndarray) -> np.ndarray:
    """int [N, K]: the class index of every real object's (shape, colour, texture), -1 for
    combinations that are no class and for padding rows."""
    objects = np.asarray(objects)
    real = np.arange(objects.shape[1])[None, :] < np.asarray(n_objects)[:, None]
    o = np.maximum(objects[..., :3], 0)
    cls = class_index_table()[o[..., 0], o[..., 1], o[..., 2]].astype(np.int64)
    return np.where(real, cls, -1)


def main_prior(objects: np.ndarray, n_objects: np.ndarray, class_probs: np.ndarray,
               allowed: np.ndarray) -> np.ndarray:
    """float64 [N, K]: P(object t is the main one | the unordered scene), the observer model
    of the module docstring.

    Args:
        objects: int [N, K, 5] attribute ids (shape, colour, texture, size, hpos).
        n_objects: int [N] real rows per scene.
        class_probs: float [C] the world's class probabilities.
        allowed: bool [N, C] classes each scene can hold (its split's classes).

    A scene in which no object qualifies gets an all-zero row (every caption then has
    probability 0 on it); world scenes always have one.
    """
    objects = np.asarray(objects)
    n, k = objects.shape[:2]
    cls = _object_classes(objects, n_objects)
    real = cls >= 0
    sizes = np.where(np.arange(k)[None, :] < np.asarray(n_objects)[:, None],
                     objects[..., 3], -1)
    largest = sizes == sizes.max(1, keepdims=True)
    safe = np.maximum(cls, 0)
    ok = real & largest & np.take_along_axis(np.asarray(allowed, bool), safe, axis=1)
    w = np.where(ok, np.asarray(class_probs, np.float64)[safe], 0.0)
    total = w.sum(1, keepdims=True)
    return np.divide(w, total, out=np.zeros_like(w), where=total > 0)


def structure_log_likelihood(main: np.ndarray, second: np.ndarray, relation: np.ndarray,
                             style: np.ndarray, word: np.ndarray, objects: np.ndarray,
                             xy: np.ndarray, n_objects: np.ndarray, styles: np.ndarray,
                             words: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """float64 [M, N]: log p(caption structure | scene) of M structures and N scenes under
    :func:`~mmkit.data.captions.make_caption`, ``-inf`` where the generator cannot say it.

    With ``t`` the main object (weighted by ``prior[n, t]``) the factors are

    - main mention: for each attribute, ``KEEP_P[a]`` if said (and it must equal object t's
      value) or ``1 - KEEP_P[a]`` if silent, divided by :func:`acceptance_probability`;
      a mention that fails the rejection test has probability 0;
    - second object: no relation: 1 for a one-object scene, ``1 - P_SECOND`` otherwise;
      a relation: ``P_SECOND / (n - 1)`` summed over the other objects j whose shape (and
      colour, said with ``P_SECOND_COLOUR``, silent with the rest) match and for which
      ``relation_between(xy[t], xy[j])`` is the said relation;
    - style: ``P_STYLE`` if said (must be the scene's), ``1 - P_STYLE`` if silent;
    - sign word: ``P_WORD`` if said (must be the scene's word), ``1 - P_WORD`` if silent on a
      scene with a sign, 1 if silent on a scene without one, 0 if said on one without.

    Args:
        main, second: int [M, 5] mentioned attributes (-1 = not said).
        relation, style, word: int [M] (-1 = not said).
        objects: int [N, K, 5]; xy: float32 [N, K, 2]; n_objects, styles, words: int [N].
        prior: float [N, K] P(main = t) per scene (one-hot on row 0 for the generator's truth).

    Values are rounded to :data:`DECIMALS` decimals so that mathematically equal likelihoods
    compare equal.
    """
    main, second = np.asarray(main), np.asarray(second)
    relation, style, word = np.asarray(relation), np.asarray(style), np.asarray(word)
    objects = np.asarray(objects)
    n_objects, styles, words = np.asarray(n_objects), np.asarray(styles), np.asarray(words)
    prior = np.asarray(prior, np.float64)
    m, n, k = len(main), len(objects), objects.shape[1]
    real = np.arange(k)[None, :] < n_objects[:, None]                      # [N, K]
    rel_mat = relation_matrix(xy, n_objects)                                # [N, K, K]
    per_other = P_SECOND / np.maximum(n_objects - 1, 1)                     # [N]

    # factors that depend on the caption only: the main mention's keep mask, the second's
    # colour, the style and the word being said or not
    said = main >= 0
    keep_p = np.asarray(KEEP_P)
    with np.errstate(divide="ignore"):
        log_mask = np.log(np.where(said, keep_p, 1 - keep_p)).sum(1) \
            - np.log(acceptance_probability())
        log_mask = np.where(_accepted(said), log_mask, -np.inf)
    has_rel = relation >= 0
    well_formed = np.where(has_rel, (second[:, 0] >= 0) & np.all(second[:, 2:] < 0, axis=1),
                           np.all(second < 0, axis=1))
    log_caption = np.where(well_formed, log_mask, -np.inf)                  # [M]

    out = np.empty((m, n), np.float64)
    for lo in range(0, m, _CHUNK):
        sl = slice(lo, min(m, lo + _CHUNK))
        c_main, c_sec, c_rel = main[sl], second[sl], relation[sl]
        c_said, c_has = said[sl], has_rel[sl]
        # main mention fully matched by object t: [c, N, K]
        match = np.all(~c_said[:, None, None, :] | (c_main[:, None, None, :] == objects[None]),
                       axis=-1) & real[None]
        # second object j fits what is said of it: [c, N, K]
        colour_said = c_sec[:, 1] >= 0
        fits = (objects[None, :, :, 0] == c_sec[:, None, None, 0]) & real[None]
        colour_factor = np.where(colour_said[:, None, None],
                                 P_SECOND_COLOUR * (objects[None, :, :, 1]
                                                    == c_sec[:, None, None, 1]),
                                 1 - P_SECOND_COLOUR)
        sec_j = fits * colour_factor
        # relation t -> j is the said one: [c, N, K(t), K(j)]
        rel_ok = rel_mat[None] == np.where(c_has, c_rel, -2)[:, None, None, None]
        with_rel = per_other[None, :, None] * np.einsum("cntj,cnj->cnt", rel_ok, sec_j)
        without = np.where(n_objects > 1, 1 - P_SECOND, 1.0)[None, :, None]
        second_factor = np.where(c_has[:, None, None], with_rel, without)
        mixture = np.einsum("cnt,nt->cn", match * second_factor, prior)
        s, w = style[sl], word[sl]
        style_factor = np.where(s[:, None] >= 0, P_STYLE * (s[:, None] == styles[None]),
                                1 - P_STYLE)
        sign = words[None] >= 0
        word_factor = np.where(w[:, None] >= 0, P_WORD * (w[:, None] == words[None]),
                               np.where(sign, 1 - P_WORD, 1.0))
        with np.errstate(divide="ignore"):
            out[sl] = log_caption[sl, None] + np.log(mixture) + np.log(style_factor) \
                + np.log(word_factor)
    return np.round(out, DECIMALS)


def _images(world: World, images: np.ndarray) -> np.ndarray:
    n = world.config.n
    return check_image_set(images, n, f"this world (n={n}; a small world may have no test "
                                      "images: use a larger n)")


def _allowed(world: World, images: np.ndarray) -> np.ndarray:
    """bool [N, C]: the classes each image's split can hold."""
    unseen = np.zeros(V.N_CLASSES, bool)
    unseen[np.asarray(world.unseen_classes, np.int64)] = True
    is_unseen = world.split[images] == "unseen"
    return np.where(is_unseen[:, None], unseen[None], ~unseen[None])


def main_posterior(world: World, images: np.ndarray, observable: bool = True) -> np.ndarray:
    """float64 [N, K]: P(object t of each image is its main object | what the image shows)
    (:func:`main_prior` with the world's class probabilities and split classes);
    ``observable=False``: one-hot on row 0, the generator's truth."""
    images = _images(world, images)
    objects = world.objects[images]
    if not observable:
        out = np.zeros(objects.shape[:2])
        out[:, 0] = 1.0
        return out
    return main_prior(objects, world.n_objects[images], world.class_probs,
                      _allowed(world, images))


def class_posterior(world: World, images: np.ndarray, observable: bool = True) -> np.ndarray:
    """float64 [N, C]: P(the image's class is c | what it shows), C = 64 classes: the main
    posterior summed over objects of each class (one-hot on the true class with
    ``observable=False``)."""
    images = _images(world, images)
    post = main_posterior(world, images, observable)
    cls = _object_classes(world.objects[images], world.n_objects[images])
    out = np.zeros((len(images), V.N_CLASSES))
    rows = np.repeat(np.arange(len(images)), post.shape[1])
    ok = cls.reshape(-1) >= 0
    np.add.at(out, (rows[ok], cls.reshape(-1)[ok]), post.reshape(-1)[ok])
    return out


def caption_log_likelihood(world: World, captions: np.ndarray, images: np.ndarray,
                           observable: bool = True) -> np.ndarray:
    """float64 [M, N]: log p(what caption m says | image n) under the world's caption
    generator, ``-inf`` where impossible (see :func:`structure_log_likelihood`).

    ``observable=True``: marginalised over which of the image's equally large objects is
    the main one (:func:`main_posterior`); ``False``: row 0 is the main object.
    """
    captions = np.asarray(captions)
    if captions.ndim != 1 or (captions.size and captions.dtype.kind not in "iu"):
        raise InputError(f"captions must be a 1-D array of caption indices, got shape "
                         f"{captions.shape} and dtype {captions.dtype}")
    if captions.size and (captions.min() < 0 or captions.max() >= len(world.captions)):
        bad = captions[(captions < 0) | (captions >= len(world.captions))][0]
        raise InputError(f"caption index {int(bad)} is outside this world "
                         f"({len(world.captions)} captions)")
    images = _images(world, images)
    return structure_log_likelihood(
        world.caption_main[captions], world.caption_second[captions],
        world.caption_relation[captions], world.caption_style[captions],
        world.caption_word[captions], world.objects[images], world.xy[images],
        world.n_objects[images], world.styles[images], world.words[images],
        main_posterior(world, images, observable))


def _log_rounded(p: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.round(np.log(p), DECIMALS)


def ceiling_scores(world: World, direction: str | Direction, images: np.ndarray,
                   observable: bool = True) -> np.ndarray:
    """float64 [Q, G]: Bayes-optimal ranking scores of ``direction`` over ``images``, queries
    and gallery exactly as :meth:`World.direction_ids` gives them (higher ranks first).

    - caption -> image (text->image, speech->image): log p(caption | image).
    - image -> text: the log posterior that the caption came from the query image,
      log p(c | i) - log sum_j p(c | j) over the images (uniform prior over the gallery).
    - image -> image: log P(same class) = log sum_c P(c | query) P(c | gallery image);
      the query itself is ``-inf`` (:meth:`Direction.self_mask`).
    - audio -> image: the sound shows every object's shape, colour, size, texture and
      left-to-right order, so the same observer model applies; the query's own scene is
      identified with certainty (continuous positions make a coincidence impossible) and
      its own image scores log 1 = 0.

    Scores are rounded to :data:`DECIMALS` decimals, so mathematically equal scores are
    equal floats and random tie-breaking (:func:`ceiling_hit_rates`) is exact.
    """
    d = get_direction(direction)
    images = _images(world, images)
    qids, gids = world.direction_ids(d, images)
    if d.units == ("caption", "scene"):
        return caption_log_likelihood(world, qids, gids, observable)
    if d.units == ("scene", "caption"):
        ll = caption_log_likelihood(world, gids, qids, observable)       # [G captions, Q]
        top = ll.max(1, keepdims=True)                                   # finite: own image
        with np.errstate(divide="ignore", invalid="ignore"):
            norm = top + np.log(np.exp(ll - top).sum(1, keepdims=True))
            post = np.where(np.isfinite(ll), ll - norm, -np.inf)
        return np.round(post.T, DECIMALS)
    p = class_posterior(world, qids, observable) @ class_posterior(world, gids, observable).T
    if d.query == "audio":
        p[qids[:, None] == gids[None, :]] = 1.0
    scores = _log_rounded(p)
    mask = d.self_mask(qids, gids)
    if mask is not None:
        scores[mask] = -np.inf
    return scores


def ceiling_hit_rates(world: World, direction: str | Direction, images: np.ndarray,
                      ks: tuple[int, ...] = (1, 5, 10),
                      observable: bool = True) -> dict[str, float]:
    """``{"R@1": ..., "R@5": ..., "R@10": ...}``: the mean expected hit rate (any positive in
    the top K) of the Bayes ranking :func:`ceiling_scores`, ties broken uniformly at random
    (:func:`mmkit.data.relevance.oracle_hit_rate` on the float scores; excluded items as in
    the evaluation).

    Optimality: ranking by the posterior is exactly optimal for R@1 (the top item is the
    likeliest positive), and for directions with one positive per query (text->image,
    speech->image) at every K. With several positives (image->text's five captions, the
    class positives of image->image and audio->image) it maximises the expected *number* of
    positives in the top K, which is near-optimal, not provably optimal, for "any hit in the
    top K". mAP and NDCG@10 are functions of the graded relevance, and ranking by relevance
    already reaches 1.0 on both, so their ceiling is the relevance oracle's.
    """
    d = get_direction(direction)
    ks = tuple(positive_int(k, "k") for k in ks)
    images = _images(world, images)
    scores = ceiling_scores(world, d, images, observable)
    _, pos = world.ground_truth(d, images)
    mask = d.self_mask(*world.direction_ids(d, images))
    return {f"R@{k}": float(oracle_hit_rate(scores, pos, k, exclude=mask).mean()) for k in ks}
