"""mmkit: a Jupyter-first kit for multi-modal image retrieval.

The package map, in layers: a module imports only from its own layer or the layers above it in
this list (``tests/test_layers.py`` reads every import statement and checks it).

Foundations
    ``mmkit.errors``       the one-line :class:`~mmkit.errors.InputError`
    ``mmkit.validate``     argument checks shared by the command line and the API
    ``mmkit.setup``        :func:`setup`: seeds, device (CPU fallback), folders, threads

Data, metrics and search (no model code, no torch at import)
    ``mmkit.data``         the generated multimodal world, real-dataset loaders (COCO,
                           Flickr30K, CUB-200), the one image loader (``mmkit.data.images``),
                           real photos that ship with the installed libraries
                           (``mmkit.data.photos``) and the
                           :class:`~mmkit.data.collection.Collection` interface
    ``mmkit.metrics``      retrieval metrics (R@K, AP, NDCG, ...), trec_eval-style runs,
                           significance tests
    ``mmkit.index``        exact and approximate nearest-neighbour search (numpy, faiss)
    ``mmkit.losses``       metric-learning and joint-embedding losses
    ``mmkit.miners``       triplet miners
    ``mmkit.checkpoints``  trained models: ``mmkit train NAME``, checksummed manifests
    ``mmkit.training``     the bookkeeping every training loop shares (loss windows,
                           progress bar, seeding); the loops stay in the models' modules
    ``mmkit.viz``          figures

Features and scoring
    ``mmkit.features``     visual, text and audio features and single-modality encoders
    ``mmkit.scoring``      the evaluation world and the one way to score embeddings
                           (R@K, mAP, NDCG@10, the relevance oracle and the Bayes ceiling)
    ``mmkit.configs``      the typed, validated configs of the model families (shared part)

Models
    ``mmkit.encoders``     joint embeddings: CCA, metric learning, the joint model, speech,
                           CLIP-style models (transformers ``CLIPModel``)
    ``mmkit.methods``      end-to-end retrieval methods (``joint``, ``baseline``, ``clip``,
                           ``pretrained``: real photos offline)

Applications
    ``mmkit.align``        adversarial and generative cross-modal alignment
    ``mmkit.fusion``       late, early, gated and graph fusion; composed queries
    ``mmkit.scale``        folder indexes (incremental, verified; local or Ray),
                           ``mmkit search`` (composed queries), ``mmkit duplicates``
    ``mmkit.challenges``   the open challenges, measured: cross-domain, class imbalance,
                           fine-grained, multi-task, explanations, compact models

On top
    ``mmkit.exercises``    checkers for the notebooks' exercises
    ``mmkit.demo``         ``mmkit demo``
    ``mmkit.serve``        ``mmkit serve``: the search app (JSON API and web page) and the
                           notebooks' search widget
    ``mmkit.cli``          the ``mmkit`` command

``import mmkit`` is light: every subpackage above is imported the first time it is used
(``mmkit.metrics.ndcg_at_k``, ``mmkit.index.build_index``, ...), and ``dir(mmkit)`` lists them.
"""
from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from mmkit._setup import Setup, setup  # noqa: E402
from mmkit._version import __version__  # noqa: E402

#: the subpackages and modules ``mmkit.<name>`` imports on first use
SUBMODULES: tuple[str, ...] = (
    "errors", "validate", "data", "metrics", "index", "losses", "miners", "checkpoints",
    "training", "viz", "features", "scoring", "configs", "encoders", "methods", "align",
    "fusion", "scale", "challenges", "exercises", "demo", "serve", "cli")

if TYPE_CHECKING:  # pragma: no cover - for static analysers and IDEs
    from mmkit import (align, challenges, checkpoints, cli, configs, data, demo,  # noqa: F401
                       encoders,
                       errors, exercises, features, fusion, index, losses, methods, metrics,
                       miners, scale, scoring, serve, training, validate, viz)

__all__ = ["setup", "Setup", "__version__", *SUBMODULES]


def __getattr__(name: str) -> Any:
    """Import ``mmkit.<name>`` on first use (PEP 562)."""
    if name in SUBMODULES:
        module = importlib.import_module(f"mmkit.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'mmkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(SUBMODULES))
