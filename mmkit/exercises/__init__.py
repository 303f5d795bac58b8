"""Checkers for the notebooks' exercises: ``mmkit.exercises.nbNN.check_*``.

Every checker takes the learner's answer (``None`` = not answered yet) and returns a
:class:`Feedback` that prints as one line and is truthy when the answer is right.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Feedback:
    """The verdict on one answer."""

    correct: bool
    message: str

    def __bool__(self) -> bool:
        return self.correct

    def __repr__(self) -> str:
        return ("correct: " if self.correct else "not yet: ") + self.message

    __str__ = __repr__


def not_answered() -> Feedback:
    return Feedback(False, "no answer yet - replace None with your answer and run the cell again")


def close(answer: float, expected: float, tol: float = 1e-6) -> bool:
    """True when two numbers agree to ``tol`` (absolute)."""
    try:
        return abs(float(answer) - float(expected)) <= tol
    except (TypeError, ValueError):
        return False


def number(answer) -> float | None:
    """``answer`` as a finite float, or None when it is not a number (a checker then says so)."""
    import math

    try:
        value = float(answer)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None

