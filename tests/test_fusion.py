"""mmkit.fusion: late fusion against naive loops, RRF by hand, missing modalities, composed
ground truth by brute force, the random walk against a dense solve, learned fusion on a
tiny world, and the notebook 07 checkers."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from mmkit.data import vocab as V
from mmkit.data.world import World, WorldConfig
from mmkit.errors import InputError
from mmkit.fusion import composed as C
from mmkit.fusion import graph as G
from mmkit.fusion import scores as S


def _rng_scores(m=3, q=5, g=7, seed=0):
    return np.random.default_rng(seed).normal(size=(m, q, g))


# ------------------------------------------------------------------------ weights
def test_weights_sum_to_one_and_renormalise_over_present():
    have = np.array([[True, True, True], [True, False, True], [False, False, True]])
    w = S.fusion_weights([0.2, 0.5, 0.3], have)
    assert np.allclose(w.sum(1), 1)
    assert np.allclose(w[1], [0.4, 0, 0.6]) and np.allclose(w[2], [0, 0, 1])
    # all present weights zero -> equal share, never NaN
    w0 = S.fusion_weights([0.0, 0.0, 1.0], np.array([[True, True, False]]))
    assert np.allclose(w0, [[0.5, 0.5, 0]])
    with pytest.raises(InputError, match="weights"):
        S.fusion_weights([1, -1, 0], have)


def test_missing_modality_equals_fusion_of_the_rest():
    s = _rng_scores()
    s[1, 2] = np.nan                       # query 2 has no modality 1
    fused = S.weighted_sum(s, [0.2, 0.5, 0.3])
    assert np.isfinite(fused).all()
    z = S.normalise(s, "zscore")
    assert np.allclose(fused[2], 0.4 * z[0, 2] + 0.6 * z[2, 2])
    rest = S.weighted_sum(s[[0, 2]][:, [2]], [0.2, 0.3])
    assert np.allclose(fused[2], rest[0])
    for f in (S.comb_sum, S.comb_mnz, S.reciprocal_rank_fusion):
        assert np.isfinite(f(s)).all()
    # only one modality left: the fused ranking is that modality's ranking
    only = s.copy()
    only[[0, 1], 3] = np.nan
    assert np.array_equal(np.argsort(-S.weighted_sum(only)[3]), np.argsort(-s[2, 3]))
    s[:, 4] = np.nan
    with pytest.raises(InputError, match="query 4 has no modality"):
        S.weighted_sum(s)


def test_bad_inputs_are_one_line_errors():
    s = _rng_scores()
    s[0, 1, 3] = np.nan
    with pytest.raises(InputError, match="NaN in some items"):
        S.weighted_sum(s)
    with pytest.raises(InputError, match="shape"):
        S.weighted_sum([np.zeros((2, 3)), np.zeros((2, 4))])
    with pytest.raises(InputError, match="k must be"):
        S.reciprocal_rank_fusion(_rng_scores(), k=0)
    with pytest.raises(InputError, match="method"):
        S.normalise(_rng_scores(), "softmax")


def test_normalisations_against_loops_and_excluded_items_stay_excluded():
    s = _rng_scores(1, 4, 6)[0]
    s[1, 2] = -np.inf
    mm, zs, rk = (S.normalise(s, m) for m in ("minmax", "zscore", "rank"))
    for q in range(4):
        row = s[q][np.isfinite(s[q])]
        for j in range(6):
            if not np.isfinite(s[q, j]):
                assert mm[q, j] == -np.inf and zs[q, j] == -np.inf
                continue
            assert np.isclose(mm[q, j], (s[q, j] - row.min()) / (row.max() - row.min()))
            assert np.isclose(zs[q, j], (s[q, j] - row.mean()) / row.std())
            rank = 1 + (row > s[q, j]).sum()
            assert np.isclose(rk[q, j], 1 - (rank - 1) / len(row))
    assert (S.weighted_sum([s, s]) [1, 2] == -np.inf)


def test_weighted_sum_and_combsum_against_naive_loops():
    s = _rng_scores()
    w = np.array([0.5, 0.2, 0.3])
    fused = S.weighted_sum(s, w, "minmax")
    cs = S.comb_sum(s, "minmax", depth=3)
    mnz = S.comb_mnz(s, "minmax", depth=3)
    for q in range(s.shape[1]):
        for j in range(s.shape[2]):
            norm = [(s[m, q, j] - s[m, q].min()) / np.ptp(s[m, q]) for m in range(3)]
            assert np.isclose(fused[q, j], sum(w[m] * norm[m] for m in range(3)))
            inside = [m for m in range(3) if (s[m, q] > s[m, q, j]).sum() < 3]
            assert np.isclose(cs[q, j], sum(norm[m] for m in inside))
            assert np.isclose(mnz[q, j], sum(norm[m] for m in inside) * len(inside))


def test_rrf_against_a_hand_computed_example():
    # two systems, four documents; system A ranks d0 > d1 > d2 > d3, B ranks d2 > d0 > d3 > d1
    a = np.array([[4.0, 3.0, 2.0, 1.0]])
    b = np.array([[3.0, 1.0, 4.0, 2.0]])
    fused = S.reciprocal_rank_fusion([a, b], k=60)
    # equal weights renormalised to 1/2 each
    expected = 0.5 * np.array([1 / 61 + 1 / 62, 1 / 62 + 1 / 64, 1 / 63 + 1 / 61,
                               1 / 64 + 1 / 63])
    assert np.allclose(fused[0], expected)
    assert list(np.argsort(-fused[0])) == [0, 2, 1, 3]
    # depth 2: only the top 2 of each system count
    cut = S.reciprocal_rank_fusion([a, b], k=60, depth=2)
    assert np.allclose(cut[0], 0.5 * np.array([1 / 61 + 1 / 62, 1 / 62, 1 / 61, 0]))
    # a small k makes the first place matter more: k=1 (d0: 1/2+1/3, d2: 1/4+1/2)
    assert np.allclose(S.reciprocal_rank_fusion([a, b], k=1)[0][[0, 2]],
                       0.5 * np.array([1 / 2 + 1 / 3, 1 / 4 + 1 / 2]))


def test_tune_weights_finds_the_grid_optimum():
    s = _rng_scores(2, 6, 5)
    target = np.zeros((6, 5), bool)
    target[np.arange(6), np.argmax(s[1], 1)] = True            # modality 1 knows the answer

    def hit1(f):
        return float(target[np.arange(6), np.argmax(f, 1)].mean())
    w, best = S.tune_weights(s, hit1, step=0.25)
    assert best == 1.0 and w[1] >= 0.5 and np.isclose(w.sum(), 1)
    assert len(S.simplex_grid(3, 0.5)) == 6


# ----------------------------------------------------------------------- composed
@pytest.fixture(scope="module")
def tiny_world():
    return World(WorldConfig(n=80, seed=1))


def test_composed_ground_truth_by_brute_force(tiny_world):
    w = tiny_world
    imgs = np.arange(len(w))
    cq = C.make_composed_queries(w, imgs, imgs, seed=0)
    assert len(cq.references) > 0
    for q, (r, m) in enumerate(zip(cq.references, cq.modifications)):
        shape, colour, texture = (int(v) for v in w.objects[r, 0, :3])
        want = {"shape": shape, "colour": colour, "texture": texture}
        assert want[m.attribute] == m.old
        want[m.attribute] = m.new
        for gi, g in enumerate(imgs):
            s, c, t = (int(v) for v in w.objects[g, 0, :3])
            is_target = (s, c, t) == (want["shape"], want["colour"], want["texture"]) and g != r
            assert cq.positives[q, gi] == is_target
        assert cq.positives[q].any()                     # only queries with a target are kept
        assert cq.exclude[q, list(imgs).index(r)] and cq.relevance[q, list(imgs).index(r)] == 0


def test_modification_texts_and_errors():
    m = C.Modification("colour", V.COLOURS.index("red"), V.COLOURS.index("blue"))
    assert m.text == "the same, but blue"
    t = C.Modification("texture", V.TEXTURES.index("dotted"), V.TEXTURES.index("striped"))
    assert t.text == "with stripes instead of dots"
    # a colour change names only the new colour: 10 sentences for the 90 changes
    assert len(set(C.all_modification_texts())) == 8 * 7 + 10 + 4 * 3
    with pytest.raises(InputError, match="same"):
        C.Modification("colour", 1, 1)
    with pytest.raises(InputError, match="attribute"):
        C.Modification("size", 0, 1)
    with pytest.raises(InputError, match="not"):
        m.apply(np.array([0, V.COLOURS.index("green"), 0]))


# -------------------------------------------------------------------------- graph
def test_knn_graph_against_a_loop():
    x = np.random.default_rng(3).normal(size=(9, 4))
    sim = x @ x.T
    a = G.knn_graph(sim, 2).toarray()
    expected = np.zeros((9, 9))
    for i in range(9):
        order = [j for j in np.argsort(-sim[i]) if j != i][:2]
        for j in order:
            expected[i, j] = expected[j, i] = max(sim[i, j], 0)
    assert np.allclose(a, expected)


def test_random_walk_stationary_vector_against_a_dense_solve():
    rng = np.random.default_rng(0)
    layers = []
    for _ in range(2):
        x = rng.normal(size=(8, 3))
        layers.append(G.knn_graph(x @ x.T + 3, 3))
    P = G.transition_matrix(layers, [1.0, 0.5], 0.7)
    dense = P.toarray()
    assert np.allclose(dense.sum(1), 1)
    # the inter-layer edge of node (0, g) to (1, g) has weight 0.7 over the node's degree
    deg0 = layers[0].toarray().sum(1) + 0.7
    assert np.allclose(dense[np.arange(8), 8 + np.arange(8)], 0.7 / deg0)
    e = rng.random((16, 3))
    e /= e.sum(0)
    r = 0.25
    x = G.stationary(P, e, r)
    ref = np.linalg.solve(np.eye(16) - (1 - r) * dense.T, r * e)
    assert np.allclose(x, ref) and np.allclose(x.sum(0), 1)
    # the same vector as running the walk: power iteration converges to it
    v = e[:, 0].copy()
    for _ in range(300):
        v = (1 - r) * dense.T @ v + r * e[:, 0]
    assert np.allclose(v, x[:, 0])
    with pytest.raises(InputError, match="restart"):
        G.stationary(P, e, 0.0)


def test_rerank_keeps_exclusions_and_lonely_nodes_stay():
    layer = sp.csr_array(np.zeros((4, 4)))
    P = G.transition_matrix([layer], [1.0], 0.0)
    assert np.allclose(P.toarray(), np.eye(4))
    s = np.array([[0.9, 0.1, -np.inf, 0.5]])
    out = G.rerank(s, P, 1, r=0.5, top=2)
    assert out[0, 2] == -np.inf and np.argmax(out[0]) == 0


# ---------------------------------------------------------------- learned fusion
@pytest.mark.slow
def test_gated_weights_sum_to_one_and_missing_gets_zero():
    pytest.importorskip("torch")
    import torch

    from mmkit.fusion.gated import GatedFusion, train_gated

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    q, g = 40, 12
    truth = rng.integers(0, g, q)
    pos = np.zeros((q, g), bool)
    pos[np.arange(q), truth] = True
    good = rng.normal(size=(q, g)) + 4 * pos              # modality 0 knows the answer
    noise = rng.normal(size=(q, g))                       # modality 1 is noise
    model = GatedFusion(2)
    hist = train_gated(model, [good, noise], pos, epochs=40, drop=0.0, corrupt=0.0)
    assert hist[-1] < hist[0]
    w = model.weights([good, noise])
    assert np.allclose(w.sum(1), 1) and w[:, 0].mean() > 0.6
    noise_missing = noise.copy()
    noise_missing[:5] = np.nan
    w2 = model.weights([good, noise_missing])
    assert np.allclose(w2[:5], [1, 0]) and np.isfinite(model.fuse([good, noise_missing])).all()


@pytest.mark.slow
def test_early_fusion_learns_and_bilinear_estimates_the_product():
    pytest.importorskip("torch")
    from mmkit.fusion.early import EarlyFusion, bilinear_product_scores, train_early_fusion

    rng = np.random.default_rng(1)
    n = 64
    a, b = rng.normal(size=(n, 6)), rng.normal(size=(n, 4))
    model = EarlyFusion([6, 4], [6, 4], dim=8, op="concat")
    hist = train_early_fusion(model, [a + 0.1 * rng.normal(size=a.shape), b], [a, b],
                              np.arange(n), epochs=15, batch=32)
    assert hist[-1] < hist[0]
    s = model.scores([a, b], [a, b], present=np.array([[True, False]] * n))
    assert np.isfinite(s).all()
    # raw Tensor-Sketch inner products are unbiased estimates of <a,c><b,d>: average seeds
    qa, qb = a[:3] / 3, b[:3] / 2
    est = np.mean([bilinear_product_scores([qa, qb], [qa, qb], 2048, seed=k)
                   for k in range(40)], axis=0)
    exact = (qa @ qa.T) * (qb @ qb.T)
    assert np.allclose(est, exact, atol=0.15 * np.abs(exact).max())
    with pytest.raises(InputError, match="op"):
        EarlyFusion([6, 4], [6, 4], op="sum")


# ------------------------------------------------------------ notebook exercises
def test_nb07_checkers_against_independent_answers():
    from mmkit.exercises import nb07

    a = np.array([[4.0, 3.0, 2.0, 1.0]])
    b = np.array([[3.0, 1.0, 4.0, 2.0]])
    # naive RRF, k = 10: d2 = 1/13 + 1/11
    want = 1 / 13 + 1 / 11
    assert nb07.check_rrf_score(a, b, 10, 2, want)
    bad = nb07.check_rrf_score(a, b, 10, 2, 1 / 12 + 1 / 11)
    assert not bad and "rank" in bad.message
    assert not nb07.check_rrf_score(a, b, 10, 2, None)
    # renormalised weights when modality 1 is missing
    assert nb07.check_renormalised([0.2, 0.5, 0.3], [True, False, True], [0.4, 0.0, 0.6])
    wrong = nb07.check_renormalised([0.2, 0.5, 0.3], [True, False, True], [0.2, 0.0, 0.3])
    assert not wrong and "sum" in wrong.message
    # composed targets by brute force on a tiny world
    w = World(WorldConfig(n=80, seed=1))
    imgs = np.arange(80)
    ref = 0
    mod = C.Modification("colour", int(w.objects[ref, 0, 1]),
                         (int(w.objects[ref, 0, 1]) + 1) % 10)
    t = [int(g) for g in imgs if g != ref and w.objects[g, 0, 0] == w.objects[ref, 0, 0]
         and w.objects[g, 0, 2] == w.objects[ref, 0, 2] and w.objects[g, 0, 1] == mod.new]
    assert nb07.check_composed_targets(w, ref, mod, imgs, t)
    assert not nb07.check_composed_targets(w, ref, mod, imgs, t + [ref])
