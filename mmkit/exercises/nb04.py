"""Exercises of notebook 04 (joint embeddings)."""
from __future__ import annotations

import math

import numpy as np

from mmkit.data.ceiling import caption_log_likelihood
from mmkit.errors import InputError
from mmkit.exercises import Feedback, close, not_answered, number
from mmkit.scoring import modality_gap  # re-export: the kit's one definition of the gap
from mmkit.validate import is_integer


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


def captions_to_fraction(model_r1: float, ceiling_r1: float, n_queries: int,
                         fraction: float = 0.75) -> int:
    """How many more of ``n_queries`` queries a model with R@1 ``model_r1`` must hit at rank 1
    for its R@1 to reach ``fraction`` of the ceiling's ``ceiling_r1`` (0 when it already
    does). The model's hits are ``round(model_r1 * n_queries)``."""
    hits = round(float(model_r1) * n_queries)
    needed = math.ceil(float(fraction) * float(ceiling_r1) * n_queries - 1e-9)
    return max(0, needed - hits)


def check_captions_to_fraction(model_r1: float, ceiling_r1: float, n_queries: int,
                               answer: int | None, fraction: float = 0.75,
                               oracle_r1: float | None = None) -> Feedback:
    """Exercise 2: how many more captions (of ``n_queries``) the model must hit at rank 1 for
    its text->image R@1 ``model_r1`` to reach ``fraction`` of the Bayes ceiling's R@1
    ``ceiling_r1``. ``oracle_r1``: the relevance oracle's R@1, to recognise the wrong
    reference."""
    if answer is None:
        return not_answered()
    if not ceiling_r1 > 0:
        raise InputError(f"the ceiling must be > 0, got {ceiling_r1}")
    got = number(answer)
    if got is None:
        return Feedback(False, f"answer with a number of captions (an integer), got {answer!r}")
    if not is_integer(answer) and got != int(got):
        return Feedback(False, f"answer with a whole number of captions, got {answer!r}")
    got = int(got)
    expected = captions_to_fraction(model_r1, ceiling_r1, n_queries, fraction)
    hits = round(float(model_r1) * n_queries)
    if got == expected:
        return Feedback(True, f"{hits} of {n_queries} captions find their image first now; "
                              f"{hits + expected} would give R@1 {(hits + expected) / n_queries:.3f}"
                              f" >= {fraction} x {ceiling_r1:.3f} = {fraction * ceiling_r1:.3f}: "
                              f"{expected} more, {expected / n_queries:.1%} of the queries")
    if got == expected + hits:
        return Feedback(False, "that is the number of hits the target needs in all; subtract "
                               f"the {hits} captions the model already finds first")
    if got == expected - 1:
        return Feedback(False, "one short: with that many the R@1 stays just below the target; "
                               "round up")
    if oracle_r1 is not None and got == captions_to_fraction(model_r1, oracle_r1, n_queries,
                                                             fraction):
        return Feedback(False, "that uses the relevance oracle, which is not a ceiling: use the "
                               "Bayes ceiling's R@1")
    return Feedback(False, f"target hits = {fraction} x (the ceiling's R@1) x (the number of "
                           "caption queries), rounded up; minus the hits the model has now "
                           "(its R@1 x the number of queries)")


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


def _speakers(world, captions) -> np.ndarray:
    return np.array([world.speaker_of(int(j)) for j in np.asarray(captions)])


def check_voice_gap(world, captions, image_emb, speech_emb, voice: int,
                    answer: float | None) -> Feedback:
    """Exercise 4: the modality gap (:func:`mmkit.scoring.modality_gap`: the distance between
    the centroids of the L2-normalised embeddings) between the image embeddings
    ``image_emb`` and only those rows of ``speech_emb`` (one per caption of ``captions``)
    whose caption is spoken by voice ``voice`` (``world.speaker_of``), to 1e-3."""
    if answer is None:
        return not_answered()
    got = number(answer)
    if got is None:
        return Feedback(False, f"answer with a number (a float), got {answer!r}")
    speakers = _speakers(world, captions)
    speech = np.asarray(speech_emb, np.float64)
    if len(speakers) != len(speech):
        raise InputError(f"speech_emb has {len(speech)} rows for {len(speakers)} captions")
    gaps = {v: modality_gap(image_emb, speech[speakers == v]) for v in np.unique(speakers)}
    expected = gaps[voice]
    if close(got, expected, 1e-3):
        others = ", ".join(f"{v}: {g:.3f}" for v, g in gaps.items() if v != voice)
        return Feedback(True, f"voice {voice}'s spoken captions lie {expected:.3f} from the images "
                              f"(all voices together: {modality_gap(image_emb, speech):.3f}; "
                              f"the other voices: {others})")
    if close(got, modality_gap(image_emb, speech), 1e-3):
        return Feedback(False, f"that is the gap of all voices together; keep only the rows "
                               f"whose caption world.speaker_of gives voice {voice}")
    wrong_voice = [v for v, g in gaps.items() if v != voice and close(got, g, 1e-3)]
    if wrong_voice:
        return Feedback(False, f"that is voice {wrong_voice[0]}'s gap; keep voice {voice}")
    a = np.asarray(image_emb, np.float64)
    b = speech[speakers == voice]
    if close(got, float(np.linalg.norm(a.mean(0) - b.mean(0))), 1e-3):
        return Feedback(False, "L2-normalise every embedding first, then take the centroids")
    if close(got, expected ** 2, 1e-3):
        return Feedback(False, "that is the squared distance; take the square root")
    return Feedback(False, f"speech rows of voice {voice} (speaker_of of each caption), "
                           "L2-normalise them and the image rows, then the Euclidean norm of "
                           "the difference of the two means")


# ------------------------------------------------------------------ worked solutions
def solution_infonce(sim, temperature: float = 0.5) -> float:
    """Exercise 1. Call with ``sim_ex, 0.5``: logits = sim / T; the cross-entropy of each row
    (image -> captions) and of each column (caption -> images) with the diagonal as the
    right class; the mean of the two directions."""
    logits = np.asarray(sim, np.float64) / temperature

    def cross_entropy(rows: np.ndarray) -> float:              # mean of -log softmax[diag]
        log_softmax = rows - np.log(np.exp(rows).sum(axis=1, keepdims=True))
        return float(-np.diag(log_softmax).mean())

    return (cross_entropy(logits) + cross_entropy(logits.T)) / 2


def solution_captions_to_fraction(model_r1: float, ceiling_r1: float, n_queries: int,
                                  fraction: float = 0.75) -> int:
    """Exercise 2. Call with ``scores["main model (InfoNCE, fine-tuned CNN)"]["text->image"]
    ["R@1"], ceiling["text->image"]["R@1"], len(test_caps)``: the model finds R@1 x Q
    captions' images first; reaching ``fraction`` of the Bayes ceiling (not the oracle) takes
    ``fraction`` x ceiling x Q hits, rounded up to a whole caption."""
    hits_now = round(model_r1 * n_queries)
    hits_needed = int(np.ceil(fraction * ceiling_r1 * n_queries))
    return max(0, hits_needed - hits_now)


def solution_likelier_image(world, caption: int, image_a: int, image_b: int) -> str:
    """Exercise 3. Call with ``world, ex_caption, ex_a, ex_b``: log p(caption | image) of
    both images under the caption generator, then compare."""
    ll = caption_log_likelihood(world, np.array([caption]), np.array([image_a, image_b]))[0]
    if ll[0] == ll[1]:
        return "equal"
    return "a" if ll[0] > ll[1] else "b"


def solution_voice_gap(world, captions, image_emb, speech_emb, voice: int = 0) -> float:
    """Exercise 4. Call with ``world, test_caps, space["image"], space["speech"], ex_voice``:
    keep the speech rows whose caption that voice speaks, L2-normalise every row, take each
    modality's centroid, then the Euclidean distance between the two."""
    mine = np.array([world.speaker_of(int(j)) == voice for j in captions])
    a = np.asarray(image_emb, np.float64)
    b = np.asarray(speech_emb, np.float64)[mine]
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return float(np.linalg.norm(a.mean(axis=0) - b.mean(axis=0)))


SOLUTIONS = {1: solution_infonce, 2: solution_captions_to_fraction,
             3: solution_likelier_image, 4: solution_voice_gap}
