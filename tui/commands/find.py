"""``regtui find HOST``: tags by pattern across repositories, and where a digest is used.

Only the parser lives here (building it imports nothing heavy: ``regtui --help`` stays fast);
:mod:`tui.commands.find_run` does the work.
"""

from __future__ import annotations

import argparse
from typing import Any

from tui.commands.access import add_access_arguments, add_output_arguments


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "find",
        help="find tags by pattern, and where a digest is used, across repositories",
        description=(
            "--tag PATTERN lists the matching tags of every repository (a glob, or a regular "
            "expression with --regex; both match the whole tag). --digest DIGEST finds the tags "
            "that point at that manifest, the indexes that have it as a platform, and the "
            "images that use it as config or layer. Hits are printed as found; --json prints "
            "one document at the end, --json-lines one JSON object per hit as found. As with "
            "grep, the exit status is 0 when something was found, 1 when nothing was (or on an "
            "error), 2 on a usage mistake."
        ),
    )
    parser.add_argument("host", metavar="HOST", help="registry, e.g. 127.0.0.1:5000")
    parser.add_argument("--tag", metavar="PATTERN", help="tags matching this glob (whole tag)")
    parser.add_argument(
        "--regex", action="store_true", help="PATTERN is a regular expression (RE2 syntax)"
    )
    parser.add_argument("--digest", metavar="DIGEST", help="a manifest, config or layer digest")
    parser.add_argument(
        "--repo", action="append", metavar="NAME", help="only these repositories (repeatable)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=8, help="requests in flight (default: 8)"
    )
    add_access_arguments(parser)
    output = add_output_arguments(parser, "one JSON document")
    output.add_argument(
        "--json-lines", action="store_true", help="one JSON object per hit, as it is found"
    )
    parser.set_defaults(handler=_run_find)


def _run_find(args: argparse.Namespace) -> int:
    from tui.commands.find_run import run

    return run(args)
