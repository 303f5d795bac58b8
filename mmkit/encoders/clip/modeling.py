"""The CLIP-style model: transformers' own ``CLIPModel`` (built small and trained on the world,
or pretrained and loaded with ``from_pretrained``) in one wrapper, :class:`ClipStyle`.

- :func:`build_clip`: the random ``CLIPModel`` of a ``CLIPConfig``;
  :func:`build_clip_style`: the untrained :class:`ClipStyle` of a
  :class:`~mmkit.encoders.clip.configuration.ClipStyleConfig` (what the ``clip_world``
  checkpoint builds before its weights, tokenizer included, are loaded);
- :func:`image_processor`: CLIP's image preprocessing at a size;
- :class:`ClipStyle`: ``embed_images(uint8 [N, H, W, 3]) -> float32 [N, d]`` and
  ``embed_texts(list[str]) -> float32 [N, d]`` (L2-normalised, batched, no gradient) through
  ``get_image_features`` / ``get_text_features``;
- :func:`load_clip` / :func:`load_pretrained_clip`: a pretrained CLIP with
  ``from_pretrained`` (a local folder, or the hub when online), in the same :class:`ClipStyle`
  (the one CLIP wrapper: the retrieval method ``ClipMethod`` of ``mmkit demo --method clip``
  is a thin adapter around it); :func:`feature_tensor` reads ``get_*_features``' output.

transformers is imported when a function needs it.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mmkit._setup import pick_device
from mmkit.data.images import check_images
from mmkit.encoders.clip.configuration import (ClipStyleConfig, check_fits, check_pretrained_fits,
                                               clip_style_config)
from mmkit.encoders.clip.tokenization import tokenizer_from_json, tokenizer_to_json
from mmkit.errors import InputError
from mmkit.training import progress_bar

__all__ = ["DEFAULT_CLIP", "SUGGESTED_FOLDER", "build_clip", "image_processor", "ClipStyle",
           "build_clip_style", "load_clip", "feature_tensor", "load_pretrained_clip"]

#: the pretrained CLIP the demo suggests fetching
DEFAULT_CLIP = "openai/clip-vit-base-patch32"
#: where data/README.md suggests keeping it
SUGGESTED_FOLDER = "data/models/clip-vit-base-patch32"


def _device() -> str:
    return pick_device()


def build_clip(config) -> nn.Module:
    """A randomly initialised ``transformers.CLIPModel`` of ``config`` (seed it yourself)."""
    from transformers import CLIPModel

    return CLIPModel(config)


def image_processor(image_size: int):
    """CLIP's image preprocessing at ``image_size`` px (resize the short side, centre crop,
    scale to [0, 1], normalise with CLIP's mean and std): a ``CLIPImageProcessor``."""
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(size={"shortest_edge": int(image_size)},
                              crop_size={"height": int(image_size), "width": int(image_size)})


class ClipStyle(nn.Module):
    """A ``CLIPModel`` with its tokenizer and image processor: one joint space for images and
    captions.

    Args:
        model: a ``transformers.CLIPModel``.
        tokenizer: its tokenizer (``None``: read from the ``tokenizer_json`` buffer, e.g. after
            loading a checkpoint).
        processor: its image processor (``None``: :func:`image_processor` at the model's
            image size).
        tokenizer_bytes: capacity of the ``tokenizer_json`` buffer (uint8, zero-padded), the
            tokenizer's home inside the state dict; 0 for a pretrained model.
        pretrained: a pretrained model with its own tokenizer (:func:`load_pretrained_clip`):
            the tokenizer is checked with :func:`check_pretrained_fits` instead of
            :func:`check_fits`.

    ``embed_images`` / ``embed_texts`` return L2-normalised float32 [N, projection_dim],
    batched, without gradient, on the model's device (CPU fallback: wherever the parameters
    are).
    """

    def __init__(self, model: nn.Module, tokenizer=None, processor=None,
                 tokenizer_bytes: int = 0, pretrained: bool = False) -> None:
        super().__init__()
        self.clip = model
        self.pretrained = bool(pretrained)
        self.register_buffer("tokenizer_json", torch.zeros(int(tokenizer_bytes),
                                                           dtype=torch.uint8))
        self.processor = processor or image_processor(model.config.vision_config.image_size)
        self._tokenizer = None
        if tokenizer is not None:
            self.set_tokenizer(tokenizer)
        self.register_load_state_dict_post_hook(lambda module, keys: module._forget())

    def _forget(self) -> None:
        if len(self.tokenizer_json):
            self._tokenizer = None        # re-read from the freshly loaded buffer

    def set_tokenizer(self, tokenizer) -> None:
        """Attach ``tokenizer`` (checked against the model's config) and, when the buffer has
        capacity, store it there as JSON."""
        (check_pretrained_fits if self.pretrained else check_fits)(self.clip.config, tokenizer)
        if len(self.tokenizer_json):
            blob = tokenizer_to_json(tokenizer).encode("utf-8")
            if len(blob) > len(self.tokenizer_json):
                raise InputError(f"the tokenizer needs {len(blob)} bytes but the checkpoint "
                                 f"holds {len(self.tokenizer_json)} (raise tokenizer_bytes)")
            data = torch.zeros_like(self.tokenizer_json)
            data[:len(blob)] = torch.frombuffer(bytearray(blob), dtype=torch.uint8)
            self.tokenizer_json.copy_(data)
        self._tokenizer = tokenizer

    @property
    def tokenizer(self):
        """The ``CLIPTokenizer`` (from the state dict's buffer when not given)."""
        if self._tokenizer is None:
            raw = bytes(self.tokenizer_json.cpu().numpy()).rstrip(b"\0")
            if not raw:
                raise InputError("this CLIP model has no tokenizer yet (train it, load a "
                                 "checkpoint, or call set_tokenizer)")
            tok = tokenizer_from_json(raw.decode("utf-8"))
            check_fits(self.clip.config, tok)
            self._tokenizer = tok
        return self._tokenizer

    @property
    def dim(self) -> int:
        """The joint space's dimension (``projection_dim``)."""
        return int(self.clip.config.projection_dim)

    @property
    def image_size(self) -> int:
        return int(self.clip.config.vision_config.image_size)

    def _device(self):
        return next(self.clip.parameters()).device

    def pixel_values(self, images: np.ndarray) -> torch.Tensor:
        """uint8 [N, H, W, 3] -> float32 [N, 3, S, S], CLIP's preprocessing (CPU)."""
        x = check_images(images, name="CLIP images")
        batch = torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2)
        return self.processor(images=batch, return_tensors="pt")["pixel_values"].float()

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Texts -> ``input_ids`` / ``attention_mask`` int64 [N, L] (padded to the longest,
        cut at the model's positions, eos always kept)."""
        if isinstance(texts, str):
            raise InputError("embed_texts takes a list of strings, got one string")
        texts = list(texts)
        bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
        if bad is not None:
            raise InputError(f"text {bad} is {type(texts[bad]).__name__}, not str")
        limit = int(self.clip.config.text_config.max_position_embeddings)
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=limit,
                             return_tensors="pt")
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}

    def _run(self, n: int, batch_size: int, encode, progress: bool = False) -> np.ndarray:
        out = []
        was = self.training
        self.eval()
        with torch.no_grad():
            for s in progress_bar(range(0, n, batch_size), desc="clip",
                                  progress=progress and n > batch_size):
                z = feature_tensor(encode(s, min(n, s + batch_size))).float()
                out.append(nn.functional.normalize(z, dim=-1).cpu().numpy())
        self.train(was)
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, self.dim),
                                                                            np.float32)

    def embed_images(self, images: np.ndarray, *, batch_size: int = 256,
                     progress: bool = False) -> np.ndarray:
        """uint8 [N, H, W, 3] -> float32 [N, d], L2-normalised (preprocessed batch by batch,
        so a large N at 224 px never holds all pixel tensors at once); the signature of every
        :class:`~mmkit.encoders.base.Encoder`."""
        x = check_images(images, name="CLIP images")
        dev = self._device()
        return self._run(len(x), batch_size, lambda a, b: self.clip.get_image_features(
            pixel_values=self.pixel_values(x[a:b]).to(dev)), progress)

    def embed_texts(self, texts: Sequence[str], batch_size: int = 512, *,
                    progress: bool = False) -> np.ndarray:
        """M strings -> float32 [M, d], L2-normalised (``batch_size`` texts per forward pass,
        padded to the longest of the batch)."""
        if isinstance(texts, str):
            raise InputError("embed_texts takes a list of strings, got one string")
        texts = list(texts)
        dev = self._device()

        def encode(a: int, b: int):
            enc = self.tokenize(texts[a:b])
            return self.clip.get_text_features(input_ids=enc["input_ids"].to(dev),
                                               attention_mask=enc["attention_mask"].to(dev))

        return self._run(len(texts), batch_size, encode, progress)

    def save_pretrained(self, folder: str | Path) -> Path:
        """Write a Hugging Face CLIP folder (``config.json``, ``model.safetensors``, tokenizer
        and processor files) that :func:`load_pretrained_clip` and ``CLIPModel.from_pretrained``
        read."""
        from transformers import CLIPProcessor

        folder = Path(folder)
        self.clip.save_pretrained(folder)
        CLIPProcessor(image_processor=self.processor, tokenizer=self.tokenizer).save_pretrained(
            folder)
        return folder


def build_clip_style(config: ClipStyleConfig | Mapping[str, Any]) -> ClipStyle:
    """The untrained :class:`ClipStyle` of a ``clip_world``-style config (a
    :class:`~mmkit.encoders.clip.configuration.ClipStyleConfig` or its dict; no tokenizer yet:
    training attaches it, loading a checkpoint reads it from the weights)."""
    cfg = clip_style_config(config)
    return ClipStyle(build_clip(cfg.clip_config()), tokenizer_bytes=cfg.tokenizer_bytes)


def _fetch_hint(name: str) -> str:
    return (f"fetch it where there is internet (huggingface-cli download {DEFAULT_CLIP} "
            f"--local-dir {SUGGESTED_FOLDER}) and pass --model {SUGGESTED_FOLDER}")


def load_clip(name_or_path: str | Path, device: str = "cpu"):
    """(``CLIPModel`` in eval mode on ``device``, ``CLIPProcessor``) from a folder (what
    ``save_pretrained`` or ``huggingface-cli download`` writes) or a hub name, with
    ``from_pretrained``. Nothing is downloaded while ``HF_HUB_OFFLINE=1``.

    Raises:
        InputError: one line when the weights are not there (offline and not a local folder,
            or a folder without the files), or when the tokenizer has an empty vocabulary
            (transformers 5 can load one offline without an error).
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


def feature_tensor(out) -> torch.Tensor:
    """A tensor from ``get_*_features``: the tensor itself, or (transformers 5) the output
    object's ``pooler_output``."""
    if isinstance(out, torch.Tensor):
        return out
    for key in ("pooler_output", "text_embeds", "image_embeds"):
        value = getattr(out, key, None)
        if isinstance(value, torch.Tensor):
            return value
    raise InputError(f"CLIP returned {type(out).__name__} without features")


def load_pretrained_clip(name_or_path: str | Path, device: str | None = None) -> ClipStyle:
    """A pretrained CLIP (e.g. a folder holding ``openai/clip-vit-base-patch32``, or the hub
    name when online) in the same :class:`ClipStyle` wrapper as the world-trained model.

    Loading is :func:`load_clip` (offline: a missing folder is one line naming what to fetch;
    an empty tokenizer is refused); the tokenizer is checked with
    :func:`check_pretrained_fits`.
    """
    model, processor = load_clip(name_or_path, device or _device())
    return ClipStyle(model, processor.tokenizer, processor.image_processor,
                     pretrained=True).eval()
