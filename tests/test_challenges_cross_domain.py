"""Cross-domain retrieval (notebook 10, section 1): the style matrix against a naive loop and
scikit-learn, the own-scene exclusion across styles, the summaries, the sibling table, the
style normalisation, the committed checkpoints and the exercise checker."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from mmkit.challenges import cross_domain as cd
from mmkit.challenges.data import STYLES, SceneSet
from mmkit.data import vocab as V
from mmkit.errors import InputError

N = 48


@pytest.fixture()
def fake_scenes(monkeypatch):
    """A small stand-in for the evaluation scenes: 48 scenes of 8 classes (ids 100-147)."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(8), N // 8)
    rng.shuffle(labels)
    sset = SceneSet(np.zeros((N, 4, 4, 3), np.uint8), labels.astype(np.int64),
                    np.zeros((N, 28), np.float32), np.zeros(N, np.int64),
                    np.arange(100, 100 + N, dtype=np.int64))
    monkeypatch.setattr(cd, "eval_scenes", lambda style=None: sset)
    return sset


def _random_embeddings(labels: np.ndarray, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(8, 16))
    out = {}
    for k, s in enumerate(STYLES):
        e = centres[labels] + rng.normal(scale=1.5, size=(len(labels), 16)) + k * 0.7
        out[s] = (e / np.linalg.norm(e, axis=1, keepdims=True)).astype(np.float32)
    return out


def _naive_cell(q: np.ndarray, g: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """R@1 and mAP by a plain loop: each query against every OTHER scene of the gallery."""
    hits, aps = [], []
    for i in range(len(q)):
        others = [j for j in range(len(g)) if j != i]
        s = np.array([float(q[i] @ g[j]) for j in others])
        rel = np.array([labels[j] == labels[i] for j in others])
        hits.append(float(rel[int(np.argmax(s))]))
        aps.append(average_precision_score(rel, s))
    return float(np.mean(hits)), float(np.mean(aps))


def test_style_matrix_matches_a_naive_loop_in_every_cell(fake_scenes):
    emb = _random_embeddings(fake_scenes.labels)
    m = cd.style_matrix(emb)
    assert m.r1.shape == m.map.shape == (3, 3) and m.styles == STYLES
    for i, q in enumerate(STYLES):
        for j, g in enumerate(STYLES):
            r1, ap = _naive_cell(emb[q], emb[g], fake_scenes.labels)
            assert m.r1[i, j] == pytest.approx(r1, abs=1e-9)
            assert m.map[i, j] == pytest.approx(ap, abs=1e-5)
    assert 0.2 < m.r1.mean() < 0.95        # the fake data is neither trivial nor hopeless


def test_the_query_scene_is_excluded_even_in_another_style(fake_scenes):
    # every scene is its own direction: drawn in any style it is nearest to itself
    rng = np.random.default_rng(2)
    own = np.linalg.qr(rng.normal(size=(64, N)))[0].T[:, :64]         # N orthonormal rows
    emb = {s: (own + 0.01 * rng.normal(size=own.shape)).astype(np.float32) for s in STYLES}
    m = cd.style_matrix(emb)
    # with its own scene in the gallery R@1 would be 1.0 everywhere; without it the top
    # hit is an arbitrary other scene: about 5 / 47 of them share the class
    assert m.r1.max() < 0.5
    for q in STYLES:
        for g in STYLES:
            run = cd.cross_style_run(emb, q, g)
            assert len(run.hit1) == N


def test_domain_gap_reads_the_diagonal_and_the_off_diagonal():
    r1 = np.array([[0.8, 0.4, 0.2], [0.4, 0.6, 0.3], [0.5, 0.6, 0.7]])
    m = cd.StyleMatrix(r1, r1 / 2, STYLES)
    gap = cd.domain_gap(m, {"centroid_gap": 0.3, "style_probe": 0.9})
    assert gap["same_style_r1"] == pytest.approx(0.7)
    assert gap["cross_style_r1"] == pytest.approx(2.4 / 6)
    assert gap["ratio"] == pytest.approx(0.4 / 0.7, abs=1e-4)
    assert gap["worst_cross_r1"] == pytest.approx(0.2)
    assert gap["style_probe"] == 0.9
    assert m.table("mAP")[2] == {"query": "painting", "photo": 0.25, "sketch": 0.3,
                                 "painting": 0.35}
    with pytest.raises(InputError, match="metric"):
        m.table("R@5")


def test_style_separation_sees_shifted_styles(fake_scenes):
    emb = _random_embeddings(fake_scenes.labels)
    apart = cd.style_separation(emb)
    same = {s: emb["photo"] for s in STYLES}
    together = cd.style_separation(same)
    assert together["centroid_gap"] == pytest.approx(0.0, abs=1e-6)
    assert apart["centroid_gap"] > 0.1 and apart["style_probe"] > together["style_probe"]


def test_normalise_styles_centres_each_style_and_gives_unit_rows(fake_scenes):
    emb = _random_embeddings(fake_scenes.labels)
    out = cd.normalise_styles(emb)
    for s in STYLES:
        np.testing.assert_allclose(np.linalg.norm(out[s], axis=1), 1, atol=1e-5)
        centred = emb[s] - emb[s].mean(0)
        # same direction as the centred rows: cosine 1
        cos = (out[s] * centred).sum(1) / np.linalg.norm(centred, axis=1)
        np.testing.assert_allclose(cos, 1, atol=1e-5)
    # the shift between the styles is gone: the centroids coincide
    assert cd.style_separation(out)["centroid_gap"] < cd.style_separation(emb)["centroid_gap"]


def test_bad_embeddings_are_one_line(fake_scenes):
    emb = _random_embeddings(fake_scenes.labels)
    with pytest.raises(InputError, match="photo"):
        cd.style_matrix({"photo": emb["photo"]})
    with pytest.raises(InputError, match="sketch embeddings must be"):
        cd.style_matrix({**emb, "sketch": emb["sketch"][:5]})
    with pytest.raises(InputError, match="style"):
        cd.cross_style_run(emb, "photo", "cartoon")


def test_sibling_pairs_are_the_worlds_32_designed_siblings():
    pairs = cd.sibling_pairs()
    assert sorted(b for _, b, _ in pairs) == list(range(32, 64))
    one_attribute = {(a, b): attr for a, b, attr in V.fine_grained_pairs()}
    for a, b, attr in pairs:
        assert a < 32 and one_attribute[(a, b)] == attr
    groups = cd.sibling_groups()
    assert set(np.concatenate(list(groups.values())).tolist()) == set(range(64))
    assert sum(len(groups[k]) for k in ("colour", "texture", "shape")) >= 64 - len(groups["none"])


def test_sibling_breakdown_counts_sibling_confusions(fake_scenes, monkeypatch):
    # a gallery that always returns the designed sibling's scene when there is one
    a, b, attr = cd.sibling_pairs()[0]
    labels = np.array([a, b] * (N // 2), np.int64)
    sset = SceneSet(fake_scenes.images, labels, fake_scenes.attributes, fake_scenes.styles,
                    fake_scenes.scenes)
    monkeypatch.setattr(cd, "eval_scenes", lambda style=None: sset)
    e = np.where(labels[:, None] == a, [1.0, 0.0], [0.0, 1.0]).astype(np.float32)
    emb = {"photo": e, "sketch": e[:, ::-1].copy(), "painting": e}
    out = cd.sibling_breakdown(emb, "photo", "sketch")
    assert out[attr] == {"queries": N, "R@1": 0.0, "sibling_top1": 1.0}
    assert cd.sibling_breakdown(emb, "photo", "painting")[attr]["R@1"] == 1.0


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(cd.CHECKPOINTS))
def test_committed_checkpoints_load_with_their_config(name):
    from mmkit.checkpoints import load
    model, manifest = load(name, progress=False)
    assert manifest["config"] == cd.CHECKPOINTS[name].config
    imgs = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    e = model.embed_images(imgs)
    assert e.shape == (3, 128)
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1, atol=1e-5)


@pytest.mark.slow
def test_checker_accepts_the_solution_and_rejects_the_rest():
    from mmkit.exercises.nb10 import cross_domain as ex
    assert "no answer" in str(ex.check_style_normalised_r1(None))
    right = ex.solution_style_normalised_r1()
    assert ex.check_style_normalised_r1(right)
    assert ex.check_style_normalised_r1(round(right, 4))
    emb = ex._embeddings()
    raw = cd.cross_style_run(emb, "photo", "sketch").r1
    if abs(raw - right) > 1e-4:
        fb = ex.check_style_normalised_r1(raw)
        assert not fb and "raw" in str(fb)
    assert not ex.check_style_normalised_r1(right + 0.01)
    assert not ex.check_style_normalised_r1("high")
    assert not ex.check_style_normalised_r1(1.5)
    # the solution is the naive recipe on the committed model's embeddings
    naive = {}
    for s, x in emb.items():
        c = x - x.mean(0)
        naive[s] = c / np.linalg.norm(c, axis=1, keepdims=True)
    assert right == pytest.approx(cd.cross_style_run(naive, "photo", "sketch").r1, abs=1e-9)
