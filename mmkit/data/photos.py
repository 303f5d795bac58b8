"""Real photographs that ship offline with the installed libraries: a fixture for real-photo
search, OCR search and near-duplicate detection.

- :data:`PHOTOS`: name -> :class:`Photo` ``(source, load)`` for every colour photograph that
  scikit-image, scikit-learn and matplotlib ship inside their packages (nothing is
  downloaded: only files present in the installed packages are used), plus two photos with
  WORDS drawn on them (:data:`WORDS`) for OCR search. ``load()`` returns uint8 [H, W, 3].
- :data:`EDITS`: the named edits a near-duplicate detector must catch (centre crop to 80 %,
  half size, JPEG quality 30, rotation by 90 degrees, brightness + 15 %), each
  uint8 [H, W, 3] -> uint8 [H', W', 3].
- :func:`write_photos`: the originals (the shipped file's own bytes, JPEG or PNG as shipped)
  and the edited copies (``edited/<photo>-<edit>.png``, the JPEG edit as the ``.jpg`` it
  makes) into a folder, each file written atomically, the same bytes on every run, with a
  manifest ``photos.json`` (:func:`read_photos`); :func:`photo_groups`: the ground-truth
  duplicate groups.

The two photos with words are grey photographs that are not otherwise in the set (so they
duplicate nothing): ``bakery`` (scikit-image's brick wall with a "BAKERY" shop sign) and
``menu`` (scikit-image's cameraman with a "MENU" board on the lawn). Neither word can be
guessed from the picture: the EfficientNet-Lite0 ImageNet classifier names neither
``bakery`` nor ``menu`` among its top five classes for either photo; only reading the
text finds them.

>>> records = write_photos("photos/")
>>> [r.path for r in records][:2]
['astronaut.png', 'edited/astronaut-crop.png']
>>> photo_groups(records)[0][:3]
['astronaut.png', 'edited/astronaut-bright.png', 'edited/astronaut-crop.png']
"""
from __future__ import annotations

import io
import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFont

from mmkit._io import atomic_write_bytes, atomic_write_text
from mmkit.data.images import check_images
from mmkit.errors import InputError

#: the manifest :func:`write_photos` writes into its folder (and recognises it by)
MANIFEST = "photos.json"
#: the manifest's ``format`` field
MANIFEST_FORMAT = "mmkit.photos"
#: the folder (inside the target) that holds the edited copies
EDITED_DIR = "edited"


class Photo(NamedTuple):
    """One photo of :data:`PHOTOS`: where it comes from, and a loader -> uint8 [H, W, 3]."""

    source: str
    load: Callable[[], np.ndarray]


@dataclass(frozen=True)
class PhotoRecord:
    """One file :func:`write_photos` wrote.

    Attributes:
        path: relative to the folder, POSIX (``"chelsea.png"``, ``"edited/chelsea-crop.png"``).
        photo: the name of the source photo in :data:`PHOTOS`.
        edit: the name of the edit in :data:`EDITS`, ``None`` for the original.
        words: the words written in the picture (:data:`WORDS`), ``()`` for none.
    """

    path: str
    photo: str
    edit: str | None
    words: tuple[str, ...] = ()


# ======================================================================== shipped files
def _skimage_file(name: str) -> Path:
    import skimage.data

    return Path(skimage.data.__file__).parent / name


def _sklearn_file(name: str) -> Path:
    import sklearn.datasets

    return Path(sklearn.datasets.__file__).parent / "images" / name


def _matplotlib_file(name: str) -> Path:
    from matplotlib import cbook

    return Path(cbook.get_sample_data(name, asfileobj=False))


def _rgb(a: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
        raise InputError(f"photo {name}: expected uint8 [H, W, 3], got {a.dtype} {a.shape}")
    return np.array(a, order="C")          # a writable copy (torch warns on read-only)


def _skimage(func: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import skimage.data

        if func == "stereo_motorcycle":
            return _rgb(skimage.data.stereo_motorcycle()[0], func)
        return _rgb(getattr(skimage.data, func)(), func)

    return load


def _sklearn(filename: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from sklearn.datasets import load_sample_images

        found = load_sample_images()
        names = [os.path.basename(f) for f in found.filenames]
        return _rgb(found.images[names.index(filename)], filename)

    return load


def _matplotlib(filename: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from matplotlib import cbook

        with cbook.get_sample_data(filename) as f, Image.open(f) as im:
            return _rgb(np.asarray(im.convert("RGB")), filename)

    return load


#: shipped photo -> (library, function or file name, shipped file name, description)
_SHIPPED: dict[str, tuple[str, str, str, str]] = {
    "astronaut": ("skimage", "astronaut", "astronaut.png",
                  "skimage.data.astronaut(): astronaut Eileen Collins (NASA)"),
    "chelsea": ("skimage", "chelsea", "chelsea.png",
                "skimage.data.chelsea(): Chelsea the cat (Stefan van der Walt)"),
    "coffee": ("skimage", "coffee", "coffee.png",
               "skimage.data.coffee(): a cup of coffee (Rachel Michetti)"),
    "hubble_deep_field": ("skimage", "hubble_deep_field", "hubble_deep_field.jpg",
                          ("skimage.data.hubble_deep_field(): the Hubble eXtreme Deep Field "
                           "(NASA, ESA)")),
    "immunohistochemistry": ("skimage", "immunohistochemistry", "ihc.png",
                             ("skimage.data.immunohistochemistry(): stained colon tissue "
                              "(immunohistochemistry)")),
    "motorcycle": ("skimage", "stereo_motorcycle", "motorcycle_left.png",
                   ("skimage.data.stereo_motorcycle()[0]: a motorcycle in a workshop "
                    "(left view of the Middlebury stereo pair)")),
    "retina": ("skimage", "retina", "retina.jpg",
               "skimage.data.retina(): a human retina (fundus photograph)"),
    "rocket": ("skimage", "rocket", "rocket.jpg",
               "skimage.data.rocket(): a Falcon 9 rocket on its launch pad (SpaceX)"),
    "china": ("sklearn", "china.jpg", "china.jpg",
              "sklearn.datasets.load_sample_images() china.jpg: the Summer Palace, Beijing"),
    "flower": ("sklearn", "flower.jpg", "flower.jpg",
               "sklearn.datasets.load_sample_images() flower.jpg: a dahlia"),
    "grace_hopper": ("matplotlib", "grace_hopper.jpg", "grace_hopper.jpg",
                     ("matplotlib.cbook.get_sample_data('grace_hopper.jpg'): Rear Admiral "
                      "Grace Hopper (US Navy)")),
}


def shipped_file(name: str) -> Path:
    """The file that the library ships for the shipped photo ``name`` (its bytes are what
    :func:`write_photos` writes); an InputError for a drawn photo or a missing file."""
    if name not in _SHIPPED:
        known = ", ".join(sorted(_SHIPPED))
        raise InputError(f"no shipped file for photo {name!r}; shipped photos: {known}")
    library, _, filename, _ = _SHIPPED[name]
    path = {"skimage": _skimage_file, "sklearn": _sklearn_file,
            "matplotlib": _matplotlib_file}[library](filename)
    if not path.is_file():
        raise InputError(f"photo {name}: {path} is missing from the installed {library}")
    return path


# ======================================================================== photos with words
#: photo with words -> the words written in it
WORDS: dict[str, tuple[str, ...]] = {"bakery": ("BAKERY",), "menu": ("MENU",)}

#: photo with words -> (skimage.data grey photo, board box (x0, y0, x1, y1), board colour,
#: outline colour, letter colour, font size)
_SIGNS: dict[str, tuple[str, tuple[int, int, int, int], tuple[int, int, int],
                        tuple[int, int, int], tuple[int, int, int], int]] = {
    "bakery": ("brick", (96, 150, 416, 260), (40, 70, 50), (20, 20, 20), (250, 235, 200), 64),
    "menu": ("camera", (300, 300, 480, 380), (30, 30, 30), (200, 200, 200), (255, 255, 255), 56),
}


def draw_sign(image: np.ndarray, box: tuple[int, int, int, int], text: str, *,
              board: tuple[int, int, int] = (30, 30, 30),
              outline: tuple[int, int, int] = (200, 200, 200),
              ink: tuple[int, int, int] = (255, 255, 255), font_size: int = 56) -> np.ndarray:
    """A copy of ``image`` (uint8 [H, W, 3], or [H, W] grey) with a board filling ``box``
    ``(x0, y0, x1, y1)`` and ``text`` centred on it in PIL's scalable default font
    (``ImageFont.load_default(size=font_size)``, Pillow >= 10.1) -> uint8 [H, W, 3]."""
    pixels = check_images(image, name="image")
    if len(pixels) != 1:
        raise InputError(f"draw_sign takes one image [H, W, 3], got a batch of {len(pixels)}")
    im = Image.fromarray(pixels[0])
    try:
        font = ImageFont.load_default(size=font_size)
    except (TypeError, ImportError):
        raise InputError("drawing words needs Pillow >= 10.1 with FreeType (a scalable "
                         "default font)") from None
    draw = ImageDraw.Draw(im)
    draw.rectangle(box, fill=board, outline=outline, width=4)
    centre = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
    draw.text(centre, text, fill=ink, font=font, anchor="mm")
    return np.array(im)


def _signed(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import skimage.data

        base, box, board, outline, ink, size = _SIGNS[name]
        return draw_sign(getattr(skimage.data, base)(), box, " ".join(WORDS[name]),
                         board=board, outline=outline, ink=ink, font_size=size)

    return load


def _describe_signed(name: str) -> str:
    base, *_ = _SIGNS[name]
    what = {"bakery": "shop sign", "menu": "board"}[name]
    return (f"skimage.data.{base}() (grey) with a {' '.join(WORDS[name])!r} {what} drawn "
            "with PIL")


def _loader(name: str) -> Callable[[], np.ndarray]:
    library, func, _, _ = _SHIPPED[name]
    return {"skimage": _skimage, "sklearn": _sklearn, "matplotlib": _matplotlib}[library](func)


#: every photo: name -> Photo(source description, loader -> uint8 [H, W, 3]), sorted by name
PHOTOS: dict[str, Photo] = dict(sorted(
    [(n, Photo(spec[3], _loader(n))) for n, spec in _SHIPPED.items()]
    + [(n, Photo(_describe_signed(n), _signed(n))) for n in WORDS]))


# ======================================================================== edits
def _pil(image: np.ndarray) -> Image.Image:
    a = np.asarray(image)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3 or 0 in a.shape:
        raise InputError(f"edits take one uint8 image [H, W, 3], got {a.dtype} {a.shape}")
    return Image.fromarray(np.ascontiguousarray(a))


def centre_crop(image: np.ndarray, fraction: float = 0.8) -> np.ndarray:
    """The centre ``fraction`` of each side: uint8 [H, W, 3] -> [round(f H), round(f W), 3]."""
    im = _pil(image)
    w, h = im.size
    cw, ch = max(1, round(w * fraction)), max(1, round(h * fraction))
    left, top = (w - cw) // 2, (h - ch) // 2
    return np.array(im.crop((left, top, left + cw, top + ch)))


def half_size(image: np.ndarray) -> np.ndarray:
    """Resized to half (bicubic, antialiased): uint8 [H, W, 3] -> [H // 2, W // 2, 3]."""
    im = _pil(image)
    w, h = im.size
    return np.array(im.resize((max(1, w // 2), max(1, h // 2)), Image.Resampling.BICUBIC))


#: the JPEG quality of the re-compression edit
JPEG_QUALITY = 30


def jpeg_bytes(image: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """``image`` uint8 [H, W, 3] encoded as a baseline JPEG (PIL, 4:2:0, no metadata); the
    same bytes for the same pixels and Pillow."""
    buf = io.BytesIO()
    _pil(image).save(buf, format="JPEG", quality=quality, optimize=False)
    return buf.getvalue()


def jpeg_recompress(image: np.ndarray, quality: int = JPEG_QUALITY) -> np.ndarray:
    """Encoded as JPEG at ``quality`` and decoded again: uint8 [H, W, 3] -> same shape."""
    with Image.open(io.BytesIO(jpeg_bytes(image, quality))) as im:
        return np.array(im.convert("RGB"))


def rotate90(image: np.ndarray) -> np.ndarray:
    """Rotated by 90 degrees counter-clockwise: uint8 [H, W, 3] -> [W, H, 3]."""
    return np.array(np.rot90(np.asarray(_pil(image)), 1))


def brighten(image: np.ndarray, factor: float = 1.15) -> np.ndarray:
    """Brightness times ``factor`` (PIL ``ImageEnhance.Brightness``, clipped to 255):
    uint8 [H, W, 3] -> same shape."""
    return np.array(ImageEnhance.Brightness(_pil(image)).enhance(factor))


#: the edits a near-duplicate detector must catch: name -> uint8 [H, W, 3] -> uint8 image
EDITS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "crop": centre_crop,          # centre 80 % of each side
    "half": half_size,            # half the width and height
    "jpeg30": jpeg_recompress,    # JPEG re-compression at quality 30
    "rot90": rotate90,            # 90 degrees counter-clockwise
    "bright": brighten,           # brightness + 15 %
}


# ======================================================================== writing
def _png_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    _pil(image).save(buf, format="PNG", compress_level=1)   # fast; lossless all the same
    return buf.getvalue()


def _check_names(names: Iterable[str] | None) -> list[str]:
    if names is None:
        return list(PHOTOS)
    if isinstance(names, str):
        names = [names]
    chosen = list(names)
    unknown = [n for n in chosen if n not in PHOTOS]
    if unknown:
        raise InputError(f"unknown photo {unknown[0]!r}; choose from {', '.join(PHOTOS)}")
    if not chosen:
        raise InputError("names: choose at least one photo")
    return [n for n in PHOTOS if n in set(chosen)]   # in PHOTOS order, once each


def _suffix(name: str) -> str:
    return Path(_SHIPPED[name][2]).suffix.lower() if name in _SHIPPED else ".png"


def photo_records(names: Iterable[str] | None = None, *,
                  edited: bool = True) -> list[PhotoRecord]:
    """The records :func:`write_photos` writes for ``names`` (all photos by default), in
    order: each original, then its edited copies in :data:`EDITS` order. Nothing is read
    or written."""
    records = []
    for name in _check_names(names):
        words = WORDS.get(name, ())
        records.append(PhotoRecord(f"{name}{_suffix(name)}", name, None, words))
        if edited:
            for edit in EDITS:
                suffix = ".jpg" if edit == "jpeg30" else ".png"
                records.append(PhotoRecord(f"{EDITED_DIR}/{name}-{edit}{suffix}", name, edit,
                                           words))
    return records


def _manifest_text(records: Sequence[PhotoRecord], complete: bool) -> str:
    return json.dumps({"format": MANIFEST_FORMAT, "complete": complete,
                       "records": [{"path": r.path, "photo": r.photo, "edit": r.edit,
                                    "words": list(r.words)} for r in records]},
                      indent=1) + "\n"


def _read_manifest(folder: Path) -> tuple[list[PhotoRecord], bool] | None:
    """(records, complete) of the folder's manifest, None if there is no readable one."""
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        if data.get("format") != MANIFEST_FORMAT:
            return None
        records = [PhotoRecord(str(r["path"]), str(r["photo"]),
                               None if r["edit"] is None else str(r["edit"]),
                               tuple(str(w) for w in r["words"])) for r in data["records"]]
        return records, bool(data["complete"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def read_photos(folder: str | os.PathLike) -> list[PhotoRecord]:
    """The records of a folder :func:`write_photos` completed (from its ``photos.json``).

    Raises:
        InputError: no manifest, a foreign or unreadable one, or an unfinished write.
    """
    folder = Path(folder)
    found = _read_manifest(folder)
    if found is None:
        raise InputError(f"{folder}: no {MANIFEST} written by write_photos")
    records, complete = found
    if not complete:
        raise InputError(f"{folder}: write_photos did not finish here (run it again)")
    return records


def _inside(folder: Path, relative: str) -> Path:
    path = (folder / relative)
    if Path(relative).is_absolute() or ".." in Path(relative).parts:
        raise InputError(f"{folder / MANIFEST}: path {relative!r} leaves the folder")
    return path


def write_photos(folder: str | os.PathLike, *, edited: bool = True,
                 names: Iterable[str] | None = None) -> list[PhotoRecord]:
    """Write the photos (and, with ``edited``, their edited copies) into ``folder``.

    - originals: ``<name>.jpg`` / ``<name>.png``: the shipped file's own bytes (as shipped,
      metadata included); the photos with words as PNG;
    - edited copies: ``edited/<name>-<edit>.png`` (lossless: the file decodes to exactly
      ``EDITS[edit](PHOTOS[name].load())``), the JPEG edit as ``edited/<name>-jpeg30.jpg``
      (the quality-30 bytes themselves, which decode to the same pixels as the edit);
    - ``photos.json``: the manifest; it is written first (marked unfinished, listing every
      file it will write) and last (finished), so a folder this function wrote is
      recognised even after an interrupted run, and :func:`read_photos` only reads a
      finished one.

    Every file is written atomically (a temporary sibling, then a rename): no reader sees a
    half-written image. The same Pillow writes the same bytes on every run. Writing again
    into a folder this function wrote replaces its files and removes the ones the new
    records no longer list.

    Args:
        folder: the target folder; made if missing; it must be empty or one this function
            wrote.
        edited: also write the edited copies.
        names: photos of :data:`PHOTOS` to write (default: all), in :data:`PHOTOS` order.

    Returns:
        one :class:`PhotoRecord` per file, as :func:`photo_records` lists them.

    Raises:
        InputError: a path that is not a folder, a non-empty folder that ``write_photos``
            did not write, an unknown photo name.
    """
    folder = Path(folder)
    records = photo_records(names, edited=edited)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder}: exists and is not a folder")
    old: list[PhotoRecord] = []
    if folder.is_dir() and any(folder.iterdir()):
        found = _read_manifest(folder)
        if found is None:
            raise InputError(f"{folder}: folder is not empty and was not written by "
                             f"write_photos (no {MANIFEST}); choose a new or empty folder")
        old = found[0]
    new_paths = {r.path for r in records}
    stale = [r for r in old if r.path not in new_paths]
    atomic_write_text(folder / MANIFEST, _manifest_text([*records, *stale], complete=False))

    for name in dict.fromkeys(r.photo for r in records):
        pixels = PHOTOS[name].load()
        for r in (r for r in records if r.photo == name):
            if r.edit is None:
                data = (shipped_file(name).read_bytes() if name in _SHIPPED
                        else _png_bytes(pixels))
            elif r.edit == "jpeg30":
                data = jpeg_bytes(pixels, JPEG_QUALITY)
            else:
                data = _png_bytes(EDITS[r.edit](pixels))
            atomic_write_bytes(_inside(folder, r.path), data)

    for r in stale:
        path = _inside(folder, r.path)
        if path.is_file():
            path.unlink()
    edited_dir = folder / EDITED_DIR
    if edited_dir.is_dir() and not any(edited_dir.iterdir()):
        edited_dir.rmdir()
    atomic_write_text(folder / MANIFEST, _manifest_text(records, complete=True))
    return records


def photo_groups(records: Sequence[PhotoRecord]) -> list[list[str]]:
    """The ground-truth near-duplicate groups: the paths of each photo and its edited
    copies, groups of two or more only, each sorted, groups sorted by their first path."""
    by_photo: dict[str, list[str]] = {}
    for r in records:
        by_photo.setdefault(r.photo, []).append(r.path)
    return sorted(sorted(paths) for paths in by_photo.values() if len(paths) >= 2)


__all__ = ["EDITS", "JPEG_QUALITY", "MANIFEST", "PHOTOS", "WORDS", "Photo", "PhotoRecord",
           "brighten", "centre_crop", "draw_sign", "half_size", "jpeg_bytes",
           "jpeg_recompress", "photo_groups", "photo_records", "read_photos", "rotate90",
           "shipped_file", "write_photos"]
