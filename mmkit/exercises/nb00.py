"""Exercises of notebook 00 (quickstart)."""
from __future__ import annotations

import numpy as np

from mmkit.data.relevance import oracle_hit_rate
from mmkit.data.world import World
from mmkit.exercises import Feedback, close, not_answered
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


def check_pitch_attribute(answer: str | None) -> Feedback:
    """Exercise 3: which attribute of an object sets the pitch of its note?"""
    if answer is None:
        return not_answered()
    if str(answer).strip().lower() in ("colour", "color"):
        return Feedback(True, "each colour is one note of a scale (mmkit.data.sound.COLOUR_MIDI)")
    return Feedback(False, "listen to two clips that differ in one attribute, or read "
                           "mmkit.data.sound's docstring")
