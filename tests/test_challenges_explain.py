"""mmkit.challenges.explain: the pointing game's hit test against a naive loop and scipy's
distance transform, the baselines on constructed cases, the batched heat maps against the
method's own similarity_map, word occlusion against removing the word by hand, integrated
gradients' completeness, and the exercise's checker."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from mmkit.challenges import explain as E
from mmkit.data import World, WorldConfig
from mmkit.data import vocab as V
from mmkit.data.render import shape_polygon
from mmkit.errors import InputError


def _naive_hit(point, mask, tol):
    r, c = point
    for i in range(mask.shape[0]):
        for j in range(mask.shape[1]):
            if mask[i, j] and (i - r) ** 2 + (j - c) ** 2 <= tol * tol:
                return True
    return False


def test_hits_match_a_naive_loop():
    rng = np.random.default_rng(0)
    masks = rng.random((40, 16, 16)) < 0.03
    points = rng.integers(0, 16, (40, 2))
    for tol in (0, 1, 2.5, 4):
        got = E.pointing_hits(points, masks, tol)
        want = [_naive_hit(p, m, tol) for p, m in zip(points, masks)]
        assert got.tolist() == want


def test_dilate_matches_scipy_distance_transform():
    rng = np.random.default_rng(1)
    masks = rng.random((5, 20, 20)) < 0.02
    masks[0] = False
    masks[0, 0, 0] = True          # the corner: the disk is clipped
    for tol in (0, 1, 3, 4, 5.5):
        want = np.stack([ndimage.distance_transform_edt(~m) <= tol for m in masks])
        assert np.array_equal(E.dilate(masks, tol), want)


def test_random_rate_is_the_mean_over_every_point():
    rng = np.random.default_rng(2)
    mask = rng.random((12, 12)) < 0.05
    every = np.stack(np.mgrid[0:12, 0:12], -1).reshape(-1, 2)
    hits = E.pointing_hits(every, np.repeat(mask[None], len(every), 0), 3)
    assert E.random_point_rate(mask[None], 3)[0] == pytest.approx(hits.mean())


def test_centre_baseline_on_constructed_masks():
    s = 64
    yy, xx = np.mgrid[0:s, 0:s]
    centred = (yy - 32) ** 2 + (xx - 32) ** 2 <= 25
    corner = (yy < 6) & (xx < 6)
    right = (xx >= 40) & (np.abs(yy - 32) <= 2)    # nearest pixel 8 px right of the centre
    pts = E.centre_points(3, s)
    assert pts.tolist() == [[32, 32]] * 3
    assert E.pointing_hits(pts, np.stack([centred, corner, right]), 4).tolist() == \
        [True, False, False]
    assert E.pointing_hits(pts[:1], right[None], 8).tolist() == [True]
    assert E.pointing_hits(pts[:1], right[None], 7.9).tolist() == [False]
    assert E.pointing_hits(np.array([[-1, 5]]), corner[None], 4).tolist() == [False]


def test_heat_peaks_row_major_first():
    h = np.zeros((2, 5, 5), np.float32)
    h[0, 3, 1] = 1
    h[1, 2, 4] = h[1, 4, 0] = 1          # a tie: the first in row-major order
    assert E.heat_peaks(h).tolist() == [[3, 1], [2, 4]]


def _shoelace(poly):
    x, y = np.array(poly).T
    return 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))


def test_footprints_cover_the_drawn_polygon():
    world = World(WorldConfig(n=30, seed=7), progress=False)
    idx = np.arange(30)
    masks = E.object_footprints(world, idx)
    for i, m in zip(idx, masks):
        shape, _, _, size, _ = world.objects[i, 0]
        cx, cy = world.xy[i, 0] * 64
        assert m[int(cy), int(cx)]
        poly = shape_polygon(int(shape), cx, cy, V.SIZE_RADIUS[size] * 64,
                               float(world.rotation[i, 0]))
        perimeter = float(np.linalg.norm(np.diff(np.array(poly + poly[:1]), axis=0), axis=1).sum())
        # rasterising adds or drops at most the pixels the outline crosses
        assert abs(m.sum() - _shoelace(poly)) <= perimeter
    with pytest.raises(InputError):
        E.object_footprints(world, [0], k=int(world.n_objects[0]))


def test_attribute_words_are_unambiguous():
    table = E.attribute_words()
    assert table["scarlet"] == ("colour", V.COLOURS.index("red"))
    assert table["lozenge"] == ("shape", V.SHAPES.index("diamond"))
    assert table["stripes"] == ("texture", V.TEXTURES.index("striped"))
    for shared in ("shape", "with", "left", "a", "tile", "polygon", "flat"):
        assert shared not in table
    world = World(WorldConfig(n=20, seed=3), progress=False)
    for j in range(0, 100, 7):
        words = world.caption_tokens(j)
        mask = E.attribute_word_mask(world, j, words)
        main = world.caption_main[j]
        for w, m in zip(words, mask):
            hit = table.get(w)
            named = hit is not None and hit[0] in ("shape", "colour", "texture") and \
                main[V.ATTRIBUTES.index(hit[0])] == hit[1]
            assert m == named


# ------------------------------------------------------------------ with the joint model
@pytest.fixture(scope="module")
def joint():
    from mmkit.methods import get_method

    torch.set_num_threads(1)
    return get_method("joint", progress=False)


@pytest.fixture(scope="module")
def small_world():
    world = World(WorldConfig(n=80, seed=11), progress=False)
    return world, np.stack([world.render(int(i)) for i in world.indices("test")])


def test_batched_heat_maps_match_similarity_map(joint, small_world):
    world, images = small_world
    caps = world.caption_indices(world.indices("test")[:4], first=1)
    q = joint.embed_texts([world.captions[int(c)] for c in caps])
    got = E.caption_heat_maps(joint, images[:4], q, batch_size=3)
    assert not joint.model.training            # the batched maps leave the model in eval mode
    want = np.concatenate([joint.similarity_map(images[n:n + 1], q[n]) for n in range(4)])
    assert not joint.model.training      # similarity_map leaves the model in eval mode too
    assert np.allclose(got, want, atol=1e-4)
    with pytest.raises(InputError):
        E.caption_heat_maps(joint, images[:4], q[:3])


def test_pointing_game_agrees_with_a_hand_loop(joint, small_world):
    world, images = small_world
    game = E.pointing_game(joint, world, images=images, per_image=2, top_ranked=True)
    assert len(game.hit) == 2 * len(images)
    for n in range(len(game.hit)):
        r, c = np.unravel_index(game.heat[n].argmax(), game.heat[n].shape)
        assert game.hit[n] == _naive_hit((r, c), game.footprints[n], E.POINTING_TOLERANCE_PX)
        assert game.centre_hit[n] == _naive_hit((32, 32), game.footprints[n],
                                                E.POINTING_TOLERANCE_PX)
    table = game.table()
    assert table["all"]["n"] == len(game.hit)
    assert table["all"]["heat map"] == pytest.approx(game.hit.mean())
    assert sum(table[f"{s} object"]["n"] for s in V.SIZES if f"{s} object" in table) == \
        len(game.hit)
    assert not (game.on_other & game.hit).any()
    top = game.top_ranked()
    assert 0 <= top["first image has the object"] <= 1
    with pytest.raises(InputError):
        E.pointing_game(joint, world, images=images, per_image=0)


def test_text_from_embeddings_is_the_text_tower(joint):
    enc = joint.model.text
    enc.eval()
    ids, lengths = E._padded([[5, 9, 30, 2], [7, 7]], "cpu")
    with torch.no_grad():
        assert torch.allclose(E.text_from_embeddings(enc, enc.embed(ids), lengths),
                              enc(ids, lengths), atol=1e-6)


def _score(joint, text, image):
    return float(joint.embed_texts([text])[0] @ joint.embed_images(image[None])[0])


def test_occlusion_equals_removing_the_word_by_hand(joint, small_world):
    _, images = small_world
    caption = "a scarlet striped square on the left"
    a = E.word_occlusion(joint, caption, images[0])
    assert a.words == caption.split()
    full = _score(joint, caption, images[0])
    assert a.score == pytest.approx(full, abs=1e-5)
    for n in range(len(a.words)):
        rest = " ".join(a.words[:n] + a.words[n + 1:])
        assert a.scores[n] == pytest.approx(full - _score(joint, rest, images[0]), abs=1e-5)
    u = E.word_occlusion(joint, caption, images[0], mode="unknown")
    for n in (1, 3):          # an out-of-vocabulary word is the unknown token
        odd = " ".join(a.words[:n] + ["qqqq"] + a.words[n + 1:])
        assert u.scores[n] == pytest.approx(full - _score(joint, odd, images[0]), abs=1e-5)
    with pytest.raises(InputError):
        E.word_occlusion(joint, caption, images[0], mode="drop")
    with pytest.raises(InputError):
        E.word_occlusion(joint, "  ", images[0])


def test_integrated_gradients_completeness(joint, small_world):
    _, images = small_world
    for j, caption in enumerate(["a scarlet striped square on the left",
                                 "there is a big teal disc above a gray cross"]):
        coarse = E.integrated_gradients(joint, caption, images[j], steps=32)
        assert coarse.score == pytest.approx(_score(joint, caption, images[j]), abs=1e-5)
        assert coarse.completeness_gap < 5e-3
        fine = E.integrated_gradients(joint, caption, images[j], steps=256)
        assert fine.completeness_gap < max(coarse.completeness_gap, 2e-4)
        assert np.allclose(fine.scores, coarse.scores, atol=0.02)
    with pytest.raises(InputError):
        E.integrated_gradients(joint, "a red disc", images[0], steps=0)


def test_ig_baseline_score_is_the_all_padding_input(joint, small_world):
    _, images = small_world
    a = E.integrated_gradients(joint, "a red disc", images[0], steps=4)
    enc = joint.model.text
    zi = E._image_embeddings(joint.model, images[0])
    ids, lengths = E._padded([[0, 0, 0]], "cpu")
    with torch.no_grad():
        z = torch.nn.functional.normalize(enc(ids, lengths), dim=-1)
    assert a.baseline_score == pytest.approx(float(z[0] @ zi[0]), abs=1e-5)


def test_word_game_matches_one_caption_at_a_time(joint, small_world):
    world, images = small_world
    scenes = world.indices("test")[:5]
    caps = world.caption_indices(scenes, first=1)
    game = E.word_game(joint, world, captions=caps, images=images[:5], steps=8, batch_size=2)
    for n, c in enumerate(caps):
        text = world.captions[int(c)]
        ig = E.integrated_gradients(joint, text, images[n], steps=8)
        occ = E.word_occlusion(joint, text, images[n], mode="unknown")
        assert np.allclose(game.attributions["integrated gradients"][n].scores, ig.scores,
                           atol=1e-5)
        assert np.allclose(game.attributions["occlusion (unknown)"][n].scores, occ.scores,
                           atol=1e-5)
        mask = E.attribute_word_mask(world, int(c))
        assert game.top_is_attribute["integrated gradients"][n] == mask[ig.top_word]
        assert game.chance[n] == pytest.approx(mask.mean())
    row = game.table()["integrated gradients"]
    assert row["chance"] == pytest.approx(game.chance.mean())


# ------------------------------------------------------------------ the exercise
def test_box_energy_on_a_constructed_map():
    from mmkit.exercises.nb10.explain import box_energy

    heat = np.zeros((1, 8, 8))
    heat[0, 2, 2] = heat[0, 4, 5] = 1.0
    heat[0, 7, 7] = 2.0
    mask = np.zeros((1, 8, 8), bool)
    mask[0, 2, 2] = mask[0, 4, 5] = True          # the box spans rows 2-4, cols 2-5
    assert box_energy(heat, mask)[0] == pytest.approx(0.5)
    with pytest.raises(InputError):
        box_energy(heat, mask[:, :4])


@pytest.mark.slow
def test_energy_pointing_checker():
    from mmkit.exercises.nb10 import explain as X

    right = X.solution_energy_pointing()
    assert 0 < right < 1
    assert X.check_energy_pointing(right)
    assert X.check_energy_pointing(right + 5e-4)
    assert not X.check_energy_pointing(None)
    assert "no answer" in X.check_energy_pointing(None).message
    assert not X.check_energy_pointing(right + 0.05)
    assert not X.check_energy_pointing("many")
    heat, masks = X._maps()
    inside = float(np.mean([(h * m).sum() / h.sum() for h, m in zip(heat, masks)]))
    feedback = X.check_energy_pointing(inside)
    assert not feedback and "footprint" in feedback.message
