"""Offline speech synthesis with espeak-ng (bundled by the ``espeakng-loader`` package).

Spoken captions for the speech -> image chapter. espeak-ng is driven through ctypes in
synchronous "retrieval" mode: the library hands us the samples through a callback, nothing is
played and nothing is downloaded.
"""
from __future__ import annotations

import ctypes
import os
import threading
from pathlib import Path

import numpy as np

from mmkit.errors import MMKitError

#: espeak-ng always synthesises at this rate
ESPEAK_RATE = 22050
#: voices (language + voice variant) used for the world's "speakers"
VOICES: tuple[str, ...] = ("en-us", "en-us+f2", "en+m3", "en+f4", "en-us+m7", "en+f3")

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_ESPEAK_CHARS_UTF8 = 1
_PARAM_RATE, _PARAM_PITCH = 1, 3
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.c_void_p)


class SpeechUnavailable(MMKitError, RuntimeError):
    """espeak-ng could not be loaded or initialised."""


class _Espeak:
    """Process-wide espeak-ng handle (the C library keeps global state: one lock guards it)."""

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError as exc:  # pragma: no cover - a declared dependency
            raise SpeechUnavailable("speech needs the 'espeakng-loader' package") from exc
        lib_path = espeakng_loader.get_library_path()
        data_path = Path(espeakng_loader.get_data_path())
        try:
            self.lib = ctypes.CDLL(lib_path)
        except OSError as exc:  # pragma: no cover - depends on the platform wheel
            raise SpeechUnavailable(f"cannot load {lib_path}: {exc}") from exc
        self.lib.espeak_Initialize.restype = ctypes.c_int
        self.lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p,
                                               ctypes.c_int]
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self.lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self.lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint,
                                          ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
                                          ctypes.c_void_p, ctypes.c_void_p]
        rate = self.lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0,
                                          str(data_path.parent).encode(), 0)
        if rate <= 0:
            raise SpeechUnavailable(f"espeak-ng failed to initialise with data at {data_path}")
        self.rate = rate
        self._chunks: list[np.ndarray] = []
        self._callback = _CALLBACK(self._collect)  # keep a reference: C holds a raw pointer
        self.lib.espeak_SetSynthCallback(self._callback)
        self.lock = threading.Lock()

    def _collect(self, wav, n, events) -> int:  # noqa: ANN001 - ctypes callback
        if n > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        return 0

    def synth(self, text: str, voice: str, rate_wpm: int, pitch: int) -> np.ndarray:
        data = text.encode("utf-8") + b"\0"
        with self.lock:
            self._chunks = []
            if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise SpeechUnavailable(f"espeak-ng has no voice {voice!r}")
            self.lib.espeak_SetParameter(_PARAM_RATE, rate_wpm, 0)
            self.lib.espeak_SetParameter(_PARAM_PITCH, pitch, 0)
            buf = ctypes.create_string_buffer(data)
            self.lib.espeak_ng_SetRandSeed(ctypes.c_long(1))
            err = self.lib.espeak_Synth(buf, len(data), 0, _POS_CHARACTER, 0,
                                        _ESPEAK_CHARS_UTF8, None, None)
            if err != 0:
                raise SpeechUnavailable(f"espeak-ng failed to speak {text!r} (error {err})")
            chunks, self._chunks = self._chunks, []
        pcm = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
        return (pcm.astype(np.float32) / 32768.0)


_ENGINE: _Espeak | None = None


def _synth_in_child(text: str, voice: str, rate_wpm: int, pitch: int) -> np.ndarray:
    """Run one synthesis in a forked child (fresh engine state) and read the samples back."""
    engine = _engine()  # initialise (but never speak) in the parent: the child inherits it
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        status = 0
        try:
            os.close(read_fd)
            wav = engine.synth(text, voice, rate_wpm, pitch)
            data = wav.astype("<f4").tobytes()
            view = memoryview(data)
            while view:
                view = view[os.write(write_fd, view):]
        except BaseException:  # noqa: BLE001 - report through the exit status
            status = 1
        finally:
            os._exit(status)
    os.close(write_fd)
    chunks = []
    with os.fdopen(read_fd, "rb") as pipe:
        while chunk := pipe.read(1 << 16):
            chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    if status != 0:
        raise SpeechUnavailable(f"espeak-ng failed to speak {text!r} with voice {voice!r}")
    return np.frombuffer(b"".join(chunks), dtype="<f4").astype(np.float32)


def _engine() -> _Espeak:
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = _Espeak()
    return _ENGINE


def speech_available() -> bool:
    """True when espeak-ng loads on this machine."""
    try:
        _engine()
    except SpeechUnavailable:
        return False
    return True


def speak(text: str, speaker: int = 0, sr: int = 16000, rate_wpm: int = 165,
          pitch: int = 50) -> np.ndarray:
    """Speak ``text`` with one of the :data:`VOICES`; float32 mono [T] at ``sr`` Hz.

    The same arguments give the same samples in any process and in any order of calls.
    espeak-ng keeps state from one utterance to the next (its pitch "flutter" runs on), so on
    POSIX systems each utterance is synthesised in a forked child whose engine has never spoken;
    elsewhere it runs in-process, where repeated calls may differ by a few milliseconds.
    """
    if not text.strip():
        raise ValueError("speak: empty text")
    voice = VOICES[speaker % len(VOICES)]
    if hasattr(os, "fork"):
        wav = _synth_in_child(text, voice, rate_wpm, pitch)
    else:  # pragma: no cover - Windows
        wav = _engine().synth(text, voice, rate_wpm, pitch)
    if sr != ESPEAK_RATE:
        from math import gcd

        from scipy.signal import resample_poly

        g = gcd(sr, ESPEAK_RATE)
        wav = resample_poly(wav, sr // g, ESPEAK_RATE // g).astype(np.float32)
    return wav
