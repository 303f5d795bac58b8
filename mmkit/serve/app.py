"""``mmkit serve``: a small ASGI app (Starlette) over a :class:`~mmkit.serve.service.SearchService`,
and :func:`serve`, which runs it with uvicorn.

Routes (every error is JSON ``{"error": "<one line>"}``; never a traceback):

- ``GET /``: the web page (``static/index.html``); ``GET /static/<name>``: the files of
  ``mmkit/serve/static/`` only;
- ``GET /api/info``: :meth:`SearchService.info`;
- ``GET /api/search?text=..&text=..&not=..&k=24&offset=0&threshold=..&why=1`` and
  ``POST /api/search`` (``multipart/form-data``: fields ``text`` and ``not`` (repeatable),
  ``k``, ``offset``, ``threshold``, ``why``, files ``image`` and ``audio`` (repeatable),
  ``image_weight`` / ``audio_weight`` (one number for all files of that kind, or one per
  file, in order); ``application/x-www-form-urlencoded`` takes the same fields without files):
  :meth:`SearchService.search`;
- ``GET /api/similar/<id>?k&offset&threshold&why``: :meth:`SearchService.similar`;
- ``GET /thumb/<id>``: ``image/jpeg``; ``GET /image/<id>``: the original file;
- ``GET /heatmap/<id>?text=..&not=..``: ``image/png``, the image with the similarity heat map
  of the text query on top (:meth:`SearchService.heatmap`; methods with one joint space).

Statuses: 400 a bad parameter or query (an unknown parameter too), 403 a file outside the
images folder, 404 an unknown id or route, 405 a method a route does not take, 413 an upload
over the limit (checked while the body is read: a request announcing or sending more is cut
off), 415 an upload that is not an image or a sound, 500 anything unexpected (logged with its
traceback by the ``mmkit.serve`` logger, answered in one line).

Served on a loopback address (the default, 127.0.0.1), the app answers only requests whose
``Host`` is a loopback name (127.0.0.1, localhost, [::1]): a web page elsewhere cannot read
the images through DNS rebinding.
"""
from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import socket
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from mmkit.errors import InputError
from mmkit.scale.search import FolderIndex
from mmkit.serve.service import (MAX_UPLOADS, Forbidden, NotFound, SearchService, TooLarge,
                                 Unsupported)

log = logging.getLogger("mmkit.serve")
Endpoint = Callable[[Request], Awaitable[Response]]

#: the folder of the web page's files
STATIC_DIR = Path(__file__).resolve().parent / "static"
#: Host header names accepted when the app is served on a loopback address
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
#: seconds a browser may keep a thumbnail or an image without asking again
CACHE_SECONDS = 600
#: the largest non-file field of a form (a text query, a number)
MAX_FIELD_BYTES = 64 * 1024
#: the most parts (fields and files) of a form
MAX_PARTS = 128
#: content types of the original files, by suffix
MEDIA_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
               ".webp": "image/webp", ".tif": "image/tiff", ".tiff": "image/tiff"}
_SEARCH_FIELDS = ("text", "not", "k", "offset", "threshold", "why", "image_weight",
                  "audio_weight")
_PAGE_FIELDS = ("k", "offset", "threshold", "why")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


# ====================================================================== errors
def _one_line(text: Any, limit: int = 500) -> str:
    lines = str(text).strip().splitlines()
    line = lines[0] if lines else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The app's error answer: ``{"error": "<one line>"}`` with ``status``."""
    return JSONResponse({"error": _one_line(message) or "error"}, status_code=status,
                        headers=headers)


def status_of(exc: InputError) -> int:
    """The HTTP status of a service error."""
    for cls, status in ((NotFound, 404), (Forbidden, 403), (TooLarge, 413),
                        (Unsupported, 415)):
        if isinstance(exc, cls):
            return status
    return 400


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    path = _one_line(request.url.path, 200)
    if exc.status_code == 404:
        detail = exc.detail if exc.detail and exc.detail != "Not Found" else ""
        msg = detail or f"no such page: {path}"
    elif exc.status_code == 405:
        allow = (exc.headers or {}).get("Allow", "")
        msg = f"method {request.method} is not allowed on {path}" + (
            f" (use {allow})" if allow else "")
    else:
        msg = str(exc.detail)
    return error(exc.status_code, msg, headers=exc.headers)


async def _server_error(request: Request, exc: Exception) -> Response:
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return error(500, f"internal error ({type(exc).__name__}); see the server's log")


def _guarded(fn: Endpoint) -> Endpoint:
    """An endpoint whose InputErrors become 4xx JSON and whose other exceptions a 500 JSON."""
    async def endpoint(request: Request) -> Response:
        try:
            return await fn(request)
        except InputError as e:
            status = status_of(e)
            # 413: the rest of the body is not wanted; closing makes the client stop sending
            return error(status, str(e), headers={"Connection": "close"} if status == 413
                         else None)
        except Exception as e:  # noqa: BLE001 - one line to the client, the trace to the log
            return await _server_error(request, e)
    endpoint.__name__ = fn.__name__
    endpoint.__doc__ = fn.__doc__
    return endpoint


class _HostCheck:
    """ASGI middleware: answer 400 unless the Host header names one of ``hosts``."""

    def __init__(self, app: Any, hosts: Sequence[str]) -> None:
        self.app, self.hosts = app, {h.lower().strip("[]") for h in hosts}

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            host = Headers(scope=scope).get("host", "").strip().lower()
            if host.startswith("["):
                name = host[1:].split("]", 1)[0]
            else:
                name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
            if name not in self.hosts:
                await error(400, f"unexpected Host header {_one_line(host, 100)!r}: this "
                                 "server answers only its loopback address")(scope, receive,
                                                                              send)
                return
        await self.app(scope, receive, send)


class _Static(StaticFiles):
    """StaticFiles that answer 404 (not a server error) while the folder is missing, and ask
    the browser to revalidate (``no-cache``), so an upgraded mmkit never runs a stale page."""

    async def get_response(self, path: str, scope: Any) -> Any:
        response = await super().get_response(path, scope)
        response.headers["Cache-Control"] = "no-cache"
        return response

    async def check_config(self) -> None:
        if self.directory is None or not os.path.isdir(self.directory):
            raise HTTPException(404, "the web page's files are not installed "
                                     "(mmkit/serve/static/ is missing)")
        await super().check_config()


# ====================================================================== parameters
def _one(items: dict[str, list[str]], name: str) -> str | None:
    values = items.get(name, [])
    if len(values) > 1:
        raise InputError(f"parameter {name!r} is given {len(values)} times; give it once")
    return values[0] if values else None


def _int(items: dict[str, list[str]], name: str, default: int) -> int:
    text = _one(items, name)
    if text is None or not text.strip():
        return default
    try:
        return int(text.strip())
    except ValueError:
        raise InputError(f"{name} must be a whole number, got {_one_line(text, 40)!r}") from None


def _float(items: dict[str, list[str]], name: str) -> float | None:
    text = _one(items, name)
    if text is None or not text.strip():
        return None
    try:
        return float(text.strip())
    except ValueError:
        raise InputError(f"{name} must be a number, got {_one_line(text, 40)!r}") from None


def _bool(items: dict[str, list[str]], name: str, default: bool) -> bool:
    text = _one(items, name)
    if text is None or not text.strip():
        return default
    t = text.strip().lower()
    if t in _TRUE:
        return True
    if t in _FALSE:
        return False
    raise InputError(f"{name} must be 1 or 0 (true or false), got {_one_line(text, 40)!r}")


def _group(pairs: Sequence[tuple[str, str]], allowed: Sequence[str]) -> dict[str, list[str]]:
    items: dict[str, list[str]] = {}
    for key, value in pairs:
        if key not in allowed:
            raise InputError(f"unknown parameter {_one_line(key, 40)!r} (known: "
                             f"{', '.join(allowed)})")
        items.setdefault(key, []).append(value)
    return items


def _page(items: dict[str, list[str]]) -> dict[str, Any]:
    return {"k": _int(items, "k", 24), "offset": _int(items, "offset", 0),
            "threshold": _float(items, "threshold"), "why": _bool(items, "why", True)}


def _weights(items: dict[str, list[str]], name: str, n: int) -> list[float]:
    texts = [t for t in items.get(name, []) if t.strip()]
    if not texts:
        return [1.0] * n
    if n == 0:
        raise InputError(f"{name} is given but no {name.split('_')[0]} file is")
    if len(texts) not in (1, n):
        raise InputError(f"{name}: give one number for all {n} files or one per file, got "
                         f"{len(texts)}")
    try:
        values = [float(t) for t in texts]
    except ValueError:
        raise InputError(f"{name} must be a number, got {_one_line(texts, 60)}") from None
    return values * n if len(values) == 1 else values


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, cut off with 413 once it passes ``limit`` bytes."""
    _check_length(request, limit)
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise TooLarge(f"the request body is over {limit:,} bytes")
    return bytes(body)


def _check_length(request: Request, limit: int) -> None:
    length = request.headers.get("content-length")
    if length is not None and length.strip().isdigit() and int(length) > limit:
        raise TooLarge(f"the request body is {int(length):,} bytes; the limit is {limit:,}")


async def read_multipart(request: Request, max_file_bytes: int, max_files: int = MAX_UPLOADS
                         ) -> tuple[list[tuple[str, str]], list[tuple[str, str, bytes]]]:
    """Parse a ``multipart/form-data`` body while it arrives: ``(fields [(name, value)], files
    [(name, filename, bytes)])``. A file over ``max_file_bytes``, a field over
    :data:`MAX_FIELD_BYTES` or a body over ``max_files`` files' worth is refused (413) as soon
    as it is seen, without reading the rest. A file input left empty (no file chosen: an
    empty part with an empty file name) is dropped."""
    limit = max_files * max_file_bytes + MAX_PARTS * MAX_FIELD_BYTES
    _check_length(request, limit)
    _, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if not boundary:
        raise InputError("multipart/form-data body without a boundary")
    fields: list[tuple[str, str]] = []
    files: list[tuple[str, str, bytes]] = []
    cur: dict[str, Any] = {}
    n_parts = 0

    def on_part_begin() -> None:
        nonlocal n_parts
        n_parts += 1
        if n_parts > MAX_PARTS:
            raise InputError(f"too many form parts (at most {MAX_PARTS})")
        cur.clear()
        cur.update(headers=[], name=b"", value=b"", data=bytearray(), file=None, field="")

    def on_header_field(data: bytes, start: int, end: int) -> None:
        cur["name"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        cur["value"] += data[start:end]

    def on_header_end() -> None:
        if len(cur["headers"]) > 16:
            raise InputError("a form part has too many headers")
        cur["headers"].append((cur["name"].lower(), cur["value"]))
        cur["name"], cur["value"] = b"", b""

    def on_headers_finished() -> None:
        disposition = dict(cur["headers"]).get(b"content-disposition", b"")
        _, opts = parse_options_header(disposition)
        if b"name" not in opts:
            raise InputError("a form part has no name")
        cur["field"] = opts[b"name"].decode("utf-8", "replace")
        if b"filename" in opts:
            cur["file"] = opts[b"filename"].decode("utf-8", "replace")

    def on_part_data(data: bytes, start: int, end: int) -> None:
        buf = cur["data"]
        buf.extend(data[start:end])
        if cur["file"] is not None and len(buf) > max_file_bytes:
            raise TooLarge(f"uploaded file {_one_line(cur['file'], 80)!r} is over "
                           f"{max_file_bytes:,} bytes, the limit")
        if cur["file"] is None and len(buf) > MAX_FIELD_BYTES:
            raise TooLarge(f"form field {_one_line(cur['field'], 40)!r} is over "
                           f"{MAX_FIELD_BYTES:,} bytes")

    def on_part_end() -> None:
        if cur["file"] is None:
            fields.append((cur["field"], bytes(cur["data"]).decode("utf-8", "replace")))
        elif cur["file"] or cur["data"]:
            files.append((cur["field"], cur["file"], bytes(cur["data"])))
            if len(files) > max_files:
                raise InputError(f"too many uploaded files (at most {max_files})")

    parser = MultipartParser(boundary, {
        "on_part_begin": on_part_begin, "on_part_data": on_part_data,
        "on_part_end": on_part_end, "on_header_field": on_header_field,
        "on_header_value": on_header_value, "on_header_end": on_header_end,
        "on_headers_finished": on_headers_finished})
    total = 0
    try:
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit:
                raise TooLarge(f"the request body is over {limit:,} bytes")
            parser.write(chunk)
        parser.finalize()
    except FormParserError as e:
        raise InputError(f"not a valid multipart/form-data body ({_one_line(e, 80)})"
                         ) from None
    return fields, files


# ====================================================================== the app
def create_app(service: SearchService, *, allowed_hosts: Sequence[str] | None = None,
               static_dir: str | os.PathLike | None = None) -> Starlette:
    """The ASGI app over ``service`` (routes in the module docstring). ``allowed_hosts``:
    the Host header names accepted (None: any); ``static_dir``: the web page's folder
    (default :data:`STATIC_DIR`)."""
    static = Path(static_dir) if static_dir is not None else STATIC_DIR

    async def page(request: Request) -> Response:
        index = static / "index.html"
        if not index.is_file():
            raise NotFound("the web page is not installed (mmkit/serve/static/index.html is "
                           "missing); the API is at /api/info")
        return FileResponse(index, media_type="text/html; charset=utf-8",
                            headers={"Cache-Control": "no-cache"})

    async def info(request: Request) -> Response:
        _group(request.query_params.multi_items(), ())
        return JSONResponse(await run_in_threadpool(service.info))

    async def search(request: Request) -> Response:
        if request.method == "GET":
            items = _group(request.query_params.multi_items(), _SEARCH_FIELDS)
            files: list[tuple[str, str, bytes]] = []
        else:
            _group(request.query_params.multi_items(), ())
            ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if ctype == "multipart/form-data":
                pairs, files = await read_multipart(request, service.max_upload_bytes)
            elif ctype == "application/x-www-form-urlencoded":
                body = await _read_body(request, MAX_PARTS * MAX_FIELD_BYTES)
                pairs, files = parse_qsl(body.decode("utf-8", "replace"),
                                         keep_blank_values=True), []
            else:
                raise Unsupported(f"POST /api/search takes multipart/form-data or "
                                  f"application/x-www-form-urlencoded, not "
                                  f"{_one_line(ctype, 60) or 'an untyped body'!r}")
            for name, value in pairs:
                if name in ("image", "audio") and value:
                    raise InputError(f"{name!r} must be a file upload, not a text field")
            items = _group([(n, v) for n, v in pairs if n not in ("image", "audio")],
                           _SEARCH_FIELDS)
            for name, filename, _ in files:
                if name not in ("image", "audio"):
                    raise InputError(f"unknown file field {_one_line(name, 40)!r} (files go "
                                     "in 'image' or 'audio')")
        images = [data for name, _, data in files if name == "image"]
        sounds = [data for name, _, data in files if name == "audio"]
        iw = _weights(items, "image_weight", len(images))
        aw = _weights(items, "audio_weight", len(sounds))
        kwargs = dict(text=items.get("text", []), not_text=items.get("not", []),
                      images=list(zip(images, iw)), audio=list(zip(sounds, aw)),
                      **_page(items))
        return JSONResponse(await run_in_threadpool(lambda: service.search(**kwargs)))

    async def similar(request: Request) -> Response:
        items = _group(request.query_params.multi_items(), _PAGE_FIELDS)
        image_id = request.path_params["id"]
        kwargs = _page(items)
        return JSONResponse(await run_in_threadpool(
            lambda: service.similar(_path_id(image_id), **kwargs)))

    async def thumb(request: Request) -> Response:
        image_id = _path_id(request.path_params["id"])
        data = await run_in_threadpool(service.thumbnail, image_id)
        return Response(data, media_type="image/jpeg",
                        headers={"Cache-Control": f"max-age={CACHE_SECONDS}",
                                 "X-Content-Type-Options": "nosniff"})

    async def heatmap(request: Request) -> Response:
        items = _group(request.query_params.multi_items(), ("text", "not"))
        image_id = _path_id(request.path_params["id"])
        data = await run_in_threadpool(lambda: service.heatmap(
            image_id, text=items.get("text", []), not_text=items.get("not", [])))
        return Response(data, media_type="image/png",
                        headers={"Cache-Control": f"max-age={CACHE_SECONDS}",
                                 "X-Content-Type-Options": "nosniff"})

    async def image(request: Request) -> Response:
        path = await run_in_threadpool(service.image_file, _path_id(request.path_params["id"]))
        return FileResponse(path, media_type=MEDIA_TYPES.get(path.suffix.lower(),
                                                             "application/octet-stream"),
                            headers={"Cache-Control": f"max-age={CACHE_SECONDS}",
                                     "X-Content-Type-Options": "nosniff"})

    routes = [
        Route("/", _guarded(page), methods=["GET"]),
        Route("/api/info", _guarded(info), methods=["GET"]),
        Route("/api/search", _guarded(search), methods=["GET", "POST"]),
        Route("/api/similar/{id}", _guarded(similar), methods=["GET"]),
        Route("/thumb/{id}", _guarded(thumb), methods=["GET"]),
        Route("/heatmap/{id}", _guarded(heatmap), methods=["GET"]),
        Route("/image/{id}", _guarded(image), methods=["GET"]),
        Mount("/static", app=_Static(directory=static, check_dir=False), name="static"),
    ]
    middleware = [Middleware(_HostCheck, hosts=allowed_hosts)] if allowed_hosts is not None \
        else []
    app = Starlette(routes=routes, middleware=middleware,
                    exception_handlers={HTTPException: _http_error, Exception: _server_error})
    app.state.service = service
    return app


def _path_id(text: str) -> int:
    if not text.isdigit() or len(text) > 12:
        raise NotFound(f"no image with id {_one_line(text, 40)!r} (ids are whole numbers "
                       ">= 0)")
    return int(text)


# ====================================================================== running it
def is_loopback(host: str) -> bool:
    """Whether ``host`` names only this machine (127.x, ::1, localhost)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host``:``port`` (0: a free port) and listening (connections
    wait until the server accepts them); one-line InputError when the port is in use or the
    address cannot be bound."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise InputError(f"--port must be a whole number in 0..65535, got {port!r}")
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise InputError(f"--host {host}: not an address of this machine ({e.strerror})"
                         ) from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(2048)   # connections wait in the queue until the app answers them
    except OSError as e:
        sock.close()
        if e.errno in (98, 48, 10048):  # EADDRINUSE (Linux, macOS, Windows)
            raise InputError(f"port {port} on {host} is in use (another server?); choose "
                             "another with --port") from None
        raise InputError(f"cannot listen on {host}:{port} ({e.strerror or e})") from None
    return sock


def url_of(sock: socket.socket, host: str) -> str:
    """``http://HOST:PORT/`` of a bound socket (its real port when 0 was asked for)."""
    port = sock.getsockname()[1]
    shown = host.strip("[]")
    return f"http://[{shown}]:{port}/" if ":" in shown else f"http://{shown}:{port}/"


def serve(index: str | os.PathLike | FolderIndex | SearchService, host: str = "127.0.0.1",
          port: int = 8000, *, model: str | None = None, thumb_size: int = 256,
          max_upload_bytes: int = 16 * 2**20, max_pixels: int = 40_000_000,
          thumb_dir: str | os.PathLike | None = None, log_level: str = "warning",
          quiet: bool = False) -> None:
    """Serve the search app for ``index`` (a folder, an open FolderIndex or a ready
    :class:`SearchService`) on ``host``:``port`` until Ctrl-C (then return).

    The port is taken first (one-line InputError when it is in use), the index and its
    method are loaded once and warmed up (:meth:`SearchService.warm_up`), then one line is
    printed, ``serving INDEX (method, N images) at
    http://HOST:PORT/`` (``port=0``: a free port, the one printed); a host that is not a
    loopback address also prints a one-line warning on stderr.
    """
    import uvicorn

    sock = bind_socket(host, port)
    service = None
    try:
        if isinstance(index, SearchService):
            service = index
        else:
            service = SearchService(index, model=model, thumb_dir=thumb_dir,
                                    thumb_size=thumb_size, max_upload_bytes=max_upload_bytes,
                                    max_pixels=max_pixels, quiet=True)
        service.warm_up()
        loopback = is_loopback(host)
        hosts = (*LOOPBACK_NAMES, host) if loopback else None
        app = create_app(service, allowed_hosts=hosts)
        config = uvicorn.Config(app, log_level=log_level, access_log=False, lifespan="off",
                                server_header=False)
        server = uvicorn.Server(config)
        if not quiet:
            print(f"serving {service.index.path} ({service.index.manifest['method']}, "
                  f"{len(service.index)} images) at {url_of(sock, host)}", flush=True)
        if not loopback:
            print(f"mmkit serve: warning: --host {host} makes the app reachable from the "
                  "network: anyone who can reach this machine can search and view the images "
                  f"of {service.root}", file=sys.stderr, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            server.run(sockets=[sock])
    finally:
        if service is not None:
            service.close()
        sock.close()


__all__ = ["create_app", "serve", "bind_socket", "is_loopback", "url_of", "read_multipart",
           "error", "status_of", "STATIC_DIR", "LOOPBACK_NAMES", "CACHE_SECONDS"]
