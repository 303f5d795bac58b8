"""``mmkit demo --dataset NAME --root DIR``: the same evaluation on data read from disk.

The world's export read back through the Karpathy loader must give the same hit rates as the
world in memory (same images, captions, classes; only the relevance is binary on disk); COCO's
1K protocol is the mean over folds, recomputed here from the saved full score matrices; a
direction appears only where the data defines it; a root without the files is one line."""
from __future__ import annotations

import json

import numpy as np
import pytest
from test_datasets_fixtures import build_coco, build_cub, build_flickr8k

from mmkit.cli import main
from mmkit.data import World
from mmkit.demo import run_dataset_demo
from mmkit.methods import get_method
from mmkit.methods.evaluate import evaluate


def stable_order(row):
    return np.lexsort((np.arange(len(row)), -row))


def naive_hit_rate(scores, positives, k):
    return float(np.mean([positives[q, stable_order(s)[:k]].any() for q, s in enumerate(scores)]))


def naive_ap(scores, relevant):
    out = []
    for s, r in zip(scores, relevant):
        order = stable_order(s)
        hits = r[order]
        if not hits.any():
            out.append(0.0)
            continue
        ranks = np.flatnonzero(hits) + 1
        out.append(float(np.mean(np.arange(1, len(ranks) + 1) / ranks)))
    return float(np.mean(out))


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "w"
    assert main(["world", "--out", str(out), "--n", "150", "--seed", "0", "-q"]) == 0
    return out


@pytest.mark.slow
def test_world_export_gives_the_worlds_hit_rates(export, tmp_path):
    report = run_dataset_demo("world", export, method="baseline", out=tmp_path / "o", progress=False)
    world = World(n=150, seed=0)
    method = get_method("baseline", progress=False).fit(world, world.indices("train"))
    results, runs = evaluate(method, world, world.indices("test"))
    assert report["directions"] == list(results)
    scores = np.load(tmp_path / "o" / "scores.npz")
    for d in ("text->image", "image->text", "image->image"):
        for k in (1, 5, 10):
            assert report["results"][d][f"R@{k}"] == pytest.approx(results[d][f"R@{k}"]), (d, k)
        assert np.array_equal(scores[f"{d}/query_ids"], runs[d].query_ids)
        # on disk relevance is binary: mAP is the AP of the positives
        own = runs[d].positives
        assert report["results"][d]["mAP"] == pytest.approx(naive_ap(scores[f"{d}/scores"], own))
    assert "oracle" not in report


@pytest.mark.slow
def test_karpathy_spelling_reads_an_export(tmp_path, capsys):
    export = tmp_path / "w"
    assert main(["world", "--out", str(export), "--n", "80", "--seed", "1", "-q"]) == 0
    assert main(["demo", "--dataset", "karpathy", "--root", str(export), "--out",
                 str(tmp_path / "o"), "--json", "-q"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["dataset"] == "karpathy" and report["data"]["name"] == "world"
    assert report["directions"] == ["text->image", "image->text", "image->image", "audio->image"]


@pytest.mark.slow
def test_coco_1k_is_the_mean_over_folds(tmp_path):
    root = build_coco(tmp_path / "coco", World(n=70, seed=2), karpathy=True)
    report = run_dataset_demo("coco", root, out=tmp_path / "o", progress=False)
    scores = np.load(tmp_path / "o" / "scores.npz")
    test = np.flatnonzero(World(n=70, seed=2).split == "test")
    size = len(test) // 5
    (full_name, full), (fold_name, folds) = report["protocols"].items()
    assert full_name == str(len(test)) and fold_name == f"{size} x 5 folds"
    assert full == report["results"]
    s = scores["text->image/scores"]
    qids, gids = scores["text->image/query_ids"], scores["text->image/gallery_ids"]
    owner = {int(j): i for i in range(len(test)) for j in range(5 * i, 5 * i + 5)}
    per_fold = []
    for f in range(5):
        cols = np.arange(f * size, (f + 1) * size)
        rows = np.flatnonzero([owner[int(q)] in cols for q in range(len(qids))])
        sub = s[np.ix_(rows, cols)]
        pos = np.array([[owner[int(r)] == c for c in cols] for r in rows])
        per_fold.append(naive_hit_rate(sub, pos, 1))
    assert folds["text->image"]["R@1"] == pytest.approx(np.mean(per_fold))
    assert len(gids) == len(test)


@pytest.mark.slow
def test_directions_only_where_the_data_defines_them(tmp_path):
    world = World(n=30, seed=1)
    plain = run_dataset_demo("flickr8k", build_flickr8k(tmp_path / "f", world),
                             out=tmp_path / "o1", progress=False)
    assert plain["directions"] == ["text->image", "image->text"]
    spoken = run_dataset_demo("flickr8k", build_flickr8k(tmp_path / "s", World(n=12, seed=1),
                                                         audio=True),
                              out=tmp_path / "o2", progress=False)
    assert spoken["directions"] == ["text->image", "image->text", "speech->image"]
    assert "1 x recording of an unknown caption not attached" in spoken["repairs"]
    cub = run_dataset_demo("cub", build_cub(tmp_path / "c", world, captions=False),
                           out=tmp_path / "o3", progress=False)
    assert cub["directions"] == ["image->image"]
    scores = np.load(tmp_path / "o3" / "scores.npz")
    # CUB's test images are of classes the method never saw
    from mmkit.data.cub import load_cub

    ds = load_cub(tmp_path / "c")
    test = ds.indices("test")
    assert set(ds.labels[test]).isdisjoint(set(ds.labels[ds.indices("train")]))
    assert np.array_equal(scores["image->image/query_ids"], test)


def _error(capsys, args):
    code = main(args)
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    return err


def test_root_without_the_files_is_one_line(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = ["--out", str(tmp_path / "o"), "-q"]
    err = _error(capsys, ["demo", "--dataset", "flickr8k", "--root", str(empty)] + out)
    assert "Flickr8k.token.txt" in err and str(empty) in err
    err = _error(capsys, ["demo", "--dataset", "cub", "--root", str(empty)] + out)
    assert "images.txt" in err
    err = _error(capsys, ["demo", "--dataset", "coco", "--root", str(empty)] + out)
    assert "dataset_coco.json" in err
    err = _error(capsys, ["demo", "--dataset", "flickr30k", "--root", str(tmp_path / "no")] + out)
    assert "folder not found" in err
    err = _error(capsys, ["demo", "--dataset", "karpathy", "--root", str(empty)] + out)
    assert "dataset_*.json" in err


def test_option_misuse_is_one_line(export, tmp_path, capsys):
    out = ["--out", str(tmp_path / "o"), "-q"]
    assert "--model is for --method clip" in _error(
        capsys, ["demo", "--dataset", "world", "--root", str(export), "--model", "x"] + out)
    assert "--split" in _error(capsys, ["demo", "--split", "val", "--n", "100"] + out)
    assert "split 'nope'" in _error(
        capsys, ["demo", "--dataset", "world", "--root", str(export), "--split", "nope"] + out)


def test_flickr30k_without_a_split_says_where_the_split_comes_from(tmp_path, capsys):
    from test_datasets_fixtures import build_flickr30k

    root = build_flickr30k(tmp_path / "f", World(n=10, seed=1))
    err = _error(capsys, ["demo", "--dataset", "flickr30k", "--root", str(root), "--out",
                          str(tmp_path / "o"), "-q"])
    assert "no images" in err and "dataset_flickr30k.json" in err
