"""``regtui diff REF1 REF2`` (what changed between two images) and ``regtui layers REF``.

Only the parsers live here (building them imports nothing heavy: ``regtui --help`` stays fast);
:mod:`tui.commands.diff_run` does the work when one of these commands runs.
"""

from __future__ import annotations

import argparse
from typing import Any

from tui.commands.access import add_access_arguments, add_output_arguments


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "diff",
        help="compare two images: config, layers, sizes and files",
        description=(
            "REF2 may be just :TAG or @DIGEST for another version of REF1's repository. The "
            "file-level diff streams every layer once (a layer both images share is read once) "
            "and keeps only metadata, never file contents; --no-files skips it."
        ),
    )
    parser.add_argument("before", metavar="REF1", help="HOST/REPO[:TAG][@DIGEST]")
    parser.add_argument("after", metavar="REF2", help="HOST/REPO[:TAG][@DIGEST], or :TAG, @DIGEST")
    parser.add_argument("--platform", help="for indexes: compare this platform (os/arch[/variant])")
    parser.add_argument(
        "--no-files", action="store_true", help="compare config and layers only (no layer reads)"
    )
    add_access_arguments(parser)
    add_output_arguments(parser, "one JSON document")
    parser.set_defaults(handler=_run_diff)

    layers = subparsers.add_parser(
        "layers",
        help="per platform: compressed and uncompressed sizes, and the layers platforms share",
        description=(
            "For an index: each platform's compressed size (config + layers), with "
            "--uncompressed the layers' tar sizes (each distinct layer streamed once), and "
            "which layers the platforms share."
        ),
    )
    layers.add_argument("ref", metavar="REF", help="HOST/REPO[:TAG][@DIGEST] (an index or image)")
    layers.add_argument(
        "--uncompressed",
        action="store_true",
        help="also stream every distinct layer once to measure its tar size",
    )
    add_access_arguments(layers)
    add_output_arguments(layers, "one JSON document")
    layers.set_defaults(handler=_run_layers)


def _run_diff(args: argparse.Namespace) -> int:
    from tui.commands.diff_run import run

    return run(args)


def _run_layers(args: argparse.Namespace) -> int:
    from tui.commands.diff_run import run_layers

    return run_layers(args)
