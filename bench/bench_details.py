"""Benchmark: the tag details of one big repository on Distribution, pipelined or by the client.

What the Tags screen reads of a repository on a registry other than the bundled one, without
the screen: ``tui.data.details.DetailsLoader`` over every tag of one repository (each tag its
own image, as ``bench_tui.py`` writes it), once through the pipelined reader
(``tui/client/bulk.py``) and once through the client alone (its concurrent requests), in
alternated rounds on one Debian ``docker-registry`` (Distribution 2.8, with the stock config's
``storage.cache.blobdescriptor: inmemory``). Each round prints the wall time, the CPU time of
this process and of the registry per tag, and how late a 5 ms tick of the event loop came (the
longest and the 99th percentile; "loop CPU" is the loop thread's own CPU between two ticks:
the part of a stall that is the loader's work, the rest is waiting for a core). Medians, and
the ratio pipelined / client.

    python bench/bench_details.py --tags 2000 --rounds 2
    python bench/bench_details.py --tags 10000 --rounds 1 --storage DIR   # reuse DIR
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.bench_tui import (  # noqa: E402
    BIG_REPOSITORY,
    STOCK_DISTRIBUTION,
    process_cpu_s,
    write_big_repository,
)
from tui.client import RegistryClient  # noqa: E402
from tui.data.details import DetailsLoader  # noqa: E402
from tui.logic.tags import TagRow  # noqa: E402

WAYS = {"pipelined": 0, "client": 10**9}
"""``bulk_from`` of each way."""
TICK = 0.005


async def load(host: str, bulk_from: int, pid: int) -> dict[str, float]:
    async with RegistryClient(host, fast_after=0) as client:
        tags = await client.list_tags(BIG_REPOSITORY)
        loader = DetailsLoader(
            client, BIG_REPOSITORY, [TagRow(t) for t in tags], bulk_from=bulk_from
        )
        delays: list[float] = []
        busy: list[float] = []

        async def tick() -> None:
            last, last_cpu = time.perf_counter(), time.thread_time()
            while True:
                await asyncio.sleep(TICK)
                now, cpu = time.perf_counter(), time.thread_time()
                delays.append(max(0.0, now - last - TICK))
                busy.append(cpu - last_cpu)
                last, last_cpu = now, cpu

        failed = 0

        def on_row(row: TagRow) -> None:
            nonlocal failed
            failed += row.error is not None

        ticker = asyncio.create_task(tick())
        started, cpu, server = time.perf_counter(), time.process_time(), process_cpu_s(pid)
        await loader.run(on_row)
        wall = time.perf_counter() - started
        app_cpu, server_cpu = time.process_time() - cpu, process_cpu_s(pid) - server
        ticker.cancel()
    assert not failed, f"{failed} tags could not be read"
    delays.sort()
    busy.sort()
    count = len(tags)
    return {
        "wall_s": wall,
        "app_ms_per_tag": app_cpu / count * 1000,
        "registry_ms_per_tag": server_cpu / count * 1000,
        "stall_max_ms": delays[-1] * 1000,
        "stall_p99_ms": delays[int(len(delays) * 0.99)] * 1000,
        "loop_cpu_max_ms": busy[-1] * 1000,
    }


def show(figures: dict[str, float]) -> str:
    return (
        f"every detail {figures['wall_s']:.1f} s; CPU a tag: app {figures['app_ms_per_tag']:.2f}"
        f" ms, registry {figures['registry_ms_per_tag']:.2f} ms; loop late max "
        f"{figures['stall_max_ms']:.0f} ms, p99 {figures['stall_p99_ms']:.0f} ms; loop CPU max "
        f"{figures['loop_cpu_max_ms']:.1f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tags", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--storage", type=Path, help="keep the storage here and reuse it")
    args = parser.parse_args()
    from tests.helpers.servers import distribution_registry

    os.environ.pop("AWS_CA_BUNDLE", None)  # Debian's docker-registry panics with it set
    with tempfile.TemporaryDirectory(prefix="regtui-bench-details-") as tmp:
        root = args.storage or Path(tmp) / "registry"
        marker = root / "regtui-bench.json"
        wanted = {"repos": 0, "tags": 10, "big": args.tags}
        if not (marker.is_file() and json.loads(marker.read_text()) == wanted):
            write_big_repository(root, args.tags)
            marker.write_text(json.dumps(wanted))
        rounds: dict[str, list[dict[str, float]]] = {way: [] for way in WAYS}
        with distribution_registry(root, config=STOCK_DISTRIBUTION) as registry:
            for number in range(args.rounds):
                order = list(WAYS) if number % 2 == 0 else list(reversed(WAYS))
                for way in order:
                    figures = asyncio.run(load(registry.host, WAYS[way], registry.process.pid))
                    rounds[way].append(figures)
                    print(f"round {number + 1}, {way}: {show(figures)}", flush=True)
    medians = {
        way: {key: statistics.median(r[key] for r in results) for key in results[0]}
        for way, results in rounds.items()
    }
    for way, figures in medians.items():
        print(f"median of {args.rounds}, {way}: {show(figures)}")
    ours, theirs = medians["pipelined"], medians["client"]
    print(
        f"pipelined / client: every detail {ours['wall_s'] / theirs['wall_s']:.2f}x, app CPU "
        f"{ours['app_ms_per_tag'] / theirs['app_ms_per_tag']:.2f}x, registry CPU "
        f"{ours['registry_ms_per_tag'] / theirs['registry_ms_per_tag']:.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
