"""Spoken captions into the joint space: a DAVEnet-style log-mel CNN (Harwath et al. 2018).

The speech tower is the audio chapter's log-mel CNN for speech
(:class:`~mmkit.features.audio_cnn.LogMelCNN` at 40 mel bands, 20 ms hop, initialised from
the ``audio_cnn_speech`` checkpoint) with a projection head into the space of the trained
joint model (:mod:`mmkit.encoders.joint`, checkpoint ``joint_world``). The joint model stays
frozen: the tower learns to put a spoken caption next to the image it describes (InfoNCE
against the frozen image embeddings) and next to the same caption's text embedding
(a distillation term, weight ``text_weight``), so that speech->image works through the very
space text->image uses.

Training data: captions of fresh scenes (``config["world"]``, not the evaluation seed),
spoken by espeak-ng with the world's six voices, synthesised in parallel worker processes and
cached (:func:`~mmkit.features.audio_cnn.world_speech_log_mels`; about 0.03 s per caption).
The manifest records the sha256 of the joint checkpoint it was aligned to: a speech tower
aligned to another joint model is refused by :class:`~mmkit.methods.joint.JointMethod`.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from mmkit.checkpoints import CheckpointSpec, Trained
from mmkit.errors import InputError


class SpeechTower(nn.Module):
    """Log-mel CNN + projection head: ``forward(logmel [N, 1, 40, T], lengths [N]) ->
    float32 [N, dim]``."""

    def __init__(self, config: dict) -> None:
        super().__init__()
        from mmkit.features.audio_cnn import SPEECH_MEL, LogMelCNN

        self.config = dict(config)
        self.cnn = LogMelCNN(n_mels=SPEECH_MEL["n_mels"], channels=tuple(config["channels"]),
                             out_dim=config["cnn_dim"], n_fft=SPEECH_MEL["n_fft"],
                             hop_length=SPEECH_MEL["hop_length"], dropout=config["dropout"])
        self.head = nn.Sequential(nn.Linear(config["cnn_dim"], 512), nn.GELU(),
                                  nn.Linear(512, config["dim"]))
        self.dim = int(config["dim"])

    @property
    def mel_config(self) -> dict[str, int]:
        return self.cnn.mel_config

    @property
    def n_mels(self) -> int:
        return self.cnn.n_mels

    @property
    def out_dim(self) -> int:
        return self.dim

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.cnn(x, lengths))

    @torch.no_grad()
    def embed_log_mels(self, mels: Sequence[np.ndarray]) -> np.ndarray:
        """Log-mels (a list of float32 [40, T_i]) -> L2-normalised float32 [M, dim]."""
        from mmkit.features.audio_cnn import embed_log_mels

        was = self.training
        self.eval()
        out = embed_log_mels(self, mels, batch_size=128)
        self.train(was)
        return out / (np.linalg.norm(out, axis=1, keepdims=True) + 1e-12)

    @torch.no_grad()
    def embed_audio(self, clips: Sequence[np.ndarray], sr: int) -> np.ndarray:
        """Spoken captions (mono float waveforms [T_i] at ``sr``) -> float32 [M, dim]."""
        from mmkit.features.audio import log_mel, prepare_audio

        sr_model = self.cnn.sr
        mels = [log_mel(prepare_audio(c, sr, sr_model, name=f"clip {i}"), sr_model,
                        **self.mel_config)[0] for i, c in enumerate(clips)]
        return self.embed_log_mels(mels)


def build_speech_tower(config: dict) -> SpeechTower:
    return SpeechTower(config)


def _batch(mels: list[np.ndarray], idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    from mmkit.features.audio import FLOOR_DB

    lengths = np.array([mels[i].shape[1] for i in idx])
    x = np.full((len(idx), 1, mels[idx[0]].shape[0], int(lengths.max())), FLOOR_DB, np.float32)
    for b, i in enumerate(idx):
        x[b, 0, :, :lengths[b]] = mels[i]
    return torch.from_numpy(x), torch.from_numpy(lengths)


def train_speech(config: dict, progress: bool = True) -> Trained:
    """Align a :class:`SpeechTower` to the frozen joint model ``config["joint"]``.

    Spoken captions: ``config["captions_per_image"]`` of the 5 captions of every scene of
    ``config["world"]`` (fresh scenes). Loss: InfoNCE(speech, image of its scene) +
    ``text_weight`` * InfoNCE(speech, its caption's text embedding), targets frozen, two
    captions of one scene in a batch are positives of each other, never negatives (the
    losses' ``ids``). Metric: speech->image and
    text->image on the protocol (:data:`mmkit.encoders.joint.PROTOCOL` test split).
    """
    from tqdm.auto import tqdm

    from mmkit.checkpoints import load
    from mmkit.data.world import World
    from mmkit.encoders.joint import PROTOCOL
    from mmkit.features.audio_cnn import world_speech_log_mels
    from mmkit.losses import SymmetricInfoNCE

    if int(config["world"]["seed"]) == PROTOCOL["seed"]:
        raise InputError("train_speech: the training world must not be the evaluation world")
    t0 = time.perf_counter()
    seed = int(config.get("seed", 0))
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    joint, joint_manifest = load(config["joint"], progress=progress)
    world = World(n=config["world"]["n"], seed=config["world"]["seed"], progress=progress)
    per = world.config.captions_per_image
    k = int(config["captions_per_image"])
    chosen = np.stack([rng.choice(per, k, replace=False) for _ in range(world.config.n)])
    caps = (np.arange(world.config.n)[:, None] * per + chosen).reshape(-1)
    scene_of = np.repeat(np.arange(world.config.n), k)
    image_emb = torch.from_numpy(joint.embed_images(world.images))
    text_emb = torch.from_numpy(joint.embed_texts([world.captions[j] for j in caps]))
    mels = world_speech_log_mels(world, caps, progress=progress)
    tower = build_speech_tower(config)
    if config.get("init"):
        cnn, _ = load(config["init"], progress=progress)
        state = {n: v for n, v in cnn.state_dict().items() if not n.startswith("heads.")}
        tower.cnn.load_state_dict(state)
    loss_img = SymmetricInfoNCE(temperature=config["temperature"], learnable=True)
    loss_txt = SymmetricInfoNCE(temperature=config["temperature"], learnable=True)
    opt = torch.optim.AdamW([{"params": tower.parameters()},
                             {"params": list(loss_img.parameters()) + list(loss_txt.parameters()),
                              "weight_decay": 0.0}],
                            lr=config["lr"], weight_decay=config["weight_decay"])
    bs = int(config["batch_size"])
    n = len(caps)
    steps = int(config["epochs"]) * (n // bs)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config["lr"], total_steps=steps,
                                                pct_start=0.1)
    losses: list[float] = []
    bar = tqdm(total=steps, desc="train speech tower", leave=False, disable=not progress)
    train_start = time.perf_counter()
    tower.train()
    step = 0
    while step < steps:
        order = rng.permutation(n)   # two captions of one scene in a batch: masked by ids
        for b in range(n // bs):
            if step >= steps:
                break
            idx = order[b * bs:(b + 1) * bs]
            x, lengths = _batch(mels, idx)
            z = tower(x, lengths)
            ids = torch.from_numpy(scene_of[idx])
            loss = loss_img(z, image_emb[scene_of[idx]], ids) + \
                config["text_weight"] * loss_txt(z, text_emb[idx], ids)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            step += 1
            bar.update(1)
            if step % 20 == 0:
                bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
    bar.close()
    train_seconds = time.perf_counter() - train_start
    tower.eval()
    window = max(1, min(20, len(losses) // 4))   # mean loss of the first and last steps
    metrics = {"train_loss_start": round(float(np.mean(losses[:window])), 4),
               "train_loss_end": round(float(np.mean(losses[-window:])), 4),
               "train_seconds": round(train_seconds, 1)}
    if config.get("evaluate", True):
        metrics.update(protocol_speech_results(joint, tower))
    return Trained(tower, metrics, {
        "world": dict(config["world"]), "spoken_captions": int(n), "steps": step,
        "joint_checkpoint": config["joint"], "joint_sha256": joint_manifest["sha256"],
        "setup_seconds": round(train_start - t0, 1)})


def protocol_speech_results(joint, tower: SpeechTower) -> dict[str, float]:
    """speech->image and text->image R@1 / R@10 on the protocol's test split."""
    from mmkit.encoders.joint import ProtocolData
    from mmkit.features.audio_cnn import world_speech_log_mels
    from mmkit.methods.evaluate import Embedded, score_direction, score_metrics

    data = ProtocolData()
    w, test = data.world, data.test
    caps = w.caption_indices(test)
    img = joint.embed_images(data.images)
    out = {}
    for name, vectors in (("speech->image", tower.embed_log_mels(
            world_speech_log_mels(w, caps))), ("text->image", joint.embed_texts(data.captions))):
        run = score_direction(w, name, test, Embedded(vectors, caps), Embedded(img, test))
        res = score_metrics(run.scores, run.relevance, run.positives)
        key = name.replace("->", "_to_")
        out[f"protocol_{key}_R@1"] = round(float(res["R@1"]), 4)
        out[f"protocol_{key}_R@10"] = round(float(res["R@10"]), 4)
    return out


SPEECH_CONFIG: dict[str, Any] = {
    "dim": 256, "channels": [16, 32, 64], "cnn_dim": 128, "dropout": 0.1, "joint": "joint_world",
    "init": "audio_cnn_speech", "captions_per_image": 2, "temperature": 0.07,
    "text_weight": 1.0, "lr": 2e-3, "weight_decay": 0.01, "batch_size": 96, "epochs": 12,
    "seed": 0, "evaluate": True, "world": {"n": 3000, "seed": 2101}}

CHECKPOINTS: dict[str, CheckpointSpec] = {
    "joint_speech": CheckpointSpec(
        name="joint_speech", build=build_speech_tower, train=train_speech,
        config=SPEECH_CONFIG, description="spoken captions into the joint_world space "
                                         "(DAVEnet-style log-mel CNN + head)", seconds=1200,
        threads=1),
}
