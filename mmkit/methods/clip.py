"""Pretrained CLIP (Radford et al. 2021) as a zero-shot method: ``mmkit demo --method clip
--model PATH_OR_NAME``.

``CLIPModel`` and ``CLIPProcessor`` are loaded with ``from_pretrained`` from a local folder
(what ``save_pretrained`` or ``huggingface-cli download`` writes: ``config.json``,
``model.safetensors``, ``preprocessor_config.json`` / ``processor_config.json``, tokenizer
files), or from the Hugging Face hub when online. Nothing is downloaded while
``HF_HUB_OFFLINE=1`` (mmkit sets it): without local weights the method stops with one line
saying what to fetch and where to put it.

CLIP is used as it comes (zero-shot): :meth:`ClipMethod.fit` trains nothing. It does
text -> image, image -> text and image -> image (one joint space for everything). Images
arrive as uint8 [N, H, W, 3] (the dataset loads them at :attr:`ClipMethod.input_size`); the
processor resizes and centre-crops them as CLIP was trained.

:class:`ClipMethod` is a retrieval method around the kit's one CLIP wrapper,
:class:`mmkit.encoders.hf_clip.ClipStyle`, loaded by
:func:`mmkit.encoders.hf_clip.load_pretrained_clip`: loading, preprocessing, tokenising and
embedding live there, with the transformers 5.x traps handled (a tokenizer loaded offline
can come back empty without an error; ``get_text_features`` / ``get_image_features`` may
return an output object instead of a tensor). :func:`load_clip`, :func:`feature_tensor`,
:data:`DEFAULT_CLIP` and :data:`SUGGESTED_FOLDER` are re-exported from there.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mmkit._setup import pick_device
from mmkit.checkpoints import folder_sha256
from mmkit.data.collection import Collection
from mmkit.encoders.clip.modeling import (DEFAULT_CLIP, SUGGESTED_FOLDER,  # noqa: F401
                                          ClipStyle, _fetch_hint, feature_tensor, load_clip,
                                          load_pretrained_clip)
from mmkit.errors import InputError
from mmkit.methods.base import RetrievalMethod


def clip_folder(name_or_path: str | Path) -> Path:
    """The folder ``from_pretrained`` reads for ``name_or_path``: the folder itself, or the
    local snapshot of a hub name (nothing is downloaded); one-line InputError when there is
    none."""
    path = Path(str(name_or_path)).expanduser()
    if path.is_dir():
        return path
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(str(name_or_path), local_files_only=True))
    except Exception:  # not a hub name, or not downloaded: several error types
        raise InputError(f"--model {name_or_path}: no local CLIP weights; "
                         f"{_fetch_hint(str(name_or_path))}") from None


class ClipMethod(RetrievalMethod):
    """Zero-shot retrieval with a pretrained CLIP: a retrieval method around the one CLIP
    wrapper, :class:`~mmkit.encoders.hf_clip.ClipStyle` (loaded on first use by
    :func:`~mmkit.encoders.hf_clip.load_pretrained_clip`).

    Args:
        model: a local folder or a hub name (default :data:`DEFAULT_CLIP`).
        batch_size: images / captions per forward pass.
        device: torch device (default: :func:`mmkit._setup.pick_device`, CPU fallback).
        progress: progress bars while embedding.
    """

    name = "clip"
    directions = ("text->image", "image->text", "image->image")
    pretrained = True
    joint_space = True

    def __init__(self, model: str | Path | None = None, batch_size: int = 64,
                 device: str | None = None, progress: bool = True) -> None:
        self.model_name = str(model or DEFAULT_CLIP)
        self.batch_size = batch_size
        self.device = device or pick_device()
        self.progress = progress
        self._loaded: ClipStyle | None = None

    def _load(self) -> ClipStyle:
        if self._loaded is None:
            self._loaded = load_pretrained_clip(self.model_name, self.device)
        return self._loaded

    @property
    def input_size(self) -> int:
        """The side length images are best loaded at (the processor's crop size)."""
        crop = getattr(self._load().processor, "crop_size", None)
        height = crop.get("height") if isinstance(crop, dict) else getattr(crop, "height", None)
        return int(height) if height else 224

    @property
    def fingerprint(self) -> str:
        """What identifies this method's embeddings in caches and index folders:
        ``"clip|<sha256>"``, :func:`mmkit.checkpoints.folder_sha256` of the model folder
        (weights ``model.safetensors`` / ``pytorch_model.bin``, config, tokenizer and
        processor files): one byte changed in any of them gives another fingerprint. Fixed
        once the model is loaded (it describes the weights in memory)."""
        known = getattr(self, "_fingerprint", None)
        if known is not None:
            return known
        value = f"{self.name}|{folder_sha256(clip_folder(self.model_name))}"
        if self._loaded is not None:
            self._fingerprint = value
        return value

    def fit(self, collection: Collection, images: np.ndarray) -> "ClipMethod":
        """Zero-shot: loads the model; learns nothing from ``images``."""
        self._load()
        return self

    def _settings(self, batch_size: int | None, progress: bool | None) -> dict:
        return {"batch_size": self.batch_size if batch_size is None else int(batch_size),
                "progress": self.progress if progress is None else bool(progress)}

    def embed_images(self, images: np.ndarray, *, partner: str = "text",
                     batch_size: int | None = None, progress: bool | None = None
                     ) -> np.ndarray:
        """uint8 [N, H, W, 3] -> float32 [N, d], L2-normalised
        (:meth:`mmkit.encoders.hf_clip.ClipStyle.embed_images`; one joint space: ``partner``
        changes nothing)."""
        return self._load().embed_images(images, **self._settings(batch_size, progress))

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """M strings -> float32 [M, d], L2-normalised
        (:meth:`mmkit.encoders.hf_clip.ClipStyle.embed_texts`)."""
        settings = self._settings(None, None)
        return self._load().embed_texts(texts, settings["batch_size"],
                                        progress=settings["progress"])

    def embed_audio(self, clips: np.ndarray, sr: int) -> np.ndarray:
        raise InputError("CLIP does not embed audio")
