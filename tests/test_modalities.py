"""Images, sounds, speech and signs carry what the scene says."""
from __future__ import annotations

import numpy as np
import pytest

from mmkit.data import World
from mmkit.data import vocab as V
from mmkit.data.sound import COLOUR_MIDI, midi_to_hz, synth_note, synth_scene


def test_sound_pitch_follows_colour():
    sr = 16000
    for colour in range(len(V.COLOURS)):
        note = synth_note(shape=0, colour=colour, texture=0, size=2, n_samples=sr, sr=sr)
        spectrum = np.abs(np.fft.rfft(note * np.hanning(len(note))))
        peak_hz = np.argmax(spectrum) * sr / len(note)
        assert peak_hz == pytest.approx(midi_to_hz(COLOUR_MIDI[colour]), rel=0.01)


def test_sound_loudness_follows_size_and_count_follows_objects():
    sr = 16000
    rms = [np.sqrt(np.mean(synth_note(1, 3, 0, s, sr, sr) ** 2)) for s in range(3)]
    assert rms[0] < rms[1] < rms[2]
    objects = np.array([[0, 0, 0, 2, 0], [1, 5, 0, 1, 2], [-1] * 5])
    xy = np.array([[0.2, 0.5], [0.8, 0.5], [0, 0]], np.float32)
    clip = synth_scene(objects, xy, 2, sr, 1.0, np.random.default_rng(0), noise=0.0)
    first, second = clip[: sr // 2], clip[sr // 2:]
    for half, colour in ((first, 0), (second, 5)):
        spectrum = np.abs(np.fft.rfft(half * np.hanning(len(half))))
        assert np.argmax(spectrum) * sr / len(half) == pytest.approx(
            midi_to_hz(COLOUR_MIDI[colour]), rel=0.03)


def test_shape_changes_timbre_not_pitch():
    sr = 16000
    a = synth_note(0, 4, 0, 2, sr, sr)   # circle: nearly pure
    b = synth_note(2, 4, 0, 2, sr, sr)   # triangle: bright
    spec_a, spec_b = (np.abs(np.fft.rfft(x)) for x in (a, b))
    f = np.fft.rfftfreq(sr, 1 / sr)
    centroid = [float((f * s).sum() / s.sum()) for s in (spec_a, spec_b)]
    assert centroid[1] > 1.5 * centroid[0]


def test_styles_look_different(small_world):
    w = small_world
    brightness = {s: w.images[w.styles == k].mean() for k, s in enumerate(V.STYLES)}
    assert brightness["sketch"] > brightness["photo"] + 30   # paper background
    noise = {s: np.abs(np.diff(w.images[w.styles == k].astype(float), axis=2)).mean()
             for k, s in enumerate(V.STYLES)}
    assert noise["photo"] > noise["painting"]


def test_clean_image_shows_the_class_colour(clean_world):
    w = clean_world
    for i in range(len(w)):
        if V.TEXTURES[int(w.objects[i, 0, 2])] != "plain" or V.STYLES[int(w.styles[i])] == "sketch":
            continue
        x, y = (w.xy[i, 0] * 64).astype(int)
        centre = w.images[i, y - 1:y + 2, x - 1:x + 2].reshape(-1, 3).mean(0)
        rgb = np.array(V.COLOUR_RGB[V.COLOURS[int(w.objects[i, 0, 1])]], float)
        assert np.abs(centre - rgb).max() < 60, (i, centre, rgb)


@pytest.mark.slow
def test_signs_are_legible_to_ocr():
    pytest.importorskip("rapidocr_onnxruntime")
    from PIL import Image
    from rapidocr_onnxruntime import RapidOCR

    w = World(n=80, seed=1)
    idx = np.flatnonzero(w.words >= 0)[:6]
    ocr = RapidOCR()
    read = 0
    for i in idx:
        big = np.asarray(Image.fromarray(w.images[i]).resize((256, 256), Image.BICUBIC))
        result, _ = ocr(big)
        text = "".join(r[1] for r in result or []).upper().replace(" ", "")
        read += V.SIGN_WORDS[int(w.words[i])].upper() in text
    assert read >= len(idx) - 1


def test_speech_is_deterministic_and_ordered_independent():
    from mmkit.data.speech import speak, speech_available

    if not speech_available():
        pytest.skip("espeak-ng not loadable here")
    a1 = speak("a red circle", speaker=0)
    b = speak("a blue square above a star", speaker=3)
    a2 = speak("a red circle", speaker=0)
    assert np.array_equal(a1, a2) and len(b) > len(a1) > 4000
    assert np.abs(a1).max() > 0.05
    assert not np.array_equal(speak("a red circle", speaker=1)[:4000], a1[:4000])
    with pytest.raises(ValueError, match="empty"):
        speak("  ")


def test_world_speech_uses_its_caption(small_world):
    from mmkit.data.speech import speech_available

    if not speech_available():
        pytest.skip("espeak-ng not loadable here")
    clip = small_world.speech(0)
    assert clip.dtype == np.float32 and len(clip) > small_world.config.sample_rate // 2
    assert np.array_equal(clip, small_world.speech(0))
