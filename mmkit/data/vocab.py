"""The world's attribute tables, class table and the words used to talk about them.

Everything here is a constant: the same on every machine and for every seed, so class 17 means
the same thing in every world you generate. :func:`tokenize` is how captions are split into
words, and :func:`vocabulary_words` every word the caption generator
(:mod:`mmkit.data.captions`, which builds on this module) can emit.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

_TOKEN = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


def tokenize(text: str) -> list[str]:
    """Karpathy-style tokens: lower case, punctuation dropped, hyphenated words kept whole."""
    return _TOKEN.findall(text.lower())


#: fixed words of the caption templates (:func:`mmkit.data.captions.render_caption`), for the
#: vocabulary count
TEMPLATE_WORDS = ("a", "an", "the", "there", "is", "this", "in", "of", "picture", "image",
                  "scene", "shows", "with", "you", "can", "see", "next", "to", "sign", "that",
                  "says", "reading", "and", "which", "placed", "somewhere", "here", "we", "have",
                  "it", "on", "one", "labelled", "word", "written", "frame", "contains", "look",
                  "closely", "find", "view", "includes", "visible")

# --- attributes of one object ------------------------------------------------------------
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond", "star", "cross",
                           "pentagon", "hexagon")
COLOURS: tuple[str, ...] = ("red", "orange", "yellow", "green", "teal", "blue", "purple",
                            "pink", "brown", "gray")
COLOUR_RGB: dict[str, tuple[int, int, int]] = {
    "red": (214, 39, 40), "orange": (245, 130, 25), "yellow": (235, 205, 35),
    "green": (44, 160, 44), "teal": (23, 160, 150), "blue": (31, 90, 210),
    "purple": (135, 70, 190), "pink": (240, 120, 175), "brown": (130, 80, 35),
    "gray": (125, 125, 125),
}
TEXTURES: tuple[str, ...] = ("plain", "striped", "dotted", "checkered")
SIZES: tuple[str, ...] = ("small", "medium", "large")
#: object radius as a fraction of the image side, per size
SIZE_RADIUS: tuple[float, ...] = (0.11, 0.16, 0.22)
HPOS: tuple[str, ...] = ("left", "middle", "right")
STYLES: tuple[str, ...] = ("photo", "sketch", "painting")
RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below")
#: attribute names of a mention, in the order used by the arrays of :mod:`mmkit.data.world`
ATTRIBUTES: tuple[str, ...] = ("shape", "colour", "texture", "size", "hpos")
ATTRIBUTE_VALUES: dict[str, tuple[str, ...]] = {
    "shape": SHAPES, "colour": COLOURS, "texture": TEXTURES, "size": SIZES, "hpos": HPOS,
}

#: words written on signs (text-in-image, for OCR); short so that they stay legible
SIGN_WORDS: tuple[str, ...] = (
    "cafe", "stop", "exit", "open", "sale", "bank", "hotel", "taxi", "park", "zoo", "bus",
    "shop", "food", "gym", "bar", "jazz", "books", "pizza", "sushi", "bread", "fish", "tea",
    "wine", "toys", "art", "gold", "salon", "bikes", "pets", "farm", "golf", "pool", "inn",
    "deli", "spa", "mall", "club", "lab", "post", "cinema", "milk", "cake", "kids", "shoes",
    "hats", "maps", "news", "cars", "tools", "rent", "menu", "hall", "dock", "road", "gate",
    "city", "home", "yard", "keys", "ice", "beach", "train", "mail", "fuel", "soup", "rice",
    "nuts", "jam", "corn", "pie", "music", "dance", "radio", "photo", "paint", "glass", "stone",
    "wood", "paper", "clock", "lamp", "rugs", "silk", "wool", "boats", "kites", "games", "chess",
    "cards", "dolls", "coins", "stamps", "honey", "fruit", "herbs",
)

# --- how the attributes are said ---------------------------------------------------------
SHAPE_WORDS: dict[str, tuple[str, ...]] = {
    "circle": ("circle", "disc", "round shape", "ring-shaped blob", "round tile"),
    "square": ("square", "box", "block", "square tile", "quadrangle"),
    "triangle": ("triangle", "three-sided shape", "wedge", "pyramid shape"),
    "diamond": ("diamond", "rhombus", "lozenge", "kite shape"),
    "star": ("star", "five-pointed star", "starburst", "star shape"),
    "cross": ("cross", "plus sign", "plus shape", "swiss cross"),
    "pentagon": ("pentagon", "five-sided shape", "five-sided polygon", "pentagonal tile"),
    "hexagon": ("hexagon", "six-sided shape", "honeycomb cell", "six-sided polygon"),
}
COLOUR_WORDS: dict[str, tuple[str, ...]] = {
    "red": ("red", "scarlet", "crimson"), "orange": ("orange", "tangerine", "amber"),
    "yellow": ("yellow", "golden", "lemon"), "green": ("green", "leafy green", "emerald"),
    "teal": ("teal", "turquoise", "aqua"), "blue": ("blue", "cobalt", "azure"),
    "purple": ("purple", "violet", "plum"), "pink": ("pink", "rosy", "salmon pink"),
    "brown": ("brown", "chocolate", "coffee-coloured"), "gray": ("gray", "grey", "silver"),
}
#: texture as an adjective before the noun, and as a phrase after it
TEXTURE_ADJ: dict[str, tuple[str, ...]] = {
    "plain": ("plain", "solid", "unpatterned", "uniform"),
    "striped": ("striped", "stripy", "banded", "pinstriped"),
    "dotted": ("dotted", "spotted", "polka-dot"), "checkered": ("checkered", "chequered", "checked"),
}
TEXTURE_POST: dict[str, tuple[str, ...]] = {
    "plain": ("with no pattern", "in a single flat colour"),
    "striped": ("with stripes", "covered in stripes"),
    "dotted": ("with dots", "covered in spots"),
    "checkered": ("with a checkerboard pattern", "with a check pattern"),
}
SIZE_WORDS: dict[str, tuple[str, ...]] = {
    "small": ("small", "tiny", "little", "minuscule"),
    "medium": ("medium", "mid-sized", "medium-sized", "moderate-sized"),
    "large": ("large", "big", "huge", "giant"),
}
HPOS_WORDS: dict[str, tuple[str, ...]] = {
    "left": ("on the left", "at the left side", "in the left part of the picture"),
    "middle": ("in the middle", "in the centre", "near the center"),
    "right": ("on the right", "at the right side", "in the right part of the picture"),
}
RELATION_WORDS: dict[str, tuple[str, ...]] = {
    "left of": ("to the left of", "left of", "beside and left of", "on the left side of"),
    "right of": ("to the right of", "right of", "beside and right of", "on the right side of"),
    "above": ("above", "over", "higher than", "sitting above", "positioned over"),
    "below": ("below", "under", "beneath", "underneath", "lower than"),
}
STYLE_WORDS: dict[str, tuple[str, ...]] = {
    "photo": ("a photo of", "a photograph of", "a picture of", "a shot of"),
    "sketch": ("a sketch of", "a drawing of", "a line drawing of", "a pencil sketch of"),
    "painting": ("a painting of", "an illustration of", "a flat painting of", "a poster of"),
}
OBJECT_NOUNS: tuple[str, ...] = ("shape", "object", "thing", "figure", "item", "form", "icon",
                                 "symbol")


@dataclass(frozen=True)
class WorldClass:
    """One fine-grained class: the attributes of a scene's main object."""

    index: int
    shape: int
    colour: int
    texture: int

    @property
    def name(self) -> str:
        """Readable name, e.g. ``"red striped circle"``."""
        return f"{COLOURS[self.colour]} {TEXTURES[self.texture]} {SHAPES[self.shape]}"

    @property
    def folder(self) -> str:
        """CUB-200-style folder name, e.g. ``"001.Red_Striped_Circle"``."""
        return f"{self.index + 1:03d}." + "_".join(w.capitalize() for w in self.name.split())


# near neighbours used to make fine-grained sibling classes (differ in one subtle attribute)
_NEAR_SHAPE = {"pentagon": "hexagon", "hexagon": "pentagon", "circle": "hexagon",
               "square": "diamond", "diamond": "square", "star": "cross", "cross": "star",
               "triangle": "diamond"}
_NEAR_COLOUR = {"red": "orange", "orange": "red", "yellow": "orange", "green": "teal",
                "teal": "blue", "blue": "teal", "purple": "pink", "pink": "purple",
                "brown": "orange", "gray": "teal"}
_NEAR_TEXTURE = {"plain": "dotted", "dotted": "plain", "striped": "checkered",
                 "checkered": "striped"}

N_CLASSES = 64


#: which attribute a sibling class changes, by the construction step that made it
_SIBLING_ATTRIBUTE = ("shape", "colour", "texture")


def _class_table(n_classes: int = N_CLASSES, seed: int = 20261126
                 ) -> tuple[tuple[WorldClass, ...], tuple[tuple[int, int, str], ...]]:
    """Pick ``n_classes`` (shape, colour, texture) triples: half base classes, half siblings
    of a base class differing in exactly one subtle attribute (as in CUB-200's close species).
    Returns the classes and the sibling pairs ``(base, sibling, attribute)`` as they were made."""
    rng = np.random.default_rng(seed)
    combos: list[tuple[int, int, int]] = []
    taken: set[tuple[int, int, int]] = set()
    n_base = n_classes // 2
    while len(combos) < n_base:
        c = (int(rng.integers(len(SHAPES))), int(rng.integers(len(COLOURS))),
             int(rng.integers(len(TEXTURES))))
        if c not in taken:
            taken.add(c)
            combos.append(c)
    bases = list(combos)
    pairs: list[tuple[int, int, str]] = []
    i = 0
    while len(combos) < n_classes:
        s, c, t = bases[i % len(bases)]
        which = (i // len(bases) + i % len(bases)) % 3
        if which == 0:
            sib = (SHAPES.index(_NEAR_SHAPE[SHAPES[s]]), c, t)
        elif which == 1:
            sib = (s, COLOURS.index(_NEAR_COLOUR[COLOURS[c]]), t)
        else:
            sib = (s, c, TEXTURES.index(_NEAR_TEXTURE[TEXTURES[t]]))
        if sib not in taken:
            taken.add(sib)
            combos.append(sib)
            pairs.append((i % len(bases), len(combos) - 1, _SIBLING_ATTRIBUTE[which]))
        i += 1
        if i > 50 * n_classes:  # pragma: no cover - cannot happen with the tables above
            raise RuntimeError("could not build the class table")
    return tuple(WorldClass(k, *combo) for k, combo in enumerate(combos)), tuple(pairs)


def _make_classes(n_classes: int = N_CLASSES, seed: int = 20261126) -> tuple[WorldClass, ...]:
    """The class table of :func:`_class_table` (without its sibling pairs)."""
    return _class_table(n_classes, seed)[0]


CLASSES, SIBLING_PAIRS = _class_table()
#: ``(base, sibling, attribute)`` for each of the 32 sibling classes, as the table made them
#: (a class can also differ by one attribute from a class it was not made from:
#: :func:`fine_grained_pairs` lists every such pair)
SIBLING_PAIRS: tuple[tuple[int, int, str], ...]


def fine_grained_pairs() -> list[tuple[int, int, str]]:
    """Pairs of classes that differ in exactly one attribute: ``(a, b, attribute_name)``."""
    pairs = []
    for a in CLASSES:
        for b in CLASSES:
            if b.index <= a.index:
                continue
            diff = [n for n, x, y in (("shape", a.shape, b.shape), ("colour", a.colour, b.colour),
                                      ("texture", a.texture, b.texture)) if x != y]
            if len(diff) == 1:
                pairs.append((a.index, b.index, diff[0]))
    return pairs


def vocabulary_words() -> set[str]:
    """Every word the caption generator can emit (lower case, no punctuation)."""
    words: set[str] = set(TEMPLATE_WORDS)
    tables = (SHAPE_WORDS, COLOUR_WORDS, TEXTURE_ADJ, TEXTURE_POST, SIZE_WORDS, HPOS_WORDS,
              RELATION_WORDS, STYLE_WORDS)
    for table in tables:
        for phrases in table.values():
            for p in phrases:
                words.update(tokenize(p))
    words.update(OBJECT_NOUNS)
    words.update(SIGN_WORDS)
    return words
