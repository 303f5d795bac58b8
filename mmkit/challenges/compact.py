"""Compact models: the joint model's image tower distilled into a small student and quantised
to int8, measured side by side (notebook 10, section 6).

- :class:`StudentTower`: a small CNN (depthwise-separable blocks and a learned position embedding, so
  that global pooling still knows *where* things are) with the teacher's output dimension;
- :data:`CHECKPOINTS` ``joint_student``: the student distilled from the image tower of the
  committed ``joint_world`` on fresh scenes (``World(n=4000, seed=1)``): cosine distance to
  the teacher's L2-normalised image embeddings plus, as in CLIP-KD, the KL divergence between
  the teacher's and the student's caption -> image similarity distributions in each batch
  (:func:`distill_loss`);
- :func:`quantize_int8`: the one quantisation function (PyTorch's ``torch.ao.quantization``):
  dynamic int8 ``nn.Linear`` layers, or, given calibration images, static post-training
  quantisation in FX graph mode (x86 backend) of everything that traces, with the attention
  blocks left in float and their linear layers dynamically quantised;
- :func:`compare_compact`: parameters, size of the saved state, CPU latency (one thread,
  batch 1 and 64) and text -> image R@1 / mAP on the evaluation split, for the full tower and
  the student, each in float32 and int8; :func:`hand_quantize` is the symmetric int8 rounding
  written out.

``torch.ao.quantization`` still works in torch 2.14 but warns that it is deprecated in favour
of the separate ``torchao`` package (not installed here); the warnings are silenced inside
:func:`quantize_int8` only.
"""
from __future__ import annotations

import copy
import io
import statistics
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mmkit import checkpoints
from mmkit.checkpoints import CheckpointSpec, Trained
from mmkit.configs import Checks, DictConfig, TrainWorld, check_rate
from mmkit.data import World, WorldConfig
from mmkit.errors import InputError
from mmkit.features.image_encoder import IMAGENET_MEAN, IMAGENET_STD, images_to_tensor
from mmkit.features.visual_cnn import CBAM, SqueezeExcite, ViTBlock
from mmkit.scoring import eval_world, score_embeddings
from mmkit.training import LossLog, progress_bar, seeded, torch_threads
from mmkit.validate import integer, number, positive_int

__all__ = ["CHECKPOINTS", "COLUMNS", "NON_TRACEABLE", "TEACHER", "VARIANTS", "StudentConfig",
           "StudentTower", "build_student", "calibration_images", "compare_compact",
           "count_parameters", "distill_loss", "embed_with", "format_compact", "hand_quantize",
           "latency_ms", "quantize_int8", "state_bytes", "teacher_image_embeddings",
           "teacher_tower", "test_images", "train_student"]

#: the teacher checkpoint whose image tower is distilled and quantised
TEACHER = "joint_world"
#: the columns of :func:`compare_compact`'s table
COLUMNS: tuple[str, ...] = ("parameters", "size MB", "ms/image b1", "ms/image b64",
                            "t2i R@1", "mAP")
#: the rows of :func:`compare_compact`'s table
VARIANTS: tuple[str, ...] = ("full fp32", "full int8", "student fp32", "student int8")


# ============================================================================ the student
@dataclass(frozen=True)
class StudentConfig(DictConfig):
    """The student's architecture and its distillation (``joint_student``'s config)."""

    #: channels of the stem; the blocks have 2x and 4x as many
    width: int = 16
    #: output dimension (the teacher's joint space)
    dim: int = 256
    #: the teacher checkpoint
    teacher: str = TEACHER
    steps: int = 1000
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-4
    #: weight of the CLIP-KD term (KL between caption -> image similarity distributions)
    kd_weight: float = 1.0
    #: temperature of those distributions
    temperature: float = 0.05
    seed: int = 0
    #: the fresh scenes distilled on (never the evaluation world's seed)
    world: TrainWorld = TrainWorld(n=4000, seed=1)  # noqa: RUF009 (frozen, immutable)

    def __post_init__(self) -> None:
        checks = Checks("StudentConfig")
        for name in ("width", "dim", "steps", "batch_size"):
            checks(positive_int, getattr(self, name), name)
        checks.name_or_none(self.teacher, "teacher")
        check_rate(checks, self.lr, "lr")
        checks(number, self.weight_decay, "weight_decay", low=0)
        checks(number, self.kd_weight, "kd_weight", low=0)
        checks(number, self.temperature, "temperature", low=0, low_open=True)
        checks(integer, self.seed, "seed", low=0)
        object.__setattr__(self, "world", TrainWorld.coerce(self.world, checks, "world"))
        checks.done()


def _separable(cin: int, cout: int, pool: bool) -> nn.Sequential:
    """Depthwise 3x3 conv + pointwise 1x1 conv (MobileNet's block), BN-ReLU after each."""
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False), nn.BatchNorm2d(cin),
        nn.ReLU(), nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class StudentTower(nn.Module):
    """A compact image tower: ``forward(float32 [N, 3, 64, 64], ImageNet-normalised) ->
    float32 [N, dim]`` (unnormalised, like the teacher's ``encode_image``).

    A stride-2 3x3 stem (64 -> 32 px), two depthwise-separable blocks with max-pooling
    (32 -> 16 -> 8 px), a learned position embedding added to the 8 x 8 map and a third
    separable block over it, so that the pooled features still carry where the objects are
    (the teacher's ViT block keeps that with its position embeddings; spatial captions need
    it); then global average pooling and a linear projection to ``dim``. Every op traces in FX, so
    :func:`quantize_int8` quantises all of it. ``width=16, dim=256``: 30,880 parameters.
    """

    mean, std = IMAGENET_MEAN, IMAGENET_STD
    input_size = 64

    def __init__(self, width: int = 16, dim: int = 256) -> None:
        super().__init__()
        positive_int(width, "width")
        positive_int(dim, "dim")
        c = 4 * width
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, stride=2, padding=1, bias=False),
                                  nn.BatchNorm2d(width), nn.ReLU())
        self.block1 = _separable(width, 2 * width, pool=True)
        self.block2 = _separable(2 * width, c, pool=True)
        self.pos = nn.Parameter(torch.randn(1, c, 8, 8) * 0.02)
        self.block3 = _separable(c, c, pool=False)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.proj = nn.Linear(c, dim)
        self.out_dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.block2(self.block1(self.stem(x)))                    # [N, 4w, 8, 8]
        h = self.pool(self.block3(h + self.pos)).flatten(1)            # [N, 4w]
        return self.proj(h)

    def image_tensor(self, images: np.ndarray) -> torch.Tensor:
        """uint8 [N, 64, 64, 3] -> the input float32 [N, 3, 64, 64]."""
        return images_to_tensor(images, self.mean, self.std, self.input_size)


def build_student(config: Mapping[str, Any]) -> StudentTower:
    cfg = StudentConfig.from_dict(config)
    return StudentTower(cfg.width, cfg.dim)


# ============================================================================ the teacher
class _TeacherTower(nn.Module):
    """The joint model's image tower alone (``forward`` = ``JointModel.encode_image``) without
    the CNN's unused classification head: what the student replaces."""

    def __init__(self, cnn: nn.Module) -> None:
        super().__init__()
        cnn = copy.deepcopy(cnn).eval()
        cnn.head = nn.Identity()
        self.cnn = cnn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cnn = self.cnn
        h = cnn.stage3(cnn.stage2(cnn.stage1(x)))
        h = cnn.cbam(cnn.se(h))
        return cnn.proj(cnn.norm(cnn.vit(h)[:, 0]))


def teacher_tower(joint: nn.Module | None = None) -> nn.Module:
    """A copy of the image tower of ``joint`` (default: the committed ``joint_world``) as one
    module: ``float32 [N, 3, 64, 64] -> float32 [N, 256]``, eval mode."""
    if joint is None:
        joint = checkpoints.load(TEACHER, progress=False)[0]
    image = getattr(joint, "image", None)
    if image is None or not all(hasattr(image, a) for a in ("stage3", "se", "cbam", "vit")):
        raise InputError("teacher_tower: expected a joint model with the CNN image tower "
                         "(image_tower 'cnn', se, cbam)")
    return _TeacherTower(image).eval()


@torch.no_grad()
def teacher_image_embeddings(tower: nn.Module, x: torch.Tensor, batch_size: int = 256
                             ) -> torch.Tensor:
    """L2-normalised embeddings float32 [N, d] of image tensors ``x`` [N, 3, 64, 64]."""
    tower.eval()
    return F.normalize(torch.cat([tower(x[s:s + batch_size])
                                  for s in range(0, len(x), batch_size)]), dim=1)


def distill_loss(student: torch.Tensor, teacher: torch.Tensor,
                 captions: torch.Tensor | None = None, kd_weight: float = 1.0,
                 temperature: float = 0.05) -> torch.Tensor:
    """The distillation loss of one batch.

    ``student`` float [B, d] (any scale), ``teacher`` float [B, d] L2-normalised: the mean
    cosine distance ``1 - cos(student_i, teacher_i)``; with ``captions`` float [M, d]
    (the teacher's L2-normalised caption embeddings) also ``kd_weight`` times the KL
    divergence from the teacher's caption -> image softmax over the batch's images (logits
    ``captions @ teacher.T / temperature``) to the student's (CLIP-KD, Yang et al. 2024).
    Returns a scalar tensor.
    """
    if student.ndim != 2 or student.shape != teacher.shape:
        raise InputError(f"distill_loss: student and teacher must both be [B, d], got "
                         f"{tuple(student.shape)} and {tuple(teacher.shape)}")
    s = F.normalize(student, dim=1)
    loss = (1 - (s * teacher).sum(1)).mean()
    if captions is not None and kd_weight > 0:
        target = F.softmax(captions @ teacher.T / temperature, dim=1)
        log_p = F.log_softmax(captions @ s.T / temperature, dim=1)
        loss = loss + kd_weight * F.kl_div(log_p, target, reduction="batchmean")
    return loss


def train_student(config: Mapping[str, Any], progress: bool = True) -> Trained:
    """Distil the teacher's image tower into a :class:`StudentTower` on fresh scenes."""
    cfg = StudentConfig.from_dict(config)
    joint, manifest = checkpoints.load(cfg.teacher, progress=progress)
    teacher = teacher_tower(joint)
    world = World(WorldConfig(n=cfg.world.n, seed=cfg.world.seed), progress=progress)
    train = world.indices("train")
    x = images_to_tensor(world.images[train], IMAGENET_MEAN, IMAGENET_STD, 64)
    target = teacher_image_embeddings(teacher, x)
    first = world.caption_indices(train, first=1)                       # one caption each
    captions = torch.from_numpy(joint.embed_texts([world.captions[j] for j in first]))
    rng = seeded(cfg.seed)
    student = build_student(cfg.to_dict())
    opt = torch.optim.AdamW(student.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps,
                                                pct_start=0.1)
    bar = progress_bar(total=cfg.steps, desc="distil", progress=progress)
    log = LossLog(bar)
    student.train()
    t0 = time.perf_counter()
    for _ in range(cfg.steps):
        idx = torch.from_numpy(rng.choice(len(x), cfg.batch_size, replace=False))
        loss = distill_loss(student(x[idx]), target[idx], captions[idx], cfg.kd_weight,
                            cfg.temperature)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        log.add(loss)
    bar.close()
    seconds = time.perf_counter() - t0
    student.eval()
    metrics = {**log.metrics("train_loss_start", "train_loss_end"),
               "train_seconds": round(seconds, 1),
               "parameters": count_parameters(student),
               "teacher_parameters": count_parameters(teacher)}
    ev = eval_world()
    test = ev.indices("test")
    imgs = test_images(ev)
    texts = joint.embed_texts([ev.captions[j] for j in ev.caption_indices(test)])
    with torch.no_grad():
        xs = images_to_tensor(imgs, IMAGENET_MEAN, IMAGENET_STD, 64)
        t_emb = teacher_image_embeddings(teacher, xs)
        s_emb = teacher_image_embeddings(student, xs)
    metrics["eval_cosine_to_teacher"] = round(float((t_emb * s_emb).sum(1).mean()), 4)
    for who, emb in (("teacher", t_emb), ("student", s_emb)):
        res = score_embeddings(ev, test, {"image": emb.numpy(), "text": texts},
                               ["text->image"])["text->image"]
        metrics[f"eval_{who}_t2i_R@1"] = round(res["R@1"], 4)
        metrics[f"eval_{who}_t2i_mAP"] = round(res["mAP"], 4)
    data = {"world": cfg.world.to_dict(), "train_scenes": len(train),
            "steps": cfg.steps, "batch_size": cfg.batch_size, "teacher": cfg.teacher,
            "teacher_sha256": manifest["sha256"]}
    return Trained(student, metrics, data)


#: the distilled student (``mmkit train joint_student``)
CHECKPOINTS = {
    "joint_student": CheckpointSpec(
        name="joint_student", build=build_student, train=train_student,
        config=StudentConfig().to_dict(),
        description="the joint model's image tower distilled into a 31k-parameter CNN "
                    "(fresh scenes, seed 1)",
        seconds=120.0, threads=1),
}


# ============================================================================ quantisation
def hand_quantize(w: torch.Tensor | np.ndarray, axis: int | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 quantisation written out: ``scale = max|w| / 127`` (over the whole
    matrix, or per slice along ``axis``, e.g. ``axis=0``: per output channel of a weight
    [out, in]), ``q = round(w / scale)`` clipped to [-127, 127].

    Returns ``(q int8 same shape as w, scale float32 [] or [w.shape[axis]])``; ``q * scale``
    (broadcast along ``axis``) is the dequantised weight.
    """
    w = np.asarray(w.detach().cpu() if isinstance(w, torch.Tensor) else w, np.float32)
    if w.ndim < 1 or w.size == 0:
        raise InputError(f"hand_quantize: expected a non-empty array, got shape {w.shape}")
    if axis is None:
        scale = np.float32(max(np.abs(w).max(), 1e-12) / 127)
        return np.clip(np.round(w / scale), -127, 127).astype(np.int8), np.asarray(scale)
    if not -w.ndim <= axis < w.ndim:
        raise InputError(f"hand_quantize: axis {axis} out of range for shape {w.shape}")
    others = tuple(a for a in range(w.ndim) if a != axis % w.ndim)
    scale = (np.maximum(np.abs(w).max(axis=others), 1e-12) / 127).astype(np.float32)
    shape = [1] * w.ndim
    shape[axis] = -1
    q = np.clip(np.round(w / scale.reshape(shape)), -127, 127).astype(np.int8)
    return q, scale


#: modules that FX cannot trace (shape-dependent Python) or that have no int8 kernel worth
#: having: they stay float, their ``nn.Linear`` layers dynamically quantised
NON_TRACEABLE: tuple[type, ...] = (ViTBlock, SqueezeExcite, CBAM)


def quantize_int8(module: nn.Module, calibration: torch.Tensor | None = None, *,
                  backend: str = "x86") -> nn.Module:
    """An int8 copy of ``module`` (``module`` itself is left unchanged), for CPU inference.

    - ``calibration`` None: **dynamic** quantisation (``torch.ao.quantization.quantize_dynamic``):
      every ``nn.Linear`` gets int8 weights (per tensor, symmetric) and quantises its input on
      the fly; convolutions stay float.
    - ``calibration`` float32 [N, 3, H, W]: **static** post-training quantisation in FX graph
      mode (``prepare_fx`` / ``convert_fx``, ``backend``'s default qconfig: per-channel int8
      weights, uint8 activations whose scales come from running ``calibration`` through the
      model; BatchNorm folded into the convolutions). Submodules that FX cannot trace
      (:data:`NON_TRACEABLE`: the teacher's attention blocks) stay float inside the graph
      and their ``nn.Linear`` layers are then dynamically quantised.

    Returns the quantised module (eval mode): ``float32 [N, 3, H, W] -> float32 [N, d]``.
    """
    from torch.ao.quantization import get_default_qconfig_mapping, quantize_dynamic
    from torch.ao.quantization.fx.custom_config import PrepareCustomConfig
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    if not isinstance(module, nn.Module):
        raise InputError(f"quantize_int8: expected a torch module, got {type(module).__name__}")
    if backend not in torch.backends.quantized.supported_engines:
        raise InputError(f"quantize_int8: backend {backend!r} is not available here "
                         f"({', '.join(torch.backends.quantized.supported_engines)})")
    model = copy.deepcopy(module).cpu().eval()
    torch.backends.quantized.engine = backend
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*")
        warnings.filterwarnings("ignore", message=".*quantized tensor.*")
        warnings.filterwarnings("ignore", message=".*reduce_range.*")
        if calibration is None:
            return quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8).eval()
        if not (isinstance(calibration, torch.Tensor) and calibration.ndim == 4
                and len(calibration)):
            raise InputError("quantize_int8: calibration must be a float tensor "
                             f"[N, 3, H, W], got {getattr(calibration, 'shape', calibration)!r}")
        custom = PrepareCustomConfig().set_non_traceable_module_classes(list(NON_TRACEABLE))
        prepared = prepare_fx(model, get_default_qconfig_mapping(backend),
                              example_inputs=(calibration[:2],), prepare_custom_config=custom)
        with torch.no_grad():
            for s in range(0, len(calibration), 64):
                prepared(calibration[s:s + 64])
        quantized = convert_fx(prepared)
        if any(isinstance(m, NON_TRACEABLE) for m in quantized.modules()):
            quantized = quantize_dynamic(quantized, {nn.Linear}, dtype=torch.qint8)
    return quantized.eval()


# ============================================================================ measuring
def state_bytes(module: nn.Module) -> int:
    """Bytes of ``torch.save(module.state_dict())`` (int8 modules save their packed weights)."""
    buf = io.BytesIO()
    torch.save(module.state_dict(), buf)
    return buf.tell()


def count_parameters(module: nn.Module) -> int:
    """Number of weights of a float module (of its float original for an int8 copy)."""
    return int(sum(p.numel() for p in module.parameters()))


@torch.no_grad()
def latency_ms(module: nn.Module, batch: int, repeats: int = 5, threads: int = 1,
               size: int = 64) -> float:
    """Median CPU wall time per image in ms of ``module`` on a random batch [batch, 3, size,
    size], ``threads`` torch threads, after one warm-up run."""
    positive_int(batch, "batch")
    positive_int(repeats, "repeats")
    x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch_threads(threads):
        module(x)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            module(x)
            times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times) / batch


def calibration_images(n: int = 128, seed: int = 3) -> torch.Tensor:
    """Static quantisation's calibration batch: ``n`` fresh scenes (``World(n, seed)``, never
    the evaluation world) as the towers' input, float32 [n, 3, 64, 64]."""
    positive_int(n, "n")
    if seed == 0:
        raise InputError("calibration_images: seed 0 is the evaluation world's; use another")
    world = World(WorldConfig(n=n, seed=seed), progress=False)
    return images_to_tensor(world.images, IMAGENET_MEAN, IMAGENET_STD, 64)


def test_images(world: World | None = None) -> np.ndarray:
    """The evaluation split's images uint8 [441, 64, 64, 3] (only those rendered when the
    world has not rendered all its images yet)."""
    world = eval_world() if world is None else world
    test = world.indices("test")
    if "images" in vars(world):
        return world.images[test]
    return np.stack([world.render(int(i)) for i in test])


@torch.no_grad()
def embed_with(tower: nn.Module, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """L2-normalised float32 [N, d] of uint8 images [N, 64, 64, 3] through ``tower``."""
    x = images_to_tensor(images, IMAGENET_MEAN, IMAGENET_STD, 64)
    return teacher_image_embeddings(tower, x, batch_size).numpy()


def compare_compact(repeats: int = 5, calibration: int | torch.Tensor = 128, threads: int = 1,
                    student: nn.Module | None = None, joint: nn.Module | None = None,
                    progress: bool = False) -> dict[str, dict[str, float]]:
    """The compact-models table: ``{variant: {column: value}}`` for :data:`VARIANTS` (full
    tower and student, float32 and int8) and :data:`COLUMNS`.

    ``parameters``: float weights of the tower (int8 rows: of the float original);
    ``size MB``: :func:`state_bytes` / 1e6; ``ms/image b1`` / ``b64``: :func:`latency_ms`
    (median of ``repeats`` runs, ``threads`` threads); ``t2i R@1`` / ``mAP``: text -> image on
    the evaluation split (441 images, 2,205 captions) with the joint model's own text tower
    for the queries. int8: :func:`quantize_int8` (static FX quantisation) calibrated on
    ``calibration``: a number of fresh scenes (:func:`calibration_images`) or the image
    tensors themselves, float32 [N, 3, 64, 64] (never the evaluation world's). ``student`` / ``joint``: default the committed
    ``joint_student`` / ``joint_world``.
    """
    if isinstance(calibration, torch.Tensor):
        calib = calibration
    else:
        positive_int(calibration, "calibration")
        calib = calibration_images(calibration)
    if joint is None:
        joint = checkpoints.load(TEACHER, progress=progress)[0]
    if student is None:
        student = checkpoints.load("joint_student", progress=progress)[0]
    world = eval_world()
    test = world.indices("test")
    texts = joint.embed_texts([world.captions[j] for j in world.caption_indices(test)])
    images = test_images(world)
    full = teacher_tower(joint)
    towers = {"full fp32": full, "full int8": quantize_int8(full, calib),
              "student fp32": student.eval(), "student int8": quantize_int8(student, calib)}
    table: dict[str, dict[str, float]] = {}
    for name, tower in towers.items():
        float_tower = full if name.startswith("full") else student
        res = score_embeddings(world, test, {"image": embed_with(tower, images),
                                             "text": texts}, ["text->image"])["text->image"]
        table[name] = {"parameters": count_parameters(float_tower),
                       "size MB": state_bytes(tower) / 1e6,
                       "ms/image b1": latency_ms(tower, 1, repeats * 4, threads),
                       "ms/image b64": latency_ms(tower, 64, repeats, threads),
                       "t2i R@1": res["R@1"], "mAP": res["mAP"]}
    return table


def format_compact(table: Mapping[str, Mapping[str, float]]) -> str:
    """:func:`compare_compact`'s table as aligned text."""
    head = f"{'':14s}" + "".join(f"{c:>14s}" for c in COLUMNS)
    lines = [head]
    for name, row in table.items():
        cells = [f"{int(row['parameters']):>14,d}", f"{row['size MB']:>14.3f}",
                 f"{row['ms/image b1']:>14.2f}", f"{row['ms/image b64']:>14.3f}",
                 f"{row['t2i R@1']:>14.3f}", f"{row['mAP']:>14.3f}"]
        lines.append(f"{name:14s}" + "".join(cells))
    return "\n".join(lines)

