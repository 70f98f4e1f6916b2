"""The ``regtui`` command line: ``connect``, ``serve`` and the scriptable commands.

Each command lives in a module of ``tui.commands`` that offers ``register(subparsers)``; this
module only assembles the parser and maps outcomes to exit codes: 0 ok, 1 error, 2 usage.
Errors reach the user as one line on stderr, never as a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from tui import __version__

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="regtui",
        description="Explore, clean and serve container registries from the terminal.",
    )
    parser.add_argument("--version", action="version", version=f"regtui {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    from tui.commands import COMMAND_MODULES

    for module in COMMAND_MODULES:
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from tui.commands.storage import offline_parser

    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = offline_parser(arguments) or build_parser()
    args = parser.parse_args(arguments)
    handler = args.handler
    try:
        return int(handler(args) or EXIT_OK)
    except KeyboardInterrupt:
        print("regtui: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
