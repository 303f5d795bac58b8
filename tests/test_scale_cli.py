"""``mmkit index build`` / ``mmkit search`` at their edges, run for real in a subprocess:
one line on stderr (``mmkit CMD: error: ...``), exit status 2, nothing on stdout, nothing
written. The checks fail before any method is fitted, so every run takes seconds."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from test_cli_errors import error_line, run_mmkit, snapshot


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """An exported world of 60 scenes and a baseline fitted on 40 of them."""
    from mmkit.data import World
    from mmkit.data.export import export_world
    from mmkit.methods import get_method

    root = tmp_path_factory.mktemp("scalecli")
    world = World(n=60, seed=2)
    export_world(world, root / "world", progress=False)
    method = get_method("baseline", progress=False).fit(world, np.arange(40))
    return root, method


@pytest.fixture(scope="module")
def built(tiny):
    """A finished exact index over the 60 PNGs, made in-process with the tiny baseline (a fit
    description the command line cannot reproduce)."""
    from mmkit.scale import build_folder_index

    root, method = tiny
    fit = {"pretrained": False, "world": {"n": 60, "seed": 2}, "split": "custom"}
    build_folder_index(root / "world" / "images", root / "idx", method=(method, fit),
                       kind="exact", progress=False, quiet=True)
    return root


@pytest.mark.slow
def test_index_build_and_search_json_in_process(tiny, tmp_path, monkeypatch, capsys):
    """Both commands end to end (in this process, so the tiny baseline stands in for the
    demo-world fit): the summary, the exact --json format, and the hits against brute force
    over the files themselves."""
    from PIL import Image

    from mmkit.cli import main
    from mmkit.scale import embed as E

    root, method = tiny
    fit = {"pretrained": False, "world": dict(E.FIT_WORLD), "split": "train"}
    monkeypatch.setattr(E, "prepare_method", lambda name, **kw: (method, fit))
    images = root / "world" / "images"
    assert main(["index", "build", "--images", str(images), "--out", str(tmp_path / "idx"),
                 "--method", "baseline",
                 "--kind", "exact", "--shards", "3", "--partition-size", "16"]) == 0
    out = capsys.readouterr().out
    assert "indexed 60 of 60 image files with method baseline (0 unreadable)" in out
    assert "3 shard(s)" in out
    assert main(["search", "--index", str(tmp_path / "idx"), "--text", "a red circle",
                 "-k", "4", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert list(report) == ["query", "notes", "warnings", "total", "offset", "k", "results"]
    assert report["query"] == [{"modality": "text", "value": "a red circle", "weight": 1.0}]
    assert all(list(r) == ["id", "path", "score"] for r in report["results"])
    # brute force: cosine of the text embedding with every file's image embedding
    files = sorted(images.glob("*.png"))
    pixels = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])
    emb = method.embed_images(pixels, partner="text")
    q = method.embed_texts(["a red circle"])[0]
    scores = (emb / np.linalg.norm(emb, axis=1, keepdims=True)) @ (q / np.linalg.norm(q))
    best = np.lexsort((np.arange(len(files)), -scores))[:4]
    assert [r["path"] for r in report["results"]] == [str(files[i].resolve()) for i in best]
    assert np.allclose([r["score"] for r in report["results"]], scores[best], atol=1e-5)
    assert main(["search", "--index", str(tmp_path / "idx"), "--image", str(files[5]),
                 "-k", "2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["query"] == [{"modality": "image", "value": str(files[5]), "weight": 1.0}]
    assert report["results"][0]["path"] == str(files[5].resolve())
    # the next page continues the ranking; a threshold cuts it
    assert main(["search", "--index", str(tmp_path / "idx"), "--text", "a red circle",
                 "-k", "2", "--offset", "2", "--json"]) == 0
    page = json.loads(capsys.readouterr().out)
    assert [r["path"] for r in page["results"]] == [str(files[i].resolve()) for i in best[2:4]]
    cut = float(scores[best[1]]) - 1e-4
    assert main(["search", "--index", str(tmp_path / "idx"), "--text", "a red circle",
                 "--threshold", str(cut), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["total"] == int((scores >= cut).sum())


@pytest.mark.subprocess
def test_build_refuses_an_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    line = error_line(run_mmkit(tmp_path, "index", "build", "--images", "empty", "--out", "o"),
                      "index")
    assert "no PNG or JPEG files" in line and "empty" in line
    assert not (tmp_path / "o").exists()


@pytest.mark.subprocess
def test_build_refuses_a_path_that_is_not_a_folder(tmp_path):
    (tmp_path / "x.png").write_bytes(b"png?")
    line = error_line(run_mmkit(tmp_path, "index", "build", "--images", "x.png", "--out", "o"),
                      "index")
    assert "x.png: is not a folder" in line
    line = error_line(run_mmkit(tmp_path, "index", "build", "--images", "nope", "--out", "o"),
                      "index")
    assert "no such folder" in line


@pytest.mark.subprocess
def test_build_refuses_zero_shards_and_workers(tmp_path):
    for flag in ("--shards", "--workers"):
        proc = run_mmkit(tmp_path, "index", "build", "--images", ".", "--out", "o", flag, "0")
        line = error_line(proc, "index build")
        assert flag in line and "positive integer, got 0" in line


@pytest.mark.subprocess
def test_build_refuses_a_foreign_non_empty_out(built, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    before = snapshot(tmp_path)
    line = error_line(run_mmkit(tmp_path, "index", "build", "--images",
                                str(built / "world" / "images"), "--out", "out"), "index")
    assert "is not an mmkit index" in line
    assert snapshot(tmp_path) == before


@pytest.mark.subprocess
def test_search_refuses_query_files_that_are_not_images_or_sounds(built, tmp_path):
    (tmp_path / "q.png").write_text("not really a png")
    (tmp_path / "q.wav").write_bytes(b"RIFF0000WAVEjunk")
    idx = str(built / "idx")
    line = error_line(run_mmkit(tmp_path, "search", "--index", idx, "--image", "q.png"), "search")
    assert "q.png" in line and "not an image" in line
    line = error_line(run_mmkit(tmp_path, "search", "--index", idx, "--audio", "q.wav"), "search")
    assert "q.wav" in line and "not a sound file" in line
    line = error_line(run_mmkit(tmp_path, "search", "--index", idx, "--text", "  "), "search")
    assert "empty" in line


@pytest.mark.subprocess
def test_search_refuses_an_index_of_another_method_or_dimension(built, tmp_path):
    # this index's baseline was fitted on a custom world and stored with it: the command
    # loads it (no refit); without the stored method it cannot refit it
    proc = run_mmkit(tmp_path, "search", "--index", str(built / "idx"), "--text",
                     "a red circle", "--json")
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout)["results"]) == 10
    manifest = json.loads((built / "idx" / "manifest.json").read_text())
    other = tmp_path / "other"
    other.mkdir()
    for rel in ("index", "store"):
        os.symlink(built / "idx" / rel, other / rel)
    checks = {k: v for k, v in manifest["checksums"].items() if k != "method.npz"}
    (other / "manifest.json").write_text(json.dumps({**manifest, "checksums": checks}))
    line = error_line(run_mmkit(tmp_path, "search", "--index", "other", "--text", "a"), "search")
    assert "fitted on a custom world" in line
    (other / "manifest.json").write_text(json.dumps({**manifest, "method": "no-such-method"}))
    line = error_line(run_mmkit(tmp_path, "search", "--index", "other", "--text", "a"), "search")
    assert "made by method 'no-such-method'" in line
    spaces = {s: {**v, "dim": v["dim"] + 1} for s, v in manifest["spaces"].items()}
    (other / "manifest.json").write_text(json.dumps({**manifest, "spaces": spaces}))
    line = error_line(run_mmkit(tmp_path, "search", "--index", "other", "--text", "a"), "search")
    assert "has dimension 48, the manifest says 49" in line


@pytest.mark.subprocess
def test_search_refuses_unfinished_and_foreign_folders(built, tmp_path):
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "plan.json").write_text("{}")
    line = error_line(run_mmkit(tmp_path, "search", "--index", "half", "--text", "a"), "search")
    assert "unfinished build" in line
    (tmp_path / "plain").mkdir()
    line = error_line(run_mmkit(tmp_path, "search", "--index", "plain", "--text", "a"), "search")
    assert "not an mmkit index folder" in line
    line = error_line(run_mmkit(tmp_path, "search", "--index", "missing", "--text", "a"),
                      "search")
    assert "no such folder" in line
