"""Training a small ``CLIPModel`` contrastively on world scenes, and its checkpoint
``clip_world`` (:data:`CHECKPOINTS`).

:func:`train_clip_style` trains the tokenizer on the training world's captions
(:func:`~mmkit.encoders.clip.tokenization.train_caption_tokenizer`), builds the model of a
:class:`~mmkit.encoders.clip.configuration.ClipStyleConfig`
(:func:`~mmkit.encoders.clip.modeling.build_clip_style`) and trains it with
``CLIPModel(return_loss=True)`` on fresh scenes of seed 1500; held-out scenes of seed 1501 are
scored before and after (:func:`~mmkit.encoders.evaluation.retrieval_metrics`).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from mmkit._setup import pick_device
from mmkit.checkpoints import CheckpointSpec, Trained
from mmkit.data import World
from mmkit.encoders.clip.configuration import ClipStyleConfig, clip_style_config
from mmkit.encoders.clip.modeling import ClipStyle, build_clip_style
from mmkit.encoders.clip.tokenization import train_caption_tokenizer
from mmkit.encoders.evaluation import retrieval_metrics
from mmkit.errors import InputError
from mmkit.training import LossLog, progress_bar, seeded

__all__ = ["train_clip_style", "CLIP_CONFIG", "CHECKPOINTS"]


def _world(n: int, seed: int) -> World:
    return World(n=int(n), seed=int(seed), progress=False)


def _val_metrics(model: ClipStyle, world: World) -> dict[str, float]:
    m = retrieval_metrics(model, world, np.flatnonzero(world.split != "unseen"))
    return {"t2i_R@1": m["text->image"]["R@1"], "i2t_R@1": m["image->text"]["R@1"],
            "t2i_mAP": m["text->image"]["mAP"], "i2t_mAP": m["image->text"]["mAP"]}


def train_clip_style(config: ClipStyleConfig | Mapping[str, Any], progress: bool = True
                     ) -> Trained:
    """Train a small ``CLIPModel`` contrastively on fresh scenes. ``config``: a
    :class:`~mmkit.encoders.clip.configuration.ClipStyleConfig` or its dict (checked first:
    one line).

    Scenes: ``World(n=n_train, seed=world_seed)`` (all of them; never the seed-0 evaluation
    world). The tokenizer is trained on their captions first (:func:`train_caption_tokenizer`;
    its size must be the config's ``vocab_size``). Each step draws ``batch_size`` distinct
    images and ONE of each image's captions, so the diagonal InfoNCE of
    ``CLIPModel(..., return_loss=True)`` (row i's caption belongs to image i, every other
    image of the batch is a negative) never calls a caption of the same image a negative;
    other images that a partial caption also fits remain as soft false negatives, as in any
    in-batch contrastive training. AdamW with warm-up and a cosine schedule
    (``transformers.get_cosine_schedule_with_warmup``); the temperature is CLIP's learnable
    ``logit_scale``.

    Metrics (held out): text->image and image->text R@1 / mAP over the seen-class scenes of
    ``World(n=n_val, seed=world_seed + 1)``, before and after training, and the mean training
    loss of the first and last 20 steps.
    """
    from transformers import get_cosine_schedule_with_warmup

    cfg = clip_style_config(config)
    device = pick_device()
    rng = seeded(cfg.seed)
    world = _world(cfg.n_train, cfg.world_seed)
    val = _world(cfg.n_val, cfg.world_seed + 1)
    tok = train_caption_tokenizer(world.captions, cfg.bpe_vocab, cfg.max_length)
    if len(tok) != cfg.vocab_size:
        raise InputError(f"clip_world: the trained tokenizer has {len(tok)} tokens but the "
                         f"config says vocab_size={cfg.vocab_size}: retrain with "
                         f"vocab_size={len(tok)}")
    model = build_clip_style(cfg)
    model.set_tokenizer(tok)
    before = _val_metrics(model, val)
    pixels = torch.cat([model.pixel_values(world.images[s:s + 1000])
                        for s in range(0, world.config.n, 1000)])
    enc = model.tokenize(world.captions)
    ids, mask = enc["input_ids"], enc["attention_mask"]
    per = world.config.captions_per_image
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    # weight decay on matrices only (not on biases, norms, or the temperature logit_scale)
    groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": cfg.weight_decay},
              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=cfg.lr)
    sched = get_cosine_schedule_with_warmup(opt, cfg.warmup, cfg.steps)
    log = LossLog()
    for _ in progress_bar(range(cfg.steps), progress=progress, desc="clip_world steps"):
        idx = rng.choice(world.config.n, cfg.batch_size, replace=False)
        caps = torch.from_numpy(idx * per + rng.integers(0, per, len(idx)))
        m = mask[caps]
        width = int(m.sum(1).max())
        out = model.clip(input_ids=ids[caps, :width].to(device),
                         attention_mask=m[:, :width].to(device),
                         pixel_values=pixels[torch.from_numpy(idx)].to(device),
                         return_loss=True)
        opt.zero_grad()
        out.loss.backward()
        nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        with torch.no_grad():       # CLIP clamps the temperature at 100
            model.clip.logit_scale.clamp_(0, float(np.log(100)))
        log.add(out.loss)
    model = model.cpu().eval()
    after = _val_metrics(model, val)
    metrics = {**log.metrics("train_loss_first_20_steps", "train_loss_last_20_steps", size=20),
               "temperature": round(float(1 / model.clip.logit_scale.detach().exp()), 4)}
    metrics.update({f"val_{k}_before": round(v, 4) for k, v in before.items()})
    metrics.update({f"val_{k}": round(v, 4) for k, v in after.items()})
    return Trained(model, metrics=metrics, data={
        "world": {"n": cfg.n_train, "seed": cfg.world_seed},
        "val_world": {"n": cfg.n_val, "seed": cfg.world_seed + 1,
                      "images": "seen-class scenes"},
        "steps": cfg.steps, "batch_size": cfg.batch_size,
        "objective": "CLIPModel(return_loss=True): symmetric InfoNCE, one caption per image",
        "tokenizer": f"byte-level BPE trained on the training world's captions, {len(tok)} "
                     "tokens, stored in the tokenizer_json buffer",
        "parameters": int(sum(p.numel() for p in model.clip.parameters()))})


#: the ``clip_world`` checkpoint's config: the defaults of
#: :class:`~mmkit.encoders.clip.configuration.ClipStyleConfig`, as a dict
CLIP_CONFIG: dict[str, Any] = ClipStyleConfig().to_dict()

#: ``mmkit train clip_world``
CHECKPOINTS: dict[str, CheckpointSpec] = {
    "clip_world": CheckpointSpec(
        name="clip_world", build=build_clip_style, train=train_clip_style,
        config=CLIP_CONFIG, seconds=480, threads=1,
        description="transformers CLIPModel (ViT 3x96 + text 3x96, 0.8M params, BPE), "
                    "contrastive on world scenes"),
}
