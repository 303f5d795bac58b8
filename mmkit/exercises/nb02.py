"""Exercises of notebook 02 (text features)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mmkit.exercises import Feedback, close, not_answered
from mmkit.features.minilm import load_minilm_tokenizer
from mmkit.features.ocr import word_query
from mmkit.features.text import caption_agreement
from mmkit.features.word2vec import synonym_neighbour_rate
from mmkit.validate import is_integer


def check_wordpiece_count(caption: str, answer: int | None) -> Feedback:
    """Exercise 1: how many WordPiece tokens does MiniLM's tokenizer cut ``caption`` into,
    without the [CLS] and [SEP] it adds?"""
    if answer is None:
        return not_answered()
    if not is_integer(answer):
        return Feedback(False, f"answer with a number of tokens (an integer), got {answer!r}")
    pieces = load_minilm_tokenizer().tokenize(caption)
    if int(answer) == len(pieces):
        return Feedback(True, f"{len(pieces)} pieces: {' '.join(pieces)}")
    if int(answer) == len(pieces) + 2:
        return Feedback(False, "that count includes [CLS] and [SEP]; leave them out")
    return Feedback(False, "use tokenizer.tokenize(caption) (it adds no special tokens) and "
                           "count; words outside the 30,522-entry vocabulary split into ##pieces")


def check_synonym_top3(vectors: np.ndarray, tokenizer, groups: dict[str, list[list[str]]],
                       answer: float | None) -> Feedback:
    """Exercise 2: the fraction of the groups' words that have at least one synonym among
    their 3 nearest neighbours (cosine, among all the groups' words, the word itself
    excluded)."""
    if answer is None:
        return not_answered()
    try:
        value = float(answer)
    except (TypeError, ValueError):
        return Feedback(False, f"answer with a number (a fraction), got {answer!r}")
    expected = synonym_neighbour_rate(vectors, tokenizer, groups, k=3)[0]
    top1 = synonym_neighbour_rate(vectors, tokenizer, groups)[0]
    if close(value, expected, 1e-6):
        return Feedback(True, f"{expected:.3f} of the words have a synonym in their top 3 "
                              f"(top 1: {top1:.3f})")
    if close(value, top1, 1e-6):
        return Feedback(False, "that is the top-1 rate; look at the 3 nearest neighbours")
    return Feedback(False, "normalise the rows, take the cosine matrix of the groups' words, set "
                           "the diagonal to -inf, take each row's 3 largest and check whether "
                           "any of them is in the word's group")


def check_caption_grade(world, a: int, b: int, answer: int | None) -> Feedback:
    """Exercise 3: the graded relevance between captions ``a`` and ``b`` of ``world``
    (:func:`mmkit.features.text.caption_agreement`)."""
    if answer is None:
        return not_answered()
    if not is_integer(answer):
        return Feedback(False, f"answer with a grade 0-3 (an integer), got {answer!r}")
    expected = int(caption_agreement(world.caption_main[[a]], world.caption_main[[b]])[0, 0])
    if int(answer) == expected:
        return Feedback(True, f"grade {expected}: compare world.caption_struct(a).main and "
                              "world.caption_struct(b).main attribute by attribute")
    return Feedback(False, "look at world.caption_struct(a).main and (b).main: any attribute "
                           "stated in both with different values gives 0, else count the "
                           "agreements (at most 3)")


def check_word_query(reads: Sequence[str], truth: Sequence[str], word: str,
                     answer: tuple[float, float] | None) -> Feedback:
    """Exercise 4: (precision, recall) of retrieving the images whose OCR read is ``word``,
    judged by the true sign words ``truth``."""
    if answer is None:
        return not_answered()
    try:
        p, r = (float(v) for v in answer)
    except (TypeError, ValueError):
        return Feedback(False, f"answer with a pair (precision, recall), got {answer!r}")
    ep, er = word_query(reads, truth, word)
    if close(p, ep, 1e-6) and close(r, er, 1e-6):
        return Feedback(True, f"precision {ep:.3f}, recall {er:.3f} for {word!r}")
    if close(p, er, 1e-6) and close(r, ep, 1e-6):
        return Feedback(False, "precision and recall are swapped: precision divides by what was "
                               "retrieved, recall by what truly shows the word")
    n_true = int(np.sum([t == word for t in truth]))
    return Feedback(False, f"{n_true} images truly show {word!r}; retrieved = images whose read "
                           "equals the word; precision = hits / retrieved, recall = hits / "
                           f"{n_true}")


# ------------------------------------------------------------------ worked solutions
def solution_wordpiece_count(wp, caption: str) -> int:
    """Exercise 1. Call with ``wp, caption_1`` (``wp = load_minilm_tokenizer()``):
    ``tokenize`` adds no [CLS] / [SEP], so its length is the answer."""
    return len(wp.tokenize(caption))


def solution_synonym_top3(vectors: np.ndarray, tok, groups: dict[str, list[list[str]]],
                          k: int = 3) -> float:
    """Exercise 2. Call with ``vectors, tok, groups``: the cosine matrix of the groups' words,
    the diagonal at -inf, each row's k nearest, and whether one of them is a synonym."""
    words, group = [], []
    for attribute, synonym_sets in groups.items():
        for g, synonyms in enumerate(synonym_sets):
            words += synonyms
            group += [(attribute, g)] * len(synonyms)
    x = vectors[[tok.id_of(w) for w in words]].astype(np.float64)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    cos = x @ x.T
    np.fill_diagonal(cos, -np.inf)                                 # not the word itself
    nearest = np.argsort(-cos, axis=1, kind="stable")[:, :k]
    hits = [any(group[j] == group[i] for j in row) for i, row in enumerate(nearest)]
    return float(np.mean(hits))


def solution_caption_grade(world, a: int, b: int) -> int:
    """Exercise 3. Call with ``world, a, b``: compare what the two main mentions state,
    attribute by attribute (-1 = not said)."""
    ma, mb = world.caption_struct(a).main, world.caption_struct(b).main
    both = [(x, y) for x, y in zip(ma, mb) if x >= 0 and y >= 0]   # stated by both
    if any(x != y for x, y in both):
        return 0                                                   # a contradiction
    return min(len(both), 3)


def solution_word_query(reads, truth, word: str = "cafe") -> tuple[float, float]:
    """Exercise 4. Call with ``reads, truth``: retrieved = the images whose read is the
    word, relevant = those whose sign truly says it."""
    retrieved = np.array([r == word for r in reads])
    relevant = np.array([t == word for t in truth])
    hits = (retrieved & relevant).sum()
    precision = hits / retrieved.sum() if retrieved.any() else 0.0
    recall = hits / relevant.sum() if relevant.any() else 0.0
    return float(precision), float(recall)


SOLUTIONS = {1: solution_wordpiece_count, 2: solution_synonym_top3, 3: solution_caption_grade,
             4: solution_word_query}
