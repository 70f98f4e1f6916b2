"""``regtui diff`` and ``regtui layers`` at work (the parsers are in :mod:`tui.commands.diff`).

``REF2`` may be just ``:TAG`` or ``@DIGEST`` for another version of ``REF1``'s repository. The
file-level diff streams every layer once (a layer both images share is read once) and keeps only
entries' metadata; ``--no-files`` skips it. ``--json`` prints one document (keys in the README).

``regtui layers REF`` shows, per platform of an index, the compressed size (and with
``--uncompressed`` the layers' tar sizes, each distinct layer streamed once) and which layers
the platforms share.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from contextlib import AsyncExitStack
from typing import Any

from tui.client import InvalidReferenceError, Reference, RegistryClient, RegistryClientError
from tui.client.layers import LayerFormatError
from tui.client.reference import parse_reference
from tui.commands.access import PasswordError, read_password
from tui.data.inside import (
    ImageSource,
    LoadProgress,
    diff_images,
    platform_images,
    uncompressed_sizes,
)
from tui.logic.escape import visible
from tui.logic.fmt import human_size
from tui.logic.fsmerge import Change
from tui.logic.imagediff import ImageDiff, PlatformPickError, summarize_files
from tui.logic.platforms import platform_report

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2

_MARKS = {Change.ADDED: "A", Change.REMOVED: "D", Change.MODIFIED: "M"}


def size(value: int) -> str:
    return human_size(value)


def signed(value: int) -> str:
    return ("+" if value > 0 else "-" if value < 0 else "±") + size(abs(value))


def resolve_refs(first: str, second: str) -> tuple[Reference, Reference]:
    """Parse both references; ``:TAG``/``@DIGEST`` alone reuse the first one's repository."""
    before = parse_reference(first)
    if second.startswith((":", "@")):
        base = f"{before.scheme}://" if before.scheme else ""
        after = parse_reference(f"{base}{before.registry}/{before.repository}{second}")
    else:
        after = parse_reference(second)
    return before, after


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_diff(args))
    except (InvalidReferenceError, PlatformPickError, PasswordError) as error:
        print(f"regtui: error: {visible(str(error))}", file=sys.stderr)
        return EXIT_USAGE
    except (RegistryClientError, LayerFormatError) as error:
        print(f"regtui: error: {visible(str(error))}", file=sys.stderr)
        return EXIT_ERROR


def run_layers(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_layers(args))
    except (InvalidReferenceError, PasswordError) as error:
        print(f"regtui: error: {visible(str(error))}", file=sys.stderr)
        return EXIT_USAGE
    except (RegistryClientError, LayerFormatError) as error:
        print(f"regtui: error: {visible(str(error))}", file=sys.stderr)
        return EXIT_ERROR


def _registry(ref: Reference) -> str:
    return f"{ref.scheme}://{ref.registry}" if ref.scheme else ref.registry


class _ProgressLine:
    """One line on stderr, rewritten at most ten times a second; only on a terminal."""

    def __init__(self) -> None:
        self.enabled = sys.stderr.isatty()
        self._last = 0.0
        self._shown = False

    def __call__(self, progress: LoadProgress) -> None:
        now = time.monotonic()
        if not self.enabled or now - self._last < 0.1:
            return
        self._last = now
        self._shown = True
        text = (
            f"reading {progress.label}: layer {progress.step}/{progress.steps} "
            f"{size(progress.bytes_read)} of {size(progress.bytes_total)}"
        )
        sys.stderr.write(f"\r\x1b[K{visible(text[:200])}")
        sys.stderr.flush()

    def clear(self) -> None:
        if self._shown:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


async def _diff(args: argparse.Namespace) -> int:
    before, after = resolve_refs(args.before, args.after)
    password = read_password(args)
    progress = _ProgressLine()
    async with AsyncExitStack() as stack:
        clients: dict[str, RegistryClient] = {}
        for ref in (before, after):
            key = _registry(ref)
            if key not in clients:
                clients[key] = await stack.enter_async_context(
                    RegistryClient(
                        key,
                        username=args.username,
                        password=password,
                        insecure=args.insecure,
                        ca_cert=args.ca_cert,
                        timeout=args.timeout,
                        fast_after=0,  # layers streamed whole: aiohttp's pool at once
                    )
                )
        sources = [
            ImageSource(clients[_registry(ref)], ref.repository, ref.ref, str(ref), args.platform)
            for ref in (before, after)
        ]
        try:
            result = await diff_images(
                sources[0], sources[1], files=not args.no_files, on_progress=progress
            )
        finally:
            progress.clear()
    if args.json:
        json.dump(result.to_json(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print_diff(result)
    return EXIT_OK


async def _layers(args: argparse.Namespace) -> int:
    ref = parse_reference(args.ref)
    progress = _ProgressLine()
    async with RegistryClient(
        _registry(ref),
        username=args.username,
        password=read_password(args),
        insecure=args.insecure,
        ca_cert=args.ca_cert,
        timeout=args.timeout,
        fast_after=0,  # layers streamed whole: aiohttp's pool at once
    ) as client:
        digest, images = await platform_images(client, ref.repository, ref.ref)
        raw = None
        if args.uncompressed:
            try:
                raw = await uncompressed_sizes(client, ref.repository, images, progress)
            finally:
                progress.clear()
    report = platform_report(str(ref), digest, images, raw)
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print_layers(report)
    return EXIT_OK


def _platform_name(platform: dict[str, Any] | None) -> str:
    if platform is None:
        return "?"
    parts = [platform["os"], platform["architecture"], platform.get("variant")]
    return "/".join(part for part in parts if part)


def _say(line: str) -> None:
    """One line of human output holding text from a registry or an image, escaped."""
    print(visible(line))


def _table(rows: list[list[str]], header: list[str]) -> None:
    shown = [[visible(cell) for cell in row] for row in [header, *rows]]
    widths = [max(len(row[i]) for row in shown) for i in range(len(header))]
    for row in shown:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


def print_layers(report: dict[str, Any]) -> None:
    _say(f"{report['reference']}  {report['digest']}")
    print()
    rows = [
        [
            _platform_name(p["platform"]),
            p["digest"].split(":", 1)[-1][:12],
            str(p["layer_count"]),
            size(p["compressed_bytes"]),
            size(p["uncompressed_bytes"]) if p["uncompressed_bytes"] is not None else "-",
            size(p["shared_layer_bytes"]),
        ]
        for p in report["platforms"]
    ]
    _table(rows, ["PLATFORM", "DIGEST", "LAYERS", "COMPRESSED", "UNCOMPRESSED", "SHARED LAYERS"])
    print()
    rows = [
        [
            layer["digest"].split(":", 1)[-1][:12],
            size(layer["size"]),
            size(layer["uncompressed_bytes"]) if layer["uncompressed_bytes"] is not None else "-",
            ", ".join(_platform_name(p) for p in layer["platforms"]),
        ]
        for layer in report["layers"]
    ]
    _table(rows, ["LAYER", "SIZE", "UNCOMPRESSED", "PLATFORMS"])
    print()
    _say(
        f"Every platform pulled: {size(report['compressed_bytes_total'])}; stored once: "
        f"{size(report['stored_bytes'])} (sharing saves {size(report['shared_bytes'])})"
    )


def print_diff(result: ImageDiff) -> None:
    for name, side in (("Before", result.before), ("After", result.after)):
        platform = f"  {side.platform}" if side.platform else ""
        _say(f"{name + ':':<8}{side.reference}  {side.digest}{platform}  {size(side.size)}")
    _say(f"Size:   {signed(result.size_change)} compressed (config + layers)")
    if result.before.uncompressed_bytes is not None and result.after.uncompressed_bytes is not None:
        grown = result.after.uncompressed_bytes - result.before.uncompressed_bytes
        _say(f"        {signed(grown)} uncompressed (layer tars)")
    print("\nConfig:" if result.config else "\nConfig: identical")
    for change in result.config:
        name = f"{change.field} {change.key}" if change.key else change.field
        if change.before is None:
            _say(f"  + {name}: {change.after}")
        elif change.after is None:
            _say(f"  - {name}: {change.before}")
        else:
            _say(f"  ~ {name}: {change.before} -> {change.after}")
    layers = result.layers
    print(
        f"\nLayers: {len(layers.shared)} shared ({size(layers.shared_bytes)}), "
        f"{len(layers.only_before)} only in REF1, {len(layers.only_after)} only in REF2"
    )
    for mark, group in (("-", layers.only_before), ("+", layers.only_after)):
        for layer in group:
            _say(f"  {mark} {layer.digest}  {size(layer.size)}")
    if result.files is None:
        return
    counted = summarize_files(result.files)
    print(
        f"\nFiles: {counted.added} added, {counted.removed} removed, {counted.modified} modified "
        f"({signed(counted.size_change)})"
    )
    for file in result.files:
        shown = file.after or file.before
        kind = "/" if shown is not None and shown.is_dir else ""
        detail = f"  ({', '.join(file.fields)})" if file.fields else ""
        _say(f"  {_MARKS[file.change]} {file.path}{kind}  {signed(file.size_delta)}{detail}")
