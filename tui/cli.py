"""The ``regtui`` command line: ``connect``, ``serve`` and the scriptable commands.

Each command lives in a module of ``tui.commands`` that offers ``register(subparsers)``; this
module only assembles the parser and maps outcomes to exit codes (:mod:`tui.commands._common`'s:
0 ok, 1 error, 2 usage). Errors reach the user as one line on stderr, never as a traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from tui import __version__
from tui.commands.exits import (
    EXIT_BROKEN_PIPE,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy reads both)
if TYPE_CHECKING:
    import argparse

__all__ = [
    "DEBUG_ENV",
    "EXIT_BROKEN_PIPE",
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "build_parser",
    "main",
]


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The whole parser; with ``argv``, only the command it runs is built in full (the others
    are named with their summary: ``regtui tags`` never imports the app or the server)."""
    from tui.commands._common import Parser

    parser = Parser(
        prog="regtui",
        description="Explore, clean and serve container registries from the terminal.",
    )
    parser.add_argument("--version", action="version", version=f"regtui {__version__}")
    from tui.commands import SummaryOnly, module_of, register_commands

    # Commands that only get named in the help are no parsers (see SummaryOnly).
    kind = Parser if module_of(argv) else SummaryOnly
    subparsers = parser.add_subparsers(
        dest="command",
        metavar="COMMAND",
        parser_class=kind,  # type: ignore[type-var]  # argparse only calls it with kwargs
    )
    subparsers.required = True
    register_commands(subparsers, argv)
    return parser


DEBUG_ENV = "REGTUI_DEBUG"
"""Set to 1 to see the traceback of an unexpected error instead of its one-line summary."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; every outcome is an exit code, never a traceback (unless debugging).

    ``regtui du | head``: the reader goes away and writing raises BrokenPipeError; the rest of
    the output is thrown away (stdout pointed at /dev/null so the final flush at exit cannot
    fail again) and the exit code is a shell's for SIGPIPE. Ctrl-C exits with 130.
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        try:
            return _run(arguments)
        finally:
            # A closed pipe is found here (also after --help), not at interpreter exit.
            sys.stdout.flush()
    except BrokenPipeError:
        _discard_stdout()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as exc:  # the last line of defence: one line, exit 1
        if os.environ.get(DEBUG_ENV, "") not in ("", "0"):
            import traceback

            traceback.print_exc()
        else:
            from tui.commands._common import fail

            fail(_describe(exc))
        return EXIT_ERROR


def _run(arguments: list[str]) -> int:
    if arguments in (["--help"], ["-h"]):
        # The most typed command line, laid out without argparse (tui.commands.top_help)
        from tui.commands.top_help import columns, help_text

        text = help_text(columns())
        if text is not None:
            sys.stdout.write(text)
            return EXIT_OK
    parser = None
    if arguments[:1] in (["gc"], ["du"]):
        from tui.commands.gc import offline_parser

        parser = offline_parser(arguments)
    parser = parser or build_parser(arguments)
    args = parser.parse_args(arguments)
    return int(args.handler(args) or EXIT_OK)


def _describe(exc: BaseException) -> str:
    """One line about an unexpected exception: its message, or its type when it has none."""
    message = " ".join(str(exc).split())  # it may quote a registry's text: fail() escapes it
    return f"{message} ({type(exc).__name__})" if message else type(exc).__name__


def _discard_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        return  # no real stdout (already closed or replaced): nothing left to flush


if __name__ == "__main__":
    sys.exit(main())
