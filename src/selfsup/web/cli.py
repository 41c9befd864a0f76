"""``selfsup view``: open the output folders of local runs in the browser."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

EXIT_USAGE = 2
TOKEN_ENV = "SELFSUP_VIEW_TOKEN"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="selfsup view",
        description="Browse the report, images and embedding map of selfsup run output "
        "folders in the browser (no server database needed). Prints a URL with a one-time "
        "login token; anyone with the token can see the images.",
    )
    parser.add_argument(
        "folders",
        nargs="+",
        metavar="OUTPUT_DIR",
        help="output_dir of selfsup run, or a folder holding several of them",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8765, help="port to listen on (0: any free)")
    parser.add_argument(
        "--token",
        default=None,
        help=f"login token (default: ${TOKEN_ENV}, else a random one printed at start)",
    )
    parser.add_argument(
        "--input-dir",
        default=None,
        help="where the images are, if they moved since the run (default: the run's input_dir)",
    )
    parser.add_argument(
        "--cache-dir",
        default=None,
        help="where thumbnails are cached (default: OUTPUT_DIR/.selfsup/web)",
    )
    parser.add_argument(
        "--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"]
    )
    return parser


def view_main(
    argv: Sequence[str] | None = None, app_factory: Callable[..., FastAPI] | None = None
) -> int:
    """Entry point of ``selfsup view``; returns the exit status.

    ``app_factory``: builds the app from the folders and options, as
    :func:`selfsup.web.app.create_view_app` (the default, without an image embedder);
    ``selfsup view`` passes :func:`selfsup.cli.apps.create_view_app`.
    """
    import uvicorn

    from selfsup.apphelpers.access_log import uvicorn_log_config
    from selfsup.apphelpers.network import is_loopback
    from selfsup.web.app import create_view_app

    factory = app_factory or create_view_app

    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.input_dir is not None and not os.path.isdir(args.input_dir):
        print(f"selfsup view: error: --input-dir {args.input_dir}: no such folder", file=sys.stderr)
        return EXIT_USAGE
    token = args.token or os.environ.get(TOKEN_ENV) or None
    try:
        app = factory(args.folders, token=token, cache_dir=args.cache_dir, input_dir=args.input_dir)
    except FileNotFoundError as exc:
        print(f"selfsup view: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not is_loopback(args.host):
        print(
            f"selfsup view: warning: listening on {args.host} without TLS; the token and the "
            "images cross the network in clear",
            file=sys.stderr,
        )
    # Bind first, so that the printed URL has the real port (--port 0 picks a free one).
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio enables TCP_NODELAY only on sockets whose proto says
    # TCP, and without it every small response (a thumbnail) waits ~40 ms for the delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as exc:
        print(
            f"selfsup view: error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr
        )
        return EXIT_USAGE
    port = sock.getsockname()[1]
    host = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    shown = app.state.web.token if token is None else "<your token>"
    print(f"selfsup view: open http://{host}:{port}/?token={shown}", file=sys.stderr)
    # The access log (at --log-level info) would otherwise show the /?token=... login URL.
    server = uvicorn.Server(
        uvicorn.Config(app, log_level=args.log_level, log_config=uvicorn_log_config())
    )
    server.run(sockets=[sock])
    return 0
