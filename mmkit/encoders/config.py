"""What the model families' configs share: moved to :mod:`mmkit.configs` (where the features'
configs can use it too); this old import path re-exports it."""
from __future__ import annotations

from mmkit.configs import (Checks, DictConfig, TrainWorld, check_rate,  # noqa: F401  re-export
                           counts)

__all__ = ["Checks", "DictConfig", "TrainWorld", "counts", "check_rate"]
