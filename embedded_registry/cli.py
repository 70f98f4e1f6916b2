"""``python -m embedded_registry`` (and ``regtui serve``): flags, config loading, exit codes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from embedded_registry.config import LOG_LEVELS, ConfigError, Overrides, load_config


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags both entry points share."""
    parser.add_argument("--config", metavar="FILE", help="a Distribution-style config.yml")
    parser.add_argument(
        "--addr", metavar="HOST:PORT", help="listen address (default 127.0.0.1:5000; port 0 ok)"
    )
    parser.add_argument(
        "--root", metavar="DIR", help="storage root (default $XDG_DATA_HOME/regtui/registry)"
    )
    parser.add_argument(
        "--read-only",
        action="store_true",
        default=None,
        help="serve pulls only; every write answers 405",
    )
    parser.add_argument("--log-level", choices=LOG_LEVELS, help="default: info")


def run_from_args(args: argparse.Namespace, *, prog: str = "registry") -> int:
    """Load the configuration the flags describe and serve it; 1 on a startup error."""
    from embedded_registry.server import run

    try:
        config = load_config(
            args.config,
            overrides=Overrides(
                addr=args.addr, root=args.root, read_only=args.read_only, log_level=args.log_level
            ),
        )
    except ConfigError as exc:
        message = " ".join(str(exc).split())  # one line, whatever a value put in it
        print(f"{prog}: error: {message}", file=sys.stderr)
        return 1
    return run(config, prog=prog)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m embedded_registry",
        description="An OCI registry on CNCF Distribution's storage layout.",
    )
    add_server_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_from_args(args)
