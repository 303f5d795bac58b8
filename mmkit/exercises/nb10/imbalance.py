"""Notebook 10, section 2 (class imbalance): post-hoc logit adjustment.

The plain long-tailed model ``challenge_lt100`` trained its proxy classifier on a world where
the head classes had up to a hundred times more scenes than the tail. Post-hoc logit
adjustment (Menon et al. 2021) corrects its predictions after training: subtract
``tau * log prior`` from the logits, so that a class the model saw rarely needs less evidence
to win. The learner picks ``tau`` from :data:`TAUS` that maximises the balanced accuracy
(mean over classes of the per-class accuracy) on the evaluation scenes.
"""
from __future__ import annotations

import numpy as np

from mmkit import checkpoints
from mmkit.challenges.data import eval_scenes
from mmkit.challenges.imbalance import (balanced_accuracy, proxy_logits, tracked_classes,
                                        training_prior)
from mmkit.challenges.model import ChallengeNet
from mmkit.exercises import Feedback, close, not_answered, number

#: the candidate adjustment strengths
TAUS: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5, 2.0)
#: the model whose logits are adjusted, and its training world's imbalance
MODEL, IMBALANCE = "challenge_lt100", 100.0


def posthoc_accuracies(model: ChallengeNet | None = None) -> dict[float, float]:
    """Balanced accuracy of ``model``'s (default ``challenge_lt100``'s) proxy logits on the
    evaluation scenes of the tracked classes, after subtracting ``tau * log prior`` (the
    training world's prior), for every ``tau`` in :data:`TAUS`; the argmax runs over the
    tracked classes' columns."""
    if model is None:
        model = checkpoints.load(MODEL)[0]
    scenes = eval_scenes()
    classes = tracked_classes(scenes.labels)
    keep = np.isin(scenes.labels, classes)
    logits = proxy_logits(model, scenes.images[keep])[:, classes]
    labels = np.searchsorted(classes, scenes.labels[keep])
    log_prior = np.log(training_prior(IMBALANCE))[classes]
    return {tau: balanced_accuracy(logits - tau * log_prior, labels) for tau in TAUS}


def solution_posthoc_tau(model: ChallengeNet | None = None) -> tuple[float, float]:
    """Exercise 2, a worked solution: ``(best tau, its balanced accuracy)`` for the notebook's
    ``challenge_lt100`` model (the smallest tau on a tie)."""
    model = checkpoints.load(MODEL)[0] if model is None else model
    scenes = eval_scenes()
    classes = tracked_classes(scenes.labels)                  # the classes it trained on
    keep = np.isin(scenes.labels, classes)
    logits = proxy_logits(model, scenes.images[keep])[:, classes]
    truth = scenes.labels[keep]
    log_prior = np.log(training_prior(IMBALANCE)[classes])
    best_tau, best_acc = None, -1.0
    for tau in (0.0, 0.5, 1.0, 1.5, 2.0):
        predicted = classes[np.argmax(logits - tau * log_prior, axis=1)]
        per_class = [np.mean(predicted[truth == c] == c) for c in classes if np.any(truth == c)]
        acc = float(np.mean(per_class))
        if acc > best_acc + 1e-12:
            best_tau, best_acc = tau, acc
    return best_tau, best_acc


def check_posthoc_tau(answer: tuple[float, float] | None) -> Feedback:
    """Exercise: ``answer = (tau, balanced accuracy)`` for ``challenge_lt100``."""
    if answer is None:
        return not_answered()
    if not (isinstance(answer, (tuple, list)) and len(answer) == 2):
        return Feedback(False, f"answer with a pair (tau, balanced accuracy), got {answer!r}")
    tau, acc = number(answer[0]), number(answer[1])
    if tau is None or acc is None:
        return Feedback(False, f"tau and the accuracy must be numbers, got {answer!r}")
    if not any(close(tau, t) for t in TAUS):
        return Feedback(False, f"tau must be one of {TAUS}, got {tau:g}")
    accs = posthoc_accuracies()
    best = max(accs.values())
    if not close(accs[min(TAUS, key=lambda t: abs(t - tau))], best, 1e-9):
        return Feedback(False, f"tau={tau:g} is not the best; balanced accuracy is "
                        f"{accs[min(TAUS, key=lambda t: abs(t - tau))]:.3f} there. Subtract "
                        "tau * log(prior) from the logits of the tracked classes and compare "
                        "the mean of the per-class accuracies for every tau")
    if not close(acc, best, 0.005):
        return Feedback(False, f"tau={tau:g} is right, but its balanced accuracy is not "
                        f"{acc:.3f}: average the accuracy of each class, then over classes")
    gain = best - accs[0.0]
    return Feedback(True, f"tau={tau:g}: balanced accuracy {best:.3f} "
                    f"({gain:+.3f} over no adjustment)")
