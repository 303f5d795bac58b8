"""The search app (``mmkit serve``): warm query latency through HTTP and in process on a
10,000-image ``joint`` index, the cold command line search, the server's start-up, and the
``pretrained`` method on the real-photo fixture.

    .venv/bin/python benchmarks/bench_serve.py     # --images 10000 --queries 50 --uploads 20

0. The index: ``World(WorldConfig(n=images + 2000, seed=11))``, the first ``--images`` scenes
   written as 64 px PNG files (``000123.png``, as :func:`mmkit.serve.widget.index_world`
   names them) and indexed by ``mmkit index build --method joint --kind exact`` in a fresh
   process (wall, and peak RSS from ``wait4`` in a small launcher process, see
   ``_common.LAUNCHER``; the manifest's seconds). The scenes beyond
   ``--images`` are never indexed: they are the uploaded query images.
1. HTTP: ``python -m mmkit serve --index IDX --port 0 --thumb-dir TMP`` as a subprocess
   (start-up: process start until its "serving ... at http://..." line, which includes
   :meth:`SearchService.warm_up`); requests from this process with httpx, one at a time: the
   first search after start-up (it lists and stats the images folder: ``warm_up`` does not),
   ``--queries`` distinct captions of the world (``GET /api/search?text=...&k=24&why=0``),
   ``--queries`` ids (``GET /api/similar/<id>?k=24&why=0``), ``--uploads`` PNG files of
   unindexed scenes (``POST /api/search``, multipart); then 4 client threads (one httpx
   client each) sending 2 x ``--queries`` other captions; then 4 text queries each after a
   pause longer than ``CHANGES_MAX_AGE`` (so each one looks at the folder again, as the
   queries of one person typing do). Per request: wall ms p50 / p95 / max, queries/s, and
   the server's own ``took_ms`` (the service's time, so HTTP + JSON = wall - took_ms). The
   server's peak RSS is its VmHWM just before it is stopped (SIGINT).
2. In process: the same queries through :class:`SearchService` (``search`` / ``similar``,
   k = 24, why off) in this process, from its main thread (as a notebook calls it) and from
   a worker thread (as the app's thread pool does), and a breakdown of a text query: the
   concept note (``query_note``), the encoder's forward pass (``embed_texts`` on one torch thread, as
   ``search_index`` runs it), the exact search of 10,000 vectors, ``json.dumps`` of the
   answer; and the folder-change check (``FolderIndex.changes``: lists the images folder and
   stats every file; cached for ``CHANGES_MAX_AGE`` s): its cost alone, and the text queries
   again with the cache cleared before each (what every query paid without the cache). The
   exact search's top-k kernel (numba, ``parallel=True``) is also timed on one numba thread
   (``numba.set_num_threads(1)``), alone and for whole text / similar queries; part 1 sends
   the text and similar queries again to a server started with ``NUMBA_NUM_THREADS=1``.
3. Cold: ``mmkit search --index IDX --text "a red circle"`` in a fresh process ``--runs``
   times (median wall, peak RSS), and ``--runs`` server start-ups (the part-1 start is the
   first) until the "serving" line.
4. ``--kind auto``: the exact index copied and rebuilt with ``--kind auto`` (nothing is
   embedded again; at 10,000 vectors it picks HNSW), then the in-process text and similar
   queries on it.
5. ``pretrained``: the real-photo fixture (``write_photos(tmp, edited=True)``, 78 files)
   indexed with OCR (fresh process), served, and the text queries of bench_photos.py sent
   over HTTP one at a time; start-up and peak RSS of that server.

Writes benchmarks/results/serve.json after every part (``--skip`` keeps a skipped part's
numbers from the file). The machine's load average is recorded at the start and end of
every part.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common
from _common import ROOT, TEXT_QUERIES, loadavg, median, mmkit_cmd, timed_run

PARTS = ("build", "http", "inprocess", "cold", "auto", "pretrained")
COLD_QUERY = "a red circle"
K = 24
SEED = 11


def stats(seconds: list[float], took_ms: list[float] | None = None) -> dict:
    """p50 / p95 / max / mean ms of per-query seconds, queries/s (one at a time), and the
    median of the server's own ``took_ms`` when given."""
    ms = 1000 * np.asarray(seconds)
    row = {"queries": len(ms), "p50_ms": round(float(np.percentile(ms, 50)), 2),
           "p95_ms": round(float(np.percentile(ms, 95)), 2),
           "max_ms": round(float(ms.max()), 2), "mean_ms": round(float(ms.mean()), 2),
           "queries_per_s": round(len(ms) / float(np.sum(seconds)), 1)}
    if took_ms:
        row["service_took_ms_p50"] = round(float(np.median(took_ms)), 2)
        row["http_overhead_ms_p50"] = round(row["p50_ms"] - row["service_took_ms_p50"], 2)
    return row


def vm_hwm_mib(pid: int) -> float | None:
    """Peak RSS of a running process since its exec (Linux: VmHWM), MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


# ------------------------------------------------------------------------- the world
class Queries:
    """The world (images rendered once) and the queries drawn from it."""

    def __init__(self, n_images: int, n_queries: int, n_uploads: int) -> None:
        from mmkit.data.world import World, WorldConfig

        t = time.perf_counter()
        self.world = World(WorldConfig(n=n_images + 2000, seed=SEED), progress=False)
        self.n_images = n_images
        rng = np.random.default_rng(SEED)
        captions = list(dict.fromkeys(self.world.captions))   # distinct, in order
        pick = rng.permutation(len(captions))[:3 * n_queries]
        self.texts = [captions[i] for i in pick[:n_queries]]
        self.concurrent_texts = [captions[i] for i in pick[n_queries:3 * n_queries]]
        self.similar_ids = [int(i) for i in np.linspace(0, n_images - 1, n_queries).round()]
        self.upload_ids = list(range(n_images, n_images + n_uploads))
        self.scenes_s = round(time.perf_counter() - t, 2)
        self._uploads: list[bytes] | None = None

    def images(self) -> np.ndarray:
        return self.world.images

    def uploads(self) -> list[bytes]:
        import io

        from PIL import Image

        if self._uploads is None:
            self._uploads = []
            for i in self.upload_ids:
                buf = io.BytesIO()
                Image.fromarray(self.world.images[i]).save(buf, format="PNG")
                self._uploads.append(buf.getvalue())
        return self._uploads


def write_world(q: Queries, images: Path) -> dict:
    from PIL import Image

    t = time.perf_counter()
    q.images()
    render_s = time.perf_counter() - t
    images.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    for i in range(q.n_images):
        path = images / f"{i:06d}.png"
        if not path.is_file():
            Image.fromarray(q.world.images[i]).save(path, format="PNG")
    return {"scenes_s": q.scenes_s, "render_s": round(render_s, 1),
            "write_pngs_s": round(time.perf_counter() - t, 1)}


def build(images: Path, out: Path, kind: str, method: str = "joint", ocr: bool | None = None
          ) -> dict:
    cmd = ["index", "build", "--images", str(images), "--out", str(out), "-q",
           "--method", method, "--kind", kind]
    if ocr is not None:
        cmd.append("--ocr" if ocr else "--no-ocr")
    run = timed_run(mmkit_cmd(*cmd))
    m = json.loads((out / "manifest.json").read_text())
    row = {"command_wall_s": run["wall_s"], "max_rss_mib": run["max_rss_mib"],
           "n_indexed": m["n_indexed"], "embedded": m["update"]["embedded"],
           "reused": m["update"]["reused"], "manifest_seconds": m["seconds"],
           "spaces": {s: {k: v for k, v in info.items() if k not in ("shards", "tuning")}
                      | ({"tuning": {k: info["tuning"][k] for k in
                                     ("param", "value", "recall", "seconds")}}
                         if info.get("tuning") else {})
                      for s, info in m["spaces"].items()}}
    if row["embedded"]:
        row["images_per_s"] = round(row["embedded"] / m["seconds"]["embed_s"], 1)
    return row


# ------------------------------------------------------------------------- the server
class Server:
    """``python -m mmkit serve --index IDX --port 0 --thumb-dir TMP`` as a subprocess."""

    def __init__(self, index: Path, thumbs: Path, timeout: float = 300,
                 env: dict | None = None) -> None:
        self.err = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop()
        t = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mmkit", "serve", "--index", str(index), "--port", "0",
             "--thumb-dir", str(thumbs)], stdout=subprocess.PIPE, stderr=self.err, cwd=ROOT,
            text=True, env=None if env is None else {**os.environ, **env})
        found: list[str] = []

        def read() -> None:
            for line in self.proc.stdout:
                m = re.search(r"serving .* at (http://\S+)", line)
                if m:
                    found.append(m.group(1))
                    found.append(time.perf_counter())
                    break

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(timeout)
        if not found:
            self.proc.kill()
            self.proc.wait()
            self.err.seek(0)
            raise RuntimeError("the server did not start:\n"
                               + self.err.read().decode(errors="replace")[-3000:])
        self.url, self.startup_s = found[0], round(found[1] - t, 3)

    def stop(self) -> dict:
        """Peak RSS (VmHWM: since its exec; wait4's would start at this process's), then
        SIGINT (Ctrl-C) and wait."""
        hwm = vm_hwm_mib(self.proc.pid)
        self.proc.send_signal(signal.SIGINT)
        try:
            code = self.proc.wait(60)
        finally:
            self.proc.stdout.close()
            self.err.close()
        return {"exit_code": code, "max_rss_mib": hwm}


def client(url: str):
    import httpx

    return httpx.Client(base_url=url, timeout=120, trust_env=False)


def timed_requests(c, requests: list) -> tuple[list[float], list[float], int]:
    """Send each (method, path, kwargs) one at a time: wall seconds, the server's took_ms,
    hits of the last answer."""
    seconds, took = [], []
    n_hits = 0
    for method, path, kw in requests:
        t = time.perf_counter()
        r = c.request(method, path, **kw)
        seconds.append(time.perf_counter() - t)
        r.raise_for_status()
        body = r.json()
        took.append(body["took_ms"])
        n_hits = len(body["results"])
    return seconds, took, n_hits


def text_req(text: str) -> tuple:
    return ("GET", "/api/search", {"params": {"text": text, "k": str(K), "why": "0"}})


def similar_req(i: int) -> tuple:
    return ("GET", f"/api/similar/{i}", {"params": {"k": str(K), "why": "0"}})


def upload_req(data: bytes, n: int) -> tuple:
    return ("POST", "/api/search", {"files": {"image": (f"query{n}.png", data, "image/png")},
                                    "data": {"k": str(K), "why": "0"}})


def http_part(index: Path, tmp: Path, q: Queries, threads: int = 4, idle_queries: int = 4
              ) -> dict:
    from mmkit.scale.search import CHANGES_MAX_AGE

    res = {"load_average_at_start": loadavg()}
    server = Server(index, tmp / "thumbs-http")
    res["startup_s"] = server.startup_s
    try:
        with client(server.url) as c:
            info = c.get("/api/info").json()
            res["index"] = {k: info[k] for k in ("method", "n_images", "modalities", "why")}
            # the first search after start-up (warm_up skips the folder-change check)
            seconds, took, _ = timed_requests(c, [text_req("a red circle")])
            res["first_search"] = {"ms": round(1000 * seconds[0], 2), "service_took_ms": took[0]}
            # untimed: the first requests of each route
            timed_requests(c, [similar_req(0), upload_req(q.uploads()[0], 0)])
            parts = {
                "text": [text_req(t) for t in q.texts],
                "similar": [similar_req(i) for i in q.similar_ids],
                "upload": [upload_req(d, n) for n, d in enumerate(q.uploads())],
            }
            for name, reqs in parts.items():
                seconds, took, n_hits = timed_requests(c, reqs)
                res[name] = {**stats(seconds, took), "hits_per_answer": n_hits}
                print("http", name, res[name], flush=True)
        # concurrent text queries: `threads` clients, each its own connection
        chunks = [q.concurrent_texts[j::threads] for j in range(threads)]
        out: list[tuple[list[float], list[float]]] = [([], [])] * threads
        errors: list[BaseException] = []

        def work(j: int) -> None:
            try:
                with client(server.url) as c:
                    c.get("/api/info")
                    s, took, _ = timed_requests(c, [text_req(t) for t in chunks[j]])
                    out[j] = (s, took)
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

        pool = [threading.Thread(target=work, args=(j,)) for j in range(threads)]
        t = time.perf_counter()
        for th in pool:
            th.start()
        for th in pool:
            th.join()
        wall = time.perf_counter() - t
        if errors:
            raise errors[0]
        seconds = [s for o in out for s in o[0]]
        took = [x for o in out for x in o[1]]
        row = stats(seconds, took)
        row.update(threads=threads, wall_s=round(wall, 3),
                   queries_per_s=round(len(seconds) / wall, 1))
        res["text_concurrent"] = row
        print("http text_concurrent", row, flush=True)
        # queries further apart than CHANGES_MAX_AGE: each one looks at the folder again
        with client(server.url) as c:
            reqs = [text_req(t) for t in q.texts[:idle_queries]]
            seconds, took = [], []
            for r in reqs:
                time.sleep(CHANGES_MAX_AGE + 0.5)
                s_, t_, _ = timed_requests(c, [r])
                seconds += s_
                took += t_
            res["text_after_idle"] = {**stats(seconds, took),
                                      "pause_s": CHANGES_MAX_AGE + 0.5}
            print("http text_after_idle", res["text_after_idle"], flush=True)
    finally:
        res["server"] = server.stop()
    # the same server with numba on one thread (the exact search's top-k kernel)
    server = Server(index, tmp / "thumbs-http", env={"NUMBA_NUM_THREADS": "1"})
    try:
        with client(server.url) as c:
            timed_requests(c, [text_req("a red circle"), similar_req(0)])
            for name, reqs in (("text", [text_req(t) for t in q.texts]),
                               ("similar", [similar_req(i) for i in q.similar_ids])):
                seconds, took, _ = timed_requests(c, reqs)
                res[f"{name}_numba_1_thread"] = stats(seconds, took)
                print("http", name, "NUMBA_NUM_THREADS=1", res[f"{name}_numba_1_thread"],
                      flush=True)
    finally:
        server.stop()
    res["load_average_at_end"] = loadavg()
    return res


# ------------------------------------------------------------------------- in process
def service_part(index: Path, tmp: Path, q: Queries, *, breakdown: bool = True) -> dict:
    import numba

    from mmkit.scale.files import list_images
    from mmkit.scale.search import CHANGES_MAX_AGE, QUERY_THREADS
    from mmkit.scale.store import folder_changes
    from mmkit.serve.service import SearchService
    from mmkit.training import torch_threads

    res = {"load_average_at_start": loadavg()}
    t = time.perf_counter()
    svc = SearchService(index, thumb_dir=tmp / "thumbs-inprocess")
    res["open_s"] = round(time.perf_counter() - t, 3)
    res["warm_up_s"] = round(svc.warm_up(), 3)
    res["kind"] = {s: info["kind"] for s, info in svc.index.manifest["spaces"].items()}
    svc.search(text=["a red circle"], k=K, why=False)
    svc.similar(0, k=K, why=False)
    svc.search(images=[(q.uploads()[0], 1.0)], k=K, why=False)

    def run(name: str, calls: list, before=None) -> None:
        seconds = []
        for call in calls:
            if before is not None:
                before()
            t = time.perf_counter()
            call()
            seconds.append(time.perf_counter() - t)
        res[name] = stats(seconds)
        print("in-process", name, res[name], flush=True)

    run("text", [lambda t=t: svc.search(text=[t], k=K, why=False) for t in q.texts])
    run("similar", [lambda i=i: svc.similar(i, k=K, why=False) for i in q.similar_ids])
    # the same from a worker thread, as the app runs a search (Starlette's thread pool)
    with ThreadPoolExecutor(1) as pool:
        pool.submit(run, "text_worker_thread",
                    [lambda t=t: svc.search(text=[t], k=K, why=False) for t in q.texts]
                    ).result()
        pool.submit(run, "similar_worker_thread",
                    [lambda i=i: svc.similar(i, k=K, why=False) for i in q.similar_ids]
                    ).result()
    if breakdown:
        run("upload", [lambda d=d: svc.search(images=[(d, 1.0)], k=K, why=False)
                       for d in q.uploads()])
    if not breakdown:
        res["load_average_at_end"] = loadavg()
        return res

    # what a text query is made of
    method, fi = svc.method, svc.index
    space = fi.spaces[0]
    parts: dict[str, list[float]] = {"query_note": [], "encoder_forward": [],
                                     "exact_search": [], "exact_search_numba_1_thread": [],
                                     "service_search": [], "json_dumps": []}
    numba_threads = numba.get_num_threads()
    for text in q.texts:
        t0 = time.perf_counter()
        method.query_note(text)
        t1 = time.perf_counter()
        with torch_threads(QUERY_THREADS):
            v = np.asarray(method.embed_texts([text]), np.float32).reshape(1, -1)
        t2 = time.perf_counter()
        fi.search_vectors(space, v, K + 50)
        t3 = time.perf_counter()
        numba.set_num_threads(1)
        try:
            fi.search_vectors(space, v, K + 50)
        finally:
            numba.set_num_threads(numba_threads)
        t3b = time.perf_counter()
        report = svc.search(text=[text], k=K, why=False)
        t4 = time.perf_counter()
        json.dumps(report, ensure_ascii=False, allow_nan=False, indent=None,
                   separators=(",", ":"))
        t5 = time.perf_counter()
        for key, a, b in (("query_note", t0, t1), ("encoder_forward", t1, t2),
                          ("exact_search", t2, t3), ("exact_search_numba_1_thread", t3, t3b),
                          ("service_search", t3b, t4), ("json_dumps", t4, t5)):
            parts[key].append(1000 * (b - a))
    res["text_breakdown_ms_p50"] = {k: round(float(np.median(v)), 3) for k, v in parts.items()}
    res["text_breakdown_ms_p95"] = {k: round(float(np.percentile(v, 95)), 3)
                                    for k, v in parts.items()}
    res["numba"] = {"threading_layer": numba.threading_layer(), "threads": numba_threads}
    res["json_bytes"] = len(json.dumps(report, separators=(",", ":")))

    # the folder-change check
    root = fi.manifest["root"]
    listing, full = [], []
    for _ in range(10):
        t = time.perf_counter()
        list_images(root)
        listing.append(time.perf_counter() - t)
        t = time.perf_counter()
        changed = folder_changes(root, fi.entries)
        full.append(time.perf_counter() - t)
    res["folder_check"] = {
        "files": len(fi.entries), "changes_max_age_s": CHANGES_MAX_AGE, "changed": changed,
        "list_folder_ms_p50": round(1000 * float(np.median(listing)), 2),
        "list_and_stat_ms_p50": round(1000 * float(np.median(full)), 2),
        "list_and_stat_ms_max": round(1000 * float(np.max(full)), 2)}
    print("in-process folder check", res["folder_check"], flush=True)

    def clear() -> None:
        fi._changes = None

    run("text_folder_check_every_query", [lambda t=t: svc.search(text=[t], k=K, why=False)
                                          for t in q.texts], before=clear)
    numba.set_num_threads(1)
    try:
        run("text_numba_1_thread", [lambda t=t: svc.search(text=[t], k=K, why=False)
                                    for t in q.texts])
        run("similar_numba_1_thread", [lambda i=i: svc.similar(i, k=K, why=False)
                                       for i in q.similar_ids])
    finally:
        numba.set_num_threads(numba_threads)
    res["load_average_at_end"] = loadavg()
    return res


# ------------------------------------------------------------------------- cold
def cold_part(index: Path, tmp: Path, runs: int, first_startup: float | None) -> dict:
    res = {"runs": runs, "load_average_at_start": loadavg()}
    res.update(common.cold_searches(index, COLD_QUERY, runs))
    startups, rss = ([first_startup] if first_startup is not None else []), []
    while len(startups) < runs:
        s = Server(index, tmp / "thumbs-cold")
        startups.append(s.startup_s)
        rss.append(s.stop()["max_rss_mib"])
    res["server_startup_s"] = startups
    res["server_startup_median_s"] = median(startups)
    res["server_idle_max_rss_mib"] = max(rss) if rss else None
    res["load_average_at_end"] = loadavg()
    print("cold", res, flush=True)
    return res


# ------------------------------------------------------------------------- pretrained
def pretrained_part(tmp: Path, n_queries: int) -> dict:
    from mmkit.data.photos import write_photos

    res = {"load_average_at_start": loadavg()}
    photos = tmp / "photos"
    write_photos(photos, edited=True)
    res["build"] = build(photos, tmp / "idx-photos", "auto", method="pretrained", ocr=True)
    print("pretrained build", res["build"], flush=True)
    texts = (TEXT_QUERIES * (n_queries // len(TEXT_QUERIES) + 1))[:n_queries]
    server = Server(tmp / "idx-photos", tmp / "thumbs-photos")
    res["startup_s"] = server.startup_s
    try:
        with client(server.url) as c:
            timed_requests(c, [text_req("warm-up")])
            seconds, took, n_hits = timed_requests(c, [text_req(t) for t in texts])
            res["text"] = {**stats(seconds, took), "hits_per_answer": n_hits}
            print("pretrained http text", res["text"], flush=True)
    finally:
        res["server"] = server.stop()
    res["load_average_at_end"] = loadavg()
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=10_000, help="images in the joint index")
    ap.add_argument("--queries", type=int, default=50,
                    help="text queries and similar ids (the concurrent run sends twice as many)")
    ap.add_argument("--uploads", type=int, default=20, help="uploaded query images")
    ap.add_argument("--runs", type=int, default=3, help="cold searches and server start-ups")
    common.add_run_args(ap, PARTS, "serve.json",
                        "work in this folder and keep it (an index already built there for "
                        "the same --images is reused), instead of a temporary one")
    args = ap.parse_args()
    import torch

    header = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "cpus": os.cpu_count(),
              "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
              "load_average_at_start": loadavg(), "images": args.images,
              "queries": args.queries, "uploads": args.uploads, "runs": args.runs,
              "k": K, "skipped": args.skip}
    results = common.Results(args.out, PARTS, args.skip, header)
    with common.workdir(args.keep, exist_ok=True) as tmp:
        q = Queries(args.images, args.queries, args.uploads)
        images, index = tmp / "world" / "images", tmp / "world" / "index"
        manifest = index / "manifest.json"
        reuse = manifest.is_file() and \
            json.loads(manifest.read_text())["n_indexed"] == args.images
        if "build" not in args.skip or not reuse:
            if reuse:
                shutil.rmtree(index)
            res = {"load_average_at_start": loadavg(), **write_world(q, images)}
            res.update(build(images, index, "exact"))
            res["load_average_at_end"] = loadavg()
            print("build", res, flush=True)
            if "build" not in args.skip:
                results.add("build", res)
        startup = None
        if "http" not in args.skip:
            startup = results.add("http", http_part(index, tmp, q))["startup_s"]
        if "inprocess" not in args.skip:
            results.add("inprocess", service_part(index, tmp, q))
        if "cold" not in args.skip:
            results.add("cold", cold_part(index, tmp, args.runs, startup))
        if "auto" not in args.skip:
            auto = tmp / "world" / "index-auto"
            shutil.rmtree(auto, ignore_errors=True)
            shutil.copytree(index, auto)
            res = {"load_average_at_start": loadavg(), "build": build(images, auto, "auto")}
            print("auto build", res["build"], flush=True)
            res.update(service_part(auto, tmp, q, breakdown=False))
            res["load_average_at_end"] = loadavg()
            results.add("auto", res)
        if "pretrained" not in args.skip:
            results.add("pretrained", pretrained_part(tmp, args.queries))
    results.done()


if __name__ == "__main__":
    main()
