"""Fine-grained retrieval: sibling classes that differ in one subtle attribute, where the
errors of a retrieval model sit, and whether an attribute-aware embedding narrows the gap
(notebook 10, section 3).

The world's class table (:func:`mmkit.data.vocab._make_classes`) draws 32 base classes and
then makes 32 *siblings*, each a base class with one attribute moved to a near value (a
pentagon becomes a hexagon, red becomes orange, plain becomes dotted), as close bird species
do in CUB-200. Some bases received two siblings and five none.

- :func:`sibling_pairs`: the 32 pairs made as siblings, ``(base, sibling, attribute)``,
  rebuilt from the class table (the table's own construction loop, replayed on its classes
  and checked against them); :func:`sibling_matrix` / :func:`sibling_attribute_matrix` as
  [64, 64] tables; :func:`sibling_of`: one sibling per class (-1 for none);
- :func:`sibling_confusion`: of the wrong top-1 results of a :class:`~mmkit.challenges.
  evaluate.ClassRetrieval`, the share that land on a sibling of the query's class, the share
  chance predicts (sibling gallery items among all wrong-class gallery items), split by the
  differing attribute, and R@1 on queries of classes with and without a sibling;
- :data:`CHECKPOINTS`: ``challenge_plain`` (the default :class:`~mmkit.challenges.training.
  ChallengeConfig`), ``challenge_attributes`` (plus an attribute head, weight 1, whose
  predicted shape, colour and texture are appended to the embedding) and
  ``challenge_attributes_x3`` (the same with the attribute loss weighted 3);
- :func:`model_runs` / :func:`fine_grained_table` / :func:`plot_sibling_errors`: the
  section's measurements on the evaluation scenes for the joint model (image -> image and
  class-name text -> image), the triplet model of notebook 05, the three challenge models.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from mmkit import checkpoints
from mmkit.challenges.data import SceneSet, eval_scenes
from mmkit.challenges.evaluate import ClassRetrieval, class_retrieval
from mmkit.challenges.training import challenge_spec
from mmkit.data import vocab as V
from mmkit.errors import InputError
from mmkit.features.image_encoder import embed_images as embed_with_cnn
from mmkit.methods import get_method

__all__ = [
    "ATTRIBUTE_KINDS",
    "CHECKPOINTS",
    "CLASS_ATTRIBUTE_COLUMNS",
    "COLUMNS",
    "MODELS",
    "SiblingConfusion",
    "class_prompts",
    "embed_model",
    "fine_grained_table",
    "has_sibling",
    "load_model",
    "model_runs",
    "plot_sibling_errors",
    "sibling_attribute_matrix",
    "sibling_confusion",
    "sibling_matrix",
    "sibling_of",
    "sibling_pairs",
]

#: the attributes a sibling pair can differ in (index = the values of
#: :func:`sibling_attribute_matrix`)
ATTRIBUTE_KINDS: tuple[str, ...] = ("shape", "colour", "texture")
#: the columns of ``World.attributes`` that describe the class (shape, colour, texture one-hot
#: blocks; size and position follow and say nothing about the class)
CLASS_ATTRIBUTE_COLUMNS = slice(0, len(V.SHAPES) + len(V.COLOURS) + len(V.TEXTURES))

#: the models measured, in table order
MODELS: tuple[str, ...] = ("joint image->image", "joint text->image", "triplet (nb 05)",
                           "challenge_plain", "challenge_attributes", "challenge_attributes_x3")
#: the columns of :func:`fine_grained_table`
COLUMNS: tuple[str, ...] = ("R@1", "R@1 sibling classes", "R@1 no-sibling classes",
                            "sibling share of errors", "chance share")

CHECKPOINTS = {
    "challenge_plain": challenge_spec(
        "challenge_plain", "the challenges' plain image encoder: normalised-softmax proxy "
        "loss only (default ChallengeConfig)", seconds=300.0),
    "challenge_attributes": challenge_spec(
        "challenge_attributes", "attribute-aware image encoder: proxy loss + attribute head "
        "(BCE, weight 1) whose predicted attributes are appended to the embedding",
        seconds=300.0, attribute_head=1.0, embed_attributes=1.0),
    "challenge_attributes_x3": challenge_spec(
        "challenge_attributes_x3", "as challenge_attributes with the attribute loss weighted "
        "3x (attribute_head=3)", seconds=300.0, attribute_head=3.0, embed_attributes=1.0),
}


# ================================================================== the sibling pairs
def sibling_pairs() -> tuple[tuple[int, int, str], ...]:
    """The class pairs made as siblings: ``(base, sibling, attribute)`` with ``attribute`` in
    :data:`ATTRIBUTE_KINDS`, in the order the class table made them (32 pairs;
    :data:`mmkit.data.vocab.SIBLING_PAIRS`). A class can differ by one near value from two
    bases (``"teal checkered circle"`` is one texture step from ``"teal striped circle"`` and
    one colour step from ``"blue checkered circle"``); only the pair it was made from counts."""
    return V.SIBLING_PAIRS


def sibling_attribute_matrix() -> np.ndarray:
    """int8 [64, 64], symmetric: the index into :data:`ATTRIBUTE_KINDS` of the attribute in
    which two sibling classes differ, -1 for pairs that are not siblings."""
    out = np.full((V.N_CLASSES, V.N_CLASSES), -1, np.int8)
    for a, b, attr in sibling_pairs():
        out[a, b] = out[b, a] = ATTRIBUTE_KINDS.index(attr)
    return out


def sibling_matrix() -> np.ndarray:
    """bool [64, 64], symmetric: True where two classes were made as siblings."""
    return sibling_attribute_matrix() >= 0


def sibling_of() -> np.ndarray:
    """int64 [64]: one sibling of each class, -1 for the classes without one. A sibling's entry
    is the base it was made from; a base with two siblings (five do) lists the first made, so
    use :func:`sibling_matrix` when every sibling counts."""
    out = np.full(V.N_CLASSES, -1, np.int64)
    for a, b, _ in sibling_pairs():
        out[b] = a
        if out[a] < 0:
            out[a] = b
    return out


def has_sibling() -> np.ndarray:
    """bool [64]: the classes that have at least one sibling."""
    return sibling_matrix().any(axis=1)


# ================================================================== where errors land
@dataclass(frozen=True)
class SiblingConfusion:
    """Where the wrong top-1 results of one class-retrieval run land.

    Attributes:
        r1: R@1 over all queries.
        r1_sibling, r1_no_sibling: R@1 over the queries whose class has / has no sibling
            (NaN when there are none); ``n_sibling``, ``n_no_sibling`` count them.
        errors: queries whose top-1 has the wrong class.
        sibling_errors: of those, the ones whose top-1 class is a sibling of the query's.
        share: ``sibling_errors / errors`` (NaN without errors).
        chance: the share expected if each wrong top-1 were a random wrong-class gallery
            item: per error query, (gallery items of its siblings) / (gallery items of other
            classes), averaged over the error queries.
        by_attribute: ``{attribute: {"share", "chance", "sibling_errors"}}``: the same split
            by the attribute in which the two classes differ (the shares sum to ``share``).
    """

    r1: float
    r1_sibling: float
    r1_no_sibling: float
    n_sibling: int
    n_no_sibling: int
    errors: int
    sibling_errors: int
    share: float
    chance: float
    by_attribute: dict[str, dict[str, float]] = field(default_factory=dict)

    def row(self, digits: int = 3) -> dict[str, float]:
        """The :data:`COLUMNS` of the section's table, rounded to ``digits``."""
        return {"R@1": round(self.r1, digits),
                "R@1 sibling classes": round(self.r1_sibling, digits),
                "R@1 no-sibling classes": round(self.r1_no_sibling, digits),
                "sibling share of errors": round(self.share, digits),
                "chance share": round(self.chance, digits)}


def sibling_confusion(run: ClassRetrieval, gallery_labels: np.ndarray) -> SiblingConfusion:
    """Sibling confusion of ``run`` (:func:`~mmkit.challenges.evaluate.class_retrieval`) over
    the gallery whose class labels are ``gallery_labels`` int [G] (values 0-63); see
    :class:`SiblingConfusion`. The query's own scene, removed from its ranking, has the
    query's class, so it changes neither the wrong-class items nor the chance share."""
    gl = np.asarray(gallery_labels)
    if gl.ndim != 1 or len(gl) == 0 or not np.issubdtype(gl.dtype, np.integer) \
            or gl.min() < 0 or gl.max() >= V.N_CLASSES:
        raise InputError(f"sibling_confusion: gallery_labels must be int [G] in 0-"
                         f"{V.N_CLASSES - 1}, got {gl.dtype} {gl.shape}")
    if not set(np.unique(run.top1)) <= set(np.unique(gl)):
        raise InputError("sibling_confusion: the run's top-1 classes are not all in "
                         "gallery_labels (pass the gallery the run ranked)")
    attr = sibling_attribute_matrix()
    sib = attr >= 0
    counts = np.bincount(gl, minlength=V.N_CLASSES).astype(np.float64)
    q, top = np.asarray(run.labels), np.asarray(run.top1)
    wrong = top != q
    with_sib = sib[q].any(axis=1)
    other = len(gl) - counts[q]                                    # [Q] wrong-class items

    def r1_of(mask: np.ndarray) -> float:
        return float(run.hit1[mask].mean()) if mask.any() else float("nan")

    def share_chance(kind: int | None) -> tuple[int, float, float]:
        target = sib if kind is None else attr == kind                  # [64, 64]
        hits = int(target[q[wrong], top[wrong]].sum())
        expect = (target[q[wrong]].astype(np.float64) @ counts) / other[wrong]
        n = int(wrong.sum())
        return hits, (hits / n if n else float("nan")), \
            (float(expect.mean()) if n else float("nan"))

    hits, share, chance = share_chance(None)
    by = {}
    for k, name in enumerate(ATTRIBUTE_KINDS):
        h, s, c = share_chance(k)
        by[name] = {"share": s, "chance": c, "sibling_errors": h}
    return SiblingConfusion(r1=run.r1, r1_sibling=r1_of(with_sib), r1_no_sibling=r1_of(~with_sib),
                            n_sibling=int(with_sib.sum()), n_no_sibling=int((~with_sib).sum()),
                            errors=int(wrong.sum()), sibling_errors=hits, share=share,
                            chance=chance, by_attribute=by)


# ================================================================== the measurements
def class_prompts(classes: Sequence[int]) -> list[str]:
    """Text queries naming classes: ``"a red striped circle"``."""
    return [f"a {V.CLASSES[int(c)].name}" for c in classes]


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


@lru_cache(maxsize=8)
def load_model(name: str) -> Any:
    """A measured model, loaded once per process (eval mode): ``"joint"`` (the
    :class:`~mmkit.encoders.joint.JointModel` of ``joint_world``), ``"metric_world_cnn"`` or
    a name of :data:`CHECKPOINTS`."""
    if name == "joint":
        return get_method("joint", progress=False).model
    model, _ = checkpoints.load(name, progress=False)
    return model.eval()


def embed_model(name: str, images: np.ndarray) -> np.ndarray:
    """Unit-length image embeddings float32 [N, D] of uint8 ``images`` [N, H, W, 3] by one of
    the measured encoders: ``"joint"`` (the image tower of ``joint_world``),
    ``"metric_world_cnn"`` (notebook 05's triplet model), ``"challenge_plain"``,
    ``"challenge_attributes"`` or ``"challenge_attributes_x3"``."""
    if name == "joint":
        return _unit(load_model("joint").embed_images(images))
    if name == "metric_world_cnn":
        return _unit(embed_with_cnn(load_model(name), images, progress=False))
    if name in CHECKPOINTS:
        return _unit(load_model(name).embed_images(images))
    raise InputError(f"embed_model: unknown encoder {name!r}; choose joint, metric_world_cnn, "
                     f"{', '.join(CHECKPOINTS)}")


_ENCODER = {"joint image->image": "joint", "triplet (nb 05)": "metric_world_cnn",
            "challenge_plain": "challenge_plain", "challenge_attributes": "challenge_attributes",
            "challenge_attributes_x3": "challenge_attributes_x3"}


def model_runs(scenes: SceneSet | None = None, models: Sequence[str] = MODELS
               ) -> dict[str, ClassRetrieval]:
    """One :class:`~mmkit.challenges.evaluate.ClassRetrieval` per model of :data:`MODELS` on
    ``scenes`` (default: the evaluation world's test scenes, :func:`~mmkit.challenges.data.
    eval_scenes`): image -> image by class with each query's own scene left out; for
    ``"joint text->image"`` the queries are the class names (:func:`class_prompts`) of the
    classes in the gallery, one each."""
    sc = eval_scenes() if scenes is None else scenes
    out: dict[str, ClassRetrieval] = {}
    for m in models:
        if m == "joint text->image":
            gallery = embed_model("joint", sc.images)
            classes = np.unique(sc.labels)
            text = _unit(load_model("joint").embed_texts(class_prompts(classes)))
            out[m] = class_retrieval(text, classes, gallery, sc.labels)
        elif m in _ENCODER:
            z = embed_model(_ENCODER[m], sc.images)
            out[m] = class_retrieval(z, sc.labels, z, sc.labels, sc.scenes, sc.scenes)
        else:
            raise InputError(f"model_runs: unknown model {m!r}; models: {', '.join(MODELS)}")
    return out


def fine_grained_table(scenes: SceneSet | None = None, models: Sequence[str] = MODELS,
                       digits: int = 3) -> tuple[dict[str, dict[str, float]],
                                                 dict[str, SiblingConfusion]]:
    """The section's table ``{model: {column: value}}`` (:data:`COLUMNS`) and the full
    :class:`SiblingConfusion` of each model, on ``scenes`` (default: the evaluation scenes)."""
    sc = eval_scenes() if scenes is None else scenes
    conf = {m: sibling_confusion(r, sc.labels) for m, r in model_runs(sc, models).items()}
    return {m: c.row(digits) for m, c in conf.items()}, conf


def plot_sibling_errors(confusions: dict[str, SiblingConfusion], ax: Any = None) -> Any:
    """Bar chart: for each model, the share of its wrong top-1 results that land on a sibling
    class, split by the attribute the two classes differ in (stacked), with the chance share
    as a black tick. Returns the matplotlib axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3.6))
    names = list(confusions)
    x = np.arange(len(names))
    bottom = np.zeros(len(names))
    colours = {"shape": "#4c72b0", "colour": "#dd8452", "texture": "#55a868"}
    for attr in ATTRIBUTE_KINDS:
        v = np.array([confusions[m].by_attribute[attr]["share"] for m in names])
        ax.bar(x, v, 0.6, bottom=bottom, label=f"sibling differs in {attr}",
               color=colours[attr])
        bottom += v
    ax.hlines([confusions[m].chance for m in names], x - 0.3, x + 0.3, color="black",
              linewidth=2, zorder=3, label="chance share")
    ax.set_xticks(x, [n.replace(" ", "\n", 1).replace("challenge_", "challenge\n")
                      for n in names], fontsize=8)
    ax.set_ylabel("share of wrong top-1 results")
    top = max([bottom.max(), *(confusions[m].chance for m in names)])
    ax.set_ylim(0, min(1.0, 1.35 * top + 0.02))
    ax.set_title("Wrong top-1 results that are the query's sibling class")
    ax.legend(fontsize=8, loc="upper right", ncol=2)
    return ax
