"""``regtui --help`` without argparse: the text argparse would print, laid out here.

``regtui --help`` (or ``-h``) is typed more than any command, and building argparse's parser
and formatting its help costs more than all the rest of a start after the interpreter's own
(issue 22: at most 40 ms of wall time). This module lays out exactly what argparse's
``HelpFormatter`` makes of the top-level parser of :func:`tui.cli.build_parser`, from
:data:`tui.commands.SUMMARIES`, for a width where nothing but the summaries wraps; at a narrower
terminal :func:`help_text` answers None and argparse does it. A test compares the two texts
at every width from 40 to 300 columns.

It imports :mod:`textwrap` (as argparse does) and nothing of the commands.
"""

from __future__ import annotations

import os
import sys

from tui.commands import SUMMARIES

PROG = "regtui"
DESCRIPTION = "Explore, clean and serve container registries from the terminal."
USAGE = f"usage: {PROG} [-h] [--version] COMMAND ..."
METAVAR = "COMMAND"
OPTIONS = (
    ("-h, --help", "show this help message and exit"),
    ("--version", "show program's version number and exit"),
)
SMALLEST = 60
"""Below this width argparse wraps more than the summaries (the usage line): it lays out."""


def columns() -> int:
    """The terminal's width as :func:`shutil.get_terminal_size` finds it (``COLUMNS``, then
    stdout's terminal, else 80), without importing :mod:`shutil`, which loads ``bz2`` and
    ``lzma`` (a few milliseconds of every start): what every parser is laid out for."""
    try:
        width = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        width = 0
    if width <= 0:
        try:
            width = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            width = 0
    return width or 80


def help_text(terminal_columns: int) -> str | None:
    """What ``regtui --help`` prints at ``terminal_columns``, as argparse lays it out; None
    where argparse would wrap more than the summaries (a narrow terminal)."""
    import textwrap

    width = terminal_columns - 2  # what tui.commands._common.Parser gives argparse
    if width < SMALLEST:
        return None
    commands = [(name, summary) for group in SUMMARIES.values() for name, summary in group.items()]
    # argparse: the help column is 2 past the longest invocation (options and commands alike,
    # each counted from the section's indent of 2), at most 24 columns in.
    longest = max(len(name) for name, _ in (*OPTIONS, *commands)) + 2
    position = min(longest + 2, min(24, max(width - 20, 4)))
    help_width = max(width - position, 11)
    lines = [USAGE, ""]
    lines += [*textwrap.wrap(DESCRIPTION, width), ""]
    lines += ["positional arguments:", f"  {METAVAR}"]
    lines += _items(commands, 4, position, help_width)
    lines += ["", "options:"]
    lines += _items(OPTIONS, 2, position, help_width)
    return "\n".join(lines) + "\n"


def _items(
    items: tuple[tuple[str, str], ...] | list[tuple[str, str]],
    indent: int,
    position: int,
    help_width: int,
) -> list[str]:
    import textwrap

    lines: list[str] = []
    room = position - indent - 2
    for name, summary in items:
        wrapped = textwrap.wrap(" ".join(summary.split()), help_width)
        if len(name) <= room:
            lines.append(f"{' ' * indent}{name:<{room}}  {wrapped[0]}")
            wrapped = wrapped[1:]
        else:
            lines.append(f"{' ' * indent}{name}")
        lines += [f"{' ' * position}{line}" for line in wrapped]
    return lines
