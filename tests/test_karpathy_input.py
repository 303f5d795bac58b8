"""Bad input to the Karpathy loader: one-line InputError naming the file, the entry and the
field; and the valid variants (Flickr without filepath, null fields, extras) still load."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from mmkit.data.karpathy import load_karpathy
from mmkit.errors import InputError


def _base() -> dict:
    """A valid two-image COCO-style file."""
    return {"dataset": "coco", "images": [
        {"filepath": "val2014", "filename": "a.jpg", "imgid": 0, "cocoid": 10, "split": "test",
         "sentids": [0, 1],
         "sentences": [{"tokens": ["a", "cat"], "raw": "A cat.", "imgid": 0, "sentid": 0},
                       {"tokens": ["a", "dog"], "raw": "A dog ", "imgid": 0, "sentid": 1}]},
        {"filepath": "val2014", "filename": "b.jpg", "imgid": 1, "cocoid": 11, "split": "train",
         "sentids": [2],
         "sentences": [{"tokens": ["a", "bird"], "raw": "A bird .", "imgid": 1, "sentid": 2}]},
    ]}


def _write(tmp_path: Path, data, name: str = "dataset_coco.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


def _img(i):
    return lambda d: d["images"][i]


def _sent(i, s):
    return lambda d: d["images"][i]["sentences"][s]


def _set(get, key, value):
    def edit(d):
        get(d)[key] = value
    return edit


def _drop(get, key):
    def edit(d):
        del get(d)[key]
    return edit


def _also(*edits):
    def edit(d):
        for e in edits:
            e(d)
    return edit


# (id, edit of the valid file, where the message must point, words it must hold)
BAD = [
    # --- top level
    ("images-missing", _drop(lambda d: d, "images"), "", ["missing field 'images'"]),
    ("images-object", _set(lambda d: d, "images", {}), "", ["'images'", "has type object"]),
    ("images-empty", _set(lambda d: d, "images", []), "", ["'images'", "empty"]),
    ("dataset-int", _set(lambda d: d, "dataset", 5), "", ["'dataset'", "has type int"]),
    ("entry-not-object", _set(lambda d: d, "images", [5]), "images[0]", ["not an object"]),
    # --- filename
    ("filename-missing", _drop(_img(1), "filename"), "images[1]", ["missing field 'filename'"]),
    ("filename-bool", _set(_img(1), "filename", True), "images[1]", ["'filename'", "bool"]),
    ("filename-null", _set(_img(1), "filename", None), "images[1]", ["'filename'", "null"]),
    ("filename-empty", _set(_img(1), "filename", ""), "images[1]", ["'filename'", "empty"]),
    ("filename-blank", _set(_img(1), "filename", "  "), "images[1]", ["'filename'", "empty"]),
    ("filename-absolute", _set(_img(1), "filename", "/etc/passwd"), "images[1]",
     ["'filename'", "absolute"]),
    ("filename-windows-absolute", _set(_img(1), "filename", "C:\\img\\b.jpg"), "images[1]",
     ["'filename'", "absolute"]),
    ("filename-dotdot", _set(_img(1), "filename", "../b.jpg"), "images[1]", ["'filename'", ".."]),
    ("filename-dotdot-inside", _set(_img(1), "filename", "x/../../b.jpg"), "images[1]",
     ["'filename'", ".."]),
    ("filename-folder", _set(_img(1), "filename", "sub/"), "images[1]",
     ["'filename'", "not a file name"]),
    ("filename-nul", _set(_img(1), "filename", "b\x00.jpg"), "images[1]", ["'filename'", "NUL"]),
    # --- filepath
    ("filepath-int", _set(_img(1), "filepath", 5), "images[1]", ["'filepath'", "has type int"]),
    ("filepath-list", _set(_img(1), "filepath", ["val2014"]), "images[1]",
     ["'filepath'", "has type list"]),
    ("filepath-absolute", _set(_img(1), "filepath", "/data/coco/val2014"), "images[1]",
     ["'filepath'", "absolute"]),
    ("filepath-dotdot", _set(_img(1), "filepath", "../val2014"), "images[1]", ["'filepath'", ".."]),
    # --- split
    ("split-missing", _drop(_img(1), "split"), "images[1]", ["missing field 'split'"]),
    ("split-int", _set(_img(1), "split", 1), "images[1]", ["'split'", "has type int"]),
    ("split-unknown", _set(_img(1), "split", "dev"), "images[1]", ["unknown split 'dev'"]),
    # --- imgid / cocoid / sentids
    ("imgid-bool", _set(_img(0), "imgid", False), "images[0]", ["'imgid'", "has type bool"]),
    ("imgid-str", _set(_img(1), "imgid", "1"), "images[1]", ["'imgid'", "has type str"]),
    ("imgid-float", _set(_img(1), "imgid", 1.0), "images[1]", ["'imgid'", "has type float"]),
    ("imgid-negative", _set(_img(0), "imgid", -1), "images[0]", ["'imgid'", "negative"]),
    ("imgid-not-position", _set(_img(1), "imgid", 7), "images[1]", ["'imgid'", "7", "position"]),
    ("cocoid-bool", _set(_img(1), "cocoid", True), "images[1]", ["'cocoid'", "has type bool"]),
    ("cocoid-repeat", _set(_img(1), "cocoid", 10), "images[1]", ["'cocoid'", "images[0]"]),
    ("sentids-str", _set(_img(1), "sentids", "2"), "images[1]", ["'sentids'", "has type str"]),
    ("sentids-item-bool", _set(_img(0), "sentids", [0, True]), "images[0]",
     ["'sentids'", "item 1", "bool"]),
    ("sentids-mismatch", _set(_img(1), "sentids", [7]), "images[1]", ["'sentids'", "match"]),
    # --- sentences
    ("sentences-missing", _drop(_img(1), "sentences"), "images[1]",
     ["missing field 'sentences'"]),
    ("sentences-object", _set(_img(1), "sentences", {"raw": "x"}), "images[1]",
     ["'sentences'", "has type object"]),
    ("sentences-empty", _set(_img(1), "sentences", []), "images[1]", ["'sentences'", "empty"]),
    ("sentence-not-object", _set(_img(1), "sentences", ["A bird."]), "images[1].sentences[0]",
     ["not an object"]),
    # --- raw
    ("raw-missing", _drop(_sent(0, 1), "raw"), "images[0].sentences[1]", ["missing field 'raw'"]),
    ("raw-int", _set(_sent(0, 1), "raw", 5), "images[0].sentences[1]", ["'raw'", "has type int"]),
    ("raw-list", _set(_sent(0, 1), "raw", ["A", "dog"]), "images[0].sentences[1]",
     ["'raw'", "has type list"]),
    ("raw-empty", _set(_sent(0, 1), "raw", ""), "images[0].sentences[1]", ["'raw'", "empty"]),
    ("raw-blank", _set(_sent(0, 1), "raw", " \n\t"), "images[0].sentences[1]", ["'raw'", "empty"]),
    ("raw-no-words-no-tokens", _also(_set(_sent(0, 1), "raw", "?!"), _drop(_sent(0, 1), "tokens")),
     "images[0].sentences[1]", ["'raw'", "no words", "'tokens'"]),
    # --- tokens
    ("tokens-str", _set(_sent(1, 0), "tokens", "a cat"), "images[1].sentences[0]",
     ["'tokens'", "has type str"]),
    ("tokens-object", _set(_sent(1, 0), "tokens", {"a": 1}), "images[1].sentences[0]",
     ["'tokens'", "has type object"]),
    ("tokens-empty", _set(_sent(1, 0), "tokens", []), "images[1].sentences[0]",
     ["'tokens'", "empty"]),
    ("tokens-item-int", _set(_sent(1, 0), "tokens", ["a", 3]), "images[1].sentences[0]",
     ["'tokens'", "item 1", "int"]),
    ("tokens-item-null", _set(_sent(1, 0), "tokens", [None]), "images[1].sentences[0]",
     ["'tokens'", "item 0", "null"]),
    ("tokens-item-empty", _set(_sent(1, 0), "tokens", ["a", ""]), "images[1].sentences[0]",
     ["'tokens'", "item 1", "empty"]),
    # --- sentence imgid / sentid
    ("sentence-imgid-other-image", _set(_sent(1, 0), "imgid", 0), "images[1].sentences[0]",
     ["'imgid'", "images[1]"]),
    ("sentence-imgid-bool", _set(_sent(0, 0), "imgid", False), "images[0].sentences[0]",
     ["'imgid'", "has type bool"]),
    ("sentid-str", _set(_sent(0, 1), "sentid", "1"), "images[0].sentences[1]",
     ["'sentid'", "has type str"]),
    ("sentid-bool", _set(_sent(0, 1), "sentid", True), "images[0].sentences[1]",
     ["'sentid'", "has type bool"]),
    ("sentid-negative", _set(_sent(0, 1), "sentid", -2), "images[0].sentences[1]",
     ["'sentid'", "negative"]),
    ("sentid-repeat", _also(_set(_sent(1, 0), "sentid", 0), _set(_img(1), "sentids", [0])),
     "images[1].sentences[0]", ["'sentid'", "images[0].sentences[0]"]),
    # --- the same image twice
    ("same-path", _set(_img(1), "filename", "a.jpg"), "images[1]",
     ["val2014/a.jpg", "images[0]"]),
    ("same-path-spelt-differently",
     _also(_set(_img(1), "filepath", None), _set(_img(1), "filename", "./val2014//a.jpg")),
     "images[1]", ["val2014/a.jpg", "images[0]"]),
]


def _check(path: Path, where: str, words: list[str]) -> str:
    with pytest.raises(InputError) as info:
        load_karpathy(path)
    message = str(info.value)
    assert len(message.splitlines()) == 1 and "\n" not in message and "\r" not in message, message
    assert str(path) in message, message
    if where:
        assert f": {where}:" in message, message
    for word in words:
        assert word in message, message
    assert info.value.__cause__ is None
    return message


@pytest.mark.parametrize("edit, where, words", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_field(tmp_path, edit, where, words):
    data = _base()
    edit(data)
    _check(_write(tmp_path, data), where, words)


def test_base_is_valid(tmp_path):
    ds = load_karpathy(_write(tmp_path, _base()))
    assert ds.name == "coco" and len(ds) == 2
    assert ds.captions == ["A cat.", "A dog", "A bird ."]   # stripped, " ." kept
    assert ds.tokens == [["a", "cat"], ["a", "dog"], ["a", "bird"]]
    assert list(ds.caption_image) == [0, 0, 1]
    assert ds.image_paths == [tmp_path / "val2014" / "a.jpg", tmp_path / "val2014" / "b.jpg"]


@pytest.mark.parametrize("text, where, key", [
    ('{"images": [], "images": []}', "", "images"),
    ('{"images": [{"filename": "a.jpg", "filename": "b.jpg", "split": "train",'
     ' "sentences": [{"raw": "x"}]}]}', "images[0]", "filename"),
    ('{"images": [{"filename": "a.jpg", "split": "train",'
     ' "sentences": [{"raw": "a cat", "raw": "a dog"}]}]}', "images[0].sentences[0]", "raw"),
])
def test_field_given_twice(tmp_path, text, where, key):
    message = _check(_write(tmp_path, text), where, [f"'{key}'", "more than once"])
    assert message


def test_messages_stay_one_line_with_odd_values(tmp_path):
    data = _base()
    data["images"][1]["split"] = "dev\nsplit" * 50
    message = _check(_write(tmp_path, data), "images[1]", ["unknown split"])
    assert len(message) < 400


# --- what stays valid ------------------------------------------------------------------------
def test_flickr_layout_without_optional_fields(tmp_path):
    data = {"images": [
        {"filename": "1.jpg", "split": "train", "sentences": [{"raw": "Two dogs run, fast!"}]},
        {"filename": "2.jpg", "filepath": None, "split": "val",
         "sentences": [{"raw": "A cat .", "tokens": None}]},
        {"filename": "3.jpg", "filepath": "", "split": "test", "sentences": [{"raw": "A-b c"}]},
        {"filename": "4.jpg", "split": "test", "sentences": [{"raw": "Ein Hund läuft."}]},
    ]}
    ds = load_karpathy(_write(tmp_path, data, "dataset_flickr8k.json"), image_root=tmp_path / "im")
    assert ds.name == "dataset_flickr8k"
    assert ds.image_paths == [tmp_path / "im" / f"{k}.jpg" for k in (1, 2, 3, 4)]
    assert ds.tokens == [["two", "dogs", "run", "fast"], ["a", "cat"], ["a-b", "c"],
                         ["ein", "hund", "läuft"]]
    assert ds.captions == ["Two dogs run, fast!", "A cat .", "A-b c", "Ein Hund läuft."]


def test_world_fields_and_extras_kept(tmp_path):
    data = _base()
    data["dataset"] = None                                  # null name: the file's stem
    data["images"][0].update(split="unseen", class_id=3, audio="audio/000000.wav")
    data["images"][0]["sentences"][0]["note"] = "ignored"
    data["images"][0]["sentids"] = [1, 0]                   # order of sentids does not matter
    del data["images"][1]["sentids"], data["images"][1]["imgid"], data["images"][1]["cocoid"]
    del data["images"][1]["sentences"][0]["sentid"], data["images"][1]["sentences"][0]["imgid"]
    ds = load_karpathy(_write(tmp_path, data))
    assert ds.name == "dataset_coco"
    assert ds.extras == [{"class_id": 3, "audio": "audio/000000.wav"}, {}]
    assert list(ds.split) == ["unseen", "train"]


def test_same_filename_in_other_folder_and_subfolders(tmp_path):
    data = _base()
    data["images"][1]["filepath"] = "train2014"
    data["images"][1]["filename"] = "a.jpg"                 # same name, other folder: fine
    data["images"].append({"filename": "sub/c.jpg", "split": "val", "sentences": [{"raw": "c"}]})
    ds = load_karpathy(_write(tmp_path, data))
    assert ds.image_paths[1:] == [tmp_path / "train2014" / "a.jpg", tmp_path / "sub" / "c.jpg"]


def test_file_level_problems(tmp_path):
    _check(tmp_path / "missing.json", "", ["file not found"])
    folder = tmp_path / "dataset_dir.json"
    folder.mkdir()
    _check(folder, "", ["folder"])
    bad = tmp_path / "latin1.json"
    bad.write_bytes(b'{"images": "\xe9"}')
    _check(bad, "", ["cannot read"])
    _check(_write(tmp_path, '{"images": [1,', "trunc.json"), "", ["invalid JSON"])
    _check(_write(tmp_path, "[" * 100000, "deep.json"), "", ["invalid JSON"])
