"""Compact models (mmkit.challenges.compact): the student tower, the distillation loss, int8
quantisation against float32 and against quantisation written out by hand, the committed
``joint_student`` checkpoint, and the notebook's exercise checker."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmkit import checkpoints
from mmkit.challenges import compact as C
from mmkit.errors import InputError
from mmkit.exercises.nb10 import compact as ex


@pytest.fixture(scope="module")
def joint():
    return checkpoints.load("joint_world", progress=False)[0]


@pytest.fixture(scope="module")
def calib():
    return C.calibration_images(48, seed=3)


def test_student_output_shape_dim_and_size():
    s = C.StudentTower(width=16, dim=256).eval()
    out = s(torch.randn(5, 3, 64, 64))
    assert out.shape == (5, 256) and out.dtype == torch.float32
    teacher_params = 163_891                 # the joint model's image tower without its head
    assert C.count_parameters(s) * 4 <= teacher_params
    assert C.StudentTower(width=8, dim=32)(torch.randn(2, 3, 64, 64)).shape == (2, 32)


def test_teacher_tower_is_encode_image(joint):
    tower = C.teacher_tower(joint)
    x = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        np.testing.assert_allclose(tower(x).numpy(), joint.encode_image(x).numpy(),
                                   rtol=1e-5, atol=1e-5)
    assert C.count_parameters(tower) == 163_891


def test_distill_loss_naive_reference_and_determinism():
    g = torch.Generator().manual_seed(1)
    s, t, c = torch.randn(8, 16, generator=g), torch.randn(8, 16, generator=g), \
        torch.randn(8, 16, generator=g)
    t, c = F.normalize(t, dim=1), F.normalize(c, dim=1)
    # naive: per-row cosine with numpy, then KL of softmaxes written out
    sn, tn, cn = s.numpy(), t.numpy(), c.numpy()
    cos = (sn * tn).sum(1) / np.linalg.norm(sn, axis=1)
    def softmax(z):
        e = np.exp(z - z.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)
    p_t = softmax(cn @ tn.T / 0.05)
    p_s = softmax(cn @ (sn / np.linalg.norm(sn, axis=1, keepdims=True)).T / 0.05)
    kl = (p_t * (np.log(p_t) - np.log(p_s))).sum(1).mean()
    assert float(C.distill_loss(s, t)) == pytest.approx(float((1 - cos).mean()), abs=1e-6)
    got = C.distill_loss(s, t, c, kd_weight=0.5, temperature=0.05)
    assert float(got) == pytest.approx(float((1 - cos).mean() + 0.5 * kl), rel=1e-4)
    assert float(C.distill_loss(s, t, c)) == float(C.distill_loss(s.clone(), t.clone(), c))
    assert float(C.distill_loss(t * 3.0, t)) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(InputError):
        C.distill_loss(s, t[:4])


def test_hand_quantize_matches_torch_dynamic_weight(joint):
    tower = C.teacher_tower(joint)
    w = tower.cnn.proj.weight.detach()
    q, scale = C.hand_quantize(w)
    assert q.dtype == np.int8 and scale.shape == ()
    assert float(scale) == pytest.approx(float(w.abs().max()) / 127, rel=1e-6)
    torch_w = C.quantize_int8(tower).cnn.proj.weight()          # torch's int8 weight
    diff = np.abs(q.astype(int) - torch_w.int_repr().numpy().astype(int))
    assert diff.max() <= 1                     # torch divides max|w| by 127.5, not 127
    # per output channel: never worse per row than one scale for the whole matrix
    qc, sc = C.hand_quantize(w, axis=0)
    assert sc.shape == (256,)
    err_c = np.abs(qc * sc[:, None] - w.numpy()).max(1)
    err_t = np.abs(q * scale - w.numpy()).max(1)
    assert np.all(err_c <= sc / 2 + 1e-7) and np.all(err_c <= err_t + 1e-7)
    with pytest.raises(InputError):
        C.hand_quantize(w, axis=2)


@pytest.mark.slow
def test_int8_close_to_fp32(joint, calib):
    """Embeddings of int8 towers stay within cosine 0.95 (mean 0.98) of float32 on fresh
    scenes not used for calibration."""
    x = C.calibration_images(32, seed=4)
    tower = C.teacher_tower(joint)
    student = checkpoints.load("joint_student", progress=False)[0]
    for model, static in ((tower, True), (tower, False), (student, True)):
        q = C.quantize_int8(model, calib if static else None)
        a = C.teacher_image_embeddings(model, x)
        b = C.teacher_image_embeddings(q, x)
        cos = (a * b).sum(1)
        assert float(cos.min()) > 0.95 and float(cos.mean()) > 0.98
        assert C.state_bytes(q) < C.state_bytes(model)
    # the original is untouched and still float
    assert isinstance(tower.cnn.proj, nn.Linear)


def test_quantize_int8_bad_input(calib):
    with pytest.raises(InputError):
        C.quantize_int8("not a module")
    with pytest.raises(InputError):
        C.quantize_int8(C.StudentTower(), calib[0])
    with pytest.raises(InputError):
        C.quantize_int8(C.StudentTower(), calib, backend="nope")
    with pytest.raises(InputError):
        C.calibration_images(8, seed=0)


def test_checkpoint_loads_and_manifest():
    model, manifest = checkpoints.load("joint_student", progress=False)
    assert isinstance(model, C.StudentTower) and not model.training
    spec = checkpoints.get_spec("joint_student")
    assert manifest["config"] == spec.config
    assert manifest["training_data"]["world"]["seed"] != 0
    on_disk = json.loads((checkpoints.PACKAGE_DIR / "joint_student.json").read_text())
    assert on_disk["sha256"] == checkpoints.file_sha256(
        checkpoints.PACKAGE_DIR / "joint_student.safetensors")
    assert on_disk["bytes"] < 2_000_000
    m = manifest["metrics"]
    assert m["train_loss_end"] < m["train_loss_start"]
    assert m["parameters"] == C.count_parameters(model)
    assert 0.5 < m["eval_cosine_to_teacher"] <= 1.0
    assert 0 < m["eval_student_t2i_R@1"] <= m["eval_teacher_t2i_R@1"] + 0.05
    joint_sha = checkpoints.locate("joint_world")["sha256"]
    assert manifest["training_data"]["teacher_sha256"] == joint_sha


def test_latency_and_state_bytes():
    s = C.StudentTower().eval()
    assert C.latency_ms(s, 2, repeats=2) > 0
    assert abs(C.state_bytes(s) - 4 * C.count_parameters(s)) < 20_000
    with pytest.raises(InputError):
        C.latency_ms(s, 0)


def test_checker():
    assert not ex.check_per_channel_error(None)
    assert "no answer yet" in str(ex.check_per_channel_error(None))
    right = ex.solution_per_channel_error()
    assert ex.check_per_channel_error(right)
    # independent reference: torch's per-channel int8 with symmetric scales max|w|/127
    w = torch.from_numpy(ex._weight())
    scale = w.abs().amax(1) / 127
    q = torch.quantize_per_channel(w, scale.double(), torch.zeros(256, dtype=torch.long), 0,
                                   torch.qint8)
    assert float((q.dequantize() - w).abs().mean()) == pytest.approx(right, rel=1e-4)
    per_tensor = float(np.abs(np.round(w.numpy() / (w.abs().max().item() / 127))
                              * (w.abs().max().item() / 127) - w.numpy()).mean())
    assert per_tensor > right
    assert not ex.check_per_channel_error(per_tensor)
    assert not ex.check_per_channel_error(right * 1.1)
    assert not ex.check_per_channel_error("abc")
