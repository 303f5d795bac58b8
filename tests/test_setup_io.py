"""mmkit.setup(), atomic writes, packaging metadata."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

import mmkit
from mmkit._io import atomic_dir, atomic_write_text

ROOT = Path(__file__).resolve().parent.parent


def test_setup_seeds_and_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("MMKIT_DATA", str(tmp_path / "d"))
    monkeypatch.setenv("MMKIT_OUT", str(tmp_path / "o"))
    cfg = mmkit.setup(seed=5, quiet=True)
    a = torch.rand(3)
    mmkit.setup(seed=5, quiet=True)
    assert torch.equal(a, torch.rand(3))
    assert cfg.data_dir.is_dir() and cfg.out_dir.is_dir()
    assert cfg.device == ("cuda" if torch.cuda.is_available() else "cpu")


def test_setup_falls_back_to_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert mmkit.setup(device="cuda", quiet=True).device == "cpu"


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "cache.txt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_dir(tmp_path / "folder") as tmp:
            (tmp / "half.txt").write_text("x")
            raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache.txt"]


def _normalise(req: str) -> str:
    return re.sub(r"\s+", "", req).lower().replace("_", "-")


def test_environment_yml_agrees_with_pyproject():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_normalise(r) for r in project["dependencies"]}
    wanted |= {_normalise(r) for r in project["optional-dependencies"]["dev"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_list = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = {_normalise(r) for r in pip_list if not r.startswith("-e")}
    assert listed == wanted
    assert any(str(d).startswith("python") for d in env["dependencies"] if isinstance(d, str))


@pytest.mark.subprocess
def test_module_entry_point():
    out = subprocess.run([sys.executable, "-m", "mmkit", "--version"], capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == f"mmkit {mmkit.__version__}"


@pytest.mark.subprocess
def test_layers_point_one_way():
    """metrics, index and data import no model code (checked in a fresh interpreter)."""
    code = ("import sys, mmkit.data, mmkit.data.export, mmkit.data.karpathy, mmkit.metrics;"
            "import importlib.util as u;"
            "mods = ['mmkit.index'] if u.find_spec('mmkit.index') else [];"
            "[__import__(m) for m in mods];"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('torchvision', 'transformers',"
            " 'sentence_transformers') or m.startswith(('mmkit.features', 'mmkit.encoders',"
            " 'mmkit.methods'))];"
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_atomic_writes_get_normal_permissions(tmp_path):
    import os

    from mmkit._io import _umask

    atomic_write_text(tmp_path / "f.txt", "x")
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o666 & ~_umask()
    with atomic_dir(tmp_path / "d") as tmp:
        (tmp / "a").write_text("y")
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o777 & ~_umask()
    assert os.access(tmp_path / "d" / "a", os.R_OK)
