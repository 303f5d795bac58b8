"""The one code path of ``mmkit serve`` and of the notebooks' search widget:
:class:`SearchService`, an index folder opened once with its method loaded once, answering
searches through :func:`mmkit.scale.search.search_index` (never a scoring of its own).

What it adds to ``search_index``:

- queries as a web page sends them: texts with the command line's weight syntax
  (``"0.5:snow"``, :func:`~mmkit.scale.search.parse_term`), texts to move away from
  (weight -1), uploaded images and sounds as bytes with a weight; an upload is checked (size,
  and an image's pixel count read from its header before anything is decoded), decoded by the
  kit's decoder (:func:`mmkit.data.images.read_image`), written to a private temporary file
  for the query and deleted afterwards;
- results safe to send: each hit's ``path`` relative to the images folder (never absolute),
  ``thumb`` and ``image`` URLs, upload file names replaced by ``"upload 1"`` ...;
- thumbnails (JPEG, longer side ``thumb_size``) made once and cached on disk by the SHA-256
  of the file's bytes, outside the index folder (the index is only read);
- the original files, served only when they resolve inside the images folder (a symlink
  pointing out of it is refused).

Errors are one-line :class:`~mmkit.errors.InputError` s; the subclasses say which HTTP status
the app answers with (:class:`NotFound` 404, :class:`Forbidden` 403, :class:`TooLarge` 413,
:class:`Unsupported` 415; any other InputError is a bad request, 400).

One lock guards the method and the index (their lazy caches, the models): concurrent callers
get exactly the answers they would get one at a time.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from PIL import Image, UnidentifiedImageError

from mmkit._io import atomic_write_bytes
from mmkit.data.images import read_image
from mmkit.errors import InputError
from mmkit.features.cache import cache_dir
from mmkit.scale.embed import QUERY_MODALITIES
from mmkit.scale.search import (CHANGES_MAX_AGE, FolderIndex, Term, load_method,
                                load_query_audio, parse_term, search_index, short_fingerprint)
from mmkit.scale.files import load_image
from mmkit.scale.store import sha256_of
from mmkit.validate import integer

#: the most hits one request may ask for (``k``)
MAX_K = 1000
#: the most uploaded files (images and sounds together) in one query
MAX_UPLOADS = 8
#: the most text terms (``text`` and ``not_text`` together) in one query
MAX_TEXTS = 32
#: thumbnails' JPEG quality
THUMB_QUALITY = 85

#: what each method can and cannot find, in plain words (``info()["limits"]``)
LIMITS: dict[str, str] = {
    "pretrained": (
        "This index knows the 1,000 everyday things an ImageNet classifier names (animals, "
        "objects, foods, vehicles, some scenes such as a temple or a lakeside) and, when OCR "
        "ran at build time, the words printed in the photos. A text query is matched to "
        "those things and words: 'a cat', 'a cup of coffee' or a word on a shop sign work; "
        "colours, counts, positions, actions, moods, and people's or places' names do not, "
        "and a query close to none of the 1,000 things gets a note saying results will be "
        "weak. An image query finds photos of the same kinds of things and near-copies "
        "(crops, resizes, re-compressions). It does not search by sound."),
    "clip": (
        "This index matches photos and free text in one space learned by a CLIP model from "
        "image-caption pairs: descriptions of objects, scenes and styles work, counting, "
        "left and right, small text in the photo and rare names are unreliable, and quality "
        "depends on the CLIP weights it was built with. An image query finds similar "
        "photos. It does not search by sound."),
    "joint": (
        "This index uses a small model trained only on the kit's synthetic world: 64-pixel "
        "pictures of coloured shapes on backgrounds, described with about 270 words, with "
        "their sounds and spoken captions. It understands those shapes, colours, positions "
        "and sounds and nothing else: on real photographs its results mean nothing, and "
        "words it does not know are named in a note. Text, image and sound queries work."),
    "baseline": (
        "This index uses handcrafted features (colour, edges and texture of the picture, "
        "the words of the text, the spectrum of a sound) matched by CCA fitted on the kit's "
        "synthetic world: a simple reference for the world's pictures of coloured shapes, "
        "weak on them and meaningless on real photographs."),
}


class NotFound(InputError):
    """No such image id, or its file is gone (HTTP 404)."""


class Forbidden(InputError):
    """The file is outside the images folder (HTTP 403)."""


class TooLarge(InputError):
    """An upload over the byte or pixel limit (HTTP 413)."""


class Unsupported(InputError):
    """An upload that is not an image or a sound the kit can decode (HTTP 415)."""


def _positive_int(value: Any, name: str, low: int = 1) -> int:
    return integer(value, name, low=low)


def _weight(value: Any, what: str) -> float:
    try:
        w = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{what}: the weight must be a number, got {value!r}") from None
    if not np.isfinite(w) or w == 0:
        raise InputError(f"{what}: the weight must be a non-zero number, got {value!r}")
    return w


def _image_id(value: Any) -> int:
    """An image id from an int or a decimal string; NotFound for anything else."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,12}", value):
        return int(value)
    raise NotFound(f"no image with id {str(value)[:40]!r} (ids are whole numbers >= 0)")


class SearchService:
    """An index folder opened for searching, with its method loaded once.

    Args:
        index: an index folder (``mmkit index build``) or an open
            :class:`~mmkit.scale.search.FolderIndex`.
        model: a clip index's CLIP folder, if it moved since the build.
        thumb_dir: where thumbnails are cached (default: mmkit's cache folder
            ``thumbs/<16 hex digits of the SHA-256 of the index folder's resolved path>``).
        thumb_size: the longer side of a thumbnail, in pixels (16 .. 2048).
        max_upload_bytes: the largest uploaded file accepted.
        max_pixels: the largest uploaded image accepted (width x height, read from its
            header before decoding).
        quiet: no progress output while loading the method.
    """

    def __init__(self, index: str | os.PathLike | FolderIndex, *, model: str | None = None,
                 thumb_dir: str | os.PathLike | None = None, thumb_size: int = 256,
                 max_upload_bytes: int = 16 * 2**20, max_pixels: int = 40_000_000,
                 quiet: bool = True) -> None:
        self.thumb_size = _positive_int(thumb_size, "thumb_size", low=16)
        if self.thumb_size > 2048:
            raise InputError(f"thumb_size must be at most 2048, got {thumb_size!r}")
        self.max_upload_bytes = _positive_int(max_upload_bytes, "max_upload_bytes")
        self.max_pixels = _positive_int(max_pixels, "max_pixels")
        self.index = index if isinstance(index, FolderIndex) else FolderIndex.open(index)
        self.method, self.fit = load_method(self.index, model=model, quiet=quiet)
        m = self.index.manifest
        self.root = Path(m["root"])
        self._real_root = Path(os.path.realpath(self.root))
        key = hashlib.sha256(str(Path(self.index.path).resolve()).encode()).hexdigest()[:16]
        self.thumb_dir = Path(thumb_dir) if thumb_dir is not None \
            else cache_dir() / "thumbs" / key
        self.modalities = self._modalities()
        self._lock = threading.RLock()
        self._thumb_lock = threading.Lock()
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    # ------------------------------------------------------------------ description
    def _modalities(self) -> list[str]:
        spaces = self.index.spaces
        directions = tuple(getattr(self.method, "directions", ()))
        if spaces == ["joint"]:
            return [m for m in QUERY_MODALITIES if f"{m}->image" in directions]
        return [m for m in QUERY_MODALITIES if m in spaces]

    def _can_explain(self) -> bool:
        return hasattr(self.method, "explain_text") and "ids" in self.index.extras()

    def info(self) -> dict[str, Any]:
        """What the page shows about the index: ``{"method", "fingerprint" (shortened),
        "n_images" (indexed), "n_files" (listed at build time), "built_at", "root" (the
        images folder), "spaces", "modalities" (query kinds: "text", "image", "audio"),
        "ocr", "why" (hits can be explained), "limits" (one paragraph), "max_upload_bytes",
        "max_pixels", "thumb_size", "max_k", "heatmap" (a text query's similarity heat map
        is available for each hit)}``."""
        m = self.index.manifest
        with self._lock:
            why = self._can_explain()
        return {"method": m["method"],
                "fingerprint": short_fingerprint(m["fit"].get("fingerprint", "")),
                "n_images": len(self.index), "n_files": int(m.get("n_files", len(
                    self.index.entries))), "built_at": m.get("built_at"), "root": str(self.root),
                "spaces": list(self.index.spaces), "modalities": list(self.modalities),
                "ocr": bool(m.get("ocr", False)), "why": why,
                "limits": LIMITS.get(m["method"], f"method {m['method']!r}: no description."),
                "max_upload_bytes": self.max_upload_bytes, "max_pixels": self.max_pixels,
                "thumb_size": self.thumb_size, "max_k": MAX_K, "heatmap": self.has_heatmap}

    def warm_up(self) -> float:
        """Load what the method loads lazily (its models, the stored vectors) with one text
        query and one image query (the first indexed file), so that the first user's search
        is as fast as the next; returns the seconds it took."""
        t0 = time.perf_counter()
        terms = [Term("text", "a photo")] if "text" in self.modalities else []
        if "image" in self.modalities:
            first = self.index.entries[self.index.stored_ids()[0]].path
            terms.append(Term("image", str(self.root / first)))
        for term in terms:
            with self._lock, contextlib.suppress(InputError):  # a file gone: not warmed
                search_index(self.index, self.method, [term], k=1, why=True,
                             check_files=False)
        self.watch_folder()
        return time.perf_counter() - t0

    def watch_folder(self, interval: float = CHANGES_MAX_AGE / 2) -> None:
        """Look at the images folder now and then every ``interval`` seconds in a background
        thread, so that no request pays for the look (one ``stat`` per file: ~0.2 s at
        10,000 files) while the "folder changed" warning stays at most
        :data:`~mmkit.scale.search.CHANGES_MAX_AGE` seconds old. :meth:`close` stops it."""
        self.index.changes(max_age=0)
        if self._watcher is not None and self._watcher.is_alive():
            return

        def watch() -> None:
            while not self._stop.wait(interval):
                with contextlib.suppress(OSError):
                    self.index.changes(max_age=0)

        self._watcher = threading.Thread(target=watch, name="mmkit-serve-watch", daemon=True)
        self._watcher.start()

    def close(self) -> None:
        """Stop the folder watcher (if any)."""
        self._stop.set()

    # ------------------------------------------------------------------ searching
    def search(self, *, text: Sequence[str] = (), not_text: Sequence[str] = (),
               images: Sequence[tuple[bytes, float]] = (),
               audio: Sequence[tuple[bytes, float]] = (), k: int = 24, offset: int = 0,
               threshold: float | None = None, why: bool = True) -> dict[str, Any]:
        """A composed query: ``text`` items (``"a cat"``, ``"0.5:snow"``), ``not_text``
        (weight -1), uploaded ``images`` and ``audio`` as (bytes, weight). Blank text items
        are ignored (a form's empty box). Returns :func:`search_index`'s dict with each hit's
        ``path`` relative to the images folder plus ``thumb`` and ``image`` URLs, and
        ``took_ms``; one-line InputError (or a subclass: :class:`TooLarge`,
        :class:`Unsupported`) for a bad query."""
        t0 = time.perf_counter()
        k, offset, threshold = self._paging(k, offset, threshold)
        if isinstance(text, (str, bytes)) or isinstance(not_text, (str, bytes)):
            raise InputError("text and not_text must be lists of strings, not one string")
        texts = [str(t) for t in text if str(t).strip()]
        nots = [str(t) for t in not_text if str(t).strip()]
        images, audio = list(images), list(audio)
        if len(texts) + len(nots) > MAX_TEXTS:
            raise InputError(f"too many text terms ({len(texts) + len(nots)}; at most "
                             f"{MAX_TEXTS})")
        if len(images) + len(audio) > MAX_UPLOADS:
            raise InputError(f"too many uploaded files ({len(images) + len(audio)}; at most "
                             f"{MAX_UPLOADS})")
        if not (texts or nots or images or audio):
            raise InputError("give a query: a text, an image or a sound (several may be "
                             "combined)")
        if audio and "audio" not in self.modalities:
            raise InputError(f"this index (method {self.index.manifest['method']!r}) does not "
                             "search by sound; use a text or an image")
        if images and "image" not in self.modalities:
            raise InputError(f"this index (method {self.index.manifest['method']!r}) does not "
                             "search by image; use a text")
        terms = [parse_term("text", t) for t in texts]
        terms += [parse_term("text", t, weight=-1.0) for t in nots]
        public = list(terms)
        with tempfile.TemporaryDirectory(prefix="mmkit-serve-") as tmp:
            os.chmod(tmp, 0o700)
            for n, item in enumerate(images, 1):
                data, w = self._upload(item, f"image {n}")
                path = self._check_image(data, Path(tmp) / f"image-{n}", f"image {n}")
                terms.append(Term("image", str(path), _weight(w, f"uploaded image {n}")))
                public.append(Term("image", f"upload {n}", terms[-1].weight))
            for n, item in enumerate(audio, 1):
                data, w = self._upload(item, f"sound {n}")
                path = self._check_sound(data, Path(tmp) / f"sound-{n}", f"sound {n}")
                terms.append(Term("audio", str(path), _weight(w, f"uploaded sound {n}")))
                public.append(Term("audio", f"upload {n}", terms[-1].weight))
            if not any(t.weight > 0 for t in terms):
                raise InputError("every query term has a negative weight: give at least one "
                                 "thing to look for")
            report = self._run(terms, public, k, offset, threshold, why, tmp)
        report["took_ms"] = round((time.perf_counter() - t0) * 1000, 2)
        return report

    def similar(self, image_id: int, *, k: int = 24, offset: int = 0,
                threshold: float | None = None, why: bool = True) -> dict[str, Any]:
        """Images like image ``image_id`` of this index (its own file as the query; it comes
        first, with score ~1); what :meth:`search` returns, the query's value being the
        image's relative path."""
        t0 = time.perf_counter()
        k, offset, threshold = self._paging(k, offset, threshold)
        if "image" not in self.modalities:
            raise InputError(f"this index (method {self.index.manifest['method']!r}) does not "
                             "search by image")
        path = self.image_file(image_id)
        rel = self.index.entries[_image_id(image_id)].path
        report = self._run([Term("image", str(path))], [Term("image", rel)], k, offset,
                           threshold, why, None)
        report["took_ms"] = round((time.perf_counter() - t0) * 1000, 2)
        return report

    def _paging(self, k: Any, offset: Any, threshold: Any) -> tuple[int, int, float | None]:
        k = _positive_int(k, "k")
        if k > MAX_K:
            raise InputError(f"k must be at most {MAX_K}, got {k}")
        offset = _positive_int(offset, "offset", low=0)
        if threshold is not None:
            try:
                threshold = float(threshold)
            except (TypeError, ValueError):
                raise InputError(f"threshold must be a number, got {threshold!r}") from None
            if not np.isfinite(threshold):
                raise InputError(f"threshold must be a finite number, got {threshold!r}")
        return k, offset, threshold

    def _run(self, terms: list[Term], public: list[Term], k: int, offset: int,
             threshold: float | None, why: bool, tmp: str | None) -> dict[str, Any]:
        try:
            with self._lock:
                report = search_index(self.index, self.method, terms, k=k, offset=offset,
                                      threshold=threshold, why=bool(why))
        except InputError as e:
            msg = str(e).splitlines()[0] if str(e) else "bad query"
            for t, p in zip(terms, public):
                if t.value != p.value:
                    msg = msg.replace(t.value, p.value)
            if tmp is not None:
                msg = msg.replace(tmp, "upload")
            raise type(e)(msg) from None
        labels = {t.label(): p.label() for t, p in zip(terms, public)}
        report["query"] = [{"modality": p.modality, "value": p.value, "weight": p.weight}
                           for p in public]
        for hit in report["results"]:
            i = int(hit["id"])
            hit["path"] = self.index.entries[i].path
            if "why" in hit:
                hit["why"] = {labels.get(key, key): v for key, v in hit["why"].items()}
            hit["thumb"] = f"/thumb/{i}"
            hit["image"] = f"/image/{i}"
        return report

    # ------------------------------------------------------------------ uploads
    def _upload(self, item: Any, what: str) -> tuple[bytes, Any]:
        try:
            data, w = item
        except (TypeError, ValueError):
            raise InputError(f"uploaded {what}: expected (bytes, weight)") from None
        if isinstance(data, (bytearray, memoryview)):
            data = bytes(data)
        if not isinstance(data, bytes):
            raise InputError(f"uploaded {what}: expected bytes, got {type(data).__name__}")
        if len(data) == 0:
            raise Unsupported(f"uploaded {what} is empty")
        if len(data) > self.max_upload_bytes:
            raise TooLarge(f"uploaded {what} is {len(data):,} bytes; the limit is "
                           f"{self.max_upload_bytes:,}")
        return data, w

    def _check_image(self, data: bytes, path: Path, what: str) -> Path:
        """Check an uploaded image's size from its header, then decode it fully with the kit's
        decoder; its bytes go unchanged into a private file (the query reads it again)."""
        try:
            with Image.open(io.BytesIO(data)) as im:
                w, h = im.size
        except Image.DecompressionBombError:
            raise TooLarge(f"uploaded {what} has too many pixels (limit "
                           f"{self.max_pixels:,})") from None
        except UnidentifiedImageError:
            raise Unsupported(f"uploaded {what} is not an image (PNG, JPEG, WebP, TIFF, ...)"
                              ) from None
        except Exception as e:  # noqa: BLE001 - PIL raises many kinds on damaged headers
            raise Unsupported(f"uploaded {what} is not a readable image "
                              f"({type(e).__name__})") from None
        if w * h > self.max_pixels:
            raise TooLarge(f"uploaded {what} is {w} x {h} = {w * h:,} pixels; the limit is "
                           f"{self.max_pixels:,}")
        path.write_bytes(data)
        os.chmod(path, 0o600)
        try:
            read_image(path)
        except InputError as e:
            reason = str(e).replace(str(path), "").lstrip(": ").strip() or "cannot decode"
            raise Unsupported(f"uploaded {what}: {reason}") from None
        return path

    def _check_sound(self, data: bytes, path: Path, what: str) -> Path:
        path.write_bytes(data)
        os.chmod(path, 0o600)
        try:
            load_query_audio(path, int(getattr(self.method, "sample_rate", 16000)))
        except InputError as e:
            reason = str(e).replace(f"--audio {path}: ", "").replace(str(path), "upload")
            raise Unsupported(f"uploaded {what}: {reason}") from None
        return path

    # ------------------------------------------------------------------ files
    def image_file(self, image_id: int) -> Path:
        """The original file of image ``image_id``, resolved: NotFound unless the id is one
        of this index's and the file is still there; Forbidden when it resolves outside the
        images folder (a symlink pointing out of it)."""
        i = _image_id(image_id)
        entries = self.index.entries
        if not 0 <= i < len(entries):
            raise NotFound(f"no image with id {i} (this index has ids 0..{len(entries) - 1})")
        real = Path(os.path.realpath(self.root / entries[i].path))
        try:
            real.relative_to(self._real_root)
        except ValueError:
            raise Forbidden(f"image {i} lies outside the images folder (a link pointing out "
                            "of it); not served") from None
        if not real.is_file():
            raise NotFound(f"image {i}: its file {entries[i].path} is gone (run 'mmkit index "
                           "update')")
        return real

    def thumb_path(self, image_id: int) -> Path:
        """Where the thumbnail of image ``image_id`` is cached (it may not exist yet)."""
        path = self.image_file(image_id)
        e = self.index.entries[_image_id(image_id)]
        st = path.stat()
        sha = e.sha256 if (st.st_size, st.st_mtime_ns) == (e.size, e.mtime_ns) \
            else sha256_of(path)
        return self.thumb_dir / f"{sha}-{self.thumb_size}.jpg"

    def thumbnail(self, image_id: int) -> bytes:
        """JPEG bytes of image ``image_id`` with its longer side ``thumb_size`` pixels, made
        once (by the kit's decoder: EXIF orientation, transparency over white) and then read
        from the cache (``thumb_dir``, keyed by the SHA-256 of the file's bytes)."""
        target = self.thumb_path(image_id)
        with contextlib.suppress(FileNotFoundError):
            return target.read_bytes()
        with self._thumb_lock:
            with contextlib.suppress(FileNotFoundError):
                return target.read_bytes()
            src = self.image_file(image_id)
            try:
                pixels = read_image(src)
            except InputError as e:
                reason = str(e).replace(str(src), "").lstrip(": ").strip()
                raise Unsupported(f"image {_image_id(image_id)}: {reason}") from None
            h, w = pixels.shape[:2]
            scale = self.thumb_size / max(h, w)
            size = (self.thumb_size, max(1, round(h * scale))) if w >= h \
                else (max(1, round(w * scale)), self.thumb_size)
            im = Image.fromarray(pixels).resize(size, Image.Resampling.LANCZOS,
                                                reducing_gap=3.0)
            buf = io.BytesIO()
            im.save(buf, "JPEG", quality=THUMB_QUALITY)
            data = buf.getvalue()
            atomic_write_bytes(target, data)
            return data

    # ------------------------------------------------------------------ heat maps
    @property
    def has_heatmap(self) -> bool:
        """Whether the method can say which pixels matched a text (one joint space and a
        ``similarity_map``: the learned ``joint`` model)."""
        return self.index.spaces == ["joint"] and hasattr(self.method, "similarity_map") \
            and "text" in self.modalities

    def heatmap(self, image_id: int, *, text: Sequence[str] = (),
                not_text: Sequence[str] = ()) -> bytes:
        """PNG of image ``image_id`` (at the size the method sees it) with the similarity
        heat map of the text query on top: which pixels make this image match the weighted
        sum of the query's text vectors (:meth:`mmkit.methods.joint.JointMethod.
        similarity_map`, similarity Grad-CAM), red = most."""
        if not self.has_heatmap:
            raise InputError(f"method {self.index.manifest['method']!r} has no similarity heat "
                             "map (the joint model has one)")
        terms = [parse_term("text", t) for t in text if str(t).strip()]
        terms += [parse_term("text", t, weight=-1.0) for t in not_text if str(t).strip()]
        if not any(t.weight > 0 for t in terms):
            raise InputError("a heat map needs a text query (text=...)")
        path = self.image_file(image_id)
        size = int(getattr(self.method, "input_size", 64))
        with self._lock:
            pixels = load_image(path, size)
            vecs = np.asarray(self.method.embed_texts([t.value for t in terms]), np.float32)
            query = (np.array([t.weight for t in terms], np.float32)[:, None] * vecs).sum(0)
            heat = self.method.similarity_map(pixels[None], query)[0]
        colours = (matplotlib.colormaps["jet"](heat)[..., :3] * 255).astype(np.float32)
        blend = (0.5 * pixels.astype(np.float32) + 0.5 * colours).round().astype(np.uint8)
        im = Image.fromarray(blend).resize((self.thumb_size, self.thumb_size),
                                           Image.Resampling.NEAREST)
        buf = io.BytesIO()
        im.save(buf, "PNG")
        return buf.getvalue()

    def clear_thumbnails(self) -> None:
        """Remove this service's thumbnail cache folder."""
        shutil.rmtree(self.thumb_dir, ignore_errors=True)

    def __repr__(self) -> str:
        return (f"SearchService({str(self.index.path)!r}, method={self.index.manifest['method']!r}"
                f", n_images={len(self.index)})")


__all__ = ["SearchService", "NotFound", "Forbidden", "TooLarge", "Unsupported", "LIMITS",
           "MAX_K", "MAX_UPLOADS", "MAX_TEXTS"]
