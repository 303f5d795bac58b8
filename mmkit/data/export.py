"""Write a world to disk in the Karpathy split format (as Flickr30K and COCO are shipped).

Layout of the output folder::

    dataset_world.json   Karpathy format: images, sentences (tokens + raw), splits
    images/000000.png    RGB images
    audio/000000.wav     the scene's sound clip (16-bit PCM)
    speech/000000_0.wav  spoken captions (only with ``speech=True``)
    attributes.csv       class, split, style, sign word and the main object's attributes
    classes.txt          CUB-style class list: "1 001.Red_Striped_Circle"
    world.json           the generator's settings and a summary

The folder appears all at once: everything is written to a temporary sibling, then renamed.
"""
from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import numpy as np

from mmkit._io import atomic_dir, check_writable_dir, remove_stale_temporaries
from mmkit.data import vocab as V
from mmkit.data.captions import tokenize
from mmkit.data.world import World

FORMAT_VERSION = 1


def check_output_dir(out: str | os.PathLike) -> Path:
    """Refuse an output folder that exists and is not empty, or that cannot be created
    (one-line :class:`~mmkit.errors.InputError`; nothing is left behind by the check)."""
    return check_writable_dir(out, must_be_empty=True)


def karpathy_json(world: World) -> dict:
    """The world as a Karpathy-split dict (``dataset_*.json`` layout)."""
    per = world.config.captions_per_image
    images = []
    for i in range(len(world)):
        sentences = []
        for j in world.captions_of(i):
            raw = world.captions[j]
            sentences.append({"tokens": tokenize(raw), "raw": raw, "imgid": i, "sentid": j})
        images.append({
            "filename": f"{i:06d}.png", "filepath": "images", "imgid": i,
            "split": str(world.split[i]), "sentids": list(range(i * per, (i + 1) * per)),
            "sentences": sentences,
            # world extras (ignored by Karpathy readers)
            "class_id": int(world.labels[i]), "audio": f"audio/{i:06d}.wav",
        })
    return {"dataset": "world", "images": images}


def attributes_rows(world: World) -> tuple[list[str], list[list]]:
    """Header and rows of ``attributes.csv``."""
    header = ["imgid", "filename", "class_id", "class_name", "split", "style", "sign_word",
              "n_objects"] + world.attribute_names
    attrs = world.attributes
    rows = []
    for i in range(len(world)):
        word = int(world.words[i])
        rows.append([i, f"{i:06d}.png", int(world.labels[i]), V.CLASSES[int(world.labels[i])].name,
                     str(world.split[i]), V.STYLES[int(world.styles[i])],
                     V.SIGN_WORDS[word] if word >= 0 else "", int(world.n_objects[i])]
                    + [int(v) for v in attrs[i]])
    return header, rows


def _png_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def _wav_bytes(clip: np.ndarray, sr: int) -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.clip(clip, -1, 1), sr, subtype="PCM_16", format="WAV")
    return buf.getvalue()


def export_world(world: World, out: str | os.PathLike, speech: bool = False,
                 progress: bool = True) -> Path:
    """Write ``world`` to the folder ``out`` (must be new or empty); returns its path.

    Leftovers of an earlier export to ``out`` that was killed (hidden ``.NAME.PID.*.tmp``
    siblings whose process is gone) are removed first, and reported on stderr.
    """
    import sys

    from tqdm.auto import tqdm

    out = check_output_dir(out)
    for stale in remove_stale_temporaries(out):
        print(f"removed {stale.name}, left by an interrupted export", file=sys.stderr)
    with atomic_dir(out) as tmp:
        (tmp / "images").mkdir()
        (tmp / "audio").mkdir()
        sr = world.config.sample_rate
        for i in tqdm(range(len(world)), desc="write images+audio", disable=not progress):
            (tmp / "images" / f"{i:06d}.png").write_bytes(_png_bytes(world.images[i]))
            (tmp / "audio" / f"{i:06d}.wav").write_bytes(_wav_bytes(world.audio[i], sr))
        if speech:
            (tmp / "speech").mkdir()
            for j in tqdm(range(len(world.captions)), desc="speak captions", disable=not progress):
                i, c = divmod(j, world.config.captions_per_image)
                (tmp / "speech" / f"{i:06d}_{c}.wav").write_bytes(_wav_bytes(world.speech(j), sr))
        (tmp / "dataset_world.json").write_text(json.dumps(karpathy_json(world)), encoding="utf-8")
        header, rows = attributes_rows(world)
        with open(tmp / "attributes.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(rows)
        (tmp / "classes.txt").write_text(
            "".join(f"{c.index + 1} {c.folder}\n" for c in V.CLASSES), encoding="utf-8")
        meta = {"format_version": FORMAT_VERSION, "config": world.config.to_dict(),
                "summary": world.summary(), "speech": speech,
                "unseen_classes": [int(c) for c in world.unseen_classes]}
        (tmp / "world.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return out
