"""The embedded multimodal world: a seeded, procedurally generated retrieval dataset.

Every scene holds 1-3 objects (shape, colour, texture, size, position) over a varied background,
drawn in one of three styles. A scene's *class* is the (shape, colour, texture) of its main
(largest) object: 64 fine-grained classes, half of which have a sibling class that differs in
one subtle attribute, as close bird species do in CUB-200. Each scene comes with

- an RGB image (:attr:`World.images`, uint8 [N, H, W, 3]),
- five partial captions (:attr:`World.captions`; caption ``j`` belongs to image
  ``World.caption_image[j]``),
- a sound clip whose notes follow the objects (:attr:`World.audio`, float32 [N, T]),
- spoken captions synthesised offline with espeak-ng (:meth:`World.speech`),
- a word on a sign in some scenes (:attr:`World.words`) for OCR,
- attribute vectors, train/val/test splits and an unseen-class split,
- graded relevance 0-3 between any caption and any image, and between any two scenes.

Determinism: every random draw comes from ``numpy.random.default_rng([seed, stream, item])``,
so the same seed gives byte-identical arrays in any process, whatever is generated first.
"""
from __future__ import annotations

import dataclasses
import math
import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from functools import cached_property

import numpy as np

from mmkit._setup import usable_cores
from mmkit.data import vocab as V
from mmkit.data.captions import CaptionStruct, make_caption, tokenize
from mmkit.data.collection import CollectionBase
from mmkit.data.directions import Direction, get_direction
from mmkit.data.relevance import caption_relevance, scene_relevance
from mmkit.data.render import render_scene
from mmkit.data.sound import synth_scene
from mmkit.data.speech import speak
from mmkit.errors import InputError
from mmkit.validate import integer, is_integer, number, positive_int

# random streams (the second entry of every seed sequence)
_S_LABELS, _S_SPLIT, _S_SCENE, _S_CAPTION, _S_PIXELS, _S_AUDIO, _S_UNSEEN = range(7)

SPLITS = ("train", "val", "test", "unseen")
#: what the world holds as data (its speech is synthesised on demand, not recorded)
WORLD_MODALITIES = ("text", "image", "audio")
#: the world's scenes from which progress bars are shown while rendering (``progress=None``)
PROGRESS_MIN_SCENES = 3000
#: worlds of at least this many scenes render images and sounds in forked worker processes
#: (one per usable core); the arrays are byte-identical to a serial render
PARALLEL_MIN_SCENES = 4000
#: scenes per worker task
RENDER_CHUNK = 500
_FORKED: "World | None" = None


def _render_workers(n: int) -> int:
    if n < PARALLEL_MIN_SCENES or "fork" not in mp.get_all_start_methods():
        return 1
    return max(1, min(usable_cores(), math.ceil(n / RENDER_CHUNK)))


def _render_chunk(task: tuple[str, int, int]) -> np.ndarray:
    method, a, b = task
    render = getattr(_FORKED, method)
    return np.stack([render(i) for i in range(a, b)])


@dataclass(frozen=True)
class WorldConfig:
    """Everything that defines a world. Two equal configs give identical worlds."""

    n: int = 2000
    seed: int = 0
    image_size: int = 64
    max_objects: int = 3
    #: frequency ratio between the most and the least common class (1 = balanced; 10, 100 =
    #: long-tailed, with an exponential profile over classes in a seeded order)
    imbalance: float = 1.0
    #: classes held out of train/val/test, for zero-shot and few-shot chapters
    n_unseen_classes: int = 8
    #: train / val / test fractions of the seen-class scenes
    split_fractions: tuple[float, float, float] = (0.7, 0.1, 0.2)
    #: probabilities of the photo / sketch / painting styles
    style_probs: tuple[float, float, float] = (0.6, 0.2, 0.2)
    #: fraction of scenes with a word on a sign
    sign_prob: float = 0.25
    captions_per_image: int = 5
    sample_rate: int = 16000
    audio_seconds: float = 1.0
    #: scales image and audio noise (0 = clean)
    noise: float = 1.0
    def __post_init__(self) -> None:
        problems: list[str] = []

        def check(fn, *args, **kwargs) -> None:
            try:
                fn(*args, **kwargs)
            except InputError as exc:
                problems.append(str(exc))

        check(positive_int, self.n, "n")
        check(integer, self.seed, "seed", low=0)
        check(integer, self.image_size, "image_size", low=16)
        check(integer, self.max_objects, "max_objects", low=1, high=3)
        check(number, self.imbalance, "imbalance", low=1)
        check(integer, self.n_unseen_classes, "n_unseen_classes", low=0, high=V.N_CLASSES - 1)
        for name in ("split_fractions", "style_probs"):
            parts = getattr(self, name)
            ok = isinstance(parts, (tuple, list)) and len(parts) == 3 and all(
                is_integer(p) or (isinstance(p, (float, np.floating)) and math.isfinite(p))
                for p in parts) and min(parts) >= 0 and math.isclose(sum(parts), 1.0)
            if not ok:
                problems.append(f"{name} must be 3 non-negative numbers summing to 1, "
                                f"got {parts!r}")
        check(number, self.sign_prob, "sign_prob", low=0, high=1)
        check(positive_int, self.captions_per_image, "captions_per_image")
        check(integer, self.sample_rate, "sample_rate", low=4000)
        check(number, self.audio_seconds, "audio_seconds", low=0, low_open=True)
        check(number, self.noise, "noise", low=0)
        if problems:
            raise InputError("WorldConfig: " + "; ".join(problems))
        # equal settings, equal configs: (0.7, 0.1, 0.2) whether given as a list or a tuple
        for name in ("split_fractions", "style_probs"):
            object.__setattr__(self, name, tuple(float(p) for p in getattr(self, name)))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["split_fractions"] = list(self.split_fractions)
        d["style_probs"] = list(self.style_probs)
        return d


def _rng(seed: int, stream: int, item: int | None = None) -> np.random.Generator:
    key = [int(seed), stream] if item is None else [int(seed), stream, int(item)]
    return np.random.default_rng(key)


def class_frequencies(n_classes: int, imbalance: float, seed: int) -> np.ndarray:
    """Class probabilities [C]: exponential profile from 1 down to 1/imbalance, seeded order."""
    order = _rng(seed, _S_LABELS).permutation(n_classes)
    profile = imbalance ** (-np.arange(n_classes) / max(1, n_classes - 1))
    p = np.empty(n_classes)
    p[order] = profile
    return p / p.sum()


def draw_labels(n: int, seed: int, imbalance: float = 1.0) -> np.ndarray:
    """The class of each of the ``n`` scenes of ``World(n=n, seed=seed, imbalance=imbalance)``:
    int [n], drawn exactly as the world draws them, without building the world."""
    freq = class_frequencies(V.N_CLASSES, imbalance, seed)
    return _rng(seed, _S_LABELS, 1).choice(V.N_CLASSES, size=n, p=freq)


def _place(rng: np.random.Generator, sizes: list[int], y_max: float) -> list[tuple[float, float]]:
    """Non-overlapping centres in [0,1]^2 for objects of the given sizes (largest first)."""
    placed: list[tuple[float, float, float]] = []
    for size in sizes:
        r = V.SIZE_RADIUS[size]
        for _ in range(200):
            x = rng.uniform(r + 0.02, 1 - r - 0.02)
            y = rng.uniform(r + 0.02, max(r + 0.021, y_max - r))
            if all((x - px) ** 2 + (y - py) ** 2 >= (r + pr + 0.03) ** 2 for px, py, pr in placed):
                placed.append((x, y, r))
                break
        else:
            break  # no room: fewer objects
    return [(x, y) for x, y, _ in placed]


class World(CollectionBase):
    """A generated world. Cheap parts (scenes, captions, relevance) are built on creation;
    images and audio are rendered on first access and cached.

    A :class:`~mmkit.data.collection.Collection`: ids, ground truth and directions come from
    :class:`~mmkit.data.collection.CollectionBase`; the world grades relevance 0-3
    (:meth:`relevance`) and defines every direction of
    :data:`~mmkit.data.directions.DIRECTIONS` (its speech is synthesised: :meth:`speech`).

    Example:
        >>> w = World(WorldConfig(n=100, seed=0))
        >>> w.images.shape, len(w.captions)
        ((100, 64, 64, 3), 500)
    """

    def __init__(self, config: WorldConfig | None = None, *, progress: bool | None = None,
                 **overrides) -> None:
        """Build the world of ``config`` (or of ``WorldConfig(**overrides)``); ``overrides``
        also replace fields of a given ``config``. ``progress``: show bars while rendering
        images and sounds (``None``: only for worlds of at least 3,000 scenes)."""
        if config is None:
            config = WorldConfig(**overrides)
        elif overrides:
            unknown = sorted(set(overrides) - set(WorldConfig.__dataclass_fields__))
            if unknown:
                raise InputError(f"World: unknown setting(s) {', '.join(unknown)}")
            config = dataclasses.replace(config, **overrides)
        if not isinstance(config, WorldConfig):
            raise InputError(f"World: config must be a WorldConfig, got {type(config).__name__}")
        self.config = config
        self.progress = progress
        self.classes = V.CLASSES
        self._build_scenes()
        self._build_captions()
        self._build_splits()

    # ------------------------------------------------------------------ scenes
    def _build_scenes(self) -> None:
        cfg = self.config
        n, k = cfg.n, cfg.max_objects
        self.class_probs = class_frequencies(V.N_CLASSES, cfg.imbalance, cfg.seed)
        self.labels = draw_labels(n, cfg.seed, cfg.imbalance)
        self.objects = np.full((n, k, 5), -1, np.int16)
        self.xy = np.zeros((n, k, 2), np.float32)
        self.rotation = np.zeros((n, k), np.float32)
        self.tint = np.zeros((n, k, 3), np.float32)
        self.n_objects = np.zeros(n, np.int8)
        self.styles = np.zeros(n, np.int8)
        self.words = np.full(n, -1, np.int16)
        self.word_x = np.zeros(n, np.float32)
        self.backgrounds = np.zeros((n, 2, 3), np.float32)
        for i in range(n):
            self._build_scene(i, _rng(cfg.seed, _S_SCENE, i))

    def _build_scene(self, i: int, rng: np.random.Generator) -> None:
        cfg = self.config
        cls = V.CLASSES[int(self.labels[i])]
        count = int(rng.integers(1, cfg.max_objects + 1))
        main_size = int(rng.integers(len(V.SIZES)))
        sizes = [main_size] + [int(rng.integers(main_size + 1)) for _ in range(count - 1)]
        sizes = [sizes[0]] + [min(s, main_size) for s in sizes[1:]]
        self.styles[i] = rng.choice(len(V.STYLES), p=cfg.style_probs)
        has_word = rng.random() < cfg.sign_prob
        if has_word:
            self.words[i] = int(rng.integers(len(V.SIGN_WORDS)))
            self.word_x[i] = rng.random()
        centres = _place(rng, sizes, y_max=0.70 if has_word else 1.0)
        for j, (x, y) in enumerate(centres):
            if j == 0:
                shape, colour, texture = cls.shape, cls.colour, cls.texture
            else:
                shape = int(rng.integers(len(V.SHAPES)))
                colour = int(rng.integers(len(V.COLOURS)))
                texture = int(rng.integers(len(V.TEXTURES)))
            hpos = min(2, int(x * 3))
            self.objects[i, j] = (shape, colour, texture, sizes[j], hpos)
            self.xy[i, j] = (x, y)
            self.rotation[i, j] = rng.uniform(-0.35, 0.35)
            self.tint[i, j] = rng.normal(0, 10, 3)
        self.n_objects[i] = len(centres)
        # background: two muted colours far from white and black
        self.backgrounds[i] = rng.uniform(70, 215, (2, 3))

    # ---------------------------------------------------------------- captions
    def _build_captions(self) -> None:
        cfg = self.config
        per = cfg.captions_per_image
        m = cfg.n * per
        self.captions: list[str] = []
        self.caption_image = np.repeat(np.arange(cfg.n), per)
        self.caption_main = np.full((m, 5), -1, np.int16)
        self.caption_second = np.full((m, 5), -1, np.int16)
        self.caption_relation = np.full(m, -1, np.int8)
        self.caption_style = np.full(m, -1, np.int8)
        self.caption_word = np.full(m, -1, np.int16)
        j = 0
        for i in range(cfg.n):
            rng = _rng(cfg.seed, _S_CAPTION, i)
            seen: set[str] = set()
            for _ in range(per):
                for _attempt in range(20):  # five different sentences per image
                    text, s = make_caption(rng, self.objects[i], self.xy[i], int(self.n_objects[i]),
                                           int(self.styles[i]), int(self.words[i]))
                    if text not in seen:
                        break
                seen.add(text)
                self.captions.append(text)
                self._store_struct(j, s)
                j += 1

    def _store_struct(self, j: int, s: CaptionStruct) -> None:
        self.caption_main[j] = s.main
        self.caption_second[j] = s.second
        self.caption_relation[j] = s.relation
        self.caption_style[j] = s.style
        self.caption_word[j] = s.word

    def caption_struct(self, j: int) -> CaptionStruct:
        """What caption ``j`` says, as a structure."""
        return CaptionStruct(tuple(int(v) for v in self.caption_main[j]),
                             tuple(int(v) for v in self.caption_second[j]),
                             int(self.caption_relation[j]), int(self.caption_style[j]),
                             int(self.caption_word[j]))

    def caption_tokens(self, j: int) -> list[str]:
        """Karpathy-style tokens of caption ``j``."""
        return tokenize(self.captions[j])

    def captions_of(self, i: int) -> list[int]:
        """Caption indices of image ``i``."""
        per = self.config.captions_per_image
        return list(range(i * per, (i + 1) * per))

    # ------------------------------------------------------------------ splits
    def _build_splits(self) -> None:
        cfg = self.config
        rng = _rng(cfg.seed, _S_UNSEEN)
        self.unseen_classes = np.sort(rng.choice(V.N_CLASSES, cfg.n_unseen_classes, replace=False))
        unseen = np.isin(self.labels, self.unseen_classes)
        seen_idx = np.flatnonzero(~unseen)
        perm = _rng(cfg.seed, _S_SPLIT).permutation(len(seen_idx))
        n_train = int(round(cfg.split_fractions[0] * len(seen_idx)))
        n_val = int(round(cfg.split_fractions[1] * len(seen_idx)))
        self.split = np.empty(cfg.n, dtype="<U6")
        self.split[np.flatnonzero(unseen)] = "unseen"
        self.split[seen_idx[perm[:n_train]]] = "train"
        self.split[seen_idx[perm[n_train:n_train + n_val]]] = "val"
        self.split[seen_idx[perm[n_train + n_val:]]] = "test"

    def indices(self, split: str) -> np.ndarray:
        """Image indices of a split (``train``, ``val``, ``test`` or ``unseen``), ascending."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
        return np.flatnonzero(self.split == split)

    def caption_indices(self, image_indices: np.ndarray, first: int | None = None
                        ) -> np.ndarray:
        """Caption indices of the given images in image order: all of each image's
        :attr:`captions_per_image` captions, or the ``first`` of them."""
        per = self.config.captions_per_image
        keep = per if first is None else min(per, int(first))
        idx = np.asarray(image_indices)
        return (idx[:, None] * per + np.arange(keep)).reshape(-1)

    @property
    def captions_per_image(self) -> int:
        """Captions per image (``config.captions_per_image``)."""
        return self.config.captions_per_image

    # ------------------------------------------------------------- modalities
    def __len__(self) -> int:
        return self.config.n

    def render(self, i: int, style: int | None = None) -> np.ndarray:
        """Image ``i`` as uint8 [H, W, 3] (rendered now, not cached). ``style`` (an index into
        ``vocab.STYLES``) draws the same scene (objects, background, pixel noise) in another
        style; ``None``: the scene's own."""
        cfg = self.config
        if style is None:
            style = int(self.styles[i])
        elif not (is_integer(style) and 0 <= int(style) < len(V.STYLES)):
            raise InputError(f"render: style must be 0-{len(V.STYLES) - 1} "
                             f"({', '.join(V.STYLES)}), got {style!r}")
        return render_scene(self.objects[i], self.xy[i], self.rotation[i], self.tint[i],
                            int(self.n_objects[i]), int(style), int(self.words[i]),
                            float(self.word_x[i]), self.backgrounds[i], cfg.image_size,
                            _rng(cfg.seed, _S_PIXELS, i), cfg.noise)

    def sound(self, i: int) -> np.ndarray:
        """Sound clip ``i`` as float32 [T] (synthesised now, not cached)."""
        cfg = self.config
        return synth_scene(self.objects[i], self.xy[i], int(self.n_objects[i]), cfg.sample_rate,
                           cfg.audio_seconds, _rng(cfg.seed, _S_AUDIO, i), cfg.noise)

    def _show_progress(self) -> bool:
        if self.progress is None:
            return self.config.n >= PROGRESS_MIN_SCENES
        return bool(self.progress)

    @cached_property
    def images(self) -> np.ndarray:
        """All images, uint8 [N, H, W, 3] (rendered on first access; in parallel worker
        processes from :data:`PARALLEL_MIN_SCENES` scenes, with identical pixels)."""
        s = self.config.image_size
        return self._render_all("render", (s, s, 3), np.uint8, "render images")

    @cached_property
    def audio(self) -> np.ndarray:
        """All sound clips, float32 [N, T] (synthesised on first access; in parallel worker
        processes from :data:`PARALLEL_MIN_SCENES` scenes, with identical samples)."""
        t = int(round(self.config.sample_rate * self.config.audio_seconds))
        return self._render_all("sound", (t,), np.float32, "synthesise sounds")

    def _render_all(self, method: str, shape: tuple[int, ...], dtype: type, desc: str
                    ) -> np.ndarray:
        """``getattr(self, method)(i)`` for every scene, stacked: [N, *shape]. Every item has its
        own seeded generator, so chunks rendered in forked workers give the same bytes."""
        from tqdm.auto import tqdm

        n = self.config.n
        out = np.empty((n,) + shape, dtype)
        bar = tqdm(total=n, desc=desc, leave=False, disable=not self._show_progress())
        workers = _render_workers(n)
        if workers == 1:
            for i in range(n):
                out[i] = getattr(self, method)(i)
                bar.update(1)
        else:
            global _FORKED
            _FORKED = self   # forked children inherit it: nothing is pickled but the indices
            chunks = [(method, a, min(n, a + RENDER_CHUNK)) for a in range(0, n, RENDER_CHUNK)]
            try:
                with ProcessPoolExecutor(workers, mp_context=mp.get_context("fork")) as pool:
                    for (_, a, b), part in zip(chunks, pool.map(_render_chunk, chunks)):
                        out[a:b] = part
                        bar.update(b - a)
            finally:
                _FORKED = None
        bar.close()
        return out

    def speaker_of(self, j: int) -> int:
        """The speaker (voice) id that says caption ``j`` (seeded, 6 voices)."""
        return int(_rng(self.config.seed, _S_CAPTION, 10**9 + j).integers(6))

    def speech(self, j: int, sr: int | None = None) -> np.ndarray:
        """Caption ``j`` spoken by espeak-ng: float32 [T] at ``sr`` (default: the world's rate)."""
        return speak(self.captions[j], speaker=self.speaker_of(j),
                     sr=sr or self.config.sample_rate)

    # ---------------------------------------------------------- ground truth
    @cached_property
    def attributes(self) -> np.ndarray:
        """Per-image binary attribute vector of the main object, uint8 [N, A]
        (one-hot shape, colour, texture, size, horizontal position); names in
        :attr:`attribute_names`."""
        blocks = []
        for a, name in enumerate(V.ATTRIBUTES):
            n_values = len(V.ATTRIBUTE_VALUES[name])
            blocks.append(np.eye(n_values, dtype=np.uint8)[self.objects[:, 0, a]])
        return np.concatenate(blocks, axis=1)

    @property
    def attribute_names(self) -> list[str]:
        """Names of the columns of :attr:`attributes`, e.g. ``"has_colour::red"``."""
        return [f"has_{a}::{v}" for a in V.ATTRIBUTES for v in V.ATTRIBUTE_VALUES[a]]

    @property
    def class_names(self) -> list[str]:
        return [c.name for c in self.classes]

    def describe(self, i: int) -> str:
        """A complete, readable description of scene ``i`` (for figures and debugging)."""
        parts = []
        for j in range(int(self.n_objects[i])):
            s, c, t, z, _ = (int(v) for v in self.objects[i, j])
            parts.append(f"{V.SIZES[z]} {V.COLOURS[c]} {V.TEXTURES[t]} {V.SHAPES[s]}")
        text = f"{V.STYLES[int(self.styles[i])]}: " + ", ".join(parts)
        if self.words[i] >= 0:
            text += f"; sign '{V.SIGN_WORDS[int(self.words[i])]}'"
        return text

    def caption_relevance(self, captions: np.ndarray | None = None,
                          images: np.ndarray | None = None) -> np.ndarray:
        """Graded relevance int8 [len(captions), len(images)] in 0..3 (see
        :func:`mmkit.data.relevance.caption_relevance`); defaults to all captions/images."""
        captions = np.arange(len(self.captions)) if captions is None else np.asarray(captions)
        images = np.arange(self.config.n) if images is None else np.asarray(images)
        return caption_relevance(
            self.caption_main[captions], self.caption_second[captions],
            self.caption_relation[captions], self.caption_style[captions],
            self.caption_word[captions], self.objects[images], self.xy[images],
            self.n_objects[images], self.styles[images], self.words[images])

    def scene_relevance(self, queries: np.ndarray | None = None,
                        images: np.ndarray | None = None) -> np.ndarray:
        """Graded relevance int8 [len(queries), len(images)] between scenes: how many of the
        main object's shape, colour and texture agree (3 = same class)."""
        queries = np.arange(self.config.n) if queries is None else np.asarray(queries)
        images = np.arange(self.config.n) if images is None else np.asarray(images)
        return scene_relevance(self.objects[queries, 0, :3], self.objects[images, 0, :3])

    # ------------------------------------------------------------- as a collection
    #: speech is synthesised from the captions on demand (:meth:`speech`)
    synthesised = ("speech",)

    @property
    def modalities(self) -> tuple[str, ...]:
        """What the world holds as data: captions, images and sound clips
        (:data:`WORLD_MODALITIES`); its speech is synthesised (:attr:`synthesised`)."""
        return WORLD_MODALITIES

    @property
    def collection_name(self) -> str:
        return "this world"

    @property
    def image_set_name(self) -> str:
        n = self.config.n
        return f"this world (n={n}; a small world may have no test images: use a larger n)"

    def relevance(self, direction: str | Direction, query_ids: np.ndarray,
                  gallery_ids: np.ndarray, positives: np.ndarray | None = None) -> np.ndarray:
        """Graded relevance int8 [Q, G] in 0..3 of ``direction``'s gallery items to its
        queries: :meth:`caption_relevance` (transposed for an image query over captions) or
        :meth:`scene_relevance`, as the direction's entry in
        :data:`mmkit.data.directions.DIRECTIONS` says. ``positives`` is not needed: the
        world grades every pair. Used by :meth:`ground_truth`."""
        direction = get_direction(direction)
        if direction.relevance == "scene":
            return self.scene_relevance(query_ids, gallery_ids)
        if direction.query_unit == "caption":
            return self.caption_relevance(query_ids, gallery_ids)
        return self.caption_relevance(gallery_ids, query_ids).T.copy()

    def fingerprint(self) -> str:
        """SHA-256 over every array and caption of the world (images and audio included):
        two worlds with the same fingerprint are byte-identical."""
        import hashlib

        h = hashlib.sha256()
        for part in (self.images, self.audio, self.labels, self.objects, self.xy,
                     self.split.astype("U6"), self.caption_relevance(), self.scene_relevance(),
                     self.attributes):
            h.update(np.ascontiguousarray(part).tobytes())
        h.update("\n".join(self.captions).encode("utf-8"))
        return h.hexdigest()

    def summary(self) -> dict:
        """Sizes and settings, for tables and the README's world card."""
        words = set()
        for c in self.captions:
            words.update(tokenize(c))
        return {
            "n_images": self.config.n,
            "n_captions": len(self.captions),
            "n_classes": len(self.classes),
            "n_unseen_classes": int(self.config.n_unseen_classes),
            "vocabulary": len(words),
            "image_size": self.config.image_size,
            "audio": f"{self.config.audio_seconds:g} s @ {self.config.sample_rate} Hz",
            "splits": {s: int((self.split == s).sum()) for s in SPLITS},
            "styles": {V.STYLES[k]: int((self.styles == k).sum()) for k in range(len(V.STYLES))},
            "with_sign": int((self.words >= 0).sum()),
            "seed": self.config.seed,
        }
