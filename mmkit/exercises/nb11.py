"""Exercises of notebook 11 (real datasets): the evaluation traps, computed on a run.

Each checker recomputes the right answer from the run's score matrix and positives
(:class:`mmkit.methods.evaluate.DirectionRun`), with mmkit's tie rule (score descending,
ties by gallery position ascending).
"""
from __future__ import annotations

import numpy as np

from mmkit.exercises import Feedback, close, not_answered, number
from mmkit.metrics import hit_rate_at_k


def repeated_gallery_r1(scores: np.ndarray, positives: np.ndarray, copies: int = 5) -> float:
    """text->image R@1 when every gallery image appears ``copies`` times (one copy per
    caption, as a list of (image, caption) pairs gives) and only the copy paired with the
    query caption counts: each query's ``k``-th caption of its image is paired with copy
    ``k``. ``positives`` bool [Q, G] of the honest run; queries are the images' captions in
    image order, ``copies`` per image."""
    q, g = scores.shape
    wide = np.repeat(scores, copies, axis=1)                 # column g * copies + c
    pos = np.zeros((q, g * copies), bool)
    own = positives.argmax(1)
    copy = np.arange(q) % copies
    pos[np.arange(q), own * copies + copy] = True
    return float(hit_rate_at_k(wide, pos, 1).mean())


def fold_mean_r1(scores: np.ndarray, positives: np.ndarray, query_image: np.ndarray,
                 n_folds: int = 5) -> float:
    """The COCO-1K way: mean over ``n_folds`` consecutive folds of the gallery of the R@1 of
    the fold's own queries against the fold's images only. ``query_image`` int [Q]: the
    gallery position of each query's image."""
    g = scores.shape[1]
    size = g // n_folds
    values = []
    for f in range(n_folds):
        cols = np.arange(f * size, (f + 1) * size)
        rows = np.flatnonzero((query_image >= f * size) & (query_image < (f + 1) * size))
        values.append(float(hit_rate_at_k(scores[np.ix_(rows, cols)],
                                          positives[np.ix_(rows, cols)], 1).mean()))
    return float(np.mean(values))


def check_first_caption_only(run_image_text, answer: float | None) -> Feedback:
    """Exercise 1: image->text R@5 when only each image's first caption counts as a positive
    and the gallery keeps all five (``run_image_text``: the honest image->text run, 5
    captions per image, in image order)."""
    if answer is None:
        return not_answered()
    value = number(answer)
    if value is None:
        return Feedback(False, f"answer with a number between 0 and 1, got {answer!r}")
    first = np.arange(run_image_text.scores.shape[1]) % 5 == 0
    expected = float(hit_rate_at_k(run_image_text.scores,
                                   run_image_text.positives & first[None, :], 5).mean())
    honest = float(hit_rate_at_k(run_image_text.scores, run_image_text.positives, 5).mean())
    if close(value, expected, 1e-6):
        return Feedback(True, f"R@5 falls from {honest:.3f} to {expected:.3f}: the four other "
                              "right captions now count as wrong")
    if close(value, honest, 1e-6):
        return Feedback(False, "that is the honest R@5 with all five captions as positives; keep "
                               "only the positives in columns 0, 5, 10, ...")
    return Feedback(False, "positives & (np.arange(G) % 5 == 0), scores unchanged, then "
                           "mmkit.metrics.hit_rate_at_k(..., 5).mean()")


def check_repeated_gallery(run_text_image, answer: float | None) -> Feedback:
    """Exercise 2: text->image R@1 when the gallery holds each image five times and only the
    copy paired with the caption counts (see :func:`repeated_gallery_r1`)."""
    if answer is None:
        return not_answered()
    value = number(answer)
    if value is None:
        return Feedback(False, f"answer with a number between 0 and 1, got {answer!r}")
    expected = repeated_gallery_r1(run_text_image.scores, run_text_image.positives)
    honest = float(hit_rate_at_k(run_text_image.scores, run_text_image.positives, 1).mean())
    if close(value, expected, 1e-6):
        return Feedback(True, f"R@1 falls from {honest:.3f} to {expected:.3f}: the five copies tie, "
                              "and only the first of them can be at rank 1")
    return Feedback(False, "repeat every column 5 times (np.repeat(scores, 5, axis=1)); the "
                           "positive of a caption is the copy with its number (0-4) in the image")


def check_fold_mean(run_text_image, answer: float | None, n_folds: int = 5) -> Feedback:
    """Exercise 3: the 1K-style text->image R@1, the mean over 5 consecutive folds of the
    test images (each fold's captions against that fold's images only)."""
    if answer is None:
        return not_answered()
    value = number(answer)
    if value is None:
        return Feedback(False, f"answer with a number between 0 and 1, got {answer!r}")
    owner = run_text_image.positives.argmax(1)
    expected = fold_mean_r1(run_text_image.scores, run_text_image.positives, owner, n_folds)
    full = float(hit_rate_at_k(run_text_image.scores, run_text_image.positives, 1).mean())
    if close(value, expected, 1e-6):
        return Feedback(True, f"{expected:.3f} over folds against {full:.3f} over the whole "
                              "split: a gallery five times smaller is easier")
    if close(value, full, 1e-6):
        return Feedback(False, "that is R@1 over the whole split; cut the gallery into 5 "
                               "consecutive folds and score each fold's captions on its own")
    return Feedback(False, "for each fold f: columns f*size:(f+1)*size, the rows whose image "
                           "is in those columns; R@1 per fold, then the mean")
