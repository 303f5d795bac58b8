"""Checkers for the notebooks' exercises: ``mmkit.exercises.nbNN.check_*``.

Every checker takes the learner's answer (``None`` = not answered yet) and returns a
:class:`Feedback` that prints as one line and is truthy when the answer is right.

Solutions, on request: :func:`solution` (``mmkit.exercises.solution("10", 2)``) shows the code
of a worked solution (a function in the notebook's module, listed in its ``SOLUTIONS``) and
runs it when called; the tests check that every listed solution passes its checker.
"""
from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mmkit.errors import InputError


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



@dataclass(frozen=True)
class Solution:
    """A worked solution: shows its source code when displayed, computes the answer when
    called (with the arguments its docstring names)."""

    notebook: str
    number: int
    function: Callable[..., Any]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.function(*args, **kwargs)

    @property
    def source(self) -> str:
        return inspect.getsource(self.function)

    def __repr__(self) -> str:
        return f"# notebook {self.notebook}, exercise {self.number}: a solution\n{self.source}"

    __str__ = __repr__


def solution(notebook: str | int, number: int) -> Solution:
    """The worked solution of exercise ``number`` of notebook ``notebook`` (``"10"`` or 10).

    Raises:
        InputError: no such notebook module or no solution listed for that exercise.
    """
    nb = f"{int(notebook):02d}" if str(notebook).isdigit() else str(notebook)
    try:
        module = importlib.import_module(f"mmkit.exercises.nb{nb}")
    except ModuleNotFoundError:
        raise InputError(f"no exercises for notebook {notebook!r}") from None
    listed: dict[int, Callable[..., Any]] = getattr(module, "SOLUTIONS", {})
    if number not in listed:
        have = ", ".join(map(str, sorted(listed))) or "none yet"
        raise InputError(f"notebook {nb} has no solution for exercise {number!r} "
                         f"(solutions: {have})")
    return Solution(nb, int(number), listed[number])
