"""Class imbalance: long-tailed training worlds, head vs tail, and three remedies compared at
one budget (notebook 10, section 2).

Real retrieval collections are long-tailed: a few classes hold most images, many hold a
handful. The training worlds here follow :func:`mmkit.data.world.class_frequencies` (an
exponential profile from 1 down to ``1 / imbalance`` over a seeded class order); the
evaluation world stays balanced, so every class is scored on the same footing.

- :data:`CHECKPOINTS`: the shared challenge encoder (:mod:`mmkit.challenges.training`) trained
  on ``World(n=4000, seed=1)`` at imbalance 1, 10 and 100 with uniform sampling, and at
  imbalance 100 with each remedy: class-balanced sampling, inverse-frequency re-weighting,
  logit adjustment (Menon et al. 2021), all with the same steps and batch;
- :func:`training_counts` / :func:`training_prior`: the training world's scenes per class
  (without rendering it); :func:`frequency_groups`: head / middle / tail thirds by the
  designed class frequency; :func:`group_means`;
- :func:`head_tail_table`: per-class AP and R@1 of image -> image retrieval by class and
  per-class accuracy of the proxy classifier on the evaluation scenes, averaged overall and
  per group (:class:`HeadTail`); :func:`plot_ap_vs_count` draws per-class AP against the
  training count;
- :func:`logit_adjusted_ce` (the loss written out), :func:`proxy_logits`,
  :func:`balanced_accuracy`: what post-hoc logit adjustment needs.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from mmkit import checkpoints
from mmkit.challenges.data import SceneSet, eval_scenes
from mmkit.challenges.evaluate import class_retrieval, per_class
from mmkit.challenges.model import N_CLASSES, ChallengeNet
from mmkit.challenges.training import ChallengeConfig, challenge_spec, class_prior
from mmkit.data.world import class_frequencies, draw_labels
from mmkit.errors import InputError
from mmkit.scoring import unseen_classes

__all__ = ["STEPS", "TRAIN_N", "TRAIN_SEED", "GROUPS", "WORLD_MODELS", "REMEDIES",
           "CHECKPOINTS", "training_labels", "training_counts", "training_prior",
           "frequency_groups", "tracked_classes", "group_means", "per_class_mean", "HeadTail",
           "head_tail_table", "plot_ap_vs_count", "load_models", "logit_adjusted_ce",
           "proxy_logits", "balanced_accuracy"]

#: training steps of every model here (one budget: same steps, batch 128, world)
STEPS = 200
#: the training world: ``World(n=TRAIN_N, seed=TRAIN_SEED, imbalance=...)``
TRAIN_N, TRAIN_SEED = 4000, 1
#: the class groups, most frequent first
GROUPS: tuple[str, ...] = ("head", "middle", "tail")
#: the plain (uniform-sampling) model of each training world's imbalance
WORLD_MODELS: dict[float, str] = {1.0: "challenge_lt1", 10.0: "challenge_lt10",
                                  100.0: "challenge_lt100"}
#: the remedies compared on the imbalance-100 world, by row name
REMEDIES: dict[str, str] = {"uniform sampling": "challenge_lt100",
                            "balanced sampling": "challenge_lt100_balanced",
                            "re-weighting": "challenge_lt100_reweight",
                            "logit adjustment": "challenge_lt100_logit_adjust"}


def _spec(name: str, description: str, **overrides: Any) -> Any:
    return challenge_spec(name, description, 600, world={"n": TRAIN_N, "seed": TRAIN_SEED},
                          steps=STEPS, **overrides)


CHECKPOINTS = {
    "challenge_lt1": _spec("challenge_lt1", "challenge encoder, balanced world (imbalance 1)",
                           imbalance=1.0),
    "challenge_lt10": _spec("challenge_lt10", "challenge encoder, long-tailed world "
                            "(imbalance 10), uniform sampling", imbalance=10.0),
    "challenge_lt100": _spec("challenge_lt100", "challenge encoder, long-tailed world "
                             "(imbalance 100), uniform sampling", imbalance=100.0),
    "challenge_lt100_balanced": _spec("challenge_lt100_balanced", "imbalance 100, "
                                      "class-balanced sampling", imbalance=100.0,
                                      sampler="balanced"),
    "challenge_lt100_reweight": _spec("challenge_lt100_reweight", "imbalance 100, "
                                      "inverse-frequency loss weights", imbalance=100.0,
                                      reweight=1.0),
    "challenge_lt100_logit_adjust": _spec("challenge_lt100_logit_adjust", "imbalance 100, "
                                          "logit-adjusted proxy loss (tau 1)",
                                          imbalance=100.0, logit_adjust=1.0),
}


# ====================================================================== the training world
def training_labels(imbalance: float, n: int = TRAIN_N, seed: int = TRAIN_SEED) -> np.ndarray:
    """Class labels int64 [M] of the scenes a challenge model trains on: the seen-class scenes
    of ``World(n, seed, imbalance)`` (what :func:`~mmkit.challenges.data.train_scenes` keeps),
    drawn as the world draws them (:func:`~mmkit.data.world.draw_labels`), without building
    or rendering it."""
    if not (isinstance(imbalance, (int, float)) and imbalance >= 1):
        raise InputError(f"imbalance must be a number >= 1, got {imbalance!r}")
    labels = draw_labels(int(n), int(seed), float(imbalance))
    return labels[~np.isin(labels, unseen_classes(int(seed)))].astype(np.int64)


def training_counts(imbalance: float, n: int = TRAIN_N, seed: int = TRAIN_SEED) -> np.ndarray:
    """Training scenes per class, int64 [64] (0 for the world's unseen classes and for a tail
    class that drew no scene)."""
    return np.bincount(training_labels(imbalance, n, seed), minlength=N_CLASSES)


def training_prior(imbalance: float, n: int = TRAIN_N, seed: int = TRAIN_SEED) -> np.ndarray:
    """The class prior the trainer uses (:func:`~mmkit.challenges.training.class_prior` of
    the training labels): float [64] summing to 1."""
    return class_prior(training_labels(imbalance, n, seed))


def frequency_groups(imbalance: float = 100.0, seed: int = TRAIN_SEED,
                     classes: Sequence[int] | np.ndarray | None = None,
                     n_groups: int = len(GROUPS)) -> np.ndarray:
    """Group of each class, int [64]: 0 (head) to ``n_groups - 1`` (tail), -1 for a class not
    in ``classes`` (default: all). ``classes`` are ranked by the training world's designed
    frequency (:func:`~mmkit.data.world.class_frequencies` ``(64, imbalance, seed)``, most
    frequent first; the order depends on ``seed`` only) and cut into ``n_groups`` nearly
    equal runs (the first groups get the extra class)."""
    if imbalance == 1:
        raise InputError("frequency_groups: a balanced world (imbalance 1) has no head or "
                         "tail; group by a long-tailed world's order (same seed)")
    if not (isinstance(n_groups, int) and 1 <= n_groups <= N_CLASSES):
        raise InputError(f"n_groups must be an integer 1-{N_CLASSES}, got {n_groups!r}")
    cls = np.arange(N_CLASSES) if classes is None else np.unique(np.asarray(classes, np.int64))
    if len(cls) < n_groups or cls.min() < 0 or cls.max() >= N_CLASSES:
        raise InputError(f"frequency_groups: need at least {n_groups} classes in "
                         f"0-{N_CLASSES - 1}, got {len(cls)}")
    freq = class_frequencies(N_CLASSES, float(imbalance), int(seed))
    ranked = cls[np.argsort(-freq[cls], kind="stable")]
    out = np.full(N_CLASSES, -1, np.int64)
    for g, part in enumerate(np.array_split(ranked, n_groups)):
        out[part] = g
    return out


def tracked_classes(labels: np.ndarray, seed: int = TRAIN_SEED) -> np.ndarray:
    """The classes a head / tail analysis tracks: those present in ``labels`` (the evaluation
    scenes' [N]) that the training world of ``seed`` trains on (not among its unseen
    classes, which no model here ever sees): int64 [K], ascending."""
    trained_on = np.setdiff1d(np.arange(N_CLASSES), unseen_classes(int(seed)))
    return np.intersect1d(trained_on, np.unique(np.asarray(labels, np.int64)))


def group_means(values: np.ndarray, groups: np.ndarray, n_groups: int = len(GROUPS)
                ) -> np.ndarray:
    """Mean of ``values`` [C] over the classes of each group (``groups`` [C], -1 = left out;
    NaN values are skipped): float [n_groups]."""
    v, g = np.asarray(values, np.float64), np.asarray(groups)
    if v.shape != g.shape:
        raise InputError(f"group_means: values {v.shape} and groups {g.shape} must match")
    out = np.full(n_groups, np.nan)
    for k in range(n_groups):
        sel = v[(g == k) & ~np.isnan(v)]
        if len(sel):
            out[k] = sel.mean()
    return out


def per_class_mean(values: np.ndarray, labels: np.ndarray, n_classes: int = N_CLASSES
                   ) -> np.ndarray:
    """Mean of per-query ``values`` [Q] over the queries of each class (``labels`` [Q]):
    float [n_classes], NaN for a class without queries."""
    v, lab = np.asarray(values, np.float64), np.asarray(labels, np.int64)
    total = np.bincount(lab, weights=v, minlength=n_classes)
    count = np.bincount(lab, minlength=n_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


# ============================================================================ the measurement
def proxy_logits(model: ChallengeNet, images: np.ndarray, temperature: float | None = None
                 ) -> np.ndarray:
    """The proxy classifier's logits, cosines to the class proxies divided by the training
    temperature (default :class:`ChallengeConfig`'s): float32 [N, 64]."""
    t = ChallengeConfig().temperature if temperature is None else float(temperature)
    return model.predict(images, "proxy") / np.float32(t)


def balanced_accuracy(logits: np.ndarray, labels: np.ndarray,
                      classes: Sequence[int] | np.ndarray | None = None) -> float:
    """Mean over ``classes`` (default: those in ``labels``) of the per-class top-1 accuracy of
    ``logits`` [N, C] against ``labels`` [N]."""
    lg, lab = np.asarray(logits), np.asarray(labels, np.int64)
    if lg.ndim != 2 or len(lg) != len(lab):
        raise InputError(f"balanced_accuracy: logits [N, C] and labels [N], got {lg.shape} "
                         f"and {lab.shape}")
    acc = per_class_mean(lg.argmax(1) == lab, lab, lg.shape[1])
    cls = np.unique(lab) if classes is None else np.asarray(classes, np.int64)
    return float(np.nanmean(acc[cls]))


def logit_adjusted_ce(logits: torch.Tensor, labels: torch.Tensor, log_prior: torch.Tensor,
                      tau: float = 1.0) -> torch.Tensor:
    """Logit-adjusted cross entropy (Menon et al. 2021), mean over the batch: ``-log
    softmax(logits + tau * log_prior)[label]``; logits [B, C], labels [B], log_prior [C]."""
    return F.cross_entropy(logits + tau * log_prior, labels)


@dataclass(frozen=True)
class HeadTail:
    """Per-class scores of several models on the evaluation scenes, by frequency group.

    Attributes:
        names: the models, in row order.
        ap, r1, acc: model -> float [64] per-class retrieval AP, retrieval R@1 and proxy
            classification accuracy (NaN for a class without evaluation scenes).
        counts: int [64] training scenes per class of the grouping world.
        groups: int [64] 0 head .. 2 tail, -1 for a class left out (never trained on, or
            without evaluation scenes).
        imbalance: the grouping world's imbalance.
    """

    names: tuple[str, ...]
    ap: dict[str, np.ndarray]
    r1: dict[str, np.ndarray]
    acc: dict[str, np.ndarray]
    counts: np.ndarray
    groups: np.ndarray
    imbalance: float
    table: dict[str, dict[str, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        rows: dict[str, dict[str, float]] = {}
        tracked = self.groups >= 0
        for name in self.names:
            row: dict[str, float] = {}
            for metric, values in (("mAP", self.ap), ("R@1", self.r1), ("acc", self.acc)):
                v = values[name]
                row[metric] = round(float(np.nanmean(v[tracked])), 4)
                for g, m in zip(GROUPS, group_means(v, self.groups)):
                    row[f"{metric} {g}"] = round(float(m), 4)
            rows[name] = row
        object.__setattr__(self, "table", rows)

    def group_sizes(self) -> dict[str, int]:
        """Classes per group."""
        return {g: int((self.groups == k).sum()) for k, g in enumerate(GROUPS)}

    def group_counts(self) -> dict[str, tuple[int, int]]:
        """(fewest, most) training scenes of a class in each group."""
        return {g: (int(self.counts[self.groups == k].min()),
                    int(self.counts[self.groups == k].max())) for k, g in enumerate(GROUPS)}

    def format(self, metric: str = "mAP", names: Sequence[str] | None = None) -> str:
        """A fixed-width text table of ``metric`` (``"mAP"``, ``"R@1"`` or ``"acc"``) for
        ``names`` (default: all rows): all tracked classes, then head / middle / tail."""
        if metric not in ("mAP", "R@1", "acc"):
            raise InputError(f"metric must be mAP, R@1 or acc, got {metric!r}")
        rows = list(self.names if names is None else names)
        unknown = [n for n in rows if n not in self.table]
        if unknown:
            raise InputError(f"format: unknown row(s) {', '.join(unknown)}")
        cols = [metric] + [f"{metric} {g}" for g in GROUPS]
        width = max(len(n) for n in rows) + 2
        lines = [f"{metric:<{width}}" + "".join(f"{c:>9}" for c in ["all", *GROUPS])]
        for name in rows:
            lines.append(f"{name:<{width}}" + "".join(f"{self.table[name][c]:>9.3f}"
                                                      for c in cols))
        return "\n".join(lines)


def head_tail_table(models: Mapping[str, ChallengeNet], imbalance: float = 100.0, *,
                    scenes: SceneSet | None = None, n: int = TRAIN_N, seed: int = TRAIN_SEED,
                    temperature: float | None = None) -> HeadTail:
    """Score every model of ``models`` (row name -> :class:`ChallengeNet`) on the evaluation
    scenes (default :func:`~mmkit.challenges.data.eval_scenes`, balanced): image -> image
    retrieval by class, own scene excluded (:func:`~mmkit.challenges.evaluate.class_retrieval`,
    per-class AP and R@1), and top-1 accuracy of the proxy classifier (cosines to the class
    proxies, no adjustment at test time). Classes are grouped into head / middle / tail
    thirds by the designed frequency of the training world ``World(n, seed, imbalance)``
    (:func:`frequency_groups`), over the classes that world trains on and the scenes hold.
    "all" averages the tracked classes, each class weighing the same."""
    if not models:
        raise InputError("head_tail_table: give at least one model")
    s = eval_scenes() if scenes is None else scenes
    counts = training_counts(imbalance, n, seed)
    groups = frequency_groups(imbalance, seed, tracked_classes(s.labels, seed))
    ap, r1, acc = {}, {}, {}
    for name, model in models.items():
        emb = model.embed_images(s.images)
        run = class_retrieval(emb, s.labels, emb, s.labels, s.scenes, s.scenes)
        ap[name] = per_class(run, N_CLASSES)
        r1[name] = per_class_mean(run.hit1, run.labels)
        pred = proxy_logits(model, s.images, temperature).argmax(1)
        acc[name] = per_class_mean(pred == s.labels, s.labels)
    return HeadTail(tuple(models), ap, r1, acc, counts, groups, float(imbalance))


def plot_ap_vs_count(result: HeadTail, names: Sequence[str] | None = None,
                     metric: str = "ap", ax: Any = None) -> Any:
    """Per-class ``metric`` (``"ap"``, ``"r1"`` or ``"acc"``) of the tracked classes against
    their training scenes (log x axis; a class with none is drawn at 0.5), one colour per
    model, with each group's mean at the group's median count joined by a line. Returns the
    axes."""
    import matplotlib.pyplot as plt

    values = {"ap": result.ap, "r1": result.r1, "acc": result.acc}.get(metric)
    if values is None:
        raise InputError(f"metric must be ap, r1 or acc, got {metric!r}")
    names = list(result.names if names is None else names)
    if ax is None:
        _, ax = plt.subplots(figsize=(7.5, 4.2))
    tracked = result.groups >= 0
    x = np.maximum(result.counts[tracked], 0.5)
    rng = np.random.default_rng(0)
    jitter = np.exp(rng.uniform(-0.06, 0.06, len(x)))
    centres = [float(np.median(np.maximum(result.counts[result.groups == k], 0.5)))
               for k in range(len(GROUPS))]
    for i, name in enumerate(names):
        colour = f"C{i}"
        ax.scatter(x * jitter, values[name][tracked], s=14, alpha=0.45, color=colour)
        ax.plot(centres, group_means(values[name], result.groups), "o-", color=colour, lw=2,
                label=name)
    ax.set_xscale("log")
    label = {"ap": "per-class AP", "r1": "per-class R@1", "acc": "per-class accuracy"}[metric]
    ax.set_xlabel(f"training scenes of the class (imbalance {result.imbalance:g} world, "
                  "log scale; 0 drawn at 0.5)")
    ax.set_ylabel(label)
    ax.set_title(f"{label} vs training frequency (dots: classes; lines: head/middle/tail "
                 "means)")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    return ax


def load_models(names: Mapping[str, str]) -> dict[str, ChallengeNet]:
    """Row name -> committed checkpoint, loaded (:func:`mmkit.checkpoints.load`)."""
    return {row: checkpoints.load(name)[0] for row, name in names.items()}
