"""Checkpoints: train with the package's code, save safetensors + manifest, load with checks,
and a missing, corrupt or mismatched file gives one line and retraining, never a crash."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import mmkit.checkpoints as ck

TESTS = Path(__file__).resolve().parent


@pytest.fixture()
def toy(monkeypatch, tmp_path):
    """The toy model registered, the package and user checkpoint folders in tmp."""
    monkeypatch.syspath_prepend(str(TESTS))
    monkeypatch.setenv("MMKIT_MODEL_MODULES", "toy_checkpoint")
    monkeypatch.setenv("MMKIT_DATA", str(tmp_path / "data"))
    monkeypatch.setattr(ck, "PACKAGE_DIR", tmp_path / "package")
    import toy_checkpoint

    toy_checkpoint.CALLS["train"] = 0
    return toy_checkpoint


def test_train_and_save_writes_weights_and_manifest(toy, tmp_path):
    path, manifest = ck.train_and_save("toy", tmp_path / "out", progress=False, seed=3)
    assert path == tmp_path / "out" / "toy.safetensors"
    assert manifest["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert manifest["config"] == {"hidden": 8, "steps": 40} and manifest["seed"] == 3
    assert manifest["training_data"]["synthetic"] == {"n": 256, "seed": 123}
    assert manifest["metrics"]["last_loss"] < manifest["metrics"]["first_loss"]  # it learned
    assert manifest["wall_time_s"] >= 0 and manifest["tensors"]["0.weight"] == [8, 4]
    model, read_manifest = ck.read(ck.get_spec("toy"), tmp_path / "out")
    assert read_manifest == manifest
    from safetensors.torch import load_file

    saved = load_file(path)
    for k, v in model.state_dict().items():
        assert torch.equal(v, saved[k])
    assert not list((tmp_path / "out").glob(".*.tmp"))


def test_same_seed_same_weights(toy, tmp_path):
    a = ck.train_and_save("toy", tmp_path / "a", progress=False, seed=1)[1]["sha256"]
    b = ck.train_and_save("toy", tmp_path / "b", progress=False, seed=1)[1]["sha256"]
    c = ck.train_and_save("toy", tmp_path / "c", progress=False, seed=2)[1]["sha256"]
    assert a == b != c


def test_load_uses_the_committed_checkpoint_without_training(toy, capsys):
    ck.train_and_save("toy", None, progress=False)      # into the (tmp) package folder
    toy.CALLS["train"] = 0
    model, manifest = ck.load("toy", progress=False)
    assert toy.CALLS["train"] == 0 and not model.training
    assert capsys.readouterr().err == ""
    x = torch.randn(3, 4)
    ref, _ = ck.read(ck.get_spec("toy"), ck.PACKAGE_DIR)
    assert torch.equal(model(x), ref(x))


def _corrupt_weights(folder: Path) -> None:
    p = folder / "toy.safetensors"
    data = bytearray(p.read_bytes())
    data[-3] ^= 0xFF
    p.write_bytes(bytes(data))


def _other_config(folder: Path) -> None:
    p = folder / "toy.json"
    m = json.loads(p.read_text())
    m["config"]["hidden"] = 16
    p.write_text(json.dumps(m))


def _truncated_manifest(folder: Path) -> None:
    p = folder / "toy.json"
    p.write_text(p.read_text()[:40])


def _missing(folder: Path) -> None:
    (folder / "toy.safetensors").unlink()


def _wrong_tensors(folder: Path) -> None:
    """A consistent file (sha256 matches) whose tensors do not fit the model."""
    from safetensors.torch import save

    blob = save({"0.weight": torch.zeros(2, 2)})
    (folder / "toy.safetensors").write_bytes(blob)
    p = folder / "toy.json"
    m = json.loads(p.read_text())
    m["sha256"] = hashlib.sha256(blob).hexdigest()
    p.write_text(json.dumps(m))


@pytest.mark.parametrize("damage, says", [
    (_corrupt_weights, "sha256"), (_other_config, "another config (differs in hidden)"),
    (_truncated_manifest, "not a readable manifest"), (_missing, "no checkpoint"),
    (_wrong_tensors, "does not fit the model"),
])
def test_a_bad_checkpoint_gives_one_line_and_retraining(toy, capsys, damage, says):
    ck.train_and_save("toy", None, progress=False)
    damage(ck.PACKAGE_DIR)
    toy.CALLS["train"] = 0
    model, manifest = ck.load("toy", progress=False)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0] and "retraining" in err[0], err
    assert toy.CALLS["train"] == 1
    assert manifest["config"] == ck.get_spec("toy").config
    # the retrained copy is kept in data/checkpoints and used next time, without training
    assert (ck.user_dir() / "toy.safetensors").is_file()
    ck.load("toy", progress=False)
    assert toy.CALLS["train"] == 1 and capsys.readouterr().err == ""


def test_retrain_flag_and_config_override(toy):
    ck.train_and_save("toy", None, progress=False)
    toy.CALLS["train"] = 0
    ck.load("toy", retrain=True, progress=False)
    assert toy.CALLS["train"] == 1
    model, manifest = ck.load("toy", progress=False, config={"hidden": 4, "steps": 5})
    assert manifest["config"] == {"hidden": 4, "steps": 5}
    assert model[0].weight.shape == (4, 4)
    with pytest.raises(ck.InputError, match="unknown config key"):
        ck.train_and_save("toy", None, progress=False, width=3)
    with pytest.raises(ck.InputError, match="unknown model 'nope'"):
        ck.load("nope")


def _cli(tmp_path, *args):
    env = {**os.environ, "MMKIT_MODEL_MODULES": "toy_checkpoint", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
           "MMKIT_DATA": str(tmp_path / "data")}
    return subprocess.run([sys.executable, "-m", "mmkit", "train", *args], cwd=tmp_path,
                          capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.slow
@pytest.mark.subprocess
def test_train_command(tmp_path):
    listed = _cli(tmp_path, "--list")
    assert listed.returncode == 0 and "toy" in listed.stdout
    done = _cli(tmp_path, "toy", "--out", "ckpt", "-q", "--set", "steps=7")
    assert done.returncode == 0, done.stderr
    assert "trained toy" in done.stdout and done.stderr == ""
    manifest = json.loads((tmp_path / "ckpt" / "toy.json").read_text())
    assert manifest["config"] == {"hidden": 8, "steps": 7}
    for args, says in ((["toy", "--set", "width=3"], "--set 'width=3'"),
                       (["toy", "--set", "steps"], "KEY=VALUE"),
                       (["nope"], "unknown model 'nope'"),
                       (["toy", "--out", "/proc/x"], "cannot write")):
        bad = _cli(tmp_path, *args)
        lines = bad.stderr.strip().splitlines()
        assert bad.returncode == 2 and len(lines) == 1 and says in lines[0], bad.stderr
        assert lines[0].startswith("mmkit train: error: ")
