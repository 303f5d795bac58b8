"""Exercises of notebook 11 (real datasets): the evaluation traps, computed on a run, and
ConSE's number of concepts on real photos.

Exercises 1-3 recompute the right answer from the run's score matrix and positives
(:class:`mmkit.methods.evaluate.DirectionRun`), with mmkit's tie rule (score descending,
ties by gallery position ascending): image->text R@5 with only each image's last caption
as a positive (:func:`check_last_caption_only`), text->image R@10 with every gallery image
repeated five times (:func:`check_repeated_gallery` with ``k=10``) and text->image R@5 over
five folds (:func:`check_fold_mean` with ``k=5``). Exercise 4 recomputes the mean rank of
each query's photo from the photos' ImageNet probabilities with
:func:`mmkit.features.conse.conse` (:func:`check_mean_rank`). :func:`check_first_caption_only`
and :func:`check_top_t` check two more variants of the same traps and photos.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from mmkit.exercises import Feedback, close, not_answered, number
from mmkit.features.conse import conse, top_concepts
from mmkit.metrics import hit_rate_at_k


def repeated_gallery_recall(scores: np.ndarray, positives: np.ndarray, k: int = 1,
                            copies: int = 5) -> float:
    """text->image R@k when every gallery image appears ``copies`` times (one copy per
    caption, as a list of (image, caption) pairs gives) and only the copy paired with the
    query caption counts: each query's ``c``-th caption of its image is paired with copy
    ``c``. ``positives`` bool [Q, G] of the honest run; queries are the images' captions in
    image order, ``copies`` per image."""
    q, g = scores.shape
    wide = np.repeat(scores, copies, axis=1)                 # column g * copies + c
    pos = np.zeros((q, g * copies), bool)
    own = positives.argmax(1)
    copy = np.arange(q) % copies
    pos[np.arange(q), own * copies + copy] = True
    return float(hit_rate_at_k(wide, pos, k).mean())


def fold_mean_recall(scores: np.ndarray, positives: np.ndarray, query_image: np.ndarray,
                     k: int = 1, n_folds: int = 5) -> float:
    """The COCO-1K way: mean over ``n_folds`` consecutive folds of the gallery of the R@k of
    the fold's own queries against the fold's images only. ``query_image`` int [Q]: the
    gallery position of each query's image."""
    g = scores.shape[1]
    size = g // n_folds
    values = []
    for f in range(n_folds):
        cols = np.arange(f * size, (f + 1) * size)
        rows = np.flatnonzero((query_image >= f * size) & (query_image < (f + 1) * size))
        values.append(float(hit_rate_at_k(scores[np.ix_(rows, cols)],
                                          positives[np.ix_(rows, cols)], k).mean()))
    return float(np.mean(values))


def _check_one_caption(run_image_text, answer, caption: int, k: int) -> Feedback:
    """image->text R@k with only caption ``caption`` (0-4) of each image as its positive."""
    if answer is None:
        return not_answered()
    value = number(answer)
    if value is None:
        return Feedback(False, f"answer with a number between 0 and 1, got {answer!r}")
    column = np.arange(run_image_text.scores.shape[1]) % 5

    def recall(keep: np.ndarray, at: int = k) -> float:
        return float(hit_rate_at_k(run_image_text.scores,
                                   run_image_text.positives & keep[None, :], at).mean())

    expected = recall(column == caption)
    honest = recall(np.ones_like(column, dtype=bool))
    which = {0: "first", 4: "last"}.get(caption, f"number {caption}")
    if close(value, expected, 1e-6):
        return Feedback(True, f"R@{k} falls from {honest:.3f} to {expected:.3f}: the four other "
                              "right captions now count as wrong")
    if close(value, honest, 1e-6):
        return Feedback(False, f"that is the honest R@{k} with all five captions as positives; "
                               f"keep only each image's {which} caption")
    for other in range(5):
        if other != caption and close(value, recall(column == other), 1e-6):
            return Feedback(False, f"that counts caption {other} of each image (columns "
                                   f"{other}, {other + 5}, {other + 10}, ...); the {which} one "
                                   f"is in columns {caption}, {caption + 5}, {caption + 10}, ...")
    if close(value, recall(column == caption, 5 if k != 5 else 10), 1e-6):
        return Feedback(False, f"right positives, wrong cut-off: count a hit in the top {k}")
    return Feedback(False, f"positives & (np.arange(G) % 5 == {caption}), scores unchanged, then "
                           f"the share of rows with a positive in the top {k}")


def check_first_caption_only(run_image_text, answer: float | None) -> Feedback:
    """image->text R@5 when only each image's first caption counts as a positive and the
    gallery keeps all five (``run_image_text``: the honest image->text run, 5 captions per
    image, in image order)."""
    return _check_one_caption(run_image_text, answer, 0, 5)


def check_last_caption_only(run_image_text, answer: float | None) -> Feedback:
    """Exercise 1: image->text R@5 when only each image's last caption (gallery columns 4,
    9, 14, ...) counts as a positive and the gallery keeps all five (``run_image_text``: the
    honest image->text run, 5 captions per image, in image order)."""
    return _check_one_caption(run_image_text, answer, 4, 5)


def check_repeated_gallery(run_text_image, answer: float | None, k: int = 1) -> Feedback:
    """text->image R@k when the gallery holds each image five times and only the copy paired
    with the caption counts (see :func:`repeated_gallery_recall`); exercise 2 asks for
    ``k=10``."""
    if answer is None:
        return not_answered()
    value = number(answer)
    if value is None:
        return Feedback(False, f"answer with a number between 0 and 1, got {answer!r}")
    expected = repeated_gallery_recall(run_text_image.scores, run_text_image.positives, k)
    honest = float(hit_rate_at_k(run_text_image.scores, run_text_image.positives, k).mean())
    if close(value, expected, 1e-6):
        same = (f", the honest R@{k // 5}" if k % 5 == 0 else "")
        return Feedback(True, f"R@{k} falls from {honest:.3f} to {expected:.3f}{same}: every "
                              f"image takes five places, so the top {k} holds the copies of "
                              f"at most {-(-k // 5)} image(s)")
    if close(value, honest, 1e-6):
        return Feedback(False, f"that is the honest R@{k}; repeat every column 5 times "
                               "(np.repeat(scores, 5, axis=1)) and keep one positive per caption")
    return Feedback(False, "repeat every column 5 times (np.repeat(scores, 5, axis=1)); the "
                           "positive of a caption is the copy with its number (0-4) in the "
                           f"image; a hit when it is in the top {k}, ties to the lower column")


def check_fold_mean(run_text_image, answer: float | None, n_folds: int = 5,
                    k: int = 1) -> Feedback:
    """The 1K-style text->image R@k, the mean over 5 consecutive folds of the test images
    (each fold's captions against that fold's images only); exercise 3 asks for ``k=5``."""
    if answer is None:
        return not_answered()
    value = number(answer)
    if value is None:
        return Feedback(False, f"answer with a number between 0 and 1, got {answer!r}")
    owner = run_text_image.positives.argmax(1)
    expected = fold_mean_recall(run_text_image.scores, run_text_image.positives, owner, k,
                                n_folds)
    full = float(hit_rate_at_k(run_text_image.scores, run_text_image.positives, k).mean())
    if close(value, expected, 1e-6):
        return Feedback(True, f"R@{k} = {expected:.3f} over folds against {full:.3f} over the "
                              f"whole split: a gallery {n_folds} times smaller is easier")
    if close(value, full, 1e-6):
        return Feedback(False, f"that is R@{k} over the whole split; cut the gallery into "
                               f"{n_folds} consecutive folds and score each fold's captions on "
                               "its own")
    if k != 1 and close(value, fold_mean_recall(run_text_image.scores, run_text_image.positives,
                                                owner, 1, n_folds), 1e-6):
        return Feedback(False, f"that is R@1 over the folds; count a hit in the top {k}")
    return Feedback(False, "for each fold f: columns f*size:(f+1)*size, the rows whose image "
                           f"is in those columns; R@{k} per fold, then the mean")


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


def _as_margins(answer, what: str = "mean margin") -> dict[int, float] | str:
    """The learner's {T: value} with int keys and float values, or why it is not one."""
    if not isinstance(answer, Mapping):
        return (f"answer with a dict {{T: {what}}} for T in {', '.join(map(str, TOP_TS))}, "
                f"got {type(answer).__name__}")
    out: dict[int, float] = {}
    for key, value in answer.items():
        try:
            t = int(key)
        except (TypeError, ValueError):
            return f"the keys are the values of T ({', '.join(map(str, TOP_TS))}), got {key!r}"
        v = number(value)
        if v is None:
            return f"the {what} for T={t} must be a number, got {value!r}"
        out[t] = v
    missing = [t for t in TOP_TS if t not in out]
    if missing:
        return f"your dict has no {what} for T = {', '.join(map(str, missing))}"
    return out


def _matches(got: dict[int, float], expected: dict[int, float], tol: float = 1e-4) -> bool:
    return all(close(got[t], expected[t], tol) for t in TOP_TS)


def check_top_t(probs: np.ndarray, label_vectors: np.ndarray, query_vectors: np.ndarray,
                right, answer) -> Feedback:
    """How many classes should ConSE combine, by margin? ``answer``: {T: the mean margin of
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


def right_ranks(scores: np.ndarray, right: np.ndarray, ties: str = "ahead") -> np.ndarray:
    """Per query, the rank (1 = first) of its right gallery item: 1 + the number of items with
    a higher score; ``ties="position"`` also counts the items with an equal score that come
    earlier in the gallery (mmkit's tie rule). ``scores`` float [Q, G], ``right`` int [Q] ->
    int64 [Q]."""
    s = np.asarray(scores, np.float64)
    r = np.asarray(right, np.int64)
    own = s[np.arange(len(s)), r][:, None]
    ahead = (s > own).sum(axis=1)
    if ties == "position":
        ahead += ((s == own) & (np.arange(s.shape[1])[None, :] < r[:, None])).sum(axis=1)
    return 1 + ahead


def check_mean_rank(probs: np.ndarray, label_vectors: np.ndarray, query_vectors: np.ndarray,
                    right, answer) -> Feedback:
    """Exercise 4: how many classes should ConSE combine? ``answer``: {T: the mean rank of
    the queries' right photos} for T in :data:`TOP_TS`, where a query's rank is 1 + the number
    of photos with a higher cosine (1 = first), the photos embedded by ConSE over their top T
    classes (no words read). ``probs`` float [G, 1000] class probabilities of the gallery,
    ``label_vectors`` float [1000, d], ``query_vectors`` float [Q, d], ``right`` int [Q]: the
    gallery position of each query's photo. Answers within 1e-3 count; a photo with an equal
    cosine may count as ahead or (mmkit's tie rule) only when it comes earlier."""
    if answer is None:
        return not_answered()
    got = _as_margins(answer, "mean rank")
    if isinstance(got, str):
        return Feedback(False, got)
    r = np.asarray(right, np.int64)
    scores = {t: _conse_scores(probs, label_vectors, query_vectors, t) for t in TOP_TS}
    ranks = {t: right_ranks(s, r) for t, s in scores.items()}
    expected = {t: float(v.mean()) for t, v in ranks.items()}
    by_position = {t: float(right_ranks(s, r, "position").mean()) for t, s in scores.items()}
    if _matches(got, expected, 1e-3) or _matches(got, by_position, 1e-3):
        best = min(expected.values())
        winners = [t for t in TOP_TS if expected[t] == best]
        firsts = ", ".join(str(int((ranks[t] == 1).sum())) for t in TOP_TS)
        worst = {t: int(ranks[t].max()) for t in TOP_TS}
        return Feedback(True, f"T = {' and '.join(map(str, winners))} ranks best, mean rank "
                              f"{best:.2f} (" + ", ".join(f"T={t}: {expected[t]:.2f}"
                                                         for t in TOP_TS) + "); the right "
                              f"photo is first for {firsts} of the {len(r)} queries (T = "
                              f"{', '.join(map(str, TOP_TS))}), the worst at rank "
                              + ", ".join(str(worst[t]) for t in TOP_TS))
    if _matches({t: got[t] + 1 for t in TOP_TS}, expected, 1e-3):
        return Feedback(False, "ranks start at 1 (the first photo), not at 0")
    if any(got[t] < 1 for t in TOP_TS):
        return Feedback(False, "a rank is at least 1 (the right photo first): 1 + the number of "
                               "photos with a higher cosine, then the mean over the queries")
    n = np.asarray(probs).shape[0]
    if _matches({t: n + 1 - got[t] for t in TOP_TS}, expected, 1e-3):
        return Feedback(False, "you counted from the bottom: rank 1 is the highest cosine")
    unweighted = {}
    for t in TOP_TS:
        ids, _ = top_concepts(probs, t)
        v = np.asarray(label_vectors, np.float64)[ids].mean(axis=1)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        unweighted[t] = float(right_ranks(np.asarray(query_vectors, np.float64) @ v.T, r).mean())
    if _matches(got, unweighted, 1e-3) and not _matches(unweighted, expected, 1e-3):
        return Feedback(False, "you averaged the T label vectors equally; weight each by its "
                               "class probability")
    if len({round(got[t], 6) for t in TOP_TS}) == 1 and len(set(expected.values())) > 1:
        return Feedback(False, "your mean ranks are the same for every T: embed the photos "
                               "again for each T (ConSE over the T most probable classes)")
    off = [t for t in TOP_TS if not close(got[t], expected[t], 1e-3)]
    return Feedback(False, f"T = {', '.join(map(str, off))} off: for each T, scores = "
                           "query_vectors @ my_conse(probs, labels, T).T [Q, G]; rank of query "
                           "q = 1 + the number of photos scoring above scores[q, right[q]]; then "
                           "the mean")


# ------------------------------------------------------------------ worked solutions
def solution_last_caption_only(i2t) -> float:
    """Exercise 1. Call with ``runs["image->text"]``: keep only the positives in columns
    4, 9, 14, ... (each image's last caption), scores unchanged; R@5 = does one of them
    come in the top 5 (ties to the lower column)."""
    last = i2t.positives & (np.arange(i2t.scores.shape[1]) % 5 == 4)
    top5 = np.argsort(-i2t.scores, axis=1, kind="stable")[:, :5]
    return float(np.take_along_axis(last, top5, axis=1).any(axis=1).mean())


def solution_repeated_gallery(t2i) -> float:
    """Exercise 2. Call with ``runs["text->image"]``: every column repeated 5 times; caption
    q is number q % 5 of its image, so its positive is column 5 * image + q % 5; R@10 = is
    that column among the 10 best (ties to the lower column, as a stable sort)."""
    wide = np.repeat(t2i.scores, 5, axis=1)
    image = t2i.positives.argmax(axis=1)
    own_copy = 5 * image + np.arange(len(image)) % 5
    top10 = np.argsort(-wide, axis=1, kind="stable")[:, :10]
    return float((top10 == own_copy[:, None]).any(axis=1).mean())


def solution_fold_mean(t2i, n_folds: int = 5, k: int = 5) -> float:
    """Exercise 3. Call with ``runs["text->image"]``: per fold, its images (consecutive
    columns) and the captions of those images; R@5 within the fold (is the caption's image
    among the fold's 5 best, ties to the lower column); then the mean of the five."""
    image = t2i.positives.argmax(axis=1)                           # each caption's column
    size = t2i.scores.shape[1] // n_folds
    recall = []
    for f in range(n_folds):
        cols = np.arange(f * size, (f + 1) * size)
        rows = np.flatnonzero((image >= cols[0]) & (image <= cols[-1]))
        order = np.argsort(-t2i.scores[np.ix_(rows, cols)], axis=1, kind="stable")[:, :k]
        recall.append(np.mean((cols[order] == image[rows, None]).any(axis=1)))
    return float(np.mean(recall))


def solution_mean_rank(probs, labels, query_vectors, right, ts=TOP_TS) -> dict[int, float]:
    """Exercise 4. Call with ``probs, labels, query_vectors, right``. ConSE by hand for each
    T (the T most probable classes, their label vectors weighted by the renormalised
    probabilities, L2-normalised); a query's rank = 1 + the number of photos whose cosine
    beats its own photo's; the mean over the queries."""
    probs = np.asarray(probs, np.float64)
    labels = np.asarray(labels, np.float64)
    queries = np.asarray(query_vectors, np.float64)
    rows = np.arange(len(right))
    mean_rank = {}
    for t in ts:
        top = np.argsort(-probs, axis=1, kind="stable")[:, :t]    # [G, t] class ids
        w = np.take_along_axis(probs, top, axis=1)
        photos = ((w / w.sum(axis=1, keepdims=True))[:, :, None] * labels[top]).sum(axis=1)
        photos /= np.linalg.norm(photos, axis=1, keepdims=True)
        scores = queries @ photos.T                                # [Q, G] cosines
        own = scores[rows, right][:, None]
        mean_rank[t] = float(np.mean(1 + (scores > own).sum(axis=1)))
    return mean_rank


SOLUTIONS = {1: solution_last_caption_only, 2: solution_repeated_gallery,
             3: solution_fold_mean, 4: solution_mean_rank}
