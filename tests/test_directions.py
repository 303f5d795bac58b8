"""Directions as one table: ground truth, evaluation, the oracle and the demo gallery all read
``mmkit.data.directions.DIRECTIONS``; evaluation takes a method or embeddings with ids."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from mmkit.data import World
from mmkit.data import directions as D
from mmkit.data.relevance import oracle_hit_rate
from mmkit.errors import InputError
from mmkit.methods.base import RetrievalMethod
from mmkit.methods.evaluate import (Embedded, evaluate, oracle_results, run_direction,
                                    score_direction)


@pytest.fixture(scope="module")
def world():
    return World(n=150, seed=8)


@pytest.fixture(scope="module")
def images(world):
    return world.indices("test")


class Oracleish(RetrievalMethod):
    """Embeds every modality by its world id's one-hot class plus noise: a real method for
    the API, with no learning. It reads the world it was fitted on."""

    name = "oracleish"

    def __init__(self, directions=None) -> None:
        if directions is not None:
            self.directions = tuple(directions)

    def fit(self, world, images):
        self.world = world
        self.rng = np.random.default_rng(0)
        return self

    def _by_class(self, labels):
        x = np.eye(64, dtype=np.float32)[labels] + 0.3 * self.rng.random((len(labels), 64),
                                                                       dtype=np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    def _image_ids(self, pixels):
        flat = self.world.images.reshape(len(self.world), -1)
        return [int(np.flatnonzero((flat == p.reshape(-1)).all(1))[0]) for p in pixels]

    def embed_images(self, images, *, partner="text", batch_size=None, progress=None):
        return self._by_class(self.world.labels[self._image_ids(images)])

    def embed_texts(self, texts):
        ids = [self.world.captions.index(t) for t in texts]
        return self._by_class(self.world.labels[self.world.caption_image[ids]])

    def embed_audio(self, clips, sr):
        ids = [int(np.flatnonzero((self.world.audio == c).all(1))[0]) for c in clips]
        return self._by_class(self.world.labels[ids])


def naive_ground_truth(world, d, images):
    """Query/gallery ids, relevance and positives of direction ``d`` by plain loops."""
    def ids(modality):
        if D.MODALITY_UNIT[modality] == "caption":
            return [j for i in images for j in world.captions_of(int(i))]
        return [int(i) for i in images]

    qids, gids = ids(d.query), ids(d.gallery)
    rel = np.zeros((len(qids), len(gids)), np.int8)
    pos = np.zeros(rel.shape, bool)
    for a, q in enumerate(qids):
        for b, g in enumerate(gids):
            if d.units == ("scene", "scene"):
                r = sum(int(world.objects[q, 0, t] == world.objects[g, 0, t]) for t in range(3))
                p = world.labels[q] == world.labels[g]
            elif d.query_unit == "caption":
                r = world.caption_relevance(np.array([q]), np.array([g]))[0, 0]
                p = world.caption_image[q] == g
            else:
                r = world.caption_relevance(np.array([g]), np.array([q]))[0, 0]
                p = world.caption_image[g] == q
            if d.exclude_self and q == g:
                r, p = 0, False
            rel[a, b], pos[a, b] = r, p
    return np.array(qids), np.array(gids), rel, pos


@pytest.mark.parametrize("name", list(D.DIRECTIONS))
def test_ground_truth_follows_the_table(world, name):
    d = D.DIRECTIONS[name]
    images = world.indices("test")[:12]
    qids, gids, rel, pos = naive_ground_truth(world, d, images)
    got_q, got_g = world.direction_ids(name, images)
    assert np.array_equal(got_q, qids) and np.array_equal(got_g, gids)
    got_rel, got_pos = world.ground_truth(name, images)
    assert np.array_equal(got_rel, rel)
    assert np.array_equal(got_pos, pos)
    assert pos.any()


def test_the_table_says_what_the_readme_says():
    t = D.DIRECTIONS
    assert t["image->image"].exclude_self and not t["audio->image"].exclude_self
    assert {n for n, d in t.items() if d.positive == "class"} == {"image->image", "audio->image"}
    assert t["speech->image"].units == t["text->image"].units
    assert D.DEMO_DIRECTIONS == ("text->image", "image->text", "image->image", "audio->image",
                                 "speech->image")
    for bad in (dict(name="text->image", query="image", gallery="text", positive="pair"),
                dict(name="text->text", query="text", gallery="text", positive="pair"),
                dict(name="text->image", query="text", gallery="image", positive="class"),
                dict(name="smell->image", query="smell", gallery="image", positive="pair")):
        with pytest.raises(ValueError):
            D.Direction(exclude_self=False, summary="", **bad)


def test_speech_and_text_share_their_ground_truth(world, images):
    assert all(np.array_equal(a, b) for a, b in zip(world.ground_truth("speech->image", images),
                                                    world.ground_truth("text->image", images)))


def test_unknown_direction_or_modality_is_one_line(world, images):
    for call in (lambda: world.ground_truth("smell->image", images),
                 lambda: world.unit_ids("smell", images),
                 lambda: oracle_results(world, images, ["image->smell"])):
        with pytest.raises(InputError) as info:
            call()
        assert "\n" not in str(info.value) and "smell" in str(info.value)


@pytest.mark.parametrize("images, message", [
    (np.array([], dtype=np.int64), "no images"), (np.array([0, 0, 1]), "duplicate"),
    (np.array([0, 10**6]), "outside this world"), (np.array([[0, 1]]), "1-D"),
])
def test_bad_image_sets(world, images, message):
    with pytest.raises(InputError, match=message):
        world.ground_truth("text->image", images)


def test_a_world_without_test_images_cannot_be_evaluated():
    tiny = World(n=1, seed=0)
    assert len(tiny.indices("test")) == 0
    with pytest.raises(InputError, match="empty split"):
        oracle_results(tiny, tiny.indices("test"))
    method = Oracleish().fit(tiny, tiny.indices("train"))
    with pytest.raises(InputError, match="empty split"):
        evaluate(method, tiny, tiny.indices("test"))


def test_adding_a_direction_is_one_entry(world, images, monkeypatch):
    """A new direction (a scene's sound finds the scene's captions) works everywhere once it
    is in the table: ground truth, oracle, evaluation."""
    new = D.Direction("audio->text", "audio", "text", "pair", False, "a sound finds captions")
    monkeypatch.setitem(D.DIRECTIONS, new.name, new)
    rel, pos = world.ground_truth("audio->text", images)
    rel_it, pos_it = world.ground_truth("image->text", images)
    assert np.array_equal(rel, rel_it) and np.array_equal(pos, pos_it)
    oracle = oracle_results(world, images, ["audio->text"])["audio->text"]
    assert oracle == oracle_results(world, images, ["image->text"])["image->text"]
    method = Oracleish(directions=["audio->text"]).fit(world, world.indices("train"))
    results, runs = evaluate(method, world, images)
    assert list(results) == ["audio->text"]
    assert runs["audio->text"].scores.shape == (len(images), 5 * len(images))


def test_the_query_never_retrieves_itself_and_the_oracle_knows(world, images):
    method = Oracleish().fit(world, world.indices("train"))
    run = run_direction(method, world, "image->image", images)
    diag = np.arange(len(images))
    assert np.isneginf(run.scores[diag, diag]).all()
    assert (run.relevance[diag, diag] == 0).all() and not run.positives[diag, diag].any()
    assert np.isfinite(np.delete(run.scores, diag * (len(images) + 1))).all()
    # the oracle's expected R@1 with the query removed, against brute force over tie orders
    mask = D.DIRECTIONS["image->image"].self_mask(images, images)
    got = oracle_hit_rate(run.relevance, run.positives, 1, exclude=mask)
    for q in range(5):
        keep = ~mask[q]
        rel, pos = run.relevance[q, keep], run.positives[q, keep]
        top = rel == rel.max()
        assert got[q] == pytest.approx(pos[top].sum() / top.sum() if pos[top].any() else 0.0)


def test_oracle_exclusion_on_a_tiny_case_by_enumeration():
    rel = np.array([[3, 3, 2, 3]])
    pos = np.array([[True, False, False, True]])
    exclude = np.array([[True, False, False, False]])   # item 0 is the query itself
    # without item 0: relevance (3, 2, 3), positive only the last; R@1 = 1/2 over tie orders
    orders = [p for p in itertools.permutations([1, 2, 3])
              if all(rel[0, a] >= rel[0, b] for a, b in zip(p, p[1:]))]
    expect = np.mean([pos[0, p[0]] for p in orders])
    assert oracle_hit_rate(rel, pos, 1, exclude=exclude)[0] == pytest.approx(expect) == 0.5
    assert oracle_hit_rate(rel, pos, 1)[0] == pytest.approx(2 / 3)


def test_precomputed_embeddings_give_the_same_run(world, images):
    method = Oracleish().fit(world, world.indices("train"))
    run = run_direction(method, world, "text->image", images)
    qids, gids = world.direction_ids("text->image", images)
    rng = np.random.default_rng(1)
    q, g = rng.normal(size=(len(qids), 8)), rng.normal(size=(len(gids), 8))
    mine = score_direction(world, "text->image", images, Embedded(q, qids), Embedded(g, gids))
    assert np.allclose(mine.scores, q @ g.T, atol=1e-5)
    assert np.array_equal(mine.relevance, run.relevance)
    assert np.array_equal(mine.positives, run.positives)


@pytest.mark.parametrize("break_ids, message", [
    (lambda q, g: (q[::-1], g), "query ids do not match"),
    (lambda q, g: (q, g[:-1]), "gallery"),
    (lambda q, g: (q + 1, g), "first difference at position 0"),
])
def test_mismatched_ids_raise(world, images, break_ids, message):
    qids, gids = world.direction_ids("text->image", images)
    q_ids, g_ids = break_ids(qids, gids)
    q = np.ones((len(q_ids), 4))
    g = np.ones((len(g_ids), 4))
    with pytest.raises(InputError, match=message) as info:
        score_direction(world, "text->image", images, Embedded(q, q_ids), Embedded(g, g_ids))
    assert "\n" not in str(info.value)


def test_embeddings_of_other_images_are_refused(world, images):
    """The old private embedder could be built for other images and silently scored them."""
    method = Oracleish().fit(world, world.indices("train"))
    other = world.indices("val")
    qids, gids = world.direction_ids("image->image", other)
    vectors = method.embed_images(world.images[other], partner="image")
    with pytest.raises(InputError, match="ids do not match"):
        score_direction(world, "image->image", images, Embedded(vectors, qids),
                        Embedded(vectors, gids))
    with pytest.raises(InputError, match="RetrievalMethod"):
        run_direction(object(), world, "text->image", images)


def test_a_method_is_only_asked_for_what_it_does(world, images):
    method = Oracleish().fit(world, world.indices("train"))
    with pytest.raises(InputError, match="does not do speech->image"):
        evaluate(method, world, images, ["speech->image"])
    assert list(evaluate(method, world, images)[0]) == [d for d in D.DEMO_DIRECTIONS
                                                        if d in method.directions]
