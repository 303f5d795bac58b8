"""Audio features with librosa: MFCC, chroma, spectral shape, loudness, zero-crossing rate.

librosa compiles parts of itself with numba on the first call in a fresh environment (about
15 s); later calls are fast. :func:`warm_up` does that once on a tiny clip.
"""
from __future__ import annotations

import numpy as np


def warm_up(sr: int = 16000) -> None:
    """Trigger librosa's one-time numba compilation on a 0.1 s clip."""
    clip_features(np.zeros((1, sr // 10), np.float32), sr)


def clip_features(clips: np.ndarray, sr: int, n_mfcc: int = 20) -> np.ndarray:
    """Summary statistics of frame features per clip: float32 [N, 2 * n_mfcc + 12 + 8].

    Per clip: mean and std of ``n_mfcc`` MFCCs, mean chroma (12 pitch classes), and mean/std
    of spectral centroid, bandwidth, RMS loudness and zero-crossing rate.

    Args:
        clips: float [N, T] mono waveforms at ``sr`` Hz (one [T] clip is accepted).
    """
    import librosa

    clips = np.asarray(clips, dtype=np.float32)
    if clips.ndim == 1:
        clips = clips[None]
    if clips.ndim != 2:
        raise ValueError(f"clips must be [N, T], got shape {clips.shape}")
    n_fft = 512 if sr <= 16000 else 1024
    hop = n_fft // 4
    spec = np.abs(librosa.stft(clips, n_fft=n_fft, hop_length=hop)) ** 2   # [N, F, frames]
    mel = librosa.feature.melspectrogram(S=spec, sr=sr, n_mels=40)
    mfcc = librosa.feature.mfcc(S=librosa.power_to_db(mel), n_mfcc=n_mfcc)
    chroma = librosa.feature.chroma_stft(S=spec, sr=sr, n_fft=n_fft, tuning=0.0)
    centroid = librosa.feature.spectral_centroid(S=np.sqrt(spec), sr=sr, n_fft=n_fft) / (sr / 2)
    bandwidth = librosa.feature.spectral_bandwidth(S=np.sqrt(spec), sr=sr, n_fft=n_fft) / (sr / 2)
    rms = librosa.feature.rms(S=np.sqrt(spec), frame_length=n_fft)
    zcr = librosa.feature.zero_crossing_rate(clips, frame_length=n_fft, hop_length=hop)
    parts = [mfcc.mean(-1), mfcc.std(-1), chroma.mean(-1)]
    for f in (centroid, bandwidth, rms, zcr):
        parts += [f.mean(-1), f.std(-1)]
    return np.concatenate(parts, axis=1).astype(np.float32)
