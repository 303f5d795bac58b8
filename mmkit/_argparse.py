"""argparse with one-line errors, and argument types built on :mod:`mmkit.validate`."""
from __future__ import annotations

import argparse
from typing import Any, Callable

from mmkit.errors import InputError
from mmkit.validate import integer, number


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr and exit status 2 (no usage dump)."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def int_arg(low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    """An argparse ``type=`` that reads an integer and checks its bounds."""
    def parse(text: str) -> int:
        try:
            value: Any = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        try:
            return integer(value, "value", low=low, high=high)
        except InputError as exc:
            raise argparse.ArgumentTypeError(str(exc).replace("value must", "must")) from None
    parse.__name__ = "integer"
    return parse


def float_arg(low: float | None = None, high: float | None = None,
              low_open: bool = False) -> Callable[[str], float]:
    """An argparse ``type=`` that reads a finite number and checks its bounds."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        try:
            return number(value, "value", low=low, high=high, low_open=low_open)
        except InputError as exc:
            raise argparse.ArgumentTypeError(str(exc).replace("value must", "must")) from None
    parse.__name__ = "number"
    return parse


positive_int_arg = int_arg(low=1)
