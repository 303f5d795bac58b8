"""Exercises of notebook 05 (Siamese and triplet networks)."""
from __future__ import annotations

import numpy as np
import torch

from mmkit.encoders.metric_learning import retrieval_scores
from mmkit.exercises import Feedback, close, not_answered
from mmkit.losses import TripletMarginLoss
from mmkit.miners import TripletMarginMiner


def _tensor(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x), dtype=torch.float64)


def check_active_fraction(embeddings, labels, margin: float, answer: float | None) -> Feedback:
    """Exercise 1: the fraction of ALL valid triplets (a, p, n) of the batch whose triplet
    loss ``relu(d_ap - d_an + margin)`` is non-zero (Euclidean distance on L2-normalised
    embeddings)."""
    if answer is None:
        return not_answered()
    loss = TripletMarginLoss(margin)
    loss(_tensor(embeddings), torch.as_tensor(np.asarray(labels)))
    expected = loss.active_fraction
    if close(answer, expected, 1e-6):
        return Feedback(True, f"{loss.stats['active']} of {loss.stats['terms']} triplets "
                              f"violate the margin {margin}: {expected:.4f}")
    if close(answer, loss.stats["active"], 0.5):
        return Feedback(False, "that is the count; divide by the number of valid triplets")
    return Feedback(False, "count triplets with d_ap - d_an + margin > 0 over all valid "
                           "triplets (mmkit.losses.all_triplets lists them)")


def check_semihard_count(embeddings, labels, margin: float, answer: int | None) -> Feedback:
    """Exercise 2: how many semi-hard triplets (``0 < d_an - d_ap <= margin``) the batch has."""
    if answer is None:
        return not_answered()
    a, _, _ = TripletMarginMiner(margin, "semihard")(_tensor(embeddings),
                                                     torch.as_tensor(np.asarray(labels)))
    expected = len(a)
    try:
        value = int(answer)
    except (TypeError, ValueError):
        return Feedback(False, f"answer with a count (an integer), got {answer!r}")
    if value == expected:
        return Feedback(True, f"{expected} semi-hard triplets: the negative is farther than the "
                              "positive, but by less than the margin")
    return Feedback(False, f"{value} is not it: keep triplets with d_an - d_ap > 0 AND "
                           f"<= {margin} (strict on the left, inclusive on the right)")


def check_map_at_r(feats, labels, answer: float | None) -> Feedback:
    """Exercise 3: MAP@R of leave-one-out cosine retrieval over ``feats`` (same label =
    relevant), as pytorch-metric-learning's AccuracyCalculator reports it."""
    if answer is None:
        return not_answered()
    got = retrieval_scores(feats, labels)
    if close(answer, got["map_at_r"], 1e-4):
        return Feedback(True, f"MAP@R = {got['map_at_r']:.4f}")
    for name in ("r_precision", "p_at_1"):
        if close(answer, got[name], 1e-4):
            return Feedback(False, f"that is the {name.replace('_', ' ')}; MAP@R averages "
                                   "precision at each relevant rank within the first R, / R")
    return Feedback(False, "for each query: R = number of other items of its class; average "
                           "precision@i over the ranks i <= R that hold a relevant item, "
                           "divided by R; then average over queries")


# ------------------------------------------------------------------ worked solutions
def _unit_distances(embeddings) -> np.ndarray:
    """Euclidean distances [B, B] between the L2-normalised rows."""
    x = np.asarray(embeddings, np.float64)
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    return np.linalg.norm(x[:, None, :] - x[None, :, :], axis=2)


def _valid_triplets(labels) -> np.ndarray:
    """bool [B, B, B]: (a, p, n) with label[a] == label[p], a != p, label[a] != label[n]."""
    labels = np.asarray(labels)
    same = labels[:, None] == labels[None, :]
    positive = same & ~np.eye(len(labels), dtype=bool)
    return positive[:, :, None] & ~same[:, None, :]


def solution_active_fraction(embeddings, labels, margin: float = 0.1) -> float:
    """Exercise 1. Call with ``batch, batch_labels``: for every valid triplet, the loss
    d_ap - d_an + margin (distances of L2-normalised embeddings); count the positive ones."""
    d = _unit_distances(embeddings)
    valid = _valid_triplets(labels)
    loss = d[:, :, None] - d[:, None, :] + margin                  # [a, p, n]
    return float((loss[valid] > 0).sum() / valid.sum())


def solution_semihard_count(embeddings, labels, margin: float = 0.3) -> int:
    """Exercise 2. Call with ``batch, batch_labels``: semi-hard = the negative is farther
    than the positive, but by at most the margin: 0 < d_an - d_ap <= margin."""
    d = _unit_distances(embeddings)
    gap = d[:, None, :] - d[:, :, None]                            # d_an - d_ap at [a, p, n]
    return int((_valid_triplets(labels) & (gap > 0) & (gap <= margin)).sum())


def solution_map_at_r(feats, labels) -> float:
    """Exercise 3. Call with ``pixels[:200], d_labels[:200]``: cosine similarities, the query
    itself removed; per query R = the other items of its class, AP over the first R ranks
    (precision at each relevant rank, summed, divided by R); the mean over queries."""
    x = np.asarray(feats, np.float64)
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    labels = np.asarray(labels)
    sim = x @ x.T
    np.fill_diagonal(sim, -np.inf)
    values = []
    for q in range(len(labels)):
        relevant = labels == labels[q]
        relevant[q] = False
        r = int(relevant.sum())
        if r == 0:
            continue                                               # no other item of its class
        top = np.argsort(-sim[q], kind="stable")[:r]
        hit = relevant[top]
        precision = np.cumsum(hit) / np.arange(1, r + 1)
        values.append((precision * hit).sum() / r)
    return float(np.mean(values))


SOLUTIONS = {1: solution_active_fraction, 2: solution_semihard_count, 3: solution_map_at_r}
