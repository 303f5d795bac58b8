"""Exercise of notebook 10, section 6 (compact models): int8 quantisation per output channel.

The weight is the projection head of the joint model's image tower (the committed
``joint_world``: ``model.image.proj.weight``, float32 [256, 96]). Symmetric int8 quantisation
with one scale per output channel (row): ``scale_r = max_j |w_rj| / 127``,
``q = round(w / scale_r)``, dequantised ``q * scale_r``; the answer is the mean absolute
dequantisation error over all 24,576 weights.
"""
from __future__ import annotations

import functools

import numpy as np

from mmkit import checkpoints
from mmkit.exercises import Feedback, not_answered, number

#: the checkpoint whose image projection head is quantised
CHECKPOINT = "joint_world"


@functools.lru_cache(maxsize=1)
def _weight() -> np.ndarray:
    model, _ = checkpoints.load(CHECKPOINT, progress=False)
    return model.image.proj.weight.detach().cpu().numpy().astype(np.float32)


def _mean_error(w: np.ndarray, axis: int | None) -> float:
    """Mean |dequantised - w| of symmetric int8 with scales over ``axis`` (None: per tensor;
    1: one scale per row, i.e. per output channel; 0: per input column)."""
    if axis is None:
        scale = np.abs(w).max() / 127
    else:
        scale = np.abs(w).max(axis=axis, keepdims=True) / 127
    return float(np.abs(np.clip(np.round(w / scale), -127, 127) * scale - w).mean())


def _torch_per_channel_error(w: np.ndarray) -> float:
    """The reference: PyTorch's own per-channel int8 quantiser (symmetric scales, zero point 0,
    output channels on axis 0), dequantised."""
    import warnings

    import torch

    t = torch.from_numpy(w)
    scales = t.abs().amax(dim=1).double() / 127
    with warnings.catch_warnings():          # quantized tensors are deprecated in favour of torchao
        warnings.simplefilter("ignore", UserWarning)
        q = torch.quantize_per_channel(t, scales, torch.zeros(len(t), dtype=torch.long), 0,
                                       torch.qint8)
    return float((q.dequantize() - t).abs().mean())


def solution_per_channel_error() -> float:
    """The mean absolute dequantisation error of ``joint_world``'s image projection weight
    [256, 96] quantised to int8 with one symmetric scale per output channel (row)."""
    w = _weight()
    scale = np.abs(w).max(axis=1, keepdims=True) / 127          # [256, 1]
    q = np.clip(np.round(w / scale), -127, 127)
    return float(np.abs(q * scale - w).mean())


def check_per_channel_error(answer: float | None) -> Feedback:
    """The learner's mean absolute per-output-channel dequantisation error (a float),
    accepted within a relative 1e-3 of PyTorch's per-channel quantiser's error."""
    if answer is None:
        return not_answered()
    value = number(answer)
    if value is None:
        return Feedback(False, f"answer with one number (the mean absolute error), got "
                               f"{answer!r}")
    w = _weight()
    expected = _torch_per_channel_error(w)
    per_tensor = _mean_error(w, None)

    def near(x: float) -> bool:
        return abs(value - x) <= 1e-3 * abs(x)

    if near(expected):
        return Feedback(True, f"mean error {expected:.3g} per channel against {per_tensor:.3g} "
                              f"with one scale for the whole matrix: rows with small weights "
                              "get finer steps")
    if near(per_tensor):
        return Feedback(False, "that is one scale for the whole matrix; take max |w| over each "
                               "row (axis=1, keepdims=True) instead")
    if near(_mean_error(w, 0)):
        return Feedback(False, "those are scales per input column; an output channel is a row "
                               "of the [256, 96] weight (max over axis=1)")
    scale = np.abs(w).max(axis=1, keepdims=True) / 127
    if near(float(np.abs(np.round(w / scale) * scale - w).max())):
        return Feedback(False, "that is the largest error; the task asks for the mean of "
                               "|q * scale - w| over all weights")
    return Feedback(False, "scale = np.abs(w).max(axis=1, keepdims=True) / 127, "
                           "q = np.round(w / scale), then np.abs(q * scale - w).mean()")


__all__ = ["check_per_channel_error", "solution_per_channel_error"]
