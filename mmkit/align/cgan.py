"""A conditional GAN that *imagines* an embedding of one modality from another.

"Imagine the image, then search": the generator ``G(condition, noise)`` turns a caption's (or a
sound's) frozen features into an embedding in the **image feature space** (the frozen
``visual_small_cnn`` features of :mod:`mmkit.align.features`, standardised); the gallery's real
image features are then searched with it by cosine similarity. The same class translates
between any two spaces, e.g. caption features -> sound features (cross-modal translation).

- **generator**: MLP on ``[condition, noise]`` (noise of ``noise_dim``; ``noise=False`` feeds
  zeros, so the generator is deterministic);
- **discriminator**: MLP on ``[embedding, condition]`` -> one logit "real pair". As in GAN-CLS
  (Reed et al. 2016) it also sees real embeddings with a *mismatched* condition as fake, so
  matching the condition is part of being real.
- generator loss: the non-saturating GAN loss plus ``recon_weight`` x (1 - cosine to the
  paired real embedding), the pix2pix recipe (adversarial + reconstruction).

What tames training (all switchable, :data:`STABLE` vs :data:`UNSTABLE`): spectral
normalisation of every discriminator layer (Miyato et al. 2018), two time-scale learning
rates (TTUR, Heusel et al. 2017: the discriminator learns faster), one-sided label
smoothing (real targets 0.9, Salimans et al. 2016), input noise for the generator and the
reconstruction term. Every epoch logs the discriminator and generator losses, the
discriminator's accuracy on real and fake pairs, the reconstruction term and the **spread**
of the generated embeddings (their per-dimension standard deviation across held-out
conditions divided by that of the real embeddings: 1 = as varied as real data, 0 = mode
collapse, every condition gives the same output).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from mmkit.errors import InputError
from mmkit.metrics import hit_rate_at_k
from mmkit.training import progress_bar, seeded

#: the stabilised recipe (the default)
STABLE: dict[str, Any] = {
    "hidden": 256, "noise_dim": 4, "epochs": 30, "batch_size": 256, "lr_g": 2e-4,
    "lr_d": 8e-4, "betas": [0.5, 0.999], "sn": True, "smoothing": 0.1, "noise": True,
    "recon_weight": 5.0, "mismatch": True, "seed": 0,
}
#: the recipe that goes wrong: no spectral norm, equal high learning rates (and Adam's default
#: momentum), no smoothing, no noise, no reconstruction term and no mismatched pairs (a plain
#: conditional GAN)
UNSTABLE: dict[str, Any] = {**STABLE, "lr_g": 1e-2, "lr_d": 1e-2, "betas": [0.9, 0.999],
                            "sn": False,
                            "smoothing": 0.0, "noise": False, "recon_weight": 0.0,
                            "mismatch": False}


def _linear(d_in: int, d_out: int, sn: bool) -> nn.Module:
    layer = nn.Linear(d_in, d_out)
    return nn.utils.parametrizations.spectral_norm(layer) if sn else layer


class ConditionalGAN(nn.Module):
    """Generator and discriminator between a condition space [cond_dim] and a target space
    [out_dim], with both spaces standardised by buffers fitted on the training rows.

    ``generate(cond float32 [N, cond_dim] raw, samples) -> float32 [N, samples, out_dim]`` in
    the standardised target space; :meth:`imagine` averages the samples and L2-normalises;
    :meth:`target_space` maps raw target features (the gallery) into the same space.
    """

    def __init__(self, cond_dim: int, out_dim: int, config: dict) -> None:
        super().__init__()
        self.config = dict(config)
        self.cond_dim, self.out_dim = int(cond_dim), int(out_dim)
        h, zd = int(config["hidden"]), int(config["noise_dim"])
        self.noise_dim = zd
        self.generator = nn.Sequential(nn.Linear(cond_dim + zd, h), nn.LeakyReLU(0.2),
                                       nn.Linear(h, h), nn.LeakyReLU(0.2), nn.Linear(h, out_dim))
        sn = bool(config["sn"])
        self.discriminator = nn.Sequential(_linear(out_dim + cond_dim, h, sn), nn.LeakyReLU(0.2),
                                           _linear(h, h, sn), nn.LeakyReLU(0.2),
                                           _linear(h, 1, sn))
        for name, d in (("cond", cond_dim), ("target", out_dim)):
            self.register_buffer(f"{name}_mean", torch.zeros(d))
            self.register_buffer(f"{name}_std", torch.ones(d))

    def fit_standardisation(self, cond: np.ndarray, target: np.ndarray) -> None:
        for name, x in (("cond", cond), ("target", target)):
            t = torch.as_tensor(np.asarray(x, np.float32))
            getattr(self, f"{name}_mean").copy_(t.mean(0))
            getattr(self, f"{name}_std").copy_(t.std(0).clamp(min=1e-6))

    def _cond(self, c: torch.Tensor) -> torch.Tensor:
        return (c - self.cond_mean) / self.cond_std

    def _target(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.target_mean) / self.target_std

    def noise(self, n: int, gen: torch.Generator | None = None) -> torch.Tensor:
        if not self.config["noise"]:
            return torch.zeros(n, self.noise_dim)
        return torch.randn(n, self.noise_dim, generator=gen)

    def g(self, c_std: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Generator on a standardised condition and noise -> standardised target [N, out]."""
        return self.generator(torch.cat([c_std, z], 1))

    def d(self, x_std: torch.Tensor, c_std: torch.Tensor) -> torch.Tensor:
        """Discriminator logit [N] of (standardised target, standardised condition) pairs."""
        return self.discriminator(torch.cat([x_std, c_std], 1)).squeeze(1)

    def _check(self, x: np.ndarray, dim: int, what: str) -> torch.Tensor:
        x = np.asarray(x, np.float32)
        if x.ndim != 2 or x.shape[1] != dim or len(x) == 0:
            raise InputError(f"{what} must be float [N, {dim}] with N >= 1, got {x.shape}")
        if not np.isfinite(x).all():
            raise InputError(f"{what} contain NaN or infinite values")
        return torch.from_numpy(x)

    @torch.no_grad()
    def generate(self, cond: np.ndarray, samples: int = 8, seed: int = 0) -> np.ndarray:
        """float32 [N, samples, out_dim]: ``samples`` generated embeddings per condition."""
        c = self._cond(self._check(cond, self.cond_dim, "conditions"))
        gen = torch.Generator().manual_seed(int(seed))
        was = self.training
        self.eval()
        out = torch.stack([self.g(c, self.noise(len(c), gen)) for _ in range(int(samples))], 1)
        self.train(was)
        return out.numpy()

    def imagine(self, cond: np.ndarray, samples: int = 8, seed: int = 0) -> np.ndarray:
        """float32 [N, out_dim]: the mean of ``samples`` generated embeddings, L2-normalised
        (the query of "imagine, then search")."""
        return _normalise(self.generate(cond, samples, seed).mean(1))

    @torch.no_grad()
    def target_space(self, target: np.ndarray) -> np.ndarray:
        """Raw target features float [N, out_dim] -> standardised, L2-normalised float32."""
        return _normalise(self._target(self._check(target, self.out_dim, "targets")).numpy())


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / (np.linalg.norm(x, axis=-1, keepdims=True) + 1e-12)


def spread(generated: np.ndarray, real: np.ndarray) -> float:
    """Mean per-dimension std of ``generated`` [N, D] over that of ``real`` [M, D]: 1 = as
    varied as the real embeddings, 0 = every generated embedding is the same (collapse)."""
    g, r = np.asarray(generated, np.float64), np.asarray(real, np.float64)
    return float(g.std(0).mean() / max(r.std(0).mean(), 1e-12))


@dataclass
class GANRun:
    """A trained :class:`ConditionalGAN` and its log: one dict per epoch with ``d_loss``,
    ``g_loss``, ``recon`` (1 - cosine), ``d_real_acc``, ``d_fake_acc``, ``spread`` and,
    when held-out pairs were given, ``val_r10`` (the paired target in the top 10 of the
    held-out targets, searched with :meth:`ConditionalGAN.imagine`); ``diverged`` is True
    when a loss became NaN or infinite (training stops there)."""

    model: ConditionalGAN
    history: list[dict[str, float]] = field(default_factory=list)
    config: dict = field(default_factory=dict)
    diverged: bool = False


def pair_r10(model: ConditionalGAN, cond: np.ndarray, target: np.ndarray,
             owner: np.ndarray | None = None) -> float:
    """R@10 of imagined queries against the distinct targets: query i's positive is target
    ``owner[i]`` (default: row i)."""

    q = model.imagine(cond)
    g = model.target_space(target)
    owner = np.arange(len(q)) if owner is None else np.asarray(owner)
    pos = owner[:, None] == np.arange(len(g))[None, :]
    return float(hit_rate_at_k(q @ g.T, pos, min(10, len(g))).mean())


def train_cgan(cond: np.ndarray, target: np.ndarray, config: dict | None = None,
               heldout: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
               progress: bool = False) -> GANRun:
    """Train a :class:`ConditionalGAN` on pairs (``cond`` float [N, dc] row i with ``target``
    float [N, dt] row i).

    ``config`` overrides :data:`STABLE`. ``heldout = (cond_val [V, dc], targets_val [T, dt],
    owner [V])`` (query i's own target is row ``owner[i]``) adds ``val_r10`` and the spread
    to the log. Deterministic for a config and seed.
    """
    cfg = {**STABLE, **(config or {})}
    unknown = sorted(set(cfg) - set(STABLE))
    if unknown:
        raise InputError(f"train_cgan: unknown config key(s) {', '.join(unknown)}")
    cond = np.asarray(cond, np.float32)
    target = np.asarray(target, np.float32)
    if cond.ndim != 2 or target.ndim != 2 or len(cond) != len(target) or len(cond) < 2:
        raise InputError(f"train_cgan: cond and target must be [N, d] with the same N >= 2, "
                         f"got {cond.shape} and {target.shape}")
    rng = seeded(cfg["seed"])
    gen = torch.Generator().manual_seed(int(cfg["seed"]))
    model = ConditionalGAN(cond.shape[1], target.shape[1], cfg)
    model.fit_standardisation(cond, target)
    betas = tuple(cfg["betas"])
    opt_g = torch.optim.Adam(model.generator.parameters(), lr=float(cfg["lr_g"]), betas=betas)
    opt_d = torch.optim.Adam(model.discriminator.parameters(), lr=float(cfg["lr_d"]),
                             betas=betas)
    c_all = model._cond(torch.from_numpy(cond))
    x_all = model._target(torch.from_numpy(target))
    real_label = 1.0 - float(cfg["smoothing"])
    bs = min(int(cfg["batch_size"]), len(cond))
    steps = max(1, len(cond) // bs)
    history: list[dict[str, float]] = []
    diverged = False
    if heldout is not None:
        hc, ht, howner = (np.asarray(heldout[0], np.float32), np.asarray(heldout[1], np.float32),
                          np.asarray(heldout[2], np.int64))
        with torch.no_grad():
            real_val = model._target(torch.from_numpy(ht[howner])).numpy()
    for epoch in progress_bar(range(int(cfg["epochs"])), progress=progress, desc="cGAN"):
        model.train()
        order = rng.permutation(len(cond))
        sums = dict.fromkeys(("d_loss", "g_loss", "recon", "d_real_acc", "d_fake_acc"), 0.0)
        for b in range(steps):
            idx = torch.from_numpy(order[b * bs:(b + 1) * bs])
            c, x = c_all[idx], x_all[idx]
            fake = model.g(c, model.noise(len(c), gen))
            # --- discriminator: real pairs -> real; generated and mismatched pairs -> fake
            d_real = model.d(x, c)
            d_fake = model.d(fake.detach(), c)
            real_term = F.binary_cross_entropy_with_logits(
                d_real, torch.full_like(d_real, real_label))
            fake_term = F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
            if cfg["mismatch"]:   # "fake" = half generated, half mismatched pairs (GAN-CLS)
                d_mis = model.d(x, c.roll(1, 0))
                fake_term = 0.5 * fake_term + 0.5 * F.binary_cross_entropy_with_logits(
                    d_mis, torch.zeros_like(d_mis))
            d_loss = real_term + fake_term
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
            # --- generator: fool the discriminator, stay close to the paired embedding
            d_gen = model.d(fake, c)
            adv = F.binary_cross_entropy_with_logits(d_gen, torch.ones_like(d_gen))
            recon = (1 - F.cosine_similarity(fake, x, dim=1)).mean()
            g_loss = adv + float(cfg["recon_weight"]) * recon
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_g.step()
            vals = (float(d_loss.detach()), float(adv.detach()), float(recon.detach()))
            if not all(math.isfinite(v) for v in vals):
                diverged = True
                break
            sums["d_loss"] += vals[0]
            sums["g_loss"] += vals[1]
            sums["recon"] += vals[2]
            sums["d_real_acc"] += float((d_real > 0).float().mean())
            sums["d_fake_acc"] += float((d_fake < 0).float().mean())
        row = {"epoch": epoch + 1, **{k: v / steps for k, v in sums.items()}}
        if diverged:
            history.append(row)
            break
        if heldout is not None:
            gen_val = model.generate(hc, samples=1, seed=epoch)[:, 0]
            row["spread"] = spread(gen_val, real_val)
            row["val_r10"] = pair_r10(model, hc, ht, howner)
        history.append(row)
    model.eval()
    return GANRun(model, history, cfg, diverged)
