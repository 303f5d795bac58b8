"""The notebooks' search widget (mmkit.serve.widget): the same SearchService as the server,
a static gallery where widgets do not run, and the world searched as a folder of files.

References: the service's own answers for the same queries (the widget must show exactly
those hits, in that order) and the world's images written to disk (the index must hold
them, byte for byte as PNG).
"""
from __future__ import annotations

import builtins
import io
import re

import numpy as np
import pytest
from PIL import Image

from mmkit.data import World
from mmkit.errors import InputError
from mmkit.serve.service import SearchService
from mmkit.serve.widget import index_world, search_widget, static_gallery


@pytest.fixture(scope="module")
def world_index(tmp_path_factory):
    world = World(n=300, seed=0, progress=False)
    folder = tmp_path_factory.mktemp("widget")
    ids = world.indices("test")
    return world, ids, index_world(world, ids, folder), folder


def test_index_world_writes_the_images_and_an_index_that_updates_to_itself(world_index):
    world, ids, idx, folder = world_index
    files = sorted((folder / "images").glob("*.png"))
    assert [f.name for f in files] == [f"{int(i):06d}.png" for i in sorted(ids)]
    assert np.array_equal(np.asarray(Image.open(files[0])), world.images[int(sorted(ids)[0])])
    again = index_world(world, ids, folder)                       # nothing new to embed
    import json

    manifest = json.loads((again / "manifest.json").read_text())
    assert manifest["method"] == "joint" and manifest["update"]["embedded"] == 0


def test_the_widget_shows_exactly_the_services_hits(world_index):
    _, _, idx, _ = world_index
    service = SearchService(idx)
    box = search_widget(service, query="a large red shape with stripes", k=6)
    want = service.search(text=["a large red shape with stripes"], k=6)
    labels = [c.children[1].value for c in box.grid.children]
    assert [re.search(r"(\d+\.png)", v).group(1) for v in labels] == \
        [h["path"].split("/")[-1] for h in want["results"]]
    assert box.status.value.startswith(f"1-6 of {want['total']}")
    html = box._repr_mimebundle_()["text/html"]                 # the static rendering
    assert html.count("<img") == 6 and html.count("data:image/jpeg;base64,") == 6
    names = re.findall(r"\d+\. [+-]\d\.\d{3} (\d+\.png)", html)
    assert names == [h["path"].split("/")[-1] for h in want["results"]]
    # more like this, paging, an uploaded image, a bad query shown in one red line
    first = want["results"][0]["id"]
    box.run(similar=first)
    assert re.search(r"(\d+\.png)", box.grid.children[0].children[1].value).group(1) == \
        want["results"][0]["path"].split("/")[-1]
    box.page(+1)
    assert box.status.value.startswith("7-12 of") and not box.prev.disabled
    png = io.BytesIO()
    Image.open(service.image_file(first)).save(png, format="PNG")
    box.run(image=png.getvalue())
    assert box.grid.children[0].children[1].value.endswith(
        f"{want['results'][0]['path'].split('/')[-1]}</small>")
    box.run(text="   ")
    assert "color:#c00" in box.status.value


def test_static_gallery_and_the_fallback_without_ipywidgets(world_index, monkeypatch):
    _, _, idx, _ = world_index
    service = SearchService(idx)
    report = service.search(text=["a fluffy cat"], k=3)
    html = static_gallery(service, report, columns=3, size=64)
    assert html.count("<figure") == 3 and "does not know the words" in html   # the note
    real_import = builtins.__import__

    def no_widgets(name, *args, **kwargs):
        if name == "ipywidgets":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_widgets)
    out = search_widget(service, query="a red circle", k=4)
    assert type(out).__name__ == "HTML" and out.data.count("<figure") == 4
    with pytest.raises(InputError, match="k must be"):
        search_widget(service, query="a red circle", k=0)
