"""The Bayes ceiling (mmkit.data.ceiling) against a brute-force walk through the caption
generator's random choices, Monte-Carlo samples of ``make_caption`` itself, and properties
that a wrong likelihood would break."""
from __future__ import annotations

import itertools
from collections import Counter, defaultdict

import numpy as np
import pytest

from mmkit.data import DIRECTIONS, World
from mmkit.data import vocab as V
from mmkit.data.captions import CaptionStruct, make_caption, relation_between
from mmkit.data.ceiling import (caption_log_likelihood, ceiling_hit_rates, ceiling_scores,
                                class_posterior, main_posterior, relation_matrix,
                                structure_log_likelihood)
from mmkit.errors import InputError
from mmkit.methods.evaluate import oracle_results


@pytest.fixture(scope="module")
def world():
    return World(n=300, seed=1)


@pytest.fixture(scope="module")
def test_images(world):
    return world.indices("test")


# ---------------------------------------------------------------- naive references
def enumerate_structures(objects, xy, n_objects, style, word) -> dict[CaptionStruct, float]:
    """The exact distribution of make_caption's structure on one scene (row 0 = main), by
    walking every random choice of the generator with its probability. The numbers are read
    off captions.py here, independently of mmkit.data.ceiling; the Monte-Carlo test checks
    them against make_caption."""
    keep_p = (0.85, 0.85, 0.6, 0.35, 0.25)
    full = tuple(int(v) for v in objects[0])
    masks = {}
    for mask in itertools.product((False, True), repeat=5):
        if sum(mask) >= 2 and (mask[0] or mask[1]):
            p = 1.0
            for k, q in zip(mask, keep_p):
                p *= q if k else 1 - q
            masks[mask] = p
    z = sum(masks.values())
    seconds = [((-1,) * 5, -1, 1.0 if n_objects == 1 else 0.55)]
    for j in range(1, n_objects):
        for said, pc in ((True, 0.6), (False, 0.4)):
            sec = (int(objects[j][0]), int(objects[j][1]) if said else -1, -1, -1, -1)
            seconds.append((sec, relation_between(xy[0], xy[j]), 0.45 / (n_objects - 1) * pc))
    styles = [(style, 0.25), (-1, 0.75)]
    words = [(word, 0.7), (-1, 0.3)] if word >= 0 else [(-1, 1.0)]
    dist: dict[CaptionStruct, float] = defaultdict(float)
    for mask, pm in masks.items():
        main = tuple(v if k else -1 for v, k in zip(full, mask))
        for (sec, rel, ps), (st, pst), (wd, pw) in itertools.product(seconds, styles, words):
            dist[CaptionStruct(main, sec, rel, st, wd)] += pm / z * ps * pst * pw
    return dict(dist)


def naive_main_weights(world, i) -> list[float]:
    """P(object t is the main one | the unordered scene i), by a loop over objects and the
    class table."""
    n = int(world.n_objects[i])
    sizes = [int(world.objects[i, t, 3]) for t in range(n)]
    unseen = {int(c) for c in world.unseen_classes}
    want_unseen = world.split[i] == "unseen"
    w = []
    for t in range(n):
        s, c, x = (int(v) for v in world.objects[i, t, :3])
        cls = next((k.index for k in V.CLASSES if (k.shape, k.colour, k.texture) == (s, c, x)),
                   None)
        ok = sizes[t] == max(sizes) and cls is not None and ((cls in unseen) == want_unseen)
        w.append(float(world.class_probs[cls]) if ok else 0.0)
    total = sum(w)
    return [v / total for v in w]


def observable_structures(world, i) -> dict[CaptionStruct, float]:
    """Mixture over the possible main objects of the brute-force distribution of the scene
    re-ordered so that the candidate is row 0."""
    n = int(world.n_objects[i])
    out: dict[CaptionStruct, float] = defaultdict(float)
    for t, wt in enumerate(naive_main_weights(world, i)):
        if wt == 0:
            continue
        order = [t] + [j for j in range(n) if j != t]
        dist = enumerate_structures(world.objects[i][order], world.xy[i][order], n,
                                    int(world.styles[i]), int(world.words[i]))
        for s, p in dist.items():
            out[s] += wt * p
    return dict(out)


def struct_arrays(structs):
    return (np.array([s.main for s in structs]), np.array([s.second for s in structs]),
            np.array([s.relation for s in structs]), np.array([s.style for s in structs]),
            np.array([s.word for s in structs]))


def scene_ll(world, i, structs, prior=None):
    """structure_log_likelihood of ``structs`` on world scene i (row 0 = main by default)."""
    k = world.objects.shape[1]
    if prior is None:
        prior = np.eye(k)[:1]
    return structure_log_likelihood(*struct_arrays(structs), world.objects[[i]], world.xy[[i]],
                                    world.n_objects[[i]], world.styles[[i]], world.words[[i]],
                                    prior)[:, 0]


def cover_scenes(world):
    """Scenes that cover 1, 2 and 3 objects, with and without a sign, and tied sizes."""
    picks = []
    for n_obj in (1, 2, 3):
        for sign in (False, True):
            picks.append(int(np.flatnonzero((world.n_objects == n_obj)
                                            & ((world.words >= 0) == sign))[0]))
    tied = np.flatnonzero((main_posterior(world, np.arange(len(world))) > 0).sum(1) >= 2)
    assert len(tied), "the test world should hold a scene with two possible main objects"
    return picks + [int(tied[0])]


# ---------------------------------------------------------------- the generator's truth
def test_relation_matrix_matches_relation_between(world):
    rel = relation_matrix(world.xy[:40], world.n_objects[:40])
    for i in range(40):
        n = int(world.n_objects[i])
        for t in range(world.objects.shape[1]):
            for j in range(world.objects.shape[1]):
                want = relation_between(world.xy[i, t], world.xy[i, j]) \
                    if (t != j and t < n and j < n) else -1
                assert rel[i, t, j] == want
    # exact ties |dx| == |dy| (horizontal wins) in all four diagonal directions
    xy = np.array([[[0.5, 0.5], [0.75, 0.75], [0.25, 0.25]],
                   [[0.5, 0.5], [0.75, 0.25], [0.25, 0.75]]], np.float32)
    rel = relation_matrix(xy, np.array([3, 3]))
    for i, t, j in itertools.product(range(2), range(3), range(3)):
        if t != j:
            assert rel[i, t, j] == relation_between(xy[i, t], xy[i, j])


def test_likelihood_is_the_brute_force_distribution_and_sums_to_one(world):
    for i in cover_scenes(world):
        dist = enumerate_structures(world.objects[i], world.xy[i], int(world.n_objects[i]),
                                    int(world.styles[i]), int(world.words[i]))
        structs = list(dist)
        p = np.exp(scene_ll(world, i, structs))
        np.testing.assert_allclose(p, [dist[s] for s in structs], rtol=1e-8)
        assert p.sum() == pytest.approx(1.0, abs=1e-9)


def test_monte_carlo_make_caption_matches_the_likelihood(world):
    """Empirical structure frequencies of make_caption (fresh rngs) against
    exp(log-likelihood), within 5 binomial standard errors, and nothing sampled that the
    likelihood calls impossible."""
    draws = 12000
    for i in cover_scenes(world):
        rng = np.random.default_rng([20260101, i])
        counts = Counter(make_caption(rng, world.objects[i], world.xy[i], int(world.n_objects[i]),
                                      int(world.styles[i]), int(world.words[i]))[1]
                         for _ in range(draws))
        support = enumerate_structures(world.objects[i], world.xy[i], int(world.n_objects[i]),
                                       int(world.styles[i]), int(world.words[i]))
        structs = list(set(support) | set(counts))
        p = np.exp(scene_ll(world, i, structs))
        f = np.array([counts[s] for s in structs]) / draws
        assert np.all(p[f > 0] > 0), f"scene {i}: make_caption said something called impossible"
        tol = 5 * np.sqrt(p * (1 - p) / draws) + 1.0 / draws
        worst = int(np.argmax(np.abs(f - p) - tol))
        assert np.all(np.abs(f - p) <= tol), (i, structs[worst], f[worst], p[worst])


def test_world_captions_against_brute_force(world):
    """Every caption of the first images against every one of those images (the caption's
    probability on a scene is 0 unless the brute force can produce it there)."""
    images = np.arange(30)
    caps = world.caption_indices(images)
    ll = caption_log_likelihood(world, caps, images, observable=False)
    for n_idx, i in enumerate(images):
        dist = enumerate_structures(world.objects[i], world.xy[i], int(world.n_objects[i]),
                                    int(world.styles[i]), int(world.words[i]))
        want = np.array([dist.get(world.caption_struct(int(c)), 0.0) for c in caps])
        np.testing.assert_allclose(np.exp(ll[:, n_idx]), want, rtol=1e-8, atol=0)
        assert np.array_equal(np.isneginf(ll[:, n_idx]), want == 0)


# ---------------------------------------------------------------- the observer's model
def test_main_and_class_posterior_match_naive_loops(world):
    images = np.arange(len(world))
    post = main_posterior(world, images)
    cls_post = class_posterior(world, images)
    assert cls_post.shape == (len(world), V.N_CLASSES)
    np.testing.assert_allclose(cls_post.sum(1), 1.0)
    for i in images:
        w = naive_main_weights(world, i)
        np.testing.assert_allclose(post[i, :len(w)], w, rtol=1e-12)
        assert np.all(post[i, len(w):] == 0)
        want = np.zeros(V.N_CLASSES)
        for t, wt in enumerate(w):
            if wt:
                s, c, x = (int(v) for v in world.objects[i, t, :3])
                want[next(k.index for k in V.CLASSES
                          if (k.shape, k.colour, k.texture) == (s, c, x))] += wt
        np.testing.assert_allclose(cls_post[i], want, rtol=1e-12, atol=1e-15)
    known = class_posterior(world, images, observable=False)
    assert np.array_equal(known.argmax(1), world.labels) and np.all(known.max(1) == 1)


def test_observable_likelihood_on_tied_scenes_matches_brute_force(world):
    post = main_posterior(world, np.arange(len(world)))
    tied = np.flatnonzero((post > 0).sum(1) >= 2)[:6]
    caps = np.arange(len(world.captions))[:600]
    ll = caption_log_likelihood(world, caps, tied)
    ll_row0 = caption_log_likelihood(world, caps, tied, observable=False)
    assert np.any(ll != ll_row0), "the observer model must differ on tied scenes"
    for n_idx, i in enumerate(tied):
        dist = observable_structures(world, i)
        want = np.array([dist.get(world.caption_struct(int(c)), 0.0) for c in caps])
        np.testing.assert_allclose(np.exp(ll[:, n_idx]), want, rtol=1e-8, atol=0)
        # and the full support sums to one
        structs = list(dist)
        p = np.exp(scene_ll(world, i, structs, prior=post[[i]]))
        np.testing.assert_allclose(p, [dist[s] for s in structs], rtol=1e-8)
        assert p.sum() == pytest.approx(1.0, abs=1e-9)


def test_equal_likelihoods_are_equal_floats():
    """A caption that fits two equally large candidates alike has, after mixing with weights
    1/3 and 2/3, exactly the likelihood it has on a scene with one candidate."""
    sib = next((a, b) for a, b, attr in V.fine_grained_pairs() if attr == "texture")
    a, b = V.CLASSES[sib[0]], V.CLASSES[sib[1]]
    objects = np.array([[[a.shape, a.colour, a.texture, 2, 0], [0, 0, 0, 1, 2], [-1] * 5],
                        [[a.shape, a.colour, a.texture, 2, 0], [b.shape, b.colour, b.texture, 2, 2],
                         [-1] * 5]])
    xy = np.array([[[0.2, 0.3], [0.8, 0.7], [0, 0]]] * 2, np.float32)
    prior = np.array([[1.0, 0, 0], [1 / 3, 2 / 3, 0]])
    main = np.array([[a.shape, a.colour, -1, -1, -1], [a.shape, a.colour, -1, 2, -1]])
    ll = structure_log_likelihood(main, np.full((2, 5), -1), np.array([-1, -1]),
                                  np.array([-1, 0]), np.array([-1, -1]), objects, xy,
                                  np.array([2, 2]), np.array([0, 0]), np.array([-1, -1]), prior)
    assert np.isfinite(ll).all()
    assert ll[0, 0] == ll[0, 1] and ll[1, 0] == ll[1, 1]


# ---------------------------------------------------------------- properties
def test_own_image_is_possible_and_relations_need_two_objects(world, test_images):
    caps = world.caption_indices(test_images)
    for observable in (True, False):
        ll = caption_log_likelihood(world, caps, test_images, observable)
        own = ll[np.arange(len(caps)), np.repeat(np.arange(len(test_images)),
                                                  world.config.captions_per_image)]
        assert np.isfinite(own).all()
        rel_caps = world.caption_relation[caps] >= 0
        single = world.n_objects[test_images] == 1
        assert rel_caps.any() and single.any()
        assert np.all(np.isneginf(ll[np.ix_(rel_caps, single)]))
        # a mentioned sign word rules out every image without a sign
        word_caps = world.caption_word[caps] >= 0
        no_sign = world.words[test_images] < 0
        assert np.all(np.isneginf(ll[np.ix_(word_caps, no_sign)]))


@pytest.mark.parametrize("name", ["text->image", "image->text"])
def test_ceiling_beats_the_relevance_oracle_at_r1(world, test_images, name):
    oracle = oracle_results(world, test_images, directions=[name])[name]
    for observable in (True, False):
        ceiling = ceiling_hit_rates(world, name, test_images, observable=observable)
        assert ceiling["R@1"] >= oracle["R@1"], (observable, ceiling, oracle)


def test_scene_directions_without_hidden_main_equal_the_oracle(world, test_images):
    """Knowing row 0, P(same class) is 1 or 0: exactly the relevance oracle's top block."""
    oracle = oracle_results(world, test_images, directions=["image->image", "audio->image"])
    for name in ("image->image", "audio->image"):
        ceiling = ceiling_hit_rates(world, name, test_images, observable=False)
        for k, v in ceiling.items():
            assert v == pytest.approx(oracle[name][k], abs=1e-12)


@pytest.mark.parametrize("name", list(DIRECTIONS))
def test_hit_rates_monotone_in_k_and_deterministic(world, test_images, name):
    ks = (1, 2, 5, 10, 20)
    rates = ceiling_hit_rates(world, name, test_images, ks=ks)
    values = [rates[f"R@{k}"] for k in ks]
    assert all(0 <= v <= 1 for v in values)
    assert values == sorted(values)
    a = ceiling_scores(world, name, test_images)
    b = ceiling_scores(World(n=300, seed=1), name, test_images)
    assert a.dtype == np.float64 and np.array_equal(a, b)
    qids, gids = world.direction_ids(name, test_images)
    assert a.shape == (len(qids), len(gids))


def test_image_to_image_excludes_self_and_audio_finds_its_own_image(world, test_images):
    s = ceiling_scores(world, "image->image", test_images)
    assert np.all(np.isneginf(np.diag(s)))
    assert np.isfinite(s[~np.eye(len(s), dtype=bool)]).any()
    a = ceiling_scores(world, "audio->image", test_images)
    assert np.all(np.diag(a) == 0) and np.all(a <= 0)


def test_image_to_text_scores_are_log_posteriors(world, test_images):
    """For each caption, the posteriors over the query images sum to one."""
    s = ceiling_scores(world, "image->text", test_images)
    np.testing.assert_allclose(np.exp(s).sum(0), 1.0, rtol=1e-8)


# ---------------------------------------------------------------- bad input
def test_bad_input(world, test_images):
    with pytest.raises(InputError, match="unknown direction 'text->audio'"):
        ceiling_scores(world, "text->audio", test_images)
    with pytest.raises(InputError, match="unknown direction"):
        ceiling_hit_rates(world, "nope", test_images)
    with pytest.raises(InputError, match="no images given"):
        ceiling_hit_rates(world, "text->image", np.array([], np.int64))
    with pytest.raises(InputError, match="outside this world"):
        main_posterior(world, np.array([0, 300]))
    with pytest.raises(InputError, match="caption index 1500 is outside"):
        caption_log_likelihood(world, np.array([1500]), test_images)
    with pytest.raises(InputError, match="k must be a positive integer"):
        ceiling_hit_rates(world, "text->image", test_images, ks=(0,))
