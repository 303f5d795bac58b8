"""Read Karpathy split files (``dataset_coco.json``, ``dataset_flickr30k.json``,
``dataset_flickr8k.json``) and the world's ``dataset_world.json`` with one loader.

Image paths: ``image_root / filepath / filename`` when an entry has ``filepath`` (COCO:
``val2014``; the world: ``images``), else ``image_root / filename`` (Flickr: pass the
``flickr30k-images`` folder as ``image_root``).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from mmkit.data.dataset import RetrievalDataset
from mmkit.errors import InputError

KARPATHY_SPLITS = ("train", "restval", "val", "test")


#: the old name of the loader's result: the one dataset type of every loader
CaptionDataset = RetrievalDataset


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {str: "a string", list: "a list", int: "an integer", dict: "an object"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _type_name(value) -> str:
    """The type of a JSON value, as the messages name it (``int``, ``str``, ``null``...)."""
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _is(value, kind: type | tuple[type, ...]) -> bool:
    """isinstance that does not let a JSON ``true``/``false`` pass for an integer."""
    if isinstance(value, bool):
        return bool in (kind if isinstance(kind, tuple) else (kind,))
    return isinstance(value, kind)


def _short(value, limit: int = 60) -> str:
    """A one-line repr of ``value``, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _need(entry: dict, key: str, where: str, kind: type | tuple[type, ...]):
    if key not in entry:
        raise InputError(f"{where}: missing field '{key}'")
    return _check(entry, key, where, kind)


def _check(entry: dict, key: str, where: str, kind: type | tuple[type, ...]):
    value = entry[key]
    if not _is(value, kind):
        raise InputError(f"{where}: field '{key}' has type {_type_name(value)} "
                         f"(expected {_kind_name(kind)}, got {_short(value)})")
    return value


def _optional_int(entry: dict, key: str, where: str) -> int | None:
    """``entry[key]`` as a non-negative int, or None when the field is absent."""
    if key not in entry:
        return None
    value = _check(entry, key, where, int)
    if value < 0:
        raise InputError(f"{where}: field '{key}' is negative ({value})")
    return value


_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")
_WORD = re.compile(r"[^\W_]+(?:-[^\W_]+)*")


def tokenize(text: str) -> list[str]:
    """Tokens for a caption the file gives none for, in the Karpathy style: lower case,
    punctuation dropped, hyphenated words kept whole (as :func:`mmkit.data.captions.tokenize`,
    which it equals on ASCII text, but keeping non-ASCII letters)."""
    return _WORD.findall(text.lower())


def _relative(value: str, key: str, where: str, is_file: bool) -> list[str]:
    """Check that ``value`` is a relative path that stays under the image root; its parts."""
    if "\x00" in value:
        raise InputError(f"{where}: field '{key}' contains a NUL character")
    if value.startswith(("/", "\\")) or _WINDOWS_DRIVE.match(value):
        raise InputError(f"{where}: field '{key}' is an absolute path ({_short(value)}); "
                         "paths must be relative to the image root")
    parts = re.split(r"[\\/]", value)
    if ".." in parts:
        raise InputError(f"{where}: field '{key}' goes up with '..' ({_short(value)}); "
                         "paths must stay under the image root")
    if is_file and parts[-1] in ("", "."):
        raise InputError(f"{where}: field '{key}' is not a file name ({_short(value)})")
    return [p for p in parts if p not in ("", ".")]


class _Object(dict):
    """A JSON object; ``repeated`` names the keys that occurred more than once."""

    repeated: tuple[str, ...] = ()


def _object(pairs: list[tuple[str, object]]) -> dict:
    obj = _Object(pairs)
    if len(obj) != len(pairs):
        seen, repeated = set(), []
        for key, _ in pairs:
            if key in seen and key not in repeated:
                repeated.append(key)
            seen.add(key)
        obj.repeated = tuple(repeated)
    return obj


def _no_repeats(obj: dict, where: str) -> None:
    repeated = getattr(obj, "repeated", ())
    if repeated:
        raise InputError(f"{where}: field '{repeated[0]}' given more than once "
                         "(JSON keeps only the last)")


def load_karpathy(path: str | Path, image_root: str | Path | None = None) -> RetrievalDataset:
    """Read a Karpathy split JSON file.

    What is read, and what it must be (anything else is an :class:`InputError`):

    * top level: an object; ``dataset`` (a string, optional: the file's stem when absent
      or ``null``);
      ``images``: a non-empty list of objects, one per image.
    * per image ``images[i]``:

      - ``filename``: a non-empty string, a path relative to the image root (no absolute
        path, no ``..`` part, no NUL character, not ending in ``/``);
      - ``filepath`` (optional, COCO and the world): a string under the same rules, the
        folder below the image root; ``null`` or ``""`` mean "no folder" (Flickr);
      - ``split``: one of ``train``, ``restval``, ``val``, ``test`` or the world's
        ``unseen``;
      - ``imgid`` (optional): an integer, the entry's 0-based position in ``images`` (that is
        what it means in the Karpathy files);
      - ``cocoid`` (optional, COCO): a non-negative integer, unique within the file;
      - ``sentids`` (optional): a list of integers, the ``sentid`` of the image's sentences
        (when every sentence has a ``sentid``, the two must hold the same ids, in any order);
      - ``sentences``: a non-empty list of objects (every image of COCO, Flickr8K/30K and the
        world has captions; an image without any cannot be scored, so it is an error);
      - two entries may not point at the same image file (``filepath``/``filename``).
    * per sentence ``images[i].sentences[s]``:

      - ``raw``: a string that is not empty after stripping (the caption is kept stripped,
        so a trailing space or newline goes; a final ``" ."`` is kept);
      - ``tokens`` (optional): a non-empty list of non-empty strings, kept as given; when
        absent or ``null`` they are made from ``raw`` by :func:`tokenize` (lower case,
        punctuation dropped, like the Karpathy files); a caption with no word then is an
        error;
      - ``imgid`` (optional): an integer equal to the image's ``imgid`` (its position);
      - ``sentid`` (optional): a non-negative integer, unique within the file.

    JSON ``true``/``false`` never pass for an integer, and a field given twice in one JSON
    object is an error (JSON would silently keep the last). Further fields are kept per
    image in :attr:`CaptionDataset.extras` (the world's ``class_id`` and ``audio``);
    further sentence fields are ignored. When every image has an integer ``class_id`` (the
    world's export), they become :attr:`RetrievalDataset.labels`; when every image has an
    ``audio`` path, :attr:`RetrievalDataset.audio_paths` (relative to the file's folder);
    COCO's ``cocoid`` become :attr:`RetrievalDataset.image_ids`; a ``classes.txt`` next to
    the file (CUB style, ``1 001.Name``) gives the class names.

    Args:
        path: the ``dataset_*.json`` file.
        image_root: folder the image paths are relative to (default: the file's folder).

    Raises:
        InputError: a one-line message naming the file, the entry (``images[3]``,
            ``images[3].sentences[1]``) and the field for a missing file, invalid JSON, or a
            field that breaks the rules above.
    """
    path = Path(path)
    root = Path(image_root) if image_root is not None else path.parent
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder, not a JSON file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read ({exc})") from None
    try:
        data = json.loads(text, object_pairs_hook=_object)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON ({exc.msg})") from None
    except RecursionError:
        raise InputError(f"{path}: invalid JSON (nested too deeply)") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: top level must be an object with an 'images' list")
    _no_repeats(data, str(path))
    name = path.stem
    if data.get("dataset") is not None:
        name = _check(data, "dataset", str(path), str)
    entries = _need(data, "images", str(path), list)
    if not entries:
        raise InputError(f"{path}: field 'images' is an empty list (no images)")
    paths, splits, captions, tokens, owner, extras = [], [], [], [], [], []
    core = {"filename", "filepath", "imgid", "split", "sentids", "sentences", "cocoid"}
    first_of_path: dict[str, int] = {}
    first_of_cocoid: dict[int, int] = {}
    first_of_sentid: dict[int, str] = {}
    for i, entry in enumerate(entries):
        where = f"{path}: images[{i}]"
        if not isinstance(entry, dict):
            raise InputError(f"{where}: not an object (got {_type_name(entry)})")
        _no_repeats(entry, where)
        filename = _need(entry, "filename", where, str)
        if not filename.strip():
            raise InputError(f"{where}: field 'filename' is empty")
        file_parts = _relative(filename, "filename", where, is_file=True)
        split = _need(entry, "split", where, str)
        if split not in KARPATHY_SPLITS and split != "unseen":
            raise InputError(f"{where}: unknown split {_short(split)} "
                             f"(expected one of {', '.join(KARPATHY_SPLITS)}, unseen)")
        imgid = _optional_int(entry, "imgid", where)
        if imgid is not None and imgid != i:
            raise InputError(f"{where}: field 'imgid' is {imgid} but the entry is images[{i}] "
                             "(imgid is the 0-based position in 'images')")
        cocoid = _optional_int(entry, "cocoid", where)
        if cocoid is not None:
            if cocoid in first_of_cocoid:
                raise InputError(f"{where}: field 'cocoid' {cocoid} repeats "
                                 f"images[{first_of_cocoid[cocoid]}]")
            first_of_cocoid[cocoid] = i
        sentids = None
        if "sentids" in entry:
            sentids = _check(entry, "sentids", where, list)
            for k, sid in enumerate(sentids):
                if not _is(sid, int):
                    raise InputError(f"{where}: field 'sentids' item {k} has type "
                                     f"{_type_name(sid)} (expected an integer, "
                                     f"got {_short(sid)})")
        sentences = _need(entry, "sentences", where, list)
        if not sentences:
            raise InputError(f"{where}: field 'sentences' is an empty list "
                             "(every image needs at least one caption)")
        filepath = entry.get("filepath")
        if filepath is not None:
            filepath = _check(entry, "filepath", where, str)
        dir_parts = _relative(filepath, "filepath", where, is_file=False) if filepath else []
        key = "/".join(dir_parts + file_parts)
        if key in first_of_path:
            raise InputError(f"{where}: image path {_short(key)} repeats "
                             f"images[{first_of_path[key]}] (filepath/filename)")
        first_of_path[key] = i
        paths.append(root / filepath / filename if filepath else root / filename)
        splits.append(split)
        own_sentids = []
        for s, sent in enumerate(sentences):
            swhere = f"{where}.sentences[{s}]"
            if not isinstance(sent, dict):
                raise InputError(f"{swhere}: not an object (got {_type_name(sent)})")
            _no_repeats(sent, swhere)
            raw = _need(sent, "raw", swhere, str)
            caption = raw.strip()
            if not caption:
                raise InputError(f"{swhere}: field 'raw' is empty (caption {_short(raw)})")
            toks = sent.get("tokens")
            if toks is None:
                toks = tokenize(caption)
                if not toks:
                    raise InputError(f"{swhere}: field 'raw' has no words "
                                     f"({_short(raw)}) and there are no 'tokens'")
            else:
                toks = _check(sent, "tokens", swhere, list)
                if not toks:
                    raise InputError(f"{swhere}: field 'tokens' is an empty list "
                                     f"(caption {_short(caption)})")
                for k, tok in enumerate(toks):
                    if not isinstance(tok, str):
                        raise InputError(f"{swhere}: field 'tokens' item {k} has type "
                                         f"{_type_name(tok)} (expected a string, "
                                         f"got {_short(tok)})")
                    if not tok.strip():
                        raise InputError(f"{swhere}: field 'tokens' item {k} is empty")
                toks = list(toks)
            s_imgid = _optional_int(sent, "imgid", swhere)
            if s_imgid is not None and s_imgid != i:
                raise InputError(f"{swhere}: field 'imgid' is {s_imgid} but the sentence "
                                 f"belongs to images[{i}]")
            sentid = _optional_int(sent, "sentid", swhere)
            if sentid is not None:
                if sentid in first_of_sentid:
                    raise InputError(f"{swhere}: field 'sentid' {sentid} repeats "
                                     f"{first_of_sentid[sentid]}")
                first_of_sentid[sentid] = f"images[{i}].sentences[{s}]"
                own_sentids.append(sentid)
            captions.append(caption)
            tokens.append(toks)
            owner.append(i)
        if (sentids is not None and len(own_sentids) == len(sentences)
                and sorted(sentids) != sorted(own_sentids)):
            raise InputError(f"{where}: field 'sentids' {_short(sentids)} does not match "
                             f"the sentences' sentid {_short(own_sentids)}")
        extras.append({k: v for k, v in entry.items() if k not in core})
    labels = class_names = audio_paths = image_ids = None
    if all(_is(e.get("class_id"), int) and e["class_id"] >= 0 for e in extras):
        labels = np.asarray([e["class_id"] for e in extras], dtype=np.int64)
        class_names = _class_names(path.parent / "classes.txt", int(labels.max()) + 1)
    if all(isinstance(e.get("audio"), str) and e["audio"] for e in extras):
        audio_paths = []
        for i, e in enumerate(extras):
            parts = _relative(e["audio"], "audio", f"{path}: images[{i}]", is_file=True)
            audio_paths.append(path.parent.joinpath(*parts))
    if first_of_cocoid and len(first_of_cocoid) == len(entries):
        image_ids = np.asarray([entries[i]["cocoid"] for i in range(len(entries))], np.int64)
    return RetrievalDataset(name=name, image_paths=paths, split=np.asarray(splits),
                            captions=captions, tokens=tokens,
                            caption_image=np.asarray(owner, dtype=np.int64), extras=extras,
                            labels=labels, class_names=class_names, audio_paths=audio_paths,
                            image_ids=image_ids)


def _class_names(path: Path, n: int) -> list[str] | None:
    """Class names from a CUB-style ``classes.txt`` (``1 001.Name``), or None when the file
    is absent or does not name the ``n`` classes the labels need."""
    if not path.is_file():
        return None
    names = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split(maxsplit=1)
        if len(parts) == 2 and parts[0].isdigit():
            names[int(parts[0]) - 1] = parts[1].split(".", 1)[-1]
    if not all(k in names for k in range(max(n, len(names)))):
        return None
    return [names[k] for k in range(len(names))]
