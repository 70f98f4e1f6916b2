#!/usr/bin/env python3
"""What ``http.debug.prometheus`` costs on small requests (issue 24's budget: at most 5% of
``bench_registry``'s HEAD blob and tags list throughput at concurrency 32).

Two bundled registries, identical but for the metrics, on copies of one seeded storage; ``ab``
(keep-alive) alternates between them for ``--rounds`` rounds; medians are printed with the
ratio. Both keep the access log on, as Distribution's stock config does.

Two figures per server: requests per second (what the budget is stated in), and the server's
CPU time per request (its ``utime + stime`` over the requests ``ab`` completed). On a machine
other work shares, the rate moves with that work by more than the budget, while the CPU a
request costs the single-threaded server barely does: at saturation the rate is the inverse of
it, so its ratio is the cost the rate would show on a quiet machine. ``--cpu N`` pins both
servers to core N (``taskset``), ``ab`` to the others.

On a machine so loaded that two runs of one figure differ by more than the budget, the end to
end figures cannot resolve 5%. ``--components`` then measures what the metrics add to one
request, in this process, as the least CPU time over many batches (other work only ever adds
time): counting one answer (the access logger with metrics against the one without, on a real
request and answer captured from a real server), the middleware's pass-through, and one metered
storage operation against a bare one (a HEAD blob makes two: the link's read and the blob's
stat; a tags list none)."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TextIO

REPO_ROOT = Path(__file__).resolve().parents[1]
for path in (REPO_ROOT, REPO_ROOT / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from bench_registry import seed_tags  # noqa: E402

from tests.helpers.servers import bundled_registry, free_port  # noqa: E402
from tui.imagegen import make_image, push_image  # noqa: E402


def ab(url: str, *, head: bool, concurrency: int, seconds: int) -> tuple[float, int]:
    """Requests per second that ab measured and the requests it completed (any failure or
    non-2xx answer stops the run)."""
    result = subprocess.run(
        [
            "ab",
            "-q",
            "-k",
            *(["-i"] if head else []),
            "-t",
            str(seconds),
            "-n",
            "10000000",
            "-c",
            str(concurrency),
            url,
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    failed = re.search(r"Failed requests:\s+(\d+)", result.stdout)
    if (failed and int(failed.group(1))) or "Non-2xx" in result.stdout:
        raise RuntimeError(f"ab saw failed requests against {url}:\n{result.stdout}")
    rate = re.search(r"Requests per second:\s+([\d.]+)", result.stdout)
    done = re.search(r"Complete requests:\s+(\d+)", result.stdout)
    if not rate or not done:
        raise RuntimeError(f"no rate in ab's output:\n{result.stdout}")
    return float(rate.group(1)), int(done.group(1))


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pin(pid: int, cpu: int | None) -> None:
    if cpu is not None:
        os.sched_setaffinity(pid, {cpu})


def least(run: Callable[[], object], batches: int = 15, size: int = 20_000) -> float:
    """The least CPU microseconds ``run`` took over ``batches`` batches of ``size`` calls."""
    best = float("inf")
    for _ in range(batches):
        started = time.process_time()
        for _ in range(size):
            run()
        best = min(best, (time.process_time() - started) / size * 1e6)
    return best


async def least_async(run: Callable[[], Awaitable[object]], batches: int = 15) -> float:
    best, size = float("inf"), 20_000
    for _ in range(batches):
        started = time.process_time()
        for _ in range(size):
            await run()
        best = min(best, (time.process_time() - started) / size * 1e6)
    return best


async def components(root: Path, sink: TextIO) -> dict[str, float]:
    """CPU microseconds each part of the metrics adds (see the module's docstring)."""
    import logging

    from aiohttp import web

    from embedded_registry.app import AccessLogger, create_app, metered_access_logger
    from embedded_registry.config import Config, DebugConfig, HttpConfig, StorageConfig
    from embedded_registry.metrics import RegistryMetrics
    from embedded_registry.server import configure_logging
    from embedded_registry.storage.driver.filesystem import FilesystemDriver
    from embedded_registry.storage.metered import metered_driver

    configure_logging("info", sink)
    captured: list[tuple[web.BaseRequest, web.StreamResponse]] = []

    async def capture(request: web.Request, response: web.StreamResponse) -> None:
        captured.append((request, response))

    http = HttpConfig(debug=DebugConfig(addr=("127.0.0.1", 0), prometheus_enabled=True))
    app = create_app(Config(storage=StorageConfig(root=root), http=http))
    app.on_response_prepare.append(capture)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    await asyncio.to_thread(
        subprocess.run,
        ["curl", "-sf", "-o", os.devnull, f"http://127.0.0.1:{port}/v2/bench/tagged/tags/list"],
        check=True,
    )
    request, response = captured[-1]
    logger = logging.getLogger("registry.access")
    plain, metered = (
        AccessLogger(logger, ""),
        metered_access_logger(RegistryMetrics())(logger, ""),
    )
    figures = {
        "count one answer (access logger with metrics, less without)": least(
            lambda: metered.log(request, response, 0.0005)
        )
        - least(lambda: plain.log(request, response, 0.0005)),
    }

    async def handler(_request: web.Request) -> web.StreamResponse:
        return response

    middleware = RegistryMetrics().middleware()
    assert isinstance(request, web.Request)
    figures["middleware pass-through (GET, HEAD)"] = await least_async(
        lambda: middleware(request, handler)
    ) - await least_async(lambda: handler(request))
    await runner.cleanup()
    bare = FilesystemDriver(root)
    wrapped = metered_driver(FilesystemDriver(root))
    key = "/docker/registry/v2/repositories/bench/tagged/_manifests/tags/v000/current/link"
    for action in ("stat", "get_content"):
        figures[f"one storage operation ({action}), metered less bare"] = await least_async(
            lambda: getattr(wrapped, action)(key)  # noqa: B023
        ) - await least_async(lambda: getattr(bare, action)(key))  # noqa: B023
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5, help="ab duration per figure")
    parser.add_argument("--rounds", type=int, default=3, help="alternated rounds")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--tags", type=int, default=50, help="tags in the listed repository")
    parser.add_argument("--cpu", type=int, help="pin both servers to this core, ab to the others")
    parser.add_argument(
        "--components", action="store_true", help="also measure each part's CPU in process"
    )
    args = parser.parse_args()
    if args.cpu is not None:
        others = (os.sched_getaffinity(0) - {args.cpu}) or {args.cpu}
        os.sched_setaffinity(0, others)  # ab inherits it
    if shutil.which("ab") is None:
        print("bench_metrics: error: ab (apache2-utils) is not installed", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="bench-metrics-"))
    try:
        seed = work / "seed"
        with bundled_registry(seed) as registry:
            seed_tags(registry.url, args.tags)
            image = make_image([{"bench": b"head me"}])
            push_image(registry.url, "bench/head", "v1", image)
        layers = seed / "docker/registry/v2/repositories/bench/head/_layers/sha256"
        layer = sorted(p.name for p in layers.iterdir())[0]  # a blob linked to bench/head
        roots = {name: work / name for name in ("plain", "metrics")}
        for root in roots.values():
            shutil.copytree(seed, root)
        debug = {
            "http": {"debug": {"addr": f"127.0.0.1:{free_port()}", "prometheus": {"enabled": True}}}
        }
        figures: dict[tuple[str, str], list[float]] = {}
        cpu: dict[tuple[str, str], list[float]] = {}
        with (
            bundled_registry(roots["plain"], config={"log": {"level": "info"}}) as plain,
            bundled_registry(
                roots["metrics"], config={"log": {"level": "info"}, **debug}
            ) as metered,
        ):
            servers = {"plain": plain, "metrics": metered}
            for server in servers.values():
                pin(server.process.pid, args.cpu)
            for number in range(args.rounds):
                order = list(servers.items())
                for name, server in order if number % 2 == 0 else order[::-1]:
                    url = server.url
                    for what, path, head in (
                        ("HEAD blob", f"/v2/bench/head/blobs/sha256:{layer}", True),
                        ("tags list", "/v2/bench/tagged/tags/list", False),
                    ):
                        used = cpu_seconds(server.process.pid)
                        rate, done = ab(
                            url + path,
                            head=head,
                            concurrency=args.concurrency,
                            seconds=args.seconds,
                        )
                        used = cpu_seconds(server.process.pid) - used
                        figures.setdefault((what, name), []).append(rate)
                        cpu.setdefault((what, name), []).append(1e6 * used / done)
        print(
            f"medians of {args.rounds} alternated rounds of {args.seconds} s, ab -k "
            f"c={args.concurrency}; {os.cpu_count()} cores, load average "
            f"{os.getloadavg()[0]:.2f} at the end"
        )
        for what in ("HEAD blob", "tags list"):
            plain_rate = statistics.median(figures[(what, "plain")])
            metered_rate = statistics.median(figures[(what, "metrics")])
            cost = 100 * (1 - metered_rate / plain_rate)
            plain_cpu = statistics.median(cpu[(what, "plain")])
            metered_cpu = statistics.median(cpu[(what, "metrics")])
            cpu_cost = 100 * (1 - plain_cpu / metered_cpu)
            print(
                f"{what:10}: without {plain_rate:6.0f} req/s {plain_cpu:5.0f} µs CPU/req, "
                f"with metrics {metered_rate:6.0f} req/s {metered_cpu:5.0f} µs CPU/req; "
                f"cost {cost:+.1f}% of the rate, {cpu_cost:+.1f}% by CPU"
            )
        if args.components:
            with open(os.devnull, "w") as sink:
                parts = asyncio.run(components(roots["plain"], sink))
            print("\nwhat the metrics add to one request (least CPU over 15 batches, in process):")
            for what, micros in parts.items():
                print(f"  {what:62} {micros:5.2f} µs")
            answer = sum(v for k, v in parts.items() if "storage" not in k)
            operations = sum(v for k, v in parts.items() if "storage" in k)  # a link, a stat
            for what, extra in (("HEAD blob", answer + operations), ("tags list", answer)):
                base = statistics.median(cpu[(what, "plain")])
                print(
                    f"  {what}: {extra:.1f} µs of the {base:.0f} µs CPU a request takes here: "
                    f"{100 * extra / base:.1f}%"
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
