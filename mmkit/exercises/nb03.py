"""Exercises of notebook 03 (audio features).

1. :func:`check_note_colour`: which colour plays the note of a one-object clip?
2. :func:`check_frame_count`: how many log-mel frames has a clip of :data:`FRAMES_SAMPLES`
   samples at hop :data:`FRAMES_HOP` (librosa's centred frames)?
3. :func:`check_colour_chance_p10`: the P@10 that a random ranking expects for audio -> audio
   retrieval over a set of scenes when the positives are the scenes whose main object has the
   query's colour (each query excluded from its gallery). :func:`check_chance_p10` checks the
   same with same-class positives.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from mmkit.data import vocab as V
from mmkit.data.sound import COLOUR_MIDI
from mmkit.exercises import Feedback, close, not_answered
from mmkit.features import audio as A
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
    others = counts[inverse] - 1                  # positives of each query: same label, not itself
    return float(np.mean(others / (len(labels) - 1)))


def _check_chance(labels: np.ndarray, answer, what: str, others: dict[str, float]) -> Feedback:
    """The expected P@10 of a random ranking with same-``labels`` positives; ``others``: the
    values of likely mistakes, with a hint for each."""
    if answer is None:
        return not_answered()
    try:
        value = float(answer)
    except (TypeError, ValueError):
        return Feedback(False, f"answer with a number, got {answer!r}")
    expected = _chance_p10(labels)
    if close(value, expected, 5e-4):
        return Feedback(True, f"P@10 = {expected:.4f} by chance ({what}): each of the 10 slots "
                              "holds a positive with probability R / (N - 1)")
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    with_self = float(np.mean(counts[inverse] / len(labels)))
    if close(value, with_self, 5e-4):
        return Feedback(False, "the query is not in its own gallery: it has R - 1 = (group size "
                               "- 1) positives among N - 1 candidates")
    for hint, wrong in others.items():
        if close(value, wrong, 5e-4):
            return Feedback(False, hint)
    return Feedback(False, "for a random ranking every slot of the top 10 is a positive with "
                           "probability (positives of the query) / (gallery size); average over "
                           "the queries")


def check_chance_p10(world: Any, images: np.ndarray, answer: float | None) -> Feedback:
    """The expected P@10 of a random ranking, same-class audio -> audio retrieval over
    ``images`` (every scene queries all the others)."""
    return _check_chance(world.labels[np.asarray(images)], answer, "same class", {})


def check_colour_chance_p10(world: Any, images: np.ndarray, answer: float | None) -> Feedback:
    """Exercise 3: the expected P@10 of a random ranking for audio -> audio retrieval over
    ``images`` (every scene queries all the others) when the positives are the scenes whose
    main object has the query's colour (``world.objects[images, 0, 1]``)."""
    images = np.asarray(images)
    colours = world.objects[images, 0, V.ATTRIBUTES.index("colour")]
    n_colours = len(V.COLOURS)
    return _check_chance(colours, answer, "same colour", {
        "that is the chance P@10 for same-class positives; here a positive is any scene whose "
        "main object has the query's colour (world.objects[test, 0, 1])":
            _chance_p10(world.labels[images]),
        f"that assumes the {n_colours} colours are equally frequent; count how many scenes "
        "share each query's colour": 1 / n_colours,
    })


# ------------------------------------------------------------------ worked solutions
def solution_note_colour(world: Any, scene: int = 3) -> str:
    """Exercise 1. Call with ``solo`` (and ``3``): the median pYIN pitch of the clip, as a
    MIDI note, is one of ``COLOUR_MIDI``; its position there is the colour."""
    f0, _ = A.pitch_track(world.audio[scene], world.config.sample_rate)
    midi = int(np.round(A.hz_to_midi(A.median_pitch(f0))[0]))
    return V.COLOURS[COLOUR_MIDI.index(midi)]


def solution_frame_count(samples: int = FRAMES_SAMPLES, hop: int = FRAMES_HOP) -> int:
    """Exercise 2. By hand: centred frames start at sample 0 and come every ``hop``
    samples, so 1 + 24000 // 256 = 1 + 93 = 94. Counted here on a silent clip at 16 kHz
    (``A.log_mel`` returns [N, n_mels, frames])."""
    return int(A.log_mel(np.zeros(samples), 16_000, hop_length=hop).shape[-1])


def solution_colour_chance_p10(world: Any, images: np.ndarray) -> float:
    """Exercise 3. Call with ``world, test``. In a random ranking each of the 10 slots holds
    a given query's positive with probability R / (N - 1): R = the other scenes whose main
    object has the query's colour, N - 1 = its gallery (itself excluded). P@10 is the mean of
    that over the queries."""
    colours = world.objects[np.asarray(images), 0, 1]                 # the main object's colour
    n = len(colours)
    positives = np.array([(colours == c).sum() - 1 for c in colours])  # same colour, not itself
    return float(np.mean(positives / (n - 1)))


SOLUTIONS = {1: solution_note_colour, 2: solution_frame_count, 3: solution_colour_chance_p10}
