"""The ``mmkit`` command at its edges, run for real in a subprocess.

The project's rule for bad input on the command line: ONE line on stderr of the form
``mmkit CMD: error: ...`` that names the problem, exit status 2, nothing on stdout, nothing
(half-)written, no traceback. Also checked here: ``-q`` really is quiet, an export is
complete, leftovers of a killed export are cleaned up by the next export (and only those),
and a small ``demo --json`` run writes what it promises.

Every run happens in ``tmp_path`` (its cwd) with ``HF_HUB_OFFLINE=1`` and ``MPLBACKEND=Agg``.
Worlds are kept small (``--n 100`` at most where a run must complete).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.subprocess   # every test here runs the real command

TIMEOUT = 120  # seconds for one quick command; the machine is small and shared


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TQDM_")}
    env.update(HF_HUB_OFFLINE="1", MPLBACKEND="Agg", PYTHONUNBUFFERED="1")
    env.pop("PYTHONWARNINGS", None)
    return env


def run_mmkit(cwd: Path, *args: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    """Run ``python -m mmkit ARGS`` in ``cwd``; returns the finished process (text output)."""
    return subprocess.run([sys.executable, "-m", "mmkit", *args], cwd=cwd, env=_env(),
                          capture_output=True, text=True, timeout=timeout)


def snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root`` (hidden ones included) -> 'dir' or a hash of the file."""
    state = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            state[rel] = "link:" + os.readlink(path)
        elif path.is_dir():
            state[rel] = "dir"
        else:
            state[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return state


def temporaries(folder: Path) -> list[str]:
    """Names of hidden atomic-write temporaries (``.NAME.*.tmp``) anywhere under ``folder``."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob(".*.tmp"))


def error_line(proc: subprocess.CompletedProcess, cmd: str | None) -> str:
    """Check that ``proc`` failed by the rule and return its one stderr line.

    ``cmd``: the subcommand the line must start with (``mmkit CMD: error: ``); ``None``
    only checks the ``mmkit`` prefix and ``: error: ``.
    """
    err = proc.stderr
    assert "Traceback" not in err, err
    assert proc.returncode == 2, (proc.returncode, err)
    assert proc.stdout == "", proc.stdout
    assert err.endswith("\n"), repr(err)
    line = err[:-1]
    assert line.strip(), "stderr is empty"
    assert "\n" not in line and "\r" not in line, f"more than one line on stderr: {err!r}"
    if cmd is None:
        assert line.startswith("mmkit") and ": error: " in line, line
    else:
        assert line.startswith(f"mmkit {cmd}: error: "), line
    return line


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """``tmp_path`` with the inputs the error cases refer to.

    ``afile``: a regular file; ``full/``: a non-empty folder; ``good.run``/``good.qrels``:
    a valid run and qrels; ``bad.run``: a run whose line 2 has 4 fields instead of 6.
    """
    (tmp_path / "afile").write_text("precious\n")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("keep me\n")
    (tmp_path / "good.qrels").write_text("q1 0 d1 1\nq1 0 d2 0\nq2 0 d3 2\n")
    (tmp_path / "good.run").write_text("q1 Q0 d1 1 0.9 t\nq1 Q0 d2 2 0.5 t\n"
                                       "q2 Q0 d3 1 0.7 t\n")
    (tmp_path / "bad.run").write_text("q1 Q0 d1 1 0.9 t\nq1 Q0 d2 2\n")
    return tmp_path


# --------------------------------------------------------------------------------------
# Bad input: one line, exit 2, nothing written
# --------------------------------------------------------------------------------------

BAD_INPUT = [
    # (subcommand, args, substrings the error line must contain)
    pytest.param("demo", ["--n", "12", "--out", "d"], ["n=12", "train", "test", "--n 100"],
                 id="demo-n12-too-small"),
    pytest.param("demo", ["--n", "0", "--out", "d"], ["--n", "0"], id="demo-n0"),
    pytest.param("demo", ["--n", "abc", "--out", "d"], ["--n", "'abc'"], id="demo-n-abc"),
    pytest.param("demo", ["--seed", "-1", "--out", "d"], ["--seed", "-1"], id="demo-seed-neg"),
    pytest.param("demo", ["--method", "nope", "--out", "d"], ["--method", "'nope'"],
                 id="demo-method-unknown"),
    pytest.param("demo", ["--method", "baseline", "--retrain", "--out", "d"],
                 ["--retrain", "joint", "'baseline'"], id="demo-retrain-baseline"),
    pytest.param("demo", ["--method", "joint", "--model", "m", "--out", "d"],
                 ["--model is for --method clip", "'joint'"], id="demo-model-not-clip"),
    pytest.param("demo", ["--method", "clip", "--model", "nowhere", "--out", "d"],
                 ["--model nowhere", "no local CLIP weights"], id="demo-clip-no-weights"),
    pytest.param("search", ["--index", "i", "--not", "a dog"],
                 ["negative weight", "--text"], id="search-only-negative"),
    pytest.param("search", ["--index", "i", "--text", "0:a cat"], ["non-zero"],
                 id="search-zero-weight"),
    pytest.param("demo", ["--n", "12", "--out", "/proc/x/y"], ["--out", "/proc/x/y"],
                 id="demo-out-unwritable"),
    pytest.param("demo", ["--n", "12", "--out", "afile"], ["--out", "afile", "not a folder"],
                 id="demo-out-is-file"),
    pytest.param("world", ["--out", "w", "--imbalance", "nan"], ["--imbalance", "nan"],
                 id="world-imbalance-nan"),
    pytest.param("world", ["--out", "w", "--imbalance", "inf"], ["--imbalance", "inf"],
                 id="world-imbalance-inf"),
    pytest.param("world", ["--out", "w", "--imbalance", "0.5"], ["--imbalance", "0.5"],
                 id="world-imbalance-below-1"),
    pytest.param("world", ["--out", "w", "--image-size", "20.5"], ["--image-size", "20.5"],
                 id="world-image-size-float"),
    pytest.param("world", ["--out", "w", "--image-size", "8"], ["--image-size", "8", "16"],
                 id="world-image-size-small"),
    pytest.param("world", ["--out", "w", "--n", "0"], ["--n", "0"], id="world-n0"),
    pytest.param("world", ["--out", "full", "--n", "5"], ["--out", "full", "not empty"],
                 id="world-out-not-empty"),
    pytest.param("world", ["--out", "afile", "--n", "5"], ["--out", "afile", "not a folder"],
                 id="world-out-is-file"),
    pytest.param("world", ["--out", "afile/sub", "--n", "5"], ["--out", "afile/sub"],
                 id="world-out-parent-is-file"),
    pytest.param("world", ["--out", "/proc/x", "--n", "5"], ["--out", "/proc/x"],
                 id="world-out-unwritable"),
    pytest.param("world", ["--n", "5"], ["--out", "required"], id="world-out-missing"),
    pytest.param("eval", ["--run", "good.run", "--qrels", "good.qrels", "-l", "1.5"],
                 ["--level", "1.5"], id="eval-level-float"),
    pytest.param("eval", ["--run", "good.run", "--qrels", "good.qrels", "-l", "0"],
                 ["--level", "got 0"], id="eval-level-0"),
    pytest.param("eval", ["--qrels", "good.qrels"], ["--run", "required"],
                 id="eval-run-missing"),
    pytest.param("eval", ["--run", "bad.run", "--qrels", "good.qrels"], ["bad.run:2"],
                 id="eval-run-malformed"),
    pytest.param("eval", ["--run", "good.run", "--qrels", "good.qrels", "-m", "map", "nope"],
                 ["'nope'"], id="eval-metric-unknown"),
    pytest.param("eval", ["--run", "good.run", "--qrels", "missing.qrels"],
                 ["missing.qrels"], id="eval-qrels-missing-file"),
    pytest.param("eval", ["--run", "missing.run", "--qrels", "good.qrels"],
                 ["missing.run"], id="eval-run-missing-file"),
]


@pytest.mark.parametrize("cmd, args, needles", BAD_INPUT)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(workdir, cmd, args, needles):
    """Bad input ends in one ``mmkit CMD: error:`` line naming the problem, exit status 2,
    empty stdout, and leaves the working folder exactly as it was (no output folder, no
    hidden ``.NAME.*.tmp`` temporaries, the existing file and folder untouched)."""
    before = snapshot(workdir)
    proc = run_mmkit(workdir, cmd, *args)
    line = error_line(proc, cmd)
    for needle in needles:
        assert needle in line, f"{needle!r} not in {line!r}"
    assert snapshot(workdir) == before
    assert temporaries(workdir) == []
    assert not Path("/proc/x").exists()


def test_demo_too_small_reports_the_actual_split_sizes(workdir):
    """``demo --n 12``: the message gives the world's real train/test counts and the
    minimums, and suggests a larger ``--n``; the folder for ``--out`` is not created."""
    from mmkit.data.world import World, WorldConfig
    from mmkit.demo import MIN_TEST, MIN_TRAIN

    world = World(WorldConfig(n=12, seed=0), progress=False)
    n_train, n_test = len(world.indices("train")), len(world.indices("test"))
    proc = run_mmkit(workdir, "demo", "--n", "12", "-q", "--out", "small")
    line = error_line(proc, "demo")
    assert f"has {n_train} train and {n_test} test scenes" in line, line
    assert f"at least {MIN_TRAIN} and {MIN_TEST}" in line, line
    assert re.search(r"use --n \d+ or more", line), line
    assert not (workdir / "small").exists()


@pytest.mark.parametrize("cmd, args", [
    pytest.param("demo", ["--n", "12", "--out", "d"], id="demo"),
    pytest.param("world", ["--out", "w", "--n", "5"], id="world"),
    pytest.param("eval", ["--run", "good.run", "--qrels", "good.qrels"], id="eval"),
])
def test_unknown_option_is_one_line_naming_it(workdir, cmd, args):
    """An unknown option: one error line that names it, exit status 2, nothing written."""
    before = snapshot(workdir)
    proc = run_mmkit(workdir, cmd, *args, "--bogus")
    line = error_line(proc, None)
    assert "--bogus" in line, line
    assert snapshot(workdir) == before


@pytest.mark.parametrize("cmd, args", [
    pytest.param("demo", ["--n", "12", "--out", "d"], id="demo"),
    pytest.param("world", ["--out", "w", "--n", "5"], id="world"),
    pytest.param("eval", ["--run", "good.run", "--qrels", "good.qrels"], id="eval"),
])
def test_unknown_option_line_names_the_subcommand(workdir, cmd, args):
    """The unknown-option line has the rule's form ``mmkit CMD: error: ...`` too."""
    proc = run_mmkit(workdir, cmd, *args, "--bogus")
    assert proc.stderr.startswith(f"mmkit {cmd}: error: "), proc.stderr


@pytest.mark.parametrize("content, where", [
    pytest.param("q1 Q0 d1 x 0.9 t\n", "bad.run:1", id="rank-not-integer"),
    pytest.param("q1 Q0 d1 1 0.9 t\nq1 Q0 d2 2 abc t\n", "bad.run:2", id="score-not-number"),
    pytest.param("q1 Q0 d1 1 0.9 t\n\nq1 Q0 d2 2 nan t\n", "bad.run:3", id="score-nan"),
    pytest.param("q1 Q0 d1 1 0.9 t\nq1 Q0 d1 2 0.5 t\n", "bad.run:2", id="duplicate-doc"),
    pytest.param(b"q1 Q0 d1 1 0.9 t\nq1 Q0 \xff 2 0.5 t\n", "bad.run:2", id="not-utf8"),
    pytest.param("q1 Q0 d1 1 0.9 t extra\n", "bad.run:1", id="too-many-fields"),
])
def test_eval_malformed_run_names_file_and_line(workdir, content, where):
    """Every kind of malformed run line is reported as ``FILE:LINE: ...`` (blank lines still
    count for the line number), in one line with exit status 2."""
    path = workdir / "bad.run"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    proc = run_mmkit(workdir, "eval", "--run", "bad.run", "--qrels", "good.qrels")
    line = error_line(proc, "eval")
    assert f"eval: error: {where}: " in line, line


def test_eval_malformed_qrels_names_file_and_line(workdir):
    """A qrels line whose relevance is not an integer is reported as ``FILE:LINE``."""
    (workdir / "bad.qrels").write_text("q1 0 d1 1\nq1 0 d2 1.5\n")
    proc = run_mmkit(workdir, "eval", "--run", "good.run", "--qrels", "bad.qrels")
    line = error_line(proc, "eval")
    assert "bad.qrels:2" in line and "'1.5'" in line, line


def test_eval_good_input_succeeds(workdir):
    """Control for the eval cases: the same files, well formed, evaluate with exit 0."""
    proc = run_mmkit(workdir, "eval", "--run", "good.run", "--qrels", "good.qrels",
                     "-m", "map", "num_q", "--json")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert json.loads(proc.stdout)["metrics"] == {"map": 1.0, "num_q": 2}


# --------------------------------------------------------------------------------------
# Success paths at the edges
# --------------------------------------------------------------------------------------

def _assert_complete_export(folder: Path, n: int) -> None:
    assert folder.is_dir()
    data = json.loads((folder / "dataset_world.json").read_text())
    assert len(data["images"]) == n
    assert len(list((folder / "images").glob("*.png"))) == n
    assert len(list((folder / "audio").glob("*.wav"))) == n
    for name in ("attributes.csv", "classes.txt", "world.json"):
        assert (folder / name).is_file(), name
    assert temporaries(folder.parent) == []


def test_world_quiet_prints_nothing_and_export_is_complete(tmp_path):
    """``world --n 30 -q`` prints nothing at all (no progress bars on stderr, no summary on
    stdout) and the export is complete: dataset_world.json, 30 PNGs, 30 WAVs."""
    proc = run_mmkit(tmp_path, "world", "--out", "w", "--n", "30", "-q")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr == ""
    _assert_complete_export(tmp_path / "w", 30)


def test_world_without_quiet_reports_progress_and_summary(tmp_path):
    """Control for ``-q``: without it, the same run shows progress on stderr and the
    summary line on stdout (so the quiet test is not vacuous)."""
    proc = run_mmkit(tmp_path, "world", "--out", "w", "--n", "30")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() != ""
    assert "Traceback" not in proc.stderr
    assert "wrote 30 images" in proc.stdout
    _assert_complete_export(tmp_path / "w", 30)


@pytest.mark.slow
def test_killed_export_leaves_temporary_that_next_export_removes(tmp_path):
    """A ``world`` export killed with SIGKILL leaves its hidden ``.NAME.PID.*.tmp`` sibling
    (and no ``NAME``); the next export to the same folder succeeds, removes the leftover and
    says so in one stderr note (even with ``-q``), and prints nothing else.

    The killed run had ``--n 3000 -q``: it must not have printed progress bars either
    (bars used to be gated on n >= 3000 rather than on ``-q``)."""
    parent = tmp_path / "exports"
    parent.mkdir()
    out = parent / "big"
    err_log = tmp_path / "killed.stderr"
    with open(err_log, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "mmkit", "world", "--out", str(out),
                                 "--n", "3000", "-q"], cwd=tmp_path, env=_env(),
                                stdout=subprocess.DEVNULL, stderr=err)
    try:
        pattern = f".big.{proc.pid}.*.tmp"
        # wait for a state, not a time: the export's first image file. The world is then
        # built and the write loop under way, so any progress bar would already be out.
        first_image = f"{pattern}/images/000000.png"
        deadline = time.monotonic() + 300     # generous: the machine may be busy
        while time.monotonic() < deadline and proc.poll() is None:
            if list(parent.glob(first_image)):
                break
            time.sleep(0.02)
        assert proc.poll() is None, f"the export ended (rc {proc.returncode}) before the kill"
        assert list(parent.glob(first_image)), f"no {first_image} in {parent} within 300 s"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)  # reaped: its pid is no longer alive
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert err_log.read_bytes() == b"", "the -q run printed on stderr before it was killed"
    leftovers = list(parent.glob(pattern))
    assert len(leftovers) == 1, leftovers
    leftover = leftovers[0]
    assert leftover.is_dir(), "SIGKILL gives no chance to clean up: the leftover stays"
    assert not out.exists()

    again = run_mmkit(tmp_path, "world", "--out", str(out), "--n", "20", "-q")
    assert again.returncode == 0, again.stderr
    assert again.stdout == ""
    assert again.stderr == f"removed {leftover.name}, left by an interrupted export\n"
    assert not leftover.exists()
    assert list(parent.glob(".big.*.tmp")) == []
    _assert_complete_export(out, 20)


def test_export_keeps_temporaries_it_does_not_own_as_stale(tmp_path):
    """Only temporaries of a dead process are removed: one named after a LIVE process (this
    test's own pid) and ones whose pid part is not a number, or that belong to another
    target, are left alone, and the quiet export then prints nothing."""
    live = tmp_path / f".out.{os.getpid()}.abc.tmp"
    live.mkdir()
    (live / "partial.png").write_bytes(b"not yet")
    others = [tmp_path / ".out.notapid.tmp", tmp_path / ".other.1.x.tmp"]
    for path in others:
        path.mkdir()
    proc = run_mmkit(tmp_path, "world", "--out", "out", "--n", "20", "-q")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "" and proc.stderr == ""
    assert (live / "partial.png").read_bytes() == b"not yet"
    for path in others:
        assert path.is_dir(), path
    out = tmp_path / "out"
    data = json.loads((out / "dataset_world.json").read_text())
    assert len(data["images"]) == 20
    assert len(list((out / "images").glob("*.png"))) == 20
    assert len(list((out / "audio").glob("*.wav"))) == 20


@pytest.mark.slow
def test_demo_small_json_run_writes_gallery_and_scores(tmp_path):
    """``demo --n 100 -q --json --out DIR`` succeeds quietly, prints parseable JSON whose
    ``figure``/``scores`` point into DIR, and DIR holds ``gallery.png`` and a loadable
    ``scores.npz`` with every direction's scores and ids (no temporaries left)."""
    import numpy as np

    proc = run_mmkit(tmp_path, "demo", "--n", "100", "-q", "--json", "--out", "demo_out",
                     timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    report = json.loads(proc.stdout)
    out = tmp_path / "demo_out"
    assert (out / "gallery.png").is_file()
    assert (out / "gallery.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "scores.npz").is_file()
    assert (tmp_path / report["figure"]).resolve() == (out / "gallery.png").resolve()
    assert (tmp_path / report["scores"]).resolve() == (out / "scores.npz").resolve()
    assert report["world"]["n_images"] == 100
    assert set(report["results"]) == set(report["directions"])
    with np.load(out / "scores.npz") as npz:
        for d in report["directions"]:
            scores = npz[f"{d}/scores"]
            assert scores.shape == (len(npz[f"{d}/query_ids"]), len(npz[f"{d}/gallery_ids"]))
    assert temporaries(tmp_path) == []
