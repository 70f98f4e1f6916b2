"""Benchmark: the explorer on a big bundled registry (10,000 repositories, 100,000 tags).

Writes the storage directly in Distribution's layout (one small image shared by every tag, so
the tree is what is big, not the blobs), starts the bundled registry on it, then drives the real
app headless (``run_test``) and measures:

* time to the first painted catalog (app start until the first catalog page is in the tree),
* filter keystroke latency (one key in the ``/`` filter until the tree is rebuilt and painted),
* peak memory of the app's process (the registry runs in its own process).

Targets: first paint < 1 s, filter < 100 ms, memory < 300 MB.

    python bench/bench_tui.py                    # 10,000 repos x 10 tags
    python bench/bench_tui.py --repos 1000 --tags 5
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

from embedded_registry.storage.paths import Layout
from tui.app import AppSettings, make_app
from tui.commands.connect import local_registry
from tui.screens.registry import RegistryScreen

TARGET_FIRST_PAINT = 1.0
TARGET_FILTER = 0.100
TARGET_MEMORY_MB = 300


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _blob(layout: Layout, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    _write(layout.blob_data(digest), data)
    return digest


def write_storage(root: Path, repos: int, tags: int) -> list[str]:
    layout = Layout(root)
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {}}).encode()
    layer = b"\x1f\x8b" + b"\0" * 64
    config_digest = _blob(layout, config)
    layer_digest = _blob(layout, layer)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": layer_digest,
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    manifest_digest = _blob(layout, manifest)
    link = manifest_digest.encode()
    names = [f"team{n % 100:02d}/service-{n:05d}" for n in range(repos)]
    for name in names:
        _write(layout.revision_link(name, manifest_digest), link)
        _write(layout.layer_link(name, config_digest), config_digest.encode())
        _write(layout.layer_link(name, layer_digest), layer_digest.encode())
        for tag_number in range(tags):
            tag = f"1.{tag_number}.0"
            _write(layout.tag_current_link(name, tag), link)
            _write(layout.tag_index_link(name, tag, manifest_digest), link)
    return names


async def measure(host: str, repos: int) -> dict[str, float]:
    app = make_app(AppSettings(registry=host, insecure=True))
    started = time.perf_counter()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        assert isinstance(screen, RegistryScreen)
        while screen.first_paint_seconds is None:
            await pilot.pause(0.005)
        await pilot.pause()  # the paint itself
        first_paint = time.perf_counter() - started
        while not screen.catalog_complete:
            await pilot.pause(0.02)
        full_catalog = time.perf_counter() - started
        assert len(screen.names) == repos, (len(screen.names), repos)

        await pilot.press("slash")
        await pilot.pause()
        bar = screen.filter_bar
        assert bar is not None
        latencies: list[float] = []
        query = "service-0042"
        # Each keystroke: the input changes, the tree is rebuilt, the screen repaints.
        steps = [query[: n + 1] for n in range(len(query))]
        steps += [query[:n] for n in range(len(query) - 1, -1, -1)]
        for text in steps:
            before = time.perf_counter()
            bar.value = text
            await pilot.pause()  # the Changed message is handled and the frame painted
            latencies.append(time.perf_counter() - before)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "first_paint_s": first_paint,
        "full_catalog_s": full_catalog,
        "filter_median_ms": statistics.median(latencies) * 1000,
        "filter_max_ms": max(latencies) * 1000,
        "peak_memory_mb": peak_mb,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repos", type=int, default=10_000)
    parser.add_argument("--tags", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="regtui-bench-tui-") as tmp:
        root = Path(tmp) / "registry"
        started = time.perf_counter()
        write_storage(root, args.repos, args.tags)
        print(
            f"storage: {args.repos:,} repositories, {args.repos * args.tags:,} tags "
            f"written in {time.perf_counter() - started:.1f} s",
            flush=True,
        )
        with open(os.devnull, "w", encoding="utf-8") as log, local_registry(root, log=log) as reg:
            result = asyncio.run(measure(reg.host, args.repos))
    checks = [
        ("first painted catalog", result["first_paint_s"], TARGET_FIRST_PAINT, "s"),
        ("filter keystroke (max)", result["filter_max_ms"] / 1000, TARGET_FILTER, "s"),
        ("peak memory", result["peak_memory_mb"], TARGET_MEMORY_MB, "MB"),
    ]
    print(f"whole catalog loaded: {result['full_catalog_s']:.2f} s")
    print(f"filter keystroke median: {result['filter_median_ms']:.1f} ms")
    ok = True
    for name, value, target, unit in checks:
        passed = value < target
        ok &= passed
        verdict = "OK" if passed else "MISSED"
        print(f"{name:<24} {value:8.3f} {unit}  (target < {target} {unit})  {verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
