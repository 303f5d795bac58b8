"""Read Karpathy split files (``dataset_coco.json``, ``dataset_flickr30k.json``,
``dataset_flickr8k.json``) and the world's ``dataset_world.json`` with one loader.

Image paths: ``image_root / filepath / filename`` when an entry has ``filepath`` (COCO:
``val2014``; the world: ``images``), else ``image_root / filename`` (Flickr: pass the
``flickr30k-images`` folder as ``image_root``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mmkit.errors import InputError

KARPATHY_SPLITS = ("train", "restval", "val", "test")


@dataclass
class CaptionDataset:
    """Images with their captions, as read from a Karpathy split file.

    Attributes:
        name: the file's ``dataset`` field (``coco``, ``flickr30k``, ``world``...).
        image_paths: one path per image (not opened until asked for).
        split: str [N] split name per image.
        captions: all captions (``raw``), grouped by image.
        tokens: the file's tokens per caption.
        caption_image: int [M] image index of each caption.
        extras: per-image dicts of any further fields (e.g. the world's ``class_id``).
    """

    name: str
    image_paths: list[Path]
    split: np.ndarray
    captions: list[str]
    tokens: list[list[str]]
    caption_image: np.ndarray
    extras: list[dict] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.image_paths)

    def indices(self, split: str, merge_restval: bool = True) -> np.ndarray:
        """Image indices of a split; ``train`` includes ``restval`` unless told otherwise."""
        names = {split}
        if split == "train" and merge_restval:
            names.add("restval")
        return np.flatnonzero(np.isin(self.split, sorted(names)))

    def caption_indices(self, images: np.ndarray, first: int | None = 5) -> np.ndarray:
        """Caption indices of the given images, keeping the ``first`` captions of each
        (COCO has 5-7 per image; evaluation keeps 5)."""
        wanted = set(int(i) for i in images)
        kept, seen = [], {}
        for j, i in enumerate(self.caption_image):
            i = int(i)
            if i in wanted and (first is None or seen.get(i, 0) < first):
                kept.append(j)
                seen[i] = seen.get(i, 0) + 1
        order = {int(i): r for r, i in enumerate(images)}
        kept.sort(key=lambda j: (order[int(self.caption_image[j])], j))
        return np.asarray(kept, dtype=np.int64)

    def load_image(self, i: int, size: int | None = None) -> np.ndarray:
        """Image ``i`` as uint8 [H, W, 3] (optionally resized to size x size)."""
        from PIL import Image

        path = self.image_paths[i]
        try:
            with Image.open(path) as img:
                img = img.convert("RGB")
                if size is not None:
                    img = img.resize((size, size), Image.BICUBIC)
                return np.asarray(img)
        except FileNotFoundError:
            raise InputError(f"{path}: image file not found (image {i} of {self.name})") from None
        except OSError as exc:
            raise InputError(f"{path}: cannot read image ({exc})") from None


def _need(entry: dict, key: str, where: str, kind: type | tuple[type, ...]):
    if key not in entry:
        raise InputError(f"{where}: missing field '{key}'")
    value = entry[key]
    if not isinstance(value, kind):
        raise InputError(f"{where}: field '{key}' has type {type(value).__name__}")
    return value


def load_karpathy(path: str | Path, image_root: str | Path | None = None) -> CaptionDataset:
    """Read a Karpathy split JSON file.

    Args:
        path: the ``dataset_*.json`` file.
        image_root: folder the image paths are relative to (default: the file's folder).

    Raises:
        InputError: a one-line message naming the file and the entry for a missing file,
            invalid JSON, a missing or mistyped field, or an unknown split.
    """
    path = Path(path)
    root = Path(image_root) if image_root is not None else path.parent
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read ({exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: top level must be an object with an 'images' list")
    entries = _need(data, "images", str(path), list)
    paths, splits, captions, tokens, owner, extras = [], [], [], [], [], []
    core = {"filename", "filepath", "imgid", "split", "sentids", "sentences", "cocoid"}
    for i, entry in enumerate(entries):
        where = f"{path}: images[{i}]"
        if not isinstance(entry, dict):
            raise InputError(f"{where}: not an object")
        filename = _need(entry, "filename", where, str)
        split = _need(entry, "split", where, str)
        if split not in KARPATHY_SPLITS and split != "unseen":
            raise InputError(f"{where}: unknown split {split!r}")
        sentences = _need(entry, "sentences", where, list)
        filepath = entry.get("filepath")
        paths.append(root / filepath / filename if filepath else root / filename)
        splits.append(split)
        for s, sent in enumerate(sentences):
            swhere = f"{where}.sentences[{s}]"
            if not isinstance(sent, dict):
                raise InputError(f"{swhere}: not an object")
            raw = _need(sent, "raw", swhere, str)
            toks = sent.get("tokens")
            if toks is None:
                toks = raw.lower().split()
            captions.append(raw.strip())
            tokens.append(list(toks))
            owner.append(i)
        extras.append({k: v for k, v in entry.items() if k not in core})
    return CaptionDataset(name=str(data.get("dataset", path.stem)), image_paths=paths,
                          split=np.asarray(splits), captions=captions, tokens=tokens,
                          caption_image=np.asarray(owner, dtype=np.int64), extras=extras)
