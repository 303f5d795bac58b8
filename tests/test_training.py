"""The training bookkeeping (:mod:`mmkit.training`): loss windows against plain means, the
sample-weighted epoch mean against the sum the loops used to write out, the thread count
restored whatever happens, seeding, and tiny trainings that give the same losses twice."""
from __future__ import annotations

import textwrap

import numpy as np
import pytest
import torch

from mmkit import checkpoints
from mmkit.errors import InputError
from mmkit.training import WINDOW, LossLog, progress_bar, seeded, torch_threads

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _losses(n: int, seed: int = 0) -> list[float]:
    return [float(v) for v in np.random.default_rng(seed).gamma(2.0, 1.5, n)]


# ------------------------------------------------------------------ loss windows
@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 8, 19, 79, 80, 81, 100, 250])
def test_default_windows_are_the_mean_of_the_first_and_last_quarter_up_to_20_steps(n):
    values = _losses(n, seed=n)
    log = LossLog()
    for v in values:
        log.add(v)
    w = max(1, min(20, n // 4))
    assert log.window() == w and len(log) == n and log.steps == values
    first, last = values[:w], values[n - w:]
    assert log.start() == pytest.approx(sum(first) / len(first), rel=1e-12)
    assert log.end() == pytest.approx(sum(last) / len(last), rel=1e-12)
    # exactly the expression the trainers computed by hand (the reported metrics keep their bits)
    assert log.start() == float(np.mean(values[:w]))
    assert log.end() == float(np.mean(values[-w:]))


@pytest.mark.parametrize(("n", "size"), [(1, 20), (3, 20), (19, 20), (20, 20), (57, 20),
                                         (99, 100), (250, 100), (5, 1)])
def test_fixed_windows_take_every_step_when_there_are_fewer(n, size):
    values = _losses(n, seed=3)
    log = LossLog()
    for v in values:
        log.add(v)
    first, last = values[:min(n, size)], values[max(0, n - size):]
    assert log.start(size) == pytest.approx(sum(first) / len(first), rel=1e-12)
    assert log.end(size) == pytest.approx(sum(last) / len(last), rel=1e-12)
    got = log.metrics("first", "last", size)
    assert list(got) == ["first", "last"]
    assert got == {"first": round(float(np.mean(values[:size])), 4),
                   "last": round(float(np.mean(values[-size:])), 4)}


def test_an_empty_log_has_nan_windows_and_bad_windows_are_refused():
    log = LossLog()
    assert np.isnan(log.start()) and np.isnan(log.end()) and np.isnan(log.start(20))
    with pytest.raises(InputError, match="window"):
        log.start(0)
    with pytest.raises(InputError, match="every"):
        LossLog(every=0)
    with pytest.raises(InputError, match="no step"):
        log.end_epoch()


def test_epoch_means_are_weighted_by_batch_size_and_summed_in_step_order():
    rng = np.random.default_rng(1)
    log = LossLog()
    want = []
    for sizes in ([32, 32, 7], [32, 32, 32, 1], [5]):
        values = rng.random(len(sizes)) * 3
        total, count = 0.0, 0
        for v, n in zip(values, sizes):
            log.add(float(v), n=n)
            total, count = total + float(v) * n, count + n
        assert log.end_epoch() == total / count               # the loops' own sum, bit for bit
        assert total / count == pytest.approx(np.average(values, weights=sizes), rel=1e-12)
        want.append(total / count)
    assert log.epochs == want and len(log.steps) == 8


def test_add_detaches_tensors_and_returns_a_python_float():
    w = torch.tensor([1.5, -2.0], requires_grad=True)
    loss = (w ** 2).sum()
    log = LossLog()
    value = log.add(loss)
    assert isinstance(value, float) and value == 6.25 and log.steps == [6.25]
    assert log.add(np.float32(0.5)) == 0.5


class _Bar:
    """Records what LossLog does to a progress bar."""

    def __init__(self):
        self.n, self.postfix = 0, []

    def update(self, k):
        self.n += k

    def set_postfix(self, **kw):
        self.postfix.append((self.n, kw))


def test_the_bar_advances_every_step_and_shows_the_running_loss():
    bar = _Bar()
    log = LossLog(bar, every=3)
    values = [float(v) for v in range(1, 8)]
    for v in values:
        log.add(v)
    assert bar.n == 7
    assert bar.postfix == [(3, {"loss": "2.000"}), (6, {"loss": "5.000"})]
    assert log.recent(3) == pytest.approx(np.mean(values[-3:]))
    assert LossLog().every == WINDOW == 20


def test_progress_bar_is_off_without_progress_and_leaves_nothing():
    bar = progress_bar(range(3), progress=False, desc="x")
    assert bar.disable and not bar.leave and list(bar) == [0, 1, 2]
    manual = progress_bar(total=5, progress=False)
    assert manual.total == 5
    manual.close()


# ------------------------------------------------------------------ seeds and threads
def test_seeded_gives_the_same_draws_twice():
    def draws(seed):
        rng = seeded(seed)
        return rng.integers(0, 1000, 8).tolist(), torch.rand(4).tolist(), rng.random()

    assert draws(5) == draws(5)
    assert draws(5) != draws(6)
    rng = seeded(np.int64(7))
    assert isinstance(rng, np.random.Generator)
    assert torch.initial_seed() == 7


def test_torch_threads_sets_and_restores_the_count_even_when_the_body_raises():
    before = torch.get_num_threads()
    other = 2 if before == 1 else 1
    with torch_threads(other):
        assert torch.get_num_threads() == other
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError, match="boom"), torch_threads(other):
        assert torch.get_num_threads() == other
        raise RuntimeError("boom")
    assert torch.get_num_threads() == before
    with torch_threads(None):
        assert torch.get_num_threads() == before
        torch.set_num_threads(other)          # a body that changes the count is undone too
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_torch_threads_refuses_a_bad_count_in_one_line(bad):
    before = torch.get_num_threads()
    with pytest.raises(InputError, match="thread count"), torch_threads(bad):
        pass
    assert torch.get_num_threads() == before


def test_train_and_save_trains_with_the_specs_thread_count(tmp_path, monkeypatch):
    """``CheckpointSpec.threads`` is set while the trainer runs and restored after it, also
    when the trainer fails."""
    (tmp_path / "h8_threads_models.py").write_text(textwrap.dedent("""
        import torch
        from mmkit.checkpoints import CheckpointSpec, Trained

        SEEN = []

        def train(config, progress):
            SEEN.append(torch.get_num_threads())
            if config["fail"]:
                raise RuntimeError("trainer failed")
            return Trained(torch.nn.Linear(2, 1), {"loss": 1.0}, {})

        CHECKPOINTS = {"threads_probe": CheckpointSpec(
            name="threads_probe", build=lambda c: torch.nn.Linear(2, 1), train=train,
            config={"fail": False}, threads=1)}
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(checkpoints, "SPEC_MODULES", ())    # only the probe's module
    monkeypatch.setenv("MMKIT_MODEL_MODULES", "h8_threads_models")
    import h8_threads_models as mod

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        path, manifest = checkpoints.train_and_save("threads_probe", tmp_path / "out",
                                                    progress=False)
        assert mod.SEEN == [1] and torch.get_num_threads() == 2
        assert path.exists() and manifest["metrics"] == {"loss": 1.0}
        with pytest.raises(RuntimeError, match="trainer failed"):
            checkpoints.train_and_save("threads_probe", tmp_path / "out", progress=False,
                                       fail=True)
        assert mod.SEEN == [1, 1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


# ------------------------------------------------------------------ tiny trainings, twice
def _gated_run():
    from mmkit.fusion.gated import GatedFusion, train_gated

    rng = np.random.default_rng(0)
    q, g = 30, 10
    pos = np.zeros((q, g), bool)
    pos[np.arange(q), rng.integers(0, g, q)] = True
    good, noise = rng.normal(size=(q, g)) + 3 * pos, rng.normal(size=(q, g))
    torch.manual_seed(0)                      # the model's initial weights
    model = GatedFusion(2)
    return train_gated(model, [good, noise], pos, epochs=8), model


def _early_run():
    from mmkit.fusion.early import EarlyFusion, train_early_fusion

    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(40, 6)), rng.normal(size=(40, 4))
    torch.manual_seed(0)                      # the model's initial weights
    model = EarlyFusion([6, 4], [6, 4], dim=8, op="concat")
    return train_early_fusion(model, [a, b], [a, b], np.arange(40), epochs=3, batch=16), model


def _acmr_run():
    from mmkit.align.acmr import train_aligner
    from mmkit.align.features import ModalityFeatures

    rng = np.random.default_rng(0)
    n, per, d = 120, 2, 16
    labels = rng.integers(4, size=n)
    protos = rng.normal(size=(4, d))
    feats = ModalityFeatures((protos[labels] + rng.normal(size=(n, d))).astype(np.float32),
                             (np.repeat(protos[labels], per, 0)
                              + rng.normal(size=(n * per, d))).astype(np.float32),
                             (protos[labels] + rng.normal(size=(n, d))).astype(np.float32),
                             labels.astype(np.int64), np.repeat(np.arange(n), per))
    run = train_aligner(feats, np.arange(96), {"epochs": 2, "batch_size": 32, "hidden": 16,
                                               "dim": 8, "disc_hidden": 8, "n_classes": 4,
                                               "in_dim": d, "probe_every": 100})
    return run.history, run.model


@pytest.mark.parametrize("run", [_gated_run, _early_run, _acmr_run])
def test_a_tiny_training_gives_the_same_losses_and_weights_twice(run):
    first, m1 = run()
    torch.rand(7)                             # draws between runs change nothing
    np.random.default_rng().random()
    second, m2 = run()
    assert first == second and len(first) > 0
    for (k, v), (k2, v2) in zip(m1.state_dict().items(), m2.state_dict().items()):
        assert k == k2 and torch.equal(v, v2), k


def test_word2vec_reports_its_loss_windows_from_the_steps_it_took():
    """A few hundred word2vec steps: the reported first/last-100-step losses are the means of
    the logged steps, and a second run reports the same numbers."""
    from mmkit.features.word2vec import CHECKPOINTS

    spec = CHECKPOINTS["word2vec_world"]
    config = {**spec.config, "epochs": 1, "batch_size": 64, "world": {"n": 120, "seed": 1101},
              "val_world": {"n": 30, "seed": 1102}}
    a = spec.train(config, False)
    b = spec.train(config, False)
    assert a.metrics == b.metrics and a.data["steps"] == b.data["steps"] > 100
    assert a.metrics["train_loss_last_100_steps"] < a.metrics["train_loss_first_100_steps"]
