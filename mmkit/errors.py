"""Errors that the CLI turns into a one-line message and a non-zero exit."""
from __future__ import annotations


class MMKitError(Exception):
    """Base class of mmkit's user-facing errors (bad input, bad files, bad options)."""


class InputError(MMKitError, ValueError):
    """Bad user input: the message names the file, line and field when there is one."""

