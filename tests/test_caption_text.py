"""Caption text <-> caption structure: the sentence must say exactly what the structure says.

The world's whole ground truth (graded relevance, positives) is computed from
``World.caption_struct(j)``, while every model only ever sees ``World.captions[j]``. This file
parses each sentence back into a structure and compares it with the stored one, field by field.

The parser is written here, independently of the generator: it does not call
``noun_phrase`` / ``render_caption`` / ``make_caption``. It only uses the word tables of
:mod:`mmkit.data.vocab` (the vocabulary), and its own copy of the sentence frames (templates,
style prefixes, sign clauses). Grammar recognised (after dropping the capital and the period)::

    sentence := frame(core) [sign]
    frame    := core | "there is" core | "the picture shows" core | ... | core "in this scene"
              | STYLE_PHRASE core                      (e.g. "a pencil sketch of")
    core     := np | np RELATION_PHRASE np             ("main REL second" or the inverse)
    np       := ("a" | "an") [SIZE] [COLOUR] [TEXTURE_ADJ] NOUN [TEXTURE_POST] [HPOS]
    NOUN     := SHAPE_PHRASE | OBJECT_NOUN             (object noun = shape not said)
    sign     := "next to a sign that says" W | "and a sign reading" W
              | "with the word" W "written on a sign" | "and a sign labelled" W

Instead of a single greedy longest-match pass, the parser enumerates *every* segmentation of
the sentence over the phrase tables (multi-word synonyms such as "salmon pink", "plus sign",
"ring-shaped blob", generic nouns that end shape synonyms, hpos "on the left" vs relation
"on the left side of", sign words such as "photo" or "paint" that are also style words...).
It then asserts that exactly one segmentation exists, i.e. that the greedy longest-match reading
is the only reading.

Which noun phrase is the main mention is decided from the sentence only, with the two mention
rules of the kit: a second mention says its shape and maybe its colour, nothing else; a main
mention says at least two attributes, one of them the shape or the colour. When both phrases of
a relation could be the main one (both are exactly "colour + shape"), the sentence is genuinely
ambiguous: either reading is accepted and the caption is counted (the count is reported).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pytest

from mmkit.data import World
from mmkit.data import vocab as V
from mmkit.data.captions import CaptionStruct, tokenize
from mmkit.data.relevance import caption_relevance

NONE5 = (-1, -1, -1, -1, -1)
SHAPE, COLOUR, TEXTURE, SIZE, HPOS = range(5)

# ---------------------------------------------------------------- phrase tables (vocabulary)


def _table(words_by_value: dict[str, tuple[str, ...]], values: tuple[str, ...]) -> dict:
    """first word -> [(phrase tokens, value index)], longest phrases first."""
    out: dict[str, list[tuple[tuple[str, ...], int]]] = {}
    for name, phrases in words_by_value.items():
        for p in phrases:
            toks = tuple(p.split())
            out.setdefault(toks[0], []).append((toks, values.index(name)))
    for lst in out.values():
        lst.sort(key=lambda e: -len(e[0]))
    return out


_SIZE = _table(V.SIZE_WORDS, V.SIZES)
_COLOUR = _table(V.COLOUR_WORDS, V.COLOURS)
_TEX_ADJ = _table(V.TEXTURE_ADJ, V.TEXTURES)
_TEX_POST = _table(V.TEXTURE_POST, V.TEXTURES)
_HPOS = _table(V.HPOS_WORDS, V.HPOS)
_REL = _table(V.RELATION_WORDS, V.RELATIONS)
_NOUN = _table({**V.SHAPE_WORDS, "": V.OBJECT_NOUNS}, V.SHAPES + ("",))
_GENERIC = len(V.SHAPES)  # value of _NOUN meaning "an object noun: shape not said"
_INVERSE = {V.RELATIONS.index(a): V.RELATIONS.index(b) for a, b in
            (("left of", "right of"), ("right of", "left of"), ("above", "below"),
             ("below", "above"))}

#: sentence frames (prefix tokens, suffix tokens, style index or -1): the kit's templates
_FRAMES: list[tuple[tuple[str, ...], tuple[str, ...], int]] = [
    (tuple(p.split()), tuple(s.split()), -1) for p, s in (
        ("", ""), ("there is", ""), ("the picture shows", ""), ("an image with", ""),
        ("you can see", ""), ("here we have", ""), ("", "in this scene"),
        ("this frame contains", ""), ("look closely to find", ""), ("the view includes", ""),
        ("visible here is", ""))]
_FRAMES += [(tuple(p.split()), (), V.STYLES.index(style))
            for style, phrases in V.STYLE_WORDS.items() for p in phrases]

_SIGN_WORD = {w: k for k, w in enumerate(V.SIGN_WORDS)}
#: sign clauses at the very end of the sentence; (?P<w>) is the sign's (single) word
_SIGN_CLAUSES = [re.compile(r) for r in (
    r"^(?P<rest>.+) next to a sign that says (?P<w>[a-z]+)$",
    r"^(?P<rest>.+) and a sign reading (?P<w>[a-z]+)$",
    r"^(?P<rest>.+) with the word (?P<w>[a-z]+) written on a sign$",
    r"^(?P<rest>.+) and a sign labelled (?P<w>[a-z]+)$")]


def _matches(table: dict, toks: tuple[str, ...], i: int):
    """Every (end, value) of a phrase of ``table`` that starts at token ``i``."""
    if i < len(toks):
        for phrase, value in table.get(toks[i], ()):
            if toks[i:i + len(phrase)] == phrase:
                yield i + len(phrase), value


def _optional(table: dict, toks: tuple[str, ...], i: int):
    """Like :func:`_matches`, plus the option of saying nothing (value -1)."""
    yield i, -1
    yield from _matches(table, toks, i)


# -------------------------------------------------------------------------------- parser


def parse_noun_phrase(toks: tuple[str, ...], i: int):
    """Every way to read one mention starting at token ``i``: yields (end, attrs) with attrs
    (shape, colour, texture, size, hpos), -1 where the phrase is silent."""
    if i >= len(toks) or toks[i] not in ("a", "an"):
        return
    for e1, size in _optional(_SIZE, toks, i + 1):
        for e2, colour in _optional(_COLOUR, toks, e1):
            for e3, tex_pre in _optional(_TEX_ADJ, toks, e2):
                for e4, noun in _matches(_NOUN, toks, e3):
                    shape = -1 if noun == _GENERIC else noun
                    post = _optional(_TEX_POST, toks, e4) if tex_pre < 0 else [(e4, -1)]
                    for e5, tex_post in post:
                        texture = tex_pre if tex_pre >= 0 else tex_post
                        for e6, hpos in _optional(_HPOS, toks, e5):
                            yield e6, (shape, colour, texture, size, hpos)


def parse_core(toks: tuple[str, ...]):
    """Every reading of the core: yields (np_a, relation or -1, np_b or None) in sentence
    order (``np_a REL np_b``), each consuming all of ``toks``."""
    for e1, a in parse_noun_phrase(toks, 0):
        if e1 == len(toks):
            yield a, -1, None
            continue
        for e2, rel in _matches(_REL, toks, e1):
            for e3, b in parse_noun_phrase(toks, e2):
                if e3 == len(toks):
                    yield a, rel, b


@dataclass(frozen=True)
class Surface:
    """One segmentation of a sentence, in the order the words come (no roles assigned)."""

    first: tuple[int, ...]
    relation: int                 # as said between first and second_np, -1 if none
    second_np: tuple[int, ...] | None
    style: int
    word: int


def split_sentence(text: str) -> tuple[str, ...]:
    """Check the surface form (capital first letter, final period, single spaces, lower case,
    no other punctuation) and return the lower-case words."""
    assert text and text[0].isupper() and text.endswith("."), f"bad sentence form: {text!r}"
    body = text[0].lower() + text[1:-1]
    assert re.fullmatch(r"[a-z0-9-]+( [a-z0-9-]+)*", body), f"bad characters/spaces: {text!r}"
    return tuple(body.split(" "))


def surface_parses(text: str) -> list[Surface]:
    """Every complete segmentation of ``text`` over the phrase tables and frames."""
    toks = split_sentence(text)
    body = " ".join(toks)
    options = [(toks, -1)]  # (tokens without the sign clause, sign word)
    for rx in _SIGN_CLAUSES:
        m = rx.match(body)
        if m and m["w"] in _SIGN_WORD:
            options.append((tuple(m["rest"].split(" ")), _SIGN_WORD[m["w"]]))
    out = []
    for rest, word in options:
        for prefix, suffix, style in _FRAMES:
            lo, hi = len(prefix), len(rest) - len(suffix)
            if hi <= lo or rest[:lo] != prefix or rest[hi:] != suffix:
                continue
            for a, rel, b in parse_core(rest[lo:hi]):
                out.append(Surface(a, rel, b, style, word))
    return out


def can_be_main(attrs: tuple[int, ...]) -> bool:
    """A main mention says >= 2 attributes, one of them the shape or the colour."""
    return sum(v >= 0 for v in attrs) >= 2 and (attrs[SHAPE] >= 0 or attrs[COLOUR] >= 0)


def can_be_second(attrs: tuple[int, ...]) -> bool:
    """A second mention says its shape, maybe its colour, and nothing else."""
    return attrs[SHAPE] >= 0 and attrs[TEXTURE] == attrs[SIZE] == attrs[HPOS] == -1


def readings(s: Surface) -> list[CaptionStruct]:
    """The structures a segmentation can mean: decide which phrase is the main mention from
    the sentence alone (two readings only when both are consistent with it)."""
    if s.second_np is None:
        return [CaptionStruct(s.first, NONE5, -1, s.style, s.word)] if can_be_main(s.first) \
            else []
    out = []
    if can_be_main(s.first) and can_be_second(s.second_np):  # "main REL second"
        out.append(CaptionStruct(s.first, s.second_np, s.relation, s.style, s.word))
    if can_be_main(s.second_np) and can_be_second(s.first):  # "second INV main"
        out.append(CaptionStruct(s.second_np, s.first, _INVERSE[s.relation], s.style, s.word))
    return out


def parse_caption(text: str) -> list[CaptionStruct]:
    """All structures the sentence can mean (normally one; two when ambiguous; none if it does
    not parse). Fails if the sentence has more than one segmentation."""
    surfaces = surface_parses(text)
    assert len(surfaces) <= 1, f"{text!r} has {len(surfaces)} segmentations: {surfaces}"
    return readings(surfaces[0]) if surfaces else []


# ------------------------------------------------------------------------------- checking


def check_world(world: World) -> tuple[int, int, list[str]]:
    """Parse every caption of ``world`` and compare with its stored structure.

    Returns (captions checked, ambiguous captions, problems); a problem is one readable line.
    """
    problems: list[str] = []
    ambiguous = 0
    for j, text in enumerate(world.captions):
        truth = world.caption_struct(j)
        try:
            candidates = parse_caption(text)
        except AssertionError as e:  # form or segmentation problem
            problems.append(f"caption {j}: {e}")
            continue
        if not candidates:
            problems.append(f"caption {j}: cannot parse {text!r}")
        elif truth not in candidates:
            problems.append(f"caption {j}: {text!r}\n    parsed {candidates}\n    stored {truth}")
        ambiguous += len(candidates) > 1
    return len(world.captions), ambiguous, problems


def _report(world: World, n: int, ambiguous: int, problems: list[str]) -> str:
    cfg = world.config
    head = (f"World(n={cfg.n}, seed={cfg.seed}, max_objects={cfg.max_objects}, "
            f"sign_prob={cfg.sign_prob}): {n} captions, {ambiguous} ambiguous (main/second "
            f"cannot be told apart from the text), {len(problems)} mismatches")
    return "\n".join([head] + problems[:10])


WORLDS = {
    "seed11": dict(n=1000, seed=11),
    "seed23-max3": dict(n=1000, seed=23, max_objects=3),
    "seed5-max2": dict(n=400, seed=5, max_objects=2),
    "seed7-signs": dict(n=600, seed=7, sign_prob=1.0),
    "seed9-single": dict(n=200, seed=9, max_objects=1),
}


@pytest.fixture(scope="module", params=list(WORLDS), ids=list(WORLDS))
def world(request):
    return World(**WORLDS[request.param])


def test_every_caption_says_exactly_its_structure(world):
    """Each sentence parses to exactly one segmentation whose reading equals the stored
    structure, field by field (main shape/colour/texture/size/hpos, second shape/colour,
    relation with its direction, style, sign word)."""
    n, ambiguous, problems = check_world(world)
    assert not problems, _report(world, n, ambiguous, problems)
    print("\n" + _report(world, n, ambiguous, problems))  # visible with pytest -s


def test_structures_cover_every_field(world):
    """The comparison above is not vacuous: the worlds exercise every kind of field."""
    cfg = world.config
    m = len(world.captions)
    for a in range(5):
        assert (world.caption_main[:, a] >= 0).any() and (world.caption_main[:, a] < 0).any()
    if cfg.max_objects > 1:
        rel = world.caption_relation
        assert set(np.unique(rel[rel >= 0]).tolist()) == set(range(len(V.RELATIONS)))
        assert (world.caption_second[rel >= 0, COLOUR] >= 0).any()
        assert (world.caption_second[rel >= 0, COLOUR] < 0).any()
    else:
        assert (world.caption_relation < 0).all()
    assert (world.caption_style >= 0).any() and (world.caption_style < 0).any()
    if cfg.sign_prob > 0:
        assert (world.caption_word >= 0).sum() > m // 20
    assert m == cfg.n * cfg.captions_per_image


def test_tokens_are_in_the_vocabulary(world):
    """Every token of every caption is a word the kit declares (vocab.vocabulary_words), and
    the kit's tokenizer agrees with this file's word split."""
    vocab = V.vocabulary_words()
    unknown: dict[str, str] = {}
    for j, text in enumerate(world.captions):
        toks = tokenize(text)
        assert toks == list(split_sentence(text)), text
        for t in toks:
            if t not in vocab:
                unknown.setdefault(t, text)
    assert not unknown, f"words outside vocabulary_words(): {unknown}"


def test_captions_of_an_image_are_distinct(world):
    """The five captions of an image are five different sentences."""
    dup = [i for i in range(world.config.n)
           if len({world.captions[j] for j in world.captions_of(i)})
           < world.config.captions_per_image]
    assert not dup, f"images with repeated captions: {dup[:10]} " \
                    f"e.g. {[world.captions[j] for j in world.captions_of(dup[0])]}"


def test_ambiguous_captions_keep_their_positives():
    """Where the text cannot tell the main mention from the second one, the two readings
    must at least agree on which images are fully relevant (grade 3: both objects and the
    relation present). They may disagree on grades 0-2, which depend on the main mention
    only: that part of the ground truth cannot be recovered from the sentence."""
    w = World(n=1000, seed=11)
    amb = np.array([j for j, t in enumerate(w.captions) if len(parse_caption(t)) > 1])
    assert len(amb) > 0
    inverse = np.array([_INVERSE[int(r)] for r in w.caption_relation[amb]])
    args = (w.caption_style[amb], w.caption_word[amb], w.objects, w.xy, w.n_objects,
            w.styles, w.words)
    as_stored = caption_relevance(w.caption_main[amb], w.caption_second[amb],
                                  w.caption_relation[amb], *args)
    swapped = caption_relevance(w.caption_second[amb], w.caption_main[amb], inverse, *args)
    differ = int((as_stored != swapped).sum())
    assert np.array_equal(as_stored == 3, swapped == 3), \
        f"{len(amb)} ambiguous captions change their positives"
    print(f"\n{len(amb)} ambiguous captions: the other reading changes {differ} of "
          f"{as_stored.size} graded-relevance cells (none at grade 3)")


# -------------------------------------------------------- the parser itself can fail


@pytest.mark.parametrize("text, expected", [
    ("A salmon pink ring-shaped blob covered in spots in the right part of the picture.",
     [CaptionStruct((0, 7, 2, -1, 2), NONE5, -1, -1, -1)]),
    ("Look closely to find a leafy green round shape in a single flat colour.",
     [CaptionStruct((0, 3, 0, -1, -1), NONE5, -1, -1, -1)]),
    ("A pencil sketch of a huge crimson shape with no pattern on the left and a sign reading "
     "photo.", [CaptionStruct((-1, 0, 0, 2, 0), NONE5, -1, 1, V.SIGN_WORDS.index("photo"))]),
    ("A red disc in this scene.", [CaptionStruct((0, 0, -1, -1, -1), NONE5, -1, -1, -1)]),
    ("A red disc.", [CaptionStruct((0, 0, -1, -1, -1), NONE5, -1, -1, -1)]),
    # a shape-only phrase cannot be the main mention, so the fact is said the other way round
    ("A plus sign on the left side of a tiny coffee-coloured kite shape.",
     [CaptionStruct((3, 8, -1, 0, -1), (5, -1, -1, -1, -1), 1, -1, -1)]),
    ("A poster of a striped swiss cross on the left lower than a five-pointed star "
     "with the word stone written on a sign.",
     [CaptionStruct((5, -1, 1, -1, 0), (4, -1, -1, -1, -1), 3, 2,
                    V.SIGN_WORDS.index("stone"))]),
    # both phrases are "colour + shape": genuinely ambiguous, two readings
    ("There is a red disc higher than a blue box.",
     [CaptionStruct((0, 0, -1, -1, -1), (1, 5, -1, -1, -1), 2, -1, -1),
      CaptionStruct((1, 5, -1, -1, -1), (0, 0, -1, -1, -1), 3, -1, -1)]),
    # not sayable by the kit: no reading (a main mention needs >= 2 attributes, one of them
    # shape or colour) or no segmentation
    ("A disc.", []), ("A huge shape with no pattern on the left.", []),
    ("A red disc with stripes striped.", []), ("A red disc sitting.", []),
    ("A red disc and a sign reading banana.", []),
])
def test_parser_on_hand_written_sentences(text, expected):
    """Hand-written sentences with the multi-word traps parse to the intended structures."""
    assert parse_caption(text) == expected


def _corruptions(s: CaptionStruct):
    """Structures that differ from ``s`` in exactly one field (what a generator bug would
    produce)."""
    def bump(v, n):
        return (v + 1) % n if v >= 0 else 0

    sizes = [len(V.ATTRIBUTE_VALUES[a]) for a in V.ATTRIBUTES]
    for a in range(5):
        main = list(s.main)
        main[a] = bump(main[a], sizes[a])
        yield CaptionStruct(tuple(main), s.second, s.relation, s.style, s.word)
    if s.relation >= 0:
        for a in (SHAPE, COLOUR):
            second = list(s.second)
            second[a] = bump(second[a], sizes[a])
            yield CaptionStruct(s.main, tuple(second), s.relation, s.style, s.word)
        yield CaptionStruct(s.main, s.second, _INVERSE[s.relation], s.style, s.word)
        yield CaptionStruct(s.second, s.main, s.relation, s.style, s.word)  # roles swapped
    yield CaptionStruct(s.main, s.second, s.relation, bump(s.style, len(V.STYLES)), s.word)
    yield CaptionStruct(s.main, s.second, s.relation, s.style, bump(s.word, len(V.SIGN_WORDS)))
    if s.word >= 0:
        yield CaptionStruct(s.main, s.second, s.relation, s.style, -1)


def test_check_catches_any_single_field_corruption():
    """Mutation check: corrupt one field of a stored structure and the parse must disagree
    (except where the corrupted structure is exactly the other reading of an ambiguous
    sentence)."""
    w = World(n=150, seed=31, sign_prob=0.5)
    caught = total = 0
    for j, text in enumerate(w.captions):
        candidates = parse_caption(text)
        for bad in _corruptions(w.caption_struct(j)):
            if bad == w.caption_struct(j) or (len(candidates) > 1 and bad in candidates):
                continue
            total += 1
            caught += bad not in candidates
    assert total > 5000 and caught == total, f"caught {caught} of {total} corruptions"
