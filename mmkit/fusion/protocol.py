"""The fusion protocol of notebook 07 and ``benchmarks/bench_fusion.py``: embeddings of a
set of scenes from one :class:`~mmkit.methods.base.RetrievalMethod`, and the three kinds of
multimodal query built from them, each with exact ground truth.

Query sets (gallery: the images of the same scenes; scores: cosine similarities):

- ``text+sound`` (:func:`text_sound_queries`): caption j of scene i together with the sound
  of scene i; Q = 5 S queries. **Pair** ground truth: the positive is scene i's image, the
  graded relevance is the caption's (as text->image). **Class** ground truth
  (:func:`class_level`): positives are the images of scene i's class, relevance the scene
  relevance (as audio->image; scene i's own image included).
- ``image+text`` (:func:`composed_queries`): a reference image and a modification sentence;
  targets from :mod:`mmkit.fusion.composed` (the reference excluded).
- ``image+text+sound`` (:func:`all_three_queries`): scene i's image, its first caption and its
  sound; positives are the OTHER images of scene i's class (scene i excluded, as
  image->image), relevance the scene relevance.

Each :class:`QuerySet` holds one score matrix per modality, so any fusion of
:mod:`mmkit.fusion.scores` applies. This module imports model code (it calls a method);
the score-level modules do not.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from mmkit.errors import InputError
from mmkit.features.cache import array_key, cached
from mmkit.fusion.composed import ComposedQueries, all_modification_texts, make_composed_queries
from mmkit.methods import RetrievalMethod, available_methods, get_method
from mmkit.scoring import score_metrics


@dataclass
class SceneEmbeddings:
    """Embeddings of S scenes (and their 5 S captions) by one method.

    Attributes:
        images: int64 [S] image indices; captions: int64 [5 S] caption indices.
        image_text / image_audio / image_image: float32 [S, d] the images in the space shared
            with text, with audio, and the image->image space (one and the same array for
            a joint-space method).
        text: float32 [5 S, d_t]; audio: float32 [S, d_a].
        mod_texts: the modification sentences; mods: float32 [K, d_t] their embeddings.
    """

    images: np.ndarray
    captions: np.ndarray
    image_text: np.ndarray
    image_audio: np.ndarray
    image_image: np.ndarray
    text: np.ndarray
    audio: np.ndarray
    mod_texts: list[str]
    mods: np.ndarray

    def mod(self, texts: list[str]) -> np.ndarray:
        """float32 [len(texts), d_t]: the embeddings of modification sentences."""
        row = {t: i for i, t in enumerate(self.mod_texts)}
        missing = [t for t in texts if t not in row]
        if missing:
            raise InputError(f"no embedding for modification {missing[0]!r}")
        return self.mods[[row[t] for t in texts]]


def method_fingerprint(method: "LazyMethod | RetrievalMethod | str") -> str:
    """What identifies a method's embeddings in the cache:
    :attr:`~mmkit.methods.base.RetrievalMethod.fingerprint` (for a method built from
    checkpoints, the sha256 of the weights it loaded or, before loading, of those it would
    load: :attr:`mmkit.methods.joint.JointMethod.fingerprint`,
    :attr:`mmkit.methods.clip.ClipMethod.fingerprint`). ``method``: a method, a
    :class:`LazyMethod` or a registered name (an unfitted instance is asked; nothing is
    fitted)."""
    if isinstance(method, str):
        method = get_method(method)
    elif isinstance(method, LazyMethod):
        method = method.instance()
    return method.fingerprint


def pick_method() -> str:
    """``"joint"`` when it is registered AND its committed checkpoint is there (never a
    15-minute retraining inside a notebook), else ``"baseline"``."""
    trained = Path(__file__).resolve().parents[1] / "trained" / "joint_world.safetensors"
    return "joint" if "joint" in available_methods() and trained.is_file() else "baseline"


class LazyMethod:
    """A method by name, fitted on ``fit_world``'s train split the first time it is needed
    (not at all when every embedding comes from the cache); share one between the
    :func:`embed_scenes` calls of a protocol so that it is fitted once."""

    def __init__(self, name: str | None = None, fit_world=None, progress: bool = False) -> None:
        self.name = name or pick_method()
        self.fit_world = fit_world
        self.progress = progress
        self._method = None
        self._fitted = False

    def instance(self):
        """The method, made but not fitted yet (its :attr:`fingerprint` needs no fit)."""
        if self._method is None:
            kwargs = {"progress": self.progress} if self.name == "baseline" else {}
            self._method = get_method(self.name, **kwargs)
        return self._method

    @property
    def fingerprint(self) -> str:
        """:func:`method_fingerprint` of the method (fits nothing)."""
        return method_fingerprint(self.instance())

    def get(self):
        """The method, fitted on ``fit_world``'s train split (once)."""
        if not self._fitted:
            self.instance().fit(self.fit_world, self.fit_world.indices("train"))
            self._fitted = True
        return self._method


def embed_scenes(world, images: np.ndarray, method: "LazyMethod | str | None" = None,
                 cache: bool = True) -> SceneEmbeddings:
    """Embed the scenes ``images`` of ``world`` (and their captions, the modification
    sentences) with ``method`` (a :class:`LazyMethod`, or a name: fitted on ``world``'s train
    split). Cached under ``data/cache``, keyed by the world's config, the images, the method's
    fingerprint (:func:`method_fingerprint`: the weights it loads) and its fit world's config:
    a cache hit fits nothing."""
    images = np.asarray(images, np.int64)
    if not isinstance(method, LazyMethod):
        method = LazyMethod(method, world)
    if method.fit_world is None:
        method.fit_world = world
    parts = {"world": world.config.to_dict(), "images": array_key(images),
             "method": method.fingerprint,
             "fit_world": method.fit_world.config.to_dict()}
    fitted = method.get

    caps = world.caption_indices(images)
    mod_texts = all_modification_texts()
    sr = world.config.sample_rate

    def get(what, compute):
        return cached(f"fusion-{what}", parts, compute, enabled=cache).astype(np.float32)

    def img(partner):
        return lambda: fitted().embed_images(world.images[images], partner=partner)

    image_text = get("image_text", img("text"))
    image_audio = get("image_audio", img("audio"))
    image_image = get("image_image", img("image"))
    text = get("text", lambda: fitted().embed_texts([world.captions[j] for j in caps]))
    audio = get("audio", lambda: fitted().embed_audio(world.audio[images], sr))
    mods = get("mods", lambda: fitted().embed_texts(mod_texts))
    return SceneEmbeddings(images, caps, image_text, image_audio, image_image, text, audio,
                           mod_texts, mods)


@dataclass
class QuerySet:
    """Q multimodal queries against G gallery images.

    Attributes:
        name: e.g. ``"text+sound"``.
        scores: ``{modality: float32 [Q, G]}`` cosine similarities of each query modality
            to the gallery (``-inf`` at excluded items).
        relevance: int8 [Q, G] graded 0-3 (mAP counts 3); positives: bool [Q, G] (R@K).
        query_scene: int64 [Q] the scene each query comes from (its reference for composed
            queries).
        gallery: int64 [G] image indices.
    """

    name: str
    scores: dict[str, np.ndarray]
    relevance: np.ndarray
    positives: np.ndarray
    query_scene: np.ndarray
    gallery: np.ndarray
    info: dict = field(default_factory=dict)

    @property
    def modalities(self) -> list[str]:
        return list(self.scores)

    def stack(self, modalities: list[str] | None = None) -> np.ndarray:
        """float64 [M, Q, G] of the named modalities (default: all, in order)."""
        return np.stack([self.scores[m] for m in (modalities or self.modalities)]).astype(
            np.float64)

    def metrics(self, fused: np.ndarray) -> dict[str, float]:
        """R@1/5/10, mAP, NDCG@10 of a score matrix float [Q, G] (the demo's metrics:
        :func:`mmkit.scoring.score_metrics`)."""
        return score_metrics(fused, self.relevance, self.positives)

    def subset(self, rows: np.ndarray) -> "QuerySet":
        """The queries ``rows`` only."""
        return replace(self, scores={m: s[rows] for m, s in self.scores.items()},
                       relevance=self.relevance[rows], positives=self.positives[rows],
                       query_scene=self.query_scene[rows])


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a @ b.T).astype(np.float32)


def text_sound_queries(world, emb: SceneEmbeddings) -> QuerySet:
    """Every caption of the scenes with its own scene's sound (pair ground truth)."""
    per = world.config.captions_per_image
    scene_row = np.repeat(np.arange(len(emb.images)), per)
    text = _cos(emb.text, emb.image_text)
    sound = _cos(emb.audio, emb.image_audio)[scene_row]
    rel = world.caption_relevance(emb.captions, emb.images)
    pos = world.caption_image[emb.captions][:, None] == emb.images[None, :]
    return QuerySet("text+sound", {"text": text, "sound": sound}, rel, pos,
                    emb.images[scene_row], emb.images, {"positives": "pair"})


def class_level(world, qs: QuerySet, exclude_self: bool = False) -> QuerySet:
    """The same queries with class ground truth: positives are the images of the query
    scene's class, relevance the scene relevance (query scene excluded if asked)."""
    rel = world.scene_relevance(qs.query_scene, qs.gallery)
    scores = {m: s.copy() for m, s in qs.scores.items()}
    if exclude_self:
        mask = qs.query_scene[:, None] == qs.gallery[None, :]
        rel[mask] = 0
        for s in scores.values():
            s[mask] = -np.inf
    return replace(qs, scores=scores, relevance=rel, positives=rel == 3,
                   info={**qs.info, "positives": "class"})


def composed_queries(world, emb: SceneEmbeddings, seed: int = 0
                     ) -> tuple[QuerySet, ComposedQueries]:
    """One composed query per scene with a target among the others (reference excluded)."""
    cq = make_composed_queries(world, emb.images, emb.images, seed=seed)
    row = {int(g): i for i, g in enumerate(emb.images)}
    ref_rows = np.array([row[int(r)] for r in cq.references], np.int64)
    image = _cos(emb.image_image[ref_rows], emb.image_image)
    text = _cos(emb.mod(cq.texts), emb.image_text)
    for s in (image, text):
        s[cq.exclude] = -np.inf
    qs = QuerySet("image+text", {"image": image, "text": text}, cq.relevance, cq.positives,
                  cq.references, emb.images, {"positives": "composed target"})
    return qs, cq


def all_three_queries(world, emb: SceneEmbeddings) -> QuerySet:
    """Scene i's image + first caption + sound against the other images (class ground
    truth, scene i excluded)."""
    per = world.config.captions_per_image
    first = np.arange(len(emb.images)) * per
    qs = QuerySet("image+text+sound",
                  {"image": _cos(emb.image_image, emb.image_image),
                   "text": _cos(emb.text[first], emb.image_text),
                   "sound": _cos(emb.audio, emb.image_audio)},
                  np.zeros((len(emb.images),) * 2, np.int8), np.zeros((len(emb.images),) * 2, bool),
                  emb.images, emb.images)
    return class_level(world, qs, exclude_self=True)


# ------------------------------------------------------------- damaged modalities
def drop_modality(qs: QuerySet, modality: str, fraction: float, seed: int = 0) -> QuerySet:
    """The queries with ``modality`` missing (its rows set to NaN) for a seeded ``fraction``
    of the query scenes (all queries of a scene together)."""
    return _damage(qs, modality, fraction, seed, "drop")


def corrupt_modality(qs: QuerySet, modality: str, fraction: float, seed: int = 0) -> QuerySet:
    """The queries with ``modality`` replaced, for a seeded ``fraction`` of the query scenes,
    by that modality of ANOTHER scene (e.g. the wrong sound clip): a plausible-looking but
    wrong input."""
    return _damage(qs, modality, fraction, seed, "corrupt")


def _damage(qs: QuerySet, modality: str, fraction: float, seed: int, how: str) -> QuerySet:
    if modality not in qs.scores:
        raise InputError(f"{qs.name} has no modality {modality!r} ({', '.join(qs.scores)})")
    if not 0 <= fraction <= 1:
        raise InputError(f"fraction must be in [0, 1], got {fraction}")
    rng = np.random.default_rng([seed, 11])
    scenes = np.unique(qs.query_scene)
    hit = rng.permutation(scenes)[:int(round(fraction * len(scenes)))]
    rows = np.flatnonzero(np.isin(qs.query_scene, hit))
    s = qs.scores[modality].astype(np.float32).copy()
    if how == "drop":
        s[rows] = np.nan
    else:
        # the row of a query of another scene, chosen at random
        donors = rng.integers(0, len(s) - 1, len(rows))
        for r, d in zip(rows, donors):
            while qs.query_scene[d] == qs.query_scene[r]:
                d = (d + 1) % len(s)
            row = np.array(qs.scores[modality][d], np.float32)
            excluded = np.isneginf(qs.scores[modality][r])
            row[np.isneginf(row)] = np.nanmin(np.where(np.isfinite(row), row, np.nan))
            row[excluded] = -np.inf
            s[r] = row
    return replace(qs, scores={**qs.scores, modality: s},
                   info={**qs.info, f"{how}:{modality}": float(fraction)})
