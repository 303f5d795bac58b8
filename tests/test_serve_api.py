"""``mmkit serve``: the JSON API over an index folder (:mod:`mmkit.serve`), through Starlette's
TestClient and through a real uvicorn server on 127.0.0.1.

References are independent of the app: ``search_folder`` (the command line's search) for the
rankings, the files on disk for the originals, PIL for the thumbnails, ``/proc/net/tcp`` for
the listening address, the folder's names, sizes and mtimes for read-only serving.

Two indexes: the ``joint`` method over an exported world of 40 scenes (seconds; for whatever
does not depend on the method) and ``pretrained`` over the 13 real photos of
:func:`mmkit.data.photos.write_photos` (slow).
"""
from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import pytest
from PIL import Image
from starlette.requests import Request
from starlette.testclient import TestClient

from mmkit.errors import InputError
from mmkit.scale import build_folder_index
from mmkit.scale.search import Term, search_folder
from mmkit.serve import SearchService, create_app
from mmkit.serve.app import LOOPBACK_NAMES, is_loopback, read_multipart, serve
from mmkit.serve.cli import add_parser, parse_size
from mmkit.serve.service import TooLarge

ROOT = Path(__file__).resolve().parents[1]


# ====================================================================== helpers
def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """{relative path: (size, mtime_ns)} of every file and link under ``folder``."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            out[p.relative_to(folder).as_posix()] = (st.st_size, st.st_mtime_ns)
    return out


def strip(report: dict) -> dict:
    """A report without its timing (the only part that differs between two runs)."""
    return {k: v for k, v in report.items() if k != "took_ms"}


def assert_one_line_error(r, *statuses: int) -> None:
    assert r.status_code in statuses, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error"} and body["error"] and "\n" not in body["error"]
    assert "Traceback" not in r.text


def png_header(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` RGB pixels (a valid header, one tiny IDAT)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0"))
            + chunk(b"IEND", b""))


def png_bytes(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


# ====================================================================== fixtures
@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A joint index over 40 exported scenes, with a snapshot of both folders taken right
    after the build (before anything serves them)."""
    from mmkit.data import World
    from mmkit.data.export import export_world

    root = tmp_path_factory.mktemp("serve")
    export_world(World(n=40, seed=2), root / "world", progress=False)
    build_folder_index(root / "world" / "images", root / "idx", method="joint",
                       progress=False, quiet=True)
    before = {"idx": snapshot(root / "idx"), "images": snapshot(root / "world" / "images")}
    return root, before


@pytest.fixture(scope="module")
def service(world):
    root, _ = world
    return SearchService(root / "idx", thumb_dir=root / "thumbs")


@pytest.fixture(scope="module")
def client(service):
    with TestClient(create_app(service, allowed_hosts=LOOPBACK_NAMES),
                    base_url="http://127.0.0.1:8000") as c:
        yield c


# ====================================================================== the joint index
def test_info_describes_the_index(client, world):
    root, _ = world
    info = client.get("/api/info").json()
    assert {"method", "fingerprint", "n_images", "n_files", "built_at", "root", "spaces",
            "modalities", "ocr", "why", "limits", "max_upload_bytes",
            "max_pixels"} <= set(info)
    manifest = json.loads((root / "idx" / "manifest.json").read_text())
    assert info["method"] == "joint" and info["n_images"] == info["n_files"] == 40
    assert info["modalities"] == ["text", "image", "audio"] and info["spaces"] == ["joint"]
    assert info["ocr"] is False and info["why"] is False
    assert info["built_at"] == manifest["built_at"] and info["root"] == manifest["root"]
    # the fingerprint is shortened: no full 64-digit SHA-256 on the page
    assert len(info["fingerprint"]) < len(manifest["fit"]["fingerprint"])
    assert "synthetic" in info["limits"] and "\n" not in info["limits"]


def test_text_search_equals_the_command_lines_search(client, world):
    root, _ = world
    for query in ("a red circle", "a blue square on the left"):
        r = client.get("/api/search", params={"text": query, "k": 6})
        assert r.status_code == 200
        got = r.json()
        ref = search_folder(root / "idx", terms=[Term("text", query)], k=6, why=True,
                            quiet=True)
        assert [h["id"] for h in got["results"]] == [h["id"] for h in ref["results"]]
        assert [h["score"] for h in got["results"]] == [h["score"] for h in ref["results"]]
        assert set(got) == set(ref) - {"space"} | {"took_ms"}
        for h, rh in zip(got["results"], ref["results"]):
            assert h["path"] == os.path.relpath(rh["path"], root / "world" / "images")
            assert not os.path.isabs(h["path"])
            assert h["thumb"] == f"/thumb/{h['id']}" and h["image"] == f"/image/{h['id']}"


def test_composed_paging_and_threshold(client, world):
    root, _ = world
    params = {"text": ["a red circle", "0.5:a green triangle"], "not": "a blue square"}
    full = client.get("/api/search", params={**params, "k": 12}).json()
    ref = search_folder(root / "idx", terms=[Term("text", "a red circle"),
                                             Term("text", "a green triangle", 0.5),
                                             Term("text", "a blue square", -1.0)],
                        k=12, quiet=True)
    assert [h["id"] for h in full["results"]] == [h["id"] for h in ref["results"]]
    assert [q["weight"] for q in full["query"]] == [1.0, 0.5, -1.0]
    page2 = client.get("/api/search", params={**params, "k": 4, "offset": 4}).json()
    assert page2["results"] == full["results"][4:8] and page2["offset"] == 4
    t = full["results"][5]["score"]
    cut = client.get("/api/search", params={**params, "k": 40, "threshold": t}).json()
    assert cut["results"] == full["results"][:len(cut["results"])]
    assert cut["total"] == len(cut["results"]) >= 6
    assert all(h["score"] >= t for h in cut["results"])


def test_similar_returns_the_image_first(client):
    r = client.get("/api/similar/7", params={"k": 3}).json()
    assert r["results"][0]["id"] == 7
    assert r["results"][0]["score"] == pytest.approx(1.0, abs=1e-5)
    assert r["query"] == [{"modality": "image", "value": "000007.png", "weight": 1.0}]
    later = client.get("/api/similar/7", params={"k": 2, "offset": 1}).json()
    assert later["results"] == r["results"][1:3]


def test_uploads_find_their_original(client, world):
    root, _ = world
    png = (root / "world" / "images" / "000012.png").read_bytes()
    r = client.post("/api/search", data={"k": "2"},
                    files=[("image", ("mine.png", png, "image/png"))])
    assert r.status_code == 200, r.text
    hit = r.json()["results"][0]
    assert hit["id"] == 12 and hit["score"] == pytest.approx(1.0, abs=1e-5)
    # the temporary file's name never reaches the client
    assert r.json()["query"] == [{"modality": "image", "value": "upload 1", "weight": 1.0}]
    # an image and a text with weights; an empty text box and an empty file input are skipped
    r = client.post("/api/search", data={"text": ["", "a red circle"], "image_weight": "0.5"},
                    files=[("image", ("mine.png", png, "image/png")),
                           ("audio", ("", b"", "application/octet-stream"))])
    assert r.status_code == 200, r.text
    assert [(q["modality"], q["weight"]) for q in r.json()["query"]] == [("text", 1.0),
                                                                        ("image", 0.5)]
    # a sound (the joint method has an audio space)
    wav = (root / "world" / "audio" / "000003.wav").read_bytes()
    r = client.post("/api/search", files=[("audio", ("a.wav", wav, "audio/wav"))])
    assert r.status_code == 200 and r.json()["query"][0]["modality"] == "audio"
    assert len(r.json()["results"]) == 24
    r = client.post("/api/search", files=[("audio", ("a.wav", b"RIFF nonsense" * 20,
                                                     "audio/wav"))])
    assert_one_line_error(r, 415)
    assert "/tmp" not in r.text and "mmkit-serve-" not in r.text


# ---------------------------------------------------------------------- safety
def test_bad_paths_and_ids_are_one_line_errors(client):
    for url, status in [("/image/../../etc/passwd", 404), ("/image/..%2F..%2Fetc%2Fpasswd", 404),
                        ("/image/-1", 404), ("/image/99999", 404), ("/image/1.5", 404),
                        ("/image/" + "9" * 40, 404), ("/thumb/abc", 404), ("/thumb/-3", 404),
                        ("/api/similar/abc", 404), ("/api/similar/40", 404),
                        ("/static/../service.py", 404), ("/static/%2e%2e/service.py", 404),
                        ("/static/..%2Fservice.py", 404), ("/static/%2e%2e/app.py", 404),
                        ("/no/such/route", 404), ("/api/nothing", 404)]:
        r = client.get(url)
        assert_one_line_error(r, status)
        assert "import" not in r.text  # no source file came back
    assert_one_line_error(client.post("/api/info"), 405)
    assert_one_line_error(client.delete("/image/3"), 405)


def test_bad_queries_are_400(client):
    for params in [{}, {"text": ""}, {"text": "   "}, {"not": "a red circle"},
                   {"text": "a cat", "k": "0"}, {"text": "a cat", "k": "abc"},
                   {"text": "a cat", "k": "100000"}, {"text": "a cat", "offset": "-1"},
                   {"text": "a cat", "threshold": "nan"}, {"text": "a cat", "threshold": "x"},
                   {"text": "a cat", "why": "maybe"}, {"text": "a cat", "colour": "red"},
                   {"text": "a cat", "k": ["2", "3"]}, {"text": "0:a cat"}]:
        assert_one_line_error(client.get("/api/search", params=params), 400)
    assert_one_line_error(client.get("/api/similar/3", params={"k": "-2"}), 400)
    assert_one_line_error(client.get("/api/similar/3", params={"text": "x"}), 400)
    assert_one_line_error(client.post("/api/search", content=b"{}",
                                      headers={"content-type": "application/json"}), 415)
    r = client.post("/api/search", data={"text": "a red circle", "k": "2"})  # urlencoded
    assert r.status_code == 200 and len(r.json()["results"]) == 2
    assert_one_line_error(client.post("/api/search", data={"text": "a"},
                                      files=[("other", ("x.png", b"x", "image/png"))]), 400)
    assert_one_line_error(client.post("/api/search", data={"image_weight": "2"}), 400)


def test_uploads_over_the_limits_or_not_images(world):
    root, _ = world
    small = SearchService(root / "idx", thumb_dir=root / "thumbs", max_upload_bytes=4096,
                          max_pixels=1_000_000)
    with TestClient(create_app(small)) as c:
        big = png_bytes(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8))
        assert len(big) > 4096
        assert_one_line_error(c.post("/api/search", files=[("image", ("b.png", big,
                                                                      "image/png"))]), 413)
        garbage = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
        assert_one_line_error(c.post("/api/search", files=[("image", ("g.png", garbage,
                                                                      "image/png"))]), 415, 400)
        truncated = (root / "world" / "images" / "000001.png").read_bytes()[:600]
        r = c.post("/api/search", files=[("image", ("t.png", truncated, "image/png"))])
        assert_one_line_error(r, 415, 400)
        assert "/tmp" not in r.text
        for w, h in [(50_000, 50_000), (2000, 1000)]:  # a bomb, and over max_pixels
            bomb = png_header(w, h)
            assert len(bomb) < 200
            r = c.post("/api/search", files=[("image", ("bomb.png", bomb, "image/png"))])
            assert_one_line_error(r, 413, 400)
        with pytest.raises(TooLarge, match="pixels"):
            small.search(images=[(png_header(50_000, 50_000), 1.0)])
        assert_one_line_error(c.post("/api/search", files=[("image", ("e.png", b"",
                                                                      "image/png"))]), 415)


def test_the_body_is_cut_off_while_it_is_read():
    """A 1 GB upload is refused after the first chunks past the limit, not read to its end."""
    pulled = []

    async def receive():
        pulled.append(1)
        if len(pulled) == 1:
            body = (b"--B\r\nContent-Disposition: form-data; name=\"image\"; "
                    b"filename=\"x.png\"\r\n\r\n")
        else:
            body = b"\0" * 2**20
        return {"type": "http.request", "body": body, "more_body": len(pulled) < 1024}

    scope = {"type": "http", "method": "POST", "path": "/api/search", "query_string": b"",
             "headers": [(b"content-type", b"multipart/form-data; boundary=B")]}
    with pytest.raises(TooLarge, match="over 3,145,728 bytes"):
        asyncio.run(read_multipart(Request(scope, receive), max_file_bytes=3 * 2**20))
    assert len(pulled) <= 6
    # an announced length over the limit is refused before reading anything
    pulled.clear()
    scope["headers"].append((b"content-length", str(2**30).encode()))
    with pytest.raises(TooLarge):
        asyncio.run(read_multipart(Request(scope, receive), max_file_bytes=3 * 2**20))
    assert pulled == []


def test_links_out_of_the_images_folder_are_refused(world, tmp_path):
    root, _ = world
    images = tmp_path / "images"
    images.mkdir()
    for i in range(4):
        shutil.copy(root / "world" / "images" / f"{i:06d}.png", images / f"{i:06d}.png")
    secret = tmp_path / "secret.png"
    shutil.copy(root / "world" / "images" / "000020.png", secret)
    os.symlink(secret, images / "zz-before.png")            # in the folder before the build
    (images / "sub").mkdir()
    os.symlink(images / "000001.png", images / "sub" / "inside.png")  # a link that stays in
    build_folder_index(images, tmp_path / "idx", method="joint", progress=False, quiet=True)
    svc = SearchService(tmp_path / "idx", thumb_dir=tmp_path / "thumbs")
    paths = [e.path for e in svc.index.entries]
    assert paths == ["000000.png", "000001.png", "000002.png", "000003.png", "sub/inside.png",
                     "zz-before.png"]
    os.remove(images / "000002.png")
    os.symlink(secret, images / "000002.png")                # made after the build
    with TestClient(create_app(svc)) as c:
        for i in (2, 5):
            for route in ("image", "thumb"):
                assert_one_line_error(c.get(f"/{route}/{i}"), 403)
            assert_one_line_error(c.get(f"/api/similar/{i}"), 403)
        r = c.get("/image/4")
        assert r.status_code == 200 and r.content == (images / "000001.png").read_bytes()
        assert r.headers["content-type"] == "image/png"
        os.remove(images / "000003.png")                     # gone since the build
        assert_one_line_error(c.get("/image/3"), 404)


def test_thumbnails_are_made_once(client, service, world):
    root, _ = world
    r = client.get("/thumb/5")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert "max-age" in r.headers["cache-control"]
    im = Image.open(io.BytesIO(r.content))
    assert im.format == "JPEG" and max(im.size) == service.thumb_size == 256
    cached = list((root / "thumbs").glob("*.jpg"))
    sha = service.index.entries[5].sha256
    path = root / "thumbs" / f"{sha}-256.jpg"
    assert path in cached and path.read_bytes() == r.content
    mtime = path.stat().st_mtime_ns
    again = client.get("/thumb/5")
    assert again.content == r.content and path.stat().st_mtime_ns == mtime
    # another size, another file; a non-square image keeps its aspect ratio
    wide = root / "wide"
    wide.mkdir(exist_ok=True)
    Image.new("RGB", (300, 120), (200, 30, 30)).save(wide / "w.png")
    build_folder_index(wide, root / "wide-idx", method="joint", progress=False, quiet=True)
    svc = SearchService(root / "wide-idx", thumb_dir=root / "thumbs", thumb_size=100)
    t = Image.open(io.BytesIO(svc.thumbnail(0)))
    assert t.size == (100, 40)
    original = client.get("/image/5")
    assert original.content == (root / "world" / "images" / "000005.png").read_bytes()


def test_concurrent_requests_get_the_single_request_answers(client):
    urls = ([("/api/search", {"text": q, "k": 5}) for q in
             ("a red circle", "a green triangle", "a small blue square", "a dog barking")]
            + [("/api/search", {"text": ["a red circle", "-0.5:a yellow star"], "k": 8,
                                "offset": 2})]
            + [(f"/api/similar/{i}", {"k": 4}) for i in (0, 9, 17, 33)]
            + [(f"/thumb/{i}", {}) for i in (1, 2)])
    single = {}
    for url, params in urls:
        r = client.get(url, params=params)
        assert r.status_code == 200
        single[url, json.dumps(params)] = r.content if url.startswith("/thumb") \
            else strip(r.json())
    jobs = [urls[i % len(urls)] for i in range(44)]

    def fetch(job):
        url, params = job
        r = client.get(url, params=params)
        return r.status_code, r.content if url.startswith("/thumb") else strip(r.json())

    with ThreadPoolExecutor(max_workers=22) as pool:
        answers = list(pool.map(fetch, jobs))
    for (url, params), (status, body) in zip(jobs, answers):
        assert status == 200 and body == single[url, json.dumps(params)], url


def test_serving_leaves_the_index_and_images_untouched(client, world):
    root, before = world
    client.get("/api/search", params={"text": "a red circle"})
    client.get("/thumb/11")
    assert snapshot(root / "idx") == before["idx"]
    assert snapshot(root / "world" / "images") == before["images"]


def test_the_host_header_must_be_a_loopback_name(service):
    app = create_app(service, allowed_hosts=LOOPBACK_NAMES)
    for base in ("http://evil.example:8000", "http://testserver", "http://127.0.0.2.nip.io"):
        with TestClient(app, base_url=base) as c:
            assert_one_line_error(c.get("/api/info"), 400)
    for base in ("http://127.0.0.1:8000", "http://localhost:1234", "http://[::1]:8000"):
        with TestClient(app, base_url=base) as c:
            assert c.get("/api/info").status_code == 200
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")


def test_an_unexpected_error_is_a_one_line_500(service, monkeypatch):
    app = create_app(service)

    def broken():
        raise RuntimeError("boom\nwith a second line")

    monkeypatch.setattr(service, "info", broken)
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get("/api/info")
    assert_one_line_error(r, 500)
    assert "RuntimeError" in r.json()["error"] and "boom" not in r.text


def test_service_errors_are_input_errors(service):
    with pytest.raises(InputError, match="no image with id 40"):
        service.image_file(40)
    with pytest.raises(InputError, match="give a query"):
        service.search()
    with pytest.raises(InputError, match="lists of strings"):
        service.search(text="a cat")
    with pytest.raises(InputError, match="k must be"):
        service.search(text=["a cat"], k=True)


def test_cli_options(tmp_path):
    import argparse

    parser = argparse.ArgumentParser(prog="mmkit")
    sub = parser.add_subparsers(dest="command")
    add_parser(sub)
    args = parser.parse_args(["serve", "--index", "x"])
    assert (args.host, args.port, args.thumb_size, args.max_upload) == ("127.0.0.1", 8000, 256,
                                                                        16 * 2**20)
    args = parser.parse_args(["serve", "--index", "x", "--max-upload", "512K", "--port", "0"])
    assert args.max_upload == 512 * 1024 and args.port == 0
    assert parse_size("1.5M") == int(1.5 * 2**20) and parse_size("100") == 100
    with pytest.raises(InputError):
        parse_size("lots")
    with pytest.raises(InputError, match="no such folder"):
        args.func(parser.parse_args(["serve", "--index", str(tmp_path / "nope"), "--port",
                                     "0"]))


def test_a_wide_host_prints_a_warning(world, monkeypatch, capsys):
    import uvicorn

    root, _ = world
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: None)
    serve(root / "idx", host="0.0.0.0", port=0, thumb_dir=root / "thumbs")
    out = capsys.readouterr()
    assert out.out.startswith(f"serving {root / 'idx'} (joint, 40 images) at http://0.0.0.0:")
    assert out.err.count("\n") == 1 and "reachable from the network" in out.err
    serve(root / "idx", port=0, thumb_dir=root / "thumbs")
    out = capsys.readouterr()
    assert out.out.count("\n") == 1 and "at http://127.0.0.1:" in out.out and out.err == ""


@pytest.mark.subprocess
def test_serve_binds_loopback_and_refuses_a_taken_port(world):
    import httpx

    root, _ = world
    code = ("import sys; from mmkit.serve import serve; "
            "serve(sys.argv[1], port=0, thumb_dir=sys.argv[2])")
    proc = subprocess.Popen([sys.executable, "-c", code, str(root / "idx"),
                             str(root / "thumbs")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        timer = threading.Timer(120, proc.kill)
        timer.start()
        line = proc.stdout.readline()
        timer.cancel()
        assert line.startswith(f"serving {root / 'idx'} (joint, 40 images) at "
                               "http://127.0.0.1:"), (line, proc.stderr.read() if
                                                      proc.poll() is not None else "")
        url = line.split(" at ")[1].strip()
        port = int(url.rsplit(":", 1)[1].strip("/"))
        info = httpx.get(url + "api/info", timeout=30).json()
        assert info["method"] == "joint"
        r = httpx.get(url + "api/info", headers={"Host": f"evil.example:{port}"}, timeout=30)
        assert r.status_code == 400
        if os.path.exists("/proc/net/tcp"):
            listening = []
            for path in ("/proc/net/tcp", "/proc/net/tcp6"):
                if os.path.exists(path):
                    for row in Path(path).read_text().splitlines()[1:]:
                        local, state = row.split()[1], row.split()[3]
                        if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                            listening.append(local.rsplit(":", 1)[0])
            assert listening == ["0100007F"]  # 127.0.0.1 only
        # a 1 GB upload to the real server is cut off early
        sent = [0]

        def body():
            yield (b"--B\r\nContent-Disposition: form-data; name=\"image\"; "
                   b"filename=\"x.png\"\r\n\r\n")
            for _ in range(1024):
                sent[0] += 2**20
                yield b"\0" * 2**20

        try:
            r = httpx.post(url + "api/search", content=body(), timeout=60, headers={
                "content-type": "multipart/form-data; boundary=B"})
            assert r.status_code == 413 and "error" in r.json()
        except httpx.TransportError:
            pass  # the server closed the connection while the client was still sending
        assert sent[0] < 2**30 // 4
        # the port is taken: a one-line error, before loading anything
        with pytest.raises(InputError, match=f"port {port} on 127.0.0.1 is in use"):
            serve(root / "idx", port=port)
        assert httpx.get(url + "api/info", timeout=30).status_code == 200
        from mmkit.cli import build_parser, main
        if "serve" in build_parser().commands:  # once wired into the mmkit command
            assert main(["serve", "--index", str(root / "idx"), "--port", str(port)]) == 2
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, proc.stderr.read()


# ====================================================================== real photos
@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    from mmkit.data.photos import write_photos

    root = tmp_path_factory.mktemp("servephotos")
    write_photos(root / "photos", edited=False)
    build_folder_index(root / "photos", root / "idx", progress=False, quiet=True)
    svc = SearchService(root / "idx", thumb_dir=root / "thumbs")
    with TestClient(create_app(svc)) as c:
        yield root, svc, c


@pytest.mark.slow
def test_photos_info_and_text_search(photos):
    root, _, c = photos
    info = c.get("/api/info").json()
    assert info["method"] == "pretrained" and info["n_images"] == 13
    assert info["modalities"] == ["text", "image"] and info["ocr"] is True
    assert info["why"] is True and "ImageNet" in info["limits"]
    for query in ("a cat", "a cup of coffee", "bakery"):
        got = c.get("/api/search", params={"text": query, "k": 5}).json()
        ref = search_folder(root / "idx", text=query, k=5, why=True, quiet=True)
        assert [h["id"] for h in got["results"]] == [h["id"] for h in ref["results"]]
        assert [h["score"] for h in got["results"]] == [h["score"] for h in ref["results"]]
        assert [h["why"] for h in got["results"]] == json.loads(json.dumps(
            [h["why"] for h in ref["results"]]))
    cat = c.get("/api/search", params={"text": "a cat", "k": 1}).json()["results"][0]
    assert cat["path"] == "chelsea.png"
    assert any("cat" in concept for concept, _ in cat["why"]["text a cat"]["concepts"])
    bakery = c.get("/api/search", params={"text": "bakery", "k": 1}).json()["results"][0]
    assert bakery["why"]["text bakery"]["ocr"] == ["bakery"]
    note = c.get("/api/search", params={"text": "quarterly tax report", "k": 2}).json()
    assert len(note["notes"]) == 1
    nowhy = c.get("/api/search", params={"text": "a cat", "k": 2, "why": "0"}).json()
    assert all("why" not in h for h in nowhy["results"])
    assert_one_line_error(c.post("/api/search", files=[("audio", ("a.wav", b"RIFF",
                                                                  "audio/wav"))]), 400)


@pytest.mark.slow
def test_photos_similar_and_upload(photos):
    root, svc, c = photos
    ids = {e.path: i for i, e in enumerate(svc.index.entries)}
    r = c.get(f"/api/similar/{ids['coffee.png']}", params={"k": 3}).json()
    assert r["results"][0]["path"] == "coffee.png"
    assert r["results"][0]["score"] == pytest.approx(1.0, abs=1e-5)
    jpeg = (root / "photos" / "rocket.jpg").read_bytes()
    r = c.post("/api/search", data={"k": "2"},
               files=[("image", ("my photo.jpg", jpeg, "image/jpeg"))]).json()
    assert r["results"][0]["path"] == "rocket.jpg"
    assert r["results"][0]["score"] == pytest.approx(1.0, abs=1e-5)
    assert "why" in r["results"][0] and list(r["results"][0]["why"]) == ["image upload 1"]
    # composed: a cat, away from the cat photo itself
    cat = (root / "photos" / "chelsea.png").read_bytes()
    r = c.post("/api/search", data={"text": "a cat", "image_weight": "-1", "k": "3"},
               files=[("image", ("c.png", cat, "image/png"))]).json()
    assert "chelsea.png" not in [h["path"] for h in r["results"]]
    t = c.get("/thumb/0")
    assert max(Image.open(io.BytesIO(t.content)).size) == 256


# ====================================================================== heat maps
def test_heatmap_of_a_text_query_on_the_joint_index(client, service, world):
    """The page's heat map: the image with the similarity Grad-CAM of the words on top. The
    map itself is checked against pytorch-grad-cam (GradCAM with a similarity target on the
    joint model's image tower); the route returns it drawn over the image."""
    import io

    from PIL import Image
    from pytorch_grad_cam import GradCAM
    from test_visual_cnn import _similarity_target_class

    from mmkit.methods.joint import _ImageTower
    from mmkit.scale.files import load_image

    assert client.get("/api/info").json()["heatmap"] is True
    method = service.method
    pixels = load_image(service.image_file(3), 64)[None]
    query = method.embed_texts(["a red circle"])[0]
    ours = method.similarity_map(pixels, query)
    tower = _ImageTower(method.model).eval()
    x = method.model.image_tensor(pixels)
    with GradCAM(model=tower, target_layers=[method.model.image.cam_layer]) as cam:
        ref = cam(input_tensor=x, targets=[_similarity_target_class()(torch.as_tensor(query))])
    assert ours.shape == ref.shape == (1, 64, 64) and np.abs(ours - ref).max() < 1e-4
    r = client.get("/heatmap/3", params={"text": "a red circle"})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    drawn = np.asarray(Image.open(io.BytesIO(r.content)))
    assert drawn.shape == (service.thumb_size, service.thumb_size, 3)
    again = client.get("/heatmap/3", params={"text": "a red circle"}).content
    other = client.get("/heatmap/3", params={"text": "a blue square"}).content
    assert again == r.content and other != r.content
    for params, code in (({}, 400), ({"text": "a red circle", "k": "3"}, 400)):
        bad = client.get("/heatmap/3", params=params)
        assert bad.status_code == code and "\n" not in bad.json()["error"]
    assert client.get("/heatmap/99999", params={"text": "a"}).status_code == 404


@pytest.mark.slow
def test_no_heatmap_for_a_method_without_one(photos):
    _, _, c = photos
    assert c.get("/api/info").json()["heatmap"] is False
    r = c.get("/heatmap/0", params={"text": "a cat"})
    assert r.status_code == 400 and "has no similarity heat map" in r.json()["error"]


def test_the_folder_is_watched_off_the_request_path(world, tmp_path):
    """After warm_up a background thread looks at the images folder; a request reads its
    latest look (no stat of every file per query), and a deleted file still shows up as a
    warning within the watch interval."""
    import time

    root, _ = world
    svc = SearchService(root / "idx", thumb_dir=tmp_path / "thumbs")
    try:
        svc.warm_up()
        assert svc._watcher is not None and svc._watcher.is_alive()
        seen = svc.index._changes
        svc.search(text=["a red circle"], k=3)
        assert svc.index._changes is seen                      # the request did not look
        svc.close()
        svc._watcher.join(timeout=10)
        assert not svc._watcher.is_alive()
    finally:
        svc.close()
    # a fresh watcher notices a change within its interval
    svc = SearchService(root / "idx", thumb_dir=tmp_path / "thumbs2")
    victim = root / "world" / "images" / "000039.png"
    data = victim.read_bytes()
    try:
        svc.watch_folder(interval=0.2)
        victim.unlink()
        deadline = time.monotonic() + 10
        while svc.index._changes[1]["deleted"] == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert svc.index._changes[1]["deleted"] == 1
        assert any("1 deleted" in w for w in svc.search(text=["a red circle"], k=3)["warnings"])
    finally:
        victim.write_bytes(data)
        os.utime(victim, ns=(svc.index.entries[39].mtime_ns, svc.index.entries[39].mtime_ns))
        svc.close()
