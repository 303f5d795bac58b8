"""Exercises of notebook 11 (real datasets): the evaluation traps, computed on a run, and
ConSE's number of concepts on real photos.

Exercises 1-3 recompute the right answer from the run's score matrix and positives
(:class:`mmkit.methods.evaluate.DirectionRun`), with mmkit's tie rule (score descending,
ties by gallery position ascending); exercise 4 from the photos' ImageNet probabilities with
:func:`mmkit.features.conse.conse`.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from mmkit.exercises import Feedback, close, not_answered, number
from mmkit.features.conse import conse, top_concepts
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


# ---------------------------------------------------------------- searching real photos
#: the numbers of concepts ConSE combines that exercise 4 compares
TOP_TS = (1, 3, 10, 30)


def right_margins(scores: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Per query, how far its right gallery item is ahead: ``scores[q, right[q]]`` minus the
    best score of any other item (negative when a wrong item wins). ``scores`` float [Q, G],
    ``right`` int [Q] -> float64 [Q]."""
    s = np.asarray(scores, np.float64)
    rows = np.arange(len(s))
    r = np.asarray(right, np.int64)
    wrong = s.copy()
    wrong[rows, r] = -np.inf
    return s[rows, r] - wrong.max(axis=1)


def _conse_scores(probs, label_vectors, query_vectors, t: int) -> np.ndarray:
    """Cosines float64 [Q, G] of the queries with the photos embedded by ConSE over top t."""
    return np.asarray(query_vectors, np.float64) @ conse(probs, label_vectors, t).T


def conse_margins(probs: np.ndarray, label_vectors: np.ndarray, query_vectors: np.ndarray,
                  right: np.ndarray, ts: tuple[int, ...] = TOP_TS) -> dict[int, float]:
    """{T: mean over the queries of :func:`right_margins`} with the photos embedded by ConSE
    over their top T classes (:func:`mmkit.features.conse.conse`), queries by
    ``query_vectors`` float [Q, d]; ``probs`` float [G, C], ``label_vectors`` float [C, d],
    ``right`` int [Q] (the gallery position of each query's photo)."""
    return {t: float(right_margins(_conse_scores(probs, label_vectors, query_vectors, t),
                                   right).mean()) for t in ts}


def _as_margins(answer) -> dict[int, float] | str:
    """The learner's {T: margin} with int keys and float values, or why it is not one."""
    if not isinstance(answer, Mapping):
        return (f"answer with a dict {{T: mean margin}} for T in {', '.join(map(str, TOP_TS))}, "
                f"got {type(answer).__name__}")
    out: dict[int, float] = {}
    for key, value in answer.items():
        try:
            t = int(key)
        except (TypeError, ValueError):
            return f"the keys are the values of T ({', '.join(map(str, TOP_TS))}), got {key!r}"
        v = number(value)
        if v is None:
            return f"the mean margin for T={t} must be a number, got {value!r}"
        out[t] = v
    missing = [t for t in TOP_TS if t not in out]
    if missing:
        return f"your dict has no mean margin for T = {', '.join(map(str, missing))}"
    return out


def _matches(got: dict[int, float], expected: dict[int, float], tol: float = 1e-4) -> bool:
    return all(close(got[t], expected[t], tol) for t in TOP_TS)


def check_top_t(probs: np.ndarray, label_vectors: np.ndarray, query_vectors: np.ndarray,
                right, answer) -> Feedback:
    """Exercise 4: how many classes should ConSE combine? ``answer``: {T: the mean margin of
    the queries} for T in :data:`TOP_TS`, where a query's margin is the cosine of its right
    photo minus that of the best other photo, the photos embedded by ConSE over their top T
    classes (no words read). ``probs`` float [G, 1000] class probabilities of the gallery,
    ``label_vectors`` float [1000, d], ``query_vectors`` float [Q, d], ``right`` int [Q]: the
    gallery position of each query's photo. Answers within 1e-4 count."""
    if answer is None:
        return not_answered()
    got = _as_margins(answer)
    if isinstance(got, str):
        return Feedback(False, got)
    r = np.asarray(right, np.int64)
    rows = np.arange(len(r))
    scores = {t: _conse_scores(probs, label_vectors, query_vectors, t) for t in TOP_TS}
    margins = {t: right_margins(s, r) for t, s in scores.items()}
    expected = {t: float(m.mean()) for t, m in margins.items()}
    if _matches(got, expected):
        best = max(TOP_TS, key=lambda t: expected[t])
        others = ", ".join(f"T={t}: {expected[t]:.3f}" for t in TOP_TS if t != best)
        firsts = ", ".join(str(int((margins[t] > 0).sum())) for t in TOP_TS)
        return Feedback(True, f"T={best} separates best, mean margin {expected[best]:.3f} "
                              f"({others}); the right photo is first for {firsts} of the "
                              f"{len(r)} queries (T = {', '.join(map(str, TOP_TS))})")
    if _matches(got, {t: float(s[rows, r].mean()) for t, s in scores.items()}):
        return Feedback(False, "that is the mean cosine of the right photos; subtract, per "
                               "query, the highest cosine of any other photo")
    gap = {t: float(np.diff(np.sort(s, axis=1)[:, -2:], axis=1).mean())
           for t, s in scores.items()}
    if _matches(got, gap):
        return Feedback(False, "that is the gap between the first and the second photo, "
                               "whichever they are; take the right photo's cosine minus the best "
                               "OTHER photo's (negative when a wrong photo wins)")
    unweighted = {}
    for t in TOP_TS:
        ids, _ = top_concepts(probs, t)
        v = np.asarray(label_vectors, np.float64)[ids].mean(axis=1)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        unweighted[t] = float(right_margins(np.asarray(query_vectors, np.float64) @ v.T,
                                            r).mean())
    if _matches(got, unweighted):
        return Feedback(False, "you averaged the T label vectors equally; weight each by its "
                               "class probability")
    if len({round(got[t], 6) for t in TOP_TS}) == 1:
        return Feedback(False, "your margins are the same for every T: embed the photos again "
                               "for each T (ConSE over the T most probable classes)")
    off = [t for t in TOP_TS if not close(got[t], expected[t], 1e-4)]
    return Feedback(False, f"T = {', '.join(map(str, off))} off: for each T, scores = "
                           "query_vectors @ conse_vectors(T).T [Q, G]; margin = scores[q, "
                           "right[q]] - the highest other score of row q; then the mean")
