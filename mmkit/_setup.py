"""One call that every notebook makes first: seeds, device with CPU fallback, paths."""
from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Setup:
    """What :func:`setup` decided: the seed, the torch device and the folders."""

    seed: int
    device: str
    root: Path
    data_dir: Path
    out_dir: Path

    def __str__(self) -> str:
        return (f"mmkit setup: seed={self.seed} device={self.device} "
                f"data={self._shown(self.data_dir)} out={self._shown(self.out_dir)}")

    def _shown(self, path: Path) -> str:
        """A folder as printed: relative to the project root when inside it (so that printed
        output carries no machine-specific path), else as given."""
        try:
            return Path(path).resolve().relative_to(self.root.resolve()).as_posix() + "/"
        except ValueError:
            return str(path)


def project_root() -> Path:
    """The repository root (the folder holding ``mmkit/``), or the working directory."""
    here = Path(__file__).resolve().parent.parent
    if (here / "pyproject.toml").exists():
        return here
    return Path.cwd()


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity where the OS has one), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS / Windows
        return max(1, os.cpu_count() or 1)


def pick_device(prefer: str | None = None) -> str:
    """``"cuda"`` when a GPU is usable (or ``prefer`` names one that is), else ``"cpu"``."""
    import torch

    if prefer is not None:
        if prefer.startswith("cuda") and not torch.cuda.is_available():
            return "cpu"
        return prefer
    return "cuda" if torch.cuda.is_available() else "cpu"


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and every GPU)."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _notebook_figures(dpi: int = 80) -> None:
    """Inside Jupyter: inline PNG figures at a modest resolution (notebooks stay small)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    if get_ipython() is None:
        return
    import matplotlib

    matplotlib.rcParams["figure.dpi"] = dpi


def setup(seed: int = 0, device: str | None = None, threads: int | None = None,
          quiet: bool = False) -> Setup:
    """Seed everything, choose a device (CPU fallback), create ``data/`` and ``out/``.

    Environment overrides: ``MMKIT_DATA`` (data folder), ``MMKIT_OUT`` (output folder),
    ``MMKIT_DEVICE`` (device). Nothing is downloaded: ``HF_HUB_OFFLINE=1`` is set.
    """
    import torch

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    seed_everything(seed)
    if threads is not None:
        torch.set_num_threads(threads)
    dev = pick_device(device or os.environ.get("MMKIT_DEVICE"))
    root = project_root()
    data_dir = Path(os.environ.get("MMKIT_DATA", root / "data"))
    out_dir = Path(os.environ.get("MMKIT_OUT", root / "out"))
    data_dir.mkdir(parents=True, exist_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    _notebook_figures()
    cfg = Setup(seed=seed, device=dev, root=root, data_dir=data_dir, out_dir=out_dir)
    if not quiet:
        print(cfg)
    return cfg
