"""End-to-end retrieval methods and their evaluation on the world and on real datasets.

``get_method(name)`` builds a registered method; the demo picks the best one by default.
``joint``: the kit's learned joint embedding (committed checkpoints; every direction, speech
included); ``baseline``: handcrafted features + CCA (fits on the train split); ``clip``: a pretrained CLIP
loaded from a local folder (``model=PATH``), zero-shot; ``pretrained``: real photos with
nothing to download (ImageNet EfficientNet-Lite0 concepts embedded by MiniLM, ConSE, and
words read by PP-OCR; :mod:`mmkit.methods.pretrained`).
"""
from __future__ import annotations

from collections.abc import Callable

from mmkit.methods.base import RetrievalMethod
from mmkit.methods.baseline import BaselineMethod
from mmkit.methods.clip import ClipMethod
from mmkit.methods.joint import JointMethod
from mmkit.methods.pretrained import PretrainedMethod

_REGISTRY: dict[str, Callable[..., RetrievalMethod]] = {}


def register(name: str, factory: Callable[..., RetrievalMethod]) -> None:
    """Make ``factory`` available as ``mmkit demo --method NAME``."""
    _REGISTRY[name] = factory


def available_methods() -> list[str]:
    return sorted(_REGISTRY)


def get_method(name: str, **kwargs) -> RetrievalMethod:
    """A new, unfitted method by name."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown method {name!r}; available: {', '.join(available_methods())}")
    return _REGISTRY[name](**kwargs)


def _baseline(**kwargs) -> RetrievalMethod:
    return BaselineMethod(**kwargs)


def _clip(**kwargs) -> RetrievalMethod:
    return ClipMethod(**kwargs)


def _joint(**kwargs) -> RetrievalMethod:
    return JointMethod(**kwargs)


def _pretrained(**kwargs) -> RetrievalMethod:
    return PretrainedMethod(**kwargs)


register("baseline", _baseline)
register("joint", _joint)
register("clip", _clip)
register("pretrained", _pretrained)

#: the method the demo uses when none is named (the best the kit has)
DEFAULT_METHOD = "joint"

__all__ = ["RetrievalMethod", "get_method", "register", "available_methods", "DEFAULT_METHOD"]
