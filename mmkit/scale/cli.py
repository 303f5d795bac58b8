"""The ``mmkit index build`` and ``mmkit search`` commands (registered by :func:`add_parsers`)."""
from __future__ import annotations

import argparse
import json
import sys

from mmkit._argparse import OneLineParser, float_arg, int_arg, positive_int_arg
from mmkit.errors import InputError
from mmkit.methods import DEFAULT_METHOD, available_methods
from mmkit.scale.auto import parse_memory
from mmkit.scale.build import build_folder_index
from mmkit.scale.search import search_folder

KIND_CHOICES = ("auto", "exact", "flat", "ivf", "hnsw", "ivfpq")


def _memory_arg(text: str) -> int:
    try:
        return parse_memory(text)
    except InputError as e:
        raise argparse.ArgumentTypeError(str(e).split(": ", 1)[-1]) from None


_memory_arg.__name__ = "size"


def _cmd_index_build(args: argparse.Namespace) -> int:
    m = build_folder_index(args.images, args.out, method=args.method, kind=args.kind,
                           engine=args.engine, workers=args.workers, shards=args.shards,
                           address=args.address, memory=args.memory,
                           target_recall=args.recall, partition_size=args.partition_size,
                           progress=not args.quiet, quiet=args.quiet)
    for e in m["errors"]:
        print(f"mmkit index build: skipped {e['path']}: {e['error']}", file=sys.stderr)
    if args.quiet:
        return 0
    print(f"indexed {m['n_indexed']} of {m['n_files']} image files with method "
          f"{m['method']} ({m['n_errors']} unreadable) into {args.out}")
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
    return 0


def _cmd_search(args: argparse.Namespace) -> int:
    report = search_folder(args.index, text=args.text, image=args.image, audio=args.audio,
                           k=args.k, quiet=args.json)
    if args.json:
        print(json.dumps({"query": report["query"], "results": report["results"]}, indent=1))
        return 0
    for rank, hit in enumerate(report["results"], 1):
        print(f"{rank:>3}  {hit['score']:+.4f}  {hit['path']}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> dict[str, argparse.ArgumentParser]:
    """Register ``index`` (with ``build``) and ``search`` on the main parser's subparsers;
    returns {"index": ..., "search": ...} for ``parser.commands``."""
    index = sub.add_parser("index", help="build a search index over a folder of images")
    verbs = index.add_subparsers(dest="index_command", required=True, parser_class=OneLineParser)
    build = verbs.add_parser(
        "build", help="embed every image (PNG, JPEG, WebP, TIFF) under a folder and build a "
                 "(sharded) index",
        description="Embed every PNG, JPEG, WebP or TIFF file under --images (any size; "
                    "resized and centre-cropped to the method's input) in resumable "
                    "partitions, then build the index. Unreadable files are reported and "
                    "skipped. A killed build resumes when run again with the same --out.")
    build.add_argument("--images", required=True, metavar="DIR", help="folder of images")
    build.add_argument("--out", required=True, metavar="INDEX_DIR",
                       help="new folder for the index (or an unfinished build to resume)")
    build.add_argument("--method", default=DEFAULT_METHOD, choices=available_methods(),
                       help=f"retrieval method (default {DEFAULT_METHOD}; one that is not "
                            "pretrained is fitted on the demo world first)")
    build.add_argument("--kind", default="auto", choices=KIND_CHOICES,
                       help="index type; auto: chosen from the collection size and --memory, "
                            "autofaiss-style, then tuned to --recall")
    build.add_argument("--engine", default="local", choices=("local", "ray"),
                       help="local: this process; ray: Ray Data map_batches on --workers")
    build.add_argument("--workers", type=positive_int_arg, default=2,
                       help="Ray workers (a local cluster of that many CPUs unless --address)")
    build.add_argument("--shards", type=positive_int_arg, default=1,
                       help="shard indexes per space, built from one trained quantizer")
    build.add_argument("--address", default=None, metavar="ADDR",
                       help="join an existing Ray cluster (e.g. ray://head:10001)")
    build.add_argument("--memory", type=_memory_arg, default="4G",
                       help="memory budget of the index for --kind auto (default 4G)")
    build.add_argument("--recall", type=float_arg(low=0, high=1, low_open=True), default=0.95,
                       help="recall@10 target for tuning nprobe / ef_search (default 0.95)")
    build.add_argument("--partition-size", type=positive_int_arg, default=256,
                       help="files per partition: the unit of work and of resuming")
    build.add_argument("-q", "--quiet", action="store_true",
                       help="no progress bars, no summary")
    build.set_defaults(func=_cmd_index_build)

    search = sub.add_parser("search", help="search an index folder by text, image or sound")
    search.add_argument("--index", required=True, metavar="INDEX_DIR")
    query = search.add_mutually_exclusive_group(required=True)
    query.add_argument("--text", help="a caption-like text query")
    query.add_argument("--image", metavar="FILE", help="an image file (PNG, JPEG, WebP, TIFF)")
    query.add_argument("--audio", metavar="FILE", help="a sound file (WAV, FLAC, OGG)")
    search.add_argument("-k", type=int_arg(low=1), default=10, help="hits to return")
    search.add_argument("--json", action="store_true",
                        help='print {"query": ..., "results": [{"path", "score"}, ...]}')
    search.set_defaults(func=_cmd_search)
    return {"index": index, "search": search}
