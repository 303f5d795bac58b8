"""Searching real photographs end to end, as a user runs it: ``mmkit index build`` (default
method ``pretrained``), ``mmkit search`` (text, image, composed, --why, --json, --threshold,
--copy-to, query notes), ``mmkit index update`` and ``mmkit duplicates`` on the photos that
scikit-image, scikit-learn and matplotlib ship (:mod:`mmkit.data.photos`), and the CLIP route
(``--method clip --model DIR``) with a tiny random CLIP saved by ``save_pretrained``.

References: the photos' known contents (the cat is chelsea, the word BAKERY is painted on
the bakery photo), the fixture's own duplicate groups, brute-force cosines from the method's
embeddings, and a fresh build.
"""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from mmkit.cli import main
from mmkit.data.photos import photo_groups, write_photos

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    records = write_photos(root / "photos", edited=True)
    return root, records


@pytest.fixture(scope="module")
def index(photos):
    root, _ = photos
    assert main(["index", "build", "--images", str(root / "photos"), "--out",
                 str(root / "idx"), "-q"]) == 0
    return root / "idx"


def _search(capsys, *args: str) -> dict:
    assert main(["search", *args, "--json"]) == 0
    out = capsys.readouterr()
    return json.loads(out.out) | {"stderr": out.err}


def test_default_method_is_pretrained_and_text_queries_find_the_photos(index, capsys):
    manifest = json.loads((index / "manifest.json").read_text())
    assert manifest["method"] == "pretrained" and manifest["ocr"] is True
    assert manifest["n_indexed"] == 78 and set(manifest["spaces"]) == {"text", "image"}
    for query, photo in [("a cat", "chelsea"), ("a cup of coffee", "coffee"),
                         ("a rocket launch", "rocket"), ("flowers", "flower"),
                         ("a temple in China", "china")]:
        report = _search(capsys, "--index", str(index), "--text", query, "-k", "3")
        names = [os.path.basename(r["path"]) for r in report["results"]]
        assert all(n.startswith(photo) for n in names), (query, names)
        assert report["notes"] == [] and report["stderr"] == ""


def test_words_in_photos_are_found_and_explained(index, capsys):
    # the sign is read in the original and 4 copies; PP-OCR does not read the sideways copy
    report = _search(capsys, "--index", str(index), "--text", "bakery", "-k", "5", "--why")
    assert all(os.path.basename(r["path"]).startswith("bakery") for r in report["results"])
    assert "bakery-rot90.png" not in {os.path.basename(r["path"]) for r in report["results"]}
    for hit in report["results"]:
        assert hit["why"]["text bakery"]["ocr"] == ["bakery"]
    cat = _search(capsys, "--index", str(index), "--text", "a cat", "-k", "1", "--why")
    concepts = [c[0] for c in cat["results"][0]["why"]["text a cat"]["concepts"]]
    assert any("cat" in c for c in concepts) and cat["results"][0]["why"]["text a cat"]["ocr"] == []


def test_a_query_the_method_cannot_represent_says_so_and_still_answers(index, capsys):
    report = _search(capsys, "--index", str(index), "--text", "quarterly tax report", "-k", "2")
    assert len(report["notes"]) == 1 and "ImageNet" in report["notes"][0]
    assert report["stderr"] == f"mmkit search: {report['notes'][0]}\n"
    assert len(report["results"]) == 2


def test_image_and_composed_queries_and_export(photos, index, capsys, tmp_path):
    root, _ = photos
    cat = str(root / "photos" / "chelsea.png")
    report = _search(capsys, "--index", str(index), "--image", cat, "-k", "6")
    assert {os.path.basename(r["path"]).split("-")[0].split(".")[0]
            for r in report["results"]} == {"chelsea"}
    assert report["results"][0]["score"] == pytest.approx(1.0, abs=1e-5)
    # "a cat" minus the cat photo itself: the cat copies sink below the top
    plain = _search(capsys, "--index", str(index), "--text", "a cat", "-k", "3")
    minus = _search(capsys, "--index", str(index), "--text", "a cat", "--not-image", cat,
                    "-k", "3")
    assert minus["query"][1] == {"modality": "image", "value": cat, "weight": -1.0}
    assert not {r["path"] for r in minus["results"]} & {r["path"] for r in plain["results"]}
    # a threshold keeps only the strong hits; --copy-to exports them by rank
    top = _search(capsys, "--index", str(index), "--text", "a cat", "--threshold", "0.6",
                  "--copy-to", str(tmp_path / "cats"))
    assert top["total"] == len(top["results"]) >= 3
    assert all(r["score"] >= 0.6 for r in top["results"])
    assert sorted(os.listdir(tmp_path / "cats"))[0].startswith("01-chelsea")


def test_duplicates_are_the_fixture_groups(photos, index, capsys):
    root, records = photos
    assert main(["duplicates", "--index", str(index), "--json"]) == 0
    found = json.loads(capsys.readouterr().out)["groups"]
    want = [sorted(str((root / "photos" / p).resolve()) for p in g)
            for g in photo_groups(records)]
    assert sorted(sorted(g["paths"]) for g in found) == sorted(want)
    assert (index / "duplicates.npz").is_file()


def test_update_embeds_only_what_changed_and_matches_a_fresh_build(photos, index, capsys,
                                                                   tmp_path):
    root, _ = photos
    folder = tmp_path / "photos"
    shutil.copytree(root / "photos", folder)
    idx = tmp_path / "idx"
    shutil.copytree(index, idx)
    manifest = json.loads((idx / "manifest.json").read_text())
    (idx / "manifest.json").write_text(json.dumps({**manifest, "root": str(folder)}))  # moved
    os.rename(folder / "coffee.png", folder / "my-coffee.png")
    os.remove(folder / "rocket.jpg")
    assert main(["index", "update", str(idx), "-q"]) == 0
    after = json.loads((idx / "manifest.json").read_text())
    assert after["update"]["embedded"] == 0 and after["n_indexed"] == 77
    assert main(["index", "build", "--images", str(folder), "--out", str(tmp_path / "fresh"),
                 "-q"]) == 0
    a = _search(capsys, "--index", str(idx), "--text", "a cup of coffee", "-k", "8")
    b = _search(capsys, "--index", str(tmp_path / "fresh"), "--text", "a cup of coffee",
                "-k", "8")
    assert [r["path"] for r in a["results"]] == [r["path"] for r in b["results"]]
    assert np.allclose([r["score"] for r in a["results"]], [r["score"] for r in b["results"]],
                       atol=1e-5)
    assert os.path.basename(a["results"][0]["path"]).startswith(("my-coffee", "coffee"))


def test_clip_indexes_take_a_model_folder(photos, tmp_path, capsys):
    pytest.importorskip("transformers")
    from test_clip_method import save_tiny_clip

    root, _ = photos
    model = save_tiny_clip(tmp_path / "clip")
    small = tmp_path / "few"
    small.mkdir()
    for name in ("chelsea.png", "coffee.png", "rocket.jpg"):
        shutil.copy(root / "photos" / name, small / name)
    assert main(["index", "build", "--images", str(small), "--out", str(tmp_path / "idx"),
                 "--method", "clip", "--model", str(model), "-q"]) == 0
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert manifest["method"] == "clip" and manifest["options"]["model"] == str(model.resolve())
    report = _search(capsys, "--index", str(tmp_path / "idx"), "--image",
                     str(small / "coffee.png"), "-k", "1")
    assert report["results"][0]["path"].endswith("coffee.png")
    text = _search(capsys, "--index", str(tmp_path / "idx"), "--text", "a cat", "-k", "3")
    assert len(text["results"]) == 3
    # the model changed on disk: searching is refused in one line, updating re-embeds
    save_tiny_clip(model, seed=1)
    capsys.readouterr()
    assert main(["search", "--index", str(tmp_path / "idx"), "--text", "a cat"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "built with another model of method 'clip'" in err
    assert f"run 'mmkit index update {tmp_path / 'idx'}'" in err
    assert main(["index", "update", str(tmp_path / "idx"), "-q"]) == 0
    capsys.readouterr()
    assert json.loads((tmp_path / "idx" / "manifest.json").read_text())["update"][
        "embedded"] == 3
    assert main(["index", "build", "--images", str(small), "--out", str(tmp_path / "j"),
                 "--method", "joint", "--model", str(model)]) == 2
    assert "--model is for --method clip" in capsys.readouterr().err
    assert not (tmp_path / "j").exists()


def test_demo_on_the_world_takes_a_clip_folder(tmp_path):
    pytest.importorskip("transformers")
    from test_clip_method import save_tiny_clip

    from mmkit.demo import run_demo

    model = save_tiny_clip(tmp_path / "clip")
    report = run_demo(n=100, method="clip", model=model, out=tmp_path / "demo", progress=False)
    assert report["method"] == "clip" and "text->image" in report["results"]


def test_the_joint_model_names_the_words_it_does_not_know():
    from mmkit.methods import get_method

    joint = get_method("joint", progress=False)
    note = joint.query_note("a fluffy cat near a red circle")
    assert "'cat'" in note and "'fluffy'" in note and "'red'" not in note
    assert "--method pretrained" in note
    assert joint.query_note("a red circle on the left") is None
