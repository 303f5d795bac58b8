"""Exercises of notebook 07 (multimodal fusion)."""
from __future__ import annotations

import numpy as np

from mmkit.exercises import Feedback, close, not_answered


def check_rrf_score(a: np.ndarray, b: np.ndarray, k: float, item: int,
                    answer: float | None) -> Feedback:
    """Exercise 1: the (unweighted) reciprocal-rank-fusion score ``1/(k + rank_A) +
    1/(k + rank_B)`` of gallery ``item`` for the single query of score rows ``a``, ``b``
    float [1, G] (ranks 1-based, ties by column index)."""
    if answer is None:
        return not_answered()
    ranks = []
    for row in (np.asarray(a, float)[0], np.asarray(b, float)[0]):
        order = np.argsort(-row, kind="stable")
        ranks.append(int(np.flatnonzero(order == item)[0]) + 1)
    expected = sum(1.0 / (k + r) for r in ranks)
    if close(answer, expected, 1e-9):
        return Feedback(True, f"ranks {ranks[0]} and {ranks[1]}: {expected:.6f}")
    if close(answer, expected / 2, 1e-9):
        return Feedback(False, "that is mmkit's weighted RRF with weights 1/2 each; the "
                               "exercise asks for the plain sum")
    return Feedback(False, "find the item's 1-based rank in each system (sort scores "
                           "descending), then add 1 / (k + rank) over both systems")


def check_renormalised(weights, present, answer) -> Feedback:
    """Exercise 2: the weights that fusion uses when some modalities are missing."""
    if answer is None:
        return not_answered()
    w = np.asarray(weights, float) * np.asarray(present, bool)
    expected = w / w.sum()
    try:
        got = np.asarray(answer, float)
    except (TypeError, ValueError):
        return Feedback(False, f"answer with one weight per modality, got {answer!r}")
    if got.shape != expected.shape:
        return Feedback(False, f"answer with {len(expected)} weights, got shape {got.shape}")
    if np.allclose(got, expected, atol=1e-6):
        return Feedback(True, f"{np.round(expected, 3).tolist()}: a missing modality gets 0, "
                              "the others keep their ratios and sum to one")
    if not np.isclose(got.sum(), 1):
        return Feedback(False, f"your weights sum to {got.sum():.3f}; renormalise them so that "
                               "they sum to one over the modalities that are present")
    return Feedback(False, "set the missing modality's weight to 0 and divide the others by "
                           "their sum")


def check_composed_targets(world, reference: int, modification, gallery, answer) -> Feedback:
    """Exercise 3: the gallery images that are targets of ``reference`` + ``modification``."""
    if answer is None:
        return not_answered()
    want = [int(v) for v in world.objects[reference, 0, :3]]
    want[modification.column] = modification.new
    expected = {int(g) for g in np.asarray(gallery) if int(g) != int(reference)
                and [int(v) for v in world.objects[int(g), 0, :3]] == want}
    try:
        got = {int(v) for v in answer}
    except (TypeError, ValueError):
        return Feedback(False, f"answer with a list of image indices, got {answer!r}")
    if got == expected:
        return Feedback(True, f"{len(expected)} target(s): the reference's shape, colour and "
                              "texture with one changed")
    if int(reference) in got:
        return Feedback(False, "the reference itself is never a target (it has the OLD value)")
    missing, extra = expected - got, got - expected
    return Feedback(False, f"{len(missing)} target(s) missing and {len(extra)} wrong; compare "
                           "world.objects[g, 0, :3] with the modified triple")


# ------------------------------------------------------------------ worked solutions
def solution_rrf_score(a=((4.0, 3, 2, 1),), b=((3.0, 1, 4, 2),), k: float = 10,
                       item: int = 2) -> float:
    """Exercise 1. The item's 1-based rank in each system (scores descending), then
    1 / (k + rank) summed over the systems. By hand: document 2 is 3rd in A and 1st in B,
    so 1/13 + 1/11."""
    total = 0.0
    for scores in (np.asarray(a, float)[0], np.asarray(b, float)[0]):
        order = list(np.argsort(-scores, kind="stable"))           # best first, ties by index
        rank = 1 + order.index(item)
        total += 1.0 / (k + rank)
    return total


def solution_renormalised(weights=(0.2, 0.5, 0.3), present=(True, False, True)) -> np.ndarray:
    """Exercise 2. A missing modality gets weight 0; the others keep their ratios and are
    divided by their sum: [0.2, 0, 0.3] / 0.5 = [0.4, 0, 0.6]."""
    w = np.where(present, weights, 0.0)
    return w / w.sum()


def solution_composed_targets(world, reference: int, modification, gallery) -> list[int]:
    """Exercise 3. Call with ``world, int(comp_gt.references[0]), comp_gt.modifications[0],
    test.images``: the reference's (shape, colour, texture) with the modified attribute
    (column ``modification.column``) set to ``modification.new``; the targets are the other
    gallery images whose main object has exactly that triple."""
    wanted = world.objects[reference, 0, :3].copy()
    wanted[modification.column] = modification.new
    return [int(g) for g in gallery
            if g != reference and (world.objects[g, 0, :3] == wanted).all()]


SOLUTIONS = {1: solution_rrf_score, 2: solution_renormalised, 3: solution_composed_targets}
