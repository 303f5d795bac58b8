"""The ``mmkit`` command: ``demo``, ``world``, ``train``, ``index build|update``, ``search``,
``duplicates``, ``serve`` and ``eval``.

Errors in what the user typed or supplied end in one line on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import json
import sys

from mmkit._argparse import OneLineParser, float_arg, int_arg, positive_int_arg
from mmkit._io import check_writable_dir
from mmkit._version import __version__
from mmkit.checkpoints import get_spec, specs, train_and_save
from mmkit.data.export import check_output_dir, export_world
from mmkit.data.world import World, WorldConfig
from mmkit.demo import DATASETS, format_table, run_dataset_demo, run_demo
from mmkit.errors import MMKitError
from mmkit.methods import DEFAULT_METHOD, available_methods
from mmkit.metrics.trec import eval_main
from mmkit.scale.cli import add_parsers as add_scale_parsers
from mmkit.serve.cli import add_parser as add_serve_parser
from mmkit.scoring import EVAL_WORLD


def _cmd_demo(args: argparse.Namespace) -> int:
    if args.dataset != "world" or args.root is not None:
        return _cmd_demo_dataset(args)
    if args.split != "test":
        raise MMKitError("--split applies to a dataset read from disk (--dataset NAME --root "
                         "DIR); the generated world is evaluated on its test split")
    report = run_demo(n=args.n, seed=args.seed, method=args.method, out=args.out,
                      progress=not args.json and not args.quiet, retrain=args.retrain,
                      model=args.model)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    w = report["world"]
    print(f"mmkit demo: method={report['method']}  world: {w['n_images']} scenes, "
          f"{w['n_captions']} captions, {w['n_classes']} classes, seed {w['seed']}; "
          f"test split: {w['n_test']} images")
    print(format_table(report["results"], report["oracle"], report["ceiling"]))
    print(f"gallery: {report['figure']}   scores: {report['scores']}   ({report['seconds']} s)")
    return 0


def _cmd_demo_dataset(args: argparse.Namespace) -> int:
    report = run_dataset_demo(args.dataset, args.root, split=args.split, method=args.method,
                              model=args.model, out=args.out,
                              progress=not args.json and not args.quiet)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    d = report["data"]
    print(f"mmkit demo: dataset={report['dataset']} ({d['name']})  method={report['method']}"
          + (f" model={report['model']}" if report["model"] else "")
          + f"  {d['n_images']} images, {d['n_captions']} captions"
          + (f", {d['n_classes']} classes" if d["n_classes"] else "")
          + f"; fitted on {d['n_train']} train images; {report['split']} split: "
          f"{d['n_test']} images")
    print(report["repairs"])
    for name, results in report["protocols"].items():
        if len(report["protocols"]) > 1:
            print(f"{report['dataset']} {name}:")
        print(format_table(results))
    print(f"gallery: {report['figure']}   scores: {report['scores']}   ({report['seconds']} s)")
    return 0


def _cmd_world(args: argparse.Namespace) -> int:
    check_output_dir(args.out)  # fail before spending time generating
    world = World(WorldConfig(n=args.n, seed=args.seed, image_size=args.image_size,
                              imbalance=args.imbalance), progress=not args.quiet)
    out = export_world(world, args.out, speech=args.speech, progress=not args.quiet)
    if not args.quiet:
        s = world.summary()
        print(f"wrote {s['n_images']} images, {s['n_captions']} captions to {out}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    if args.list or not args.name:
        found = specs()
        if not found:
            print("no trainable models are registered")
        for name, spec in sorted(found.items()):
            print(f"{name:<24} ~{spec.seconds:>5.0f} s  {spec.description}")
        return 0
    spec = get_spec(args.name)
    overrides = {}
    for item in args.set or []:
        key, sep, text = item.partition("=")
        if not sep or key not in spec.config:
            raise MMKitError(f"--set {item!r}: expected KEY=VALUE with KEY one of "
                             f"{', '.join(spec.config)}")
        try:
            overrides[key] = json.loads(text)
        except json.JSONDecodeError:
            overrides[key] = text
    if args.out is not None:

        check_writable_dir(args.out)
    path, manifest = train_and_save(args.name, args.out, progress=not args.quiet,
                                    seed=args.seed, **overrides)
    metrics = ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                        for k, v in manifest["metrics"].items())
    print(f"trained {args.name} in {manifest['wall_time_s']} s: {metrics}")
    print(f"wrote {path} ({manifest['bytes'] / 1e6:.2f} MB) and {path.with_suffix('.json').name}")
    return 0


def _cmd_eval(argv: list[str]) -> int:
    return eval_main(argv)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="mmkit", description="Multi-modal image retrieval kit.")
    parser.add_argument("--version", action="version", version=f"mmkit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    demo = sub.add_parser("demo", help="retrieval in every direction on the embedded world")
    demo.add_argument("--method", default=DEFAULT_METHOD, choices=available_methods())
    demo.add_argument("--n", type=positive_int_arg, default=EVAL_WORLD["n"],
                      help="scenes in the generated world")
    demo.add_argument("--seed", type=int_arg(low=0), default=EVAL_WORLD["seed"],
                      help="seed of the generated world")
    demo.add_argument("--dataset", default="world", choices=DATASETS,
                      help="world: the generated world (or, with --root, an exported one); "
                           "karpathy: any dataset_*.json; coco, flickr30k, flickr8k, cub: "
                           "read from --root (layouts: data/README.md)")
    demo.add_argument("--root", default=None,
                      help="the dataset's folder (default: data/NAME, or $MMKIT_DATA/NAME)")
    demo.add_argument("--split", default="test",
                      help="split to evaluate on (datasets read from --root)")
    demo.add_argument("--model", default=None,
                      help="--method clip: a local CLIP folder (or the name of a model "
                           "already in the Hugging Face cache)")
    demo.add_argument("--out", default="out/demo",
                      help="folder for the gallery figure and the score matrices")
    demo.add_argument("--retrain", action="store_true",
                      help="--method joint: train the models afresh (minutes) instead of "
                           "loading the committed checkpoints")
    demo.add_argument("--json", action="store_true", help="print the results as JSON")
    demo.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    demo.set_defaults(func=_cmd_demo)

    world = sub.add_parser("world", help="export a world (Karpathy JSON, PNG, WAV, CSV)")
    world.add_argument("--out", required=True, help="new or empty output folder")
    world.add_argument("--n", type=positive_int_arg, default=1000, help="number of scenes")
    world.add_argument("--seed", type=int_arg(low=0), default=0)
    world.add_argument("--image-size", type=int_arg(low=16), default=64)
    world.add_argument("--imbalance", type=float_arg(low=1), default=1.0,
                       help="most/least frequent class ratio (1 = balanced)")
    world.add_argument("--speech", action="store_true",
                       help="also speak every caption with espeak-ng (slow: ~0.15 s each)")
    world.add_argument("-q", "--quiet", action="store_true")
    world.set_defaults(func=_cmd_world)

    train = sub.add_parser("train", help="train a model the notebooks or the demo load, from "
                                         "scratch, and save its checkpoint")
    train.add_argument("name", nargs="?", help="the model (see --list)")
    train.add_argument("--list", action="store_true", help="list the trainable models")
    train.add_argument("--out", default=None,
                       help="folder for NAME.safetensors and NAME.json (default: the package's "
                            "mmkit/trained/, where committed checkpoints live)")
    train.add_argument("--seed", type=int_arg(low=0), default=0)
    train.add_argument("--set", action="append", metavar="KEY=VALUE",
                       help="override one config entry (JSON value), e.g. --set epochs=2")
    train.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    train.set_defaults(func=_cmd_train)

    scale_commands = add_scale_parsers(sub)   # "index" (build, update), "search", "duplicates"
    serve = add_serve_parser(sub)

    ev = sub.add_parser("eval", help="trec_eval-style evaluation of a run file", add_help=False)
    ev.set_defaults(func=None)
    parser.commands = {"demo": demo, "world": world, "train": train,  # type: ignore[attr-defined]
                       **scale_commands, "serve": serve, "eval": ev}
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "eval":  # its own parser, trec_eval style
        try:
            return _cmd_eval(argv[1:])
        except KeyboardInterrupt:
            return 130
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # report them as the subcommand's error ("mmkit demo: error: ...")
        parser.commands[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.func(args)
    except (MMKitError, ValueError) as exc:
        print(f"mmkit {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. the disk filled up or a folder vanished mid-run
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"mmkit {args.command}: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
