"""The embedded world: determinism, structure, ground truth, modalities."""
from __future__ import annotations

import itertools
import subprocess
import sys

import numpy as np
import pytest

from mmkit.data import World, WorldConfig
from mmkit.data import vocab as V
from mmkit.data.captions import tokenize
from mmkit.data.relevance import oracle_hit_rate, relation_table

FINGERPRINT = ("from mmkit.data import World; "
               "print(World(n=40, seed=11, imbalance=5.0).fingerprint())")


@pytest.mark.subprocess
def test_same_seed_is_byte_identical_across_processes():
    out = [subprocess.run([sys.executable, "-c", FINGERPRINT], capture_output=True, text=True,
                          check=True).stdout.strip() for _ in range(2)]
    assert out[0] == out[1] == World(n=40, seed=11, imbalance=5.0).fingerprint()


def test_different_seeds_differ():
    a, b = World(n=30, seed=1), World(n=30, seed=2)
    assert a.captions != b.captions
    assert not np.array_equal(a.images, b.images)


def test_item_does_not_depend_on_what_else_was_generated():
    """Scene 7 is the same in a world of 50 scenes rendered all at once and in a world of 10
    scenes where only scene 7 is drawn: no draw depends on the world's size or on order."""
    big, small = World(n=50, seed=4), World(n=10, seed=4)
    assert np.array_equal(small.render(7), big.images[7])
    assert np.array_equal(small.sound(7), big.audio[7])
    assert small.captions[35:40] == big.captions[35:40]
    assert np.array_equal(small.labels, big.labels[:10])
    assert not np.array_equal(big.images[7], big.images[8])


def test_parallel_render_is_byte_identical_to_serial(monkeypatch):
    """Large worlds render in forked workers, chunk by chunk: the arrays are exactly the
    serial render's (chunks of 7 scenes over 2 workers; the last chunk is short)."""
    import mmkit.data.world as W

    monkeypatch.setattr(W, "PARALLEL_MIN_SCENES", 1)
    monkeypatch.setattr(W, "RENDER_CHUNK", 7)
    monkeypatch.setattr(W, "_render_workers", lambda n: 2)
    par = World(n=30, seed=5)
    images, audio = par.images, par.audio
    assert images.shape == (30, 64, 64, 3) and images.dtype == np.uint8
    assert np.array_equal(images, np.stack([par.render(i) for i in range(30)]))
    assert np.array_equal(audio, np.stack([par.sound(i) for i in range(30)]))
    assert W._FORKED is None   # the forked-worker handle does not keep the world alive


@pytest.mark.parametrize("kwargs, field", [
    ({"n": 0}, "n must be a positive"), ({"n": -5}, "n must be a positive"),
    ({"image_size": 8}, "image_size"), ({"max_objects": 4}, "max_objects"),
    ({"imbalance": 0.5}, "imbalance"), ({"split_fractions": (0.5, 0.2, 0.2)}, "split_fractions"),
    ({"style_probs": (1.0, 0.5, 0.0)}, "style_probs"), ({"noise": -1}, "noise"),
])
def test_bad_config_is_one_clear_error(kwargs, field):
    with pytest.raises(ValueError, match=field) as info:
        WorldConfig(**kwargs)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("kwargs, message", [
    ({"image_size": 20.5}, "image_size must be an integer >= 16, got 20.5"),
    ({"image_size": 32.0}, "image_size must be an integer"),
    ({"n": True}, "n must be a positive integer, got True"),
    ({"n": 2.0}, "n must be a positive integer"),
    ({"seed": -1}, "seed must be a non-negative integer"),
    ({"imbalance": float("nan")}, "imbalance must be a finite number >= 1, got nan"),
    ({"imbalance": float("inf")}, "imbalance must be a finite number"),
    ({"sign_prob": 1.5}, "sign_prob must be in \\[0, 1\\]"),
    ({"sign_prob": float("nan")}, "sign_prob must be a finite number"),
    ({"noise": float("nan")}, "noise must be a finite number"),
    ({"audio_seconds": 0}, "audio_seconds must be > 0"),
    ({"sample_rate": 8000.5}, "sample_rate must be an integer"),
    ({"captions_per_image": 0}, "captions_per_image must be a positive integer"),
    ({"n_unseen_classes": 64}, "n_unseen_classes must be an integer in \\[0, 63\\]"),
    ({"split_fractions": (0.7, float("nan"), 0.3)}, "split_fractions"),
    ({"style_probs": (0.5, 0.5)}, "style_probs"),
])
def test_config_checks_types_and_nan_up_front(kwargs, message):
    """Each check names the field and the value; NaN never slips through a bound."""
    from mmkit.errors import InputError

    with pytest.raises(InputError, match=message) as info:
        WorldConfig(**kwargs)
    assert "\n" not in str(info.value)


def test_config_lists_every_problem_at_once():
    from mmkit.errors import InputError

    with pytest.raises(InputError) as info:
        WorldConfig(n=0, noise=-1, image_size=8)
    text = str(info.value)
    assert all(f in text for f in ("n must", "noise must", "image_size must"))


def test_numpy_scalars_are_accepted():
    cfg = WorldConfig(n=np.int64(30), seed=np.int32(2), image_size=np.int16(32),
                      imbalance=np.float32(2.0), sign_prob=np.float64(0.5))
    world = World(cfg)
    assert world.images.shape == (30, 32, 32, 3)
    assert world.captions == World(n=30, seed=2, image_size=32, imbalance=2.0,
                                   sign_prob=0.5).captions


def test_world_from_config_and_overrides():
    from mmkit.errors import InputError

    base = WorldConfig(n=20, seed=3)
    a = World(base, seed=4)                      # overrides replace fields of the config
    assert a.config == WorldConfig(n=20, seed=4)
    assert a.captions == World(n=20, seed=4).captions != World(base).captions
    with pytest.raises(InputError, match="unknown setting\\(s\\) colour"):
        World(base, colour="red")
    with pytest.raises(InputError, match="config must be a WorldConfig"):
        World({"n": 20})
    with pytest.raises(InputError, match="n must be a positive integer"):
        World(base, n=0)


def test_progress_follows_the_flag(capsys):
    World(n=12, seed=0, progress=True).images  # noqa: B018
    assert "render images" in capsys.readouterr().err
    World(n=12, seed=0, progress=False).images  # noqa: B018
    World(n=12, seed=0).images  # noqa: B018 - small worlds render silently by default
    assert capsys.readouterr().err == ""


def test_class_table_is_fine_grained():
    combos = {(c.shape, c.colour, c.texture) for c in V.CLASSES}
    assert len(V.CLASSES) == len(combos) >= 50
    pairs = V.fine_grained_pairs()
    siblings = {a for a, _, _ in pairs} | {b for _, b, _ in pairs}
    assert len(pairs) >= V.N_CLASSES // 2 and len(siblings) >= V.N_CLASSES // 2
    for a, b, attr in pairs:  # the pair really differs in exactly that attribute
        ca, cb = V.CLASSES[a], V.CLASSES[b]
        diff = [n for n in ("shape", "colour", "texture") if getattr(ca, n) != getattr(cb, n)]
        assert diff == [attr]


def test_scene_structure(small_world):
    w = small_world
    assert w.images.shape == (120, 64, 64, 3) and w.images.dtype == np.uint8
    assert w.audio.shape == (120, 16000) and w.audio.dtype == np.float32
    assert np.abs(w.audio).max() <= 1.0
    assert set(np.unique(w.n_objects)) <= {1, 2, 3} and w.n_objects.max() >= 2
    # the main object carries the class; it is the largest
    for i in range(len(w)):
        c = V.CLASSES[int(w.labels[i])]
        assert tuple(w.objects[i, 0, :3]) == (c.shape, c.colour, c.texture)
        k = int(w.n_objects[i])
        assert (w.objects[i, :k, 3] <= w.objects[i, 0, 3]).all()
        assert (w.objects[i, k:] == -1).all()
    assert len(set(w.styles.tolist())) == 3
    assert (w.words >= 0).any() and (w.words < 0).any()


def test_attributes_one_hot(small_world):
    a = small_world.attributes
    assert a.shape == (120, len(small_world.attribute_names))
    sizes = [len(V.ATTRIBUTE_VALUES[n]) for n in V.ATTRIBUTES]
    blocks = np.split(a, np.cumsum(sizes)[:-1], axis=1)
    assert all((b.sum(1) == 1).all() for b in blocks)
    assert (blocks[0].argmax(1) == small_world.objects[:, 0, 0]).all()


def test_captions(small_world):
    w = small_world
    assert len(w.captions) == 5 * len(w)
    for i in range(len(w)):
        texts = [w.captions[j] for j in w.captions_of(i)]
        assert len(set(texts)) == 5
    lengths = [len(tokenize(c)) for c in w.captions]
    assert min(lengths) >= 2 and max(lengths) > 12
    # partial: some captions leave out the shape, some the colour
    assert (w.caption_main[:, 0] < 0).any() and (w.caption_main[:, 1] < 0).any()
    assert (w.caption_relation >= 0).any() and (w.caption_word >= 0).any()
    assert len(V.vocabulary_words()) >= 250


def test_splits(small_world):
    w = World(n=400, seed=8)
    parts = [set(w.indices(s).tolist()) for s in ("train", "val", "test", "unseen")]
    assert sum(len(p) for p in parts) == 400
    assert set().union(*parts) == set(range(400))
    unseen = set(w.unseen_classes.tolist())
    assert all(int(w.labels[i]) in unseen for i in parts[3])
    assert not any(int(w.labels[i]) in unseen for p in parts[:3] for i in p)
    assert np.array_equal(World(n=400, seed=8).split, w.split)
    with pytest.raises(ValueError, match="unknown split"):
        w.indices("dev")


def test_imbalance_profile():
    w = World(n=20, seed=0, imbalance=100.0)
    assert np.isclose(w.class_probs.max() / w.class_probs.min(), 100.0)
    big = World(n=3000, seed=0, imbalance=20.0, n_unseen_classes=0)
    counts = np.bincount(big.labels, minlength=V.N_CLASSES)
    head = np.argsort(-big.class_probs)[:8]
    tail = np.argsort(big.class_probs)[:8]
    assert counts[head].sum() > 5 * counts[tail].sum()


# --- graded relevance ---------------------------------------------------------------------
def _naive_relevance(w: World, j: int, i: int) -> int:
    """Straight transcription of the rules in mmkit.data.relevance, one pair at a time."""
    objs = [tuple(int(v) for v in w.objects[i, k]) for k in range(int(w.n_objects[i]))]
    xy = [tuple(float(v) for v in w.xy[i, k]) for k in range(len(objs))]
    main = [int(v) for v in w.caption_main[j]]
    second = [int(v) for v in w.caption_second[j]]

    def fits(mention, obj):
        return all(m < 0 or m == o for m, o in zip(mention, obj))

    def holds(rel, a, b):
        name = V.RELATIONS[rel]
        return {"left of": xy[a][0] < xy[b][0], "right of": xy[a][0] > xy[b][0],
                "above": xy[a][1] < xy[b][1], "below": xy[a][1] > xy[b][1]}[name]

    full = [k for k, o in enumerate(objs) if fits(main, o)]
    said = sum(m >= 0 for m in main)
    best = max(sum(m >= 0 and m == o for m, o in zip(main, obj)) for obj in objs)
    if not full:
        return 1 if 2 * best >= said else 0
    ok = True
    rel = int(w.caption_relation[j])
    if rel >= 0:
        ok = any(holds(rel, a, b) for a in full for b in range(len(objs))
                 if b != a and fits(second, objs[b]))
    if w.caption_style[j] >= 0 and w.caption_style[j] != w.styles[i]:
        ok = False
    if w.caption_word[j] >= 0 and w.caption_word[j] != w.words[i]:
        ok = False
    return 3 if ok else 2


def test_caption_relevance_matches_naive_rules(small_world):
    w = small_world
    caps = np.arange(0, len(w.captions), 3)
    rel = w.caption_relevance(caps, np.arange(len(w)))
    naive = np.array([[_naive_relevance(w, j, i) for i in range(len(w))] for j in caps])
    assert np.array_equal(rel, naive)
    assert set(np.unique(rel)) == {0, 1, 2, 3}


def test_paired_image_is_fully_relevant(small_world):
    w = small_world
    rel = w.caption_relevance()
    assert (rel[np.arange(len(w.captions)), w.caption_image] == 3).all()
    assert ((rel == 3).sum(1) > 1).mean() > 0.3   # partial captions fit several images


def test_scene_relevance_is_class_agreement(small_world):
    w = small_world
    rel = w.scene_relevance()
    assert np.array_equal(rel == 3, w.labels[:, None] == w.labels[None, :])
    assert np.array_equal(rel, rel.T)


def test_relation_table_is_antisymmetric(small_world):
    t = relation_table(small_world.xy, small_world.n_objects)
    assert np.array_equal(t[..., 0], np.swapaxes(t[..., 1], 1, 2))  # left of <-> right of
    assert np.array_equal(t[..., 2], np.swapaxes(t[..., 3], 1, 2))  # above <-> below


def test_ground_truth_directions(small_world):
    w = small_world
    idx = np.arange(0, 120, 2)
    rel, pos = w.ground_truth("text->image", idx)
    assert rel.shape == (300, 60) and (pos.sum(1) == 1).all()
    assert (rel[pos] == 3).all()
    rel2, pos2 = w.ground_truth("image->text", idx)
    assert np.array_equal(rel2, rel.T) and (pos2.sum(1) == 5).all()
    rel3, pos3 = w.ground_truth("image->image", idx)
    assert not pos3.diagonal().any() and (rel3.diagonal() == 0).all()
    _, pos4 = w.ground_truth("audio->image", idx)
    assert pos4.diagonal().all()
    with pytest.raises(ValueError, match="unknown direction"):
        w.ground_truth("sound->text", idx)


def _brute_force_oracle(rel: np.ndarray, pos: np.ndarray, k: int) -> float:
    """Average hit over every order that sorts by relevance (all tie orders equally likely)."""
    hits, total = 0, 0
    for perm in itertools.permutations(range(len(rel))):
        perm = np.array(perm)
        if not (np.diff(rel[perm]) <= 0).all():
            continue
        total += 1
        hits += bool(pos[perm[:k]].any())
    return hits / total


def test_oracle_hit_rate_equals_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(25):
        n = int(rng.integers(3, 7))
        rel = rng.integers(0, 4, n)
        pos = rng.random(n) < 0.3
        for k in (1, 2, 3):
            expect = _brute_force_oracle(rel, pos, k)
            got = oracle_hit_rate(rel[None], pos[None], k)[0]
            assert got == pytest.approx(expect, abs=1e-12)


def test_caption_relevance_across_chunk_boundaries():
    """Against the naive per-pair rules on 700 captions: the vectorised code works in blocks
    of 256 captions, so this crosses two block boundaries (and a ragged last block)."""
    from mmkit.data import relevance
    from naive_world import naive_grade

    w = World(n=140, seed=6)
    captions = np.arange(700)
    images = np.arange(0, 140, 3)
    assert len(captions) > 2 * relevance._CHUNK and len(captions) % relevance._CHUNK
    got = w.caption_relevance(captions, images)
    expect = np.array([[naive_grade(w, j, i) for i in images] for j in captions], np.int8)
    assert np.array_equal(got, expect)
    assert {0, 1, 2, 3} <= set(np.unique(expect).tolist())
