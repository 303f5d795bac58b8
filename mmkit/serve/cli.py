"""The ``mmkit serve`` command (registered by :func:`add_parser`)."""
from __future__ import annotations

import argparse
import re

from mmkit._argparse import int_arg
from mmkit.errors import InputError
from mmkit.serve.app import serve


def parse_size(text: str) -> int:
    """'16M', '512K', '1.5G', '100000' (bytes) -> bytes; one-line InputError otherwise."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmg]?)i?b?\s*", str(text), re.IGNORECASE)
    if not m:
        raise InputError(f"--max-upload {text!r}: expected a size such as 16M, 512K or 1G")
    value = int(float(m.group(1)) * 1024 ** " kmg".index(m.group(2).lower() or " "))
    if value < 1:
        raise InputError(f"--max-upload {text!r}: must be at least 1 byte")
    return value


def _size_arg(text: str) -> int:
    try:
        return parse_size(text)
    except InputError as e:
        raise argparse.ArgumentTypeError(str(e).split(": ", 1)[-1]) from None


_size_arg.__name__ = "size"


def _cmd_serve(args: argparse.Namespace) -> int:
    serve(args.index, host=args.host, port=args.port, model=args.model,
          thumb_size=args.thumb_size, max_upload_bytes=args.max_upload,
          thumb_dir=args.thumb_dir)
    return 0


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``serve`` on the main parser's subparsers; returns its parser (for
    ``parser.commands``)."""
    p = sub.add_parser(
        "serve", help="search an index folder from a web browser (a local web app)",
        description="Serve a web page and a JSON API over an index folder (made by 'mmkit "
                    "index build'): search by text, by uploaded images and sounds, or for "
                    "images like a hit; see thumbnails and the original files. The index and "
                    "its method are loaded once; the index is only read. Thumbnails are "
                    "cached in mmkit's cache folder. Binds 127.0.0.1 (this machine only) "
                    "unless --host says otherwise. Runs until Ctrl-C.")
    p.add_argument("--index", required=True, metavar="INDEX_DIR")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1, this machine only; "
                        "0.0.0.0 makes it reachable from the network)")
    p.add_argument("--port", type=int_arg(low=0, high=65535), default=8000,
                   help="port (default 8000; 0: any free port)")
    p.add_argument("--model", default=None, metavar="DIR",
                   help="clip indexes: the CLIP folder, if it moved since the build")
    p.add_argument("--thumb-size", type=int_arg(low=16, high=2048), default=256,
                   metavar="PX", help="longer side of the thumbnails (default 256)")
    p.add_argument("--thumb-dir", default=None, metavar="DIR",
                   help="where thumbnails are cached (default: mmkit's cache folder)")
    p.add_argument("--max-upload", type=_size_arg, default="16M", metavar="SIZE",
                   help="largest uploaded query file (default 16M)")
    p.set_defaults(func=_cmd_serve)
    return p


__all__ = ["add_parser", "parse_size"]
