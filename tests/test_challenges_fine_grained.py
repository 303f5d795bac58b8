"""mmkit.challenges.fine_grained: the sibling pairs, the sibling confusion against a naive
loop, the committed checkpoints and the exercise's checker."""
from __future__ import annotations

import numpy as np
import pytest

from mmkit import checkpoints
from mmkit.challenges import fine_grained as fg
from mmkit.challenges.evaluate import class_retrieval
from mmkit.challenges.model import CLASS_ATTRIBUTES
from mmkit.challenges.training import ChallengeConfig
from mmkit.data import vocab as V
from mmkit.errors import InputError
from mmkit.exercises.nb10 import fine_grained as ex


def _values(k: int) -> tuple[str, str, str]:
    c = V.CLASSES[k]
    return V.SHAPES[c.shape], V.COLOURS[c.colour], V.TEXTURES[c.texture]


def test_sibling_pairs_differ_in_one_near_attribute():
    pairs = fg.sibling_pairs()
    assert len(pairs) == V.N_CLASSES // 2
    one_attribute = {(a, b): attr for a, b, attr in V.fine_grained_pairs()}
    near = {"shape": V._NEAR_SHAPE, "colour": V._NEAR_COLOUR, "texture": V._NEAR_TEXTURE}
    for base, sib, attr in pairs:
        assert base < V.N_CLASSES // 2 <= sib                 # made from a base class
        assert one_attribute[(base, sib)] == attr             # exactly one attribute differs
        i = fg.ATTRIBUTE_KINDS.index(attr)
        assert near[attr][_values(base)[i]] == _values(sib)[i]
    # every second-half class was made as the sibling of exactly one base
    assert sorted(s for _, s, _ in pairs) == list(range(V.N_CLASSES // 2, V.N_CLASSES))


def test_sibling_matrix_and_sibling_of():
    m, a = fg.sibling_matrix(), fg.sibling_attribute_matrix()
    assert m.shape == (64, 64) and (m == m.T).all() and (a == a.T).all() and not m.diagonal().any()
    assert m.sum() == 2 * len(fg.sibling_pairs())
    of = fg.sibling_of()
    assert ((of >= 0) == fg.has_sibling()).all()
    for k in np.flatnonzero(of >= 0):
        assert m[k, of[k]]
        diff = [x != y for x, y in zip(_values(k), _values(of[k]))]
        assert sum(diff) == 1 and fg.ATTRIBUTE_KINDS[diff.index(True)] == \
            fg.ATTRIBUTE_KINDS[a[k, of[k]]]
    # a sibling's entry is the base it came from, and that base's entry is mutual or its
    # other sibling
    for base, sib, _ in fg.sibling_pairs():
        assert of[sib] == base and m[base, of[base]]


def _naive(scores, labels, scenes, gl):
    pairs = {(a, b) for a, b, _ in fg.sibling_pairs()} | {(b, a) for a, b, _ in
                                                          fg.sibling_pairs()}
    attr_of = {}
    for a, b, attr in fg.sibling_pairs():
        attr_of[(a, b)] = attr_of[(b, a)] = attr
    errors = sib_errors = 0
    chance = []
    by = {k: 0 for k in fg.ATTRIBUTE_KINDS}
    hits = {True: [], False: []}
    for q in range(len(labels)):
        best, best_s = None, -np.inf
        for g in range(len(gl)):
            if scenes[q] == g:
                continue
            if scores[q, g] > best_s:
                best, best_s = g, scores[q, g]
        c, t = int(labels[q]), int(gl[best])
        has = any((c, d) in pairs for d in range(64))
        hits[has].append(float(c == t))
        if c == t:
            continue
        errors += 1
        if (c, t) in pairs:
            sib_errors += 1
            by[attr_of[(c, t)]] += 1
        n_sib = sum(1 for g in range(len(gl)) if (c, int(gl[g])) in pairs)
        n_other = sum(1 for g in range(len(gl)) if int(gl[g]) != c)
        chance.append(n_sib / n_other)
    return errors, sib_errors, float(np.mean(chance)), by, hits


def test_sibling_confusion_matches_a_naive_loop():
    rng = np.random.default_rng(3)
    n = 150
    labels = rng.integers(0, 64, n)
    # embeddings that mix the class with its sibling so that sibling errors occur
    proto = rng.normal(size=(64, 16))
    of = fg.sibling_of()
    mixed = np.where((of >= 0)[:, None], proto + proto[np.maximum(of, 0)] * 1.5, proto)
    z = mixed[labels] + rng.normal(scale=1.0, size=(n, 16))
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    scenes = np.arange(n)
    run = class_retrieval(z, labels, z, labels, scenes, scenes)
    conf = fg.sibling_confusion(run, labels)
    # class_retrieval drops queries whose class has no other gallery item; so does the
    # naive loop's input
    keep = np.array([(labels == labels[q]).sum() > 1 for q in range(n)])
    errors, sib_errors, chance, by, hits = _naive((z @ z.T)[keep], labels[keep],
                                                  scenes[keep], labels)
    assert conf.errors == errors and conf.sibling_errors == sib_errors > 0
    assert conf.share == pytest.approx(sib_errors / errors, abs=1e-12)
    assert conf.chance == pytest.approx(chance, abs=1e-12)
    for k in fg.ATTRIBUTE_KINDS:
        assert conf.by_attribute[k]["sibling_errors"] == by[k]
    assert sum(v["share"] for v in conf.by_attribute.values()) == pytest.approx(conf.share)
    assert conf.r1_sibling == pytest.approx(np.mean(hits[True]))
    assert conf.r1_no_sibling == pytest.approx(np.mean(hits[False]))
    assert conf.n_sibling + conf.n_no_sibling == len(run.labels)


def test_sibling_confusion_all_errors_on_siblings():
    # two scenes of each class of two sibling pairs; every query's nearest neighbour is a
    # scene of its sibling class
    (a, b, _), (c, d, _) = fg.sibling_pairs()[:2]
    labels = np.array([a, a, b, b, c, c, d, d])
    group = np.array([0, 1, 0, 1, 2, 3, 2, 3])                    # near = same group
    z = np.eye(4)[group] + 0.01 * np.arange(8)[:, None] * np.eye(4)[(group + 1) % 4]
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    run = class_retrieval(z, labels, z, labels, np.arange(8), np.arange(8))
    conf = fg.sibling_confusion(run, labels)
    assert conf.r1 == 0 and conf.errors == 8 and conf.share == 1.0
    assert conf.chance == pytest.approx(2 / 6)


def test_sibling_confusion_bad_input():
    labels = np.array([0, 0, 1, 1])
    z = np.eye(4)
    run = class_retrieval(z, labels, z, labels, np.arange(4), np.arange(4))
    with pytest.raises(InputError):
        fg.sibling_confusion(run, labels.astype(float))
    with pytest.raises(InputError):
        fg.sibling_confusion(run, np.array([70, 0, 1, 1]))
    with pytest.raises(InputError):
        fg.sibling_confusion(run, np.array([5, 5, 6, 6]))
    with pytest.raises(InputError):
        fg.embed_model("nope", np.zeros((1, 64, 64, 3), np.uint8))


def test_checkpoints_registered_with_their_configs():
    plain = checkpoints.get_spec("challenge_plain").config
    assert plain == ChallengeConfig().to_dict()
    varied = ("attribute_head", "embed_attributes")
    for name in ("challenge_attributes", "challenge_attributes_x3"):
        attrs = checkpoints.get_spec(name).config
        assert attrs["attribute_head"] > 0 and attrs["embed_attributes"] > 0
        assert {k: v for k, v in attrs.items() if k not in varied} \
            == {k: v for k, v in plain.items() if k not in varied}


@pytest.mark.parametrize("name", list(fg.CHECKPOINTS))
def test_committed_checkpoints_load(name, capsys):
    assert checkpoints.locate(name) is not None, f"{name} is not committed"
    model, manifest = checkpoints.load(name, progress=False)
    assert "retrain" not in capsys.readouterr().err.lower()
    assert manifest["config"] == fg.CHECKPOINTS[name].config
    rng = np.random.default_rng(0)
    z = model.embed_images(rng.integers(0, 256, (3, 64, 64, 3), dtype=np.uint8))
    extra = CLASS_ATTRIBUTES if manifest["config"]["embed_attributes"] else 0
    assert z.shape == (3, 128 + extra)
    assert np.allclose(np.linalg.norm(z, axis=1), 1, atol=1e-5)


@pytest.mark.slow
def test_exercise_checker():
    assert not ex.check_attribute_rerank(None)
    assert "no answer" in ex.check_attribute_rerank(None).message
    answer = ex.solution_attribute_rerank()
    assert ex.check_attribute_rerank(answer)
    scores, attrs, labels = ex._inputs()
    before = ex.rerank_sibling_r1(scores, attrs, labels, 0.0)
    assert not ex.check_attribute_rerank(before) or before == answer
    assert not ex.check_attribute_rerank(answer + 0.01)
    assert not ex.check_attribute_rerank("abc")
    # the same re-ranking written as a plain loop
    s = scores.astype(np.float64).copy()
    np.fill_diagonal(s, -np.inf)
    sib = fg.has_sibling()
    got = []
    for q in range(len(s)):
        if not sib[labels[q]]:
            continue
        top = sorted(range(len(s)), key=lambda g: (-s[q, g], g))[:10]
        best = max(top, key=lambda g: (s[q, g] + float(attrs[q] @ attrs[g]), -top.index(g)))
        got.append(labels[best] == labels[q])
    assert answer == pytest.approx(float(np.mean(got)), abs=1e-9)

