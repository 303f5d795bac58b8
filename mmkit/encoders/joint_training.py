"""Training the joint model (:mod:`mmkit.encoders.joint`) and its checkpoints.

:func:`train_joint` draws **fresh scenes** from the world's generator (a seed other than the
evaluation world's 0), never the scenes it is evaluated on, and minimises a cross-modal loss
between images and captions plus the same loss between images and sounds (:func:`make_loss`):
VSE (sum of hinges), VSE++ (hardest negative) or CLIP's symmetric InfoNCE with a learnable
temperature (``config.loss``). While it trains it measures, every ``eval_every`` steps, the
evaluation split (:func:`~mmkit.encoders.evaluation.protocol_results`: the demo world,
n = 2,500, seed 0, its test split of 441 images and 2,205 captions); those numbers are logged
for the learning curves and never used to pick a model. :class:`SceneData` holds the training
tensors of one world, computed once.

Checkpoints (``mmkit train NAME``, :data:`CHECKPOINTS`): ``joint_world`` (the demo's model:
InfoNCE, the image tower's conv stages fine-tuned rather than frozen, the longest training,
:data:`MAIN_CHANGES`), and for notebook 04's comparison at one equal, shorter budget
(:data:`RECIPE_BUDGET`) ``joint_vse``, ``joint_vsepp``, ``joint_clip`` and ``joint_effnet``
(the pretrained backbone). Their configs are :class:`~mmkit.encoders.joint.JointConfig`
dicts: the defaults (:data:`BASE_CONFIG`) with a few changes.
"""
from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from torch import nn

from mmkit import checkpoints
from mmkit.checkpoints import CheckpointSpec, Trained
from mmkit.data.world import World
from mmkit.encoders.evaluation import (PROTOCOL, ProtocolData, protocol_results,
                                       protocol_unseen_classes)
from mmkit.encoders.joint import (JointConfig, JointModel, PretrainedImageTower, build_joint,
                                  joint_config)
from mmkit.errors import InputError
from mmkit.features.audio import log_mel
from mmkit.features.audio_cnn import SOUND_MEL
from mmkit.features.pretrained import pretrained_features
from mmkit.losses import SymmetricInfoNCE, VSEHingeLoss
from mmkit.training import LossLog, progress_bar, seeded

__all__ = ["SceneData", "make_loss", "train_joint", "BASE_CONFIG", "MAIN_CHANGES",
           "RECIPE_BUDGET", "CHECKPOINTS", "build_joint"]


# ============================================================================ data
class SceneData:
    """The training tensors of one world, computed once: images uint8 [N, H, W, 3] (or the
    frozen backbone's features), caption ids [M, L] with lengths [M], sound log-mels
    float32 [N, n_mels, T]."""

    def __init__(self, world: Any, model: JointModel, progress: bool = False) -> None:
        self.world = world
        self.n = world.config.n
        self.per = world.config.captions_per_image
        self.images = world.images
        enc = model.tokenizer.encode(world.captions)
        self.ids, self.lengths = enc.ids, enc.lengths
        mels = log_mel(world.audio, world.config.sample_rate, **SOUND_MEL)
        self.mels = torch.from_numpy(np.ascontiguousarray(mels, np.float32))
        self.audio_features: torch.Tensor | None = None
        if model.audio_frozen:   # the backbone never changes: its features once
            with torch.no_grad():
                self.audio_features = torch.cat([
                    model.audio_features(self.mels[s:s + 512].unsqueeze(1).to(model.device)).cpu()
                    for s in range(0, self.n, 512)])
        self.image_features: torch.Tensor | None = None
        self.image_maps: torch.Tensor | None = None
        if model.frozen_cnn:   # the frozen conv stages never change: their maps once (fp16)
            model.train()
            maps = []
            for s in progress_bar(range(0, self.n, 256), desc="frozen CNN feature maps",
                                  progress=progress):
                maps.append(model.image_map(model.image_tensor(self.images[s:s + 256])).half())
            self.image_maps = torch.cat(maps)
        if isinstance(model.image, PretrainedImageTower) and model.config.pretrained:
            # the frozen ImageNet backbone's pooled features, once: the one cache entry of
            # these images at this size (random backbone weights: computed batch by batch)
            self.image_features = torch.from_numpy(pretrained_features(
                self.images, model.image.input_size, batch_size=128, progress=progress,
                device=model.device))

    def batch(self, model: JointModel, scenes: np.ndarray, rng: np.random.Generator
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Embeddings (image, caption, sound) [B, dim] of ``scenes``, one random caption each."""
        dev = model.device
        if self.image_maps is not None:
            zi = model.image_from_map(self.image_maps[scenes].to(dev).float())
        elif self.image_features is not None:
            zi = model.image.head(self.image_features[scenes].to(dev))
        else:
            zi = model.encode_image(model.image_tensor(self.images[scenes]))
        caps = scenes * self.per + rng.integers(self.per, size=len(scenes))
        width = max(1, int(self.lengths[caps].max()))
        zt = model.encode_text(self.ids[caps, :width].to(dev), self.lengths[caps])
        if self.audio_features is not None:
            za = model.audio_head(self.audio_features[scenes].to(dev))
        else:
            za = model.encode_audio(self.mels[scenes].unsqueeze(1).to(dev))
        return zi, zt, za


# ============================================================================ losses
def make_loss(name: str, margin: float, temperature: float) -> nn.Module:
    """``"vse"`` (sum of hinges), ``"vsepp"`` (hardest negative) or ``"infonce"`` (CLIP's
    symmetric InfoNCE, learnable temperature) from :mod:`mmkit.losses`."""
    if name == "vse":
        return VSEHingeLoss(margin=margin, max_violation=False)
    if name == "vsepp":
        return VSEHingeLoss(margin=margin, max_violation=True)
    if name == "infonce":
        return SymmetricInfoNCE(temperature=temperature, learnable=True)
    raise InputError(f"unknown joint loss {name!r}; choose vse, vsepp or infonce")


# ============================================================================ training
def train_joint(config: JointConfig | Mapping[str, Any], progress: bool = True) -> Trained:
    """Train a :class:`~mmkit.encoders.joint.JointModel` on ``config.world`` (fresh scenes,
    never the evaluation world's seed) for ``config.epochs`` epochs (or until
    ``config.seconds`` of wall time, when set: a budget makes the result depend on the
    machine's speed, so checkpoints use epochs). ``config``: a
    :class:`~mmkit.encoders.joint.JointConfig` or its dict (checked first: one line).

    Each step takes ``batch_size`` scenes, one random caption of each (so the batch has no
    two captions of one image: no false negatives) and their sounds, and minimises
    ``loss(image, caption) + audio_weight * loss(image, sound)``. AdamW, linear warm-up and
    cosine decay over the planned steps. ``history`` (in the returned data) holds the
    evaluation split's R@1 and R@10 every ``eval_every`` steps, with the wall time (logged
    only).
    """
    cfg = joint_config(config)
    t0 = time.perf_counter()
    rng = seeded(cfg.seed)
    model = build_joint(cfg)
    _initialise(model, cfg)
    world = World(n=cfg.world.n, seed=cfg.world.seed, progress=progress)
    data = SceneData(world, model, progress)
    protocol = ProtocolData() if cfg.eval_every else None
    loss_it = make_loss(cfg.loss, cfg.margin, cfg.temperature)
    loss_ia = make_loss(cfg.loss, cfg.margin, cfg.temperature)
    params = [p for p in model.parameters() if p.requires_grad]
    temperatures = list(loss_it.parameters()) + list(loss_ia.parameters())
    # CLIP keeps its temperature out of weight decay (decay would pull the scale towards 1)
    opt = torch.optim.AdamW([{"params": params}, {"params": temperatures, "weight_decay": 0.0}],
                            lr=cfg.lr, weight_decay=cfg.weight_decay)
    # zero-shot stays zero-shot: scenes of the evaluation world's unseen classes are never
    # trained on (the fresh world has its own unseen split; it is not the one evaluated)
    held_out = protocol_unseen_classes()
    pool = np.flatnonzero(~np.isin(world.labels, held_out))
    bs = cfg.batch_size
    per_epoch = len(pool) // bs
    planned = cfg.epochs * per_epoch
    if cfg.max_steps:   # an equal step budget across training-set sizes
        planned = min(planned, cfg.max_steps)
    if cfg.seconds:   # a time budget: plan the schedule from the measured step time
        planned = max(1, planned)
    warm = max(1, int(0.05 * planned))

    def lr_at(step: int, total: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))

    history: list[dict[str, float]] = []
    budget = float(cfg.seconds or math.inf)
    train_start = time.perf_counter()
    every = cfg.eval_every or 0
    step, total = 0, planned
    bar = progress_bar(total=planned, desc=f"train joint ({cfg.loss})", progress=progress)
    log = LossLog(bar)
    model.train()
    done = False
    while not done:
        order = pool[rng.permutation(len(pool))]
        for b in range(per_epoch):
            elapsed = time.perf_counter() - train_start
            if protocol is not None and step % every == 0 and step < total:
                history.append(_log_point(model, protocol, step, elapsed))
                model.train()
                elapsed = time.perf_counter() - train_start
            if step >= total or elapsed >= budget:
                done = True
                break
            if step == 20 and math.isfinite(budget):   # re-plan the schedule to the budget
                per_step = elapsed / 20
                total = min(planned, max(step + 1, int(budget / per_step)))
                bar.total = total
            for g in opt.param_groups:
                g["lr"] = cfg.lr * lr_at(step, total)
            zi, zt, za = data.batch(model, order[b * bs:(b + 1) * bs], rng)
            loss = loss_it(zi, zt, None) + cfg.audio_weight * loss_ia(zi, za, None)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            log.add(loss)
            step += 1
    bar.close()
    train_seconds = time.perf_counter() - train_start
    if protocol is not None:
        history.append(_log_point(model, protocol, step, train_seconds))
    model.eval()
    if hasattr(loss_it, "logit_scale"):   # the clamped value the last step would have used
        model.logit_scale.fill_(math.log(float(loss_it.logit_scale)))
    model.cpu()
    # mean loss of the first and last steps (a quarter of them, at most 20)
    metrics = {**log.metrics("train_loss_start", "train_loss_end"),
               "steps": step, "train_seconds": round(train_seconds, 1)}
    if protocol is not None and history:
        last = history[-1]
        metrics.update({k: v for k, v in last.items() if k.startswith("protocol_")})
    if hasattr(loss_it, "temperature"):
        metrics["temperature_text"] = round(float(loss_it.temperature), 4)
        metrics["temperature_audio"] = round(float(loss_ia.temperature), 4)
    return Trained(model, metrics, {
        "world": cfg.world.to_dict(), "steps": step, "batch_size": bs,
        "train_scenes": int(len(pool)), "epochs_seen": round(step * bs / len(pool), 2),
        "excluded_classes": [int(c) for c in held_out], "loss": cfg.loss,
        "history": history, "setup_seconds": round(train_start - t0, 1),
        "protocol": {**PROTOCOL, "split": "test", "note": "logged during training, never used "
                                                         "to select or stop"}})


def _initialise(model: JointModel, cfg: JointConfig) -> None:
    """Start towers from the feature chapters' committed checkpoints (``audio_init``,
    ``image_init``: checkpoint names, or None for random weights)."""
    if cfg.audio_init:
        sound, _ = checkpoints.load(cfg.audio_init)
        missing = model.audio.load_state_dict(sound.state_dict(), strict=False)
        if missing.missing_keys:
            raise InputError(f"{cfg.audio_init} does not fit the sound tower: "
                             f"missing {missing.missing_keys[:3]}")
    if cfg.image_init:
        cnn, _ = checkpoints.load(cfg.image_init)
        state = {k: v for k, v in cnn.state_dict().items()
                 if not k.startswith(("proj.", "head."))}
        result = model.image.load_state_dict(state, strict=False)
        wrong = [k for k in result.missing_keys if not k.startswith(("proj.", "head."))]
        if wrong or result.unexpected_keys:
            raise InputError(f"{cfg.image_init} does not fit the image tower (width, "
                             f"attention blocks): missing {wrong[:3]}, unexpected "
                             f"{result.unexpected_keys[:3]}")


def _log_point(model: JointModel, protocol: ProtocolData, step: int, elapsed: float
               ) -> dict[str, float]:
    model.eval()
    res = protocol_results(model, protocol)
    point = {"step": step, "seconds": round(elapsed, 1)}
    for d, m in res.items():
        key = d.replace("->", "_to_")
        point[f"protocol_{key}_R@1"] = m["R@1"]
        point[f"protocol_{key}_R@10"] = m["R@10"]
    return point


# ============================================================================ checkpoints
#: architecture and optimisation shared by every joint checkpoint: the defaults of
#: :class:`~mmkit.encoders.joint.JointConfig`, as a dict
BASE_CONFIG: dict[str, Any] = JointConfig().to_dict()


def _spec(name: str, description: str, seconds: float, threads: int = 1,
          **changes: Any) -> CheckpointSpec:
    return CheckpointSpec(name=name, build=build_joint, train=train_joint,
                          config=replace(JointConfig(), **changes).to_dict(),
                          description=description, seconds=seconds, threads=threads)


#: the demo's model (``joint_world``) against the recipes: the image tower's conv stages are
#: fine-tuned (not frozen: frozen, they keep what the features chapter trained them for, the
#: main object's class, and miss the sign, the second object and the relation), longer, on
#: both cores (15 minutes on 2 cores, setup included)
MAIN_CHANGES: dict[str, Any] = {"image_frozen": False, "epochs": 13, "eval_every": 272}

#: the recipe comparison's shared, shorter budget (fresh scenes of their own seed): notebook
#: 04 compares ``joint_vse``, ``joint_vsepp``, ``joint_clip`` and ``joint_effnet`` at it
RECIPE_BUDGET: dict[str, Any] = {"epochs": 3, "eval_every": 39, "world": {"n": 10000, "seed": 2002}}

#: ``mmkit train NAME``
CHECKPOINTS: dict[str, CheckpointSpec] = {
    "joint_world": _spec("joint_world", "image + text + sound dual encoder, InfoNCE (CLIP-style), "
                         "conv stages fine-tuned, the demo's model", 900, threads=2,
                         **MAIN_CHANGES),
    "joint_vse": _spec("joint_vse", "recipe comparison: VSE, sum of hinges", 200,
                       loss="vse", **RECIPE_BUDGET),
    "joint_vsepp": _spec("joint_vsepp", "recipe comparison: VSE++, hardest negative", 200,
                         loss="vsepp", **RECIPE_BUDGET),
    "joint_clip": _spec("joint_clip", "recipe comparison: symmetric InfoNCE, learnable "
                        "temperature (CLIP-style)", 200, loss="infonce", **RECIPE_BUDGET),
    "joint_effnet": _spec("joint_effnet", "recipe comparison: InfoNCE with the frozen ImageNet "
                          "EfficientNet-Lite0 and a trainable head", 300, loss="infonce",
                          image_tower="effnet", image_init=None, **RECIPE_BUDGET),
}
