"""Run in a child process: read an image from a registry the way the merged view and ``diff`` do,
stack it, and print the peak memory (``ru_maxrss``) and the time as one JSON line.

``python -m tests.helpers.merge_probe HOST REPO BASE_REF REF [ADDRESS_SPACE_GIB]``: the merged
view of ``REF`` (every layer read, stacked, directory sizes, the rows of the table, the layer's
changes) and the file-level diff from ``BASE_REF`` to ``REF``. With ADDRESS_SPACE_GIB, the child
cannot take more than that (``RLIMIT_AS``): a merge that would need more fails with
``MemoryError`` (exit 3) instead of taking the machine's memory.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from typing import Any

from tests.helpers.memory import peak_kib
from tui.client import RegistryClient
from tui.data.inside import ImageSource, diff_images, read_layers, resolve_image
from tui.logic.fsmerge import directory_sizes, merge_layers
from tui.logic.inside_view import merged_rows


def peak_mib() -> float:
    return peak_kib() / 1024


async def probe(host: str, repo: str, base: str, reference: str) -> dict[str, Any]:
    report: dict[str, Any] = {}
    async with RegistryClient(host, insecure=True) as client:
        start = time.monotonic()
        image = await resolve_image(ImageSource(client, repo, reference, reference))
        layers = [changes for changes, _ in await read_layers(image)]
        view = merge_layers(layers)
        sizes = directory_sizes(view.nodes)
        rows = merged_rows(view, sizes)
        changes = view.layer_changes()
        filtered = merged_rows(view, sizes, query="D/F")  # what typing in the filter does
        report["merged_seconds"] = round(time.monotonic() - start, 2)
        report["merged_peak_mib"] = round(peak_mib())
        report.update(
            nodes=len(view.nodes), rows=len(rows), changes=len(changes), filtered=len(filtered)
        )
        del view, sizes, rows, changes, filtered, layers
        start = time.monotonic()
        diff = await diff_images(
            ImageSource(client, repo, base, base), ImageSource(client, repo, reference, reference)
        )
        assert diff.files is not None
        report["diff_seconds"] = round(time.monotonic() - start, 2)
        report["files"] = len(diff.files)
        report["last_path_length"] = len(diff.files[-1].path) if diff.files else 0
    report["peak_mib"] = round(peak_mib())
    return report


def main(argv: list[str]) -> int:
    host, repo, base, reference = argv[:4]
    if len(argv) > 4:
        limit = int(float(argv[4]) * 1024**3)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        report = asyncio.run(probe(host, repo, base, reference))
    except (MemoryError, RuntimeError) as error:
        # Out of address space; asyncio's shutdown then fails to start a thread (RuntimeError).
        print(json.dumps({"error": type(error).__name__, "peak_mib": round(peak_mib())}))
        return 3
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
