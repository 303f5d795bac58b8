"""Metric learning: train an image encoder with a loss + miner so that nearness means "same
class", and use it for retrieval and few-shot recognition of classes it never saw. ("Metric"
here is the learned distance; evaluation metrics such as MAP@R are :mod:`mmkit.metrics`.)

- :func:`train_metric` is the training loop (m-per-class batches, a miner, a loss), recording
  a learning curve and the fraction of active (non-zero-loss) triplets.
- :func:`retrieval_scores` gives MAP@R, P@1 and R-precision with pytorch-metric-learning's
  conventions (every item queries all the others; same label = relevant).
- :func:`few_shot_accuracy` gives n-way k-shot nearest-prototype / nearest-neighbour accuracy.
- :data:`CHECKPOINTS`: ``metric_world_cnn`` (the world's seen classes, fresh scenes) and
  ``metric_digits_cnn`` (scikit-learn's handwritten digits 0-4). Both reuse
  :class:`mmkit.features.visual_cnn.SmallCNN`.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from mmkit._setup import pick_device
from mmkit.checkpoints import CheckpointSpec, Trained
from mmkit.data import World
from mmkit.configs import Checks, DictConfig, check_rate
from mmkit.errors import InputError
from mmkit.features.image_encoder import embed_images
from mmkit.features.pretrained import pretrained_features  # noqa: F401 - re-export
from mmkit.features.visual_cnn import SmallCNN
from mmkit.features.visual_cnn import augment as augment_images
from mmkit.losses import (ContrastiveLoss, CosineSimilarity, LpDistance, MarginRankingLoss,
                          NTXentLoss, TripletMarginLoss)
from mmkit.metrics import map_at_r, precision_at_k, r_precision
from mmkit.miners import (BatchAllMiner, BatchHardMiner, DistanceWeightedMiner,
                          TripletMarginMiner)
from mmkit.scoring import EVAL_WORLD, unseen_classes
from mmkit.training import progress_bar
from mmkit.validate import integer, is_integer, number, positive_int

LOSSES = ("contrastive", "triplet", "ranking", "ntxent")
MINERS = ("none", "batch_all", "batch_hard", "semihard", "distance_weighted")


def make_loss(name: str, margin: float | None = None, distance: str = "euclidean"):
    """A loss by name (``contrastive``, ``triplet``, ``ranking``, ``ntxent``); ``margin``
    (the triplet/ranking margin, the contrastive negative margin, the NT-Xent temperature)
    None = the class default; ``distance``: ``euclidean`` or ``cosine``."""
    dist = {"euclidean": LpDistance, "cosine": CosineSimilarity}.get(distance)
    if dist is None:
        raise InputError(f"make_loss: distance must be 'euclidean' or 'cosine', got {distance!r}")
    kw: dict[str, Any] = {"distance": dist()}
    if name == "contrastive":
        if distance == "cosine":
            kw.update(pos_margin=1.0, neg_margin=0.0 if margin is None else margin)
        elif margin is not None:
            kw["neg_margin"] = margin
        return ContrastiveLoss(**kw)
    if name in ("triplet", "ranking"):
        cls = TripletMarginLoss if name == "triplet" else MarginRankingLoss
        return cls(**kw) if margin is None else cls(margin=margin, **kw)
    if name == "ntxent":
        return NTXentLoss(**kw) if margin is None else NTXentLoss(temperature=margin, **kw)
    raise InputError(f"make_loss: unknown loss {name!r}; choose one of {LOSSES}")


def make_miner(name: str, margin: float = 0.2, generator: torch.Generator | None = None):
    """A miner by name (``none`` -> None: the loss takes all pairs/triplets)."""
    if name == "none":
        return None
    if name == "batch_all":
        return BatchAllMiner(margin=margin)
    if name == "batch_hard":
        return BatchHardMiner()
    if name == "semihard":
        return TripletMarginMiner(margin=margin, type_of_triplets="semihard")
    if name == "distance_weighted":
        return DistanceWeightedMiner(generator=generator)
    raise InputError(f"make_miner: unknown miner {name!r}; choose one of {MINERS}")


def m_per_class_batches(labels: np.ndarray, m: int, classes_per_batch: int,
                        gen: torch.Generator) -> list[np.ndarray]:
    """One epoch of batches, each ``classes_per_batch`` classes x ``m`` items (drawn without
    replacement within the epoch while a class has items left; a class with fewer than ``m``
    items left is refilled from all its items): int64 index arrays [classes_per_batch * m]."""
    labels = np.asarray(labels)
    classes = np.unique(labels)
    pools = {c: np.flatnonzero(labels == c) for c in classes}
    n_batches = max(1, len(labels) // (m * classes_per_batch))
    rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
    queues = {c: list(rng.permutation(pools[c])) for c in classes}
    out = []
    for _ in range(n_batches):
        chosen = rng.choice(classes, size=min(classes_per_batch, len(classes)), replace=False)
        batch = []
        for c in chosen:
            if len(queues[c]) < m:
                queues[c] = list(rng.permutation(pools[c]))
            take = queues[c][:m] if len(pools[c]) >= m else list(rng.choice(pools[c], m))
            queues[c] = queues[c][m:]
            batch.extend(take)
        out.append(np.asarray(batch, dtype=np.int64))
    return out


def cosine_similarity(feats: np.ndarray) -> np.ndarray:
    """float [N, D] -> cosine similarity matrix float64 [N, N]."""
    f = np.asarray(feats, np.float64)
    f = f / (np.linalg.norm(f, axis=1, keepdims=True) + 1e-12)
    return f @ f.T


def retrieval_scores(feats: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """MAP@R, P@1 and R-precision of leave-one-out retrieval (each item queries all others;
    same label = relevant; cosine similarity), PML ``AccuracyCalculator``'s conventions for
    ``query == reference``. feats float [N, D], labels int [N]."""
    return similarity_scores(cosine_similarity(feats), labels)


def similarity_scores(similarity: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """:func:`retrieval_scores` from a precomputed similarity matrix float [N, N] (e.g. the
    average of several encoders' similarities). Queries without any relevant item are
    skipped, as PML does."""
    labels = np.asarray(labels)
    scores = np.array(similarity, dtype=np.float64, copy=True)
    if scores.shape != (len(labels), len(labels)):
        raise InputError(f"similarity_scores: similarity must be [N, N] for {len(labels)} "
                         f"labels, got {scores.shape}")
    np.fill_diagonal(scores, -np.inf)
    rel = (labels[:, None] == labels[None, :]).astype(np.int8)
    np.fill_diagonal(rel, 0)
    keep = rel.sum(1) > 0
    scores, rel = scores[keep], rel[keep]
    return {"map_at_r": float(map_at_r(scores, rel).mean()),
            "p_at_1": float(precision_at_k(scores, rel, 1).mean()),
            "r_precision": float(r_precision(scores, rel).mean())}


def few_shot_accuracy(feats: np.ndarray, labels: np.ndarray, shots: int, trials: int = 20,
                      seed: int = 0, method: str = "prototype") -> float:
    """Mean accuracy of n-way ``shots``-shot classification over ``trials`` random support
    sets: each class gives ``shots`` support items, every other item is a query, assigned to
    the class of the nearest prototype (mean of the L2-normalised support embeddings,
    ``method="prototype"``) or of the nearest support item (``"nn"``), by cosine."""
    if method not in ("prototype", "nn"):
        raise InputError(f"few_shot_accuracy: method must be 'prototype' or 'nn', got {method!r}")
    f = np.asarray(feats, np.float64)
    f = f / (np.linalg.norm(f, axis=1, keepdims=True) + 1e-12)
    labels = np.asarray(labels)
    classes = np.unique(labels)
    if any((labels == c).sum() <= shots for c in classes):
        raise InputError(f"few_shot_accuracy: every class needs more than {shots} items")
    rng = np.random.default_rng(seed)
    accs = []
    for _ in range(trials):
        support = np.concatenate([rng.choice(np.flatnonzero(labels == c), shots, replace=False)
                                  for c in classes])
        query = np.setdiff1d(np.arange(len(labels)), support)
        if method == "prototype":
            protos = np.stack([f[support[labels[support] == c]].mean(0) for c in classes])
            pred = classes[(f[query] @ protos.T).argmax(1)]
        else:
            pred = labels[support][(f[query] @ f[support].T).argmax(1)]
        accs.append(float((pred == labels[query]).mean()))
    return float(np.mean(accs))


def train_metric(model: torch.nn.Module, x: torch.Tensor, y: np.ndarray, loss, miner=None,
                 epochs: int = 5, lr: float = 2e-3, weight_decay: float = 1e-4,
                 m: int = 8, classes_per_batch: int = 16, augment: bool = True,
                 evaluate: Callable[[torch.nn.Module], float] | None = None, seed: int = 0,
                 progress: bool = True, desc: str = "metric learning") -> dict[str, list]:
    """Train ``model`` (x float [N, C, H, W] preprocessed, y int [N]) with ``loss`` on the
    triplets/pairs ``miner`` picks (None: all of them), AdamW + one-cycle schedule.

    Returns the history: per step ``loss``, ``active`` (fraction of the loss's terms that are
    non-zero, i.e. violate the margin) and ``mined`` (number of triplets/pairs passed); per
    epoch ``epoch_loss``, ``epoch_active`` and, with ``evaluate`` (model -> number),
    ``eval``.
    """
    device = pick_device()
    gen = torch.Generator().manual_seed(seed)
    model.to(device)
    batches_per_epoch = max(1, len(y) // (m * classes_per_batch))
    steps = epochs * batches_per_epoch
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps,
                                                pct_start=0.2)
    hist: dict[str, list] = {"loss": [], "active": [], "mined": [], "epoch_loss": [],
                             "epoch_active": [], "eval": []}
    bar = progress_bar(total=steps, desc=desc, progress=progress)
    for _epoch in range(epochs):
        model.train()
        e_loss, e_act = [], []
        for idx in m_per_class_batches(y, m, classes_per_batch, gen)[:batches_per_epoch]:
            xb = x[torch.from_numpy(idx)]
            if augment:
                xb = augment_images(xb, gen)
            yb = torch.from_numpy(np.asarray(y)[idx]).to(device)
            emb = model(xb.to(device))
            tup = miner(emb, yb) if miner is not None else None
            value = loss(emb, yb, tup)
            opt.zero_grad(set_to_none=True)
            if value.requires_grad:
                value.backward()
            opt.step()
            sched.step()
            act = loss.active_fraction
            hist["loss"].append(float(value.detach()))
            hist["active"].append(0.0 if math.isnan(act) else act)
            hist["mined"].append(loss.stats["terms"])
            e_loss.append(hist["loss"][-1])
            e_act.append(hist["active"][-1])
            bar.update(1)
            bar.set_postfix(loss=f"{hist['loss'][-1]:.3f}", active=f"{hist['active'][-1]:.2f}")
        hist["epoch_loss"].append(float(np.mean(e_loss)))
        hist["epoch_active"].append(float(np.mean(e_act)))
        if evaluate is not None:
            model.eval()
            hist["eval"].append(float(evaluate(model)))
    bar.close()
    model.eval()
    model.cpu()
    return hist


# ----------------------------------------------------------------------------- data
def digits_images() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's handwritten digits (1,797 real 8 x 8 scans, shipped with sklearn):
    uint8 [1797, 8, 8, 3] (grey levels 0..16 scaled to 0..255, repeated to RGB) and int labels
    [1797]."""
    from sklearn.datasets import load_digits

    d = load_digits()
    grey = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=3), d.target.astype(np.int64)


def seen_classes_mask(labels: np.ndarray, eval_seed: int = EVAL_WORLD["seed"]) -> np.ndarray:
    """True for labels that are NOT among the unseen classes of the evaluation world of
    ``eval_seed`` (:func:`mmkit.scoring.unseen_classes`; its unseen split is what the encoder
    is tested on)."""
    return ~np.isin(labels, unseen_classes(eval_seed))


def _shots(feats: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """1- and 5-shot accuracy over the classes with more than 5 items (all of them at the
    checkpoints' sizes; tiny test worlds may have fewer)."""
    ok = np.isin(labels, [c for c in np.unique(labels) if (labels == c).sum() > 5])
    if len(np.unique(labels[ok])) < 2:
        return {}
    return {"unseen_1shot": few_shot_accuracy(feats[ok], labels[ok], 1),
            "unseen_5shot": few_shot_accuracy(feats[ok], labels[ok], 5)}


def _round(d: dict[str, float]) -> dict[str, float]:
    return {k: round(float(v), 4) for k, v in d.items()}


# ----------------------------------------------------------------------------- configs
def _check_common(cfg: Any, checks: Checks) -> None:
    """The checks the two metric-learning configs share (encoder, loss, miner, schedule)."""
    for name in ("width", "embed_dim", "image_size", "epochs"):
        checks(positive_int, getattr(cfg, name), name)
    for name in ("se", "cbam", "vit"):
        checks.flag(getattr(cfg, name), name)
    if is_integer(cfg.image_size) and cfg.image_size % 8:
        checks.add(f"image_size {cfg.image_size} is not a multiple of 8 (the CNN's three "
                   "stride-2 stages)")
    checks.choice(cfg.loss, "loss", LOSSES)
    checks.optional(number, cfg.margin, "margin", low=0)
    checks.choice(cfg.distance, "distance", ("euclidean", "cosine"))
    checks.choice(cfg.miner, "miner", MINERS)
    checks(number, cfg.miner_margin, "miner_margin", low=0)
    check_rate(checks, cfg.lr, "lr")
    checks(integer, cfg.m, "m", low=2)
    checks(integer, cfg.classes_per_batch, "classes_per_batch", low=2)
    checks(integer, cfg.seed, "seed", low=0)


@dataclass(frozen=True)
class MetricWorldConfig(DictConfig):
    """The ``metric_world_cnn`` checkpoint's config (its defaults): a
    :class:`~mmkit.features.visual_cnn.SmallCNN` embedding, a loss and a miner
    (:func:`make_loss`, :func:`make_miner`), m-per-class batches; fresh scenes
    ``World(n_train, world_seed)``, validation ``World(n_val, world_seed + 1)``, evaluation
    on the unseen split of ``World(n_eval, eval_seed)``. Bad values: one line."""

    width: int = 24
    embed_dim: int = 64
    se: bool = True
    cbam: bool = False
    vit: bool = False
    image_size: int = 64
    loss: str = "triplet"
    margin: float | None = 0.1
    distance: str = "euclidean"
    miner: str = "semihard"
    miner_margin: float = 0.2
    n_train: int = 4000
    n_val: int = 1200
    n_eval: int = EVAL_WORLD["n"]
    world_seed: int = 1400
    eval_seed: int = EVAL_WORLD["seed"]
    epochs: int = 12
    lr: float = 3e-3
    m: int = 8
    classes_per_batch: int = 16
    seed: int = 0

    def __post_init__(self) -> None:
        checks = Checks("MetricWorldConfig")
        _check_common(self, checks)
        for name in ("n_train", "n_val", "n_eval"):
            checks(positive_int, getattr(self, name), name)
        checks(integer, self.world_seed, "world_seed", low=0)
        checks(integer, self.eval_seed, "eval_seed", low=0)
        if is_integer(self.world_seed) and is_integer(self.eval_seed):
            if self.world_seed == self.eval_seed:
                checks.add(f"world_seed {self.world_seed} is eval_seed (train on fresh scenes)")
            if self.world_seed + 1 == self.eval_seed:
                checks.add(f"the validation world's seed world_seed + 1 = {self.world_seed + 1}"
                           " is eval_seed")
        checks.done()


@dataclass(frozen=True)
class MetricDigitsConfig(DictConfig):
    """The ``metric_digits_cnn`` checkpoint's config (its defaults): scikit-learn's digits,
    trained on ``train_digits``, evaluated on the others. Bad values: one line."""

    width: int = 16
    embed_dim: int = 128
    se: bool = False
    cbam: bool = False
    vit: bool = False
    image_size: int = 16
    loss: str = "triplet"
    margin: float | None = 0.2
    distance: str = "euclidean"
    miner: str = "batch_all"
    miner_margin: float = 0.2
    train_digits: tuple[int, ...] = (0, 1, 2, 3, 4)
    epochs: int = 2
    lr: float = 3e-3
    m: int = 16
    classes_per_batch: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        checks = Checks("MetricDigitsConfig")
        _check_common(self, checks)
        digits = self.train_digits
        if not (isinstance(digits, (list, tuple)) and digits
                and all(is_integer(d) and 0 <= d <= 9 for d in digits)
                and len(set(digits)) == len(digits) < 10):
            checks.add(f"train_digits must be distinct digits 0-9, leaving some for "
                       f"evaluation, got {digits!r}")
        else:
            object.__setattr__(self, "train_digits", tuple(digits))
        checks.done()


def _build(config: MetricWorldConfig | MetricDigitsConfig | Mapping[str, Any]) -> SmallCNN:
    """The untrained encoder of a metric-learning config (either dataclass or its dict)."""
    cfg = _config(config)
    return SmallCNN(width=cfg.width, embed_dim=cfg.embed_dim, n_classes=1, se=cfg.se,
                    cbam=cfg.cbam, vit=cfg.vit, image_size=cfg.image_size)


def _config(config: Any) -> MetricWorldConfig | MetricDigitsConfig:
    """``config`` as its dataclass: digits when it names ``train_digits``, else the world's."""
    if isinstance(config, (MetricWorldConfig, MetricDigitsConfig)):
        return config
    if isinstance(config, Mapping) and "train_digits" in config:
        return MetricDigitsConfig.from_dict(config)
    return MetricWorldConfig.from_dict(config)


def _train_world(config: MetricWorldConfig | Mapping[str, Any], progress: bool) -> Trained:
    """Fresh scenes ``World(n, seed=world_seed)`` (seed >= 1400), only the classes that are
    seen in the evaluation world (``eval_seed``); held out for the learning curve: the
    unseen-class images of ``World(n_val, seed=world_seed + 1)`` (8 classes never trained on);
    reported: retrieval and few-shot numbers on the unseen split of ``World(n_eval,
    seed=eval_seed)``. ``config``: a :class:`MetricWorldConfig` or its dict."""
    cfg = MetricWorldConfig.from_dict(config)
    torch.manual_seed(cfg.seed)
    model = _build(cfg)
    world = World(n=cfg.n_train, seed=cfg.world_seed, progress=False)
    keep = np.flatnonzero(seen_classes_mask(world.labels, cfg.eval_seed))
    x = model.preprocess(world.images[keep], "cpu")
    y = world.labels[keep]
    val = World(n=cfg.n_val, seed=cfg.world_seed + 1, progress=False)
    vi = np.flatnonzero(~seen_classes_mask(val.labels, cfg.eval_seed))
    v_img, v_lab = val.images[vi], val.labels[vi]

    def evaluate(mdl):
        return retrieval_scores(embed_images(mdl, v_img, progress=False), v_lab)["map_at_r"]

    loss = make_loss(cfg.loss, cfg.margin, cfg.distance)
    miner = make_miner(cfg.miner, cfg.miner_margin,
                       torch.Generator().manual_seed(cfg.seed))
    hist = train_metric(model, x, y, loss, miner, epochs=cfg.epochs, lr=cfg.lr,
                        m=cfg.m, classes_per_batch=cfg.classes_per_batch,
                        evaluate=evaluate, seed=cfg.seed, progress=progress,
                        desc=f"metric learning ({cfg.loss} + {cfg.miner})")
    ev = World(n=cfg.n_eval, seed=cfg.eval_seed, progress=False)
    ui = ev.indices("unseen")
    feats = embed_images(model, ev.images[ui], progress=False)
    metrics = _round({**{f"unseen_{k}": v for k, v in retrieval_scores(feats, ev.labels[ui]).items()},
                      **_shots(feats, ev.labels[ui]),
                      "loss_first_epoch": hist["epoch_loss"][0],
                      "loss_last_epoch": hist["epoch_loss"][-1]})
    return Trained(model, metrics=metrics, data={
        "world": {"n": cfg.n_train, "seed": cfg.world_seed,
                  "classes": "seen classes of the evaluation world", "images": int(len(keep))},
        "val_world": {"n": cfg.n_val, "seed": cfg.world_seed + 1,
                      "images": "unseen classes only", "count": int(len(vi))},
        "eval_world": {"n": cfg.n_eval, "seed": cfg.eval_seed, "split": "unseen"},
        "epochs": cfg.epochs, "steps": len(hist["loss"]),
        "curve": {"epoch_loss": _r(hist["epoch_loss"]), "epoch_active": _r(hist["epoch_active"]),
                  "val_map_at_r": _r(hist["eval"]), "step_loss": _r(hist["loss"]),
                  "step_active": _r(hist["active"])}})


def _r(values: list[float]) -> list[float]:
    return [round(float(v), 4) for v in values]


def _train_digits(config: MetricDigitsConfig | Mapping[str, Any], progress: bool) -> Trained:
    """scikit-learn's digits: train on the digits in ``train_digits`` (0-4); report retrieval
    and few-shot numbers on the other digits (5-9), never trained on. ``config``: a
    :class:`MetricDigitsConfig` or its dict."""
    cfg = MetricDigitsConfig.from_dict(config)
    torch.manual_seed(cfg.seed)
    model = _build(cfg)
    images, labels = digits_images()
    tr = np.isin(labels, cfg.train_digits)
    x = model.preprocess(images[tr], "cpu")
    ev_img, ev_lab = images[~tr], labels[~tr]

    def evaluate(mdl):
        return retrieval_scores(embed_images(mdl, ev_img, progress=False), ev_lab)["map_at_r"]

    loss = make_loss(cfg.loss, cfg.margin, cfg.distance)
    miner = make_miner(cfg.miner, cfg.miner_margin,
                       torch.Generator().manual_seed(cfg.seed))
    hist = train_metric(model, x, labels[tr], loss, miner, epochs=cfg.epochs,
                        lr=cfg.lr, m=cfg.m,
                        classes_per_batch=cfg.classes_per_batch, augment=False,
                        evaluate=evaluate, seed=cfg.seed, progress=progress,
                        desc=f"digits ({cfg.loss} + {cfg.miner})")
    feats = embed_images(model, ev_img, progress=False)
    metrics = _round({**{f"unseen_{k}": v for k, v in retrieval_scores(feats, ev_lab).items()},
                      **_shots(feats, ev_lab),
                      "loss_first_epoch": hist["epoch_loss"][0],
                      "loss_last_epoch": hist["epoch_loss"][-1]})
    return Trained(model, metrics=metrics, data={
        "dataset": "sklearn.datasets.load_digits", "train_digits": list(cfg.train_digits),
        "images": int(tr.sum()), "eval": "the other digits", "epochs": cfg.epochs,
        "steps": len(hist["loss"]),
        "curve": {"epoch_loss": _r(hist["epoch_loss"]), "epoch_active": _r(hist["epoch_active"]),
                  "val_map_at_r": _r(hist["eval"])}})


#: the checkpoints' configs: the defaults of :class:`MetricWorldConfig` and
#: :class:`MetricDigitsConfig`, as dicts
_WORLD: dict[str, Any] = MetricWorldConfig().to_dict()
_DIGITS: dict[str, Any] = MetricDigitsConfig().to_dict()

#: the trained metric-learning encoders (``mmkit.checkpoints.load(NAME)``)
CHECKPOINTS: dict[str, CheckpointSpec] = {
    "metric_world_cnn": CheckpointSpec(
        name="metric_world_cnn", build=_build, train=_train_world, config=_WORLD,
        description="SmallCNN embedding, triplet loss + semi-hard miner, world's seen classes",
        seconds=300),
    "metric_digits_cnn": CheckpointSpec(
        name="metric_digits_cnn", build=_build, train=_train_digits, config=_DIGITS,
        description="SmallCNN embedding of sklearn digits 0-4 (triplet + batch-all)",
        seconds=10),
}
