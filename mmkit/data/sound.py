"""A sound clip per scene whose content follows the scene.

Each object plays one note, objects left to right:

- **timbre from shape**: each shape has its own harmonic profile (sine-like, hollow odd
  harmonics, bright saw-like, bell-like partials...),
- **pitch from colour**: each colour is a note of a scale (A3 to E5),
- **loudness from size**: small objects play softly, large ones loudly,
- **modulation from texture**: plain = steady, striped = tremolo, dotted = fast pulses,
  checkered = vibrato,
- **number of notes from the object count**.

Background noise is added at a random signal-to-noise ratio, so the mapping is learnable but not
trivial.
"""
from __future__ import annotations

import numpy as np

from mmkit.data import vocab as V

#: MIDI note per colour (pentatonic-ish, A3..E5)
COLOUR_MIDI: tuple[int, ...] = (57, 60, 62, 64, 67, 69, 72, 74, 76, 79)
#: relative amplitude of harmonics 1..8 per shape
SHAPE_HARMONICS: tuple[tuple[float, ...], ...] = (
    (1.0, 0.05, 0.02, 0, 0, 0, 0, 0),                       # circle: almost pure tone
    (1.0, 0, 0.33, 0, 0.2, 0, 0.14, 0),                     # square: odd harmonics
    (1.0, 0.5, 0.33, 0.25, 0.2, 0.17, 0.14, 0.12),          # triangle: bright, saw-like
    (0.6, 1.0, 0.1, 0.4, 0, 0.1, 0, 0),                     # diamond: strong 2nd
    (0.5, 0.2, 0.9, 0.1, 0.6, 0, 0.4, 0.1),                 # star: strong 3rd and 5th
    (1.0, 0, 0, 0.7, 0, 0, 0, 0.5),                         # cross: octaves
    (1.0, 0.3, 0, 0, 0.3, 0, 0, 0),                         # pentagon
    (1.0, 0, 0.6, 0, 0, 0.3, 0, 0),                         # hexagon
)
SIZE_GAIN: tuple[float, ...] = (0.25, 0.5, 0.9)


def midi_to_hz(midi: float) -> float:
    """Equal-tempered frequency of a MIDI note (A4 = 69 = 440 Hz)."""
    return 440.0 * 2.0 ** ((midi - 69) / 12)


def synth_note(shape: int, colour: int, texture: int, size: int, n_samples: int, sr: int,
               detune: float = 0.0) -> np.ndarray:
    """One note as float32 [n_samples], peak amplitude about ``SIZE_GAIN[size]``."""
    t = np.arange(n_samples, dtype=np.float64) / sr
    f0 = midi_to_hz(COLOUR_MIDI[colour] + detune)
    name = V.TEXTURES[texture]
    if name == "checkered":  # vibrato: +-3% pitch at 6 Hz, integrated into the phase
        phase = 2 * np.pi * f0 * (t - 0.03 / (2 * np.pi * 6) * np.cos(2 * np.pi * 6 * t))
    else:
        phase = 2 * np.pi * f0 * t
    wave = np.zeros(n_samples)
    for h, amp in enumerate(SHAPE_HARMONICS[shape], start=1):
        if amp and f0 * h < sr / 2:
            wave += amp * np.sin(h * phase)
    wave /= np.abs(wave).max() + 1e-9
    if name == "striped":      # tremolo
        wave *= 0.6 + 0.4 * np.sin(2 * np.pi * 7 * t)
    elif name == "dotted":     # pulses
        wave *= (np.sin(2 * np.pi * 14 * t) > 0).astype(np.float64) * 0.9 + 0.1
    attack, release = int(0.01 * sr), int(0.05 * sr)
    env = np.ones(n_samples)
    env[:attack] = np.linspace(0, 1, attack)
    env[-release:] = np.linspace(1, 0, release)
    return (SIZE_GAIN[size] * wave * env).astype(np.float32)


def synth_scene(objects: np.ndarray, xy: np.ndarray, n_objects: int, sr: int, seconds: float,
                rng: np.random.Generator, noise: float = 1.0) -> np.ndarray:
    """The clip of one scene: float32 [round(sr * seconds)] in [-1, 1].

    Args:
        objects: int [K, 5] attribute ids (shape, colour, texture, size, hpos).
        xy: float [K, 2] centres; notes play in left-to-right order.
        rng: randomness for detuning, timing and noise. noise: noise scale (0 = clean).
    """
    n = int(round(sr * seconds))
    clip = np.zeros(n, np.float32)
    order = np.argsort(xy[:n_objects, 0], kind="stable")
    slot = n // n_objects
    gap = int(0.04 * sr)
    for i, k in enumerate(order):
        shape, colour, texture, size, _ = (int(v) for v in objects[k])
        start = i * slot + int(rng.integers(0, gap))
        length = slot - gap
        clip[start:start + length] += synth_note(shape, colour, texture, size, length, sr,
                                                 detune=float(rng.normal(0, 0.1)))
    if noise > 0:
        snr_db = rng.uniform(8, 24) / noise
        signal_power = float(np.mean(clip ** 2)) + 1e-12
        sigma = np.sqrt(signal_power / 10 ** (snr_db / 10))
        clip += rng.normal(0, sigma, n).astype(np.float32)
    peak = float(np.abs(clip).max())
    if peak > 1.0:
        clip /= peak
    return clip
