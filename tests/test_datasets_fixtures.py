"""Fixture builders: tiny copies of every real dataset's on-disk format, quirks included
(see /work/shared/reference/dataset-formats.md), filled with a small world's images and
captions so that what a loader reads can be checked against what was written.
Imported by the dataset, demo and CLIP tests; holds no tests itself."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image

from mmkit.data import World

BOGUS_FLICKR8K = "2258277193_586949ec62.jpg.1"


def save_jpg(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format="JPEG", quality=95)


def flickr_name(i: int) -> str:
    return f"{1000268201 + 7919 * i}_{(i * 2654435761) % 16**10:010x}.jpg"


def build_flickr8k(root: Path, world: World, kaggle: bool = False, audio: bool = False) -> Path:
    """Flickr8K: ``Flicker8k_Dataset/`` + ``Flickr8k.token.txt`` (with the bogus ``.jpg.1``
    entry) + split lists (the world's unseen images are in no list, as Flickr8K's 91 are);
    or the Kaggle ``Images/`` + ``captions.txt``; optionally ``flickr_audio/``."""
    root.mkdir(parents=True, exist_ok=True)
    names = [flickr_name(i) for i in range(len(world))]
    folder = root / ("Images" if kaggle else "Flicker8k_Dataset")
    for i, name in enumerate(names):
        save_jpg(folder / name, world.images[i])
    if kaggle:
        lines = ["image,caption"]
        for i, name in enumerate(names):
            lines += [f"{name},{world.captions[j]}, really" for j in world.captions_of(i)]
        (root / "captions.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    else:
        lines = []
        for i, name in enumerate(names):
            lines += [f"{name}#{k}\t{world.captions[j]}" for k, j in enumerate(world.captions_of(i))]
            if i == 2:
                lines += [f"{BOGUS_FLICKR8K}#{k}\tA dog runs ." for k in range(5)]
        (root / "Flickr8k.token.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        for split, fname in (("train", "train"), ("val", "dev"), ("test", "test")):
            listed = [names[i] for i in world.indices(split)]
            (root / f"Flickr_8k.{fname}Images.txt").write_text("\n".join(listed) + "\n")
    if audio:
        wav_dir = root / "flickr_audio" / "wavs"
        wav_dir.mkdir(parents=True)
        capt, spk = [], []
        for i, name in enumerate(names):
            stem = name[:-4]
            for k, j in enumerate(world.captions_of(i)):
                wav = f"{stem}_{k}.wav"
                sf.write(wav_dir / wav, world.speech(j, sr=16000), 16000, subtype="PCM_16")
                capt.append(f"{wav} {name} #{k}")
                spk.append(f"{wav} {world.speaker_of(j)}")
        capt.append(f"{BOGUS_FLICKR8K[:-6]}_9.wav {BOGUS_FLICKR8K} #0")   # a caption with no image
        (root / "flickr_audio" / "wav2capt.txt").write_text("\n".join(capt) + "\n")
        (root / "flickr_audio" / "wav2spk.txt").write_text("\n".join(spk) + "\n")
    return root


def build_flickr30k(root: Path, world: World, form: str = "token") -> Path:
    """Flickr30K: ``flickr30k-images/`` and ``results_20130124.token`` (blank lines; image 1
    has 12 captions, so caption numbers reach two digits) or the pipe-separated
    ``results.csv`` (with one broken row), or ``dataset_flickr30k.json``."""
    root.mkdir(parents=True, exist_ok=True)
    names = [f"{1000092795 + 13 * i}.jpg" for i in range(len(world))]
    for i, name in enumerate(names):
        save_jpg(root / "flickr30k-images" / name, world.images[i])
    groups = [[world.captions[j] for j in world.captions_of(i)] for i in range(len(world))]
    groups[1] = groups[1] + [f"extra caption {k}" for k in range(7)]
    if form == "token":
        lines = []
        for name, caps in zip(names, groups):
            lines += [f"{name}#{k}\t{c}" for k, c in enumerate(caps)] + [""]
        (root / "results_20130124.token").write_text("\n".join(lines), encoding="utf-8")
    elif form == "csv":
        lines = ["image_name| comment_number| comment"]
        for i, (name, caps) in enumerate(zip(names, groups)):
            for k, c in enumerate(caps):
                lines.append(f"{name}| {k}   {c}" if (i, k) == (3, 4) else f"{name}| {k}| {c}")
        (root / "results.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    else:
        images = [{"filename": name, "imgid": i, "split": str(world.split[i]).replace("unseen", "val"),
                   "sentences": [{"raw": c + " ", "tokens": c.lower().split()} for c in caps]}
                  for i, (name, caps) in enumerate(zip(names, groups))]
        (root / "dataset_flickr30k.json").write_text(json.dumps({"dataset": "flickr30k",
                                                                  "images": images}))
    return root


def coco_ids(n: int) -> list[int]:
    """Non-contiguous, non-sorted COCO-like ids."""
    return [391895 - 4099 * i if i % 2 else 9 + 7919 * i for i in range(n)]


def build_coco(root: Path, world: World, year: int = 2017, karpathy: bool = False) -> Path:
    """MS-COCO: ``annotations/captions_{train,val}YEAR.json`` (ids not contiguous, 5-7
    captions, some ending in spaces or a newline, annotations not grouped by image) and the
    images; with ``karpathy``, ``dataset_coco.json`` using 2014 names while the images sit in
    2017 folders."""
    ids = coco_ids(len(world))
    split_of = ["val" if s in ("test", "unseen") else "train" for s in world.split]
    per = {"train": ([], []), "val": ([], [])}
    ann_id = 100
    for i, cocoid in enumerate(ids):
        s = split_of[i]
        name = (f"{cocoid:012d}.jpg" if year == 2017 else f"COCO_{s}{year}_{cocoid:012d}.jpg")
        save_jpg(root / f"{s}{year}" / name, world.images[i])
        per[s][0].append({"id": cocoid, "file_name": name, "height": 64, "width": 64,
                          "license": 1})
        caps = [world.captions[j] for j in world.captions_of(i)]
        caps += [f"an extra caption {k} of image {i}" for k in range(i % 3)]   # 5 to 7
        for k, c in enumerate(caps):
            ending = [" ", "\n", "", "  "][(i + k) % 4]
            per[s][1].append({"image_id": cocoid, "id": ann_id, "caption": c + ending})
            ann_id += 3
    for s, (images, anns) in per.items():
        # not grouped by image (round robin: every image's caption 0, then caption 1, ...),
        # each image's captions still in their order
        rank = {}
        for a in anns:
            rank[id(a)] = sum(1 for b in anns[:anns.index(a)] if b["image_id"] == a["image_id"])
        anns = sorted(anns, key=lambda a: rank[id(a)])
        path = root / "annotations" / f"captions_{s}{year}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"info": {}, "images": images, "annotations": anns},
                                   ensure_ascii=False), encoding="utf-8")
    if karpathy:
        images = []
        for i, cocoid in enumerate(ids):
            folder = f"{split_of[i]}2014"
            images.append({"filepath": folder, "filename": f"COCO_{folder}_{cocoid:012d}.jpg",
                           "imgid": i, "cocoid": cocoid,
                           "split": {"unseen": "val"}.get(str(world.split[i]), str(world.split[i])),
                           "sentences": [{"raw": world.captions[j]} for j in world.captions_of(i)]})
        (root / "dataset_coco.json").write_text(json.dumps({"dataset": "coco", "images": images}))
    return root


def build_cub(root: Path, world: World, captions: bool = True) -> Path:
    """CUB-200-2011 under ``root/CUB_200_2011`` with the world's classes as bird classes:
    images.txt, classes.txt, labels, official split, boxes, attributes (one row with an extra
    field), ``attributes.txt`` next to the folder, and Reed's ``text_c10`` (one file with an
    invalid UTF-8 byte, one with 3 lines, a .t7 file to ignore)."""
    cub = root / "CUB_200_2011"
    used = sorted(set(int(c) for c in world.labels))
    class_of = {c: k + 1 for k, c in enumerate(used)}
    folders = {c: f"{class_of[c]:03d}.{world.class_names[c].title().replace(' ', '_')}"
               for c in used}
    lines = {k: [] for k in ("images", "labels", "split", "boxes", "attr")}
    for i in range(len(world)):
        c = int(world.labels[i])
        rel = f"{folders[c]}/{folders[c][4:]}_{i:04d}_{17 + i}.jpg"
        save_jpg(cub / "images" / rel, world.images[i])
        image_id = i + 1
        lines["images"].append(f"{image_id} {rel}")
        lines["labels"].append(f"{image_id} {class_of[c]}")
        lines["split"].append(f"{image_id} {int(world.split[i] == 'train')}")
        lines["boxes"].append(f"{image_id} {i % 7}.0 {2.5 + i % 3} {30.0 + i % 5} 28.5")
        for a in range(len(world.attribute_names)):
            present = int(world.attributes[i, a])
            row = f"{image_id} {a + 1} {present} {4 if present else 1 + (i + a) % 3} 3.1"
            if i == 1 and a == 2:
                row += " 0"                                   # the rows with an extra field
            lines["attr"].append(row)
        if captions:
            text = "\n".join(world.captions[j].lower() for j in world.captions_of(i))
            data = (text + "\n" + text + "\n").encode()
            if i == 0:
                data = data.replace(b" ", b" \xff", 1)        # an invalid UTF-8 byte
            if i == 3:
                data = b"\n".join(data.split(b"\n")[:3]) + b"\n"   # a short file
            path = root / "text_c10" / folders[c] / f"{Path(rel).stem}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            path.with_suffix(".t7").write_bytes(b"\x00torch7")
    files = {"images.txt": "images", "image_class_labels.txt": "labels",
             "train_test_split.txt": "split", "bounding_boxes.txt": "boxes"}
    for name, key in files.items():
        (cub / name).write_text("\n".join(lines[key]) + "\n")
    (cub / "classes.txt").write_text("".join(f"{class_of[c]} {folders[c]}\n" for c in used))
    (cub / "attributes").mkdir()
    (cub / "attributes" / "image_attribute_labels.txt").write_text("\n".join(lines["attr"]) + "\n")
    (root / "attributes.txt").write_text("".join(f"{a + 1} {n}\n" for a, n in
                                                 enumerate(world.attribute_names)))
    return root


def build_spokencoco(root: Path, world: World, images: int = 4) -> Path:
    """SpokenCOCO: ``SpokenCOCO_val.json`` + ``wavs/val/0/*.wav`` for the first images."""
    data = []
    for i in range(images):
        cocoid = coco_ids(images)[i]
        caps = []
        for k, j in enumerate(world.captions_of(i)):
            wav = f"wavs/val/0/{'m' if k % 2 else 'f'}{k}-{cocoid}_{j}.wav"
            (root / wav).parent.mkdir(parents=True, exist_ok=True)
            sf.write(root / wav, world.speech(j, sr=16000), 16000, subtype="PCM_16")
            caps.append({"text": world.captions[j].upper().replace(".", "").replace(",", ""),
                         "speaker": f"spk{k}", "uttid": f"{cocoid}_{j}", "wav": wav})
        image = f"val2014/COCO_val2014_{cocoid:012d}.jpg"
        save_jpg(root / image, world.images[i])
        data.append({"image": image, "captions": caps})
    (root / "SpokenCOCO_val.json").write_text(json.dumps({"data": data}))
    return root
