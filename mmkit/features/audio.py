"""Audio features with librosa: waveforms in, log-mel, MFCC (+ deltas), pitch, chroma, timbre out.

Conventions (every function here):

- **Batched mono input**: ``clips`` is float [N, T] (one [T] clip is accepted as N = 1) at
  ``sr`` Hz. int16 samples are scaled by 1/32768 and int32 by 1/2**31 (the WAV conventions);
  other dtypes are converted to float32. Empty clips (T = 0), no clips (N = 0), NaN or inf
  samples and other shapes raise a one-line :class:`~mmkit.errors.InputError`.
- **Stereo and other sample rates** are converted by :func:`prepare_audio` (and
  :func:`load_audio`): multichannel [C, T] or [T, C] audio (C <= 8, the shorter axis) is
  averaged to mono, then resampled with librosa (soxr) to the rate you ask for. The batched
  functions never guess: a [2, T] array there is two mono clips.
- **Silence**: an all-zero clip gives finite features everywhere (log-mel at the floor of
  -100 dB, MFCCs and deltas finite, zero spectral centroid); its pitch is undefined, so
  :func:`pitch_track` returns NaN for every frame and :func:`median_pitch` returns NaN.

librosa compiles parts of itself with numba on the first call in a fresh environment (about
15 s); later calls are fast. :func:`warm_up` does that once on a tiny clip.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mmkit.errors import InputError
from mmkit.features.similarity import cosine_scores  # noqa: F401 - re-exported
from mmkit.metrics import average_precision, map_at_r, precision_at_k
from mmkit.validate import integer

#: log-mel floor in dB (power 1e-10): silent frames sit here, never at -inf
FLOOR_DB = -100.0
_MAX_CHANNELS = 8


# ------------------------------------------------------------------ input checks and conversion
def _to_float(x: Any, name: str) -> np.ndarray:
    """numpy float32 from an array / tensor / list; int16 and int32 PCM are scaled to [-1, 1)."""
    if type(x).__module__.startswith("torch"):
        x = x.detach().cpu().numpy()
    a = np.asarray(x)
    if a.dtype == np.int16:
        return a.astype(np.float32) / 32768.0
    if a.dtype == np.int32:
        return (a.astype(np.float64) / 2.0 ** 31).astype(np.float32)
    if a.dtype.kind not in "fiub":
        raise InputError(f"{name}: audio samples must be numbers, got dtype {a.dtype}")
    return a.astype(np.float32, copy=False)


def _check_finite(a: np.ndarray, name: str) -> None:
    if a.size and not np.isfinite(a).all():
        bad = np.argwhere(~np.isfinite(a))[0]
        where = ", ".join(str(int(i)) for i in bad)
        raise InputError(f"{name}: NaN or inf sample at index [{where}]")


def check_clips(clips: Any, name: str = "clips") -> np.ndarray:
    """Validate batched mono audio: float32 [N, T] (a [T] clip becomes [1, T]).

    Raises :class:`~mmkit.errors.InputError` (one line) for other shapes, no clips, empty
    clips, non-numeric dtypes and NaN/inf samples. int16/int32 PCM is scaled to [-1, 1).
    """
    a = _to_float(clips, name)
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2:
        raise InputError(f"{name} must be mono waveforms [N, T] (or one clip [T]), got shape "
                         f"{a.shape}; downmix stereo with prepare_audio")
    if a.shape[0] == 0:
        raise InputError(f"{name}: no clips (shape {a.shape})")
    if a.shape[1] == 0:
        raise InputError(f"{name}: empty audio (0 samples)")
    _check_finite(a, name)
    return np.ascontiguousarray(a)


def _check_rate(sr: Any, name: str = "sr") -> int:
    return integer(sr, name, low=1000)


def prepare_audio(clip: Any, sr_in: int, sr_out: int = 16000, name: str = "clip") -> np.ndarray:
    """One recording, made ready for the feature functions: float32 mono [T'] at ``sr_out``.

    Args:
        clip: [T] mono, or multichannel [C, T] (channels first, as librosa) or [T, C]
            (channels last, as soundfile / scipy.io.wavfile) with C <= 8 on the shorter axis;
            the channels are averaged (downmix). int16 / int32 PCM is scaled to [-1, 1).
        sr_in: the clip's sample rate; sr_out: the rate wanted (resampled with librosa's
            soxr_hq when they differ, T' = ceil(T * sr_out / sr_in)).

    Raises :class:`~mmkit.errors.InputError` for empty audio, NaN/inf samples, more than
    two dimensions or no recognisable channel axis.
    """
    sr_in, sr_out = _check_rate(sr_in, "sr_in"), _check_rate(sr_out, "sr_out")
    a = _to_float(clip, name)
    if a.ndim == 2:
        c_first, c_last = a.shape
        if c_first <= min(_MAX_CHANNELS, c_last):
            a = a.mean(axis=0)
        elif c_last <= _MAX_CHANNELS:
            a = a.mean(axis=1)
        else:
            raise InputError(f"{name}: shape {a.shape} is neither [C, T] nor [T, C] with at most "
                             f"{_MAX_CHANNELS} channels")
    elif a.ndim != 1:
        raise InputError(f"{name} must be [T], [C, T] or [T, C], got shape {a.shape}")
    if a.size == 0:
        raise InputError(f"{name}: empty audio (0 samples)")
    _check_finite(a, name)
    if sr_in != sr_out:
        import librosa

        a = librosa.resample(a, orig_sr=sr_in, target_sr=sr_out, res_type="soxr_hq")
    return np.ascontiguousarray(a, dtype=np.float32)


def load_audio(path: str | Path, sr: int = 16000) -> np.ndarray:
    """Read a sound file (WAV, FLAC, OGG, ... via soundfile): float32 mono [T] at ``sr`` Hz
    (downmixed and resampled by :func:`prepare_audio`). A missing or unreadable file raises a
    one-line :class:`~mmkit.errors.InputError` naming it."""
    import soundfile

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such audio file")
    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=False)
    except (RuntimeError, soundfile.LibsndfileError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{path}: cannot read audio ({first})") from None
    return prepare_audio(data, int(rate), sr, name=path.name)


def warm_up(sr: int = 16000) -> None:
    """Trigger librosa's one-time numba compilation on a 0.1 s clip (about 15 s the first
    time in a fresh environment)."""
    clip_features(np.zeros((1, sr // 10), np.float32), sr)


# ------------------------------------------------------------------ spectral representations
def _pad_to(clips: np.ndarray, n: int) -> np.ndarray:
    """Zero-pad clips shorter than ``n`` samples (so that an n-sample window fits)."""
    if clips.shape[1] >= n:
        return clips
    return np.pad(clips, ((0, 0), (0, n - clips.shape[1])))


def n_frames(n_samples: int, hop_length: int) -> int:
    """Frames of a centred STFT (librosa's default): ``1 + n_samples // hop_length``."""
    return 1 + int(n_samples) // int(hop_length)


def power_spectrogram(clips: Any, n_fft: int = 1024, hop_length: int = 256) -> np.ndarray:
    """|STFT|^2 with a Hann window, centred frames: float32 [N, 1 + n_fft // 2, frames],
    frames = 1 + T // hop_length (clips shorter than ``n_fft`` are zero-padded to it)."""
    import librosa

    clips = check_clips(clips)
    t = clips.shape[1]
    spec = np.abs(librosa.stft(_pad_to(clips, n_fft), n_fft=n_fft, hop_length=hop_length)) ** 2
    return spec[..., :n_frames(t, hop_length)].astype(np.float32)


def log_mel(clips: Any, sr: int, n_mels: int = 64, n_fft: int = 1024, hop_length: int = 256,
            fmin: float = 0.0, fmax: float | None = None) -> np.ndarray:
    """Log-mel spectrogram in dB: float32 [N, n_mels, 1 + T // hop_length].

    Power mel spectrogram (Slaney mel filters, as librosa) converted with a FIXED reference
    (10 log10(power), power 1 = 0 dB) and floored at :data:`FLOOR_DB`, so loudness survives
    (a louder clip is brighter; librosa's ``ref=np.max`` would normalise it away) and silence
    is finite.
    """
    import librosa

    sr = _check_rate(sr)
    spec = power_spectrogram(clips, n_fft, hop_length)
    mel = librosa.feature.melspectrogram(S=spec, sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin,
                                         fmax=fmax)
    return power_to_db(mel)


def power_to_db(power: np.ndarray) -> np.ndarray:
    """10 log10(power) with power floored at 1e-10 (:data:`FLOOR_DB`); float32, same shape."""
    db = 10.0 * np.log10(np.maximum(np.asarray(power, np.float64), 10.0 ** (FLOOR_DB / 10)))
    return np.maximum(db, FLOOR_DB).astype(np.float32)


def deltas(features: np.ndarray, order: int = 1, width: int = 9) -> np.ndarray:
    """Savitzky-Golay time derivative (librosa.feature.delta) along the last axis, same shape.

    ``width`` shrinks to the largest odd number <= frames for short inputs; fewer than 3
    frames give zeros (no slope can be fitted).
    """
    import librosa

    frames = features.shape[-1]
    w = min(width, frames if frames % 2 else frames - 1)
    if w < 3:
        return np.zeros_like(features, dtype=np.float32)
    return librosa.feature.delta(features, width=w, order=order, axis=-1).astype(np.float32)


def mfcc_with_deltas(clips: Any, sr: int, n_mfcc: int = 20, n_mels: int = 40,
                     n_fft: int = 1024, hop_length: int = 256, width: int = 9) -> np.ndarray:
    """MFCCs with their first and second time derivatives: float32 [N, 3 * n_mfcc, frames].

    Rows 0..n_mfcc-1 are the MFCCs (DCT-II, orthonormal, of the :func:`log_mel` in dB), then
    the deltas, then the delta-deltas (:func:`deltas`, ``width`` frames).
    """
    import librosa

    mel_db = log_mel(clips, sr, n_mels=n_mels, n_fft=n_fft, hop_length=hop_length)
    mfcc = librosa.feature.mfcc(S=mel_db, n_mfcc=n_mfcc).astype(np.float32)
    return np.concatenate([mfcc, deltas(mfcc, 1, width), deltas(mfcc, 2, width)], axis=1)


# ------------------------------------------------------------------ pitch
def pitch_track(clips: Any, sr: int, fmin: float = 80.0, fmax: float = 1600.0,
                frame_length: int = 1024, hop_length: int = 256
                ) -> tuple[np.ndarray, np.ndarray]:
    """Fundamental frequency by probabilistic YIN (librosa.pyin).

    Returns ``(f0, voiced_prob)``, both float32 [N, 1 + T // hop_length]: f0 in Hz, **NaN in
    unvoiced frames** (silence gives NaN everywhere, never an error), and the probability
    that each frame is voiced. The default range (80-1600 Hz) covers speech and the world's
    notes (A3 = 220 Hz to G5 = 784 Hz).
    """
    import librosa

    sr = _check_rate(sr)
    clips = check_clips(clips)
    t = clips.shape[1]
    f0 = np.full((len(clips), n_frames(t, hop_length)), np.nan, np.float32)
    prob = np.zeros_like(f0)
    loud = np.abs(clips).max(axis=1) > 0        # pyin divides by the signal energy: skip silence
    if loud.any():
        with np.errstate(divide="ignore", invalid="ignore"):
            f, _, p = librosa.pyin(_pad_to(clips[loud], frame_length), fmin=fmin, fmax=fmax,
                                   sr=sr, frame_length=frame_length, hop_length=hop_length)
        f0[loud] = f[..., :f0.shape[1]]
        prob[loud] = np.nan_to_num(p[..., :f0.shape[1]])
    return f0, prob


def median_pitch(f0: np.ndarray) -> np.ndarray:
    """Median f0 over the voiced (non-NaN) frames, float64 [N] (NaN for a clip with none)."""
    f0 = np.atleast_2d(np.asarray(f0, np.float64))
    out = np.full(len(f0), np.nan)
    for i, row in enumerate(f0):
        voiced = row[np.isfinite(row)]
        if voiced.size:
            out[i] = np.median(voiced)
    return out


def hz_to_midi(hz: Any) -> np.ndarray:
    """MIDI note numbers (A4 = 69 = 440 Hz) of frequencies; NaN stays NaN, float64."""
    hz = np.asarray(hz, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(hz > 0, 69 + 12 * np.log2(hz / 440.0), np.nan)


# ------------------------------------------------------------------ clip-level statistics
def clip_feature_groups(n_mfcc: int = 20) -> dict[str, slice]:
    """Columns of :func:`clip_features` by family: ``mfcc`` (means and stds), ``chroma``
    (12 pitch classes) and ``spectral`` (centroid, bandwidth, RMS, zero-crossing rate)."""
    return {"mfcc": slice(0, 2 * n_mfcc), "chroma": slice(2 * n_mfcc, 2 * n_mfcc + 12),
            "spectral": slice(2 * n_mfcc + 12, 2 * n_mfcc + 20)}


def clip_features(clips: np.ndarray, sr: int, n_mfcc: int = 20) -> np.ndarray:
    """Summary statistics of frame features per clip: float32 [N, 2 * n_mfcc + 12 + 8].

    Per clip: mean and std of ``n_mfcc`` MFCCs, mean chroma (12 pitch classes), and mean/std
    of spectral centroid, bandwidth, RMS loudness and zero-crossing rate (column groups:
    :func:`clip_feature_groups`).

    Args:
        clips: float [N, T] mono waveforms at ``sr`` Hz (one [T] clip is accepted; see
            :func:`check_clips` for what is refused).
    """
    import librosa

    clips = check_clips(clips)
    n_fft = 512 if sr <= 16000 else 1024
    hop = n_fft // 4
    clips = _pad_to(clips, n_fft)
    spec = np.abs(librosa.stft(clips, n_fft=n_fft, hop_length=hop)) ** 2   # [N, F, frames]
    mel = librosa.feature.melspectrogram(S=spec, sr=sr, n_mels=40)
    mfcc = librosa.feature.mfcc(S=librosa.power_to_db(mel), n_mfcc=n_mfcc)
    with np.errstate(divide="ignore", invalid="ignore"):   # silent frames: chroma 0/0
        chroma = librosa.feature.chroma_stft(S=spec, sr=sr, n_fft=n_fft, tuning=0.0)
    chroma = np.nan_to_num(chroma)
    centroid = librosa.feature.spectral_centroid(S=np.sqrt(spec), sr=sr, n_fft=n_fft) / (sr / 2)
    bandwidth = librosa.feature.spectral_bandwidth(S=np.sqrt(spec), sr=sr, n_fft=n_fft) / (sr / 2)
    rms = librosa.feature.rms(S=np.sqrt(spec), frame_length=n_fft)
    zcr = librosa.feature.zero_crossing_rate(clips, frame_length=n_fft, hop_length=hop)
    parts = [mfcc.mean(-1), mfcc.std(-1), chroma.mean(-1)]
    for f in (centroid, bandwidth, rms, zcr):
        parts += [f.mean(-1), f.std(-1)]
    return np.nan_to_num(np.concatenate(parts, axis=1)).astype(np.float32)


# ------------------------------------------------------------------ retrieval with features
def standardise(features: np.ndarray) -> np.ndarray:
    """z-score every column over the rows (constant columns become 0): float32 [N, D]."""
    x = np.asarray(features, np.float64)
    std = x.std(axis=0)
    return ((x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)).astype(np.float32)




def self_retrieval(features: np.ndarray, labels: np.ndarray, k: int = 10,
                   standardize: bool = True) -> dict[str, float]:
    """Query every item against all the others (cosine; itself excluded); positives are the
    items with the same label. Returns ``{"mAP", "MAP@R", "P@10"}`` (P@k for the given k).

    Args:
        features: float [N, D]; labels: [N] (class id, image id, speaker...);
        standardize: z-score the columns first (handcrafted features of mixed units).
    """
    x = standardise(features) if standardize else np.asarray(features, np.float32)
    labels = np.asarray(labels)
    if len(labels) != len(x):
        raise InputError(f"labels: {len(labels)} labels for {len(x)} feature rows")
    return _metrics(cosine_scores(x), labels, k)


def _metrics(scores: np.ndarray, labels: np.ndarray, k: int) -> dict[str, float]:
    rel = (labels[:, None] == labels[None, :]).astype(np.int8)
    np.fill_diagonal(rel, 0)
    return {"mAP": float(average_precision(scores, rel).mean()),
            "MAP@R": float(map_at_r(scores, rel).mean()),
            f"P@{k}": float(precision_at_k(scores, rel, k).mean())}


def chance_retrieval(labels: np.ndarray, k: int = 10, draws: int = 20,
                     seed: int = 0) -> dict[str, float]:
    """The metrics of :func:`self_retrieval` for random rankings, averaged over ``draws``
    seeded random score matrices (the P@k of chance is exactly the mean of R / (N - 1))."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    runs = []
    for _ in range(draws):
        s = rng.random((len(labels), len(labels)))
        np.fill_diagonal(s, -np.inf)
        runs.append(_metrics(s, labels, k))
    return {m: float(np.mean([r[m] for r in runs])) for m in runs[0]}
