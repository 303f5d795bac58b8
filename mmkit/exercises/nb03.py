"""Exercises of notebook 03 (audio features).

1. :func:`check_note_colour`: which colour plays the note of a one-object clip?
2. :func:`check_frame_count`: how many log-mel frames has a clip of :data:`FRAMES_SAMPLES`
   samples at hop :data:`FRAMES_HOP` (librosa's centred frames)?
3. :func:`check_chance_p10`: the P@10 that a random ranking expects for same-class
   audio -> audio retrieval over a set of scenes (each query excluded from its gallery).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from mmkit.data import vocab as V
from mmkit.data.sound import COLOUR_MIDI
from mmkit.exercises import Feedback, close, not_answered
from mmkit.validate import is_integer

# ------------------------------------------------------------------ exercise 1
def check_note_colour(world: Any, scene: int, answer: str | None) -> Feedback:
    """Exercise 1: the colour (a name of ``mmkit.data.vocab.COLOURS``) of the object whose note
    scene ``scene`` plays (a one-object world: ``max_objects=1``)."""
    if answer is None:
        return not_answered()
    if int(world.n_objects[scene]) != 1:
        return Feedback(False, f"scene {scene} has {int(world.n_objects[scene])} objects; use "
                               "a world with max_objects=1")
    truth = V.COLOURS[int(world.objects[scene, 0, 1])]
    given = str(answer).strip().lower()
    if given == truth:
        return Feedback(True, f"{truth} plays MIDI note {COLOUR_MIDI[V.COLOURS.index(truth)]}: "
                              "the median pyin pitch, rounded to a semitone, finds it")
    if given not in V.COLOURS:
        return Feedback(False, f"{answer!r} is not a colour of the world; choose one of "
                               f"{', '.join(V.COLOURS)}")
    midi = COLOUR_MIDI[V.COLOURS.index(given)]
    return Feedback(False, f"{given} plays MIDI {midi}; take the median of pitch_track's f0, "
                           "convert it with hz_to_midi, round it and look it up in "
                           "mmkit.data.sound.COLOUR_MIDI (an octave off? pyin may have locked "
                           "onto a strong harmonic)")


# ------------------------------------------------------------------ exercise 2
FRAMES_SAMPLES = 24_000
"""Exercise 2: a clip of 1.5 s at 16 kHz."""
FRAMES_HOP = 256
"""Exercise 2: the hop length (in samples) between frames."""


def check_frame_count(answer: int | None) -> Feedback:
    """Exercise 2: frames of ``log_mel`` (librosa, ``center=True``) for :data:`FRAMES_SAMPLES`
    samples at hop :data:`FRAMES_HOP`."""
    if answer is None:
        return not_answered()
    if not is_integer(answer):
        return Feedback(False, f"answer with a whole number of frames, got {answer!r}")
    expected = 1 + FRAMES_SAMPLES // FRAMES_HOP
    if int(answer) == expected:
        return Feedback(True, f"{expected} frames: centred frames start at sample 0, one every "
                              f"{FRAMES_HOP} samples, so 1 + {FRAMES_SAMPLES} // {FRAMES_HOP}")
    if int(answer) in (expected - 1, FRAMES_SAMPLES // FRAMES_HOP):
        return Feedback(False, "one short: with center=True the first frame is centred on "
                               "sample 0 (the signal is padded by n_fft // 2 on both sides)")
    return Feedback(False, "count hops: a frame every hop_length samples, the first one centred "
                           "on sample 0 (librosa's center=True)")


# ------------------------------------------------------------------ exercise 3
def _chance_p10(labels: np.ndarray, k: int = 10) -> float:
    labels = np.asarray(labels)
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    others = counts[inverse] - 1                  # positives of each query: same class, not itself
    return float(np.mean(others / (len(labels) - 1)))


def check_chance_p10(world: Any, images: np.ndarray, answer: float | None) -> Feedback:
    """Exercise 3: the expected P@10 of a random ranking, same-class audio -> audio retrieval
    over ``images`` (every scene queries all the others)."""
    if answer is None:
        return not_answered()
    try:
        value = float(answer)
    except (TypeError, ValueError):
        return Feedback(False, f"answer with a number, got {answer!r}")
    labels = world.labels[np.asarray(images)]
    expected = _chance_p10(labels)
    if close(value, expected, 5e-4):
        return Feedback(True, f"P@10 = {expected:.4f} by chance: each of the 10 slots holds a "
                              "positive with probability R / (N - 1)")
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    with_self = float(np.mean(counts[inverse] / len(labels)))
    if close(value, with_self, 5e-4):
        return Feedback(False, "the query is not in its own gallery: it has R - 1 = (class size "
                               "- 1) positives among N - 1 candidates")
    return Feedback(False, "for a random ranking every slot of the top 10 is a positive with "
                           "probability (positives of the query) / (gallery size); average over "
                           "the queries")
