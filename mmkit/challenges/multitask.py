"""Multi-task learning: retrieval alone vs retrieval with class and attribute heads on one
encoder, with scarce and with plenty of training scenes (notebook 10, section 4).

- :data:`CHECKPOINTS`: four :class:`~mmkit.challenges.model.ChallengeNet` models at one budget
  (600 steps of 128 scenes): the supervised NT-Xent retrieval loss alone (``single``) or with
  a class cross entropy and an attribute binary cross entropy on the same pooled features
  (``multi``, weights 1 and 1), each trained on a scarce world (``World(n=400, seed=1)``:
  about 350 seen-class scenes, so about 200 epochs) or a plentiful one (``n=4000``, about 20
  epochs);
- :func:`multitask_loss`: the multi-task loss of one batch written out (what the notebook's
  learner writes by hand), equal to :func:`mmkit.challenges.training.step_loss`;
- :func:`multitask_table`: per model, class retrieval on the evaluation scenes (R@1, mAP,
  NDCG@10 with the world's graded scene relevance), the attribute head's accuracy, and the
  retrieval loss on its own training scenes vs on the evaluation scenes (the overfitting gap);
- :func:`probe_table`: how much of each attribute a linear probe (logistic regression) reads
  from the retrieval embedding: the mechanism by which the auxiliary heads act;
- :func:`task_gradient_cosine`: the cosine between the retrieval loss's gradient and each
  auxiliary loss's gradient on the shared encoder;
- :func:`plot_multitask`: grouped bars of one column (scarce vs plenty, single vs multi).
"""
from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from mmkit import checkpoints
from mmkit.challenges.data import SceneSet, eval_scenes
from mmkit.challenges.evaluate import class_retrieval
from mmkit.challenges.model import ChallengeNet
from mmkit.challenges.training import ChallengeConfig, challenge_spec, step_loss
from mmkit.data import World, WorldConfig
from mmkit.data import vocab as V
from mmkit.errors import InputError
from mmkit.losses import NTXentLoss
from mmkit.metrics import ndcg_at_k
from mmkit.scoring import EVAL_SPLIT, eval_world
from mmkit.training import seeded
from mmkit.validate import positive_int

__all__ = [
    "ATTRIBUTE_GROUPS",
    "CHECKPOINTS",
    "COLUMNS",
    "MODELS",
    "attribute_accuracy",
    "attribute_columns",
    "attribute_labels",
    "eval_outputs",
    "linear_probe",
    "multitask_loss",
    "multitask_table",
    "package_loss",
    "plot_multitask",
    "plot_probes",
    "probe_split",
    "probe_table",
    "retrieval_loss",
    "task_gradient_cosine",
    "training_scenes",
]

SCARCE = {"n": 400, "seed": 1}
PLENTY = {"n": 4000, "seed": 1}
MULTI = {"class_head": 1.0, "attribute_head": 1.0}

CHECKPOINTS = {
    "challenge_mt_scarce_single": challenge_spec(
        "challenge_mt_scarce_single", "supcon retrieval alone, ~350 training scenes",
        240.0, world=SCARCE, retrieval="supcon"),
    "challenge_mt_scarce_multi": challenge_spec(
        "challenge_mt_scarce_multi", "supcon + class and attribute heads, ~350 training scenes",
        240.0, world=SCARCE, retrieval="supcon", **MULTI),
    "challenge_mt_plenty_single": challenge_spec(
        "challenge_mt_plenty_single", "supcon retrieval alone, ~3500 training scenes",
        240.0, world=PLENTY, retrieval="supcon"),
    "challenge_mt_plenty_multi": challenge_spec(
        "challenge_mt_plenty_multi", "supcon + class and attribute heads, ~3500 training scenes",
        240.0, world=PLENTY, retrieval="supcon", **MULTI),
}

#: the table's rows: checkpoint name -> (data regime, objective)
MODELS: dict[str, tuple[str, str]] = {
    "challenge_mt_scarce_single": ("scarce", "single"),
    "challenge_mt_scarce_multi": ("scarce", "multi"),
    "challenge_mt_plenty_single": ("plenty", "single"),
    "challenge_mt_plenty_multi": ("plenty", "multi"),
}
#: the columns of :func:`multitask_table`
COLUMNS: tuple[str, ...] = ("train scenes", "R@1", "mAP", "NDCG@10", "attribute acc",
                            "train loss", "held-out loss", "gap")
#: the attribute groups of ``World.attributes``, in column order
ATTRIBUTE_GROUPS: tuple[str, ...] = tuple(V.ATTRIBUTES)


def attribute_columns(group: str) -> slice:
    """The columns of ``World.attributes`` [N, 28] that one-hot encode ``group``
    (``"shape"``, ``"colour"``, ``"texture"``, ``"size"`` or ``"hpos"``)."""
    if group not in ATTRIBUTE_GROUPS:
        raise InputError(f"unknown attribute group {group!r}; groups: "
                         f"{', '.join(ATTRIBUTE_GROUPS)}")
    start = 0
    for g in ATTRIBUTE_GROUPS:
        size = len(V.ATTRIBUTE_VALUES[g])
        if g == group:
            return slice(start, start + size)
        start += size
    raise AssertionError("unreachable")


def attribute_labels(attributes: np.ndarray, group: str) -> np.ndarray:
    """One-hot attributes [N, 28] -> int64 [N]: the value index of ``group``."""
    a = np.asarray(attributes)
    if a.ndim != 2 or a.shape[1] != sum(len(V.ATTRIBUTE_VALUES[g]) for g in ATTRIBUTE_GROUPS):
        raise InputError(f"attributes must be [N, 28] one-hot, got shape {a.shape}")
    return a[:, attribute_columns(group)].argmax(1).astype(np.int64)


def attribute_accuracy(logits: np.ndarray, attributes: np.ndarray) -> dict[str, float]:
    """Accuracy of attribute-head logits [N, 28] against one-hot ``attributes`` [N, 28]: per
    group, the arg-max of the group's logits vs the true value; ``"mean"`` over the groups."""
    lg = np.asarray(logits)
    if lg.shape != np.asarray(attributes).shape:
        raise InputError(f"logits {lg.shape} and attributes {np.shape(attributes)} must match")
    out = {g: float((lg[:, attribute_columns(g)].argmax(1)
                     == attribute_labels(attributes, g)).mean()) for g in ATTRIBUTE_GROUPS}
    out["mean"] = float(np.mean([out[g] for g in ATTRIBUTE_GROUPS]))
    return out


def _config(name: str) -> ChallengeConfig:
    if name not in CHECKPOINTS:
        raise InputError(f"unknown multi-task model {name!r}; models: {', '.join(MODELS)}")
    return ChallengeConfig.from_dict(CHECKPOINTS[name].config)


@lru_cache(maxsize=4)
def _sampled_scenes(n: int, seed: int, style_probs: tuple[float, float, float], size: int,
                    draw: int) -> SceneSet:
    world = World(WorldConfig(n=n, seed=seed, style_probs=style_probs), progress=False)
    seen = np.sort(np.concatenate([world.indices(s) for s in ("train", "val", "test")]))
    rows = np.sort(np.random.default_rng(draw).choice(seen, size=min(size, len(seen)),
                                                      replace=False))
    images = np.stack([world.render(int(i)) for i in rows])
    return SceneSet(images, world.labels[rows].astype(np.int64),
                    world.attributes[rows].astype(np.float32),
                    world.styles[rows].astype(np.int64), rows.astype(np.int64))


def training_scenes(name: str, size: int = 256, seed: int = 0) -> SceneSet:
    """``size`` scenes (fewer if the world has fewer) drawn without replacement (``seed``)
    from the seen-class scenes that checkpoint ``name`` was trained on, rendered one by one
    (a 4,000-scene world is not rendered whole): the training side of the overfitting gap
    and the batch of the hand-written loss. Same arrays as
    :func:`mmkit.challenges.data.train_scenes` for those rows; cached per process (models
    of the same training world share it: treat it as read-only)."""
    positive_int(size, "size")
    cfg = _config(name)
    return _sampled_scenes(cfg.world.n, cfg.world.seed, tuple(cfg.style_probs), int(size),
                           int(seed))


def multitask_loss(model: ChallengeNet, images: torch.Tensor, labels: torch.Tensor,
                   attributes: torch.Tensor, class_head: float = 1.0,
                   attribute_head: float = 1.0, temperature: float = 0.1) -> torch.Tensor:
    """The multi-task loss of one batch, written out: supervised NT-Xent on the retrieval
    embedding + ``class_head`` x cross entropy of the class head + ``attribute_head`` x
    binary cross entropy of the attribute head, all on the same pooled features.

    Args:
        images: normalised float [B, 3, H, W] (``model.to_tensor``).
        labels: int64 [B] classes.
        attributes: float [B, 28] one-hot attributes.
    """
    feats = model.features(images)
    loss = NTXentLoss(temperature=temperature)(model.embed(feats), labels)
    if class_head:
        loss = loss + class_head * F.cross_entropy(model.class_head(feats), labels)
    if attribute_head:
        loss = loss + attribute_head * F.binary_cross_entropy_with_logits(
            model.attribute_head(feats), attributes)
    return loss


def package_loss(model: ChallengeNet, name: str, batch: SceneSet) -> torch.Tensor:
    """The shared trainer's loss (:func:`~mmkit.challenges.training.step_loss`) of
    checkpoint ``name``'s config on ``batch``, with the model in its current mode."""
    cfg = _config(name)
    n = len(batch)
    loss, _ = step_loss(model, cfg, model.to_tensor(batch.images),
                        torch.as_tensor(batch.labels), torch.as_tensor(batch.attributes),
                        torch.ones(n), torch.zeros(len(V.CLASSES)), None,
                        torch.as_tensor(batch.styles), 0.0)
    return loss


@torch.no_grad()
def retrieval_loss(embeddings: np.ndarray, labels: np.ndarray, batch: int = 128,
                   repeats: int = 8, seed: int = 0, temperature: float = 0.1) -> float:
    """Mean supervised NT-Xent loss of unit-length ``embeddings`` [N, D] with classes
    ``labels`` [N] over ``repeats`` random batches of ``batch`` rows (the same draw for every
    model with the same N)."""
    positive_int(batch, "batch")
    positive_int(repeats, "repeats")
    emb = torch.as_tensor(np.asarray(embeddings, np.float32))
    y = torch.as_tensor(np.asarray(labels))
    if emb.ndim != 2 or len(emb) != len(y):
        raise InputError(f"embeddings [N, D] and labels [N] must match, got "
                         f"{tuple(emb.shape)} and {tuple(y.shape)}")
    rng = np.random.default_rng(seed)
    loss = NTXentLoss(temperature=temperature)
    values = []
    for _ in range(repeats):
        rows = torch.as_tensor(rng.choice(len(emb), size=min(batch, len(emb)), replace=False))
        values.append(float(loss(emb[rows], y[rows])))
    return float(np.mean(values))


@lru_cache(maxsize=8)
def _eval_cached(name: str, sha: str) -> tuple[np.ndarray, np.ndarray]:
    model, _ = checkpoints.load(name, progress=False)
    scenes = eval_scenes()
    return model.embed_images(scenes.images), model.predict(scenes.images, "attribute")


def eval_outputs(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(retrieval embeddings float32 [441, 128], attribute logits float32 [441, 28]) of
    checkpoint ``name`` on the evaluation scenes, cached per process and weights."""
    _config(name)
    sha = checkpoints.load(name, progress=False)[1]["sha256"]
    return _eval_cached(name, sha)


@lru_cache(maxsize=1)
def _eval_relevance() -> np.ndarray:
    world = eval_world()
    idx = world.indices(EVAL_SPLIT)
    return world.scene_relevance(idx, idx).astype(np.float64)


def graded_ndcg(embeddings: np.ndarray, k: int = 10) -> float:
    """Mean NDCG@k of image -> image retrieval among the evaluation scenes [441, D] with the
    world's graded scene relevance (shape, colour and texture of the main object that agree:
    0-3), each query's own scene left out."""
    e = np.asarray(embeddings, np.float64)
    scores = e @ e.T
    np.fill_diagonal(scores, -1e9)
    rel = _eval_relevance().copy()
    np.fill_diagonal(rel, 0.0)
    return float(ndcg_at_k(scores, rel, k).mean())


def multitask_table(names: Sequence[str] = tuple(MODELS), train_size: int = 192,
                    progress: bool = False) -> dict[str, dict[str, float]]:
    """The multi-task table: ``{name: {column: value}}`` for :data:`COLUMNS`.

    ``train scenes``: seen-class scenes of the training world (manifest); ``R@1`` / ``mAP``:
    :func:`~mmkit.challenges.evaluate.class_retrieval` among the 441 evaluation scenes, own
    scene excluded; ``NDCG@10``: :func:`graded_ndcg`; ``attribute acc``: mean over the five
    attribute groups of the attribute head's arg-max accuracy (NaN where the head was not
    trained); ``train loss`` / ``held-out loss``: :func:`retrieval_loss` on ``train_size``
    of the model's own training scenes / on the evaluation scenes; ``gap``: held-out minus
    train (large = overfitted).
    """
    scenes = eval_scenes()
    table: dict[str, dict[str, float]] = {}
    for name in names:
        cfg = _config(name)
        model, manifest = checkpoints.load(name, progress=progress)
        emb, logits = eval_outputs(name)
        run = class_retrieval(emb, scenes.labels, emb, scenes.labels, scenes.scenes,
                              scenes.scenes)
        train = training_scenes(name, train_size)
        held = retrieval_loss(emb, scenes.labels)
        fit = retrieval_loss(model.embed_images(train.images), train.labels)
        table[name] = {
            "train scenes": float(manifest["metrics"]["train_scenes"]),
            "R@1": round(run.r1, 4), "mAP": round(run.map, 4),
            "NDCG@10": round(graded_ndcg(emb), 4),
            "attribute acc": round(attribute_accuracy(logits, scenes.attributes)["mean"], 4)
            if cfg.attribute_head else float("nan"),
            "train loss": round(fit, 4), "held-out loss": round(held, 4),
            "gap": round(held - fit, 4)}
    return table


def probe_split(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A fixed half/half split of ``n`` rows: (train rows, test rows), each sorted."""
    positive_int(n, "n")
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[: n // 2]), np.sort(order[n // 2:])


def linear_probe(embeddings: np.ndarray, labels: np.ndarray, train: np.ndarray,
                 test: np.ndarray, C: float = 0.1) -> float:
    """Held-out accuracy of a linear probe: scikit-learn's ``LogisticRegression(C=C,
    max_iter=5000)`` (lbfgs, multinomial) on standardised ``embeddings`` [N, D] fitted on rows
    ``train``, scored on rows ``test`` against ``labels`` [N] (deterministic)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = np.asarray(embeddings, np.float64), np.asarray(labels)
    if x.ndim != 2 or len(x) != len(y):
        raise InputError(f"embeddings [N, D] and labels [N] must match, got {x.shape} and "
                         f"{y.shape}")
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=5000))
    probe.fit(x[train], y[train])
    return float(probe.score(x[test], y[test]))


def probe_table(names: Sequence[str] = tuple(MODELS),
                groups: Sequence[str] = ATTRIBUTE_GROUPS,
                seed: int = 0) -> dict[str, dict[str, float]]:
    """``{name: {group: accuracy}}``: :func:`linear_probe` of each attribute group from the
    model's retrieval embedding of the evaluation scenes (:func:`probe_split` with
    ``seed``), plus ``"mean"`` over the groups."""
    scenes = eval_scenes()
    train, test = probe_split(len(scenes), seed)
    out: dict[str, dict[str, float]] = {}
    for name in names:
        emb, _ = eval_outputs(name)
        row = {g: round(linear_probe(emb, attribute_labels(scenes.attributes, g), train, test),
                        4) for g in groups}
        row["mean"] = round(float(np.mean([row[g] for g in groups])), 4)
        out[name] = row
    return out


def task_gradient_cosine(name: str, batches: int = 4, batch: int = 128,
                         seed: int = 0) -> dict[str, float]:
    """Cosine between the gradient of the retrieval loss and that of the class / attribute
    losses with respect to the shared backbone's weights, averaged over ``batches`` batches
    of the model's own training scenes (model in eval mode, so BatchNorm is fixed). Positive:
    the auxiliary task pushes the encoder the same way as retrieval."""
    positive_int(batches, "batches")
    model, _ = checkpoints.load(name, progress=False)
    model.eval()
    scenes = training_scenes(name, batches * batch, seed)
    params = [p for p in model.backbone.parameters() if p.requires_grad]
    rng = seeded(seed)
    sums = {"class": 0.0, "attribute": 0.0}
    for _ in range(batches):
        rows = rng.choice(len(scenes), size=min(batch, len(scenes)), replace=False)
        x = model.to_tensor(scenes.images[rows])
        y = torch.as_tensor(scenes.labels[rows])
        a = torch.as_tensor(scenes.attributes[rows])
        feats = model.features(x)
        losses = {"retrieval": NTXentLoss(temperature=0.1)(model.embed(feats), y),
                  "class": F.cross_entropy(model.class_head(feats), y),
                  "attribute": F.binary_cross_entropy_with_logits(model.attribute_head(feats),
                                                                  a)}
        grads = {k: torch.cat([g.flatten() for g in torch.autograd.grad(
            v, params, retain_graph=True)]) for k, v in losses.items()}
        for k in sums:
            sums[k] += float(F.cosine_similarity(grads["retrieval"], grads[k], dim=0))
    return {k: round(v / batches, 4) for k, v in sums.items()}


def plot_multitask(table: dict[str, dict[str, float]], columns: Sequence[str] = ("R@1", "mAP"),
                   ax: Any = None) -> Any:
    """Grouped bars of ``columns`` of :func:`multitask_table`: one group per data regime and
    column (scarce / plenty), one bar per objective (retrieval alone / multi-task). Returns
    the matplotlib axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.6))
    groups = [(regime, col) for col in columns for regime in ("scarce", "plenty")]
    x = np.arange(len(groups))
    width = 0.38
    for j, (objective, label) in enumerate((("single", "retrieval alone"),
                                            ("multi", "retrieval + class + attribute heads"))):
        values = []
        for regime, col in groups:
            name = next(n for n, v in MODELS.items() if v == (regime, objective))
            values.append(table[name][col] if name in table else np.nan)
        bars = ax.bar(x + (j - 0.5) * width, values, width, label=label)
        ax.bar_label(bars, fmt="%.2f", fontsize=8)
    ax.set_xticks(x, [f"{col}\n{regime}" for regime, col in groups])
    ax.set_ylabel("score on the evaluation scenes")
    ax.set_ylim(0, 1.05)
    ax.set_title("Multi-task vs retrieval alone, scarce (~350) and plenty (~3,500) scenes")
    ax.legend(loc="upper left", fontsize=8)
    return ax


def plot_probes(probes: dict[str, dict[str, float]], ax: Any = None) -> Any:
    """Bars of :func:`probe_table`: one group per attribute, one bar per model; the dotted
    line of each group is the rate of always guessing the commonest value on the
    evaluation scenes' probe-test rows. Returns the matplotlib axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.6))
    names = [n for n in MODELS if n in probes]
    if not names:
        raise InputError("plot_probes: no row of MODELS in probes")
    groups = [g for g in ATTRIBUTE_GROUPS if g in probes[names[0]]]
    x = np.arange(len(groups))
    width = 0.8 / len(names)
    for j, name in enumerate(names):
        regime, objective = MODELS[name]
        ax.bar(x + (j - (len(names) - 1) / 2) * width, [probes[name][g] for g in groups],
               width, label=f"{regime}, {'multi-task' if objective == 'multi' else 'alone'}")
    scenes = eval_scenes()
    _, test = probe_split(len(scenes))
    for i, g in enumerate(groups):
        y = attribute_labels(scenes.attributes, g)[test]
        base = np.bincount(y).max() / len(y)
        ax.plot([i - 0.45, i + 0.45], [base, base], "k:", lw=1.2,
                label="commonest value" if i == 0 else None)
    ax.set_xticks(x, groups)
    ax.set_xlabel("attribute of the main object")
    ax.set_ylabel("linear probe accuracy (held out)")
    ax.set_ylim(0, 1.05)
    ax.set_title("What the retrieval embedding keeps")
    ax.legend(fontsize=7, ncol=2, loc="upper left")
    return ax
