"""Captions for world scenes: a structured query plus the sentence that says it.

Every caption is generated from a structure (what it mentions) and the structure is kept, so the
world can tell exactly which images a caption describes (see :mod:`mmkit.data.relevance`).
Captions are deliberately partial: not every caption names every attribute, so several images
can fit one caption equally well.

The words come from :mod:`mmkit.data.vocab` (which also holds :func:`tokenize` and the
templates' fixed words :data:`TEMPLATE_WORDS`, re-exported here); vocab never imports this
module.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmkit.data import vocab as V
from mmkit.data.vocab import _TOKEN, TEMPLATE_WORDS, tokenize  # noqa: F401  (re-export)

#: probability that the main mention keeps each attribute (shape, colour, texture, size, hpos),
#: before the rejection "at least two kept, and the shape or the colour"
KEEP_P: tuple[float, ...] = (0.85, 0.85, 0.6, 0.35, 0.25)
#: probability of a second object (and relation) when the scene has more than one object
P_SECOND = 0.45
#: probability that the second object's colour is said (its shape always is)
P_SECOND_COLOUR = 0.6
#: probability that the style is said
P_STYLE = 0.25
#: probability that the sign's word is said, when the scene has a sign (never otherwise)
P_WORD = 0.7

@dataclass(frozen=True)
class CaptionStruct:
    """What a caption says. Attribute arrays follow :data:`mmkit.data.vocab.ATTRIBUTES`
    (shape, colour, texture, size, hpos) with -1 where the caption is silent."""

    main: tuple[int, ...]
    second: tuple[int, ...]   # all -1 when there is no second object
    relation: int             # index into RELATIONS (main REL second), -1 if none
    style: int                # -1 if not mentioned
    word: int                 # index into SIGN_WORDS, -1 if not mentioned


def _pick(rng: np.random.Generator, options) -> str:
    return options[int(rng.integers(len(options)))]


def _article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def noun_phrase(rng: np.random.Generator, attrs: tuple[int, ...]) -> str:
    """Say one mention, e.g. ``"a big scarlet shape with stripes on the left"``."""
    shape, colour, texture, size, hpos = attrs
    pre: list[str] = []
    post: list[str] = []
    if size >= 0:
        pre.append(_pick(rng, V.SIZE_WORDS[V.SIZES[size]]))
    if colour >= 0:
        pre.append(_pick(rng, V.COLOUR_WORDS[V.COLOURS[colour]]))
    if texture >= 0:
        if rng.random() < 0.5:
            pre.append(_pick(rng, V.TEXTURE_ADJ[V.TEXTURES[texture]]))
        else:
            post.append(_pick(rng, V.TEXTURE_POST[V.TEXTURES[texture]]))
    noun = _pick(rng, V.SHAPE_WORDS[V.SHAPES[shape]]) if shape >= 0 else _pick(rng, V.OBJECT_NOUNS)
    if hpos >= 0:
        post.append(_pick(rng, V.HPOS_WORDS[V.HPOS[hpos]]))
    return _article(" ".join(pre + [noun])) + ("" if not post else " " + " ".join(post))


def _choose_main_attrs(rng: np.random.Generator, full: tuple[int, ...]) -> tuple[int, ...]:
    """Keep a random, partial subset of the main object's attributes (at least two, and
    always the shape or the colour)."""
    while True:
        keep = [rng.random() < p for p in KEEP_P]
        if sum(keep) >= 2 and (keep[0] or keep[1]):
            return tuple(v if k else -1 for v, k in zip(full, keep))


def relation_between(xy_a: np.ndarray, xy_b: np.ndarray) -> int:
    """The dominant spatial relation "a REL b" from centres (x right, y down)."""
    dx, dy = float(xy_a[0] - xy_b[0]), float(xy_a[1] - xy_b[1])
    if abs(dx) >= abs(dy):
        return V.RELATIONS.index("left of" if dx < 0 else "right of")
    return V.RELATIONS.index("above" if dy < 0 else "below")


def make_caption(rng: np.random.Generator, objects: np.ndarray, xy: np.ndarray, n_objects: int,
                 style: int, word: int) -> tuple[str, CaptionStruct]:
    """One caption for a scene.

    Args:
        objects: int [max_objects, 5] attribute ids of the scene's objects (row 0 = main).
        xy: float [max_objects, 2] object centres in [0, 1].
        n_objects: how many rows of ``objects`` are real.
        style: the scene's style id. word: the sign's word id or -1.
    """
    main = _choose_main_attrs(rng, tuple(int(v) for v in objects[0]))
    second = (-1,) * 5
    relation = -1
    if n_objects > 1 and rng.random() < P_SECOND:
        j = 1 + int(rng.integers(n_objects - 1))
        o = objects[j]
        second = (int(o[0]), int(o[1]) if rng.random() < P_SECOND_COLOUR else -1, -1, -1, -1)
        relation = relation_between(xy[0], xy[j])
    style_m = style if rng.random() < P_STYLE else -1
    word_m = word if (word >= 0 and rng.random() < P_WORD) else -1
    struct = CaptionStruct(main, second, relation, style_m, word_m)
    return render_caption(rng, struct), struct


def render_caption(rng: np.random.Generator, s: CaptionStruct) -> str:
    """Say a :class:`CaptionStruct` with a randomly chosen template."""
    np_main = noun_phrase(rng, s.main)
    if s.relation >= 0:
        np2 = noun_phrase(rng, s.second)
        rel = V.RELATIONS[s.relation]
        if rng.random() < 0.5:
            core = f"{np_main} {_pick(rng, V.RELATION_WORDS[rel])} {np2}"
        else:  # the same fact said the other way round
            inverse = {"left of": "right of", "right of": "left of", "above": "below",
                       "below": "above"}[rel]
            core = f"{np2} {_pick(rng, V.RELATION_WORDS[inverse])} {np_main}"
    else:
        core = np_main
    if s.style >= 0:
        core = f"{_pick(rng, V.STYLE_WORDS[V.STYLES[s.style]])} {core}"
    else:
        core = _pick(rng, ("{}", "there is {}", "the picture shows {}", "an image with {}",
                           "you can see {}", "here we have {}", "{} in this scene",
                           "this frame contains {}", "look closely to find {}",
                           "the view includes {}", "visible here is {}")).format(core)
    if s.word >= 0:
        w = V.SIGN_WORDS[s.word]
        core += _pick(rng, (f" next to a sign that says {w}", f" and a sign reading {w}",
                            f" with the word {w} written on a sign",
                            f" and a sign labelled {w}"))
    return core[0].upper() + core[1:] + "."
