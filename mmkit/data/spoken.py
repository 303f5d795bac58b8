"""Spoken captions: the Flickr8K Audio Caption Corpus and SpokenCOCO.

Layouts (see ``data/README.md``)::

    Flickr8K audio  ROOT/flickr_audio/wav2capt.txt   1000268201_693b08cb0e_0.wav 1000268201_693b08cb0e.jpg #0
                    ROOT/flickr_audio/wav2spk.txt    1000268201_693b08cb0e_0.wav 1
                    ROOT/flickr_audio/wavs/1000268201_693b08cb0e_0.wav
    SpokenCOCO      ROOT/SpokenCOCO_{train,val}.json   {"data": [{"image": "val2014/COCO_val2014_...jpg",
                        "captions": [{"text", "speaker", "uttid", "wav": "wavs/val/0/....wav"}]}]}

``wav2capt.txt`` is what maps a recording to its caption (image name and caption number); the
wav's own name is not used for that. SpokenCOCO follows COCO-2014 train / val, not the Karpathy
splits.

A ``wav2capt.txt`` line naming a caption the text files do not have (the Flickr8K token file's
bogus ``...jpg.1`` entry has no image, so its recordings have no caption left) is a documented
repair: the recording is not attached, and the repair is recorded in ``dataset.repairs``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mmkit.data.dataset import Repair, RetrievalDataset, read_text_lines, require_file
from mmkit.errors import InputError


def read_wav2capt(path: str | Path) -> list[tuple[int, str, str, int]]:
    """Rows ``(line, wav name, image name, caption number)`` of ``wav2capt.txt``."""
    path = Path(path)
    rows = []
    for line_no, line in enumerate(read_text_lines(path, "Flickr8K audio wav2capt.txt"), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 3:
            raise InputError(f"{path}:{line_no}: expected 3 fields '<wav> <image.jpg> #<k>', "
                             f"got {len(fields)}")
        wav, image, number = fields
        if not number.startswith("#") or not number[1:].isdigit():
            raise InputError(f"{path}:{line_no}: field 'caption number' must be '#<k>', "
                             f"got {number!r}")
        rows.append((line_no, wav, image, int(number[1:])))
    return rows


def read_wav2spk(path: str | Path) -> dict[str, str]:
    """``{wav name: speaker}`` from ``wav2spk.txt``."""
    path = Path(path)
    out = {}
    for line_no, line in enumerate(read_text_lines(path, "Flickr8K audio wav2spk.txt"), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2:
            raise InputError(f"{path}:{line_no}: expected '<wav> <speaker>', got {len(fields)} fields")
        out[fields[0]] = fields[1]
    return out


def load_flickr8k_audio(dataset: RetrievalDataset, audio_root: str | Path) -> RetrievalDataset:
    """Attach the Flickr8K Audio Caption Corpus under ``audio_root`` (the ``flickr_audio``
    folder) to a Flickr8K ``dataset``: sets ``dataset.speech_paths`` (one path or ``None``
    per caption) and, with ``wav2spk.txt``, a ``speakers`` list in each image's extras.
    Returns the same dataset.

    Captions are matched by (image name, caption number): the caption's own ``#k`` where the
    loader kept it (:attr:`RetrievalDataset.caption_ids`), else its position among the image's
    captions.
    """
    audio_root = Path(audio_root)
    table = audio_root / "wav2capt.txt"
    rows = read_wav2capt(table)
    index: dict[tuple[str, int], int] = {}
    for i, path in enumerate(dataset.image_paths):
        caps = dataset.captions_of(i)
        for pos, j in enumerate(caps):
            number = dataset.caption_ids[j] if dataset.caption_ids is not None else pos
            index[(path.name, int(number))] = j
    speech: list[Path | None] = [None] * len(dataset.captions)
    line_of: dict[int, int] = {}
    speakers = read_wav2spk(audio_root / "wav2spk.txt") if (audio_root / "wav2spk.txt").is_file() else {}
    for line_no, wav, image, number in rows:
        j = index.get((image, number))
        if j is None:
            dataset.repairs.append(Repair(str(table), line_no, "caption",
                                          "recording of an unknown caption not attached",
                                          f"{image} #{number} is not a caption of the dataset"))
            continue
        if j in line_of:
            raise InputError(f"{table}:{line_no}: {image} #{number} already has a recording "
                             f"(line {line_of[j]})")
        line_of[j] = line_no
        speech[j] = audio_root / "wavs" / wav
        if speakers:
            dataset.extras[int(dataset.caption_image[j])].setdefault("speakers", {})[number] = \
                speakers.get(wav, "")
    dataset.speech_paths = speech
    return dataset


def load_spokencoco(root: str | Path, image_root: str | Path | None = None,
                    splits: tuple[str, ...] = ("train", "val")) -> RetrievalDataset:
    """SpokenCOCO under ``root`` (``SpokenCOCO_{train,val}.json`` and ``wavs/``), as a dataset
    whose captions are the transcripts (upper case, no punctuation, as given) and whose
    ``speech_paths`` are the recordings. Images are ``image_root / entry["image"]`` (default:
    ``root``; point it at the COCO folder holding ``train2014/`` and ``val2014/``). Splits are
    the JSON files' (COCO-2014 train / val)."""
    root = Path(root)
    image_root = Path(image_root) if image_root is not None else root
    files = [(s, root / f"SpokenCOCO_{s}.json") for s in splits]
    present = [(s, f) for s, f in files if f.is_file()]
    if not present:
        require_file(files[-1][1], "SpokenCOCO JSON")
    paths, split, captions, owner, speech, ids = [], [], [], [], [], []
    for name, path in present:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON ({exc.msg})") from None
        except UnicodeDecodeError as exc:
            raise InputError(f"{path}: not UTF-8 ({exc.reason})") from None
        entries = data.get("data") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise InputError(f"{path}: top level must be an object with a 'data' list")
        for e, entry in enumerate(entries):
            where = f"{path}: data[{e}]"
            if not isinstance(entry, dict) or not isinstance(entry.get("image"), str):
                raise InputError(f"{where}: missing or non-string field 'image'")
            caps = entry.get("captions")
            if not isinstance(caps, list) or not caps:
                raise InputError(f"{where}: field 'captions' must be a non-empty list")
            i = len(paths)
            paths.append(image_root / entry["image"])
            split.append(name)
            for c, cap in enumerate(caps):
                cwhere = f"{where}.captions[{c}]"
                for key in ("text", "wav"):
                    if not isinstance(cap, dict) or not isinstance(cap.get(key), str) \
                            or not cap[key].strip():
                        raise InputError(f"{cwhere}: missing or empty field '{key}'")
                captions.append(cap["text"].strip())
                owner.append(i)
                speech.append(root / cap["wav"])
                ids.append(cap.get("uttid"))
    return RetrievalDataset(name="spokencoco", image_paths=paths, split=np.asarray(split),
                            captions=captions, caption_image=np.asarray(owner, np.int64),
                            speech_paths=speech, caption_ids=ids)
