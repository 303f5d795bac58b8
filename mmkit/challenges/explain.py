"""Why this image for this caption: heat maps checked against the world's object positions
(the pointing game) and word attributions checked against the words that name the object.

A text->image result is explained twice:

- **pixels**: the similarity Grad-CAM of the caption's embedding on the image tower
  (:meth:`mmkit.methods.joint.JointMethod.similarity_map`, batched here with one query per image
  by :func:`caption_heat_maps`). The world knows where every object is drawn
  (:func:`object_footprints`), so the map can be graded: the **pointing game** (Zhang et al.,
  2016) counts a hit when the map's maximum falls on the named object, within
  :data:`POINTING_TOLERANCE_PX` pixels (:func:`pointing_hits`; :func:`pointing_game` plays it
  for the test captions of the evaluation world, with a centre-point and an exact random-point
  baseline);
- **words**: the score drop when one word is removed or replaced by the unknown token
  (:func:`word_occlusion`), and integrated gradients over the text tower's word embeddings
  (:func:`integrated_gradients`, Sundararajan et al., 2017, with torch autograd; its
  completeness gap is reported). :func:`word_game` asks how often the most important word is
  one that names the object's shape, colour or texture (:func:`attribute_word_mask`), against
  the chance of picking such a word at random.

:func:`plot_explanations` draws a few captions: image, heat map, pointing hit or miss, words
coloured by attribution.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from torch import nn

from mmkit.data import vocab as V
from mmkit.data.images import check_images
from mmkit.data.render import shape_polygon
from mmkit.data.vocab import tokenize
from mmkit.data.world import World
from mmkit.errors import InputError
from mmkit.features.explain import similarity_grad_cam
from mmkit.metrics import hit_rate_at_k
from mmkit.scoring import eval_world

#: the pointing game's tolerance in pixels at 64 px: Zhang et al. (2016) allow 15 px at
#: 224 px, 15 * 64 / 224 = 4.3, rounded down
POINTING_TOLERANCE_PX = 4
#: integrated gradients' default number of steps (trapezoid rule over steps + 1 points)
IG_STEPS = 32
#: the attribute groups of :func:`attribute_word_mask`, in :data:`mmkit.data.vocab.ATTRIBUTES`
#: order; the ground truth of :func:`word_game` is the first three
WORD_GROUPS: tuple[str, ...] = ("shape", "colour", "texture", "size", "hpos")
#: the size names of :data:`mmkit.data.vocab.SIZES`, for the tables
SIZE_NAMES: tuple[str, ...] = V.SIZES


# ============================================================================ footprints
def object_footprints(world: World, images: np.ndarray | Sequence[int], k: int | np.ndarray = 0,
                      size: int | None = None) -> np.ndarray:
    """Where object ``k`` of each scene is drawn: bool [N, S, S] (S: ``size``, default the
    world's image size).

    The polygon of :func:`mmkit.data.render.shape_polygon` (centre ``world.xy``, radius
    ``SIZE_RADIUS[size] * S``, rotation ``world.rotation``) filled at S px, as the renderer
    fills it at twice the size before box-filtering down; the photo style's drop shadow and the
    sketch style's unfilled inside are not excluded (the object's region is the footprint).
    ``k``: one object row for all scenes or one per scene, int [N] (0 = the main object).
    """
    idx = np.asarray(images, np.int64).reshape(-1)
    ks = np.broadcast_to(np.asarray(k, np.int64), idx.shape)
    s = int(world.config.image_size if size is None else size)
    if len(idx) and (idx.min() < 0 or idx.max() >= len(world)):
        raise InputError(f"object_footprints: image indices must lie in [0, {len(world)})")
    if np.any(ks < 0) or np.any(ks >= world.n_objects[idx]):
        raise InputError("object_footprints: k must name a drawn object of each scene "
                         "(0 <= k < world.n_objects)")
    out = np.zeros((len(idx), s, s), bool)
    for n, (i, j) in enumerate(zip(idx, ks)):
        shape, _, _, sz, _ = (int(v) for v in world.objects[i, j])
        cx, cy = (float(v) * s for v in world.xy[i, j])
        poly = shape_polygon(shape, cx, cy, V.SIZE_RADIUS[sz] * s, float(world.rotation[i, j]))
        img = Image.new("L", (s, s), 0)
        ImageDraw.Draw(img).polygon(poly, fill=255)
        out[n] = np.asarray(img) > 127
    return out


def _disk(tol: int) -> np.ndarray:
    r = int(tol)
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    return yy * yy + xx * xx <= tol * tol


def dilate(masks: np.ndarray, tol: float = POINTING_TOLERANCE_PX) -> np.ndarray:
    """Every pixel within Euclidean distance ``tol`` (pixels) of a True pixel: bool [N, S, S]
    from bool [N, S, S] (or [S, S] -> [S, S])."""
    m = np.asarray(masks, bool)
    single = m.ndim == 2
    m = m[None] if single else m
    if m.ndim != 3:
        raise InputError(f"dilate: expects bool masks [N, S, S], got shape {m.shape}")
    if tol < 0:
        raise InputError(f"dilate: tol must be >= 0, got {tol}")
    r = int(np.floor(tol))
    out = np.zeros_like(m)
    h, w = m.shape[1:]
    disk = _disk(tol) if r else np.ones((1, 1), bool)
    for dy, dx in zip(*np.nonzero(disk)):
        dy, dx = int(dy) - r, int(dx) - r
        out[:, max(0, dy):h + min(0, dy), max(0, dx):w + min(0, dx)] |= \
            m[:, max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)]
    return out[0] if single else out


def heat_peaks(heat: np.ndarray) -> np.ndarray:
    """The pixel of each map's maximum (the first in row-major order on ties): int [N, 2]
    (row, col) from float [N, S, S]."""
    h = np.asarray(heat)
    if h.ndim != 3:
        raise InputError(f"heat_peaks: expects heat maps [N, S, S], got shape {h.shape}")
    flat = h.reshape(len(h), -1).argmax(1)
    return np.stack([flat // h.shape[2], flat % h.shape[2]], 1)


def pointing_hits(points: np.ndarray, masks: np.ndarray,
                  tol: float = POINTING_TOLERANCE_PX) -> np.ndarray:
    """The pointing game's hit test: is pixel ``points[n]`` (row, col) within ``tol`` pixels
    (Euclidean, pixel centres) of a pixel of ``masks[n]``? bool [N] from int [N, 2] and bool
    [N, S, S]. A point outside the image is a miss."""
    p = np.asarray(points, np.int64)
    m = np.asarray(masks, bool)
    if p.ndim != 2 or p.shape[1] != 2 or m.ndim != 3 or len(p) != len(m):
        raise InputError(f"pointing_hits: expects points [N, 2] and masks [N, S, S], got "
                         f"{p.shape} and {m.shape}")
    d = dilate(m, tol)
    inside = (p[:, 0] >= 0) & (p[:, 0] < m.shape[1]) & (p[:, 1] >= 0) & (p[:, 1] < m.shape[2])
    out = np.zeros(len(p), bool)
    n = np.flatnonzero(inside)
    out[n] = d[n, p[n, 0], p[n, 1]]
    return out


def random_point_rate(masks: np.ndarray, tol: float = POINTING_TOLERANCE_PX) -> np.ndarray:
    """The exact hit rate of a point drawn uniformly among the pixels: the fraction of the
    image that lies within ``tol`` of the footprint, float [N]."""
    return dilate(np.asarray(masks, bool), tol).mean((1, 2))


def centre_points(n: int, size: int) -> np.ndarray:
    """The centre-prior baseline's points: pixel (size // 2, size // 2) for each of ``n``
    maps, int [n, 2]."""
    return np.full((int(n), 2), int(size) // 2, np.int64)


# ============================================================================ heat maps
class _ImageTower(nn.Module):
    """The joint model's image side as one module (images -> embeddings), for Grad-CAM."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(x)


def caption_heat_maps(method, images: np.ndarray, queries: np.ndarray,
                      batch_size: int = 128) -> np.ndarray:
    """Similarity Grad-CAM with one query per image: image ``n`` explained for the caption
    embedding ``queries[n]``. uint8 [N, H, W, 3], float32 [N, d] -> float32 [N, S, S] in
    [0, 1], the maps :meth:`~mmkit.methods.joint.JointMethod.similarity_map` gives one image
    at a time (``method``: a joint-space method with a CNN image tower, e.g.
    ``get_method("joint")``)."""
    model = method.model
    images = check_images(images, name="caption_heat_maps images")
    q = np.asarray(queries, np.float32)
    if q.ndim != 2 or len(q) != len(images):
        raise InputError(f"caption_heat_maps: expects one query per image, [N, d] with N = "
                         f"{len(images)}, got shape {q.shape}")
    layer = getattr(model.image, "cam_layer", None) or getattr(
        getattr(model.image, "backbone", None), "cam_layer", None)
    if layer is None:
        raise InputError("caption_heat_maps: the method's image tower has no cam_layer")
    tower = _ImageTower(model)
    # a new module is in training mode, and grad_cam restores the mode it finds: give the
    # wrapper the model's own, so that the model comes back as it was (eval: BatchNorm's
    # running statistics)
    tower.train(model.training)
    out = []
    for s in range(0, len(images), batch_size):
        x = model.image_tensor(images[s:s + batch_size])
        out.append(similarity_grad_cam(tower, x, torch.as_tensor(q[s:s + batch_size],
                                                                 device=x.device), layer=layer))
    return np.concatenate(out) if out else np.zeros((0, 64, 64), np.float32)


# ============================================================================ pointing game
@dataclass
class PointingGame:
    """One pointing game over ``M`` captions, each explained on its own image.

    Arrays [M]: ``captions`` (world caption indices), ``images`` (their scenes), ``hit``
    (the heat map's peak on the main object's footprint, within ``tol``), ``centre_hit``
    (the image centre on it), ``random_rate`` (a uniform random point's exact hit rate),
    ``size`` (the main object's size id), ``n_objects``, ``second`` (the caption also names a
    second object), ``style``; ``on_other`` [M] a miss whose peak lies on another object of
    the scene (within ``tol``); ``points`` int [M, 2] the peaks (row, col); ``heat`` float32
    [M, S, S] the maps; ``footprints`` bool [M, S, S].

    The top-ranked part (when played with ``top_ranked=True``): ``top_image`` [M] the gallery
    scene the caption ranks first, ``top_target`` [M] the object row in it that has every
    attribute the caption says of its main object (-1: none, the first image is a wrong one),
    ``top_hit`` [M] the hit on that object (False where there is none).
    """

    captions: np.ndarray
    images: np.ndarray
    points: np.ndarray
    hit: np.ndarray
    centre_hit: np.ndarray
    random_rate: np.ndarray
    size: np.ndarray
    n_objects: np.ndarray
    second: np.ndarray
    style: np.ndarray
    heat: np.ndarray
    footprints: np.ndarray
    tol: float = POINTING_TOLERANCE_PX
    on_other: np.ndarray | None = None
    top_image: np.ndarray | None = None
    top_target: np.ndarray | None = None
    top_hit: np.ndarray | None = None
    extra: dict = field(default_factory=dict)

    def groups(self) -> dict[str, np.ndarray]:
        """The caption kinds of :meth:`table`: name -> bool [M]."""
        g = {"all": np.ones(len(self.hit), bool)}
        g["names one object"] = ~self.second
        g["names two objects"] = self.second
        for n in (1, 2, 3):
            g[f"{n} object{'s' if n > 1 else ''} in the scene"] = self.n_objects == n
        for s, name in enumerate(SIZE_NAMES):
            g[f"{name} object"] = self.size == s
        for s, name in enumerate(V.STYLES):
            g[f"{name} style"] = self.style == s
        return g

    def table(self) -> dict[str, dict[str, float]]:
        """Accuracy by caption kind: ``{kind: {"n", "heat map", "centre", "random"}}``
        (fractions of the kind's captions; kinds with no caption are left out), and the share
        of misses whose peak is on another object ("miss on another object")."""
        rows = {}
        for name, m in self.groups().items():
            if m.any():
                rows[name] = {"n": int(m.sum()), "heat map": float(self.hit[m].mean()),
                              "centre": float(self.centre_hit[m].mean()),
                              "random": float(self.random_rate[m].mean())}
                if self.on_other is not None:
                    rows[name]["miss on another object"] = float(self.on_other[m].mean())
        return rows

    def top_ranked(self) -> dict[str, float]:
        """The top-ranked part: R@1 (the first image is a relevant one: an object has all
        the said attributes), and the pointing accuracy on the first image where it is."""
        if self.top_image is None:
            raise InputError("PointingGame.top_ranked: play with top_ranked=True")
        ok = self.top_target >= 0
        own = self.top_image == self.images
        return {"n": len(ok), "first image has the object": float(ok.mean()),
                "first image is the own image": float(own.mean()),
                "heat map on the first image": float(self.top_hit[ok].mean()) if ok.any()
                else float("nan"),
                "heat map on the first image, other scenes": float(self.top_hit[ok & ~own].mean())
                if (ok & ~own).any() else float("nan")}


def matching_object(world: World, caption: int, image: int) -> int:
    """The first object row of scene ``image`` that has every attribute caption ``caption``
    says of its main object (shape, colour, texture, size, horizontal position), or -1."""
    said = world.caption_main[caption]
    for k in range(int(world.n_objects[image])):
        obj = world.objects[image, k]
        if all(s < 0 or int(s) == int(o) for s, o in zip(said, obj)):
            return k
    return -1


def pointing_game(method, world: World | None = None, *, split: str = "test",
                  per_image: int = 1, tol: float = POINTING_TOLERANCE_PX,
                  top_ranked: bool = False, images: np.ndarray | None = None) -> PointingGame:
    """Play the pointing game for the first ``per_image`` captions of every scene of
    ``split`` of ``world`` (default the evaluation world, :func:`mmkit.scoring.eval_world`):
    each caption's heat map (:func:`caption_heat_maps`) on its own image, a hit when the peak
    lies within ``tol`` pixels of the main object's footprint (every caption names the main
    object, row 0). ``top_ranked``: also explain each caption on the image it ranks first
    among the split's scenes. ``images``: the split's rendered images uint8 [n, H, W, 3], in
    ``world.indices(split)`` order (default: rendered here, only those)."""
    world = eval_world() if world is None else world
    if not isinstance(per_image, (int, np.integer)) or not 1 <= per_image <= \
            world.captions_per_image:
        raise InputError(f"pointing_game: per_image must be in 1..{world.captions_per_image}, "
                         f"got {per_image!r}")
    scenes = world.indices(split)
    if images is None:
        images = np.stack([world.render(int(i)) for i in scenes])
    elif len(images) != len(scenes):
        raise InputError(f"pointing_game: images must hold the {len(scenes)} scenes of "
                         f"{split!r}, got {len(images)}")
    caps = world.caption_indices(scenes, first=per_image)
    pos = np.repeat(np.arange(len(scenes)), per_image)
    img_of = scenes[pos]
    q = method.embed_texts([world.captions[int(j)] for j in caps])
    heat = caption_heat_maps(method, images[pos], q)
    s = heat.shape[1]
    masks = object_footprints(world, img_of, 0, size=s)
    points = heat_peaks(heat)
    game = PointingGame(
        captions=caps, images=img_of, points=points, hit=pointing_hits(points, masks, tol),
        centre_hit=pointing_hits(centre_points(len(caps), s), masks, tol),
        random_rate=random_point_rate(masks, tol), size=world.objects[img_of, 0, 3].astype(int),
        n_objects=world.n_objects[img_of].astype(int), second=world.caption_relation[caps] >= 0,
        style=world.styles[img_of].astype(int), heat=heat, footprints=masks, tol=tol)
    other = np.zeros(len(caps), bool)
    for k in range(1, int(world.n_objects[img_of].max(initial=1))):
        has = np.flatnonzero((world.n_objects[img_of] > k) & ~game.hit)
        if len(has):
            other[has] |= pointing_hits(points[has],
                                        object_footprints(world, img_of[has], k, size=s), tol)
    game.on_other = other
    if top_ranked:
        zi = method.embed_images(images)
        first = (q @ zi.T).argmax(1)
        top_img = scenes[first]
        target = np.array([matching_object(world, int(c), int(i)) for c, i in zip(caps, top_img)])
        hit = np.zeros(len(caps), bool)
        ok = np.flatnonzero(target >= 0)
        if len(ok):
            h2 = caption_heat_maps(method, images[first[ok]], q[ok])
            m2 = object_footprints(world, top_img[ok], target[ok], size=s)
            hit[ok] = pointing_hits(heat_peaks(h2), m2, tol)
        game.top_image, game.top_target, game.top_hit = top_img, target, hit
        positives = np.zeros((len(caps), len(scenes)), bool)
        positives[np.arange(len(caps)), pos] = True
        game.extra["own image R@1"] = float(hit_rate_at_k(q @ zi.T, positives, 1).mean())
    return game


# ============================================================================ words
@lru_cache(maxsize=1)
def attribute_words() -> dict[str, tuple[str, int]]:
    """Words that name exactly one attribute value: ``word -> (attribute, value id)``.

    Every word of the phrase tables of :mod:`mmkit.data.vocab` (shape, colour, texture,
    size and position words), kept when it occurs in the phrases of one value only and in no
    other table (templates, object nouns, relations, styles): ``"scarlet" -> ("colour", 0)``;
    ``"shape"``, ``"with"``, ``"sided"``-style shared words and ``"left"`` (also a relation
    word) are left out."""
    tables = {"shape": V.SHAPE_WORDS, "colour": V.COLOUR_WORDS, "size": V.SIZE_WORDS,
              "hpos": V.HPOS_WORDS}
    seen: dict[str, set[tuple[str, int]]] = {}

    def add(word: str, key: tuple[str, int]) -> None:
        seen.setdefault(word, set()).add(key)

    for attr, table in tables.items():
        values = V.ATTRIBUTE_VALUES[attr]
        for name, phrases in table.items():
            for p in phrases:
                for w in tokenize(p):
                    add(w, (attr, values.index(name)))
    for table in (V.TEXTURE_ADJ, V.TEXTURE_POST):
        for name, phrases in table.items():
            for p in phrases:
                for w in tokenize(p):
                    add(w, ("texture", V.TEXTURES.index(name)))
    other: set[str] = set(V.TEMPLATE_WORDS)
    for table in (V.RELATION_WORDS, V.STYLE_WORDS):
        for phrases in table.values():
            for p in phrases:
                other.update(tokenize(p))
    for p in V.OBJECT_NOUNS:
        other.update(tokenize(p))
    return {w: next(iter(keys)) for w, keys in seen.items() if len(keys) == 1 and w not in other}


def attribute_word_mask(world: World, caption: int, words: Sequence[str] | None = None,
                        groups: Sequence[str] = ("shape", "colour", "texture")) -> np.ndarray:
    """Which words of caption ``caption`` name one of the attribute values it says of its
    main object, in ``groups``: bool [L] over ``words`` (default the caption's tokens,
    :meth:`World.caption_tokens`). A word shared by the second object's mention (the same
    colour, say) counts: it names the target's value too."""
    words = world.caption_tokens(caption) if words is None else list(words)
    table = attribute_words()
    main = world.caption_main[caption]
    want = {(a, int(main[V.ATTRIBUTES.index(a)])) for a in groups}
    return np.array([table.get(w) in want for w in words], bool)


@dataclass
class WordAttribution:
    """Attributions of one caption's words to its score with one image.

    ``words`` the tokens [L]; ``scores`` float [L] (occlusion: the score drop when the word
    goes; integrated gradients: the word's share of score(caption) - score(baseline));
    ``score`` the caption's cosine similarity to the image; ``baseline_score`` the score of
    the reference input (occlusion: nan); ``how`` the method's name.
    """

    words: list[str]
    scores: np.ndarray
    score: float
    baseline_score: float = float("nan")
    how: str = "occlusion"

    @property
    def completeness_gap(self) -> float:
        """|sum of attributions - (score - baseline score)| (integrated gradients only)."""
        return float(abs(self.scores.sum() - (self.score - self.baseline_score)))

    @property
    def top_word(self) -> int:
        """The position of the most important word (the largest attribution)."""
        return int(np.argmax(self.scores))


def _tokens(model, caption: str) -> tuple[list[str], list[int]]:
    if not isinstance(caption, str) or not caption.strip():
        raise InputError("word attributions: caption must be a non-empty string")
    tok = model.tokenizer
    words = tok.tokens(caption)
    if not words:
        raise InputError(f"word attributions: no words in {caption!r}")
    return words, [tok.id_of(w) for w in words]


def _image_embeddings(model, images: np.ndarray) -> torch.Tensor:
    """uint8 [M, H, W, 3] (or one [H, W, 3]) -> L2-normalised float [M, d], no gradient."""
    arr = np.asarray(images)
    img = check_images(arr[None] if arr.ndim == 3 else arr, name="word attributions: image")
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            return torch.cat([F.normalize(model.encode_image(model.image_tensor(
                img[s:s + 256])), dim=-1) for s in range(0, len(img), 256)])
    finally:
        model.train(was)


def _padded(rows: Sequence[Sequence[int]], device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(1, max(len(r) for r in rows))
    ids = torch.zeros((len(rows), width), dtype=torch.int64)
    for n, r in enumerate(rows):
        ids[n, :len(r)] = torch.as_tensor(list(r), dtype=torch.int64)
    return ids.to(device), torch.tensor([len(r) for r in rows], dtype=torch.int64)


def _occlusion_batch(model, ids: Sequence[list[int]], zi: torch.Tensor, mode: str
                     ) -> list[tuple[np.ndarray, float]]:
    """Occlusion for M captions (id lists) against their images' embeddings ``zi`` [M, d]:
    [(drops float [L_m], full score)] (one text-tower pass over every variant)."""
    unk = model.tokenizer.unk_id
    rows, owner = [], []
    for m, r in enumerate(ids):
        rows.append(r)
        owner.append(m)
        for n in range(len(r)):
            rows.append(r[:n] + r[n + 1:] if mode == "remove" else r[:n] + [unk] + r[n + 1:])
            owner.append(m)
    was = model.text.training
    model.text.eval()
    scores = []
    try:
        with torch.no_grad():
            for s in range(0, len(rows), 2048):
                t, lengths = _padded(rows[s:s + 2048], zi.device)
                z = F.normalize(model.text(t, lengths), dim=-1)
                scores.append((z * zi[owner[s:s + 2048]]).sum(1).double().cpu().numpy())
    finally:
        model.text.train(was)
    flat = np.concatenate(scores)
    out, at = [], 0
    for r in ids:
        block = flat[at:at + len(r) + 1]
        out.append((block[0] - block[1:], float(block[0])))
        at += len(r) + 1
    return out


def word_occlusion(method, caption: str, image: np.ndarray, *,
                   mode: str = "remove") -> WordAttribution:
    """Score drop per word: ``score(caption) - score(caption without word l)`` (``mode=
    "remove"``) or with word ``l`` replaced by the unknown token (``"unknown"``); the score is
    the cosine similarity of the caption's and the image's embeddings (uint8 [H, W, 3]), as
    ``method.embed_texts`` and ``method.embed_images`` give them. float [L] in
    :attr:`WordAttribution.scores`."""
    if mode not in ("remove", "unknown"):
        raise InputError(f"word_occlusion: mode must be 'remove' or 'unknown', got {mode!r}")
    model = method.model
    words, ids = _tokens(model, caption)
    zi = _image_embeddings(model, image)
    if len(zi) != 1:
        raise InputError(f"word_occlusion: one image [H, W, 3], got {len(zi)}")
    ((drops, full),) = _occlusion_batch(model, [ids], zi, mode)
    return WordAttribution(words, drops, full, how=f"occlusion ({mode})")


def text_from_embeddings(encoder: nn.Module, x: torch.Tensor, lengths: torch.Tensor
                         ) -> torch.Tensor:
    """The recurrent text tower (:class:`~mmkit.features.sentence_encoders.
    RecurrentTextEncoder`) from its word embeddings on: float [N, L, E] (what
    ``encoder.embed(ids)`` gives), lengths int64 [N] -> float [N, out_dim], the same as
    ``encoder(ids, lengths)`` but differentiable in ``x``."""
    lengths = lengths.clamp(min=1, max=x.shape[1]).cpu()
    packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True,
                                               enforce_sorted=False)
    _, h = encoder.rnn(packed)
    if isinstance(h, tuple):   # LSTM: (h, c)
        h = h[0]
    last = h[-2:] if encoder.bidirectional else h[-1:]
    return encoder.proj(torch.cat(list(last), dim=-1))


def _ig_batch(model, ids: Sequence[list[int]], zi: torch.Tensor, steps: int, baseline: str
              ) -> list[tuple[np.ndarray, float, float]]:
    """Integrated gradients for M captions at once: [(attributions [L_m], score, baseline
    score)]. Every path point is its own sequence (packed, so padding changes nothing) and
    the scores are summed before the backward pass: the gradients stay per sequence."""
    enc = model.text
    ref_id = model.tokenizer.pad_id if baseline == "pad" else model.tokenizer.unk_id
    t, lengths = _padded(ids, zi.device)
    with torch.no_grad():
        x = enc.embed(t)                                                  # [M, L, E]
        x0 = enc.embed(torch.full_like(t, ref_id))
    k = int(steps) + 1
    alphas = torch.linspace(0, 1, k, device=x.device, dtype=x.dtype)
    path = (x0[:, None] + alphas[None, :, None, None] * (x - x0)[:, None])   # [M, k, L, E]
    path = path.reshape(-1, *x.shape[1:]).detach().requires_grad_(True)
    was = enc.training
    enc.eval()
    try:
        with torch.enable_grad():
            z = F.normalize(text_from_embeddings(enc, path, lengths.repeat_interleave(k)),
                            dim=-1)
            score = (z * zi.repeat_interleave(k, 0)).sum(1)                # [M * k]
            (grads,) = torch.autograd.grad(score.sum(), path)
    finally:
        enc.train(was)
    w = torch.ones(k, dtype=grads.dtype, device=grads.device)
    w[0] = w[-1] = 0.5
    grads = grads.reshape(len(ids), k, *x.shape[1:])
    mean_grad = (w[None, :, None, None] * grads).sum(1) / int(steps)     # [M, L, E]
    attr = ((x - x0) * mean_grad).sum(2).double().cpu().numpy()
    s = score.detach().reshape(len(ids), k).double().cpu().numpy()
    return [(attr[m, :len(r)], float(s[m, -1]), float(s[m, 0])) for m, r in enumerate(ids)]


def _check_ig(steps, baseline) -> None:
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise InputError(f"integrated_gradients: steps must be a positive integer, got {steps!r}")
    if baseline not in ("pad", "unknown"):
        raise InputError(f"integrated_gradients: baseline must be 'pad' or 'unknown', "
                         f"got {baseline!r}")


def integrated_gradients(method, caption: str, image: np.ndarray, *, steps: int = IG_STEPS,
                         baseline: str = "pad") -> WordAttribution:
    """Integrated gradients (Sundararajan et al., 2017) of the caption-image cosine score
    over the text tower's word embeddings, written with torch autograd.

    ``x`` [L, E]: the caption's word embeddings; ``x0``: the baseline, the padding token's
    embedding at every position (``"pad"``, zeros: the model's "no word") or the unknown
    token's (``"unknown"``). Attribution of word ``l`` = ``sum_e (x - x0)[l, e] * mean over
    the path of d score / d x[l, e]``, the mean by the trapezoid rule over ``steps + 1``
    points ``x0 + a (x - x0)``, a = 0, 1/steps, ..., 1. Completeness: the attributions sum
    to ``score(x) - score(x0)`` up to the rule's error
    (:attr:`WordAttribution.completeness_gap`)."""
    _check_ig(steps, baseline)
    model = method.model
    words, ids = _tokens(model, caption)
    zi = _image_embeddings(model, image)
    if len(zi) != 1:
        raise InputError(f"integrated_gradients: one image [H, W, 3], got {len(zi)}")
    ((attr, full, base),) = _ig_batch(model, [ids], zi, int(steps), baseline)
    return WordAttribution(words, attr, full, base, how=f"integrated gradients ({baseline})")


@dataclass
class WordGame:
    """How often each attribution method's most important word names the main object's
    shape, colour or texture, over ``M`` captions.

    ``captions`` [M]; ``top_is_attribute`` {method: bool [M]}; ``chance`` float [M] the
    fraction of the caption's words that name them (a word picked at random);
    ``top_group`` {method: list[str] [M]} what the top word names (an attribute of
    :data:`WORD_GROUPS`, ``"second object"`` or ``"other"``); ``completeness_gap`` float [M]
    integrated gradients' |sum - (score - baseline)|; ``attributions`` {method: list of
    :class:`WordAttribution`}.
    """

    captions: np.ndarray
    top_is_attribute: dict[str, np.ndarray]
    chance: np.ndarray
    top_group: dict[str, list[str]]
    completeness_gap: np.ndarray
    attributions: dict[str, list[WordAttribution]]

    def table(self) -> dict[str, dict[str, float]]:
        """``{method: {"top word names shape/colour/texture", "chance", and the share of
        each top-word group}}``."""
        rows = {}
        for name, hits in self.top_is_attribute.items():
            groups = np.array(self.top_group[name])
            row = {"n": len(hits), "top word is an attribute word": float(hits.mean()),
                   "chance": float(self.chance.mean())}
            for g in (*WORD_GROUPS, "second object", "other"):
                row[f"top word: {g}"] = float((groups == g).mean())
            rows[name] = row
        return rows


def _word_group(world: World, caption: int, word: str) -> str:
    hit = attribute_words().get(word)
    if hit is None:
        return "other"
    attr, value = hit
    a = V.ATTRIBUTES.index(attr)
    if int(world.caption_main[caption][a]) == value:
        return attr
    if int(world.caption_second[caption][a]) == value:
        return "second object"
    return "other"


def word_game(method, world: World | None = None, *, captions: np.ndarray | None = None,
              images: np.ndarray | None = None, steps: int = IG_STEPS,
              batch_size: int = 64) -> WordGame:
    """Word occlusion (remove, unknown) and integrated gradients (pad baseline, ``steps``)
    for each caption of ``captions`` (world caption indices; default the first caption of
    every test scene of ``world``, default the evaluation world) on its own image;
    ``images``: their images uint8 [M, H, W, 3] (default rendered here). The same numbers as
    :func:`word_occlusion` and :func:`integrated_gradients` caption by caption, computed
    ``batch_size`` captions at a time."""
    _check_ig(steps, "pad")
    world = eval_world() if world is None else world
    caps = world.caption_indices(world.indices("test"), first=1) if captions is None \
        else np.asarray(captions, np.int64).reshape(-1)
    if len(caps) == 0:
        raise InputError("word_game: no captions given")
    if images is None:
        images = np.stack([world.render(int(world.caption_image[c])) for c in caps])
    if len(images) != len(caps):
        raise InputError(f"word_game: one image per caption, got {len(images)} for "
                         f"{len(caps)} captions")
    model = method.model
    zi = _image_embeddings(model, images)
    tokens = [_tokens(model, world.captions[int(c)]) for c in caps]
    attributions: dict[str, list[WordAttribution]] = {
        "occlusion (remove)": [], "occlusion (unknown)": [], "integrated gradients": []}
    for s in range(0, len(caps), batch_size):
        ids = [t[1] for t in tokens[s:s + batch_size]]
        z = zi[s:s + batch_size]
        for mode in ("remove", "unknown"):
            for (words, _), (drops, full) in zip(tokens[s:s + batch_size],
                                                 _occlusion_batch(model, ids, z, mode)):
                attributions[f"occlusion ({mode})"].append(
                    WordAttribution(words, drops, full, how=f"occlusion ({mode})"))
        for (words, _), (attr, full, base) in zip(tokens[s:s + batch_size],
                                                  _ig_batch(model, ids, z, int(steps), "pad")):
            attributions["integrated gradients"].append(
                WordAttribution(words, attr, full, base, how="integrated gradients (pad)"))
    masks = [attribute_word_mask(world, int(c), words) for c, (words, _) in zip(caps, tokens)]
    top = {k: np.array([bool(m[a.top_word]) for m, a in zip(masks, v)])
           for k, v in attributions.items()}
    groups = {k: [_word_group(world, int(c), a.words[a.top_word]) for c, a in zip(caps, v)]
              for k, v in attributions.items()}
    gaps = np.array([a.completeness_gap for a in attributions["integrated gradients"]])
    return WordGame(caps, top, np.array([m.mean() for m in masks]), groups, gaps, attributions)


# ============================================================================ figure
def plot_explanations(game: PointingGame, words: WordGame, rows: Sequence[int],
                      images: np.ndarray, world: World | None = None,
                      how: str = "integrated gradients"):
    """A figure of ``len(rows)`` captions (positions in ``game`` and in ``words``, which
    must hold the same captions): the image with the object's outline, the heat map
    overlaid with its peak (green: a hit, red: a miss) and the centre point, and the words'
    attributions (``how``: a method of ``words``) as bars. ``images``: uint8 [M, H, W, 3]
    the games' images. Returns the matplotlib figure."""
    import matplotlib.pyplot as plt

    world = eval_world() if world is None else world
    rows = list(rows)
    if not rows:
        raise InputError("plot_explanations: give at least one row")
    fig, axes = plt.subplots(len(rows), 3, figsize=(12, 3.0 * len(rows)),
                             gridspec_kw={"width_ratios": [1, 1, 2.4]}, squeeze=False)
    for ax_row, r in zip(axes, rows):
        c = int(game.captions[r])
        if int(words.captions[r]) != c:
            raise InputError("plot_explanations: game and words must hold the same captions")
        img, heat, mask = images[r], game.heat[r], game.footprints[r]
        (y, x), ok = game.points[r], bool(game.hit[r])
        ax_row[0].imshow(img)
        ax_row[0].contour(mask, levels=[0.5], colors="white", linewidths=1)
        ax_row[0].set_title(f"scene {int(game.images[r])}: the named object", fontsize=9)
        ax_row[1].imshow(img)
        ax_row[1].imshow(heat, cmap="jet", alpha=0.5, vmin=0, vmax=1)
        ax_row[1].contour(mask, levels=[0.5], colors="white", linewidths=1)
        ax_row[1].plot([x], [y], marker="o" if ok else "x", color="lime" if ok else "red",
                       markersize=9, mew=2, linestyle="none",
                       label="peak: hit" if ok else "peak: miss")
        s = heat.shape[0] // 2
        ax_row[1].plot([s], [s], marker="+", color="white", markersize=8, linestyle="none",
                       label="centre")
        ax_row[1].legend(fontsize=7, loc="lower right")
        ax_row[1].set_title("similarity Grad-CAM", fontsize=9)
        for ax in ax_row[:2]:
            ax.set_xticks([])
            ax.set_yticks([])
        att = words.attributions[how][r]
        gt = attribute_word_mask(world, c, att.words)
        colours = ["tab:orange" if g else "tab:gray" for g in gt]
        ax_row[2].bar(range(len(att.words)), att.scores, color=colours)
        ax_row[2].set_xticks(range(len(att.words)))
        ax_row[2].set_xticklabels(att.words, rotation=45, ha="right", fontsize=8)
        ax_row[2].axhline(0, color="black", linewidth=0.5)
        ax_row[2].set_ylabel(f"attribution ({how})", fontsize=8)
        ax_row[2].set_title(world.captions[c], fontsize=9)
    from matplotlib.patches import Patch

    axes[0, 2].legend(handles=[Patch(color="tab:orange", label="names shape/colour/texture"),
                               Patch(color="tab:gray", label="other word")], fontsize=7)
    fig.tight_layout()
    return fig


__all__ = [
    "IG_STEPS",
    "POINTING_TOLERANCE_PX",
    "WORD_GROUPS",
    "PointingGame",
    "WordAttribution",
    "WordGame",
    "attribute_word_mask",
    "attribute_words",
    "caption_heat_maps",
    "centre_points",
    "dilate",
    "heat_peaks",
    "integrated_gradients",
    "matching_object",
    "object_footprints",
    "plot_explanations",
    "pointing_game",
    "pointing_hits",
    "random_point_rate",
    "text_from_embeddings",
    "word_game",
    "word_occlusion",
]
