"""mmkit: a Jupyter-first kit for multi-modal image retrieval.

The package is grouped by the notebook sequence:

- ``mmkit.data``      the embedded multimodal world, dataset loaders (no model code)
- ``mmkit.features``  visual, text and audio features
- ``mmkit.encoders``  joint embeddings (CCA, ...)
- ``mmkit.metrics``   retrieval metrics (no model code)
- ``mmkit.index``     exact and approximate nearest-neighbour search (no model code)
- ``mmkit.viz``       figures
- ``mmkit.methods``   end-to-end retrieval methods used by the demo
- ``mmkit.cli``       the ``mmkit`` command (sits on top of everything)
"""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from mmkit._setup import Setup, setup  # noqa: E402

__version__ = "0.1.0"
__all__ = ["setup", "Setup", "__version__"]
