"""One space for images, captions and sounds: the kit's dual (here: triple) encoder.

Three towers, each ending in a projection head into the same ``dim``-dimensional space:

- **image**: :class:`~mmkit.features.visual_cnn.SmallCNN` (the features chapter's CNN: three
  conv stages and a ViT block over the 8 x 8 cells, whose position embeddings keep *where*
  things are, which spatial captions need), or the ImageNet-pretrained EfficientNet-Lite0
  with a trainable head (:class:`PretrainedImageTower`);
- **text**: a bidirectional GRU over learned word embeddings
  (:class:`~mmkit.features.text_encoders.GRUTextEncoder`);
- **sound**: the log-mel CNN of the audio chapter (:class:`~mmkit.features.audio_cnn.LogMelCNN`).

Training (:func:`train_joint`) draws **fresh scenes** from the world's generator (a seed other
than the evaluation world's 0), never the scenes it is evaluated on, and minimises a
cross-modal loss between images and captions plus the same loss between images and sounds:
VSE (sum of hinges), VSE++ (hardest negative) or CLIP's symmetric InfoNCE with a learnable
temperature (``config["loss"]``). While it trains it measures, every ``eval_every`` steps,
the fixed protocol (:func:`protocol_results`: the demo world, n = 2,500, seed 0, its test
split of 441 images and 2,205 captions); those numbers are logged for the learning curves and
never used to pick a model.

Checkpoints (``mmkit train NAME``): ``joint_world`` (the demo's model: InfoNCE, the image
tower's conv stages fine-tuned rather than frozen, the longest training, :data:`MAIN_CHANGES`),
and for notebook 04's comparison at one equal, shorter budget
(:data:`RECIPE_BUDGET`) ``joint_vse``, ``joint_vsepp``, ``joint_clip`` and ``joint_effnet``
(the pretrained backbone).
"""
from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from mmkit.checkpoints import CheckpointSpec, Trained
from mmkit.errors import InputError

#: the evaluation protocol of the demo, the README and the benchmarks
PROTOCOL: dict[str, int] = {"n": 2500, "seed": 0}
#: the sound backbone: the audio chapter's ``audio_cnn_sound`` (its weights initialise it)
SOUND_BACKBONE: dict[str, Any] = {"channels": [16, 32, 64], "out_dim": 128}
#: the directions the joint model is trained for (speech joins with :mod:`mmkit.encoders.speech`)
JOINT_DIRECTIONS: tuple[str, ...] = ("text->image", "image->text", "image->image", "audio->image")


# ============================================================================ towers
class PretrainedImageTower(nn.Module):
    """ImageNet EfficientNet-Lite0 (frozen, offline weights) + a trainable MLP head.

    ``forward(float32 [N, 3, S, S] ImageNet-normalised) -> float32 [N, dim]``. The backbone's
    pooled 1280-d features of a fixed image never change, so :func:`train_joint` computes
    them once (:meth:`features`) and trains only :attr:`head` on them.
    """

    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def __init__(self, dim: int, input_size: int = 128, pretrained: bool = True) -> None:
        super().__init__()
        from mmkit.features.visual_cnn import IMAGENET_MEAN, IMAGENET_STD, PretrainedEncoder

        self.backbone = PretrainedEncoder(input_size=input_size, pretrained=pretrained)
        for p in self.backbone.parameters():
            p.requires_grad_(False)
        self.mean, self.std = IMAGENET_MEAN, IMAGENET_STD
        self.input_size = input_size
        self.head = nn.Sequential(nn.Linear(self.backbone.out_dim, 512), nn.GELU(),
                                  nn.Linear(512, dim))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The frozen backbone's pooled features, float32 [N, 1280]."""
        self.backbone.eval()
        with torch.no_grad():
            return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class JointModel(nn.Module):
    """Image, text and sound towers into one space of size ``config["dim"]``.

    The ``encode_*`` methods take tensors and return UNnormalised float32 [N, dim]; the
    ``embed_*`` methods take raw inputs (uint8 images, strings, waveforms), batch them without
    gradients and return L2-normalised float32 numpy arrays [N, dim].
    """

    def __init__(self, config: dict) -> None:
        super().__init__()
        from mmkit.data.vocab import ATTRIBUTES  # noqa: F401  (the world's vocabulary is fixed)
        from mmkit.features.audio_cnn import SOUND_MEL, LogMelCNN
        from mmkit.features.text import WordTokenizer
        from mmkit.features.text_encoders import GRUTextEncoder
        from mmkit.features.visual_cnn import SmallCNN

        self.config = dict(config)
        dim = int(config["dim"])
        if config.get("image_tower", "cnn") == "effnet":
            self.image = PretrainedImageTower(dim, config.get("effnet_size", 128),
                                              pretrained=config.get("pretrained", True))
        else:
            self.image = SmallCNN(width=config["width"], embed_dim=dim, se=config.get("se", False),
                                  cbam=config.get("cbam", False), vit=True,
                                  heads=config.get("heads", 4))
        tok = WordTokenizer.world()
        self.tokenizer = tok
        self.text = GRUTextEncoder(tok.vocab_size, config["word_dim"], config["hidden"], dim,
                                   bidirectional=True)
        self.text.tokenizer = tok
        sound = dict(config.get("audio_backbone", SOUND_BACKBONE))
        self.audio = LogMelCNN(n_mels=SOUND_MEL["n_mels"], channels=tuple(sound["channels"]),
                               out_dim=sound["out_dim"], n_fft=SOUND_MEL["n_fft"],
                               hop_length=SOUND_MEL["hop_length"])
        self.audio_head = nn.Sequential(nn.Linear(sound["out_dim"], 512), nn.GELU(),
                                        nn.Linear(512, dim))
        self.audio_frozen = bool(config.get("audio_frozen", True))
        if self.audio_frozen:
            for p in self.audio.parameters():
                p.requires_grad_(False)
        # CLIP's learnable temperature lives in the loss during training; the model keeps the
        # final value for reference (it does not change rankings)
        self.register_buffer("logit_scale", torch.tensor(math.log(1 / 0.07)))
        self.dim = dim

    # ---------------------------------------------------------------- tensors
    @property
    def frozen_cnn(self) -> bool:
        """True when the CNN's conv stages are frozen (``config["image_frozen"]``): only its
        attention blocks, ViT block and projection train, on a feature map computed once."""
        return isinstance(self.image, nn.Module) and not isinstance(
            self.image, PretrainedImageTower) and bool(self.config.get("image_frozen", False))

    def image_map(self, x: torch.Tensor) -> torch.Tensor:
        """The CNN's conv stages: [N, 3, 64, 64] -> feature map [N, 4*width, 8, 8] (no
        gradient when frozen)."""
        cnn = self.image
        if self.frozen_cnn:
            with torch.no_grad():
                return cnn.stage3(cnn.stage2(cnn.stage1(x)))
        return cnn.stage3(cnn.stage2(cnn.stage1(x)))

    def image_from_map(self, h: torch.Tensor) -> torch.Tensor:
        """The trainable top of the CNN: attention blocks, ViT block, projection -> [N, dim]."""
        cnn = self.image
        if cnn.se is not None:
            h = cnn.se(h)
        if cnn.cbam is not None:
            h = cnn.cbam(h)
        pooled = cnn.vit(h)[:, 0]
        return cnn.proj(cnn.norm(pooled))

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.image, PretrainedImageTower):
            return self.image(x)
        return self.image_from_map(self.image_map(x))

    def encode_text(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.text(ids, lengths)

    def audio_features(self, mels: torch.Tensor, lengths: torch.Tensor | None = None
                       ) -> torch.Tensor:
        """The sound backbone's embedding [N, 128] of log-mels [N, 1, n_mels, T]."""
        if self.audio_frozen:
            self.audio.eval()
            with torch.no_grad():
                return self.audio(mels, lengths)
        return self.audio(mels, lengths)

    def encode_audio(self, mels: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.audio_head(self.audio_features(mels, lengths))

    # ---------------------------------------------------------------- raw inputs
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def image_tensor(self, images: np.ndarray) -> torch.Tensor:
        """uint8 [N, H, W, 3] -> the image tower's input, float32 [N, 3, S, S]."""
        from mmkit.features.visual_cnn import images_to_tensor

        size = getattr(self.image, "input_size", None) or 64
        return images_to_tensor(images, self.image.mean, self.image.std, size, self.device)

    @torch.no_grad()
    def embed_images(self, images: np.ndarray, batch_size: int = 256,
                     progress: bool = False) -> np.ndarray:
        """uint8 [N, H, W, 3] -> L2-normalised float32 [N, dim]."""
        from tqdm.auto import tqdm

        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3 or len(images) == 0:
            raise InputError(f"embed_images expects uint8 [N, H, W, 3] with N >= 1, got shape "
                             f"{images.shape}")
        return self._run([self.encode_image(self.image_tensor(images[s:s + batch_size]))
                          for s in tqdm(range(0, len(images), batch_size), desc="embed images",
                                        leave=False, disable=not progress)])

    @torch.no_grad()
    def embed_texts(self, texts: Sequence[str], batch_size: int = 512) -> np.ndarray:
        """M strings -> L2-normalised float32 [M, dim] (words outside the world's vocabulary
        are counted in ``self.text.last_report``)."""
        if len(texts) == 0:
            raise InputError("embed_texts: no texts given")
        was = self.training
        self.eval()
        out = self.text.embed_texts(list(texts), batch_size=batch_size, normalize=True)
        self.train(was)
        return out

    @torch.no_grad()
    def embed_audio(self, clips: np.ndarray, sr: int) -> np.ndarray:
        """float [N, T] waveforms at ``sr`` -> L2-normalised float32 [N, dim]."""
        from mmkit.features.audio_cnn import embed_audio

        was = self.training
        self.eval()
        feats = embed_audio(self.audio, clips, sr, batch_size=256)
        out = self.audio_head(torch.from_numpy(feats).to(self.device)).cpu().numpy()
        self.train(was)
        return _normalise(out)

    @torch.no_grad()
    def embed_log_mels(self, mels: np.ndarray) -> np.ndarray:
        """Sound log-mels float32 [N, n_mels, T] -> L2-normalised float32 [N, dim]."""
        from mmkit.features.audio_cnn import embed_log_mels

        was = self.training
        self.eval()
        feats = embed_log_mels(self.audio, mels, batch_size=256)
        out = self.audio_head(torch.from_numpy(feats).to(self.device)).cpu().numpy()
        self.train(was)
        return _normalise(out)

    def _run(self, parts: list[torch.Tensor]) -> np.ndarray:
        return _normalise(torch.cat(parts).float().cpu().numpy())

    def train(self, mode: bool = True) -> "JointModel":
        super().train(mode)
        if isinstance(self.image, PretrainedImageTower):
            self.image.backbone.eval()
        if self.audio_frozen:
            self.audio.eval()
        if self.frozen_cnn:
            for part in (self.image.stage1, self.image.stage2, self.image.stage3):
                part.eval()
        return self


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-12)


def build_joint(config: dict) -> JointModel:
    """The untrained model of ``config`` (always the same architecture for one config)."""
    return JointModel(config)


# ============================================================================ data
class SceneData:
    """The training tensors of one world, computed once: images uint8 [N, H, W, 3] (or the
    frozen backbone's features), caption ids [M, L] with lengths [M], sound log-mels
    float32 [N, n_mels, T]."""

    def __init__(self, world: Any, model: JointModel, progress: bool = False) -> None:
        from mmkit.features.audio import log_mel
        from mmkit.features.audio_cnn import SOUND_MEL

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
            from tqdm.auto import tqdm

            model.train()
            maps = []
            for s in tqdm(range(0, self.n, 256), desc="frozen CNN feature maps", leave=False,
                          disable=not progress):
                maps.append(model.image_map(model.image_tensor(self.images[s:s + 256])).half())
            self.image_maps = torch.cat(maps)
        if isinstance(model.image, PretrainedImageTower):
            from mmkit.features.cache import array_key, cached

            def compute() -> np.ndarray:
                from tqdm.auto import tqdm

                out = []
                for s in tqdm(range(0, self.n, 128), desc="EfficientNet-Lite0 features",
                              leave=False, disable=not progress):
                    out.append(model.image.features(model.image_tensor(self.images[s:s + 128])))
                return torch.cat(out).numpy()

            feats = cached("joint-effnet-features",
                           {"images": array_key(self.images), "size": model.image.input_size},
                           compute)
            self.image_features = torch.from_numpy(np.asarray(feats, np.float32))

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
    from mmkit.losses import SymmetricInfoNCE, VSEHingeLoss

    if name == "vse":
        return VSEHingeLoss(margin=margin, max_violation=False)
    if name == "vsepp":
        return VSEHingeLoss(margin=margin, max_violation=True)
    if name == "infonce":
        return SymmetricInfoNCE(temperature=temperature, learnable=True)
    raise InputError(f"unknown joint loss {name!r}; choose vse, vsepp or infonce")


# ============================================================================ evaluation
class ProtocolData:
    """The fixed evaluation protocol's inputs (:data:`PROTOCOL` world, its test split),
    built once and reused by every evaluation during training."""

    def __init__(self, progress: bool = False) -> None:
        from mmkit.data.world import World, WorldConfig

        self.world = World(WorldConfig(**PROTOCOL), progress=progress)
        self.test = self.world.indices("test")
        self.images = self.world.images[self.test]
        self.captions = [self.world.captions[j] for j in self.world.caption_indices(self.test)]
        self.audio = self.world.audio[self.test]


def protocol_results(model: JointModel, data: ProtocolData | None = None,
                     directions: Sequence[str] = JOINT_DIRECTIONS) -> dict[str, dict[str, float]]:
    """``{direction: {metric: value}}`` of ``model`` on the protocol's test split (every
    metric of :data:`mmkit.methods.evaluate.METRICS`)."""
    from mmkit.data.directions import get_direction
    from mmkit.methods.evaluate import Embedded, score_direction, score_metrics

    data = data or ProtocolData()
    w, test = data.world, data.test
    vectors = {"image": model.embed_images(data.images),
               "text": model.embed_texts(data.captions),
               "audio": model.embed_audio(data.audio, w.config.sample_rate)}
    out = {}
    for name in directions:
        d = get_direction(name)
        qids, gids = w.direction_ids(d, test)
        run = score_direction(w, d, test, Embedded(vectors[d.query], qids),
                              Embedded(vectors[d.gallery], gids))
        res = score_metrics(run.scores, run.relevance, run.positives)
        out[name] = {k: round(float(v), 4) for k, v in res.items()}
    return out


# ============================================================================ training
def train_joint(config: dict, progress: bool = True) -> Trained:
    """Train a :class:`JointModel` on ``config["world"]`` (fresh scenes: ``{"n", "seed"}``,
    seed != 0) for ``config["epochs"]`` epochs (or until ``config["seconds"]`` of wall time,
    when set: a budget makes the result depend on the machine's speed, so checkpoints use
    epochs).

    Each step takes ``batch_size`` scenes, one random caption of each (so the batch has no
    two captions of one image: no false negatives) and their sounds, and minimises
    ``loss(image, caption) + audio_weight * loss(image, sound)``. AdamW, linear warm-up and
    cosine decay over the planned steps. ``history`` (in the returned data) holds the
    protocol's R@1 and R@10 every ``eval_every`` steps, with the wall time (logged only).
    """
    from tqdm.auto import tqdm

    from mmkit.data.world import World

    if int(config["world"]["seed"]) == PROTOCOL["seed"]:
        raise InputError("train_joint: the training world must not be the evaluation world "
                         f"(seed {PROTOCOL['seed']}); use fresh scenes of another seed")
    t0 = time.perf_counter()
    seed = int(config.get("seed", 0))
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = build_joint(config)
    _initialise(model, config)
    world = World(n=config["world"]["n"], seed=config["world"]["seed"], progress=progress)
    data = SceneData(world, model, progress)
    protocol = ProtocolData() if config.get("eval_every") else None
    loss_it = make_loss(config["loss"], config["margin"], config["temperature"])
    loss_ia = make_loss(config["loss"], config["margin"], config["temperature"])
    params = [p for p in model.parameters() if p.requires_grad]
    temperatures = list(loss_it.parameters()) + list(loss_ia.parameters())
    # CLIP keeps its temperature out of weight decay (decay would pull the scale towards 1)
    opt = torch.optim.AdamW([{"params": params}, {"params": temperatures, "weight_decay": 0.0}],
                            lr=config["lr"], weight_decay=config["weight_decay"])
    # zero-shot stays zero-shot: scenes of the evaluation world's unseen classes are never
    # trained on (the fresh world has its own unseen split; it is not the one evaluated)
    held_out = protocol_unseen_classes()
    pool = np.flatnonzero(~np.isin(world.labels, held_out))
    bs = int(config["batch_size"])
    per_epoch = len(pool) // bs
    planned = int(config["epochs"]) * per_epoch
    if config.get("max_steps"):   # an equal step budget across training-set sizes
        planned = min(planned, int(config["max_steps"]))
    if config.get("seconds"):   # a time budget: plan the schedule from the measured step time
        planned = max(1, planned)
    warm = max(1, int(0.05 * planned))

    def lr_at(step: int, total: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))

    history: list[dict[str, float]] = []
    losses: list[float] = []
    budget = float(config.get("seconds") or math.inf)
    train_start = time.perf_counter()
    every = int(config.get("eval_every") or 0)
    step, total = 0, planned
    bar = tqdm(total=planned, desc=f"train joint ({config['loss']})", leave=False,
               disable=not progress)
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
                g["lr"] = config["lr"] * lr_at(step, total)
            zi, zt, za = data.batch(model, order[b * bs:(b + 1) * bs], rng)
            loss = loss_it(zi, zt, None) + config["audio_weight"] * loss_ia(zi, za, None)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            step += 1
            bar.update(1)
            if step % 20 == 0:
                bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
    bar.close()
    train_seconds = time.perf_counter() - train_start
    if protocol is not None:
        history.append(_log_point(model, protocol, step, train_seconds))
    model.eval()
    if hasattr(loss_it, "logit_scale"):   # the clamped value the last step would have used
        model.logit_scale.fill_(math.log(float(loss_it.logit_scale)))
    model.cpu()
    window = max(1, min(20, len(losses) // 4))   # mean loss of the first and last steps
    metrics = {"train_loss_start": round(float(np.mean(losses[:window])), 4),
               "train_loss_end": round(float(np.mean(losses[-window:])), 4),
               "steps": step, "train_seconds": round(train_seconds, 1)}
    if protocol is not None and history:
        last = history[-1]
        metrics.update({k: v for k, v in last.items() if k.startswith("protocol_")})
    if hasattr(loss_it, "temperature"):
        metrics["temperature_text"] = round(float(loss_it.temperature), 4)
        metrics["temperature_audio"] = round(float(loss_ia.temperature), 4)
    return Trained(model, metrics, {
        "world": dict(config["world"]), "steps": step, "batch_size": bs,
        "train_scenes": int(len(pool)), "epochs_seen": round(step * bs / len(pool), 2),
        "excluded_classes": [int(c) for c in held_out], "loss": config["loss"],
        "history": history, "setup_seconds": round(train_start - t0, 1),
        "protocol": {**PROTOCOL, "split": "test", "note": "logged during training, never used "
                                                         "to select or stop"}})


def protocol_unseen_classes() -> np.ndarray:
    """The classes the evaluation world holds out (its ``unseen`` split): int [8]. Training
    never sees them, so the protocol's unseen split measures zero-shot retrieval."""
    from mmkit.data.world import World, WorldConfig

    return World(WorldConfig(n=1, seed=PROTOCOL["seed"])).unseen_classes


def _initialise(model: JointModel, config: dict) -> None:
    """Start towers from the feature chapters' committed checkpoints (``audio_init``,
    ``image_init``: checkpoint names, or None for random weights)."""
    from mmkit.checkpoints import load

    if config.get("audio_init"):
        sound, _ = load(config["audio_init"])
        missing = model.audio.load_state_dict(sound.state_dict(), strict=False)
        if missing.missing_keys:
            raise InputError(f"{config['audio_init']} does not fit the sound tower: "
                             f"missing {missing.missing_keys[:3]}")
    if config.get("image_init"):
        cnn, _ = load(config["image_init"])
        state = {k: v for k, v in cnn.state_dict().items()
                 if not k.startswith(("proj.", "head."))}
        result = model.image.load_state_dict(state, strict=False)
        wrong = [k for k in result.missing_keys if not k.startswith(("proj.", "head."))]
        if wrong or result.unexpected_keys:
            raise InputError(f"{config['image_init']} does not fit the image tower (width, "
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
#: architecture and optimisation shared by every joint checkpoint
BASE_CONFIG: dict[str, Any] = {
    "dim": 256, "image_tower": "cnn", "width": 24, "se": True, "cbam": True, "heads": 4,
    "word_dim": 64, "hidden": 192,
    "audio_backbone": SOUND_BACKBONE, "audio_init": "audio_cnn_sound", "audio_frozen": True,
    "image_init": "visual_small_cnn", "image_frozen": True, "loss": "infonce", "margin": 0.2, "temperature": 0.07,
    "audio_weight": 0.5, "lr": 2e-3, "weight_decay": 0.01, "batch_size": 128, "epochs": 10,
    "seconds": None, "eval_every": 125, "seed": 0, "world": {"n": 20000, "seed": 2001}}


def _spec(name: str, description: str, seconds: float, threads: int = 1,
          **changes: Any) -> CheckpointSpec:
    return CheckpointSpec(name=name, build=build_joint, train=train_joint,
                          config={**BASE_CONFIG, **changes}, description=description,
                          seconds=seconds, threads=threads)


#: the demo's model (``joint_world``) against the recipes: the image tower's conv stages are
#: fine-tuned (not frozen: frozen, they keep what the features chapter trained them for, the
#: main object's class, and miss the sign, the second object and the relation), longer, on
#: both cores (15 minutes on 2 cores, setup included)
MAIN_CHANGES: dict[str, Any] = {"image_frozen": False, "epochs": 13, "eval_every": 272}

#: ``mmkit train NAME``; the recipe comparison of notebook 04 uses one shorter, equal budget
#: the recipe comparison's shared, shorter budget (fresh scenes of their own seed)
RECIPE_BUDGET: dict[str, Any] = {"epochs": 3, "eval_every": 39, "world": {"n": 10000, "seed": 2002}}

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
