"""Searching your own photos: ``pretrained`` indexing throughput with and without OCR, an
update, cold and warm query latency, and the CCA baseline stored with its index.

    .venv/bin/python benchmarks/bench_photos.py     # --copies 6 --runs 5 --queries 30

1. Indexing (``mmkit index build``, one fresh process per build; every fresh process is
   started from a small launcher, which takes its peak RSS from ``wait4``: see
   ``_common.LAUNCHER``; wall seconds from the launcher): the
   real-photo fixture (``write_photos(tmp, edited=True)``: 78 files, 225 - 1,411 px) and a
   larger folder: the fixture's 78 files plus ``--copies`` copies of each, copy j resized by
   -2j px on each side (distinct bytes: files are keyed by SHA-256, so byte-identical copies
   would be embedded once). Each folder is built with OCR on (the default) and with
   ``--no-ocr``; photos/s = files embedded / the manifest's ``embed_s`` (decode + network +
   OCR; the model loads are in it), so the OCR share is the difference of the two.
2. Update: 10 files added (fixture photos resized by -11 px) and 10 renamed, then
   ``mmkit index update``: seconds, and how many files were embedded (10: renamed files keep
   their embeddings).
3. Query latency on the larger folder's OCR index (after the update). Cold: ``mmkit search
   --index IDX --text "a cat"`` as a fresh process, ``--runs`` times, interleaved with the
   peer: a fresh process that only loads the method (imports ``mmkit.methods``,
   ``get_method("pretrained")``, its text side ``.text_encoder`` + ``.label_vectors``, then
   its image side ``.network``); plus a cold ``--image`` query and one in-process breakdown of
   a cold search, and cold text searches with ``OMP_NUM_THREADS=1``. Warm: ``search_index``
   on an opened ``FolderIndex`` with a loaded method, ``--queries`` distinct text queries and
   as many image queries (files of the folder), ms per query p50 / p95 and queries/s, with
   torch's default thread count and with one thread (on a busy machine a second intra-op
   thread waits for a core: the one-thread numbers show how much that costs).
4. The CCA baseline: ``mmkit index build --method baseline`` over an exported world
   (``export_world(World(n=300, seed=1))``, 300 PNGs of 64 px): it fits the baseline once on
   the demo world and stores it (``method.npz``); fit seconds = the manifest's ``total_s`` -
   ``embed_s`` - ``index_s``. Then cold ``mmkit search --index X --text "a red circle"``,
   wall time and peak RSS, against the fit that every search paid before the fitted method
   was stored with the index.

Writes benchmarks/results/photos.json. The machine's load average is recorded at the start
and end of every part.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common
from _common import TEXT_QUERIES, loadavg, median, mmkit_cmd, timed_run

PARTS = ("fixture", "folder", "update", "cold", "warm", "baseline")


# ------------------------------------------------------------------------- folders
def write_variants(src: Path, dst: Path, shrink: int, names: list[str] | None = None) -> int:
    """Copies of the image files of ``src`` (relative paths kept) under ``dst``, each resized
    by ``-shrink`` px on both sides (PNG stays PNG, JPEG is written at quality 90)."""
    from PIL import Image

    from mmkit.scale.files import IMAGE_SUFFIXES

    files = sorted(p for p in src.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if names is not None:
        files = [p for p in files if p.relative_to(src).as_posix() in names]
    for p in files:
        target = dst / p.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(p) as im:
            im = im.convert("RGB")
            im = im.resize((im.width - shrink, im.height - shrink), Image.Resampling.LANCZOS)
            if p.suffix.lower() in (".jpg", ".jpeg"):
                im.save(target, quality=90)
            else:
                im.save(target)
    return len(files)


def image_files(folder: Path) -> list[str]:
    from mmkit.scale.files import IMAGE_SUFFIXES

    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if p.suffix.lower() in IMAGE_SUFFIXES)


# ------------------------------------------------------------------------- indexing
def build(images: Path, out: Path, *, ocr: bool, method: str | None = None) -> dict:
    cmd = ["index", "build", "--images", str(images), "--out", str(out), "-q",
           "--ocr" if ocr else "--no-ocr"]
    if method is not None:
        cmd = ["index", "build", "--images", str(images), "--out", str(out), "-q",
               "--method", method]
    run = timed_run(mmkit_cmd(*cmd))
    m = json.loads((out / "manifest.json").read_text())
    return summarise(m, run, ocr=m["ocr"])


def summarise(m: dict, run: dict, *, ocr: bool) -> dict:
    s = m["seconds"]
    embedded = m["update"]["embedded"]
    row = {"ocr": ocr, "n_files": m["n_files"], "n_indexed": m["n_indexed"],
           "embedded": embedded, "reused": m["update"]["reused"],
           "wall_s": run["wall_s"], "max_rss_mib": run["max_rss_mib"], "manifest_seconds": s,
           "kinds": {sp: info["kind"] for sp, info in m["spaces"].items()}}
    if embedded:
        row["photos_per_s"] = round(embedded / s["embed_s"], 2)
        row["s_per_photo"] = round(s["embed_s"] / embedded, 3)
    return row


def indexing(images: Path, tmp: Path, tag: str) -> dict:
    res = {"n_files": len(image_files(images)), "load_average_at_start": loadavg()}
    for ocr in (True, False):
        out = tmp / f"idx-{tag}-{'ocr' if ocr else 'no-ocr'}"
        res["ocr" if ocr else "no_ocr"] = build(images, out, ocr=ocr)
        print(tag, "ocr" if ocr else "no-ocr",
              {k: v for k, v in res["ocr" if ocr else "no_ocr"].items() if k != "kinds"},
              flush=True)
    on, off = res["ocr"]["s_per_photo"], res["no_ocr"]["s_per_photo"]
    res["ocr_s_per_photo"] = round(on - off, 3)
    res["ocr_share"] = round((on - off) / on, 3)
    res["load_average_at_end"] = loadavg()
    return res


def update(images: Path, index: Path, fixture: Path) -> dict:
    """Add 10 new files (fixture photos resized by -11 px) and rename 10, then update."""
    res = {"load_average_at_start": loadavg()}
    names = image_files(fixture)[:10]
    added = write_variants(fixture, images / "added", 11, names)
    movable = [p for p in image_files(images) if not p.startswith("added/")][-10:]
    for rel in movable:
        src = images / rel
        src.rename(src.with_name(f"renamed-{src.name}"))
    run = timed_run(mmkit_cmd("index", "update", str(index), "-q"))
    m = json.loads((index / "manifest.json").read_text())
    res.update(added=added, renamed=len(movable), **summarise(m, run, ocr=m["ocr"]),
               new_paths=m["update"]["new_paths"], dropped_paths=m["update"]["dropped_paths"])
    res["load_average_at_end"] = loadavg()
    print("update", res, flush=True)
    return res


# ------------------------------------------------------------------------- queries
LOAD_METHOD = """
import json, time
t0 = time.perf_counter()
from mmkit.methods import get_method
t1 = time.perf_counter()
m = get_method("pretrained")
t2 = time.perf_counter()
m.text_encoder
t3 = time.perf_counter()
m.label_vectors
t4 = time.perf_counter()
m.network
t5 = time.perf_counter()
m.fingerprint
t6 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "get_method_s": t2 - t1, "text_encoder_s": t3 - t2,
                  "label_vectors_s": t4 - t3, "network_s": t5 - t4, "fingerprint_s": t6 - t5}))
"""

COLD_BREAKDOWN = """
import json, sys, time
t0 = time.perf_counter()
from mmkit.scale.search import FolderIndex, Term, load_method, search_index
t1 = time.perf_counter()
fi = FolderIndex.open(sys.argv[1])
t2 = time.perf_counter()
method, _ = load_method(fi, quiet=True)
t3 = time.perf_counter()
r = search_index(fi, method, [Term("text", sys.argv[2])], k=10)
t4 = time.perf_counter()
r = search_index(fi, method, [Term("text", sys.argv[3])], k=10)
t5 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "open_index_s": t2 - t1, "load_method_s": t3 - t2,
                  "first_query_s": t4 - t3, "second_query_s": t5 - t4}))
"""


def cold(index: Path, image_query: Path, runs: int) -> dict:
    """Fresh-process search vs a fresh process that only loads the method, interleaved."""
    res = {"index_files": json.loads((index / "manifest.json").read_text())["n_indexed"],
           "runs": runs, "load_average_at_start": loadavg()}
    search, load = [], []
    for _ in range(runs):
        search.append(timed_run(mmkit_cmd("search", "--index", str(index), "--text", "a cat")))
        r = timed_run([sys.executable, "-c", LOAD_METHOD])
        r["parts"] = {k: round(v, 3) for k, v in json.loads(r["stdout"]).items()}
        load.append(r)
    image = [timed_run(mmkit_cmd("search", "--index", str(index), "--image", str(image_query)))
             for _ in range(max(1, runs // 2))]
    one = [timed_run(mmkit_cmd("search", "--index", str(index), "--text", "a cat"),
                     env={**os.environ, "OMP_NUM_THREADS": "1"})
           for _ in range(max(1, runs // 2 + 1))]
    breakdown = timed_run([sys.executable, "-c", COLD_BREAKDOWN, str(index), "a cat", "a dog"])
    text_side = [r["wall_s"] - r["parts"]["network_s"] - r["parts"]["fingerprint_s"]
                 for r in load]
    both = [r["wall_s"] - r["parts"]["fingerprint_s"] for r in load]
    res.update({
        "search_text_s": [r["wall_s"] for r in search],
        "search_text_median_s": median([r["wall_s"] for r in search]),
        "search_text_max_rss_mib": max(r["max_rss_mib"] for r in search),
        "search_text_one_thread_s": [r["wall_s"] for r in one],
        "search_text_one_thread_median_s": median([r["wall_s"] for r in one]),
        "search_image_s": [r["wall_s"] for r in image],
        "search_image_median_s": median([r["wall_s"] for r in image]),
        "search_image_max_rss_mib": max(r["max_rss_mib"] for r in image),
        "load_method_wall_s": [r["wall_s"] for r in load],
        "load_text_side_median_s": median(text_side),
        "load_text_and_image_side_median_s": median(both),
        "load_method_max_rss_mib": max(r["max_rss_mib"] for r in load),
        "load_method_parts_median_s": {k: median([r["parts"][k] for r in load])
                                       for k in load[0]["parts"]},
        "cold_search_breakdown_s": {k: round(v, 3) for k, v in
                                    json.loads(breakdown["stdout"]).items()},
    })
    res["search_text_vs_load_text_side"] = round(res["search_text_median_s"]
                                                 / res["load_text_side_median_s"], 2)
    res["search_image_vs_load_both_sides"] = round(
        res["search_image_median_s"] / res["load_text_and_image_side_median_s"], 2)
    res["load_average_at_end"] = loadavg()
    print("cold", {k: v for k, v in res.items() if not isinstance(v, list)}, flush=True)
    return res


def warm(index: Path, n_queries: int) -> dict:
    """search_index on an opened FolderIndex with a loaded method: ms per query."""
    import torch

    from mmkit.scale.search import FolderIndex, Term, load_method, search_index

    res = {"load_average_at_start": loadavg()}
    t = time.perf_counter()
    fi = FolderIndex.open(index)
    method, _ = load_method(fi, quiet=True)
    method.network  # noqa: B018 - load both sides before timing
    method.label_vectors  # noqa: B018
    res["open_and_load_s"] = round(time.perf_counter() - t, 3)
    root = Path(fi.manifest["root"])
    images = [str(root / e.path) for e in fi.entries]
    step = max(1, len(images) // n_queries)
    image_queries = images[::step][:n_queries]
    texts = (TEXT_QUERIES * (n_queries // len(TEXT_QUERIES) + 1))[:n_queries]
    search_index(fi, method, [Term("text", "warm-up")], k=10)       # first-call costs
    search_index(fi, method, [Term("image", image_queries[0])], k=10)
    res["open_load_and_first_queries_s"] = round(time.perf_counter() - t, 3)
    res["index_files"] = len(fi)
    default_threads = torch.get_num_threads()
    for threads in dict.fromkeys((default_threads, 1)):
        torch.set_num_threads(threads)
        key = "default_threads" if threads == default_threads else "one_thread"
        part = res[key] = {"torch_threads": threads}
        search_index(fi, method, [Term("text", "warm-up")], k=10)
        for modality, values in (("text", texts), ("image", image_queries)):
            times = []
            for v in values:
                t = time.perf_counter()
                search_index(fi, method, [Term(modality, v)], k=10)
                times.append(time.perf_counter() - t)
            ms = 1000 * np.array(times)
            part[modality] = {"queries": len(values),
                              "p50_ms": round(float(np.percentile(ms, 50)), 1),
                              "p95_ms": round(float(np.percentile(ms, 95)), 1),
                              "mean_ms": round(float(ms.mean()), 1),
                              "queries_per_s": round(len(values) / sum(times), 2)}
            print("warm", key, modality, part[modality], flush=True)
    torch.set_num_threads(default_threads)
    res["load_average_at_end"] = loadavg()
    return res


# ------------------------------------------------------------------------- baseline
def baseline(tmp: Path, runs: int) -> dict:
    from mmkit.data.export import export_world
    from mmkit.data.world import World

    res = {"load_average_at_start": loadavg()}
    t = time.perf_counter()
    export_world(World(n=300, seed=1, progress=False), tmp / "world", progress=False)
    res["export_s"] = round(time.perf_counter() - t, 1)
    out = tmp / "idx-baseline"
    b = build(tmp / "world" / "images", out, ocr=False, method="baseline")
    s = b["manifest_seconds"]
    b["fit_s"] = round(s["total_s"] - s["embed_s"] - s["index_s"], 2)
    b["method_npz_kib"] = round((out / "method.npz").stat().st_size / 1024, 1)
    res["build"] = b
    print("baseline build", b, flush=True)
    res.update(common.cold_searches(out, "a red circle", runs))
    breakdown = timed_run([sys.executable, "-c", COLD_BREAKDOWN, str(out), "a red circle",
                           "a blue square"])
    res["cold_search_breakdown_s"] = {k: round(v, 3) for k, v in
                                      json.loads(breakdown["stdout"]).items()}
    res["fit_vs_search"] = round(b["fit_s"] / res["search_median_s"], 1)
    res["build_rss_vs_search_rss"] = round(b["max_rss_mib"] / res["search_max_rss_mib"], 1)
    res["load_average_at_end"] = loadavg()
    print("baseline search", {k: v for k, v in res.items() if k != "build"}, flush=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", type=int, default=6,
                    help="resized copies of each fixture file in the larger folder "
                         "(78 x (1 + copies) files)")
    ap.add_argument("--runs", type=int, default=5, help="cold runs of each command")
    ap.add_argument("--queries", type=int, default=30, help="warm queries per modality")
    ap.add_argument("--photos", type=int, default=None,
                    help="only the first N photos of the fixture (and their edits; for a "
                         "quick check of the script)")
    common.add_run_args(ap, PARTS, "photos.json",
                        "work in this (new) folder and keep it, instead of a temporary one")
    args = ap.parse_args()
    from mmkit.data.photos import PHOTOS, write_photos

    header = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "cpus": os.cpu_count(),
              "load_average_at_start": loadavg(), "copies": args.copies, "runs": args.runs,
              "queries": args.queries, "photos": args.photos, "skipped": args.skip}
    results = common.Results(args.out, PARTS, args.skip, header)
    with common.workdir(args.keep, exist_ok=False) as tmp:
        fixture = tmp / "fixture"
        write_photos(fixture, edited=True,
                     names=None if args.photos is None else list(PHOTOS)[:args.photos])
        main_index = None
        if "fixture" not in args.skip:
            results.add("fixture", indexing(fixture, tmp, "fixture"))
            main_index = (fixture, tmp / "idx-fixture-ocr")
        if "folder" not in args.skip:
            folder = tmp / "folder"
            t = time.perf_counter()
            shutil.copytree(fixture, folder / "original")
            for j in range(1, args.copies + 1):
                write_variants(fixture, folder / f"copy{j}", 2 * j)
            write_s = round(time.perf_counter() - t, 1)
            results.add("folder", {"copies": args.copies, "write_s": write_s,
                                   **indexing(folder, tmp, "folder")})
            main_index = (folder, tmp / "idx-folder-ocr")
        if main_index is None and ({"update", "cold", "warm"} - set(args.skip)):
            main_index = (fixture, tmp / "idx-fixture-ocr")
            build(fixture, main_index[1], ocr=True)
        if "update" not in args.skip:
            results.add("update", update(main_index[0], main_index[1], fixture))
        if "cold" not in args.skip:
            query = fixture / "chelsea.png"
            query = query if query.is_file() else fixture / image_files(fixture)[0]
            results.add("cold", cold(main_index[1], query, args.runs))
        if "warm" not in args.skip:
            results.add("warm", warm(main_index[1], args.queries))
        if "baseline" not in args.skip:
            results.add("baseline", baseline(tmp, max(1, args.runs // 2 + 1)))
    results.done()


if __name__ == "__main__":
    main()
