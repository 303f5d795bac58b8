"""One validator per kind of scalar argument, shared by the whole package.

Every check accepts Python and numpy scalars alike (``5`` and ``np.int64(5)``; ``0.5`` and
``np.float32(0.5)``), rejects ``bool`` where a number is meant (``True`` is not a count), and
raises one line that names the argument and shows the value it got. The error class is
:class:`mmkit.errors.InputError` unless the caller passes its own (a subclass of
:class:`~mmkit.errors.MMKitError`, e.g. the index's ``SearchIndexError``).

>>> integer(np.int64(3), "k")
3
>>> number(0.25, "sign_prob", low=0, high=1)
0.25
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from mmkit.errors import InputError, MMKitError

__all__ = ["integer", "positive_int", "number", "is_integer"]


def is_integer(value: Any) -> bool:
    """True for Python and numpy integers, False for bools (and everything else)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _describe_bounds(low: float | None, high: float | None, low_open: bool = False,
                     high_open: bool = False) -> str:
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low:g}"
    if high is not None:
        return f"{'<' if high_open else '<='} {high:g}"
    return "a number"


def integer(value: Any, name: str, *, low: int | None = None, high: int | None = None,
            error: type[MMKitError] = InputError) -> int:
    """``value`` as a Python int, checked to lie in ``[low, high]`` (either bound optional).

    Raises ``error`` for bools, floats (even ``20.0``: a size is counted, not measured),
    strings, NaN and out-of-range values.
    """
    if not is_integer(value):
        if low == 1 and high is None:
            what = "a positive integer"
        elif low == 0 and high is None:
            what = "a non-negative integer"
        else:
            what = "an integer" + ("" if low is None and high is None
                                   else " " + _describe_bounds(low, high))
        raise error(f"{name} must be {what}, got {value!r}")
    v = int(value)
    if (low is not None and v < low) or (high is not None and v > high):
        if low == 1 and high is None:
            raise error(f"{name} must be a positive integer, got {v}")
        if low == 0 and high is None:
            raise error(f"{name} must be a non-negative integer, got {v}")
        raise error(f"{name} must be an integer {_describe_bounds(low, high)}, got {v}")
    return v


def positive_int(value: Any, name: str, *, error: type[MMKitError] = InputError) -> int:
    """``value`` as an int >= 1 (a count, a size, a cut-off)."""
    return integer(value, name, low=1, error=error)


def number(value: Any, name: str, *, low: float | None = None, high: float | None = None,
           low_open: bool = False, high_open: bool = False,
           error: type[MMKitError] = InputError) -> float:
    """``value`` as a finite float within the bounds (``low_open``: ``value > low``).

    NaN and +-inf are always rejected: ``nan < 1`` is False, so a plain comparison would let
    NaN through every bound.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)) \
            or isinstance(value, (complex, np.complexfloating)):
        raise error(f"{name} must be a number, got {value!r}")
    v = float(value)
    bounds = _describe_bounds(low, high, low_open, high_open)
    if not math.isfinite(v):
        raise error(f"{name} must be a finite number{'' if bounds == 'a number' else ' ' + bounds}"
                    f", got {v}")
    if (low is not None and (v <= low if low_open else v < low)) or \
            (high is not None and (v >= high if high_open else v > high)):
        raise error(f"{name} must be {bounds}, got {value!r}")
    return v
