"""Loaders of the real datasets, on fixtures in their exact on-disk formats (quirks included):
what is read equals what was written (a world's images and captions), every quirk is
repaired and counted or refused in one line naming file, line and field."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from test_datasets_fixtures import (BOGUS_FLICKR8K, build_coco, build_cub, build_flickr8k,
                                    build_flickr30k, build_spokencoco, coco_ids, flickr_name)

from mmkit.data import World
from mmkit.data.coco import load_coco, load_coco_captions, load_coco_karpathy
from mmkit.data.cub import load_cub
from mmkit.data.dataset import RetrievalDataset
from mmkit.data.flickr import load_flickr8k, load_flickr30k
from mmkit.data.karpathy import CaptionDataset, load_karpathy
from mmkit.data.spoken import load_flickr8k_audio, load_spokencoco
from mmkit.errors import InputError


@pytest.fixture(scope="module")
def world():
    return World(n=24, seed=3)


def one_line(call, *words):
    with pytest.raises(InputError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message, message
    for w in words:
        assert w in message, message
    return message


def same_pixels(a, b, tol=12):
    """JPEG at quality 95: close, not equal."""
    return np.abs(a.astype(int) - b.astype(int)).mean() < tol


# ----------------------------------------------------------------------------- Flickr8K
def test_flickr8k_token_file_bogus_entry_and_split_lists(tmp_path, world):
    ds = load_flickr8k(build_flickr8k(tmp_path, world))
    assert isinstance(ds, RetrievalDataset) and ds.name == "flickr8k" and len(ds) == len(world)
    assert ds.captions == world.captions                       # bogus entry not among them
    assert BOGUS_FLICKR8K not in [p.name for p in ds.image_paths]
    bogus = [r for r in ds.repairs if r.kind == "entry without image dropped"]
    assert len(bogus) == 5 and all(r.file.endswith("Flickr8k.token.txt") for r in bogus)
    assert [r.line for r in bogus] == list(range(16, 21))      # after image 2's 5 lines
    expect = {"train": "train", "val": "val", "test": "test", "unseen": ""}
    assert list(ds.split) == [expect[s] for s in world.split]
    unlisted = [r for r in ds.repairs if r.kind == "image in no split list"]
    assert len(unlisted) == int((world.split == "unseen").sum())
    assert "repairs" in ds.repair_summary() and "\n" not in ds.repair_summary()
    assert same_pixels(ds.load_image(5), world.images[5])
    assert ds.directions == ("text->image", "image->text")     # no labels, no audio


def test_flickr8k_kaggle_captions_split_on_first_comma(tmp_path, world):
    ds = load_flickr8k(build_flickr8k(tmp_path, world, kaggle=True))
    assert ds.captions == [c + ", really" for c in world.captions]
    assert ds.image_paths[0] == tmp_path / "Images" / flickr_name(0)
    assert set(ds.split) == {""}                                # the repack has no split lists


def test_flickr8k_split_list_naming_unknown_image(tmp_path, world):
    root = build_flickr8k(tmp_path, world)
    with open(root / "Flickr_8k.testImages.txt", "a") as f:
        f.write("404_nope.jpg\n")
    n = len(world.indices("test")) + 1
    one_line(lambda: load_flickr8k(root), "Flickr_8k.testImages.txt", f":{n}:", "404_nope.jpg")


def test_flickr8k_audio_uses_wav2capt_not_the_wav_name(tmp_path):
    world = World(n=6, seed=4)
    root = build_flickr8k(tmp_path, world, audio=True)
    table = root / "flickr_audio" / "wav2capt.txt"
    lines = table.read_text().splitlines()
    # swap two recordings' names: the mapping file, not the wav name, says which caption
    a, b = lines[0].split(), lines[1].split()
    lines[0], lines[1] = f"{b[0]} {a[1]} {a[2]}", f"{a[0]} {b[1]} {b[2]}"
    table.write_text("\n".join(lines) + "\n")
    ds = load_flickr8k_audio(load_flickr8k(root), root / "flickr_audio")
    assert ds.speech_paths[0].name == b[0] and ds.speech_paths[1].name == a[0]
    assert "speech" in ds.modalities and "speech->image" in ds.directions
    assert [r.kind for r in ds.repairs].count("recording of an unknown caption not attached") == 1
    clip = ds.speech(2)
    assert clip.dtype == np.float32 and np.abs(clip - world.speech(2)).max() < 1e-3
    assert ds.extras[0]["speakers"][2] == str(world.speaker_of(2))
    table.write_text(lines[0] + " extra\n")
    one_line(lambda: load_flickr8k_audio(load_flickr8k(root), root / "flickr_audio"),
             "wav2capt.txt:1", "3 fields")


# ----------------------------------------------------------------------------- Flickr30K
def test_flickr30k_token_file_two_digit_numbers_and_blank_lines(tmp_path, world):
    ds = load_flickr30k(build_flickr30k(tmp_path, world, "token"))
    assert len(ds) == len(world)
    assert len(ds.captions_of(1)) == 12 and ds.caption_ids[ds.captions_of(1)[-1]] == 11
    kept = ds.caption_indices(np.array([1]))
    assert [ds.captions[j] for j in kept] == [world.captions[j] for j in world.captions_of(1)]
    assert [r.kind for r in ds.repairs] == ["blank line skipped"] * (len(world) - 1)
    assert set(ds.split) == {""}


def test_flickr30k_results_csv_broken_row(tmp_path, world):
    ds = load_flickr30k(build_flickr30k(tmp_path, world, "csv"))
    assert ds.captions_of(3)[4] is not None
    assert ds.captions[ds.captions_of(3)[4]] == world.captions[world.captions_of(3)[4]]
    (broken,) = ds.repairs
    assert broken.kind == "broken row split" and broken.field == "comment_number"
    assert broken.line == 2 + 5 + 12 + 5 + 4       # header, images 0-2, then row 4 of image 3


def test_flickr30k_karpathy_file_gives_the_split(tmp_path, world):
    ds = load_flickr30k(build_flickr30k(tmp_path, world, "karpathy"))
    assert ds.name == "flickr30k" and set(ds.split) <= {"train", "val", "test"}
    assert ds.image_paths[0].parent.name == "flickr30k-images"
    assert ds.captions[0] == world.captions[0]                 # the trailing space stripped


@pytest.mark.parametrize("line, words", [
    ("1000092795.jpg#0 no tab here", [":2:", "no tab"]),
    ("1000092795.jpg\tno number", [":2:", "'#'"]),
    ("1000092795.jpg#x\tbad number", [":2:", "'x'"]),
    ("1000092795.jpg#1\t   ", [":2:", "caption is empty"]),
])
def test_token_file_errors(tmp_path, line, words):
    (tmp_path / "results_20130124.token").write_text(f"1000092795.jpg#0\tTwo dogs .\n{line}\n")
    one_line(lambda: load_flickr30k(tmp_path), "results_20130124.token", *words)


def test_token_file_repeated_caption_number(tmp_path):
    (tmp_path / "results_20130124.token").write_text("a.jpg#0\tone\n\na.jpg#0\ttwo\n")
    one_line(lambda: load_flickr30k(tmp_path), ":3:", "caption number 0", "line 1")


def test_missing_files_are_named(tmp_path):
    one_line(lambda: load_flickr30k(tmp_path), "dataset_flickr30k.json", "not found")
    one_line(lambda: load_flickr8k(tmp_path), "Flickr8k.token.txt", "not found")
    one_line(lambda: load_cub(tmp_path), "images.txt", "not found")
    one_line(lambda: load_coco(tmp_path), "captions_val2017.json", "not found")


# ----------------------------------------------------------------------------- MS-COCO
@pytest.mark.parametrize("year", [2017, 2014])
def test_coco_captions_files(tmp_path, world, year):
    ds = load_coco(build_coco(tmp_path, world, year=year))
    ids = coco_ids(len(world))
    val = [i for i, s in enumerate(world.split) if s in ("test", "unseen")]
    train = [i for i in range(len(world)) if i not in val]
    order = train + val
    assert list(ds.image_ids) == [ids[i] for i in order]
    assert list(ds.split) == ["train"] * len(train) + ["val"] * len(val)
    for r, i in enumerate(order):
        caps = [ds.captions[j] for j in ds.captions_of(r)]
        assert len(caps) == 5 + i % 3                             # 5 to 7, all read
        kept = [ds.captions[j] for j in ds.caption_indices(np.array([r]))]
        assert kept == [world.captions[j] for j in world.captions_of(i)]   # first 5, stripped
    name = ds.image_paths[0].name
    assert name == (f"{ids[0]:012d}.jpg" if year == 2017 else f"COCO_train2014_{ids[0]:012d}.jpg")
    assert same_pixels(ds.load_image(0), world.images[order[0]])


def test_coco_bad_files(tmp_path, world):
    root = build_coco(tmp_path, world)
    path = root / "annotations" / "captions_val2017.json"
    data = json.loads(path.read_text())
    data["annotations"][3]["image_id"] = 123456789
    path.write_text(json.dumps(data))
    one_line(lambda: load_coco_captions(path), "captions_val2017.json", "annotations[3]",
             "'image_id' 123456789")
    data["annotations"][3]["image_id"] = "7"
    path.write_text(json.dumps(data))
    one_line(lambda: load_coco_captions(path), "annotations[3]", "'image_id' has type str")
    path.write_bytes(b'{"images": [], "annotations": ["\xe9"]}')
    one_line(lambda: load_coco_captions(path), "not UTF-8")


def test_coco_karpathy_with_2017_folders(tmp_path, world):
    ds = load_coco_karpathy(build_coco(tmp_path, world, karpathy=True))
    ids = coco_ids(len(world))
    assert [p.name for p in ds.image_paths] == [f"{c:012d}.jpg" for c in ids]
    assert all(p.is_file() for p in ds.image_paths)
    assert list(ds.image_ids) == ids and ds.captions == world.captions
    assert len(ds.indices("test")) == int((world.split == "test").sum())


# ----------------------------------------------------------------------------- CUB
def test_cub_files_and_repairs(tmp_path, world):
    ds = load_cub(build_cub(tmp_path, world))
    used = sorted(set(int(c) for c in world.labels))
    assert list(ds.labels) == [used.index(int(c)) for c in world.labels]
    assert ds.class_names[0] == world.class_names[used[0]].title().replace(" ", "_")
    assert np.array_equal(ds.attributes, world.attributes)      # present with any certainty
    strict = load_cub(tmp_path, min_certainty=4)
    assert np.array_equal(strict.attributes, world.attributes)  # fixture: present = definitely
    assert ds.attribute_names == world.attribute_names
    assert ds.boxes.shape == (len(world), 4) and ds.boxes[3].tolist() == [3.0, 2.5, 33.0, 28.5]
    half = (len(used) + 1) // 2
    assert list(ds.split) == ["train" if ds.labels[i] < half else "test" for i in range(len(ds))]
    official = load_cub(tmp_path, split="official")
    assert list(official.split) == ["train" if s == "train" else "test" for s in world.split]
    kinds = sorted(r.kind for r in ds.repairs)
    assert kinds == ["extra field dropped", "invalid UTF-8 replaced", "short caption file"]
    assert "\ufffd" in ds.captions[0] and len(ds.captions_of(3)) == 3
    assert len(ds.captions_of(1)) == 10 and ds.captions_per_image == 10
    assert ds.directions == ("text->image", "image->text", "image->image")
    no_text = load_cub(tmp_path, captions=False)
    assert no_text.directions == ("image->image",)


def test_cub_errors_name_file_line_and_field(tmp_path, world):
    root = build_cub(tmp_path, world)
    labels = root / "CUB_200_2011" / "image_class_labels.txt"
    rows = labels.read_text().splitlines()
    labels.write_text("\n".join(rows[:4] + ["5 x"] + rows[5:]) + "\n")
    one_line(lambda: load_cub(root), "image_class_labels.txt:5", "'class_id'", "'x'")
    labels.write_text("\n".join(rows[:-1]) + "\n")
    one_line(lambda: load_cub(root), "image_class_labels.txt", f"image_id {len(world)}")
    labels.write_text("\n".join(rows) + "\n")
    attrs = root / "CUB_200_2011" / "attributes" / "image_attribute_labels.txt"
    attrs.write_text("1 1 1\n")
    one_line(lambda: load_cub(root), "image_attribute_labels.txt:1", "expected 4 fields")


# ----------------------------------------------------------------------------- SpokenCOCO
def test_spokencoco(tmp_path, world):
    ds = load_spokencoco(build_spokencoco(tmp_path, world, images=3))
    assert len(ds) == 3 and len(ds.captions) == 15 and set(ds.split) == {"val"}
    assert ds.captions[0] == ds.captions[0].upper()
    assert ds.directions == ("text->image", "image->text", "speech->image")
    assert np.abs(ds.speech(4) - world.speech(4)).max() < 1e-3
    assert same_pixels(ds.load_image(1), world.images[1])
    (tmp_path / "SpokenCOCO_val.json").write_text('{"data": [{"image": "a.jpg", "captions": []}]}')
    one_line(lambda: load_spokencoco(tmp_path), "SpokenCOCO_val.json", "data[0]", "'captions'")


# ----------------------------------------------------------------------------- the interface
def test_ground_truth_by_loops(tmp_path, world):
    """Binary relevance from the pairing and the labels, against plain loops."""
    ds = load_cub(build_cub(tmp_path, world))
    images = ds.indices("test")
    for name in ds.directions:
        rel, pos = ds.ground_truth(name, images)
        q, g = ds.direction_ids(name, images)
        for a, qi in enumerate(q):
            for b, gi in enumerate(g):
                if name == "text->image":
                    expect = ds.caption_image[qi] == gi
                elif name == "image->text":
                    expect = ds.caption_image[gi] == qi
                else:
                    expect = ds.labels[qi] == ds.labels[gi] and qi != gi
                assert pos[a, b] == expect and rel[a, b] == 3 * expect
    one_line(lambda: load_flickr30k(build_flickr30k(tmp_path / "f", world)).ground_truth(
        "image->image", np.arange(4)), "does not define image->image", "class labels")


def test_caption_indices_keep_the_first_five_in_image_order():
    ds = RetrievalDataset(name="t", image_paths=[f"{i}.jpg" for i in range(3)],
                          split=["test"] * 3, captions=[f"c{k}" for k in range(14)],
                          caption_image=[2, 0, 0, 2, 1, 0, 0, 0, 0, 0, 2, 1, 2, 2])
    got = ds.caption_indices(np.array([2, 0]))
    naive = [j for i in (2, 0) for j in [k for k in range(14) if ds.caption_image[k] == i][:5]]
    assert list(got) == naive
    assert list(ds.unit_ids("image", np.array([2, 0]))) == [2, 0]
    one_line(lambda: ds.unit_ids("audio", np.array([0])), "has no audio")


@pytest.mark.slow
def test_karpathy_loader_returns_the_one_dataset_type(tmp_path):
    out = tmp_path / "w"
    from mmkit.cli import main

    assert main(["world", "--out", str(out), "--n", "20", "--seed", "5", "-q"]) == 0
    world = World(n=20, seed=5)
    ds = load_karpathy(out / "dataset_world.json")
    assert CaptionDataset is RetrievalDataset and isinstance(ds, RetrievalDataset)
    assert np.array_equal(ds.labels, world.labels)
    assert ds.class_names == [c.folder.split(".", 1)[1] for c in world.classes]
    assert ds.directions == ("text->image", "image->text", "image->image", "audio->image")
    assert np.abs(ds.audio[np.array([0, 3])] - world.audio[[0, 3]]).max() < 1e-4
    assert np.array_equal(ds.images[np.array([4])][0], world.images[4])


def test_torch_dataset_and_item_access(tmp_path, world):
    torch = pytest.importorskip("torch")
    ds = load_flickr8k(build_flickr8k(tmp_path, world))
    item = ds[3]
    assert item["captions"] == [world.captions[j] for j in world.captions_of(3)]
    assert item["image"].shape == (64, 64, 3) and item["label"] == -1
    tds = ds.as_torch(ds.indices("test"), size=32)
    assert isinstance(tds, torch.utils.data.Dataset) and len(tds) == len(ds.indices("test"))
    x, ids = next(iter(torch.utils.data.DataLoader(tds, batch_size=4)))
    assert x.shape == (4, 3, 32, 32) and x.dtype == torch.float32 and 0 <= x.min() <= x.max() <= 1
    assert ids.tolist() == list(ds.indices("test")[:4])


@pytest.mark.subprocess
def test_data_loaders_import_no_model_code():
    code = ("import sys, mmkit.data, mmkit.data.dataset, mmkit.data.coco, mmkit.data.flickr, "
            "mmkit.data.cub, mmkit.data.spoken, mmkit.data.karpathy; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision', "
            "'transformers') or m.startswith(('mmkit.features', 'mmkit.encoders', "
            "'mmkit.methods'))]; print(bad); sys.exit(bool(bad))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
