"""ACMR-style adversarial cross-modal alignment (Wang et al. 2017) on frozen features.

Per modality a **feature projector** (an MLP) maps frozen unimodal features
(:mod:`mmkit.align.features`) into one ``dim``-dimensional space (L2-normalised). Three things
shape that space:

- **similarity terms**: CLIP's symmetric InfoNCE between each image and its caption (and its
  sound), :class:`mmkit.losses.SymmetricInfoNCE`, fixed temperature;
- **triplet terms**: the bidirectional hinge of VSE (:class:`mmkit.losses.VSEHingeLoss`);
- a **label classifier** on the shared space: the scene's class (64) predicted from every
  modality's embedding, so that the space stays semantic;

and the **adversary**: a modality discriminator (an MLP: which modality did this embedding
come from?) behind a :class:`~mmkit.align.grl.GradientReversal` layer whose strength follows
:func:`~mmkit.align.grl.grl_lambda` (``lambda = adv_weight * (2 / (1 + exp(-10 p)) - 1)``,
``p`` the training progress). The discriminator minimises its cross-entropy; the projectors
receive the reversed gradient and learn to make the modalities indistinguishable. With
``adv_weight = 0`` the same code trains the same model without the adversary (the
discriminator still learns, behind a blocked gradient, and its accuracy is logged): the fair
comparison of notebook 06.

The game between projectors and discriminator settles only when it is damped: the
discriminator is spectrally normalised and learns ``disc_lr_mult`` times faster (two
time-scales), its targets are smoothed, and every learning rate is annealed as in DANN
(``lr / (1 + 10 p) ** 0.75``, ``lr_decay``). Measured on notebook 06's protocol (test-set
probe, 0.75 without the adversary): without the annealing the probe with the adversary stays
at 0.62-0.67 whatever the adversary's weight (1-4) or the discriminator's learning rate; with
a discriminator that batch-normalises its input, a larger weight, longer training or a linear
discriminator made it *worse* (0.87-1.0). The reversed gradient is unbounded, so projectors
that outpace the discriminator overshoot into a configuration where it is confidently wrong
(the modalities swapped, not merged).

Training (:func:`train_aligner`) logs per epoch every loss term, the discriminator's accuracy,
lambda, and on held-out scenes the linear modality probe (:func:`mmkit.align.probe.modality_probe`)
and caption -> image R@1.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from mmkit.align.features import ModalityFeatures
from mmkit.align.grl import GradientReversal, grl_lambda
from mmkit.align.probe import modality_probe
from mmkit.errors import InputError
from mmkit.losses import SymmetricInfoNCE, VSEHingeLoss
from mmkit.metrics import hit_rate_at_k
from mmkit.training import progress_bar, seeded

#: modalities an aligner can project (the first is the one every other is paired with)
MODALITIES: tuple[str, ...] = ("image", "text", "audio")

#: the default training configuration (notebook 06 and the benchmark)
ACMR_CONFIG: dict[str, Any] = {
    "modalities": ["image", "text", "audio"], "in_dim": 128, "hidden": 256, "dim": 64,
    "n_classes": 64, "epochs": 40, "batch_size": 256, "lr": 1e-3, "weight_decay": 1e-4,
    "temperature": 0.1, "margin": 0.2, "triplet_weight": 1.0, "label_weight": 0.5,
    "adv_weight": 1.0, "gamma": 10.0, "disc_hidden": 256, "disc_lr_mult": 8.0,
    "disc_smoothing": 0.1, "max_violation": True, "disc_sn": True, "lr_decay": True,
    "probe_every": 5, "seed": 0,
}


def _mlp(d_in: int, hidden: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.LayerNorm(hidden), nn.GELU(),
                         nn.Linear(hidden, d_out))


class ACMRAligner(nn.Module):
    """Projectors per modality, a label classifier and a modality discriminator.

    ``project(modality, float32 [N, in_dim] raw features) -> float32 [N, dim]`` L2-normalised
    (the input is standardised with the training features' mean and std, kept as buffers);
    ``embed(modality, numpy [N, in_dim]) -> numpy float32 [N, dim]`` without gradients;
    ``discriminate(z [N, dim]) -> logits [N, len(modalities)]`` through the gradient reversal
    layer :attr:`grl`.
    """

    def __init__(self, config: dict) -> None:
        super().__init__()
        self.config = dict(config)
        self.modalities = tuple(config["modalities"])
        bad = [m for m in self.modalities if m not in MODALITIES]
        if bad or len(self.modalities) < 2 or self.modalities[0] != "image":
            raise InputError(f"ACMRAligner: modalities must start with 'image' and name at "
                             f"least two of {MODALITIES}, got {list(self.modalities)}")
        d_in, hidden, dim = int(config["in_dim"]), int(config["hidden"]), int(config["dim"])
        self.proj = nn.ModuleDict({m: _mlp(d_in, hidden, dim) for m in self.modalities})
        for m in self.modalities:
            self.register_buffer(f"mean_{m}", torch.zeros(d_in))
            self.register_buffer(f"std_{m}", torch.ones(d_in))
        self.label_head = nn.Linear(dim, int(config["n_classes"]))
        self.grl = GradientReversal(0.0)
        dh = int(config["disc_hidden"])
        sn = nn.utils.parametrizations.spectral_norm if config.get("disc_sn") else (lambda m: m)
        self.discriminator = nn.Sequential(sn(nn.Linear(dim, dh)), nn.LeakyReLU(0.2),
                                           sn(nn.Linear(dh, dh)), nn.LeakyReLU(0.2),
                                           sn(nn.Linear(dh, len(self.modalities))))
        self.dim = dim

    def set_standardisation(self, feats: dict[str, np.ndarray]) -> None:
        """Store each modality's feature mean and std (float [N, in_dim] training rows)."""
        for m in self.modalities:
            x = torch.as_tensor(np.asarray(feats[m], np.float32))
            getattr(self, f"mean_{m}").copy_(x.mean(0))
            getattr(self, f"std_{m}").copy_(x.std(0).clamp(min=1e-6))

    def project(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        if modality not in self.proj:
            raise InputError(f"this aligner projects {list(self.modalities)}, not {modality!r}")
        x = (x - getattr(self, f"mean_{modality}")) / getattr(self, f"std_{modality}")
        return F.normalize(self.proj[modality](x), dim=-1)

    def discriminate(self, z: torch.Tensor) -> torch.Tensor:
        return self.discriminator(self.grl(z))

    @torch.no_grad()
    def embed(self, modality: str, feats: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        """Frozen features float [N, in_dim] -> shared-space embeddings float32 [N, dim]."""
        feats = np.asarray(feats, np.float32)
        if feats.ndim != 2 or feats.shape[1] != self.config["in_dim"]:
            raise InputError(f"embed({modality!r}): features must be [N, {self.config['in_dim']}],"
                             f" got {feats.shape}")
        was = self.training
        self.eval()
        dev = next(self.parameters()).device
        out = [self.project(modality, torch.from_numpy(feats[s:s + batch_size]).to(dev)).cpu()
               for s in range(0, len(feats), batch_size)]
        self.train(was)
        return torch.cat(out).numpy() if out else np.zeros((0, self.dim), np.float32)


@dataclass
class AlignRun:
    """A trained aligner and its training log: one dict per epoch with the mean of every
    loss term (``sim``, ``triplet``, ``label``, ``adv``), ``disc_acc`` (the discriminator's
    training accuracy), ``lambda``, ``lr`` (the projectors' learning rate at the epoch's end)
    and, on held-out scenes, ``probe_acc`` (linear probe,
    image vs text) and ``val_t2i_r1``."""

    model: ACMRAligner
    history: list[dict[str, float]] = field(default_factory=list)
    config: dict = field(default_factory=dict)


def _pairs(feats: ModalityFeatures, scenes: np.ndarray, rng: np.random.Generator,
           modalities: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Rows of each modality for ``scenes``: the image, one random caption, the sound."""
    per = int(np.bincount(feats.caption_image).max())
    out = {}
    for m in modalities:
        if m == "image":
            out[m] = feats.image[scenes]
        elif m == "audio":
            out[m] = feats.audio[scenes]
        else:
            out[m] = feats.text[scenes * per + rng.integers(per, size=len(scenes))]
    return out


def _check_features(feats: ModalityFeatures, scenes: np.ndarray) -> np.ndarray:
    scenes = np.asarray(scenes, np.int64)
    per = np.bincount(feats.caption_image)
    if len(per) and (per.min() != per.max() or
                     not np.array_equal(feats.caption_image, np.repeat(np.arange(len(per)),
                                                                       per[0]))):
        raise InputError("features: captions must come in equal blocks per scene "
                         "(caption j of scene j // per)")
    if scenes.ndim != 1 or len(scenes) < 2 or scenes.min() < 0 or scenes.max() >= len(feats.image):
        raise InputError(f"scenes must be at least 2 indices into the {len(feats.image)} scenes")
    return scenes


@torch.no_grad()
def heldout_diagnostics(model: ACMRAligner, feats: ModalityFeatures, scenes: np.ndarray,
                        seed: int = 0) -> dict[str, float]:
    """On held-out ``scenes``: the linear probe's image-vs-text accuracy and caption -> image
    R@1 (the caption's own image among the scenes' images)."""

    per = int(np.bincount(feats.caption_image).max())
    caps = (scenes[:, None] * per + np.arange(per)).ravel()
    zi = model.embed("image", feats.image[scenes])
    zt = model.embed("text", feats.text[caps])
    pos = np.repeat(np.arange(len(scenes)), per)[:, None] == np.arange(len(scenes))[None, :]
    r1 = float(hit_rate_at_k(zt @ zi.T, pos, 1).mean())
    return {"probe_acc": modality_probe(zi, zt, seed=seed), "val_t2i_r1": r1}


def discriminator_batch(z: dict[str, torch.Tensor], modalities: tuple[str, ...]
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """What the modality discriminator sees in one step: the embeddings of every modality
    stacked, float [len(modalities) * B, dim] (``z[m]`` float [B, dim] each, in the order of
    ``modalities``), and the modality index of each row, int64 [len(modalities) * B]."""
    sizes = {len(z[m]) for m in modalities}
    if len(sizes) != 1:
        raise InputError(f"discriminator_batch: every modality needs the same batch size, got "
                         f"{ {m: len(z[m]) for m in modalities} }")
    b = sizes.pop()
    return (torch.cat([z[m] for m in modalities]),
            torch.arange(len(modalities)).repeat_interleave(b))


def train_aligner(feats: ModalityFeatures, scenes: np.ndarray, config: dict | None = None,
                  heldout: np.ndarray | None = None, progress: bool = False) -> AlignRun:
    """Train an :class:`ACMRAligner` on the scenes ``scenes`` (indices into ``feats``).

    ``config`` overrides entries of :data:`ACMR_CONFIG` (``adv_weight=0``: no adversary).
    ``heldout``: scenes for the per-epoch probe and R@1 (``None``: not logged).
    Deterministic for a given config and seed (one thread).
    """
    cfg = {**ACMR_CONFIG, **(config or {})}
    unknown = sorted(set(cfg) - set(ACMR_CONFIG))
    if unknown:
        raise InputError(f"train_aligner: unknown config key(s) {', '.join(unknown)}")
    scenes = _check_features(feats, scenes)
    rng = seeded(cfg["seed"])
    model = ACMRAligner(cfg)
    mods = model.modalities
    model.set_standardisation(_pairs(feats, scenes, np.random.default_rng(0), mods))
    sim_loss = SymmetricInfoNCE(temperature=float(cfg["temperature"]), learnable=False)
    trip_loss = VSEHingeLoss(margin=float(cfg["margin"]),
                             max_violation=bool(cfg["max_violation"]))
    # two time-scales: the discriminator learns faster than the projectors it must keep up with
    disc_params = list(model.discriminator.parameters())
    disc_ids = {id(p) for p in disc_params}
    opt = torch.optim.AdamW(
        [{"params": [p for p in model.parameters() if id(p) not in disc_ids]},
         {"params": disc_params, "lr": float(cfg["lr"]) * float(cfg["disc_lr_mult"])}],
        lr=float(cfg["lr"]), weight_decay=float(cfg["weight_decay"]))
    base_lrs = [g["lr"] for g in opt.param_groups]
    bs = min(int(cfg["batch_size"]), len(scenes))
    steps_per_epoch = max(1, len(scenes) // bs)
    epochs = int(cfg["epochs"])
    total = epochs * steps_per_epoch
    labels = torch.as_tensor(feats.labels)
    history: list[dict[str, float]] = []
    step = 0
    for epoch in progress_bar(range(epochs), progress=progress, desc="ACMR"):
        model.train()
        order = rng.permutation(scenes)
        sums = {"sim": 0.0, "triplet": 0.0, "label": 0.0, "adv": 0.0, "disc_acc": 0.0}
        for b in range(steps_per_epoch):
            batch = order[b * bs:(b + 1) * bs]
            prog = step / max(1, total - 1)
            model.grl.lam = float(cfg["adv_weight"]) * grl_lambda(prog, float(cfg["gamma"]))
            if cfg["lr_decay"]:   # DANN's annealing: lr / (1 + 10 p) ** 0.75
                for group, base in zip(opt.param_groups, base_lrs):
                    group["lr"] = base / (1.0 + 10.0 * prog) ** 0.75
            rows = _pairs(feats, batch, rng, mods)
            z = {m: model.project(m, torch.from_numpy(rows[m])) for m in mods}
            sim = sum(sim_loss(z["image"], z[m]) for m in mods[1:])
            trip = sum(trip_loss(z["image"], z[m]) for m in mods[1:])
            y = labels[batch]
            lab = sum(F.cross_entropy(model.label_head(z[m]), y) for m in mods) / len(mods)
            zall, target = discriminator_batch(z, mods)
            logits = model.discriminate(zall)
            adv = F.cross_entropy(logits, target, label_smoothing=float(cfg["disc_smoothing"]))
            loss = sim + float(cfg["triplet_weight"]) * trip + float(cfg["label_weight"]) * lab \
                + adv
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            sums["sim"] += float(sim.detach())
            sums["triplet"] += float(trip.detach())
            sums["label"] += float(lab.detach())
            sums["adv"] += float(adv.detach())
            sums["disc_acc"] += float((logits.argmax(1) == target).float().mean())
        row = {"epoch": epoch + 1, "lambda": model.grl.lam, "lr": opt.param_groups[0]["lr"],
               **{k: v / steps_per_epoch for k, v in sums.items()}}
        every = max(1, int(cfg["probe_every"]))
        if heldout is not None and ((epoch + 1) % every == 0 or epoch + 1 == epochs):
            row.update(heldout_diagnostics(model, feats, np.asarray(heldout, np.int64)))
        history.append(row)
    model.eval()
    return AlignRun(model, history, cfg)
