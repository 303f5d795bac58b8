"""MS-COCO captions: the official ``captions_{train,val}{2014,2017}.json`` files and the
Karpathy split file ``dataset_coco.json``, as one :class:`~mmkit.data.dataset.RetrievalDataset`.

Layouts (see ``data/README.md``)::

    ROOT/annotations/captions_train2017.json   ROOT/train2017/000000391895.jpg
    ROOT/annotations/captions_val2017.json     ROOT/val2017/000000000139.jpg
    ROOT/annotations/captions_val2014.json     ROOT/val2014/COCO_val2014_000000391895.jpg
    ROOT/dataset_coco.json                      (Karpathy: 113,287 train+restval / 5,000 / 5,000)

The official files: ``{"images": [{"id", "file_name", ...}], "annotations": [{"image_id",
"id", "caption"}]}``; ids are not contiguous; an image has 5 to 7 captions, evaluation keeps
the first 5 (file order; :attr:`RetrievalDataset.captions_per_image`); captions are kept
stripped (some end in spaces or a newline).

COCO-2017 folders hold the same images as 2014 under ``{cocoid:012d}.jpg``: the Karpathy
file's ``val2014/COCO_val2014_...jpg`` paths are mapped onto ``train2017/`` or ``val2017/``
when the 2014 folders are absent.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from mmkit.data.dataset import RetrievalDataset, require_file
from mmkit.data.karpathy import load_karpathy
from mmkit.errors import InputError

_CAPTIONS_FILE = re.compile(r"captions_(train|val)(\d{4})\.json$")


def _read_json(path: Path, what: str):
    require_file(path, what)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON ({exc.msg})") from None


def _field(entry, key: str, kind: type, where: str):
    if not isinstance(entry, dict):
        raise InputError(f"{where}: not an object")
    if key not in entry:
        raise InputError(f"{where}: missing field '{key}'")
    value = entry[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise InputError(f"{where}: field '{key}' has type {type(value).__name__} "
                         f"(expected {kind.__name__})")
    return value


def load_coco_captions(path: str | Path, image_folder: str | Path | None = None,
                       split: str | None = None) -> RetrievalDataset:
    """Read one official COCO captions file.

    Args:
        path: ``annotations/captions_{train,val}{2014,2017}.json``.
        image_folder: where its images are (default: ``ROOT/{split}{year}`` next to the
            ``annotations`` folder, read from the file name).
        split: split name for every image (default: ``train`` or ``val`` from the file name).

    Images keep the file's order; captions are grouped by image in file order.
    :attr:`RetrievalDataset.image_ids` holds the COCO ids.

    Raises:
        InputError: missing file, invalid JSON, a missing or mistyped field, a repeated image
            or annotation id, an annotation of an image the file does not list, an empty
            caption, an image without any caption (naming ``images[i]`` /
            ``annotations[k]`` and the field).
    """
    path = Path(path)
    match = _CAPTIONS_FILE.search(path.name)
    data = _read_json(path, "COCO captions file")
    if not isinstance(data, dict):
        raise InputError(f"{path}: top level must be an object with 'images' and 'annotations'")
    images = _field(data, "images", list, str(path))
    annotations = _field(data, "annotations", list, str(path))
    if split is None:
        split = match.group(1) if match else ""
    if image_folder is None:
        base = path.parent.parent if path.parent.name == "annotations" else path.parent
        image_folder = base / (f"{match.group(1)}{match.group(2)}" if match else "")
    image_folder = Path(image_folder)
    position: dict[int, int] = {}
    paths, ids = [], []
    for i, entry in enumerate(images):
        where = f"{path}: images[{i}]"
        image_id = _field(entry, "id", int, where)
        name = _field(entry, "file_name", str, where)
        if not name.strip() or name.startswith(("/", "\\")) or ".." in re.split(r"[\\/]", name):
            raise InputError(f"{where}: field 'file_name' is not a relative file name ({name!r})")
        if image_id in position:
            raise InputError(f"{where}: field 'id' {image_id} repeats images[{position[image_id]}]")
        position[image_id] = i
        paths.append(image_folder / name)
        ids.append(image_id)
    groups: list[list[str]] = [[] for _ in images]
    seen_ann: dict[int, int] = {}
    for k, ann in enumerate(annotations):
        where = f"{path}: annotations[{k}]"
        image_id = _field(ann, "image_id", int, where)
        caption = _field(ann, "caption", str, where).strip()
        if "id" in ann:
            ann_id = _field(ann, "id", int, where)
            if ann_id in seen_ann:
                raise InputError(f"{where}: field 'id' {ann_id} repeats annotations[{seen_ann[ann_id]}]")
            seen_ann[ann_id] = k
        if image_id not in position:
            raise InputError(f"{where}: field 'image_id' {image_id} is not in 'images'")
        if not caption:
            raise InputError(f"{where}: field 'caption' is empty")
        groups[position[image_id]].append(caption)
    for i, g in enumerate(groups):
        if not g:
            raise InputError(f"{path}: images[{i}] (id {ids[i]}) has no caption in "
                             "'annotations'")
    captions = [c for g in groups for c in g]
    owner = np.repeat(np.arange(len(groups)), [len(g) for g in groups])
    return RetrievalDataset(name="coco", image_paths=paths, split=np.full(len(paths), split),
                            captions=captions, caption_image=owner,
                            image_ids=np.asarray(ids, np.int64))


def concat(parts: list[RetrievalDataset], name: str) -> RetrievalDataset:
    """Several datasets (e.g. COCO train + val) as one; captions and repairs follow along."""
    paths, splits, captions, owner, ids, repairs = [], [], [], [], [], []
    offset = 0
    for ds in parts:
        paths += ds.image_paths
        splits += list(ds.split)
        captions += ds.captions
        owner.append(ds.caption_image + offset)
        ids.append(ds.image_ids if ds.image_ids is not None else np.full(len(ds), -1))
        repairs += ds.repairs
        offset += len(ds)
    return RetrievalDataset(name=name, image_paths=paths, split=np.asarray(splits),
                            captions=captions, caption_image=np.concatenate(owner),
                            image_ids=np.concatenate(ids), repairs=repairs)


def load_coco(root: str | Path, year: int | None = None) -> RetrievalDataset:
    """Both official captions files of ``year`` under ``root/annotations/`` as one dataset
    (split ``train`` and ``val`` as the files say; these are **not** the Karpathy splits:
    COCO-2017 val is 5,000 images, a different set from the Karpathy 5K test).
    ``year=None``: 2017 when its files are there, else 2014."""
    root = Path(root)
    if year is None:
        year = 2014 if not any((root / "annotations" / f"captions_{s}2017.json").is_file()
                               for s in ("train", "val")) and any(
            (root / "annotations" / f"captions_{s}2014.json").is_file()
            for s in ("train", "val")) else 2017
    files = [root / "annotations" / f"captions_{s}{year}.json" for s in ("train", "val")]
    present = [f for f in files if f.is_file()]
    if not present:
        raise InputError(f"{files[1]}: COCO captions file not found (expected "
                         f"annotations/captions_{{train,val}}{year}.json under {root})")
    return concat([load_coco_captions(f) for f in present], "coco")


def load_coco_karpathy(root: str | Path, path: str | Path | None = None) -> RetrievalDataset:
    """The Karpathy split file ``root/dataset_coco.json`` with images under ``root``.

    When the file's 2014 folders (``val2014/``, ``train2014/``) are absent but 2017 ones are
    there, every image is looked up as ``{cocoid:012d}.jpg`` in ``train2017/`` or
    ``val2017/`` (the same pictures under new names).
    """
    root = Path(root)
    path = require_file(Path(path) if path else root / "dataset_coco.json",
                        "Karpathy split file dataset_coco.json")
    ds = load_karpathy(path, image_root=root)
    ds.name = "coco"
    if ds.image_ids is not None and not any(p.parent.is_dir() for p in ds.image_paths[:1]):
        new = [root / "val2017", root / "train2017"]
        if any(f.is_dir() for f in new):
            listing = {f: {p.name for p in f.iterdir()} if f.is_dir() else set() for f in new}
            mapped = []
            for i, cocoid in enumerate(ds.image_ids):
                name = f"{int(cocoid):012d}.jpg"
                folder = next((f for f in new if name in listing[f]), None)
                if folder is None:
                    raise InputError(f"{path}: images[{i}] (cocoid {int(cocoid)}): neither "
                                     f"{ds.image_paths[i]} nor {name} in train2017/ or "
                                     "val2017/ exists")
                mapped.append(folder / name)
            ds.image_paths = mapped
    return ds
