"""A search widget for notebooks: the search app in a cell, through the same
:class:`~mmkit.serve.service.SearchService` the web server uses.

- :func:`search_widget`: a text box, an image upload, a thumbnail grid with scores and paging,
  "more like this" under every thumbnail (ipywidgets). Displayed where widgets do not run
  (nbval, plain nbconvert, a static notebook viewer), it shows a static HTML gallery of the
  first query's results instead, so a notebook never shows an empty cell;
- :func:`static_gallery`: that HTML gallery for any search result;
- :func:`index_world`: a folder index over some of the world's images (written as PNG files),
  so the world of notebook 00 is searched exactly as a folder of photos is.
"""
from __future__ import annotations

import base64
import html
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mmkit.data.world import World
from mmkit.errors import InputError
from mmkit.scale.build import build_folder_index
from mmkit.scale.search import FolderIndex
from mmkit.serve.service import SearchService


def index_world(world: World, ids: Sequence[int], folder: str | os.PathLike, *,
                method: str = "joint") -> Path:
    """Write the world's images ``ids`` as PNG files (``folder/images/000123.png``) and build
    (or update: an existing index embeds nothing again) a folder index over them with
    ``method``; returns the index folder ``folder/index``."""
    from PIL import Image

    folder = Path(folder)
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    for i in np.asarray(ids, dtype=int):
        path = images / f"{int(i):06d}.png"
        if not path.is_file():
            tmp = path.with_name(f".{path.name}.tmp")
            Image.fromarray(world.images[int(i)]).save(tmp, format="PNG")
            os.replace(tmp, path)
    build_folder_index(images, folder / "index", method=method, progress=False, quiet=True)
    return folder / "index"


def _service(index: str | os.PathLike | FolderIndex | SearchService) -> SearchService:
    return index if isinstance(index, SearchService) else SearchService(index)


def _data_url(jpeg: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")


def static_gallery(service: SearchService, report: dict[str, Any], *, columns: int = 6,
                   size: int = 128) -> str:
    """An HTML gallery of ``report``'s hits (thumbnails inlined as data URLs, each with its
    rank, score and file name, and why it matched when the report says so)."""
    cells = []
    for rank, hit in enumerate(report["results"], report["offset"] + 1):
        why = "; ".join(
            ", ".join([c if isinstance(c, str) else f"{c[0]} {c[1]:.2f}"
                       for c in w.get("concepts", [])] + [f"'{o}'" for o in w.get("ocr", [])])
            for w in hit.get("why", {}).values())
        cells.append(
            f'<figure style="margin:4px;width:{size}px;display:inline-block;'
            f'vertical-align:top;font:11px sans-serif">'
            f'<img src="{_data_url(service.thumbnail(hit["id"]))}" alt="{html.escape(hit["path"])}"'
            f' style="width:{size}px;height:{size}px;object-fit:cover">'
            f'<figcaption>{rank}. {hit["score"]:+.3f} {html.escape(Path(hit["path"]).name)}'
            + (f'<br><span style="color:#666">{html.escape(why)}</span>' if why else "")
            + "</figcaption></figure>")
    query = ", ".join(f"{q['modality']} {q['value']!r}" + ("" if q["weight"] == 1 else
                                                          f" x{q['weight']:g}")
                      for q in report["query"])
    notes = "".join(f'<div style="color:#a60">{html.escape(n)}</div>'
                    for n in report["notes"] + report["warnings"])
    return (f'<div><div style="font:12px sans-serif"><b>{html.escape(query)}</b>: '
            f'{report["total"]} hits</div>{notes}'
            f'<div style="max-width:{columns * (size + 8)}px">{"".join(cells)}</div></div>')


def search_widget(index: str | os.PathLike | FolderIndex | SearchService, *, query: str = "",
                  k: int = 12, columns: int = 6, size: int = 128) -> Any:
    """A search box over ``index`` (an index folder, an opened index or a service).

    ``query`` is searched at once. Returns an ipywidgets box (text box, image upload, the
    thumbnail grid with scores, paging, "more like this" per thumbnail) whose static
    rendering is the gallery of ``query`` (:func:`static_gallery`); without ipywidgets, that
    gallery as an ``IPython.display.HTML`` object.
    """
    service = _service(index)
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise InputError(f"k must be a whole number >= 1, got {k!r}")
    first = service.search(text=[query], k=k) if query.strip() else None
    try:
        import ipywidgets as w
    except ImportError:
        from IPython.display import HTML

        return HTML(static_gallery(service, first, columns=columns, size=size) if first
                    else "<i>give a query</i>")
    return _SearchBox(w, service, first, k=k, columns=columns, size=size, query=query)


def _make_box_class():
    """The widget class (ipywidgets imported when the first widget is made)."""
    import ipywidgets as w

    class SearchBox(w.VBox):
        """The widget; its static rendering (where widgets do not run) is a gallery."""

        def __init__(self, service: SearchService, first: dict | None, *, k: int,
                     columns: int, size: int, query: str) -> None:
            self.service, self.k, self.columns, self.size = service, k, columns, size
            self.first = first
            info = service.info()
            self.text = w.Text(value=query, placeholder="a text query, e.g. a cat",
                               layout=w.Layout(width="50%"))
            self.go = w.Button(description="Search", button_style="primary")
            self.upload = w.FileUpload(accept="image/*", multiple=False,
                                       description="Image query")
            self.prev = w.Button(description="< prev", layout=w.Layout(width="80px"))
            self.next = w.Button(description="next >", layout=w.Layout(width="80px"))
            self.status = w.HTML()
            self.grid = w.GridBox(layout=w.Layout(
                grid_template_columns=f"repeat({columns}, {size + 12}px)"))
            header = w.HTML(f"<b>{html.escape(info['method'])}</b> index of "
                            f"{info['n_images']} images. {html.escape(info['limits'])}")
            self.go.on_click(lambda _: self.run(text=self.text.value))
            self.text.on_submit(lambda _: self.run(text=self.text.value))
            self.upload.observe(self._uploaded, names="value")
            self.prev.on_click(lambda _: self.page(-1))
            self.next.on_click(lambda _: self.page(+1))
            self.last: tuple[str, Any] | None = None
            self.offset = 0
            super().__init__([header, w.HBox([self.text, self.go, self.upload]), self.status,
                              self.grid, w.HBox([self.prev, self.next])])
            if first is not None:
                self.last = ("text", query)
                self.show(first)

        # -- queries
        def run(self, *, text: str | None = None, similar: int | None = None,
                image: bytes | None = None, offset: int = 0) -> None:
            try:
                if similar is not None:
                    report = self.service.similar(similar, k=self.k, offset=offset)
                    self.last = ("similar", similar)
                elif image is not None:
                    report = self.service.search(images=[(image, 1.0)], k=self.k,
                                                 offset=offset)
                    self.last = ("image", image)
                else:
                    report = self.service.search(text=[text or ""], k=self.k, offset=offset)
                    self.last = ("text", text)
            except InputError as e:
                self.status.value = f'<span style="color:#c00">{html.escape(str(e))}</span>'
                return
            self.offset = offset
            self.show(report)

        def page(self, step: int) -> None:
            if self.last is None:
                return
            kind, value = self.last
            offset = max(0, self.offset + step * self.k)
            self.run(offset=offset, **{kind: value})

        def _uploaded(self, change: dict) -> None:
            files = change["new"]
            if files:
                item = files[0]
                self.run(image=bytes(item["content"] if isinstance(item, dict)
                                     else item.content))

        # -- display
        def show(self, report: dict) -> None:
            lo = report["offset"] + 1
            hi = report["offset"] + len(report["results"])
            notes = "".join(f"<br><span style='color:#a60'>{html.escape(n)}</span>"
                            for n in report["notes"] + report["warnings"])
            self.status.value = f"{lo}-{hi} of {report['total']} ({report['took_ms']:.0f} ms)" \
                + notes
            cells = []
            for hit in report["results"]:
                img = w.Image(value=self.service.thumbnail(hit["id"]), format="jpeg",
                              layout=w.Layout(width=f"{self.size}px", height=f"{self.size}px",
                                              object_fit="cover"))
                more = w.Button(description="more like this",
                                layout=w.Layout(width=f"{self.size}px"))
                more.on_click(lambda _, i=hit["id"]: self.run(similar=i))
                label = w.HTML(f"<small>{hit['score']:+.3f} "
                               f"{html.escape(Path(hit['path']).name)}</small>")
                cells.append(w.VBox([img, label, more]))
            self.grid.children = cells
            self.prev.disabled = report["offset"] == 0
            self.next.disabled = hi >= report["total"]

        def _repr_mimebundle_(self, **kwargs: Any) -> dict:
            bundle = super()._repr_mimebundle_(**kwargs) or {}
            if self.first is not None:
                bundle["text/html"] = static_gallery(self.service, self.first,
                                                     columns=self.columns, size=self.size)
            return bundle

    return SearchBox


_BOX: Any = None


def _SearchBox(w: Any, service: SearchService, first: dict | None, **kw: Any) -> Any:
    global _BOX
    if _BOX is None:
        _BOX = _make_box_class()
    return _BOX(service, first, **kw)


__all__ = ["search_widget", "static_gallery", "index_world"]
