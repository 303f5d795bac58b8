"""A small Chrome DevTools Protocol (CDP) client for the browser tests: a headless chromium
in a subprocess, one page driven over a websocket (``websockets``' synchronous client).

>>> with Browser.start(tmp_path) as browser:
...     page = browser.page()
...     page.goto("http://127.0.0.1:8000/")
...     page.wait_for("document.querySelectorAll('#grid img').length > 0")

Every event the page sends is kept in ``page.events`` (``(method, params)``), so a test can
check afterwards which requests left the page (``Network.requestWillBeSent``) and what the
console said (``Runtime.consoleAPICalled``, ``Runtime.exceptionThrown``, ``Log.entryAdded``).
"""
from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from websockets.sync.client import connect

#: the names the browser goes by on Debian / Ubuntu
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_browser() -> str | None:
    """The path of the first of :data:`BROWSERS` on PATH, ``None`` for none."""
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


class CDPError(RuntimeError):
    """The browser answered a command with an error, or did not answer in time."""


class Browser:
    """A headless chromium with its own throw-away profile, on a free debugging port."""

    def __init__(self, proc: subprocess.Popen, port: int, profile: Path):
        self.proc, self.port, self.profile = proc, port, profile

    @classmethod
    def start(cls, tmp: str | os.PathLike, *, executable: str | None = None,
              width: int = 1280, height: int = 800, timeout: float = 30.0) -> Browser:
        executable = executable or find_browser()
        if executable is None:
            raise FileNotFoundError("chromium not installed (apt-get install chromium)")
        profile = Path(tmp) / "chromium-profile"
        profile.mkdir(parents=True, exist_ok=True)
        args = [executable, "--headless=new", "--remote-debugging-port=0",
                f"--user-data-dir={profile}", f"--window-size={width},{height}",
                "--no-sandbox",  # needed as root (CI containers); harmless otherwise
                "--no-first-run", "--no-default-browser-check", "--disable-gpu",
                "--disable-dev-shm-usage", "--disable-extensions", "--disable-sync",
                "--disable-background-networking", "--disable-component-update",
                "--metrics-recording-only", "--mute-audio", "about:blank"]
        active = profile / "DevToolsActivePort"  # chromium writes its port here when listening
        active.unlink(missing_ok=True)              # (a reused profile holds a stale one)
        with open(profile / "chromium.log", "wb") as log:  # the child keeps its own copy
            proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            if active.is_file():
                lines = active.read_text().split()
                if lines:
                    return cls(proc, int(lines[0]), profile)
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                tail = (profile / "chromium.log").read_text(errors="replace")[-2000:]
                raise CDPError(f"chromium did not start (exit {proc.returncode}):\n{tail}")
            time.sleep(0.05)

    def page(self) -> Page:
        """A new tab (about:blank; its own history and console), connected; ``Page.close``
        closes it."""
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/json/new?about:blank",
                                     method="PUT")
        with urllib.request.urlopen(req, timeout=10) as r:
            target = json.load(r)
        return Page(target["webSocketDebuggerUrl"], close_url=f"http://127.0.0.1:{self.port}"
                    f"/json/close/{target['id']}")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Page:
    """One page target (a tab): ``send`` a command and get its result; events are kept in ``events``."""

    def __init__(self, ws_url: str, timeout: float = 30.0, close_url: str | None = None):
        self.ws = connect(ws_url, max_size=None, open_timeout=timeout)
        self.close_url = close_url
        self.timeout = timeout
        self.ids = itertools.count(1)
        self.events: list[tuple[str, dict]] = []

    def close(self) -> None:
        """Disconnect, and close the tab when :meth:`Browser.page` opened it."""
        self.ws.close()
        if self.close_url:
            urllib.request.urlopen(self.close_url, timeout=10).close()

    # ------------------------------------------------------------------ the protocol
    def send(self, method: str, timeout: float | None = None, **params: Any) -> dict:
        """Send ``method`` with ``params``; wait for its answer (events that arrive meanwhile
        go to :attr:`events`) and return its ``result``."""
        msg_id = next(self.ids)
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CDPError(f"{method}: no answer in {timeout or self.timeout} s")
            try:
                msg = json.loads(self.ws.recv(timeout=left))
            except TimeoutError:
                continue
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise CDPError(f"{method}: {msg['error'].get('message')}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append((msg["method"], msg.get("params", {})))

    def pump(self, seconds: float = 0.0) -> None:
        """Collect the events that arrive within ``seconds``."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                msg = json.loads(self.ws.recv(timeout=max(0.0, deadline - time.monotonic())))
            except TimeoutError:
                return
            if "method" in msg:
                self.events.append((msg["method"], msg.get("params", {})))

    # ------------------------------------------------------------------ helpers
    def eval(self, expression: str) -> Any:
        """The value of a JavaScript expression (promises awaited); a thrown error raises."""
        r = self.send("Runtime.evaluate", expression=expression, returnByValue=True,
                      awaitPromise=True)
        if "exceptionDetails" in r:
            d = r["exceptionDetails"]
            raise CDPError(f"{expression!r}: {d.get('exception', {}).get('description') or d}")
        return r["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 30.0) -> Any:
        """Poll ``expression`` until it is truthy; return its value."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = self.eval(expression)
            except CDPError as e:  # a document being replaced: ask the next one
                if "context" not in str(e).lower() or time.monotonic() > deadline:
                    raise
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                raise CDPError(f"timed out after {timeout} s waiting for {expression}")
            self.pump(0.1)

    def goto(self, url: str, timeout: float = 30.0) -> None:
        """Navigate and wait for the new document's load event."""
        self.send("Page.enable")
        seen = len(self.events)
        r = self.send("Page.navigate", url=url)
        if r.get("errorText"):
            raise CDPError(f"{url}: {r['errorText']}")
        deadline = time.monotonic() + timeout
        while not any(m == "Page.loadEventFired" for m, _ in self.events[seen:]):
            if time.monotonic() > deadline:
                raise CDPError(f"{url}: not loaded in {timeout} s")
            self.pump(0.05)

    def click(self, selector: str) -> None:
        """A real left click (mouse pressed and released) at the centre of ``selector``."""
        box = self.eval(f"""(() => {{
            const e = document.querySelector({json.dumps(selector)});
            if (!e) return null;
            e.scrollIntoView({{block: "center"}});
            const r = e.getBoundingClientRect();
            return [r.left + r.width / 2, r.top + r.height / 2];
        }})()""")
        if box is None:
            raise CDPError(f"nothing matches {selector}")
        x, y = box
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            extra = {} if kind == "mouseMoved" else {"button": "left", "clickCount": 1}
            self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, **extra)

    def type(self, selector: str, text: str) -> None:
        """Focus ``selector``, clear it (select all, Backspace) and type ``text`` (real input
        events: Input.dispatchKeyEvent, Input.insertText)."""
        self.eval(f"(e => {{ e.focus(); e.select(); }})(document.querySelector({json.dumps(selector)}))")
        self.press("Backspace")
        if text:
            self.send("Input.insertText", text=text)

    def press(self, key: str) -> None:
        """Press and release a key on the focused element: "Enter", "Backspace", ..."""
        codes = {"Enter": 13, "Backspace": 8, "Tab": 9, "Escape": 27}
        params = {"key": key, "code": key, "windowsVirtualKeyCode": codes.get(key, 0)}
        if key == "Enter":
            params["text"] = "\r"
        self.send("Input.dispatchKeyEvent", type="keyDown", **params)
        self.send("Input.dispatchKeyEvent", type="keyUp", **{k: v for k, v in params.items()
                                                              if k != "text"})

    def set_files(self, selector: str, files: list[str]) -> None:
        """Choose ``files`` in the file input ``selector`` (fires its input and change events)."""
        doc = self.send("DOM.getDocument")
        node = self.send("DOM.querySelector", nodeId=doc["root"]["nodeId"], selector=selector)
        if not node.get("nodeId"):
            raise CDPError(f"nothing matches {selector}")
        self.send("DOM.setFileInputFiles", nodeId=node["nodeId"],
                  files=[str(Path(f).resolve()) for f in files])

    def screenshot(self, path: str | os.PathLike) -> Path:
        """A PNG of the viewport."""
        data = self.send("Page.captureScreenshot", format="png")["data"]
        path = Path(path)
        path.write_bytes(base64.b64decode(data))
        return path
