"""The web page of ``mmkit serve`` in a real headless browser.

The real server (``python -m mmkit serve`` in a subprocess, on a free port) over a real index
(the shipped photos of :mod:`mmkit.data.photos`, method ``pretrained``), driven by headless
chromium over the Chrome DevTools Protocol (``tests/cdp.py``) with real input events: typing
and Enter, a mouse click on a thumbnail, the browser's back button, a file chosen in the file
input. Every test also checks that no request left the server's origin and that the console
logged no error.

Without chromium on PATH the tests are skipped (one line), except under CI (``CI`` set, as
``.ci/run`` does), where they fail: CI must run them.

``MMKIT_SCREENSHOT=1`` writes the screenshot of the page (results for "a cup of coffee",
1280 x 800) to ``docs/serve.png``, the one the README shows.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from cdp import Browser, find_browser  # tests/cdp.py

pytestmark = [pytest.mark.slow, pytest.mark.subprocess]

REPO = Path(__file__).resolve().parents[1]
WIDTH, HEIGHT = 1280, 800
# JavaScript conditions the tests wait for
RESULTS_SHOWN = ("!document.querySelector('#grid').hasAttribute('aria-busy')"
                 " && document.querySelectorAll('#grid img').length > 0"
                 " && [...document.querySelectorAll('#grid img')]"
                 ".every(i => i.complete && i.naturalWidth > 0)")
HITS = ("[...document.querySelectorAll('#grid li')].map(li => ({"
        "path: li.querySelector('.path').textContent, alt: li.querySelector('img').alt,"
        "score: li.querySelector('.score').textContent, id: li.querySelector('a').dataset.id}))")


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.load(r)


@pytest.fixture(scope="module")
def chromium() -> str:
    path = find_browser()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium not installed, and CI must run the browser tests "
                        "(apt-get install -y --no-install-recommends chromium)")
        pytest.skip("chromium not installed (apt-get install chromium)")
    return path


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    from mmkit.data.photos import write_photos
    from mmkit.scale import build_folder_index

    root = tmp_path_factory.mktemp("serve-browser")
    write_photos(root / "photos", edited=False)
    build_folder_index(root / "photos", root / "index", method="pretrained", progress=False,
                       quiet=True)
    return root


def _serve(index: Path, workdir: Path, n_images: int):
    """``python -m mmkit serve --port 0`` (a free port) over ``index``; yields its origin
    ``http://127.0.0.1:P``, read from the line it prints once it listens."""
    log_path = workdir / "server.log"
    with open(log_path, "wb") as log:  # the child keeps its own copy
        proc = subprocess.Popen(
            [sys.executable, "-m", "mmkit", "serve", "--index", str(index),
             "--port", "0", "--thumb-dir", str(workdir / "thumbs")],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=workdir,
            env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    try:
        deadline = time.monotonic() + 180
        while not (m := re.search(r"serving .* at (http://127\.0\.0\.1:\d+)/",
                                  log_path.read_text(errors="replace"))):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-3000:]
                pytest.fail(f"mmkit serve did not start (exit {proc.poll()}):\n{tail}")
            time.sleep(0.2)
        origin = m.group(1)
        assert _get_json(origin + "/api/info")["n_images"] == n_images
        yield origin
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def server(chromium, photos):
    yield from _serve(photos / "index", photos, 13)


@pytest.fixture(scope="module")
def world_server(chromium, tmp_path_factory):
    """The same over a joint index of 40 exported world scenes (a method with heat maps)."""
    from mmkit.data import World
    from mmkit.data.export import export_world
    from mmkit.scale import build_folder_index

    root = tmp_path_factory.mktemp("serve-world")
    export_world(World(n=40, seed=2), root / "world", progress=False)
    build_folder_index(root / "world" / "images", root / "index", method="joint",
                       progress=False, quiet=True)
    yield from _serve(root / "index", root, 40)


@pytest.fixture(scope="module")
def browser(chromium, tmp_path_factory):
    with Browser.start(tmp_path_factory.mktemp("chromium"), executable=chromium,
                       width=WIDTH, height=HEIGHT) as b:
        yield b


def _checked_page(browser, origin: str):
    """A page of the browser, its events recorded; checked afterwards: every request went to
    ``origin``, and the console logged no error (a test that provokes HTTP errors sets
    ``p.http_errors = True``: the browser logs each 4xx answer as a network error)."""
    p = browser.page()
    p.http_errors = False
    for domain in ("Page", "Runtime", "Network", "Log", "DOM"):
        p.send(f"{domain}.enable")
    p.send("Emulation.setDeviceMetricsOverride", width=WIDTH, height=HEIGHT,
           deviceScaleFactor=1, mobile=False)
    yield p
    p.pump(0.3)
    p.close()
    requests = [e["request"]["url"] for m, e in p.events if m == "Network.requestWillBeSent"]
    assert requests, "the page made no request"
    # blob: URLs are the page's own previews of uploaded files (no network); the rest must
    # all go to the server
    outside = [u for u in requests if not u.startswith((origin + "/", f"blob:{origin}/"))]
    assert not outside, f"requests left the origin {origin}: {outside}"
    errors = [e for m, e in p.events
              if m == "Runtime.exceptionThrown"
              or (m == "Runtime.consoleAPICalled" and e.get("type") in ("error", "assert"))
              or (m == "Log.entryAdded" and e["entry"].get("level") == "error"
                  and not (p.http_errors and e["entry"].get("source") == "network"))]
    assert not errors, f"console errors: {errors}"


@pytest.fixture
def page(browser, server):
    yield from _checked_page(browser, server)


@pytest.fixture
def world_page(browser, world_server):
    yield from _checked_page(browser, world_server)


def _go_back(p) -> None:
    """The browser's back button: the previous entry of the tab's history."""
    h = p.send("Page.getNavigationHistory")
    p.send("Page.navigateToHistoryEntry", entryId=h["entries"][h["currentIndex"] - 1]["id"])


def _scores_shown(hits: list[dict]) -> None:
    assert all(re.fullmatch(r"-?\d+\.\d{3}", h["score"]) for h in hits), hits
    scores = [float(h["score"]) for h in hits]
    assert scores == sorted(scores, reverse=True), scores


def test_search_click_back_upload(page, server, photos):
    p = page
    p.goto(server + "/")
    p.wait_for("document.querySelector('#info').textContent.includes('13 images')")
    assert p.eval("document.querySelector('#info').textContent").startswith("pretrained")
    assert p.eval("document.querySelector('#limits').textContent.includes('ImageNet')")

    # text: type into the box, press Enter
    p.type("#q", "a cat")
    p.press("Enter")
    p.wait_for("location.search === '?q=a+cat'")
    p.wait_for(RESULTS_SHOWN)
    hits = p.eval(HITS)
    assert len(hits) == 13 and hits[0]["path"] == "chelsea.png" == hits[0]["alt"], hits
    _scores_shown(hits)
    assert p.eval("document.querySelector('#grid .why').textContent")  # why: concepts
    assert p.eval("document.querySelector('#error').hidden")

    # click the first thumbnail: "more like this", the clicked image first, in the URL
    p.click("#grid li a")
    p.wait_for(f"location.search === '?similar={hits[0]['id']}'")
    p.wait_for(RESULTS_SHOWN + " && document.querySelector('#chips').textContent"
                               ".includes('more like chelsea.png')")
    similar = p.eval(HITS)
    assert similar[0]["path"] == "chelsea.png" and float(similar[0]["score"]) > 0.99, similar
    assert p.eval("document.querySelector('#q').value") == ""

    # back: the text query and its results again
    _go_back(p)
    p.wait_for("location.search === '?q=a+cat'")
    p.wait_for(RESULTS_SHOWN + " && document.querySelector('#chips').children.length === 0")
    assert p.eval(HITS) == hits
    assert p.eval("document.querySelector('#q').value") == "a cat"

    # upload an image (the box emptied first): the original comes first, the file is a chip
    # with a tooltip saying it is not in the URL
    p.type("#q", "")
    p.set_files("#file", [photos / "photos" / "rocket.jpg"])
    p.wait_for("document.querySelector('#chips').textContent.includes('rocket.jpg')")
    p.wait_for(RESULTS_SHOWN + " && document.querySelector('#grid .path').textContent"
                               " === 'rocket.jpg'")
    upload = p.eval(HITS)
    assert float(upload[0]["score"]) > 0.99, upload
    _scores_shown(upload)
    assert "not part of the page address" in p.eval("document.querySelector('.chip').title")
    assert p.eval("location.search") == ""  # a file cannot be in the URL
    assert p.eval("document.querySelector('#error').hidden")


def test_errors_are_one_red_line(page, server):
    p = page
    p.http_errors = True
    p.goto(server + "/?similar=99999")
    p.wait_for("!document.querySelector('#error').hidden")
    assert "99999" in p.eval("document.querySelector('#error').textContent")
    assert p.eval("getComputedStyle(document.querySelector('#error')).color") != \
        p.eval("getComputedStyle(document.body).color")
    assert p.eval("document.querySelectorAll('#grid li').length") == 0
    assert "13 images" in p.eval("document.querySelector('#info').textContent")  # not blank
    # the page recovers with the next query
    p.type("#q", "a cup of coffee")
    p.press("Enter")
    p.wait_for(RESULTS_SHOWN)
    assert p.eval("document.querySelector('#error').hidden")


def test_url_query_runs_and_screenshot(page, server, tmp_path):
    p = page
    p.goto(server + "/?q=a+cup+of+coffee")  # a shared link runs its query
    p.wait_for(RESULTS_SHOWN)
    hits = p.eval(HITS)
    assert hits[0]["path"] == "coffee.png", hits
    assert p.eval("document.querySelector('#q').value") == "a cup of coffee"
    p.eval("document.activeElement.blur()")
    shot = p.screenshot(tmp_path / "serve.png")
    from PIL import Image

    with Image.open(shot) as im:
        assert im.size == (WIDTH, HEIGHT)
        if os.environ.get("MMKIT_SCREENSHOT") == "1":  # the README's: 256 colours, 1/3 the bytes
            (REPO / "docs").mkdir(exist_ok=True)
            im.convert("RGB").quantize(256).save(REPO / "docs" / "serve.png", optimize=True)



def test_paging_and_notes(page, server):
    p = page
    p.goto(server + "/?q=democracy&k=12")  # outside what the method knows: a note
    p.wait_for(RESULTS_SHOWN)
    note = p.eval("document.querySelector('#status .note').textContent")
    assert "democracy" in note and "ImageNet" in note
    assert p.eval("document.querySelector('#k').value") == "12"
    assert p.eval("document.querySelector('#range').textContent") == "1–12 of 13"
    assert p.eval("document.querySelector('#prev').disabled")
    first = p.eval(HITS)
    p.click("#next")
    p.wait_for("location.search === '?q=democracy&k=12&page=2'")
    p.wait_for(RESULTS_SHOWN + " && document.querySelectorAll('#grid li').length === 1")
    assert p.eval("document.querySelector('#range').textContent") == "13–13 of 13"
    assert p.eval("document.querySelector('#next').disabled")
    assert p.eval(HITS)[0]["path"] not in {h["path"] for h in first}
    _go_back(p)
    p.wait_for("location.search === '?q=democracy&k=12'")
    p.wait_for(RESULTS_SHOWN + " && document.querySelectorAll('#grid li').length === 12")


def test_heat_map_of_a_hit(world_page, world_server):
    """On an index whose method has heat maps (joint), each hit of a text query has a
    "heat map" button that swaps the thumbnail for the image with the words' heat map."""
    p = world_page
    p.goto(world_server + "/?q=a+red+circle&k=12")
    p.wait_for(RESULTS_SHOWN + " && document.querySelectorAll('#grid .heat').length === 12")
    first = "document.querySelector('#grid li img')"
    thumb = p.eval(f"{first}.src")
    p.click("#grid li .heat")
    p.wait_for(f"{first}.src.includes('/heatmap/') && {first}.complete"
               f" && {first}.naturalWidth > 0")
    assert p.eval(f"{first}.src").endswith("?text=a+red+circle")
    assert p.eval("document.querySelector('#grid li .heat').getAttribute('aria-pressed')") \
        == "true"
    p.click("#grid li .heat")                                   # and back to the photo
    p.wait_for(f"{first}.src === {json.dumps(thumb)}")
    # no heat map for a "more like this" query (it has no words)
    p.goto(world_server + "/?similar=3")
    p.wait_for(RESULTS_SHOWN)
    assert p.eval("document.querySelectorAll('#grid .heat').length") == 0
