"""Audio features (notebook 03): librosa and naive references, bad input, the log-mel CNN,
its trainers and checkpoints, the speech cache and the exercise checkers."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from mmkit.errors import InputError
from mmkit.features import audio as A

SR = 16000


@pytest.fixture(scope="module")
def world():
    from mmkit.data import World

    return World(n=60, seed=1)


@pytest.fixture(scope="module")
def one_object():
    from mmkit.data import World

    return World(n=40, seed=7, noise=0.0, max_objects=1, sign_prob=0.0)


def _tone(freq: float, seconds: float = 0.5, sr: int = SR, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


# ------------------------------------------------------------------ conversion and loading
def test_prepare_audio_downmixes_both_layouts_and_scales_int16():
    rng = np.random.default_rng(0)
    left, right = rng.uniform(-0.5, 0.5, (2, 1000)).astype(np.float32)
    mono = (left + right) / 2
    assert np.allclose(A.prepare_audio(np.stack([left, right]), SR, SR), mono, atol=1e-7)
    assert np.allclose(A.prepare_audio(np.stack([left, right], axis=1), SR, SR), mono, atol=1e-7)
    pcm = np.array([0, 16384, -32768, 32767], np.int16)
    assert np.allclose(A.prepare_audio(pcm, SR, SR), [0, 0.5, -1, 32767 / 32768])
    assert np.allclose(A.check_clips(pcm)[0], [0, 0.5, -1, 32767 / 32768])


def test_prepare_audio_resamples_like_librosa():
    import librosa

    clip = _tone(440, 0.3, 22050)
    got = A.prepare_audio(clip, 22050, SR)
    assert len(got) == math.ceil(len(clip) * SR / 22050)
    assert np.allclose(got, librosa.resample(clip, orig_sr=22050, target_sr=SR), atol=1e-6)
    # the tone keeps its frequency: spectrum peak at 440 Hz
    spec = np.abs(np.fft.rfft(got))
    assert abs(np.argmax(spec) * SR / len(got) - 440) < 5


def test_load_audio_matches_librosa_load(tmp_path):
    import librosa
    import soundfile

    rng = np.random.default_rng(1)
    stereo = (rng.uniform(-0.4, 0.4, (4410, 2)) * 32767).astype(np.int16)
    path = tmp_path / "stereo.wav"
    soundfile.write(str(path), stereo, 22050, subtype="PCM_16")
    got = A.load_audio(path, SR)
    ref, _ = librosa.load(str(path), sr=SR, mono=True)
    assert got.dtype == np.float32 and got.ndim == 1
    assert np.allclose(got, ref, atol=1e-5)
    with pytest.raises(InputError, match="no such audio file"):
        A.load_audio(tmp_path / "missing.wav")
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not a wav file at all")
    with pytest.raises(InputError, match=r"bad\.wav: cannot read audio"):
        A.load_audio(bad)


@pytest.mark.parametrize("clip, match", [
    (np.zeros(0, np.float32), "empty audio"),
    (np.zeros((2, 0), np.float32), "empty audio"),
    (np.array([0.0, np.nan, 0.1], np.float32), "NaN or inf"),
    (np.array([[0.0, 0.1], [np.inf, 0.0]], np.float32), "NaN or inf"),
    (np.zeros((2, 3, 100), np.float32), r"\[N, T\]"),
    (np.array(["a", "b"]), "must be numbers"),
    (np.zeros((0, 100), np.float32), "no clips"),
])
def test_bad_clips_are_refused_in_one_line(clip, match):
    for fn in (A.check_clips, lambda c: A.log_mel(c, SR), lambda c: A.clip_features(c, SR),
               lambda c: A.pitch_track(c, SR)):
        with pytest.raises(InputError, match=match) as info:
            fn(clip)
        assert "\n" not in str(info.value)


@pytest.mark.parametrize("clip, match", [
    (np.zeros(0, np.float32), "empty audio"),
    (np.full((2, 50), np.nan, np.float32), "NaN or inf"),
    (np.zeros((16, 16), np.float32), "neither"),
    (np.zeros((2, 2, 2), np.float32), "must be"),
])
def test_bad_recordings_are_refused(clip, match):
    with pytest.raises(InputError, match=match):
        A.prepare_audio(clip, SR, SR)
    with pytest.raises(InputError, match="sr_in"):
        A.prepare_audio(np.zeros(10, np.float32), 0, SR)


# ------------------------------------------------------------------ spectral features
def test_power_spectrogram_matches_naive_stft():
    clip = np.random.default_rng(2).standard_normal(3000).astype(np.float32)
    n_fft, hop = 512, 128
    got = A.power_spectrogram(clip, n_fft, hop)[0]
    padded = np.pad(clip.astype(np.float64), n_fft // 2)             # centred frames, zeros
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann
    frames = [padded[s:s + n_fft] * window for s in range(0, len(padded) - n_fft + 1, hop)]
    ref = np.abs(np.fft.rfft(np.array(frames), axis=1)).T ** 2
    assert got.shape == (n_fft // 2 + 1, 1 + len(clip) // hop) == ref.shape
    assert np.allclose(got, ref, rtol=1e-3, atol=1e-3)


def test_log_mel_matches_librosa_and_keeps_loudness(world):
    import librosa

    clips = world.audio[:3]
    got = A.log_mel(clips, SR, n_mels=32, n_fft=512, hop_length=160)
    assert got.shape == (3, 32, 1 + clips.shape[1] // 160) and got.dtype == np.float32
    for c, g in zip(clips, got):
        mel = librosa.feature.melspectrogram(y=c, sr=SR, n_fft=512, hop_length=160, n_mels=32,
                                             pad_mode="constant")
        ref = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None)
        assert np.allclose(g, ref, atol=1e-3)
    quiet = A.log_mel(clips[:1] * 0.1, SR)
    assert np.allclose(quiet, np.maximum(A.log_mel(clips[:1], SR) - 20, A.FLOOR_DB), atol=1e-2)


def test_silence_gives_finite_features_and_nan_pitch():
    silent = np.zeros((2, 8000), np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mel = A.log_mel(silent, SR)
        mf = A.mfcc_with_deltas(silent, SR)
        feats = A.clip_features(silent, SR)
        f0, prob = A.pitch_track(silent, SR)
        med = A.median_pitch(f0)
    assert np.all(mel == A.FLOOR_DB)
    assert np.isfinite(mf).all() and np.isfinite(feats).all()
    assert np.isnan(f0).all() and np.all(prob == 0) and np.isnan(med).all()


def test_short_clips_still_work():
    clip = _tone(300, 0.01)                       # 160 samples, shorter than n_fft
    assert A.log_mel(clip, SR).shape == (1, 64, 1)
    assert np.isfinite(A.mfcc_with_deltas(clip, SR)).all()
    assert A.clip_features(clip, SR).shape == (1, 60)


def test_deltas_of_a_ramp_are_its_slope():
    t = np.arange(40, dtype=np.float64)
    feats = np.stack([3.0 * t + 1, -0.5 * t])[None]          # [1, 2, 40], linear in time
    d = A.deltas(feats, order=1)
    assert np.allclose(d[0, 0], 3.0, atol=1e-4) and np.allclose(d[0, 1], -0.5, atol=1e-4)
    assert np.allclose(A.deltas(feats, order=2), 0, atol=1e-4)
    assert np.all(A.deltas(feats[..., :2]) == 0)


def test_mfcc_with_deltas_layout(world):
    import librosa
    import scipy.fft

    out = A.mfcc_with_deltas(world.audio[:2], SR, n_mfcc=13)
    assert out.shape == (2, 39, 1 + world.audio.shape[1] // 256)
    mel = A.log_mel(world.audio[:2], SR, n_mels=40)
    ref = scipy.fft.dct(mel.astype(np.float64), type=2, norm="ortho", axis=1)[:, :13]
    assert np.allclose(out[:, :13], ref, atol=1e-3)
    d_ref = librosa.feature.delta(ref, width=9, order=1, axis=-1)
    assert np.allclose(out[:, 13:26], d_ref, atol=1e-3)


@pytest.mark.slow
def test_pitch_of_tones_and_world_notes(one_object):
    from mmkit.data.sound import COLOUR_MIDI

    f0, prob = A.pitch_track(np.stack([_tone(440), _tone(261.63)]), SR)
    assert f0.shape == prob.shape == (2, 1 + 8000 // 256)
    assert np.allclose(A.hz_to_midi(A.median_pitch(f0)), [69, 60], atol=0.15)
    circles = [i for i in range(len(one_object)) if one_object.objects[i, 0, 0] == 0][:4]
    assert circles, "the fixture world should hold circles (pure tones)"
    midi = A.hz_to_midi(A.median_pitch(A.pitch_track(one_object.audio[circles], SR)[0]))
    truth = [COLOUR_MIDI[one_object.objects[i, 0, 1]] for i in circles]
    assert np.allclose(midi, truth, atol=0.5)
    assert np.isnan(A.hz_to_midi([0.0, np.nan])).all()


def test_clip_feature_groups_cover_all_columns(world):
    feats = A.clip_features(world.audio[:4], SR)
    groups = A.clip_feature_groups()
    cols = np.concatenate([np.arange(feats.shape[1])[s] for s in groups.values()])
    assert np.array_equal(np.sort(cols), np.arange(feats.shape[1]))
    chroma = feats[:, groups["chroma"]]
    assert np.all(chroma >= 0) and np.all(chroma <= 1 + 1e-6)


# ------------------------------------------------------------------ retrieval helpers
def _naive_ap(scores_row: np.ndarray, rel_row: np.ndarray) -> float:
    order = sorted(range(len(scores_row)), key=lambda j: (-scores_row[j], j))
    hits, total = 0, 0.0
    for rank, j in enumerate(order, start=1):
        if rel_row[j]:
            hits += 1
            total += hits / rank
    return total / max(1, rel_row.sum())


def test_self_retrieval_matches_a_naive_loop():
    rng = np.random.default_rng(3)
    feats = rng.standard_normal((30, 5))
    labels = rng.integers(0, 4, 30)
    got = A.self_retrieval(feats, labels, standardize=False)
    x = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    aps, p10 = [], []
    for q in range(30):
        others = [j for j in range(30) if j != q]
        s = np.array([x[q] @ x[j] for j in others])
        rel = np.array([labels[j] == labels[q] for j in others])
        aps.append(_naive_ap(s, rel))
        top = np.argsort(-s, kind="stable")[:10]
        p10.append(rel[top].sum() / 10)
    assert got["mAP"] == pytest.approx(np.mean(aps), abs=1e-6)
    assert got["P@10"] == pytest.approx(np.mean(p10), abs=1e-6)
    chance = A.chance_retrieval(labels, draws=200)
    counts = np.bincount(labels)
    assert chance["P@10"] == pytest.approx(np.mean((counts[labels] - 1) / 29), abs=0.01)
    with pytest.raises(InputError, match="labels"):
        A.self_retrieval(feats, labels[:5])


# ------------------------------------------------------------------ the CNN
def _model(**kw):
    from mmkit.features.audio_cnn import LogMelCNN

    torch.manual_seed(0)
    return LogMelCNN(n_mels=kw.pop("n_mels", 32), out_dim=16, **kw).eval()


def test_logmel_cnn_takes_any_length_and_batches_consistently():
    from mmkit.features.audio_cnn import embed_log_mels

    model = _model()
    for t in (1, 7, 8, 63, 200):
        assert model(torch.randn(2, 1, 32, t)).shape == (2, 16)
    rng = np.random.default_rng(4)
    mels = [rng.normal(-50, 10, (32, t)).astype(np.float32) for t in (40, 90, 40, 90, 17)]
    alone = np.stack([embed_log_mels(model, [m])[0] for m in mels])
    pairs = embed_log_mels(model, mels, batch_size=2)   # by length: [90, 90] [40, 40] [17]
    assert np.allclose(pairs, alone, atol=1e-5)         # no padding: exactly as alone
    padded = embed_log_mels(model, mels, batch_size=5)  # all padded to 90 frames
    cos = (padded * alone).sum(1) / np.linalg.norm(padded, axis=1) / np.linalg.norm(alone, axis=1)
    assert cos[[0, 2]].min() > 0.98                     # masked pooling: border effects only
    shuffled = embed_log_mels(model, mels[::-1], batch_size=2)
    assert np.allclose(shuffled[::-1], pairs, atol=1e-5)
    with pytest.raises(InputError, match=r"\[N, 1, 32, T\]"):
        model(torch.zeros(2, 32, 10))
    with pytest.raises(InputError, match="log-mel 1"):
        embed_log_mels(model, [mels[0], np.zeros((20, 5), np.float32)])


def test_embed_audio_resamples_and_accepts_lists(world):
    from mmkit.features.audio_cnn import embed_audio

    model = _model(n_mels=64)
    clips = world.audio[:3]
    direct = embed_audio(model, clips, SR)
    as_list = embed_audio(model, list(clips), SR)
    assert direct.shape == (3, 16) and direct.dtype == np.float32
    assert np.allclose(direct, as_list, atol=1e-5)
    import librosa

    at_8k = librosa.resample(clips, orig_sr=SR, target_sr=8000)
    back = np.stack([A.prepare_audio(c, 8000, SR) for c in at_8k])
    assert np.allclose(embed_audio(model, at_8k, 8000), embed_audio(model, back, SR), atol=1e-5)
    stereo16 = (np.stack([clips[0], clips[0]]) * 32767).astype(np.int16)
    mono = A.prepare_audio(stereo16, SR, SR)
    assert np.allclose(embed_audio(model, [mono], SR), direct[:1], atol=1e-2)
    with pytest.raises(InputError, match="NaN"):
        embed_audio(model, np.full((1, 100), np.nan, np.float32), SR)
    with pytest.raises(InputError, match="no clips"):
        embed_audio(model, [], SR)


@pytest.mark.slow
def test_sound_trainer_learns_and_checkpoint_round_trips(tmp_path, monkeypatch):
    from mmkit import checkpoints as C
    from mmkit.features.audio_cnn import CHECKPOINTS

    monkeypatch.setenv("MMKIT_DATA", str(tmp_path / "data"))
    spec = CHECKPOINTS["audio_cnn_sound"]
    config = {**spec.config, "world_n": 150, "epochs": 4, "channels": [8, 8, 16], "out_dim": 32}
    torch.manual_seed(0)
    trained = spec.train(config, False)
    history = trained.data["loss_history"]
    assert history[-1] < history[0]
    assert trained.data["world"]["seed"] != 0
    C.save(trained, spec, config, tmp_path, 1.0, 0)
    model, manifest = C.read(spec, tmp_path, config)
    for k, v in trained.model.state_dict().items():
        assert torch.equal(v, model.state_dict()[k]), k
    assert manifest["metrics"] == trained.metrics


@pytest.mark.slow
def test_speech_trainer_learns_and_checkpoint_round_trips(tmp_path, monkeypatch):
    from mmkit import checkpoints as C
    from mmkit.features.audio_cnn import CHECKPOINTS

    monkeypatch.setenv("MMKIT_DATA", str(tmp_path / "data"))
    spec = CHECKPOINTS["audio_cnn_speech"]
    config = {**spec.config, "world_n": 24, "epochs": 4, "channels": [8, 8, 16], "out_dim": 32}
    torch.manual_seed(0)
    trained = spec.train(config, False)
    history = trained.data["loss_history"]
    assert history[-1] < history[0]
    C.save(trained, spec, config, tmp_path, 1.0, 0)
    model, _ = C.read(spec, tmp_path, config)
    for k, v in trained.model.state_dict().items():
        assert torch.equal(v, model.state_dict()[k]), k


@pytest.mark.parametrize("name", ["audio_cnn_sound", "audio_cnn_speech"])
def test_committed_checkpoints_load(name):
    from mmkit import checkpoints as C

    spec = C.get_spec(name)
    if not (C.PACKAGE_DIR / f"{name}.safetensors").is_file():
        pytest.skip(f"{name} not trained yet")
    model, manifest = C.read(spec, C.PACKAGE_DIR)
    assert manifest["training_data"]["world"]["seed"] != 0
    assert (C.PACKAGE_DIR / f"{name}.safetensors").stat().st_size < 5_000_000
    x = torch.full((1, 1, model.n_mels, 50), -60.0)
    assert model(x).shape == (1, model.out_dim)


# ------------------------------------------------------------------ speech and its cache
def test_speech_log_mels_match_world_speech_and_cache(world, tmp_path, monkeypatch):
    from mmkit.features import audio_cnn as C

    monkeypatch.setenv("MMKIT_DATA", str(tmp_path))
    caps = [0, 1, 5, 9]
    mel = C.SPEECH_MEL
    first = C.world_speech_log_mels(world, caps, workers=2)
    for j, m in zip(caps, first):
        ref = A.log_mel(world.speech(j), SR, **mel)[0]
        assert m.shape == ref.shape and np.abs(m - ref).max() < 0.06   # float16 storage
    files = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len(files) == 2
    serial = C.synthesise_log_mels([world.captions[j] for j in caps],
                                   [world.speaker_of(j) for j in caps], SR, workers=1)
    assert all(np.array_equal(a, b) for a, b in zip(serial, C.synthesise_log_mels(
        [world.captions[j] for j in caps], [world.speaker_of(j) for j in caps], SR, workers=2)))
    again = C.world_speech_log_mels(world, caps)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert len(list((tmp_path / "cache").iterdir())) == 2          # served from the cache
    other = C.speech_log_mels([world.captions[j] for j in caps],
                              [(world.speaker_of(j) + 1) % 6 for j in caps], SR)
    assert len(list((tmp_path / "cache").iterdir())) == 4          # other speakers: new key
    assert any(a.shape != b.shape or not np.allclose(a, b) for a, b in zip(first, other))
    C.speech_log_mels([world.captions[j] for j in caps], [world.speaker_of(j) for j in caps],
                      SR, mel={**mel, "n_mels": 20})
    assert len(list((tmp_path / "cache").iterdir())) == 6          # other config: new key
    with pytest.raises(InputError, match="empty"):
        C.speech_log_mels(["a red star", "  "], [0, 1], SR, cache=False)
    with pytest.raises(InputError, match="speakers"):
        C.speech_log_mels(["a red star"], [0, 1], SR, cache=False)


# ------------------------------------------------------------------ exercise checkers
def test_check_note_colour_against_fft_peak(one_object):
    from mmkit.data import vocab as V
    from mmkit.data.sound import COLOUR_MIDI
    from mmkit.exercises import nb03

    scene = next(i for i in range(len(one_object)) if one_object.objects[i, 0, 0] == 0)
    clip = one_object.audio[scene]                     # a circle: nearly a pure tone
    spec = np.abs(np.fft.rfft(clip * np.hanning(len(clip))))
    hz = np.argmax(spec) * SR / len(clip)
    midi = 69 + 12 * np.log2(hz / 440)
    answer = V.COLOURS[int(np.argmin([abs(midi - m) for m in COLOUR_MIDI]))]
    assert nb03.check_note_colour(one_object, scene, answer)
    assert nb03.check_note_colour(one_object, scene, answer.upper() + " ")
    wrong = next(c for c in V.COLOURS if c != answer)
    fb = nb03.check_note_colour(one_object, scene, wrong)
    assert not fb and "COLOUR_MIDI" in fb.message
    assert "not a colour" in nb03.check_note_colour(one_object, scene, "mauve").message
    assert not nb03.check_note_colour(one_object, scene, None)


def test_check_frame_count_against_librosa():
    import librosa

    from mmkit.exercises import nb03

    frames = librosa.feature.melspectrogram(y=np.zeros(nb03.FRAMES_SAMPLES, np.float32), sr=SR,
                                            hop_length=nb03.FRAMES_HOP).shape[-1]
    assert nb03.check_frame_count(frames)
    assert nb03.check_frame_count(np.int64(frames))
    fb = nb03.check_frame_count(frames - 1)
    assert not fb and "center=True" in fb.message
    assert not nb03.check_frame_count(frames + 5)
    assert not nb03.check_frame_count(93.5)
    assert not nb03.check_frame_count(None)


def test_check_chance_p10_against_brute_force(world):
    from mmkit.exercises import nb03

    images = world.indices("train")
    labels = world.labels[images]
    n = len(images)
    per_query = []
    for q in range(n):
        positives = sum(1 for g in range(n) if g != q and labels[g] == labels[q])
        per_query.append(positives / (n - 1))
    expected = float(np.mean(per_query))
    assert nb03.check_chance_p10(world, images, expected)
    rng = np.random.default_rng(5)                   # Monte Carlo agrees too
    hits = []
    for _ in range(300):
        q = rng.integers(n)
        others = np.delete(np.arange(n), q)
        top = rng.choice(others, 10, replace=False)
        hits.append(np.mean(labels[top] == labels[q]))
    assert abs(np.mean(hits) - expected) < 0.02
    with_self = float(np.mean([np.sum(labels == labels[q]) / n for q in range(n)]))
    fb = nb03.check_chance_p10(world, images, with_self)
    assert not fb and "own gallery" in fb.message
    assert not nb03.check_chance_p10(world, images, 0.5)
    assert not nb03.check_chance_p10(world, images, "a lot")
    assert not nb03.check_chance_p10(world, images, None)
