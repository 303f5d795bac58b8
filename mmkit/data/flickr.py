"""Flickr30K and Flickr8K: token files, the CSV repacks, the Flickr8K split lists, and the
Karpathy split files, as one :class:`~mmkit.data.dataset.RetrievalDataset`.

Layouts (see ``data/README.md``)::

    Flickr30K  ROOT/flickr30k-images/1000092795.jpg
               ROOT/results_20130124.token     1000092795.jpg#0<TAB>Two young guys ...
               ROOT/results.csv                image_name| comment_number| comment
               ROOT/dataset_flickr30k.json     Karpathy: 29,000 / 1,014 / 1,000
    Flickr8K   ROOT/Flicker8k_Dataset/1000268201_693b08cb0e.jpg        (sic: "Flicker")
               ROOT/Flickr8k.token.txt (or ROOT/Flickr8k_text/...)     same #k<TAB> format
               ROOT/Flickr_8k.{train,dev,test}Images.txt               6,000 / 1,000 / 1,000
               ROOT/Images/ + ROOT/captions.txt                        Kaggle: image,caption
               ROOT/dataset_flickr8k.json                              Karpathy

Documented repairs (each recorded in ``dataset.repairs``, nothing dropped silently):

- a blank line of a token file is skipped;
- a ``results.csv`` row whose comment number and comment lost their separating pipe
  (``2199200615.jpg| 4   A dog runs ...``) is split at the first run of spaces;
- a token entry whose image name does not end in an image extension (Flickr8K's
  ``2258277193_586949ec62.jpg.1``, which names no image) is dropped;
- an image in no split list (Flickr8K has 91) is kept with split ``""``.

Every other problem is an :class:`~mmkit.errors.InputError` naming file, line and field.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from mmkit.data.dataset import Repair, RetrievalDataset, read_text_lines, require_file
from mmkit.data.karpathy import load_karpathy
from mmkit.errors import InputError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
#: Flickr8K's split list names and the split each one gives
FLICKR8K_SPLIT_LISTS = {"train": "Flickr_8k.trainImages.txt", "val": "Flickr_8k.devImages.txt",
                        "test": "Flickr_8k.testImages.txt"}


class _Captions:
    """Captions collected per image name, in first-seen order, with caption numbers."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.order: list[str] = []
        self.by_image: dict[str, dict[int, str]] = {}
        self.line_of: dict[tuple[str, int], int] = {}
        self.repairs: list[Repair] = []

    def add(self, name: str, number: int, caption: str, line: int) -> None:
        where = f"{self.path}:{line}"
        if not name:
            raise InputError(f"{where}: image name is empty")
        if not caption:
            raise InputError(f"{where}: caption is empty (image {name}#{number})")
        if not name.lower().endswith(IMAGE_EXTENSIONS):
            self.repairs.append(Repair(str(self.path), line, "image", "entry without image dropped",
                                       f"{name!r} is no image file name"))
            return
        if name not in self.by_image:
            self.by_image[name] = {}
            self.order.append(name)
        if number in self.by_image[name]:
            raise InputError(f"{where}: caption number {number} of {name} repeats line "
                             f"{self.line_of[(name, number)]}")
        self.by_image[name][number] = caption
        self.line_of[(name, number)] = line

    def dataset(self, name: str, image_folder: Path,
                split: dict[str, str] | None = None) -> RetrievalDataset:
        if not self.order:
            raise InputError(f"{self.path}: no captions")
        groups = [[caps[k] for k in sorted(caps)] for caps in
                  (self.by_image[n] for n in self.order)]
        numbers = [k for n in self.order for k in sorted(self.by_image[n])]
        captions = [c for g in groups for c in g]
        owner = np.repeat(np.arange(len(groups)), [len(g) for g in groups])
        split = split or {}
        return RetrievalDataset(name=name, image_paths=[image_folder / n for n in self.order],
                                split=np.asarray([split.get(n, "") for n in self.order]),
                                captions=captions, caption_image=owner, caption_ids=numbers,
                                repairs=list(self.repairs))


def read_token_file(path: str | Path) -> _Captions:
    """Parse a ``name.jpg#k<TAB>caption`` file (Flickr30K ``results_20130124.token``,
    Flickr8K ``Flickr8k.token.txt``): split on the first tab; the image name is everything
    before the **last** ``#``, the caption number (any number of digits) after it."""
    path = Path(path)
    out = _Captions(path)
    for line_no, line in enumerate(read_text_lines(path, "caption token file"), 1):
        if not line.strip():
            out.repairs.append(Repair(str(path), line_no, "line", "blank line skipped", "empty"))
            continue
        key, tab, caption = line.partition("\t")
        if not tab:
            raise InputError(f"{path}:{line_no}: no tab between 'name.jpg#k' and the caption")
        name, hash_, number = key.strip().rpartition("#")
        if not hash_:
            raise InputError(f"{path}:{line_no}: field 'name#k' has no '#' ({key[:60]!r})")
        if not number.isdigit():
            raise InputError(f"{path}:{line_no}: caption number {number[:20]!r} after '#' is "
                             "not a number")
        out.add(name, int(number), caption.strip(), line_no)
    return out


_BROKEN_ROW = re.compile(r"^\s*(\d+)\s+(\S.*)$")


def read_results_csv(path: str | Path) -> _Captions:
    """Parse the pipe-separated Flickr30K repack ``results.csv`` (header
    ``image_name| comment_number| comment``, spaces after the pipes); a row that lost its
    second pipe is repaired (see the module docstring)."""
    path = Path(path)
    out = _Captions(path)
    lines = read_text_lines(path, "Flickr30K results.csv")
    if not lines or [h.strip() for h in lines[0].split("|")] != ["image_name", "comment_number",
                                                                 "comment"]:
        raise InputError(f"{path}:1: header must be 'image_name| comment_number| comment'")
    for line_no, line in enumerate(lines[1:], 2):
        if not line.strip():
            out.repairs.append(Repair(str(path), line_no, "line", "blank line skipped", "empty"))
            continue
        fields = line.split("|", 2)
        if len(fields) == 3:
            name, number, caption = (f.strip() for f in fields)
        elif len(fields) == 2 and _BROKEN_ROW.match(fields[1]):
            name = fields[0].strip()
            number, caption = _BROKEN_ROW.match(fields[1]).groups()
            out.repairs.append(Repair(str(path), line_no, "comment_number",
                                      "broken row split",
                                      f"no pipe before the comment; read number {number}"))
        else:
            raise InputError(f"{path}:{line_no}: expected 3 pipe-separated fields "
                             f"(image_name| comment_number| comment), got {len(fields)}")
        if not number.isdigit():
            raise InputError(f"{path}:{line_no}: field 'comment_number' {number[:20]!r} is not "
                             "a number")
        out.add(name, int(number), caption.strip(), line_no)
    return out


def read_captions_csv(path: str | Path) -> _Captions:
    """Parse the Kaggle Flickr8K ``captions.txt`` (header ``image,caption``); each row is split
    on its **first** comma only (captions contain commas). Captions are numbered in file
    order per image."""
    path = Path(path)
    out = _Captions(path)
    lines = read_text_lines(path, "Flickr8K captions.txt")
    if not lines or lines[0].strip().replace(" ", "") != "image,caption":
        raise InputError(f"{path}:1: header must be 'image,caption'")
    count: dict[str, int] = {}
    for line_no, line in enumerate(lines[1:], 2):
        if not line.strip():
            out.repairs.append(Repair(str(path), line_no, "line", "blank line skipped", "empty"))
            continue
        name, comma, caption = line.partition(",")
        if not comma:
            raise InputError(f"{path}:{line_no}: no comma between image and caption")
        name = name.strip()
        out.add(name, count.get(name, 0), caption.strip(), line_no)
        count[name] = count.get(name, 0) + 1
    return out


def read_split_lists(folder: str | Path, known: set[str] | None = None) -> dict[str, str]:
    """``{image name: split}`` from Flickr8K's ``Flickr_8k.{train,dev,test}Images.txt``
    (``dev`` is called ``val``). An image in two lists, or (with ``known``) a listed image
    that has no captions, is an InputError naming the list file and line."""
    folder = Path(folder)
    split: dict[str, str] = {}
    where_of: dict[str, str] = {}
    for name, filename in FLICKR8K_SPLIT_LISTS.items():
        path = folder / filename
        for line_no, line in enumerate(read_text_lines(path, "Flickr8K split list"), 1):
            image = line.strip()
            if not image:
                continue
            if image in split:
                raise InputError(f"{path}:{line_no}: {image} is already in {where_of[image]}")
            if known is not None and image not in known:
                raise InputError(f"{path}:{line_no}: {image} has no captions in the token file")
            split[image] = name
            where_of[image] = f"{filename}"
    return split


def load_flickr30k(root: str | Path) -> RetrievalDataset:
    """Flickr30K under ``root``: the Karpathy file ``dataset_flickr30k.json`` when present
    (it defines the standard 29,000 / 1,014 / 1,000 split), else ``results_20130124.token``,
    else ``results.csv`` (no split: every image gets split ``""``). Images in
    ``root/flickr30k-images/``."""
    root = Path(root)
    images = root / "flickr30k-images"
    karpathy = root / "dataset_flickr30k.json"
    if karpathy.is_file():
        ds = load_karpathy(karpathy, image_root=images)
        ds.name = "flickr30k"
        return ds
    for name, reader in (("results_20130124.token", read_token_file),
                         ("results.csv", read_results_csv)):
        if (root / name).is_file():
            return reader(root / name).dataset("flickr30k", images)
    require_file(karpathy, "Flickr30K captions (dataset_flickr30k.json, "
                           "results_20130124.token or results.csv)")
    raise AssertionError  # pragma: no cover


def _flickr8k_text(root: Path, name: str) -> Path:
    for folder in (root, root / "Flickr8k_text"):
        if (folder / name).is_file():
            return folder / name
    return root / name


def load_flickr8k(root: str | Path) -> RetrievalDataset:
    """Flickr8K under ``root``: ``Flickr8k.token.txt`` with the official split lists and
    images in ``Flicker8k_Dataset/``; else the Kaggle ``captions.txt`` with ``Images/`` (split
    lists are used when present); else ``dataset_flickr8k.json``. Spoken captions
    (``flickr_audio/wav2capt.txt``) are attached by :func:`mmkit.data.spoken.load_flickr8k_audio`."""
    root = Path(root)
    token = _flickr8k_text(root, "Flickr8k.token.txt")
    kaggle = root / "captions.txt"
    if token.is_file():
        caps, images = read_token_file(token), root / "Flicker8k_Dataset"
    elif kaggle.is_file():
        caps, images = read_captions_csv(kaggle), root / "Images"
    elif (root / "dataset_flickr8k.json").is_file():
        ds = load_karpathy(root / "dataset_flickr8k.json", image_root=root / "Flicker8k_Dataset")
        ds.name = "flickr8k"
        return ds
    else:
        require_file(token, "Flickr8K captions (Flickr8k.token.txt, captions.txt or "
                            "dataset_flickr8k.json)")
        raise AssertionError  # pragma: no cover
    lists = token.parent if token.is_file() else root
    split = None
    if all((lists / f).is_file() for f in FLICKR8K_SPLIT_LISTS.values()):
        split = read_split_lists(lists, set(caps.order))
        for name in caps.order:
            if name not in split:
                caps.repairs.append(Repair(str(lists), None, "split", "image in no split list",
                                           f"{name} kept with split ''"))
    return caps.dataset("flickr8k", images, split)
