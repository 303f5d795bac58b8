"""Exercises of notebook 04 (joint embeddings)."""
from __future__ import annotations

import numpy as np

from mmkit.data.ceiling import caption_log_likelihood
from mmkit.errors import InputError
from mmkit.exercises import Feedback, close, not_answered, number
from mmkit.scoring import modality_gap  # re-export: the kit's one definition of the gap


def _square(sim) -> np.ndarray:
    s = np.asarray(sim, np.float64)
    if s.ndim != 2 or s.shape[0] != s.shape[1] or len(s) < 2:
        raise InputError(f"the similarity matrix must be square [B, B] with B >= 2, got shape "
                         f"{s.shape}")
    return s


def _cross_entropy_rows(logits: np.ndarray) -> float:
    """Mean over rows of -log softmax(row)[diagonal]."""
    top = logits.max(1, keepdims=True)
    lse = top[:, 0] + np.log(np.exp(logits - top).sum(1))
    return float(np.mean(lse - np.diag(logits)))


def infonce_value(sim, temperature: float) -> float:
    """CLIP's symmetric InfoNCE of a similarity matrix ``sim`` float [B, B] (row b: image b
    against every caption; the diagonal holds the pairs) at ``temperature``:
    ``(CE(sim / T) + CE(sim.T / T)) / 2``, each CE the mean over rows."""
    s = _square(sim)
    if not temperature > 0:
        raise InputError(f"temperature must be > 0, got {temperature}")
    logits = s / float(temperature)
    return (_cross_entropy_rows(logits) + _cross_entropy_rows(logits.T)) / 2


def check_infonce(sim, temperature: float, answer: float | None) -> Feedback:
    """Exercise 1: the symmetric InfoNCE loss of the similarity matrix ``sim`` at
    ``temperature``, by hand (numpy), to 1e-4."""
    if answer is None:
        return not_answered()
    value = number(answer)
    if value is None:
        return Feedback(False, f"answer with a number (a float), got {answer!r}")
    expected = infonce_value(sim, temperature)
    if close(value, expected, 1e-4):
        return Feedback(True, f"symmetric InfoNCE = {expected:.4f}: the mean of the "
                              "image->text and text->image cross-entropies")
    s = _square(sim)
    logits = s / float(temperature)
    one_way = (_cross_entropy_rows(logits), _cross_entropy_rows(logits.T))
    if any(close(value, v, 1e-4) for v in one_way):
        return Feedback(False, "that is one direction only; average the row-wise "
                               "(images -> captions) and the column-wise (captions -> images) "
                               "cross-entropies")
    if close(value, infonce_value(s, 1.0), 1e-4):
        return Feedback(False, f"divide the similarities by the temperature {temperature} "
                               "before the softmax")
    if close(value, 2 * expected, 1e-4):
        return Feedback(False, "that is the sum of the two directions; CLIP averages them")
    return Feedback(False, "logits = sim / T; for each row, -log(exp(diag) / sum(exp(row))), "
                           "averaged over rows; the same over columns; then the mean of the two")


def check_fraction_of_ceiling(value: float, ceiling: float, answer: float | None,
                              oracle: float | None = None) -> Feedback:
    """Exercise 2: ``value`` (a model's R@1) as a fraction of the Bayes ceiling's R@1
    ``ceiling`` (to 1e-3). ``oracle``: the relevance oracle's R@1, to recognise the wrong
    reference."""
    if answer is None:
        return not_answered()
    got = number(answer)
    if got is None:
        return Feedback(False, f"answer with a number (a fraction between 0 and 1), got "
                               f"{answer!r}")
    if not ceiling > 0:
        raise InputError(f"the ceiling must be > 0, got {ceiling}")
    expected = float(value) / float(ceiling)
    if close(got, expected, 1e-3):
        return Feedback(True, f"{value:.3f} / {ceiling:.3f} = {expected:.3f} of the best any "
                              "system can do")
    if close(got, 100 * expected, 0.1):
        return Feedback(False, "that is a percentage; give the fraction (between 0 and 1)")
    if oracle is not None and oracle > 0 and close(got, float(value) / float(oracle), 1e-3):
        return Feedback(False, "that divides by the relevance oracle, which is not a ceiling: "
                               "divide by the Bayes ceiling's R@1")
    return Feedback(False, "divide the model's R@1 by the ceiling's R@1 of the same direction")


def check_likelier_image(world, caption: int, image_a: int, image_b: int,
                         answer: str | None) -> Feedback:
    """Exercise 3: which of two images makes caption ``caption`` likelier under the world's
    caption generator, ``p(caption | image)`` (:func:`mmkit.data.ceiling.caption_log_likelihood`):
    answer ``"a"``, ``"b"`` or ``"equal"``."""
    if answer is None:
        return not_answered()
    word = str(answer).strip().lower()
    if word not in ("a", "b", "equal"):
        return Feedback(False, f"answer 'a', 'b' or 'equal', got {answer!r}")
    ll = caption_log_likelihood(world, np.array([int(caption)]),
                                np.array([int(image_a), int(image_b)]))[0]
    pa, pb = np.exp(ll)
    expected = "equal" if ll[0] == ll[1] else ("a" if ll[0] > ll[1] else "b")
    if word == expected:
        return Feedback(True, f"p(caption | a) = {pa:.4g}, p(caption | b) = {pb:.4g}")
    if expected == "equal":
        return Feedback(False, "both images give the caption the same probability: look for a "
                               "factor that differs (a second object? a sign?) - there is none")
    return Feedback(False, "not that one: multiply the factors the generator uses - is there "
                           "a second object it could have mentioned, a sign it stayed silent "
                           "about, another object that could have been the main one?")


def check_modality_gap(image_emb, text_emb, answer: float | None) -> Feedback:
    """Exercise 4: the modality gap, the distance between the centroid of the (L2-normalised)
    image embeddings and that of the text embeddings, to 1e-3
    (:func:`mmkit.scoring.modality_gap`)."""
    if answer is None:
        return not_answered()
    got = number(answer)
    if got is None:
        return Feedback(False, f"answer with a number (a float), got {answer!r}")
    expected = modality_gap(image_emb, text_emb)
    if close(got, expected, 1e-3):
        return Feedback(True, f"the centroids are {expected:.3f} apart (unit vectors: at most 2)")
    a = np.asarray(image_emb, np.float64)
    b = np.asarray(text_emb, np.float64)
    if close(got, float(np.linalg.norm(a.mean(0) - b.mean(0))), 1e-3):
        return Feedback(False, "L2-normalise every embedding first, then take the centroids")
    if close(got, expected ** 2, 1e-3):
        return Feedback(False, "that is the squared distance; take the square root")
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    if close(got, float(1 - (a.mean(0) @ b.mean(0))), 1e-3):
        return Feedback(False, "give the Euclidean distance between the two mean vectors, "
                               "not one minus their dot product")
    return Feedback(False, "mean of the normalised image rows, mean of the normalised text "
                           "rows, then the Euclidean norm of their difference")
