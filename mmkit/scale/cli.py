"""The ``mmkit index build``, ``mmkit index update`` and ``mmkit search`` commands (registered
by :func:`add_parsers`)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mmkit._argparse import OneLineParser, float_arg, int_arg, positive_int_arg
from mmkit.errors import InputError
from mmkit.methods import available_methods
from mmkit.scale import embed as E
from mmkit.scale.auto import parse_memory
from mmkit.scale.build import build_folder_index
from mmkit.scale.duplicates import DEFAULT_THRESHOLD, index_duplicates
from mmkit.scale.search import Term, copy_hits, parse_term, search_folder

KIND_CHOICES = ("auto", "exact", "flat", "ivf", "hnsw", "ivfpq")


def _memory_arg(text: str) -> int:
    try:
        return parse_memory(text)
    except InputError as e:
        raise argparse.ArgumentTypeError(str(e).split(": ", 1)[-1]) from None


_memory_arg.__name__ = "size"


METHOD_HELP = ("pretrained: any photos, offline (ImageNet EfficientNet-Lite0 concepts + the "
               "MiniLM sentence encoder + words read by PP-OCR); clip: better on photos when "
               "you have CLIP weights in a local folder (--model DIR); joint: the kit's "
               "synthetic world (its 64 px shapes and ~270 words, with sound and speech); "
               "baseline: the world, handcrafted features + CCA (fitted once, stored with the "
               "index)")


def _print_build(m: dict, out: str, quiet: bool) -> None:
    for e in m["errors"]:
        print(f"mmkit index build: skipped {e['path']}: {e['error']}", file=sys.stderr)
    if quiet:
        return
    u = m["update"]
    print(f"indexed {m['n_indexed']} of {m['n_files']} image files with method "
          f"{m['method']} ({m['n_errors']} unreadable) into {out}: {u['embedded']} embedded "
          f"now, {u['reused']} reused" + (f", {u['dropped_paths']} removed" if u["dropped_paths"]
                                           else ""))
    for space, info in m["spaces"].items():
        tuned = info["tuning"]
        knob = (f"; {tuned['param']}={tuned['value']} gives recall@{tuned['k']} "
                f"{tuned['recall']:.3f}" if tuned else "")
        print(f"  {space}: {info['kind']} (dim {info['dim']}, {len(info['shards'])} shard(s)): "
              f"{info['reason']}{knob}")
    s = m["seconds"]
    print(f"  engine {m['engine']}: embedding {s['embed_s']:.1f} s"
          + (f" (Ray start {s['ray_start_s']:.1f} s)" if "ray_start_s" in s else "")
          + f", index {s['index_s']:.1f} s, total {s['total_s']:.1f} s")


def _build_kwargs(args: argparse.Namespace) -> dict:
    return dict(kind=args.kind, engine=args.engine, workers=args.workers, shards=args.shards,
                address=args.address, memory=args.memory, target_recall=args.recall,
                partition_size=args.partition_size, progress=not args.quiet, quiet=args.quiet)


def _cmd_index_build(args: argparse.Namespace) -> int:
    method = args.method
    if method is None and not (Path(args.out) / "manifest.json").is_file():
        method = E.INDEX_METHOD
    m = build_folder_index(args.images, args.out, method=method, model=args.model,
                           ocr=args.ocr, **_build_kwargs(args))
    _print_build(m, args.out, args.quiet)
    return 0


def _cmd_index_update(args: argparse.Namespace) -> int:
    m = build_folder_index(None, args.index, ocr=args.ocr, **_build_kwargs(args))
    _print_build(m, args.index, args.quiet)
    return 0


def _terms(args: argparse.Namespace) -> list[Term]:
    terms = [parse_term(m, v) for m, v in args.terms or []]
    terms += [parse_term("text", v, weight=-1.0) for v in args.not_text or []]
    terms += [parse_term("image", v, weight=-1.0) for v in args.not_image or []]
    return terms


def _cmd_search(args: argparse.Namespace) -> int:
    terms = _terms(args)
    if args.copy_to is not None:
        folder = Path(args.copy_to)
        if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
            raise InputError(f"--copy-to {folder}: must be a new or empty folder")
    report = search_folder(args.index, terms=terms, k=args.k, offset=args.offset,
                           threshold=args.threshold, why=args.why, model=args.model,
                           quiet=args.json)
    for line in report["notes"] + report["warnings"]:
        print(f"mmkit search: {line}", file=sys.stderr)
    if args.copy_to is not None:
        report["copied_to"] = copy_hits(report["results"], args.copy_to)
    if args.json:
        print(json.dumps({k: report[k] for k in ("query", "notes", "warnings", "total",
                                                 "offset", "k", "results")}
                         | ({"copied_to": report["copied_to"]} if "copied_to" in report
                            else {}), indent=1))
        return 0
    if not report["results"]:
        print("no results" + (f" at or above --threshold {args.threshold:g}"
                              if args.threshold is not None else ""))
    for rank, hit in enumerate(report["results"], report["offset"] + 1):
        print(f"{rank:>3}  {hit['score']:+.4f}  {hit['path']}")
        for term, why in hit.get("why", {}).items():
            print(f"       why ({term}): {_why_text(why)}")
    if args.copy_to is not None:
        print(f"copied {len(report['copied_to'])} files to {args.copy_to}")
    return 0


def _cmd_duplicates(args: argparse.Namespace) -> int:
    groups = index_duplicates(args.index, args.threshold, progress=not (args.json or args.quiet))
    if args.json:
        print(json.dumps({"threshold": args.threshold, "groups": groups}, indent=1))
        return 0
    n = sum(len(g["paths"]) for g in groups)
    print(f"{len(groups)} group(s) of near-copies, {n} files (threshold {args.threshold:g})")
    for k, g in enumerate(groups, 1):
        print(f"group {k}: {len(g['paths'])} files, each at least {g['score']:.3f} similar to "
              "another")
        for p in g["paths"]:
            print(f"  {p}")
    return 0


def _why_text(why: dict) -> str:
    parts = []
    if why.get("concepts"):
        parts.append("concepts " + ", ".join(
            c if isinstance(c, str) else f"{c[0]} ({c[1]:.2f})" for c in why["concepts"]))
    if why.get("ocr"):
        parts.append("words in the image: " + ", ".join(why["ocr"]))
    return "; ".join(parts) or "nothing it can name"


class _Term(argparse.Action):
    """Collect --text/--image/--audio in the order given, as (modality, value)."""

    def __call__(self, parser, namespace, values, option_string=None):  # noqa: ANN001
        items = list(getattr(namespace, self.dest) or [])
        items.append((option_string.lstrip("-"), values))
        setattr(namespace, self.dest, items)


def _add_build_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ocr", action=argparse.BooleanOptionalAction, default=None,
                   help="read the words written in each photo so that text queries find them "
                        "(pretrained; on by default; about 0.1 s per photo on 2 cores)")
    p.add_argument("--kind", default="auto", choices=KIND_CHOICES,
                   help="index type; auto: chosen from the collection size and --memory, "
                        "autofaiss-style, then tuned to --recall")
    p.add_argument("--engine", default="local", choices=("local", "ray"),
                   help="local: this process; ray: Ray Data map_batches on --workers")
    p.add_argument("--workers", type=positive_int_arg, default=2,
                   help="Ray workers (a local cluster of that many CPUs unless --address)")
    p.add_argument("--shards", type=positive_int_arg, default=1,
                   help="shard indexes per space, built from one trained quantizer")
    p.add_argument("--address", default=None, metavar="ADDR",
                   help="join an existing Ray cluster (e.g. ray://head:10001)")
    p.add_argument("--memory", type=_memory_arg, default="4G",
                   help="memory budget of the index for --kind auto (default 4G)")
    p.add_argument("--recall", type=float_arg(low=0, high=1, low_open=True), default=0.95,
                   help="recall@10 target for tuning nprobe / ef_search (default 0.95)")
    p.add_argument("--partition-size", type=positive_int_arg, default=256,
                   help="files per partition: the unit of work and of resuming")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars, no summary")


def add_parsers(sub: argparse._SubParsersAction) -> dict[str, argparse.ArgumentParser]:
    """Register ``index`` (``build``, ``update``), ``search`` and ``duplicates`` on the main
    parser's subparsers; returns {"index": ..., "search": ..., "duplicates": ...} for
    ``parser.commands``."""
    index = sub.add_parser("index", help="build or update a search index over a folder of "
                                         "images")
    verbs = index.add_subparsers(dest="index_command", required=True, parser_class=OneLineParser)
    build = verbs.add_parser(
        "build", help="embed every image (PNG, JPEG, WebP, TIFF) under a folder and build a "
                      "(sharded) index; run again to update it",
        description="Embed every PNG, JPEG, WebP or TIFF file under --images (any size; "
                    "resized and centre-cropped to the method's input) in resumable "
                    "partitions, then build the index. Unreadable files are reported and "
                    "skipped. Files are known by the SHA-256 of their bytes: building into an "
                    "existing index embeds only new or changed files (renamed or moved ones "
                    "keep their embeddings) and drops deleted ones; a killed build resumes. "
                    "Methods: " + METHOD_HELP + ".")
    build.add_argument("--images", required=True, metavar="DIR", help="folder of images")
    build.add_argument("--out", required=True, metavar="INDEX_DIR",
                       help="folder for the index: new, or an index to update")
    build.add_argument("--method", default=None, choices=available_methods(),
                       help=f"retrieval method (default {E.INDEX_METHOD}; an existing index "
                            "keeps its own)")
    build.add_argument("--model", default=None, metavar="DIR",
                       help="--method clip: a local folder with CLIP weights "
                            "(save_pretrained layout)")
    _add_build_options(build)
    build.set_defaults(func=_cmd_index_build)

    update = verbs.add_parser(
        "update", help="bring an index up to date with its images folder",
        description="Re-scan the folder the index was built from: embed only new or changed "
                    "files (renamed or moved files keep their embeddings), drop deleted ones, "
                    "rebuild the index. The result equals a fresh build's.")
    update.add_argument("index", metavar="INDEX_DIR")
    _add_build_options(update)
    update.set_defaults(func=_cmd_index_update)

    search = sub.add_parser(
        "search", help="search an index folder by text, image or sound, or a mix",
        description="Search an index by one or more query terms. Each of --text, --image and "
                    "--audio may be repeated; a term may start with a weight, 'W:', e.g. "
                    "--text '0.5:snow'; a negative weight (or --not TEXT, --not-image FILE) "
                    "pushes results away from it. The score of an image is the weighted sum "
                    "of its cosine similarities to the terms.")
    search.add_argument("--index", required=True, metavar="INDEX_DIR")
    search.add_argument("--text", dest="terms", action=_Term, metavar="TEXT",
                        help="a text query, e.g. 'a cat' or '0.5:snow'")
    search.add_argument("--image", dest="terms", action=_Term, metavar="FILE",
                        help="an image file (PNG, JPEG, WebP, TIFF): more like this")
    search.add_argument("--audio", dest="terms", action=_Term, metavar="FILE",
                        help="a sound file (WAV, FLAC, OGG), for methods with sound")
    search.add_argument("--not", dest="not_text", action="append", metavar="TEXT",
                        help="away from this text (weight -1)")
    search.add_argument("--not-image", dest="not_image", action="append", metavar="FILE",
                        help="away from this image (weight -1)")
    search.add_argument("-k", type=int_arg(low=1), default=10, help="hits to return")
    search.add_argument("--offset", type=int_arg(low=0), default=0,
                        help="skip this many hits first (the next page)")
    search.add_argument("--threshold", type=float_arg(), default=None, metavar="SCORE",
                        help="only hits scoring at least this")
    search.add_argument("--why", action="store_true",
                        help="say why each hit matched (pretrained: the ImageNet concepts the "
                             "query and the image share, the words found in the image)")
    search.add_argument("--model", default=None, metavar="DIR",
                        help="clip indexes: the CLIP folder, if it moved since the build")
    search.add_argument("--copy-to", default=None, metavar="DIR",
                        help="copy the hits into this new folder, named by rank")
    search.add_argument("--json", action="store_true",
                        help='print {"query", "notes", "warnings", "total", "results": '
                             '[{"id", "path", "score", "why"?}]}')
    search.set_defaults(func=_cmd_search)

    dup = sub.add_parser(
        "duplicates", help="list groups of near-copies in an index (crops, resizes, "
                           "re-compressions, rotations)",
        description="Group the images of an index that are copies of one another: a crop, a "
                    "smaller copy, a re-compressed JPEG, a copy rotated by 90 degrees or "
                    "brightened. Each image is described by ImageNet EfficientNet-Lite0 "
                    "features summed over its four rotations (whatever method built the "
                    "index); two images whose descriptors reach --threshold cosine "
                    "similarity are copies, and copies of copies join the group. The "
                    "descriptors are kept in the index folder, so later runs are fast.")
    dup.add_argument("--index", required=True, metavar="INDEX_DIR")
    dup.add_argument("--threshold", type=float_arg(low=-1, high=1, low_open=True),
                     default=DEFAULT_THRESHOLD, metavar="SCORE",
                     help=f"cosine similarity from which two images are copies (default "
                          f"{DEFAULT_THRESHOLD}, calibrated on photos and their edited copies)")
    dup.add_argument("--json", action="store_true",
                     help='print {"threshold", "groups": [{"paths", "score", "pairs"}]}')
    dup.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    dup.set_defaults(func=_cmd_duplicates)
    return {"index": index, "search": search, "duplicates": dup}
