"""The one training loop of the challenges' image encoder (:class:`~mmkit.challenges.model.
ChallengeNet`), its config, and the checkpoint spec factory every challenge module uses.

A config switches the pieces each challenge compares, at one budget (same steps and batch):

- ``retrieval``: ``"proxy"`` (normalised softmax over learned class proxies, cosine logits
  divided by ``temperature``; Zhai & Wu 2019) or ``"supcon"`` (supervised NT-Xent over the
  batch's same-class pairs, :class:`mmkit.losses.NTXentLoss`);
- class imbalance: ``sampler="balanced"`` (classes drawn uniformly, then a scene of the class),
  ``reweight`` (per-sample weight ``(1 / class frequency) ** reweight``, normalised to mean 1
  over the training set), ``logit_adjust`` (``tau``: the proxy logits plus ``tau * log prior``
  during training only; Menon et al. 2021);
- multi-task: ``class_head`` and ``attribute_head``, weights of a cross entropy over the
  classes and a binary cross entropy over the main object's attributes;
- cross-domain: ``style_augment`` (:func:`~mmkit.challenges.data.style_augment` on every
  batch) and ``style_adversary`` (weight of a style classifier behind a gradient reversal
  layer, fed the labelled batch and a batch of unlabelled scenes of ``target_styles``, with
  DANN's lambda schedule :func:`mmkit.align.grl.grl_lambda`).

The loss of a step: ``retrieval + class_head * CE + attribute_head * BCE + style_adversary *
CE(style | reversed features)``.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from mmkit.align.grl import grad_reverse, grl_lambda
from mmkit.challenges.data import SceneSet, style_augment, train_scenes
from mmkit.challenges.evaluate import class_retrieval
from mmkit.challenges.model import N_CLASSES, ChallengeNet
from mmkit.checkpoints import CheckpointSpec, Trained
from mmkit.configs import Checks, DictConfig, TrainWorld, check_rate, counts
from mmkit.losses import NTXentLoss
from mmkit.training import LossLog, progress_bar, seeded
from mmkit.validate import number, positive_int

RETRIEVAL_LOSSES = ("proxy", "supcon")
SAMPLERS = ("uniform", "balanced")


@dataclass(frozen=True)
class ChallengeConfig(DictConfig):
    """How one challenge model is trained (validated; every problem in one line)."""

    world: TrainWorld = TrainWorld(n=4000, seed=1)
    imbalance: float = 1.0
    style_probs: tuple[float, float, float] = (0.6, 0.2, 0.2)
    target_styles: tuple[float, float, float] | None = None
    width: int = 32
    dim: int = 128
    steps: int = 600
    batch: int = 128
    lr: float = 2e-3
    retrieval: str = "proxy"
    temperature: float = 0.1
    sampler: str = "uniform"
    reweight: float = 0.0
    logit_adjust: float = 0.0
    class_head: float = 0.0
    attribute_head: float = 0.0
    embed_attributes: float = 0.0
    style_augment: bool = False
    style_adversary: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        checks = Checks("ChallengeConfig")
        object.__setattr__(self, "world", TrainWorld.coerce(self.world, checks, "world"))
        for name in ("style_probs", "target_styles"):
            value = getattr(self, name)
            if value is None and name == "target_styles":
                continue
            if not (isinstance(value, (list, tuple)) and len(value) == 3
                    and all(isinstance(v, (int, float)) and v >= 0 for v in value)
                    and abs(sum(value) - 1) < 1e-6):
                checks.add(f"{name} must be 3 probabilities (photo, sketch, painting) summing "
                           f"to 1, got {value!r}")
            else:
                object.__setattr__(self, name, tuple(float(v) for v in value))
        checks(number, self.imbalance, "imbalance", low=1)
        for name in ("width", "dim", "steps", "batch"):
            checks(positive_int, getattr(self, name), name)
        check_rate(checks, self.lr, "lr")
        checks(number, self.temperature, "temperature", low=0, low_open=True)
        checks.choice(self.retrieval, "retrieval", RETRIEVAL_LOSSES)
        checks.choice(self.sampler, "sampler", SAMPLERS)
        for name in ("reweight", "logit_adjust", "class_head", "attribute_head",
                     "embed_attributes", "style_adversary"):
            checks(number, getattr(self, name), name, low=0)
        checks.flag(self.style_augment, "style_augment")
        if self.style_adversary and self.target_styles is None:
            checks.add("style_adversary needs target_styles (the unlabelled scenes' styles)")
        if counts(self, "batch") and self.retrieval == "supcon" and self.batch < 4:
            checks.add("batch must be at least 4 for the supcon loss")
        checks.done()


def build_challenge(config: ChallengeConfig | Mapping[str, Any]) -> ChallengeNet:
    """The untrained :class:`ChallengeNet` of ``config``."""
    cfg = ChallengeConfig.from_dict(config)
    return ChallengeNet(width=cfg.width, dim=cfg.dim, embed_attributes=cfg.embed_attributes)


def class_prior(labels: np.ndarray) -> np.ndarray:
    """Empirical class frequencies of ``labels`` [N]: float [C] summing to 1 (a class never
    seen gets half a count, so its log stays finite)."""
    counts_ = np.bincount(labels, minlength=N_CLASSES).astype(np.float64)
    counts_ = np.where(counts_ == 0, 0.5, counts_)
    return counts_ / counts_.sum()


def sample_batches(labels: np.ndarray, batch: int, steps: int, sampler: str,
                   rng: np.random.Generator) -> list[np.ndarray]:
    """``steps`` index batches of size ``batch`` into ``labels`` [N]: ``"uniform"`` walks
    shuffled epochs; ``"balanced"`` draws each item's class uniformly among the classes
    present, then one of its scenes (class-balanced sampling)."""
    n = len(labels)
    if sampler == "uniform":
        order: list[int] = []
        out = []
        for _ in range(steps):
            while len(order) < batch:
                order.extend(rng.permutation(n).tolist())
            out.append(np.array(order[:batch]))
            del order[:batch]
        return out
    classes = np.unique(labels)
    members = {c: np.flatnonzero(labels == c) for c in classes}
    out = []
    for _ in range(steps):
        picked = rng.choice(classes, size=batch)
        out.append(np.array([rng.choice(members[c]) for c in picked]))
    return out


def step_loss(model: ChallengeNet, cfg: ChallengeConfig, images: torch.Tensor,
              labels: torch.Tensor, attributes: torch.Tensor, weights: torch.Tensor,
              log_prior: torch.Tensor, target: tuple[torch.Tensor, torch.Tensor] | None,
              styles: torch.Tensor, lam: float) -> tuple[torch.Tensor, dict[str, float]]:
    """The loss of one batch (see the module docstring) and its parts as floats."""
    feats = model.features(images)
    z = model.embed(feats)
    parts: dict[str, torch.Tensor] = {}
    if cfg.retrieval == "proxy":
        zp = F.normalize(model.project(feats), dim=1)
        logits = zp @ F.normalize(model.proxies, dim=1).T / cfg.temperature
        if cfg.logit_adjust:
            logits = logits + cfg.logit_adjust * log_prior
        per = F.cross_entropy(logits, labels, reduction="none")
        parts["retrieval"] = (per * weights).mean()
    else:
        parts["retrieval"] = NTXentLoss(temperature=cfg.temperature)(z, labels)
    if cfg.class_head:
        per = F.cross_entropy(model.class_head(feats), labels, reduction="none")
        parts["class"] = cfg.class_head * (per * weights).mean()
    if cfg.attribute_head:
        parts["attribute"] = cfg.attribute_head * F.binary_cross_entropy_with_logits(
            model.attribute_head(feats), attributes)
    if cfg.style_adversary and target is not None:
        t_images, t_styles = target
        both = torch.cat([feats, model.features(t_images)])
        logits = model.style_head(grad_reverse(both, lam))
        parts["style"] = cfg.style_adversary * F.cross_entropy(logits, torch.cat([styles,
                                                                                  t_styles]))
    loss = sum(parts.values())
    return loss, {k: float(v.detach()) for k, v in parts.items()}


def train_challenge(config: ChallengeConfig | Mapping[str, Any],
                    progress: bool = True) -> Trained:
    """Train a :class:`ChallengeNet` on the seen-class scenes of the fresh world
    ``config.world`` (with ``imbalance`` and ``style_probs``); with ``style_adversary``, also
    on unlabelled scenes of another fresh world (seed + 1000) drawn in ``target_styles``.
    Metrics: held-out R@1/mAP of class retrieval on the training world's unseen seed + 2000
    (balanced, the training styles), the start/end losses and the training-set prior's
    head/tail ratio."""
    cfg = ChallengeConfig.from_dict(config)
    rng = seeded(cfg.seed)
    data = train_scenes(cfg.world.n, cfg.world.seed, imbalance=cfg.imbalance,
                        style_probs=cfg.style_probs, progress=progress)
    target: SceneSet | None = None
    if cfg.style_adversary:
        target = train_scenes(cfg.world.n, cfg.world.seed + 1000, style_probs=cfg.target_styles,
                              progress=progress)
    model = build_challenge(cfg)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps,
                                                pct_start=0.15)
    prior = class_prior(data.labels)
    log_prior = torch.tensor(np.log(prior), dtype=torch.float32)
    sample_w = (1.0 / prior[data.labels]) ** cfg.reweight
    sample_w = sample_w / sample_w.mean()
    batches = sample_batches(data.labels, cfg.batch, cfg.steps, cfg.sampler, rng)
    bar = progress_bar(total=cfg.steps, desc="train challenge model", progress=progress)
    log = LossLog(bar)
    for step, rows in enumerate(batches):
        images = data.images[rows]
        if cfg.style_augment:
            images = style_augment(images, rng)
        t = None
        if target is not None:
            t_rows = rng.integers(len(target), size=cfg.batch)
            t = (model.to_tensor(target.images[t_rows]),
                 torch.as_tensor(target.styles[t_rows]))
        loss, _ = step_loss(model, cfg, model.to_tensor(images),
                            torch.as_tensor(data.labels[rows]),
                            torch.as_tensor(data.attributes[rows]),
                            torch.as_tensor(sample_w[rows], dtype=torch.float32), log_prior, t,
                            torch.as_tensor(data.styles[rows]),
                            grl_lambda(step / max(1, cfg.steps - 1)))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        log.add(loss)
    bar.close()
    model.eval()
    held = train_scenes(1000, cfg.world.seed + 2000, style_probs=cfg.style_probs,
                        progress=False)
    emb = model.embed_images(held.images)
    run = class_retrieval(emb, held.labels, emb, held.labels, held.scenes, held.scenes)
    metrics = {**log.metrics("train_loss_start", "train_loss_end"),
               "heldout_r1": round(run.r1, 4), "heldout_map": round(run.map, 4),
               "train_scenes": len(data), "head_tail_ratio": round(
                   float(prior.max() / prior[np.bincount(data.labels, minlength=N_CLASSES)
                                             > 0].min()), 2)}
    world: dict[str, Any] = {"n": cfg.world.n, "seed": cfg.world.seed,
                             "imbalance": cfg.imbalance, "style_probs": list(cfg.style_probs)}
    described: dict[str, Any] = {"world": world, "steps": cfg.steps, "batch": cfg.batch}
    if target is not None:
        described["unlabelled_world"] = {"n": cfg.world.n, "seed": cfg.world.seed + 1000,
                                         "style_probs": list(cfg.target_styles or ())}
    return Trained(model=model, metrics=metrics, data=described)


def challenge_spec(name: str, description: str, seconds: float = 120.0,
                   **overrides: Any) -> CheckpointSpec:
    """The :class:`~mmkit.checkpoints.CheckpointSpec` of a challenge model: the default
    :class:`ChallengeConfig` with ``overrides`` (validated now), trained on one thread (the
    weights are then byte-identical when retrained on the same machine)."""
    config = ChallengeConfig.from_dict({**ChallengeConfig().to_dict(), **overrides})
    return CheckpointSpec(name=name, build=build_challenge, train=train_challenge,
                          config=config.to_dict(), description=description, seconds=seconds,
                          threads=1)
