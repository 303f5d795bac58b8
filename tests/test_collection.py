"""One collection interface: the world and every dataset satisfy ``Collection``, share one
implementation of ids and ground truth (checked against plain loops), and a world exported to
disk and read back gives the same queries, gallery and positives as the world itself."""
from __future__ import annotations

import numpy as np
import pytest

from mmkit.data import World
from mmkit.data import directions as D
from mmkit.data.collection import Collection, CollectionBase, directions_of, modalities_of
from mmkit.data.dataset import RetrievalDataset, modalities_of as dataset_modalities_of
from mmkit.data.export import export_world
from mmkit.data.karpathy import load_karpathy
from mmkit.errors import InputError


@pytest.fixture(scope="module")
def world():
    return World(n=40, seed=11)


@pytest.fixture(scope="module")
def exported(world, tmp_path_factory):
    """The same world written in the Karpathy format and read back as a RetrievalDataset."""
    out = export_world(world, tmp_path_factory.mktemp("export") / "w", progress=False)
    return load_karpathy(out / "dataset_world.json")


def tiny_dataset() -> RetrievalDataset:
    """Three images, an uneven number of captions each, labels, and spoken recordings for
    some captions only (the files are never opened here)."""
    owners = [2, 0, 0, 2, 1, 0, 0, 0, 0, 0, 2, 1, 2, 2]
    speech = [None if j % 3 == 0 else f"{j}.wav" for j in range(len(owners))]
    return RetrievalDataset(name="tiny", image_paths=[f"{i}.jpg" for i in range(3)],
                            split=["test"] * 3, captions=[f"c{k}" for k in range(len(owners))],
                            caption_image=owners, labels=[1, 0, 1], speech_paths=speech)


def naive_dataset_truth(ds, name, images):
    """Query ids, gallery ids, relevance and positives of a dataset's direction, by loops
    over the raw fields (the first ``captions_per_image`` captions of each image)."""
    d = D.DIRECTIONS[name]

    def ids(modality):
        if D.MODALITY_UNIT[modality] == "scene":
            return [int(i) for i in images]
        out = []
        for i in images:
            own = [j for j in range(len(ds.captions)) if ds.caption_image[j] == i]
            own = own[:ds.captions_per_image]
            if modality == "speech":
                own = [j for j in own if ds.speech_paths[j] is not None]
            out += own
        return out

    qids, gids = ids(d.query), ids(d.gallery)
    pos = np.zeros((len(qids), len(gids)), bool)
    for a, q in enumerate(qids):
        for b, g in enumerate(gids):
            if d.positive == "class":
                hit = ds.labels[q] == ds.labels[g]
            elif d.query_unit == "caption":
                hit = ds.caption_image[q] == g
            else:
                hit = ds.caption_image[g] == q
            pos[a, b] = hit and not (d.exclude_self and q == g)
    return np.array(qids), np.array(gids), pos.astype(np.int8) * 3, pos


def test_world_and_datasets_are_collections(world, exported):
    ds = tiny_dataset()
    for data in (world, exported, ds):
        assert isinstance(data, Collection) and isinstance(data, CollectionBase)
        assert modalities_of(data) == data.modalities
        assert directions_of(data) == data.directions
    fresh = World(n=12, seed=2)
    assert isinstance(fresh, Collection)
    assert "images" not in fresh.__dict__ and "audio" not in fresh.__dict__  # nothing rendered
    assert dataset_modalities_of is modalities_of                          # the old path
    assert world.modalities == ("text", "image", "audio")
    assert world.directions == tuple(D.DIRECTIONS)
    assert ds.modalities == ("text", "image", "speech")
    assert ds.directions == ("text->image", "image->text", "image->image", "speech->image")
    assert exported.directions == ("text->image", "image->text", "image->image", "audio->image")


def test_something_without_ground_truth_is_no_collection(world):
    class ImagesOnly:
        captions, caption_image, labels = [], np.zeros(0, np.int64), None
        images = audio = np.zeros((0, 8, 8, 3), np.uint8)

        def __len__(self):
            return 0

    assert not isinstance(ImagesOnly(), Collection)
    assert not isinstance(world.images[:2], Collection)


def test_dataset_ground_truth_equals_loops():
    ds = tiny_dataset()
    images = np.array([2, 0, 1])
    for name in ds.directions:
        qids, gids, rel, pos = naive_dataset_truth(ds, name, images)
        got_q, got_g = ds.direction_ids(name, images)
        assert np.array_equal(got_q, qids) and np.array_equal(got_g, gids), name
        got_rel, got_pos = ds.ground_truth(name, images)
        assert got_rel.dtype == np.int8 and got_pos.dtype == bool
        assert np.array_equal(got_rel, rel) and np.array_equal(got_pos, pos), name
        assert pos.any(), name


def test_exported_dataset_ground_truth_equals_loops(exported):
    images = exported.indices("test")
    for name in exported.directions:
        qids, gids, rel, pos = naive_dataset_truth(exported, name, images)
        got_rel, got_pos = exported.ground_truth(name, images)
        assert np.array_equal(exported.direction_ids(name, images)[0], qids)
        assert np.array_equal(got_rel, rel) and np.array_equal(got_pos, pos), name


@pytest.mark.parametrize("name", ["text->image", "image->text", "image->image", "audio->image"])
def test_world_and_its_export_agree(world, exported, name):
    """Same queries, gallery and positives; the dataset's relevance is binary (3 exactly at
    the positives), the world's graded (3 at every positive, more items may fit fully)."""
    images = np.arange(len(world))[::-1]   # all of them (shared classes), in another order
    w_q, w_g = world.direction_ids(name, images)
    d_q, d_g = exported.direction_ids(name, images)
    assert np.array_equal(w_q, d_q) and np.array_equal(w_g, d_g)
    w_rel, w_pos = world.ground_truth(name, images)
    d_rel, d_pos = exported.ground_truth(name, images)
    assert np.array_equal(w_pos, d_pos) and w_pos.any()
    assert np.array_equal(d_rel, 3 * d_pos.astype(np.int8))
    assert (w_rel[w_pos] == 3).all()
    if D.DIRECTIONS[name].positive == "class":   # same class = all three attributes agree
        assert np.array_equal(w_rel == 3, w_pos)


def test_missing_modality_or_direction_is_one_line():
    ds = tiny_dataset()
    for call, words in ((lambda: ds.unit_ids("audio", np.array([0])), ("tiny", "has no audio")),
                        (lambda: ds.ground_truth("audio->image", np.array([0])),
                         ("tiny", "does not define audio->image")),
                        (lambda: ds.unit_ids("smell", np.array([0])), ("unknown modality",)),
                        (lambda: ds.direction_ids("text->image", np.array([0, 3])),
                         ("image index 3", "tiny (n=3)"))):
        with pytest.raises(InputError) as info:
            call()
        assert "\n" not in str(info.value)
        assert all(w in str(info.value) for w in words), str(info.value)


def test_world_speech_units_are_its_captions(world):
    """The world synthesises speech: every caption is a speech unit; a dataset without
    recordings has none."""
    images = world.indices("test")[:5]
    assert np.array_equal(world.unit_ids("speech", images), world.unit_ids("text", images))
    assert "speech" not in world.modalities and world.defines("speech->image")
    plain = RetrievalDataset(name="plain", image_paths=["a.jpg"], split=["test"],
                             captions=["x"], caption_image=[0])
    assert not plain.defines("speech->image") and not plain.defines("image->image")
