"""Caches are keyed on what is actually loaded: the sha256 of the checkpoint a method loads
(the user's retrained ``data/checkpoints/`` copy before the committed one), the bytes of a
CLIP folder, and one cache entry for the EfficientNet-Lite0 features wherever they are asked
for."""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import mmkit.checkpoints as ck
import mmkit.fusion.protocol as P
import mmkit.methods as M
from mmkit.data import World
from mmkit.errors import InputError
from mmkit.methods.joint import JointMethod

TESTS = Path(__file__).resolve().parent


@pytest.fixture()
def toy(monkeypatch, tmp_path):
    """The toy checkpoint registered; the package folder, data/checkpoints and data/cache in
    tmp (``MMKIT_DATA``)."""
    monkeypatch.syspath_prepend(str(TESTS))
    monkeypatch.setenv("MMKIT_MODEL_MODULES", "toy_checkpoint")
    monkeypatch.setenv("MMKIT_DATA", str(tmp_path / "data"))
    monkeypatch.setattr(ck, "PACKAGE_DIR", tmp_path / "package")
    import toy_checkpoint

    toy_checkpoint.CALLS["train"] = 0
    return toy_checkpoint


@pytest.fixture(scope="module")
def world():
    return World(n=12, seed=4)


# ----------------------------------------------------------------------------- hashing
def test_file_and_folder_sha256_against_hashlib(tmp_path):
    blob = np.random.default_rng(0).bytes(3 * (1 << 20) + 17)     # several chunks, ragged end
    (tmp_path / "model.safetensors").write_bytes(blob)
    (tmp_path / "config.json").write_text('{"a": 1}')
    (tmp_path / "notes.md").write_text("not part of the model")
    assert ck.file_sha256(tmp_path / "model.safetensors", chunk_size=1000) \
        == hashlib.sha256(blob).hexdigest()
    ref = hashlib.sha256()
    for name, data in (("config.json", b'{"a": 1}'), ("model.safetensors", blob)):
        ref.update(f"{name}\0{hashlib.sha256(data).hexdigest()}\n".encode())
    assert ck.folder_sha256(tmp_path) == ref.hexdigest()
    (tmp_path / "notes.md").write_text("edited")                  # not a model file
    assert ck.folder_sha256(tmp_path) == ref.hexdigest()
    (tmp_path / "config.json").write_text('{"a": 2}')
    assert ck.folder_sha256(tmp_path) != ref.hexdigest()
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(InputError, match="no weight file"):
        ck.folder_sha256(tmp_path)
    with pytest.raises(InputError, match="not a model folder"):
        ck.folder_sha256(tmp_path / "nope")


# ----------------------------------------------------------------------------- checkpoints
class ToyJoint(JointMethod):
    """A retrieval method built from the toy checkpoint (its first layer embeds 4 numbers
    per item), with :class:`JointMethod`'s loading and fingerprint."""

    name = "toyjoint"
    calls = {"embed": 0}

    def __init__(self, **kwargs) -> None:
        super().__init__(checkpoint="toy", speech_checkpoint="toy", progress=False)

    def _embed(self, x: np.ndarray) -> np.ndarray:
        ToyJoint.calls["embed"] += 1
        with torch.no_grad():
            return self.model[0](torch.as_tensor(np.asarray(x, np.float32))).numpy()

    def embed_images(self, images, *, partner="text", batch_size=None, progress=None):
        x = np.asarray(images, np.float32).mean(axis=(1, 2)) / 255
        return self._embed(np.concatenate([x, np.ones((len(x), 1))], 1))

    def embed_texts(self, texts):
        return self._embed([[len(t) / 40, t.count("a"), t.count("e"), 1.0] for t in texts])

    def embed_audio(self, clips, sr):
        c = np.asarray(clips, np.float32)
        return self._embed(np.stack([c.mean(1), c.std(1), np.abs(c).max(1), np.ones(len(c))], 1))


@pytest.fixture()
def toy_method(toy, monkeypatch):
    monkeypatch.setitem(M._REGISTRY, "toyjoint", lambda **kw: ToyJoint())
    ToyJoint.calls["embed"] = 0
    return ToyJoint


def _embed(world, images):
    lazy = P.LazyMethod("toyjoint", world)
    emb = P.embed_scenes(world, images, lazy)
    return emb, lazy


def test_locate_finds_what_load_loads(toy):
    assert ck.locate("toy") is None                          # nothing on disk: load would train
    ck.train_and_save("toy", None, progress=False)           # the committed one
    assert ck.locate("toy")["sha256"] == ck.file_sha256(ck.PACKAGE_DIR / "toy.safetensors")
    ck.train_and_save("toy", ck.user_dir(), progress=False, seed=5)   # a retrained one
    _, manifest = ck.load("toy", progress=False)
    assert ck.locate("toy")["sha256"] == manifest["sha256"] \
        == ck.file_sha256(ck.user_dir() / "toy.safetensors")
    (ck.user_dir() / "toy.safetensors").write_bytes(b"broken")   # load would skip it ...
    assert ck.locate("toy")["sha256"] == ck.file_sha256(ck.PACKAGE_DIR / "toy.safetensors")
    _, manifest = ck.load("toy", progress=False)                 # ... and so it does
    assert manifest["sha256"] == ck.locate("toy")["sha256"]


def test_fusion_cache_misses_after_a_retrain_and_hits_otherwise(toy_method, world, capsys):
    images = np.arange(0, 12, 2)
    ck.train_and_save("toy", None, progress=False)           # the committed checkpoint
    first, lazy = _embed(world, images)
    committed = ck.file_sha256(ck.PACKAGE_DIR / "toy.safetensors")
    assert toy_method.calls["embed"] == 6                    # computed: 3 image spaces + 3
    assert lazy.get().manifests["toy"]["sha256"] == committed
    assert committed in lazy.fingerprint                     # the same after loading

    again, lazy = _embed(world, images)                      # nothing changed: a hit ...
    assert toy_method.calls["embed"] == 6
    assert lazy.instance()._model is None                    # ... that loads nothing
    assert np.array_equal(again.image_text, first.image_text)
    assert np.array_equal(again.text, first.text)

    # `mmkit demo --retrain`: the same code and seed give the same bytes: still a hit
    ck.load("toy", retrain=True, progress=False)
    assert ck.file_sha256(ck.user_dir() / "toy.safetensors") == committed
    _embed(world, images)
    assert toy_method.calls["embed"] == 6

    # a retrained model that differs, saved into data/checkpoints/: a miss
    ck.train_and_save("toy", ck.user_dir(), progress=False, seed=1)
    retrained = ck.file_sha256(ck.user_dir() / "toy.safetensors")
    assert retrained != committed
    after, lazy = _embed(world, images)
    assert toy_method.calls["embed"] == 12
    assert lazy.get().manifests["toy"]["sha256"] == retrained
    assert not np.allclose(after.image_text, first.image_text)
    model, _ = ck.load("toy", progress=False)               # the embeddings ARE the new model's
    x = np.asarray(world.images[images], np.float32).mean(axis=(1, 2)) / 255
    with torch.no_grad():
        ref = model[0](torch.as_tensor(np.concatenate([x, np.ones((6, 1))], 1),
                                       dtype=torch.float32)).numpy()
    np.testing.assert_allclose(after.image_text, ref, rtol=1e-6, atol=1e-6)
    assert "retraining" not in capsys.readouterr().err       # only the explicit retrain ran

    _embed(world, images)                                    # and the new entry hits
    assert toy_method.calls["embed"] == 12


def test_method_fingerprint_follows_the_loaded_checkpoint(toy_method):
    ck.train_and_save("toy", None, progress=False)
    before = P.method_fingerprint("toyjoint")
    method = ToyJoint().fit(None, None)                       # loads the joint model
    assert method.fingerprint == before                       # before loading == after
    loaded = before.split("|")[1]
    assert loaded == f"toy:{ck.file_sha256(ck.PACKAGE_DIR / 'toy.safetensors')}"
    ck.train_and_save("toy", ck.user_dir(), progress=False, seed=2)
    assert P.method_fingerprint("toyjoint") != before         # a new instance sees the retrain
    assert method.fingerprint.split("|")[1] == loaded         # a loaded model keeps its own


def test_an_index_of_one_model_is_not_searched_with_another(toy_method):
    from mmkit.scale import FolderIndex
    from mmkit.scale.embed import prepare_method

    ck.train_and_save("toy", None, progress=False)
    _, fit = prepare_method("toyjoint", quiet=True)          # what a build records
    assert fit["pretrained"] and ck.locate("toy")["sha256"] in fit["fingerprint"]
    index = FolderIndex.__new__(FolderIndex)                  # an index built with that model
    index.path, index.manifest = "idx", {"method": "toyjoint", "fit": fit}
    index.check_method("toyjoint", prepare_method("toyjoint", quiet=True)[1])   # same: fine
    ck.train_and_save("toy", ck.user_dir(), progress=False, seed=3)
    _, fit_after = prepare_method("toyjoint", quiet=True)     # what a search prepares now
    assert fit_after["fingerprint"] != fit["fingerprint"]
    with pytest.raises(InputError, match="embeddings would not match"):
        index.check_method("toyjoint", fit_after)


# ----------------------------------------------------------------------------- CLIP folders
@pytest.mark.slow
def test_one_byte_of_a_clip_folder_changes_the_fingerprint(tmp_path):
    pytest.importorskip("transformers")
    from test_clip_method import save_tiny_clip

    from mmkit.methods.clip import ClipMethod

    folder = save_tiny_clip(tmp_path / "clip")
    weights = folder / "model.safetensors"
    base = ClipMethod(model=folder, device="cpu", progress=False).fingerprint
    assert base.startswith("clip|")
    copy = shutil.copytree(folder, tmp_path / "elsewhere")     # where it lies does not count
    assert ClipMethod(model=copy, device="cpu").fingerprint == base
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0x01                                          # one byte of the tensor data
    weights.write_bytes(bytes(data))
    edited = ClipMethod(model=folder, device="cpu").fingerprint
    assert edited != base
    data[-5] ^= 0x01
    weights.write_bytes(bytes(data))
    assert ClipMethod(model=folder, device="cpu").fingerprint == base
    config = folder / "config.json"
    config.write_text(config.read_text() + "\n")
    assert ClipMethod(model=folder, device="cpu").fingerprint != base
    with pytest.raises(InputError, match="no local CLIP weights"):
        ClipMethod(model="nobody/no-such-clip", device="cpu").fingerprint  # noqa: B018


# ----------------------------------------------------------------------------- EfficientNet
@pytest.mark.slow
def test_the_efficientnet_features_are_one_cache_entry(tmp_path, monkeypatch, world):
    pytest.importorskip("timm")
    import mmkit.features.pretrained as PT
    from mmkit.encoders import metric
    from mmkit.encoders.joint_training import CHECKPOINTS, SceneData, build_joint

    monkeypatch.setenv("MMKIT_DATA", str(tmp_path))
    computed = []
    real = PT.embed_images
    monkeypatch.setattr(PT, "embed_images", lambda *a, **k: computed.append(1) or real(*a, **k))
    cache = tmp_path / "cache"
    chapter = metric.pretrained_features(world.images)             # notebook 05, benchmarks
    nb01 = PT.pretrained_features(world.images, 224, progress=False)   # notebook 01
    model = build_joint({**CHECKPOINTS["joint_effnet"].config, "effnet_size": 224})
    data = SceneData(world, model)                                 # training the joint tower
    assert len(computed) == 1
    assert [p.name.startswith(f"{PT.FEATURES_CACHE}-") for p in cache.iterdir()] == [True]
    assert chapter.shape == (12, 1280)
    np.testing.assert_array_equal(nb01, chapter)
    np.testing.assert_array_equal(data.image_features.numpy(), chapter)
    with torch.no_grad():                   # the entry holds what the joint tower computes
        ref = model.image.features(model.image_tensor(world.images)).numpy()
    np.testing.assert_allclose(chapter, ref, rtol=1e-4, atol=1e-4)
    # the input size is part of the key: the tower's default 128 px is a second entry
    small = PT.pretrained_features(world.images, 128)
    assert len(computed) == 2 and len(list(cache.iterdir())) == 2
    assert not np.allclose(small, chapter, atol=1e-3)
    with pytest.raises(InputError, match="size must be a positive integer"):
        PT.pretrained_features(world.images, 0)
