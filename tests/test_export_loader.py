"""`mmkit world` export, the Karpathy loader (world, COCO and Flickr30K layouts), bad input."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from mmkit.cli import main
from mmkit.data import World
from mmkit.data.karpathy import load_karpathy
from mmkit.errors import InputError


def _tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.mark.slow
def test_world_export_round_trip(tmp_path):
    out = tmp_path / "w"
    assert main(["world", "--out", str(out), "--n", "24", "--seed", "7", "-q"]) == 0
    world = World(n=24, seed=7)
    ds = load_karpathy(out / "dataset_world.json")
    assert ds.name == "world" and len(ds) == 24
    assert ds.captions == world.captions
    assert np.array_equal(ds.caption_image, world.caption_image)
    assert list(ds.split) == list(world.split)
    for i in (0, 5, 23):
        assert np.array_equal(ds.load_image(i), world.images[i])
        clip, sr = sf.read(out / ds.extras[i]["audio"], dtype="float32")
        assert sr == 16000 and np.abs(clip - world.audio[i]).max() < 1e-4
        assert ds.extras[i]["class_id"] == int(world.labels[i])
    with open(out / "attributes.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 24 and int(rows[3]["class_id"]) == int(world.labels[3])
    assert sum(int(rows[3][n]) for n in world.attribute_names) == 5
    classes = (out / "classes.txt").read_text().splitlines()
    assert len(classes) == 64 and classes[0].startswith("1 001.")
    meta = json.loads((out / "world.json").read_text())
    assert meta["config"]["seed"] == 7 and meta["summary"]["n_images"] == 24


@pytest.mark.slow
@pytest.mark.subprocess
def test_export_is_byte_identical_across_processes(tmp_path):
    code = ("import sys; from mmkit.cli import main; "
            "sys.exit(main(['world','--out',sys.argv[1],'--n','12','--seed','3','-q']))")
    for name in ("a", "b"):
        subprocess.run([sys.executable, "-c", code, str(tmp_path / name)], check=True)
    assert _tree_hash(tmp_path / "a") == _tree_hash(tmp_path / "b")


def _run_cli(args, capsys):
    code = main(args)
    err = capsys.readouterr().err.strip()
    return code, err


@pytest.mark.parametrize("extra, message", [
    (["--n", "0"], "positive integer"), (["--n", "-4"], "positive integer"),
    (["--n", "ten"], "not an integer"), (["--bogus"], "unrecognized arguments"),
])
def test_world_bad_options(tmp_path, capsys, extra, message):
    out = tmp_path / "o"
    with pytest.raises(SystemExit) as info:
        main(["world", "--out", str(out)] + extra)
    err = capsys.readouterr().err.strip()
    assert info.value.code == 2 and message in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_world_refuses_non_empty_or_unwritable_out(tmp_path, capsys):
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    code, err = _run_cli(["world", "--out", str(full), "--n", "3"], capsys)
    assert code == 2 and "not empty" in err and len(err.splitlines()) == 1
    assert [p.name for p in full.iterdir()] == ["keep.txt"]
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    code, err = _run_cli(["world", "--out", str(a_file / "sub"), "--n", "3"], capsys)
    assert code == 2 and "not a folder" in err
    code, err = _run_cli(["world", "--out", "/proc/mmkit-test/out", "--n", "3"], capsys)
    assert code == 2 and "cannot write" in err


def test_failed_export_leaves_nothing(tmp_path, monkeypatch):
    from mmkit.data import export

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(export, "attributes_rows", boom)
    with pytest.raises(RuntimeError):
        export.export_world(World(n=4, seed=0), tmp_path / "w", progress=False)
    assert list(tmp_path.iterdir()) == []


# --- real dataset layouts -------------------------------------------------------------------
def _png(path: Path, colour) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (20, 16), colour).save(path)


def test_karpathy_coco_layout(tmp_path):
    data = {"dataset": "coco", "images": [
        {"filepath": "val2014", "filename": "COCO_val2014_000000391895.jpg", "imgid": 0,
         "split": "test", "cocoid": 391895, "sentids": [0, 1],
         "sentences": [{"tokens": ["a", "man"], "raw": "A man riding a bike. ", "imgid": 0,
                        "sentid": 0},
                       {"tokens": ["a", "bike"], "raw": "A bike\n", "imgid": 0, "sentid": 1}]},
        {"filepath": "train2014", "filename": "COCO_train2014_000000000009.jpg", "imgid": 1,
         "split": "restval", "cocoid": 9, "sentids": [2],
         "sentences": [{"tokens": ["food"], "raw": "Food.", "imgid": 1, "sentid": 2}]},
    ]}
    (tmp_path / "dataset_coco.json").write_text(json.dumps(data), encoding="utf-8")
    _png(tmp_path / "val2014" / "COCO_val2014_000000391895.jpg", (200, 10, 10))
    ds = load_karpathy(tmp_path / "dataset_coco.json")
    assert ds.captions == ["A man riding a bike.", "A bike", "Food."]
    assert list(ds.indices("train")) == [1] and list(ds.indices("train", merge_restval=False)) == []
    assert ds.load_image(0).shape == (16, 20, 3)
    assert ds.extras[0] == {}
    with pytest.raises(InputError, match="image file not found"):
        ds.load_image(1)


def test_karpathy_flickr_layout_and_caption_cap(tmp_path):
    sentences = [{"tokens": [f"w{k}"], "raw": f"caption {k}", "imgid": 0, "sentid": k}
                 for k in range(7)]
    data = {"dataset": "flickr30k", "images": [
        {"filename": "1000092795.jpg", "imgid": 0, "split": "train", "sentids": list(range(7)),
         "sentences": sentences}]}
    (tmp_path / "dataset_flickr30k.json").write_text(json.dumps(data))
    _png(tmp_path / "flickr30k-images" / "1000092795.jpg", (0, 0, 255))
    ds = load_karpathy(tmp_path / "dataset_flickr30k.json", image_root=tmp_path / "flickr30k-images")
    assert ds.load_image(0, size=8).shape == (8, 8, 3)
    assert list(ds.caption_indices(np.array([0]))) == [0, 1, 2, 3, 4]
    assert len(ds.caption_indices(np.array([0]), first=None)) == 7


@pytest.mark.parametrize("content, message", [
    ("{not json", "invalid JSON"),
    ('{"images": [{"filename": "a.jpg", "split": "train"}]}', "images[0]: missing field 'sentences'"),
    ('{"images": [{"filename": "a.jpg", "split": "dev", "sentences": []}]}', "unknown split 'dev'"),
    ('{"images": [{"filename": 3, "split": "train", "sentences": []}]}', "field 'filename' has type int"),
    ('{"images": [{"filename": "a", "split": "train", "sentences": [{"tokens": []}]}]}',
     "sentences[0]: missing field 'raw'"),
    ("[1, 2]", "top level"),
])
def test_karpathy_bad_files(tmp_path, content, message):
    path = tmp_path / "dataset_x.json"
    path.write_text(content)
    with pytest.raises(InputError) as info:
        load_karpathy(path)
    assert message in str(info.value) and str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_karpathy_missing_file(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        load_karpathy(tmp_path / "nope.json")
