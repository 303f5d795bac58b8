"""Exercises of notebook 00 (quickstart)."""
from __future__ import annotations

import numpy as np

from mmkit.data import vocab as V
from mmkit.data.relevance import oracle_hit_rate
from mmkit.data.sound import COLOUR_MIDI
from mmkit.data.world import World, WorldConfig
from mmkit.exercises import Feedback, close, not_answered
from mmkit.features import audio as A
from mmkit.validate import is_integer


def check_most_ambiguous_caption(world: World, image: int, answer: int | None) -> Feedback:
    """Exercise 1: which caption of ``image`` (a caption index) fits the most images fully?"""
    if answer is None:
        return not_answered()
    if not is_integer(answer):
        return Feedback(False, f"answer with a caption index (an integer), got {answer!r}")
    caps = world.captions_of(image)
    counts = (world.caption_relevance(np.array(caps)) == 3).sum(1)
    best = [c for c, n in zip(caps, counts) if n == counts.max()]
    if int(answer) in best:
        return Feedback(True, f"caption {answer} fits {counts.max()} images fully")
    if int(answer) not in caps:
        return Feedback(False, f"caption {answer} is not one of image {image}'s: {caps}")
    return Feedback(False, f"caption {answer} fits {counts[caps.index(int(answer))]} images; "
                           "another caption fits more (count relevance == 3 per row)")


def check_oracle_r1(world: World, images: np.ndarray, answer: float | None) -> Feedback:
    """Exercise 2: the oracle's expected text->image R@1 on ``images``."""
    if answer is None:
        return not_answered()
    rel, pos = world.ground_truth("text->image", images)
    expected = float(oracle_hit_rate(rel, pos, 1).mean())
    if close(answer, expected, 1e-6):
        return Feedback(True, f"the oracle's expected R@1 is {expected:.4f}: ranking by graded "
                              "relevance cannot tell apart the images that fit a caption fully")
    return Feedback(False, "use world.ground_truth('text->image', images) and "
                           "mmkit.data.relevance.oracle_hit_rate(..., k=1), then average")


def check_lowest_note(answer: str | None) -> Feedback:
    """Exercise 3: the colour (a name of ``mmkit.data.vocab.COLOURS``) whose objects play the
    lowest note, measured on one-object clips."""
    if answer is None:
        return not_answered()
    given = str(answer).strip().lower().replace("grey", "gray")
    if given not in V.COLOURS:
        return Feedback(False, f"{answer!r} is not a colour of the world; choose one of "
                               f"{', '.join(V.COLOURS)}")
    lowest = V.COLOURS[int(np.argmin(COLOUR_MIDI))]
    midi = COLOUR_MIDI[V.COLOURS.index(given)]
    if given == lowest:
        return Feedback(True, f"{lowest} plays MIDI note {midi} "
                              f"({440 * 2 ** ((midi - 69) / 12):.0f} Hz), the lowest of the "
                              "scale: each colour is one note (mmkit.data.sound.COLOUR_MIDI)")
    hint = ("that is the highest note; " if midi == max(COLOUR_MIDI) else
            f"{given} is {midi - min(COLOUR_MIDI)} semitones above the lowest; ")
    return Feedback(False, hint + "measure every colour's note on one-object clips "
                                  "(A.pitch_track, A.median_pitch, A.hz_to_midi) and take the "
                                  "colour with the smallest median (an octave too high? the "
                                  "tracker may have locked onto a harmonic: use several clips)")


# ------------------------------------------------------------------ worked solutions
def solution_most_ambiguous_caption(world: World, image: int = 3) -> int:
    """Exercise 1. Call with the notebook's ``world`` (and ``3``): count, for each caption
    of the image, the images it fits fully (relevance 3), and keep the largest count."""
    caps = world.captions_of(image)
    fully = (world.caption_relevance(np.array(caps)) == 3).sum(axis=1)   # [5] images each
    return caps[int(fully.argmax())]


def solution_oracle_r1(world: World, images: np.ndarray) -> float:
    """Exercise 2. Call with ``world, world.indices("val")``. The oracle ranks by relevance and breaks ties
    at random, so only the images at a caption's highest grade can come first, each with the
    same chance: R@1 = (positives in that top block) / (size of the block), per caption
    (``oracle_hit_rate(rel, pos, 1)`` gives the same numbers)."""
    rel, pos = world.ground_truth("text->image", images)          # [Q, N] grades, own image
    top = rel == rel.max(axis=1, keepdims=True)                    # the tied top block
    r1 = (top & pos).sum(axis=1) / top.sum(axis=1)
    return float(r1.mean())


def solution_lowest_note(world: World | None = None, per_colour: int = 3) -> str:
    """Exercise 3. Call with no argument (a clean world of 400 one-object scenes is made), or
    with such a world (``max_objects=1``). Measures the note of ``per_colour`` clips of each
    colour (median pYIN pitch as a MIDI number), takes each colour's median (robust to a clip
    whose pitch locked onto a harmonic) and returns the colour with the lowest."""
    if world is None:
        world = World(WorldConfig(n=400, seed=5, noise=0.0, max_objects=1, sign_prob=0.0))
    colours = world.objects[:, 0, V.ATTRIBUTES.index("colour")]     # the one object's colour
    notes = {}
    for c in np.unique(colours):
        clips = world.audio[np.flatnonzero(colours == c)[:per_colour]]
        f0, _ = A.pitch_track(clips, world.config.sample_rate)
        notes[V.COLOURS[c]] = float(np.nanmedian(A.hz_to_midi(A.median_pitch(f0))))
    return min(notes, key=notes.get)


SOLUTIONS = {1: solution_most_ambiguous_caption, 2: solution_oracle_r1,
             3: solution_lowest_note}
