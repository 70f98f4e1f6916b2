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
from contextlib import AsyncExitStack
from typing import Any

from tui.client import Reference, RegistryClient
from tui.client.layers import LayerFormatError
from tui.client.reference import parse_reference
from tui.commands import _common as c
from tui.data.inside import (
    ImageSource,
    LoadProgress,
    diff_images,
    platform_images,
    uncompressed_sizes,
)
from tui.logic.fsmerge import Change
from tui.logic.imagediff import ImageDiff, PlatformPickError, summarize_files
from tui.logic.platforms import platform_report

_MARKS = {Change.ADDED: "A", Change.REMOVED: "D", Change.MODIFIED: "M"}
size = c.size


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
    return c.run(args, _diff, usage=(PlatformPickError,), errors=(LayerFormatError,))


def run_layers(args: argparse.Namespace) -> int:
    return c.run(args, _layers, errors=(LayerFormatError,))


def progress_text(progress: LoadProgress) -> str:
    """``reading REF: layer 2/5 1.5 MiB of 20.0 MiB``: the progress line of a layer read."""
    return (
        f"reading {progress.label}: layer {progress.step}/{progress.steps} "
        f"{size(progress.bytes_read)} of {size(progress.bytes_total)}"
    )


async def _diff(args: argparse.Namespace) -> int:
    before, after = resolve_refs(args.before, args.after)
    progress = c.ProgressLine(progress_text)
    async with AsyncExitStack() as stack:
        clients: dict[str, RegistryClient] = {}
        for ref in (before, after):
            key = c.registry_of(ref)
            if key not in clients:
                clients[key] = await stack.enter_async_context(
                    # layers streamed whole: aiohttp's pool at once
                    c.client(args, key, fast_after=0)
                )
        sources = [
            ImageSource(
                clients[c.registry_of(ref)], ref.repository, ref.ref, str(ref), args.platform
            )
            for ref in (before, after)
        ]
        try:
            result = await diff_images(
                sources[0], sources[1], files=not args.no_files, on_progress=progress
            )
        finally:
            progress.clear()
    if args.json:
        c.print_json(result.to_json())
    else:
        print_diff(result)
    return c.EXIT_OK


async def _layers(args: argparse.Namespace) -> int:
    ref = parse_reference(args.ref)
    progress = c.ProgressLine(progress_text)
    # layers streamed whole: aiohttp's pool at once
    async with c.client(args, c.registry_of(ref), fast_after=0) as client:
        digest, images = await platform_images(client, ref.repository, ref.ref)
        raw = None
        if args.uncompressed:
            try:
                raw = await uncompressed_sizes(client, ref.repository, images, progress)
            finally:
                progress.clear()
    report = platform_report(str(ref), digest, images, raw)
    if args.json:
        c.print_json(report)
    else:
        print_layers(report)
    return c.EXIT_OK


def _platform_name(platform: dict[str, Any] | None) -> str:
    if platform is None:
        return "?"
    parts = [platform["os"], platform["architecture"], platform.get("variant")]
    return "/".join(part for part in parts if part)


def print_layers(report: dict[str, Any]) -> None:
    c.say(f"{report['reference']}  {report['digest']}")
    print()
    rows = [
        [
            _platform_name(p["platform"]),
            c.short_digest(p["digest"]),
            str(p["layer_count"]),
            size(p["compressed_bytes"]),
            size(p["uncompressed_bytes"]),
            size(p["shared_layer_bytes"]),
        ]
        for p in report["platforms"]
    ]
    c.table(rows, ["PLATFORM", "DIGEST", "LAYERS", "COMPRESSED", "UNCOMPRESSED", "SHARED LAYERS"])
    print()
    rows = [
        [
            c.short_digest(layer["digest"]),
            size(layer["size"]),
            size(layer["uncompressed_bytes"]),
            ", ".join(_platform_name(p) for p in layer["platforms"]),
        ]
        for layer in report["layers"]
    ]
    c.table(rows, ["LAYER", "SIZE", "UNCOMPRESSED", "PLATFORMS"])
    print()
    c.say(
        f"Every platform pulled: {size(report['compressed_bytes_total'])}; stored once: "
        f"{size(report['stored_bytes'])} (sharing saves {size(report['shared_bytes'])})"
    )


def print_diff(result: ImageDiff) -> None:
    for name, side in (("Before", result.before), ("After", result.after)):
        platform = f"  {side.platform}" if side.platform else ""
        c.say(f"{name + ':':<8}{side.reference}  {side.digest}{platform}  {size(side.size)}")
    c.say(f"Size:   {signed(result.size_change)} compressed (config + layers)")
    if result.before.uncompressed_bytes is not None and result.after.uncompressed_bytes is not None:
        grown = result.after.uncompressed_bytes - result.before.uncompressed_bytes
        c.say(f"        {signed(grown)} uncompressed (layer tars)")
    print("\nConfig:" if result.config else "\nConfig: identical")
    for change in result.config:
        c.say(f"  {change.line()}")
    layers = result.layers
    print(
        f"\nLayers: {len(layers.shared)} shared ({size(layers.shared_bytes)}), "
        f"{len(layers.only_before)} only in REF1, {len(layers.only_after)} only in REF2"
    )
    for mark, group in (("-", layers.only_before), ("+", layers.only_after)):
        for layer in group:
            c.say(f"  {mark} {layer.digest}  {size(layer.size)}")
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
        c.say(f"  {_MARKS[file.change]} {file.path}{kind}  {signed(file.size_delta)}{detail}")
