"""Exercise of notebook 10, section 4 (multi-task learning): how well the attribute head of
a multi-task model predicts one attribute (the horizontal position), compared with always
guessing its commonest value.

The learner runs the attribute head on the evaluation scenes (``model.predict(images,
"attribute")``, logits [441, 28]), takes the arg-max within the attribute's columns and
reports the accuracy; the checker recomputes it with
:func:`mmkit.challenges.multitask.attribute_accuracy`.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from mmkit import checkpoints
from mmkit.challenges.data import eval_scenes
from mmkit.challenges.multitask import (
    attribute_accuracy,
    attribute_columns,
    attribute_labels,
)
from mmkit.exercises import Feedback, close, not_answered, number

#: the model and attribute the exercise asks about
HEAD_MODEL = "challenge_mt_plenty_multi"
HEAD_GROUP = "hpos"


def solution_head_accuracy(model: torch.nn.Module, images: np.ndarray, attributes: np.ndarray,
                           group: str = HEAD_GROUP) -> float:
    """Accuracy of the attribute head of ``model`` (a
    :class:`~mmkit.challenges.model.ChallengeNet`) for ``group`` on ``images`` uint8
    [N, 64, 64, 3] with one-hot ``attributes`` [N, 28]: the arg-max of the group's logits
    against the true value."""
    cols = attribute_columns(group)
    logits = model.predict(images, "attribute")                       # [N, 28]
    return float((logits[:, cols].argmax(1) == attributes[:, cols].argmax(1)).mean())


@lru_cache(maxsize=2)
def _head(name: str, sha: str) -> dict[str, float]:
    model, _ = checkpoints.load(name, progress=False)
    scenes = eval_scenes()
    return attribute_accuracy(model.predict(scenes.images, "attribute"), scenes.attributes)


def check_head_accuracy(answer: float | None, name: str = HEAD_MODEL,
                        group: str = HEAD_GROUP) -> Feedback:
    """The accuracy of checkpoint ``name``'s attribute head for ``group`` on the 441
    evaluation scenes (tolerance 0.001)."""
    if answer is None:
        return not_answered()
    value = number(answer)
    if value is None or not 0 <= value <= 1:
        return Feedback(False, f"answer with an accuracy between 0 and 1, got {answer!r}")
    acc = _head(name, checkpoints.load(name, progress=False)[1]["sha256"])
    expected = acc[group]
    labels = attribute_labels(eval_scenes().attributes, group)
    common = float(np.bincount(labels).max() / len(labels))
    if close(value, expected, 0.001):
        verdict = "no better than" if expected <= common + 0.01 else "above"
        return Feedback(True, f"{expected:.3f}, {verdict} always guessing the commonest "
                              f"{group} ({common:.3f})")
    if close(value, acc["mean"], 0.001):
        return Feedback(False, "that is the mean over the five attributes; keep only the "
                               f"{group} columns")
    if close(value, common, 0.001):
        return Feedback(False, "that is the rate of the commonest value; compare the head's "
                               "arg-max with the true value")
    return Feedback(False, f"logits = model.predict(scenes.images, 'attribute'); cols = "
                           f"mt.attribute_columns('{group}'); mean of logits[:, cols].argmax(1) "
                           "== scenes.attributes[:, cols].argmax(1)")
