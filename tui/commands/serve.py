"""``regtui serve``: the bundled registry, headless (the same code as ``python -m
embedded_registry``), or with ``--local [--demo]`` a private registry with the app on it."""

from __future__ import annotations

import argparse
from typing import Any

from embedded_registry.cli import add_server_arguments, run_from_args


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the bundled OCI registry",
        description=(
            "Run the bundled OCI registry on CNCF Distribution's storage layout. "
            "REGISTRY_* environment variables override the config file; flags override both."
        ),
    )
    add_server_arguments(parser)
    parser.add_argument(
        "--local",
        action="store_true",
        help="serve on a free loopback port and open the terminal app on it",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="with --local: fill an empty registry with demo images first",
    )
    parser.set_defaults(handler=serve)


def serve(args: argparse.Namespace) -> int:
    if args.local:
        from tui.commands.connect import run_local

        return run_local(args)
    return run_from_args(args, prog="regtui")
