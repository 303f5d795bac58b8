"""CUB-200-2011 (Caltech-UCSD Birds) with its class labels, official split, attributes and
bounding boxes, and the Reed et al. (2016) ten captions per image, as one
:class:`~mmkit.data.dataset.RetrievalDataset`.

Layout (see ``data/README.md``; ids 1-based, fields space-separated)::

    ROOT/CUB_200_2011/images.txt                 1 001.Black_footed_Albatross/Black_..._18.jpg
    ROOT/CUB_200_2011/images/001.Black_footed_Albatross/Black_..._18.jpg
    ROOT/CUB_200_2011/classes.txt                1 001.Black_footed_Albatross
    ROOT/CUB_200_2011/image_class_labels.txt     <image_id> <class_id>
    ROOT/CUB_200_2011/train_test_split.txt       <image_id> <1=train|0=test>
    ROOT/CUB_200_2011/bounding_boxes.txt         <image_id> <x> <y> <w> <h>
    ROOT/attributes.txt (or CUB_200_2011/attributes/attributes.txt)   1 has_bill_shape::...
    ROOT/CUB_200_2011/attributes/image_attribute_labels.txt
                                                 <image_id> <attr_id> <is_present> <certainty> <time>
    ROOT/text_c10/<class folder>/<image stem>.txt  (or cvpr2016_cub/text_c10/): Reed captions

Splits (``split=``): ``"classes"`` (default, the metric-learning convention: classes 1-100
train, 101-200 test, so the test images are of classes never seen in training; with fewer
classes, the first half trains) or ``"official"`` (``train_test_split.txt``: 5,994 / 5,794
images of all 200 classes). The official flag is kept per image in ``extras``.

Documented repairs (recorded in ``dataset.repairs``):

- rows of ``image_attribute_labels.txt`` with an extra field: the first 4 fields are kept;
- Reed caption files with invalid UTF-8: decoded with U+FFFD replacement characters;
- Reed caption files with fewer than 10 lines: the lines there are kept;
- blank lines of any list file are skipped.

Everything else (a row with too few fields, a non-number, an id missing from a file, an id
given twice) is an :class:`~mmkit.errors.InputError` naming the file, line and field.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from mmkit.data.dataset import Repair, RetrievalDataset, read_text_lines, require_file
from mmkit.errors import InputError

#: Reed et al.'s files hold this many captions per image
REED_CAPTIONS = 10
CERTAINTY = {1: "not visible", 2: "guessing", 3: "probably", 4: "definitely"}


def cub_folder(root: str | Path) -> Path:
    """``root/CUB_200_2011`` when it exists, else ``root`` itself (given the inner folder)."""
    root = Path(root)
    return root / "CUB_200_2011" if (root / "CUB_200_2011").is_dir() else root


class _Table:
    """Rows of a space-separated list file: ``rows[(line, fields)]``, blank lines repaired."""

    def __init__(self, path: Path, what: str, n_fields: int, repairs: list[Repair],
                 extra_ok: bool = False) -> None:
        self.path = path
        self.rows: list[tuple[int, list[str]]] = []
        for line_no, line in enumerate(read_text_lines(path, what), 1):
            fields = line.split()
            if not fields:
                repairs.append(Repair(str(path), line_no, "line", "blank line skipped", "empty"))
                continue
            if len(fields) < n_fields:
                raise InputError(f"{path}:{line_no}: expected {n_fields} fields, got "
                                 f"{len(fields)} ({line[:60]!r})")
            if len(fields) > n_fields and not extra_ok:
                raise InputError(f"{path}:{line_no}: expected {n_fields} fields, got "
                                 f"{len(fields)} ({line[:60]!r})")
            self.rows.append((line_no, fields))

    def number(self, line: int, value: str, field: str, kind=int):
        try:
            return kind(value)
        except ValueError:
            raise InputError(f"{self.path}:{line}: field '{field}' is not "
                             f"{'an integer' if kind is int else 'a number'} ({value!r})") from None

    def by_id(self, fields: list[str], kind=int) -> dict[int, tuple[int, list]]:
        """``{id: (line, values of the other fields)}`` with unique ids."""
        out: dict[int, tuple[int, list]] = {}
        for line, row in self.rows:
            key = self.number(line, row[0], fields[0])
            if key in out:
                raise InputError(f"{self.path}:{line}: {fields[0]} {key} repeats line {out[key][0]}")
            out[key] = (line, [self.number(line, v, f, kind) for v, f in zip(row[1:], fields[1:])])
        return out


def _per_image(table: _Table, ids: list[int], fields: list[str], kind=int) -> list[list]:
    values = table.by_id(fields, kind)
    missing = [i for i in ids if i not in values]
    if missing:
        raise InputError(f"{table.path}: no row for image_id {missing[0]} "
                         f"({len(missing)} image(s) of images.txt missing)")
    return [values[i][1] for i in ids]


def _reed_folder(root: Path, cub: Path) -> Path | None:
    for folder in (root / "text_c10", root / "cvpr2016_cub" / "text_c10", cub / "text_c10"):
        if folder.is_dir():
            return folder
    return None


def load_cub(root: str | Path, split: str = "classes", captions: bool = True,
             min_certainty: int = 1) -> RetrievalDataset:
    """Read CUB-200-2011 under ``root`` (the folder holding ``CUB_200_2011/``, or that folder).

    Args:
        split: ``"classes"`` (classes 1-100 train, 101-200 test) or ``"official"``.
        captions: read Reed et al.'s ``text_c10`` captions when the folder is there.
        min_certainty: an attribute counts as present when ``is_present`` is 1 and its
            certainty id is at least this (1 not visible, 2 guessing, 3 probably,
            4 definitely).

    Returns a dataset with ``labels`` (class id - 1), ``class_names``, ``boxes`` (x, y, w, h),
    ``image_ids`` (CUB's ids), ``attributes`` / ``attribute_names`` when the attribute files
    are there, and captions when ``text_c10`` is (none otherwise: then only image -> image is
    defined).
    """
    if split not in ("classes", "official"):
        raise InputError(f"CUB split must be 'classes' or 'official', got {split!r}")
    root = Path(root)
    cub = cub_folder(root)
    repairs: list[Repair] = []
    images = _Table(cub / "images.txt", "CUB images.txt", 2, repairs)
    ids, paths, seen = [], [], {}
    for line, (key, rel) in images.rows:
        image_id = images.number(line, key, "image_id")
        if image_id in seen:
            raise InputError(f"{images.path}:{line}: image_id {image_id} repeats line {seen[image_id]}")
        seen[image_id] = line
        ids.append(image_id)
        paths.append(cub / "images" / rel)
    classes = _Table(cub / "classes.txt", "CUB classes.txt", 2, repairs).by_id(
        ["class_id", "name"], kind=str)
    class_ids = sorted(classes)
    if class_ids != list(range(1, len(class_ids) + 1)):
        raise InputError(f"{cub / 'classes.txt'}: class ids must be 1..{len(class_ids)}")
    class_names = [classes[c][1][0].split(".", 1)[-1] for c in class_ids]
    label_table = _Table(cub / "image_class_labels.txt", "CUB image_class_labels.txt", 2, repairs)
    labels = np.asarray([v[0] for v in _per_image(label_table, ids, ["image_id", "class_id"])])
    bad = np.flatnonzero((labels < 1) | (labels > len(class_ids)))
    if len(bad):
        raise InputError(f"{label_table.path}: image_id {ids[bad[0]]} has class_id "
                         f"{labels[bad[0]]}, not in classes.txt (1..{len(class_ids)})")
    labels = labels - 1
    split_table = _Table(cub / "train_test_split.txt", "CUB train_test_split.txt", 2, repairs)
    official = [v[0] for v in _per_image(split_table, ids, ["image_id", "is_training_image"])]
    if any(v not in (0, 1) for v in official):
        raise InputError(f"{split_table.path}: field 'is_training_image' must be 0 or 1")
    official_split = np.where(np.asarray(official) == 1, "train", "test")
    if split == "official":
        splits = official_split
    else:
        splits = np.where(labels < (len(class_ids) + 1) // 2, "train", "test")
    boxes = None
    if (cub / "bounding_boxes.txt").is_file():
        box_table = _Table(cub / "bounding_boxes.txt", "CUB bounding_boxes.txt", 5, repairs)
        boxes = np.asarray(_per_image(box_table, ids, ["image_id", "x", "y", "width", "height"],
                                      kind=float), np.float32)
    attributes, attribute_names = _attributes(root, cub, ids, min_certainty, repairs)
    caption_groups = None
    reed = _reed_folder(root, cub) if captions else None
    if reed is not None:
        caption_groups = [_reed_captions(reed, p.parent.name, p.stem, repairs) for p in paths]
    if caption_groups is not None:
        caps = [c for g in caption_groups for c in g]
        owner = np.repeat(np.arange(len(paths)), [len(g) for g in caption_groups])
    else:
        caps, owner = [], np.zeros(0, np.int64)
    return RetrievalDataset(name="cub", image_paths=paths, split=splits, captions=caps,
                            caption_image=owner, labels=labels, class_names=class_names,
                            attributes=attributes, attribute_names=attribute_names, boxes=boxes,
                            image_ids=np.asarray(ids, np.int64),
                            extras=[{"official_split": str(s)} for s in official_split],
                            repairs=repairs, captions_per_image=REED_CAPTIONS)


def _attributes(root: Path, cub: Path, ids: list[int], min_certainty: int,
                repairs: list[Repair]) -> tuple[np.ndarray | None, list[str] | None]:
    labels_path = cub / "attributes" / "image_attribute_labels.txt"
    names_path = next((p for p in (root / "attributes.txt", cub / "attributes.txt",
                                   cub / "attributes" / "attributes.txt") if p.is_file()), None)
    if not labels_path.is_file():
        return None, None
    if names_path is None:
        require_file(root / "attributes.txt", "CUB attributes.txt (the attribute names)")
    names_table = _Table(names_path, "CUB attributes.txt", 2, repairs).by_id(["attribute_id",
                                                                             "name"], kind=str)
    n_attr = len(names_table)
    if sorted(names_table) != list(range(1, n_attr + 1)):
        raise InputError(f"{names_path}: attribute ids must be 1..{n_attr}")
    names = [names_table[a][1][0] for a in range(1, n_attr + 1)]
    table = _Table(labels_path, "CUB image_attribute_labels.txt", 4, repairs, extra_ok=True)
    row_of = {image_id: r for r, image_id in enumerate(ids)}
    out = np.zeros((len(ids), n_attr), np.uint8)
    for line, fields in table.rows:
        if len(fields) > 5:
            repairs.append(Repair(str(labels_path), line, "row", "extra field dropped",
                                  f"{len(fields)} fields; the first 4 kept"))
        image_id, attr, present, certainty = (
            table.number(line, v, f) for v, f in
            zip(fields[:4], ("image_id", "attribute_id", "is_present", "certainty_id")))
        if image_id not in row_of:
            raise InputError(f"{labels_path}:{line}: image_id {image_id} is not in images.txt")
        if not 1 <= attr <= n_attr:
            raise InputError(f"{labels_path}:{line}: attribute_id {attr} is not in 1..{n_attr}")
        if present not in (0, 1) or certainty not in CERTAINTY:
            raise InputError(f"{labels_path}:{line}: is_present must be 0/1 and certainty_id "
                             f"1-4 (got {present}, {certainty})")
        if present and certainty >= min_certainty:
            out[row_of[image_id], attr - 1] = 1
    return out, names


def _reed_captions(folder: Path, class_folder: str, stem: str, repairs: list[Repair]) -> list[str]:
    path = folder / class_folder / f"{stem}.txt"
    require_file(path, "Reed et al. caption file")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        repairs.append(Repair(str(path), line, "caption", "invalid UTF-8 replaced",
                              f"byte {data[exc.start]:#04x} decoded as U+FFFD"))
        text = data.decode("utf-8", errors="replace")
    lines = [t.strip() for t in text.splitlines()]
    caps = [t for t in lines if t]
    if len(caps) < len(lines):
        repairs.append(Repair(str(path), None, "caption", "blank line skipped",
                              f"{len(lines) - len(caps)} blank line(s)"))
    if not caps:
        raise InputError(f"{path}: no captions")
    if len(caps) < REED_CAPTIONS:
        repairs.append(Repair(str(path), None, "caption", "short caption file",
                              f"{len(caps)} of {REED_CAPTIONS} captions"))
    return caps
