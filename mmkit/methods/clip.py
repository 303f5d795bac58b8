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

transformers 5.x traps handled here: a tokenizer loaded offline can come back empty without
an error (its vocabulary size is checked), and ``get_text_features`` /
``get_image_features`` may return an output object instead of a tensor (``pooler_output``
is read then).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mmkit.errors import InputError
from mmkit.methods.base import RetrievalMethod

#: the model the demo suggests fetching
DEFAULT_CLIP = "openai/clip-vit-base-patch32"
#: where data/README.md suggests keeping it
SUGGESTED_FOLDER = "data/models/clip-vit-base-patch32"


def _fetch_hint(name: str) -> str:
    return (f"fetch it where there is internet (huggingface-cli download {DEFAULT_CLIP} "
            f"--local-dir {SUGGESTED_FOLDER}) and pass --model {SUGGESTED_FOLDER}")


def load_clip(name_or_path: str | Path, device: str = "cpu"):
    """(CLIPModel in eval mode on ``device``, CLIPProcessor) from a folder or a hub name.

    Raises:
        InputError: one line when the weights are not there (offline and not a local folder,
            or a folder without the files), or when the tokenizer has an empty vocabulary.
    """
    from transformers import CLIPModel, CLIPProcessor
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()    # "Loading weights" bars would go to stderr
    name = str(name_or_path)
    path = Path(name).expanduser()
    local = path.is_dir()
    if not local and (path.is_absolute() or name.startswith((".", "~")) or path.exists()):
        raise InputError(f"--model {name}: no such folder; {_fetch_hint(name)}")
    if local and not (path / "config.json").is_file():
        raise InputError(f"--model {name}: {path / 'config.json'} not found (a CLIP folder "
                         f"holds config.json, model.safetensors and the processor files); "
                         f"{_fetch_hint(name)}")
    try:
        model = CLIPModel.from_pretrained(str(path) if local else name)
        processor = CLIPProcessor.from_pretrained(str(path) if local else name)
    except (OSError, ValueError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if local:
            raise InputError(f"--model {name}: cannot load CLIP from this folder "
                             f"({first[:160]})") from None
        raise InputError(f"--model {name}: no local CLIP weights and the hub cannot be reached "
                         f"(HF_HUB_OFFLINE=1); {_fetch_hint(name)}") from None
    tokenizer = processor.tokenizer
    size = len(tokenizer)
    if size <= 3 or tokenizer.vocab_size <= 3:
        raise InputError(f"--model {name}: the CLIP tokenizer loaded with an empty vocabulary "
                         f"({size} tokens); the folder lacks vocab.json/merges.txt or "
                         "tokenizer.json")
    vocab = model.config.text_config.vocab_size
    if size > vocab:
        raise InputError(f"--model {name}: tokenizer has {size} tokens but the model's text "
                         f"config only {vocab}")
    return model.to(device).eval(), processor


def feature_tensor(out) -> "object":
    """A tensor from ``get_*_features``: the tensor itself, or the output's pooler_output."""
    import torch

    if isinstance(out, torch.Tensor):
        return out
    for key in ("pooler_output", "text_embeds", "image_embeds"):
        value = getattr(out, key, None)
        if isinstance(value, torch.Tensor):
            return value
    raise InputError(f"CLIP returned {type(out).__name__} without features")


class ClipMethod(RetrievalMethod):
    """Zero-shot retrieval with a pretrained CLIP.

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
        from mmkit._setup import pick_device

        self.model_name = str(model or DEFAULT_CLIP)
        self.batch_size = batch_size
        self.device = device or pick_device()
        self.progress = progress
        self._loaded = None

    def _load(self):
        if self._loaded is None:
            self._loaded = load_clip(self.model_name, self.device)
        return self._loaded

    @property
    def input_size(self) -> int:
        """The side length images are best loaded at (the processor's crop size)."""
        _, processor = self._load()
        crop = getattr(processor.image_processor, "crop_size", None)
        height = crop.get("height") if isinstance(crop, dict) else getattr(crop, "height", None)
        return int(height) if height else 224

    def fit(self, world, images: np.ndarray) -> "ClipMethod":
        """Zero-shot: loads the model; learns nothing from ``images``."""
        self._load()
        return self

    def _run(self, items: list, encode) -> np.ndarray:
        import torch
        from tqdm.auto import tqdm

        out = []
        with torch.no_grad():
            for start in tqdm(range(0, len(items), self.batch_size), desc="clip", leave=False,
                              disable=not self.progress or len(items) <= self.batch_size):
                feats = feature_tensor(encode(items[start:start + self.batch_size])).float()
                out.append(torch.nn.functional.normalize(feats, dim=-1).cpu().numpy())
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 1), np.float32)

    def embed_images(self, images: np.ndarray, partner: str) -> np.ndarray:
        model, processor = self._load()
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise InputError(f"CLIP images must be uint8 [N, H, W, 3], got {images.dtype} "
                             f"{images.shape}")

        def encode(batch):
            pixels = processor(images=list(batch), return_tensors="pt")["pixel_values"]
            return model.get_image_features(pixel_values=pixels.to(self.device))

        return self._run(list(images), encode)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        model, processor = self._load()
        limit = int(model.config.text_config.max_position_embeddings)

        def encode(batch):
            enc = processor.tokenizer(list(batch), padding=True, truncation=True,
                                      max_length=limit, return_tensors="pt")
            return model.get_text_features(input_ids=enc["input_ids"].to(self.device),
                                           attention_mask=enc["attention_mask"].to(self.device))

        return self._run(list(texts), encode)

    def embed_audio(self, clips: np.ndarray, sr: int) -> np.ndarray:
        raise InputError("CLIP does not embed audio")
