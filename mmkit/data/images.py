"""Image files in, pixels out: the one decoder, the one resize rule and the one pixel check.

Every image that enters mmkit passes here: the world's exported PNGs, every dataset loader
(:meth:`mmkit.data.dataset.RetrievalDataset.load_image`), the folder index
(:func:`mmkit.scale.files.load_image`), and every method and feature that takes pixel arrays
(:func:`check_images`). numpy and PIL only; no torch.

Reading a file, :func:`read_image` -> uint8 [H, W, 3] RGB:

- EXIF orientation is applied (:func:`PIL.ImageOps.exif_transpose`): a photo taken on its
  side comes out the way it is viewed;
- 8-bit RGB as is; grey (``L``) repeated to RGB; 1-bit (``1``) -> 0 / 255;
- 16-bit integer images (``I;16``, ``I;16B``, ``I;16L``, ``I;16S`` and ``I``, which is what
  PIL decodes 16-bit data to) are scaled by their range, ``round(x / 257)`` (65535 -> 255,
  257 * k -> k), not saturated; values outside 0..65535 are refused;
- 32-bit float images (``F``) must lie in [0, 1] and become ``round(x * 255)``; values outside
  [0, 1] or NaN are refused (a float image in [0, 255] cannot be told from a dark one);
- images with transparency (``RGBA``, ``RGBa``, ``LA``, ``La``, ``PA``, palette ``P`` with or
  without a transparent colour) are composited **over white**:
  ``round(rgb * a + 255 * (1 - a))`` with ``a = alpha / 255`` (as
  ``skimage.color.rgba2rgb`` does); a palette image without transparency is just its colours;
- ``CMYK``, ``YCbCr``, ``LAB``, ``HSV`` -> RGB by PIL's conversion;
- WebP is read where PIL has WebP support (:func:`webp_supported`); without it a ``.webp``
  file is refused with a reason that says so (the folder index counts it as skipped);
- a missing, empty, truncated or non-image file is one line naming the file
  (:class:`~mmkit.errors.InputError`).

Resizing for a model, :func:`fit_image` / :func:`load_image` (rule :data:`RESIZE_RULE`):

- ``"crop"`` (the default, the one rule of every dataset loader and the folder index): the
  shorter side is resized to ``size`` (bicubic), then the centre ``size`` x ``size`` crop is
  kept; the aspect ratio is kept, the borders of the longer side are lost. This is how
  CLIP-style models see their training images (``CLIPImageProcessor``: shortest edge, then a
  centre crop), and how the ImageNet evaluation transform works;
- ``"squash"`` (explicit only): both sides resized to ``size`` (bicubic); nothing is lost,
  shapes are stretched.

A square image (the world's 64 x 64 scenes) gives the same pixels under both rules, and an
image already ``size`` x ``size`` is passed through untouched.

Pixel arrays, :func:`check_images` -> uint8 [N, H, W, 3] RGB (:func:`to_rgb_uint8` is its
older name, kept for notebook 01):

- shapes: one image ``[H, W]`` (grey) or ``[H, W, C]``, or a batch ``[N, H, W, C]``, with
  ``C`` in 1 (grey), 3 (RGB), 4 (RGBA); a list of equal-shaped images is stacked; a torch
  tensor is moved to numpy. A 3-D array is one image ``[H, W, C]``; a batch of grey images
  must be ``[N, H, W, 1]`` (``[N, H, W]`` is ambiguous and refused). Channels-first
  ``[N, C, H, W]`` is refused with a hint. With ``batch_only=True`` (functions that return
  one result per image of a batch, such as OCR) a 3-D array is a batch of grey images
  ``[N, H, W]`` and one ``[H, W, 3]`` image is refused ("pass images[None]");
- grey is repeated to RGB; RGBA is composited over white (as above);
- dtypes: ``uint8`` as is (a uint8 RGB batch is returned without a copy); ``uint16`` is
  scaled to 0..255 (``round(x / 257)``); ``bool`` -> 0 / 255; other integer types must
  already lie in 0..255; **floats must lie in [0, 1]** (scikit-image's convention) and are
  scaled by 255 and rounded; a float image in [0, 255] is refused rather than guessed at;
- anything else (NaN, negative values, an empty batch, mixed sizes, other channel counts)
  raises one :class:`~mmkit.errors.InputError` naming the problem and the argument (``name``).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError, features

from mmkit.errors import InputError

#: channel counts that :func:`check_images` understands: grey, RGB, RGBA
CHANNELS = (1, 3, 4)
#: file name endings the folder index looks for (any letter case)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff")
#: the resize rules of :func:`fit_image`
RESIZE_RULES = ("crop", "squash")
#: the rule every dataset loader and the folder index use
RESIZE_RULE = "crop"

_INT16_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I;16S", "I")
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA", "P")


# ================================================================================ pixels
def _stack(images, name: str) -> np.ndarray:
    if isinstance(images, (list, tuple)):
        if not images:
            raise InputError(f"{name}: empty list of images")
        arrays = [np.asarray(a) for a in images]
        first = arrays[0].shape
        for k, a in enumerate(arrays):
            if a.shape != first:
                raise InputError(f"{name}: images of different shapes cannot be batched "
                                 f"(image 0 is {first}, image {k} is {a.shape}); resize them "
                                 "first")
        return np.stack(arrays)
    if type(images).__module__.startswith("torch"):
        images = images.detach().cpu().numpy()
    return np.asarray(images)


def check_images(images, *, name: str = "images", batch_only: bool = False) -> np.ndarray:
    """The pixel check of every method and feature: any supported image or batch -> uint8
    [N, H, W, 3] RGB (rules in the module docstring).

    Args:
        images: ``[H, W]``, ``[H, W, C]`` or ``[N, H, W, C]`` (``C`` in 1, 3, 4) of dtype
            uint8, uint16, bool, another integer type within 0..255, or float in [0, 1];
            or a list of such images of one shape.
        name: how the argument is called in error messages (e.g. ``"CLIP images"``).
        batch_only: the caller wants a batch: a 3-D array is grey ``[N, H, W]`` and a single
            ``[H, W, 3]`` image is refused.

    Returns:
        uint8 [N, H, W, 3]. A uint8 RGB batch is returned as is (no copy).

    Raises:
        InputError: one line naming the problem (shape, dtype, value range).
    """
    a = _stack(images, name)
    want = "[N, H, W, 3] RGB (or [H, W], [H, W, C], [N, H, W, C] with C = 1, 3 or 4)"
    if batch_only:
        want = "a batch [N, H, W, 3] RGB (or [N, H, W] grey, [N, H, W, C] with C = 1, 3 or 4)"
    if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise InputError(f"{name}: expected a numeric image array, got dtype {a.dtype}")
    if np.issubdtype(a.dtype, np.complexfloating):
        raise InputError(f"{name}: complex images are not supported (dtype {a.dtype})")
    if a.ndim == 2 and not batch_only:
        a = a[None, :, :, None]
    elif a.ndim == 3 and batch_only:
        if a.shape[-1] in (3, 4):
            raise InputError(f"{name} must be {want}, got shape {a.shape} (one image? pass "
                             "images[None])")
        a = a[..., None]
    elif a.ndim == 3:
        if a.shape[-1] not in CHANNELS:
            raise InputError(f"{name} must be {want}, got shape {a.shape} (a batch of grey "
                             "images must be [N, H, W, 1])")
        a = a[None]
    elif a.ndim == 4:
        if a.shape[-1] not in CHANNELS:
            hint = (" - it looks channels-first [N, C, H, W]; move the channels last "
                    "(images.transpose(0, 2, 3, 1))" if a.shape[1] in CHANNELS else "")
            raise InputError(f"{name} must be {want}, got shape {a.shape}{hint}")
    else:
        raise InputError(f"{name} must be {want}, got shape {a.shape}")
    if a.shape[0] == 0 or a.shape[1] == 0 or a.shape[2] == 0:
        raise InputError(f"{name}: empty image batch, shape {a.shape}")
    a = _to_uint8(a, name)
    c = a.shape[-1]
    if c == 1:
        return np.repeat(a, 3, axis=-1)
    if c == 4:
        rgb = a[..., :3].astype(np.float32)
        alpha = a[..., 3:].astype(np.float32) / 255.0
        out = rgb * alpha + 255.0 * (1.0 - alpha)  # over a white background
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return a


def to_rgb_uint8(images, name: str = "images") -> np.ndarray:
    """Any supported image or batch -> uint8 [N, H, W, 3] RGB: :func:`check_images` under
    the name notebook 01 uses."""
    return check_images(images, name=name)


def _to_uint8(a: np.ndarray, name: str) -> np.ndarray:
    if a.dtype == np.uint8:
        return a
    if a.dtype == bool:
        return a.astype(np.uint8) * 255
    if a.dtype == np.uint16:
        return ((a.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if np.issubdtype(a.dtype, np.integer):
        lo, hi = int(a.min()), int(a.max())
        if lo < 0 or hi > 255:
            raise InputError(f"{name}: {a.dtype} values must lie in 0..255, found {lo}..{hi} "
                             "(pass uint8, or uint16 for 16-bit images)")
        return a.astype(np.uint8)
    if not np.isfinite(a).all():
        raise InputError(f"{name}: float image contains NaN or infinite values")
    lo, hi = float(a.min()), float(a.max())
    if lo < 0.0 or hi > 1.0:
        raise InputError(f"{name}: float images must lie in [0, 1], found {lo:.3g}..{hi:.3g} "
                         "(divide [0, 255] floats by 255, or cast them to uint8)")
    return np.rint(a * 255.0).astype(np.uint8)


# ================================================================================ files
def webp_supported() -> bool:
    """Whether this PIL decodes WebP files."""
    return bool(features.check("webp"))


def _pixels(im: Image.Image, name: str) -> np.ndarray:
    """A decoded PIL image -> uint8 [H, W, 3] by the rules of the module docstring."""
    mode = im.mode
    if mode == "RGB":
        a = np.asarray(im)
    elif mode in ("L", "1"):
        a = np.asarray(im)                               # uint8 / bool [H, W]
    elif mode in _INT16_MODES:
        a = np.asarray(im)
        lo, hi = int(a.min()), int(a.max())
        if lo < 0 or hi > 65535:
            raise InputError(f"{name}: {mode} image values must lie in 0..65535 (16-bit), "
                             f"found {lo}..{hi}")
        a = a.astype(np.uint16)
    elif mode == "F":
        a = np.asarray(im, dtype=np.float32)
    elif mode in _ALPHA_MODES:
        a = np.asarray(im.convert("RGBA"))
    else:
        a = np.asarray(im.convert("RGB"))
    return np.array(check_images(a, name=name)[0])   # a writable copy (torch warns on views)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """One image file -> uint8 [H, W, 3] RGB at its own size (module docstring: EXIF
    orientation, 16-bit and float scaling, transparency over white, WebP).

    Raises:
        InputError: one line naming the file: not found, not an image, truncated, empty,
            WebP without WebP support, values outside the documented ranges.
    """
    path = Path(path)
    if path.suffix.lower() == ".webp" and not webp_supported():
        raise InputError(f"{path}: skipped: this Pillow has no WebP support (reinstall Pillow "
                         "with libwebp)")
    try:
        with Image.open(path) as im:
            im.load()                        # decode now: a truncated file fails here
            im = ImageOps.exif_transpose(im)
            return _pixels(im, str(path))
    except InputError:
        raise
    except FileNotFoundError:
        raise InputError(f"{path}: image file not found") from None
    except UnidentifiedImageError:
        raise InputError(f"{path}: not an image PIL can read") from None
    except Image.DecompressionBombError as e:
        raise InputError(f"{path}: {e}") from None
    except (OSError, ValueError, SyntaxError, EOFError) as e:   # truncated, corrupt, unsupported
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InputError(f"{path}: cannot decode image ({first})") from None


def fit_image(image: np.ndarray, size: int, rule: str = RESIZE_RULE) -> np.ndarray:
    """uint8 [H, W, 3] -> uint8 [size, size, 3] by ``rule`` (``"crop"``: shorter side to
    ``size`` and the longer to ``floor(size * long / short)``, bicubic, then the centre crop
    from ``(long - size) // 2``, as ``CLIPImageProcessor`` does; ``"squash"``: both sides to
    ``size``, bicubic). An image already ``size`` x ``size`` is returned as a copy,
    untouched."""
    if rule not in RESIZE_RULES:
        raise InputError(f"unknown resize rule {rule!r}; choose one of {', '.join(RESIZE_RULES)}")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise InputError(f"image size must be a positive integer, got {size!r}")
    size = int(size)
    image = check_images(image, name="image", batch_only=False)
    if len(image) != 1:
        raise InputError(f"fit_image takes one image [H, W, 3], got a batch of {len(image)}")
    h, w = image.shape[1:3]
    if (w, h) == (size, size):
        return np.array(image[0])
    im = Image.fromarray(image[0])
    if rule == "squash":
        return np.array(im.resize((size, size), Image.Resampling.BICUBIC))
    # the longer side as torchvision's Resize(size) and CLIPImageProcessor compute it (floor)
    nw, nh = (size, int(size * h / w)) if w <= h else (int(size * w / h), size)
    im = im.resize((nw, nh), Image.Resampling.BICUBIC)
    left, top = (nw - size) // 2, (nh - size) // 2
    return np.array(im.crop((left, top, left + size, top + size)))


def load_image(path: str | os.PathLike, size: int | None = None,
               rule: str = RESIZE_RULE) -> np.ndarray:
    """One image file -> uint8 [size, size, 3] (:func:`read_image`, then :func:`fit_image`
    by ``rule``); ``size=None``: uint8 [H, W, 3] at the file's own size."""
    pixels = read_image(path)
    return pixels if size is None else fit_image(pixels, size, rule)


__all__ = ["CHANNELS", "IMAGE_SUFFIXES", "RESIZE_RULE", "RESIZE_RULES", "check_images",
           "fit_image", "load_image", "read_image", "to_rgb_uint8", "webp_supported"]
