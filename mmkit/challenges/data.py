"""The scenes the challenges train and score on: any scene re-rendered in a chosen style, the
evaluation scenes, and a photometric style augmentation.

The world draws each scene in one of three styles (photo, sketch, painting). Because a scene
is data (objects, positions, colours) and its picture is rendered from it, the *same* scene can
be drawn in every style: the cleanest way to measure a domain gap, since only the style
changes between query and gallery.

- :class:`SceneSet`: images uint8 [N, H, W, 3] with their class labels [N], main-object
  attributes [N, A] and styles [N];
- :func:`scene_set`: scenes of a world, in their own style or re-rendered in one style;
- :func:`eval_scenes`: the evaluation world's test scenes (what every challenge scores on),
  cached per process;
- :func:`train_scenes`: the seen-class scenes of a fresh training world (another seed);
- :func:`style_augment`: random photometric restyling (grey, edges, posterised colour, blur,
  colour jitter) that knows nothing about how sketches and paintings are drawn.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from mmkit.data import World, WorldConfig
from mmkit.data import vocab as V
from mmkit.errors import InputError
from mmkit.scoring import EVAL_SPLIT, eval_world

#: the world's styles, in label order
STYLES: tuple[str, ...] = tuple(V.STYLES)


@dataclass(frozen=True)
class SceneSet:
    """Scenes as arrays.

    Attributes:
        images: uint8 [N, H, W, 3].
        labels: int64 [N] class of the main object (0-63).
        attributes: float32 [N, A] one-hot shape, colour, texture, size, position of the main
            object (``World.attributes``).
        styles: int64 [N] style drawn (index into :data:`STYLES`).
        scenes: int64 [N] the scenes' indices in their world.
    """

    images: np.ndarray
    labels: np.ndarray
    attributes: np.ndarray
    styles: np.ndarray
    scenes: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, rows: np.ndarray) -> "SceneSet":
        """The rows ``rows`` (indices or a boolean mask) of every array."""
        return SceneSet(self.images[rows], self.labels[rows], self.attributes[rows],
                        self.styles[rows], self.scenes[rows])


def style_index(style: int | str) -> int:
    """A style's label: ``"sketch"`` -> 1; an int is checked and returned."""
    if isinstance(style, str):
        if style not in STYLES:
            raise InputError(f"unknown style {style!r}; styles: {', '.join(STYLES)}")
        return STYLES.index(style)
    if isinstance(style, bool) or not isinstance(style, (int, np.integer)) \
            or not 0 <= int(style) < len(STYLES):
        raise InputError(f"style must be one of {', '.join(STYLES)} or 0-{len(STYLES) - 1}, "
                         f"got {style!r}")
    return int(style)


def render_styled(world: World, indices: np.ndarray, style: int | str) -> np.ndarray:
    """Scenes ``indices`` of ``world`` drawn in ``style`` with the same objects, positions,
    background and pixel noise as the world's own rendering: uint8 [N, H, W, 3]. A scene
    whose own style is ``style`` comes out byte-identical to ``world.render(i)``."""
    s = style_index(style)
    size = world.config.image_size
    out = np.empty((len(indices), size, size, 3), np.uint8)
    for row, i in enumerate(np.asarray(indices, np.int64)):
        out[row] = world.render(int(i), style=s)
    return out


def scene_set(world: World, indices: np.ndarray, style: int | str | None = None) -> SceneSet:
    """Scenes ``indices`` of ``world``: in their own styles (``style=None``, the world's
    cached images) or all re-rendered in ``style``."""
    idx = np.asarray(indices, np.int64)
    if style is None:
        if "images" in world.__dict__ or not len(idx):      # the world's rendered images
            images = world.images[idx]
        else:                                                # else draw only these scenes
            images = np.stack([world.render(int(i)) for i in idx])
        styles = world.styles[idx].astype(np.int64)
    else:
        images = render_styled(world, idx, style)
        styles = np.full(len(idx), style_index(style), np.int64)
    return SceneSet(images, world.labels[idx].astype(np.int64),
                    world.attributes[idx].astype(np.float32), styles, idx)


@lru_cache(maxsize=4)
def eval_scenes(style: int | str | None = None) -> SceneSet:
    """The evaluation world's test scenes (:func:`mmkit.scoring.eval_world`, 441 scenes),
    in their own styles or all in ``style``; built once per process and style."""
    world = eval_world()
    idx = world.indices(EVAL_SPLIT)
    if style is None:
        return scene_set(world, idx)
    return scene_set(world, idx, style)


def train_scenes(n: int, seed: int, *, imbalance: float = 1.0,
                 style_probs: tuple[float, float, float] = (0.6, 0.2, 0.2),
                 progress: bool | None = None) -> SceneSet:
    """The seen-class scenes (train, val and test splits) of a fresh world
    ``World(n=n, seed=seed, imbalance=imbalance, style_probs=style_probs)``."""
    world = World(WorldConfig(n=n, seed=seed, imbalance=imbalance,
                              style_probs=tuple(style_probs)), progress=progress)
    idx = np.concatenate([world.indices(s) for s in ("train", "val", "test")])
    return scene_set(world, np.sort(idx))


def _grey(x: np.ndarray) -> np.ndarray:
    return x @ np.array([0.299, 0.587, 0.114], np.float32)


def _edges(x: np.ndarray) -> np.ndarray:
    g = _grey(x)
    gx = np.zeros_like(g)
    gy = np.zeros_like(g)
    gx[:, 1:-1] = g[:, 2:] - g[:, :-2]
    gy[1:-1] = g[2:] - g[:-2]
    return np.hypot(gx, gy)


def _blur(x: np.ndarray) -> np.ndarray:
    p = np.pad(x, ((1, 1), (1, 1), (0, 0)), mode="edge")
    return sum(p[dy:dy + x.shape[0], dx:dx + x.shape[1]] for dy in range(3) for dx in range(3)) / 9


def style_augment(images: np.ndarray, rng: np.random.Generator, p: float = 0.5) -> np.ndarray:
    """Random photometric restyling of a batch, each image with probability ``p``:

    - *line drawing*: light paper with the edge magnitude drawn dark, mixed with a faded copy
      of the colours;
    - *flat colour*: colours posterised to 3-5 levels per channel, then blurred;
    - *colour jitter*: channel gains and an offset, sometimes grey.

    uint8 [N, H, W, 3] -> uint8 [N, H, W, 3]; the same ``rng`` state gives the same output.
    It imitates no renderer: a model trained with it has never seen a sketch or a painting.
    """
    x = np.asarray(images)
    if x.ndim != 4 or x.shape[-1] != 3 or x.dtype != np.uint8:
        raise InputError(f"style_augment: images must be uint8 [N, H, W, 3], got "
                         f"{x.dtype} {x.shape}")
    out = x.copy()
    for n in range(len(x)):
        if rng.random() >= p:
            continue
        img = x[n].astype(np.float32)
        kind = int(rng.integers(3))
        if kind == 0:
            e = _edges(img)
            e = np.clip(e / (np.percentile(e, 97) + 1e-6), 0, 1)[..., None]
            paper = rng.uniform(215, 250)
            fade = rng.uniform(0.2, 0.6)
            res = paper * (1 - e) + img * fade * e + (1 - fade) * 40 * e
        elif kind == 1:
            levels = int(rng.integers(3, 6))
            step = 255.0 / (levels - 1)
            res = _blur(np.round(img / step) * step)
        else:
            res = img * rng.uniform(0.6, 1.4, 3) + rng.uniform(-40, 40, 3)
            if rng.random() < 0.3:
                res = np.repeat(_grey(res)[..., None], 3, axis=2)
        out[n] = np.clip(res, 0, 255).astype(np.uint8)
    return out
