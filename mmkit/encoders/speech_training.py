"""Training the speech tower (:mod:`mmkit.encoders.speech`) against the frozen joint model,
and its checkpoint ``joint_speech`` (:data:`CHECKPOINTS`).

:func:`train_speech` loads the joint checkpoint ``config.joint`` (frozen), speaks captions of
fresh scenes (``config.world``, never the evaluation seed) with espeak-ng
(:func:`~mmkit.features.audio_cnn.world_speech_log_mels`, cached) and trains the tower with
InfoNCE against the images of their scenes plus a distillation term towards the captions'
text embeddings. The manifest records the sha256 of the joint checkpoint it was aligned to.
"""
from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from mmkit import checkpoints
from mmkit.checkpoints import CheckpointSpec, Trained
from mmkit.data.world import World
from mmkit.encoders.evaluation import protocol_speech_results
from mmkit.encoders.speech import SpeechConfig, build_speech_tower, speech_config
from mmkit.features import audio_cnn
from mmkit.features.audio import FLOOR_DB
from mmkit.losses import SymmetricInfoNCE
from mmkit.training import LossLog, progress_bar, seeded

__all__ = ["train_speech", "SPEECH_CONFIG", "CHECKPOINTS", "build_speech_tower"]


def _batch(mels: list[np.ndarray], idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = np.array([mels[i].shape[1] for i in idx])
    x = np.full((len(idx), 1, mels[idx[0]].shape[0], int(lengths.max())), FLOOR_DB, np.float32)
    for b, i in enumerate(idx):
        x[b, 0, :, :lengths[b]] = mels[i]
    return torch.from_numpy(x), torch.from_numpy(lengths)


def train_speech(config: SpeechConfig | Mapping[str, Any], progress: bool = True) -> Trained:
    """Align a :class:`~mmkit.encoders.speech.SpeechTower` to the frozen joint model
    ``config.joint``. ``config``: a :class:`~mmkit.encoders.speech.SpeechConfig` or its dict
    (checked first: one line).

    Spoken captions: ``config.captions_per_image`` of the 5 captions of every scene of
    ``config.world`` (fresh scenes). Loss: InfoNCE(speech, image of its scene) +
    ``text_weight`` * InfoNCE(speech, its caption's text embedding), targets frozen, two
    captions of one scene in a batch are positives of each other, never negatives (the
    losses' ``ids``). Metric: speech->image and text->image on the evaluation split
    (:func:`~mmkit.encoders.evaluation.protocol_speech_results`).
    """
    cfg = speech_config(config)
    t0 = time.perf_counter()
    rng = seeded(cfg.seed)
    joint, joint_manifest = checkpoints.load(cfg.joint, progress=progress)
    world = World(n=cfg.world.n, seed=cfg.world.seed, progress=progress)
    per = world.config.captions_per_image
    k = cfg.captions_per_image
    chosen = np.stack([rng.choice(per, k, replace=False) for _ in range(world.config.n)])
    caps = (np.arange(world.config.n)[:, None] * per + chosen).reshape(-1)
    scene_of = np.repeat(np.arange(world.config.n), k)
    image_emb = torch.from_numpy(joint.embed_images(world.images))
    text_emb = torch.from_numpy(joint.embed_texts([world.captions[j] for j in caps]))
    mels = audio_cnn.world_speech_log_mels(world, caps, progress=progress)
    tower = build_speech_tower(cfg)
    if cfg.init:
        cnn, _ = checkpoints.load(cfg.init, progress=progress)
        state = {n: v for n, v in cnn.state_dict().items() if not n.startswith("heads.")}
        tower.cnn.load_state_dict(state)
    loss_img = SymmetricInfoNCE(temperature=cfg.temperature, learnable=True)
    loss_txt = SymmetricInfoNCE(temperature=cfg.temperature, learnable=True)
    opt = torch.optim.AdamW([{"params": tower.parameters()},
                             {"params": list(loss_img.parameters()) + list(loss_txt.parameters()),
                              "weight_decay": 0.0}],
                            lr=cfg.lr, weight_decay=cfg.weight_decay)
    bs = cfg.batch_size
    n = len(caps)
    steps = cfg.epochs * (n // bs)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps,
                                                pct_start=0.1)
    bar = progress_bar(total=steps, desc="train speech tower", progress=progress)
    log = LossLog(bar)
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
                cfg.text_weight * loss_txt(z, text_emb[idx], ids)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            log.add(loss)
            step += 1
    bar.close()
    train_seconds = time.perf_counter() - train_start
    tower.eval()
    # mean loss of the first and last steps (a quarter of them, at most 20)
    metrics = {**log.metrics("train_loss_start", "train_loss_end"),
               "train_seconds": round(train_seconds, 1)}
    if cfg.evaluate:
        metrics.update(protocol_speech_results(joint, tower))
    return Trained(tower, metrics, {
        "world": cfg.world.to_dict(), "spoken_captions": int(n), "steps": step,
        "joint_checkpoint": cfg.joint, "joint_sha256": joint_manifest["sha256"],
        "setup_seconds": round(train_start - t0, 1)})


#: the ``joint_speech`` checkpoint's config: the defaults of
#: :class:`~mmkit.encoders.speech.SpeechConfig`, as a dict
SPEECH_CONFIG: dict[str, Any] = SpeechConfig().to_dict()

#: ``mmkit train joint_speech``
CHECKPOINTS: dict[str, CheckpointSpec] = {
    "joint_speech": CheckpointSpec(
        name="joint_speech", build=build_speech_tower, train=train_speech,
        config=SPEECH_CONFIG, description="spoken captions into the joint_world space "
                                         "(DAVEnet-style log-mel CNN + head)", seconds=1200,
        threads=1),
}
