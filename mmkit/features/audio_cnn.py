"""A small log-mel CNN for sound clips and spoken captions, and a cache of speech features.

:class:`LogMelCNN` reads a log-mel spectrogram [N, 1, n_mels, T] of ANY length T: three
conv blocks (3x3 conv, batch norm, ReLU, 2x2 max pooling with ``ceil_mode``), a per-frame
projection of (channels x remaining mel bands), then masked mean and max pooling over time,
so that a batch of clips of different lengths (padded at the end with silence, the log-mel
floor) gives the same embedding as each clip alone, up to the receptive field at the border.
The same architecture serves

- **sound clips** (``audio_cnn_sound``): 1 s scenes, 64 mel bands, 16 ms hop; trained to
  predict the scene's class and its main object's shape, colour, texture and size;
- **spoken captions** (``audio_cnn_speech``): 2-7 s utterances, 40 mel bands, 20 ms hop;
  trained to predict what the caption says about its main object (shape, colour, texture,
  size; attributes the caption leaves out are ignored in the loss).

Both are configured by :class:`AudioCNNConfig` and train on fresh scenes of their own seeds
(never the seed-0 evaluation world):
``mmkit train audio_cnn_sound`` / ``audio_cnn_speech``; notebooks load the committed
checkpoints with ``mmkit.checkpoints.load(NAME)``.

Speech: :func:`speech_log_mels` synthesises captions with espeak-ng in parallel worker
processes (each worker calls :func:`mmkit.data.speech.speak`, which itself forks a child per
utterance, so workers never share espeak's state) and caches the log-mels under
``data/cache/``, keyed by the caption texts, the speakers, the sample rate and the log-mel
configuration.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from mmkit._setup import usable_cores
from mmkit.checkpoints import CheckpointSpec, Trained
from mmkit.configs import Checks, DictConfig, check_rate, check_train_seed
from mmkit.data.speech import VOICES, SpeechUnavailable, speak, speech_available
from mmkit.data.world import World
from mmkit.errors import InputError
from mmkit.features.audio import FLOOR_DB, check_clips, log_mel, prepare_audio, self_retrieval
from mmkit.features.cache import array_key, cached, text_key
from mmkit.training import LossLog, progress_bar
from mmkit.validate import integer, positive_int

#: log-mel settings of the sound model (1 s clips at 16 kHz: 63 frames)
SOUND_MEL: dict[str, int] = {"n_mels": 64, "n_fft": 1024, "hop_length": 256}
#: log-mel settings of the speech model (40 ms windows, 20 ms hop: 50 frames per second)
SPEECH_MEL: dict[str, int] = {"n_mels": 40, "n_fft": 640, "hop_length": 320}
#: prediction heads (name -> classes) of the two models
SOUND_HEADS: dict[str, int] = {"class": 64, "shape": 8, "colour": 10, "texture": 4, "size": 3}
SPEECH_HEADS: dict[str, int] = {"shape": 8, "colour": 10, "texture": 4, "size": 3}
_POOLS = 3


def _pooled_length(lengths: torch.Tensor, times: int = _POOLS) -> torch.Tensor:
    for _ in range(times):
        lengths = torch.div(lengths + 1, 2, rounding_mode="floor")   # ceil(l / 2)
    return lengths.clamp(min=1)


class LogMelCNN(nn.Module):
    """Log-mel CNN encoder: ``forward(logmel [N, 1, n_mels, T], lengths [N] | None) ->
    float32 [N, out_dim]``; any T >= 1.

    Args:
        n_mels: mel bands of the input; sr, n_fft, hop_length: the log-mel settings the model
            expects (used by :func:`embed_audio`).
        channels: output channels of the three conv blocks.
        out_dim: embedding size D (:attr:`out_dim`).
        heads: optional classification heads ``{name: classes}`` on top of the embedding
            (:meth:`classify`), used for training.
    """

    def __init__(self, n_mels: int = 64, channels: Sequence[int] = (16, 32, 64),
                 out_dim: int = 128, heads: dict[str, int] | None = None, sr: int = 16000,
                 n_fft: int = 1024, hop_length: int = 256, dropout: float = 0.1) -> None:
        super().__init__()
        if len(channels) != _POOLS:
            raise InputError(f"LogMelCNN: channels must list {_POOLS} numbers, got {channels}")
        self.n_mels, self.out_dim = int(n_mels), int(out_dim)
        self.sr, self.n_fft, self.hop_length = int(sr), int(n_fft), int(hop_length)
        self.input_norm = nn.BatchNorm2d(1)
        blocks, c_in = [], 1
        for c in channels:
            blocks += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c),
                       nn.ReLU(inplace=True), nn.MaxPool2d(2, ceil_mode=True)]
            c_in = c
        self.blocks = nn.Sequential(*blocks)
        bands = self.n_mels
        for _ in range(_POOLS):
            bands = math.ceil(bands / 2)
        self.frame_proj = nn.Sequential(nn.Conv1d(c_in * bands, out_dim, 1), nn.ReLU(inplace=True),
                                        nn.Dropout(dropout))
        self.out = nn.Linear(2 * out_dim, out_dim)
        self.heads = nn.ModuleDict({k: nn.Linear(out_dim, v) for k, v in (heads or {}).items()})

    @property
    def mel_config(self) -> dict[str, int]:
        """The log-mel settings this model reads: ``n_mels``, ``n_fft``, ``hop_length``."""
        return {"n_mels": self.n_mels, "n_fft": self.n_fft, "hop_length": self.hop_length}

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """x: log-mel in dB, float [N, 1, n_mels, T]; lengths: valid frames per item [N]
        (default: all T). Returns the embedding, float32 [N, out_dim]."""
        if x.ndim != 4 or x.shape[1] != 1 or x.shape[2] != self.n_mels:
            raise InputError(f"LogMelCNN expects log-mel [N, 1, {self.n_mels}, T], got shape "
                             f"{tuple(x.shape)}")
        h = self.blocks(self.input_norm(x))                     # [N, C, bands, T']
        h = self.frame_proj(h.flatten(1, 2))                    # [N, D, T']
        t = h.shape[-1]
        if lengths is None:
            mask = torch.ones(h.shape[0], t, dtype=torch.bool, device=h.device)
        else:
            valid = _pooled_length(lengths.to(h.device).long()).clamp(max=t)
            mask = torch.arange(t, device=h.device)[None] < valid[:, None]
        m = mask[:, None, :].to(h.dtype)
        mean = (h * m).sum(-1) / m.sum(-1)
        peak = h.masked_fill(~mask[:, None, :], float("-inf")).amax(-1)
        return self.out(torch.cat([mean, peak], dim=1))

    def classify(self, x: torch.Tensor, lengths: torch.Tensor | None = None
                 ) -> dict[str, torch.Tensor]:
        """Logits of every head: ``{name: float [N, classes]}``."""
        e = self.forward(x, lengths)
        return {k: head(e) for k, head in self.heads.items()}


# ------------------------------------------------------------------ embedding
def _batches(mels: Sequence[np.ndarray], batch_size: int, progress: bool, desc: str):
    """(order, batch tensor [B, 1, M, T], lengths [B]) over clips sorted by length."""
    from tqdm.auto import tqdm

    lengths = np.array([m.shape[-1] for m in mels])
    order = np.argsort(-lengths, kind="stable")
    for start in tqdm(range(0, len(order), batch_size), desc=desc, leave=False,
                      disable=not progress):
        idx = order[start:start + batch_size]
        t = int(lengths[idx].max())
        batch = np.full((len(idx), 1, mels[idx[0]].shape[0], t), FLOOR_DB, np.float32)
        for b, i in enumerate(idx):
            batch[b, 0, :, :lengths[i]] = mels[i]
        yield idx, torch.from_numpy(batch), torch.from_numpy(lengths[idx])


def embed_log_mels(model: LogMelCNN, mels: Sequence[np.ndarray] | np.ndarray,
                   batch_size: int = 64, progress: bool = False) -> np.ndarray:
    """Embed log-mels ([N, n_mels, T] or a list of [n_mels, T_i]) with ``model``: float32
    [N, D]. Batches group clips of similar length, padded with the floor (silence) and
    masked in the time pooling."""
    if len(mels) == 0:
        raise InputError("embed_log_mels: no log-mels given")
    for i, m in enumerate(mels):
        if np.ndim(m) != 2 or m.shape[0] != model.n_mels or m.shape[1] == 0:
            raise InputError(f"log-mel {i} must be [{model.n_mels}, T] with T >= 1, got shape "
                             f"{np.shape(m)}")
    device = next(model.parameters()).device
    out = np.empty((len(mels), model.out_dim), np.float32)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for idx, x, lengths in _batches(mels, batch_size, progress, "embed audio"):
            out[idx] = model(x.to(device), lengths.to(device)).cpu().numpy()
    model.train(was_training)
    return out


def embed_audio(model: LogMelCNN, clips: np.ndarray | Sequence[np.ndarray], sr: int,
                batch_size: int = 64, progress: bool = False) -> np.ndarray:
    """Embed waveforms with ``model``: float32 [N, D].

    Args:
        clips: mono float [N, T], or a list of mono [T_i] clips of different lengths (e.g.
            spoken captions); see :func:`mmkit.features.audio.check_clips`.
        sr: their sample rate; resampled to the model's rate (``model.sr``) when different.
    """
    if isinstance(clips, np.ndarray) and clips.ndim == 2 or torch.is_tensor(clips):
        arr = check_clips(clips)
        if sr != model.sr:
            arr = np.stack([prepare_audio(c, sr, model.sr) for c in arr])
        mels = []
        for start in range(0, len(arr), 256):
            mels.extend(log_mel(arr[start:start + 256], model.sr, **model.mel_config))
    else:
        if isinstance(clips, np.ndarray) and clips.ndim == 1:
            clips = [clips]
        if len(clips) == 0:
            raise InputError("embed_audio: no clips given")
        mels = [log_mel(prepare_audio(c, sr, model.sr, name=f"clip {i}"), model.sr,
                        **model.mel_config)[0] for i, c in enumerate(clips)]
    return embed_log_mels(model, mels, batch_size, progress)


# ------------------------------------------------------------------ speech synthesis + cache
def _speak_chunk(args: tuple[list[str], list[int], int, dict]) -> list[np.ndarray]:
    texts, speakers, sr, mel = args
    return [log_mel(speak(t, s, sr=sr), sr, **mel)[0] for t, s in zip(texts, speakers)]


def _workers(workers: int | None) -> int:
    if workers is not None:
        return max(1, int(workers))
    return usable_cores()


def synthesise_log_mels(texts: Sequence[str], speakers: Sequence[int], sr: int = 16000,
                        mel: dict[str, int] | None = None, workers: int | None = None,
                        progress: bool = False, chunk: int = 24) -> list[np.ndarray]:
    """Speak each text with espeak-ng (:func:`mmkit.data.speech.speak`, voice
    ``speakers[i]``) and take its log-mel: a list of float32 [n_mels, T_i].

    Runs in ``workers`` forked processes (default: the usable cores), ``chunk`` captions per
    task; the result does not depend on the number of workers (each utterance is
    synthesised in a fresh child process).
    """
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    from tqdm.auto import tqdm

    mel = dict(SPEECH_MEL if mel is None else mel)
    texts, speakers = list(texts), [int(s) for s in speakers]
    if len(texts) != len(speakers):
        raise InputError(f"{len(texts)} texts but {len(speakers)} speakers")
    if not texts:
        raise InputError("no texts to speak")
    empty = [i for i, t in enumerate(texts) if not str(t).strip()]
    if empty:
        raise InputError(f"text {empty[0]} is empty: nothing to speak")
    if not speech_available():
        raise SpeechUnavailable("espeak-ng is not available (install espeakng-loader)")
    tasks = [(texts[i:i + chunk], speakers[i:i + chunk], int(sr), mel)
             for i in range(0, len(texts), chunk)]
    n = min(_workers(workers), len(tasks))
    bar = tqdm(total=len(texts), desc="speak captions", leave=False, disable=not progress)
    out: list[np.ndarray] = []
    if n == 1 or "fork" not in mp.get_all_start_methods():
        for task in tasks:
            out.extend(_speak_chunk(task))
            bar.update(len(task[0]))
    else:
        with ProcessPoolExecutor(n, mp_context=mp.get_context("fork")) as pool:
            for task, mels in zip(tasks, pool.map(_speak_chunk, tasks)):
                out.extend(mels)
                bar.update(len(task[0]))
    bar.close()
    return out


def speech_log_mels(texts: Sequence[str], speakers: Sequence[int], sr: int = 16000,
                    mel: dict[str, int] | None = None, workers: int | None = None,
                    progress: bool = False, cache: bool = True) -> list[np.ndarray]:
    """:func:`synthesise_log_mels`, cached: a list of float32 [n_mels, T_i].

    The cache (:func:`mmkit.features.cache.cached`) is keyed by the texts, the speakers, the
    sample rate and the log-mel settings (and the espeak voices), so a change of any of them
    recomputes. It holds two entries: the frame counts (int64 [N]) and the log-mels packed
    along time as float16 [n_mels, sum T_i] (about 0.03 dB of precision; half the disk).
    """

    mel = dict(SPEECH_MEL if mel is None else mel)
    texts, speakers = [str(t) for t in texts], [int(s) for s in speakers]
    parts = {"texts": text_key(texts), "speakers": array_key(np.asarray(speakers, np.int64)),
             "sr": int(sr), "mel": mel, "voices": list(VOICES), "floor_db": FLOOR_DB}
    made: list[list[np.ndarray]] = []

    def compute() -> list[np.ndarray]:
        if not made:
            made.append(synthesise_log_mels(texts, speakers, sr, mel, workers, progress))
        return made[0]

    lengths = cached("speech-logmel-frames", parts,
                     lambda: np.array([m.shape[1] for m in compute()], np.int64), enabled=cache)
    packed = cached("speech-logmel-f16", parts,
                    lambda: np.concatenate(compute(), axis=1).astype(np.float16), enabled=cache)
    if packed.shape[1] != lengths.sum():   # entries from two different runs: recompute both
        lengths = np.array([m.shape[1] for m in compute()], np.int64)
        packed = np.concatenate(compute(), axis=1).astype(np.float16)
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    return [packed[:, a:b].astype(np.float32) for a, b in zip(bounds[:-1], bounds[1:])]


def world_speech_log_mels(world: Any, captions: Sequence[int], **kwargs: Any) -> list[np.ndarray]:
    """Log-mels of the world's spoken captions ``captions`` (caption indices), each as
    ``World.speech(j)`` says it (its text, its speaker, the world's sample rate); cached."""
    captions = [int(j) for j in captions]
    return speech_log_mels([world.captions[j] for j in captions],
                           [world.speaker_of(j) for j in captions],
                           world.config.sample_rate, **kwargs)


# ------------------------------------------------------------------ config
@dataclass(frozen=True)
class AudioCNNConfig(DictConfig):
    """A :class:`LogMelCNN` and its training (the defaults: the checkpoint
    ``audio_cnn_sound``'s values, its log-mels :data:`SOUND_MEL`; ``audio_cnn_speech``
    differs in its log-mels :data:`SPEECH_MEL`, world and epochs).
    ``from_dict(manifest["config"]).to_dict() == manifest["config"]``. Bad values raise ONE
    line listing every problem."""

    #: channels of the three conv blocks
    channels: tuple[int, ...] = (16, 32, 64)
    out_dim: int = 128
    #: the world's sample rate (checked against the training world)
    sr: int = 16000
    batch_size: int = 64
    #: AdamW's peak learning rate (one-cycle schedule)
    lr: float = 3e-3
    seed: int = 0
    #: the log-mel settings
    n_mels: int = SOUND_MEL["n_mels"]
    n_fft: int = SOUND_MEL["n_fft"]
    hop_length: int = SOUND_MEL["hop_length"]
    #: the training world ``World(n=world_n, seed=world_seed)`` (never the evaluation seed)
    world_n: int = 4000
    world_seed: int = 1031
    epochs: int = 16

    def __post_init__(self) -> None:
        checks = Checks("AudioCNNConfig")
        if not (isinstance(self.channels, (list, tuple)) and len(self.channels) == 3):
            checks.add(f"channels must list 3 numbers, got {self.channels!r}")
        else:
            checks.ints(self.channels, "channels")
            object.__setattr__(self, "channels", tuple(self.channels))
        for name in ("out_dim", "sr", "batch_size", "n_mels", "n_fft", "hop_length",
                     "world_n", "epochs"):
            checks(positive_int, getattr(self, name), name)
        check_rate(checks, self.lr, "lr")
        checks(integer, self.seed, "seed", low=0)
        check_train_seed(checks, self.world_seed, "world_seed")
        checks.done()

    @property
    def mel(self) -> dict[str, int]:
        """The log-mel settings ``{"n_mels", "n_fft", "hop_length"}``."""
        return {"n_mels": self.n_mels, "n_fft": self.n_fft, "hop_length": self.hop_length}


def audio_config(config: AudioCNNConfig | Mapping[str, Any]) -> AudioCNNConfig:
    """``config`` as an :class:`AudioCNNConfig` (a checkpoint's config dict, or one already)."""
    return AudioCNNConfig.from_dict(config)


# ------------------------------------------------------------------ training
def _build(config: AudioCNNConfig | Mapping[str, Any], heads: dict[str, int]) -> LogMelCNN:
    cfg = audio_config(config)
    return LogMelCNN(n_mels=cfg.n_mels, channels=cfg.channels, out_dim=cfg.out_dim,
                     heads=heads, sr=cfg.sr, n_fft=cfg.n_fft, hop_length=cfg.hop_length)


def build_sound(config: AudioCNNConfig | Mapping[str, Any]) -> LogMelCNN:
    """The untrained sound model of ``config`` (heads :data:`SOUND_HEADS`)."""
    return _build(config, SOUND_HEADS)


def build_speech(config: AudioCNNConfig | Mapping[str, Any]) -> LogMelCNN:
    """The untrained speech model of ``config`` (heads :data:`SPEECH_HEADS`)."""
    return _build(config, SPEECH_HEADS)


def _fit(model: LogMelCNN, mels: list[np.ndarray], targets: dict[str, np.ndarray],
         train: np.ndarray, cfg: AudioCNNConfig, progress: bool, desc: str) -> list[float]:
    """Adam on the sum of the heads' cross-entropies (targets -1 are ignored); returns the
    mean training loss of every epoch."""
    gen = torch.Generator().manual_seed(int(cfg.seed))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    steps = cfg.epochs * math.ceil(len(train) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps)
    loss_fn = nn.CrossEntropyLoss(ignore_index=-1)
    tgt = {k: torch.from_numpy(np.asarray(v, np.int64)) for k, v in targets.items()}
    log = LossLog()
    model.train()
    bar = progress_bar(range(cfg.epochs), progress=progress, desc=desc)
    for _ in bar:
        perm = train[torch.randperm(len(train), generator=gen).numpy()]
        for start in range(0, len(perm), cfg.batch_size):
            idx = perm[start:start + cfg.batch_size]
            (local, x, lengths), = _batches([mels[i] for i in idx], len(idx), False, "")
            sel = torch.from_numpy(idx[local])         # _batches sorts by length
            logits = model.classify(x, lengths)
            loss = sum(loss_fn(logits[k], tgt[k][sel]) for k in logits)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            log.add(loss, n=len(idx))
        bar.set_postfix(loss=f"{log.end_epoch():.3f}")
    model.eval()
    return log.epochs


def _accuracy(model: LogMelCNN, mels: list[np.ndarray], targets: dict[str, np.ndarray],
              held: np.ndarray) -> dict[str, float]:
    """Held-out accuracy of every head (over the items whose target is not -1)."""
    correct = {k: 0 for k in targets}
    counted = {k: 0 for k in targets}
    with torch.no_grad():
        for idx, x, lengths in _batches([mels[i] for i in held], 128, False, ""):
            logits = model.classify(x, lengths)
            for k, t in targets.items():
                truth = np.asarray(t)[held[idx]]
                pred = logits[k].argmax(1).numpy()
                keep = truth >= 0
                correct[k] += int((pred[keep] == truth[keep]).sum())
                counted[k] += int(keep.sum())
    return {f"held_out_acc_{k}": round(correct[k] / max(1, counted[k]), 4) for k in targets}


def _train_sound(config: AudioCNNConfig | Mapping[str, Any], progress: bool) -> Trained:
    cfg = audio_config(config)
    world = World(n=cfg.world_n, seed=cfg.world_seed, progress=progress)
    sr = world.config.sample_rate
    if sr != cfg.sr:
        raise InputError(f"the training world speaks at {sr} Hz, the config says {cfg.sr}")
    mels = list(log_mel(world.audio, sr, **cfg.mel))
    main = world.objects[:, 0].astype(np.int64)
    targets = {"class": world.labels, "shape": main[:, 0], "colour": main[:, 1],
               "texture": main[:, 2], "size": main[:, 3]}
    train = np.flatnonzero(np.isin(world.split, ("train", "unseen")))
    held = np.flatnonzero(np.isin(world.split, ("val", "test")))
    model = build_sound(cfg)
    history = _fit(model, mels, targets, train, cfg, progress, "train audio_cnn_sound")
    metrics = _accuracy(model, mels, targets, held)
    emb = embed_log_mels(model, [mels[i] for i in held])
    metrics["held_out_same_class_mAP"] = round(self_retrieval(emb, world.labels[held])["mAP"], 4)
    metrics["first_epoch_loss"] = round(history[0], 4)
    metrics["last_epoch_loss"] = round(history[-1], 4)
    return Trained(model, metrics, {"world": {"n": cfg.world_n, "seed": cfg.world_seed},
                                    "train_scenes": int(len(train)),
                                    "held_out_scenes": int(len(held)),
                                    "held_out": "val + test splits of the training world",
                                    "epochs": cfg.epochs, "loss_history": history})


def _train_speech(config: AudioCNNConfig | Mapping[str, Any], progress: bool) -> Trained:
    cfg = audio_config(config)
    world = World(n=cfg.world_n, seed=cfg.world_seed, progress=False)
    if world.config.sample_rate != cfg.sr:
        raise InputError(f"the training world speaks at {world.config.sample_rate} Hz, the "
                         f"config says {cfg.sr}")
    caps = np.arange(len(world.captions))
    mels = world_speech_log_mels(world, caps, mel=cfg.mel, progress=progress)
    main = world.caption_main.astype(np.int64)
    targets = {"shape": main[:, 0], "colour": main[:, 1], "texture": main[:, 2],
               "size": main[:, 3]}
    image_split = world.split[world.caption_image]
    train = np.flatnonzero(np.isin(image_split, ("train", "unseen")))
    held = np.flatnonzero(np.isin(image_split, ("val", "test")))
    model = build_speech(cfg)
    history = _fit(model, mels, targets, train, cfg, progress, "train audio_cnn_speech")
    metrics = _accuracy(model, mels, targets, held)
    emb = embed_log_mels(model, [mels[i] for i in held])
    metrics["held_out_same_image_mAP"] = round(
        self_retrieval(emb, world.caption_image[held])["mAP"], 4)
    metrics["first_epoch_loss"] = round(history[0], 4)
    metrics["last_epoch_loss"] = round(history[-1], 4)
    return Trained(model, metrics, {"world": {"n": cfg.world_n, "seed": cfg.world_seed},
                                    "train_captions": int(len(train)),
                                    "held_out_captions": int(len(held)),
                                    "held_out": "captions of the val + test images of the "
                                                "training world",
                                    "epochs": cfg.epochs, "loss_history": history})


CHECKPOINTS: dict[str, CheckpointSpec] = {
    "audio_cnn_sound": CheckpointSpec(
        name="audio_cnn_sound", build=build_sound, train=_train_sound,
        config=AudioCNNConfig().to_dict(),
        description="log-mel CNN on 1 s scene sounds: class + main-object attributes",
        seconds=150.0),
    "audio_cnn_speech": CheckpointSpec(
        name="audio_cnn_speech", build=build_speech, train=_train_speech,
        config=AudioCNNConfig(**SPEECH_MEL, world_n=600, world_seed=1032, epochs=14).to_dict(),
        description="log-mel CNN on spoken captions: what they say about the main object",
        seconds=240.0),
}
