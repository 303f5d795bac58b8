"""The joint embedding: a few training steps on a tiny world learn, checkpoints round-trip, the
method embeds every modality into one space, and bad settings are one-line errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import mmkit.checkpoints as ck
from mmkit.data.world import World
from mmkit.encoders import joint_training as J
from mmkit.encoders import speech_training as S
from mmkit.errors import InputError

TINY = {"dim": 32, "width": 8, "hidden": 32, "word_dim": 16, "batch_size": 32, "epochs": 3,
        "seconds": None, "eval_every": None, "lr": 3e-3, "audio_init": None, "image_init": None,
        "world": {"n": 160, "seed": 77}}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny_trained():
    return J.train_joint({**J.BASE_CONFIG, **TINY}, progress=False)


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["vse", "vsepp", "infonce"])
def test_a_few_steps_lower_the_loss(loss):
    config = {**J.BASE_CONFIG, **TINY, "loss": loss, "epochs": 4}
    trained = J.train_joint(config, progress=False)
    m = trained.metrics
    assert m["steps"] == 4 * (trained.data["train_scenes"] // 32)
    assert m["train_loss_end"] < m["train_loss_start"], m


def test_training_on_the_evaluation_world_is_refused():
    with pytest.raises(InputError, match="evaluation world"):
        J.train_joint({**J.BASE_CONFIG, **TINY, "world": {"n": 160, "seed": 0}}, progress=False)


def test_unknown_loss_is_one_line():
    with pytest.raises(InputError, match="unknown joint loss 'triplet'"):
        J.make_loss("triplet", 0.2, 0.07)


@pytest.mark.slow
def test_same_seed_same_model():
    config = {**J.BASE_CONFIG, **TINY, "epochs": 1}
    a = J.train_joint(config, progress=False).model.state_dict()
    b = J.train_joint(config, progress=False).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_checkpoint_round_trips(tiny_trained, tmp_path):
    spec = ck.get_spec("joint_world")
    config = {**spec.config, **TINY}
    ck.save(tiny_trained, spec, config, tmp_path, seconds=1.0, seed=0)
    model, manifest = ck.read(spec, tmp_path, config)
    saved, loaded = tiny_trained.model.state_dict(), model.state_dict()
    assert saved.keys() == loaded.keys()
    assert all(torch.equal(saved[k], loaded[k]) for k in saved)
    assert manifest["training_data"]["world"] == {"n": 160, "seed": 77}


def test_embeddings_are_unit_rows_in_one_space(tiny_trained):
    model = tiny_trained.model.eval()
    w = World(n=30, seed=5)
    img = model.embed_images(w.images)
    txt = model.embed_texts(w.captions[:12])
    aud = model.embed_audio(w.audio[:7], w.config.sample_rate)
    for x, n in ((img, 30), (txt, 12), (aud, 7)):
        assert x.shape == (n, 32) and x.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    # batching does not change an embedding (eval mode: batch norm uses running statistics)
    np.testing.assert_allclose(model.embed_images(w.images[:5]), img[:5], atol=1e-5)
    np.testing.assert_allclose(model.embed_texts(w.captions[3:4]), txt[3:4], atol=1e-5)


def test_frozen_sound_backbone_is_not_trained(tiny_trained):
    torch.manual_seed(0)                        # train_joint's seed: the same initial weights
    fresh = J.build_joint({**J.BASE_CONFIG, **TINY})
    image_before = fresh.image.state_dict()
    assert not all(torch.equal(v, tiny_trained.model.image.state_dict()[k])
                   for k, v in image_before.items())          # the image tower did train
    a = fresh.audio.state_dict()
    b = tiny_trained.model.audio.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)      # no init, frozen: still the same


@pytest.mark.slow
@pytest.mark.parametrize("frozen", [True, False])
def test_image_frozen_decides_whether_the_conv_stages_train(frozen):
    """``image_frozen`` (the recipes) keeps the CNN's conv stages and their batch-norm
    statistics exactly as initialised; ``False`` (the demo's ``joint_world``) fine-tunes
    them. The trainable top (ViT block, projection) trains either way."""
    config = {**J.BASE_CONFIG, **TINY, "epochs": 1, "image_frozen": frozen}
    torch.manual_seed(0)                        # train_joint's seed: the same initial weights
    before = J.build_joint(config).image.state_dict()
    after = J.train_joint(config, progress=False).model.image.state_dict()
    conv = [k for k in before if k.startswith(("stage1.", "stage2.", "stage3."))]
    top = [k for k in before if k.startswith(("vit.", "proj."))]
    assert conv and top
    assert all(torch.equal(before[k], after[k]) for k in conv) == frozen
    assert not all(torch.equal(before[k], after[k]) for k in top)


def test_the_demo_model_fine_tunes_its_conv_stages_and_the_recipes_do_not():
    assert ck.get_spec("joint_world").config["image_frozen"] is False
    assert all(ck.get_spec(n).config["image_frozen"] is True
               for n in ("joint_vse", "joint_vsepp", "joint_clip"))


def test_bad_image_input_is_one_line(tiny_trained):
    with pytest.raises(InputError, match=r"embed_images: images must be \[N, H, W, 3\]"):
        tiny_trained.model.embed_images(np.zeros((4, 8, 8), np.uint8))
    with pytest.raises(InputError, match="no texts"):
        tiny_trained.model.embed_texts([])


@pytest.mark.slow
def test_speech_tower_trains_against_a_frozen_joint_model(tiny_trained, tmp_path, monkeypatch):
    from mmkit.data.speech import speech_available

    if not speech_available():
        pytest.skip("espeak-ng is not available")
    monkeypatch.setenv("MMKIT_DATA", str(tmp_path / "data"))
    spec = ck.get_spec("joint_world")
    ck.save(tiny_trained, spec, {**spec.config, **TINY}, tmp_path / "data" / "checkpoints",
            seconds=1.0, seed=0)
    real_load = ck.load

    def load(name, **kwargs):   # the tiny joint model stands in for the committed one
        if name == "joint_world":
            return ck.read(spec, tmp_path / "data" / "checkpoints", {**spec.config, **TINY})
        return real_load(name, **kwargs)

    monkeypatch.setattr(ck, "load", load)
    config = {**S.SPEECH_CONFIG, "dim": 32, "init": None, "world": {"n": 40, "seed": 78},
              "captions_per_image": 2, "batch_size": 16, "epochs": 6, "evaluate": False}
    trained = S.train_speech(config, progress=False)
    m = trained.metrics
    assert m["train_loss_end"] < m["train_loss_start"], m
    assert trained.data["joint_sha256"] == ck.read(spec, tmp_path / "data" / "checkpoints",
                                                   {**spec.config, **TINY})[1]["sha256"]
    w = World(n=4, seed=9)
    z = trained.model.embed_audio([w.speech(0), w.speech(1)], w.config.sample_rate)
    assert z.shape == (2, 32)
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-5)


def test_speech_tower_aligned_to_another_joint_model_is_retrained(monkeypatch, capsys):
    """The speech tower is only meaningful against the joint model it was aligned to: a
    mismatch (joint_world retrained, speech not) is one line and a retraining of the tower."""
    from mmkit.methods.joint import JointMethod

    calls = []

    def load(name, retrain=False, **kwargs):
        calls.append((name, retrain))
        if name == "joint_world":
            return torch.nn.Identity(), {"sha256": "a" * 64}
        aligned = "a" * 64 if retrain else "b" * 64
        return torch.nn.Identity(), {"sha256": "c" * 64, "training_data": {"joint_sha256": aligned}}

    monkeypatch.setattr(ck, "load", load)
    method = JointMethod(progress=False)
    method.speech_model  # noqa: B018
    assert calls == [("joint_world", False), ("joint_speech", False), ("joint_speech", True)]
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "aligned to another 'joint_world'" in err[0]
    assert method.manifests["joint_speech"]["training_data"]["joint_sha256"] == "a" * 64
    calls.clear()
    matched = JointMethod(progress=False)
    monkeypatch.setattr(ck, "load", lambda name, retrain=False, **kw: (
        calls.append((name, retrain)) or torch.nn.Identity(),
        {"sha256": "a" * 64, "training_data": {"joint_sha256": "a" * 64}}))
    matched.speech_model  # noqa: B018
    assert calls == [("joint_world", False), ("joint_speech", False)]
