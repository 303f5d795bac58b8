"""``make lab`` starts JupyterLab offline on notebook 00: the server answers on 127.0.0.1, serves
the course's notebooks and the lab page, and asks nothing of the network."""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.subprocess]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_make_lab_command_starts_jupyterlab_on_notebook_00(tmp_path):
    make = (ROOT / "Makefile").read_text()
    line = re.search(r"^lab:.*\n\t((?:.*\\\n\t)*.+)$", make, re.M).group(1)
    assert "jupyter lab" in line and "notebooks/00_quickstart.ipynb" in line
    port = _free_port()
    cmd = [str(Path(sys.executable).parent / "jupyter"), "lab", "--no-browser",
           "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
           "--IdentityProvider.token=test", "--allow-root", "--ServerApp.port_retries=0",
           f"--ServerApp.root_dir={ROOT}", "notebooks/00_quickstart.ipynb"]
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt"),
           "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg"), "HF_HUB_OFFLINE": "1",
           "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9"}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        deadline = time.time() + 90
        while True:
            try:
                with opener.open(f"{base}/api/status?token=test", timeout=5) as r:
                    assert r.status == 200
                    break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise AssertionError("JupyterLab did not start:\n" + proc.stdout.read())
                time.sleep(1)
        with opener.open(f"{base}/api/contents/notebooks?token=test", timeout=10) as r:
            names = {c["name"] for c in json.load(r)["content"]}
        assert "00_quickstart.ipynb" in names
        with opener.open(f"{base}/lab/tree/notebooks/00_quickstart.ipynb?token=test",
                         timeout=10) as r:
            page = r.read().decode()
        assert r.status == 200 and "JupyterLab" in page
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
