"""Benchmark: the explorer on a big bundled registry (10,000 repositories, 100,000 tags).

Writes the storage directly in Distribution's layout (one small image shared by every tag, so
the tree is what is big, not the blobs), starts the bundled registry on it, then drives the real
app headless (``run_test``) and measures:

* time to the first painted catalog (app start until the first catalog page is in the tree),
* filter keystroke latency (a key event in the ``/`` filter until the rebuilt tree is rendered
  in a frame; p50, p95 and max over typing a name and erasing it again, once with the
  namespaces closed and once with all 10,000 repositories open),
* peak memory of the app's process (the registry runs in its own process).

* one repository with 10,000 tags (each its own image: dates and sizes differ), opened as a
  user would: the time until the tags are listed and painted, then until every tag's details
  are in while the user sorts by date and then by size (rows move into order every second),
  then sorting by date and by size once all is in: the longest and the p99 event-loop stall
  of each phase (a 5 ms tick that comes late: no key, no frame meanwhile), each sort
  keystroke until painted, the app's CPU time, and the process's peak memory meanwhile.

The big repository is opened on the bundled registry and on Debian's ``docker-registry``
(Distribution 2.8, serving the same directory), a fresh server of each per round, in alternated
rounds (``--rounds``): medians of each and the ratio. On the bundled registry one request (its
``_regtui/tags`` report) carries every row's details; on Distribution the app reads each tag's
manifest and config (pipelined from 1,000 tags: tui/client/bulk.py).

Distribution runs as an operator has it: with the ``storage.cache.blobdescriptor: inmemory`` of
the stock config.yml (Debian's /etc/docker/registry/config.yml, the docker image's, upstream's
cmd/registry/config-example.yml), which the tests' config leaves out; its access log stays off
(as in the tests: a log line per request only adds to the peer's CPU). Measured here on a 2-core
machine, it makes no difference past the noise: ~2 ms of Distribution's CPU a manifest GET,
~5 ms a blob GET with or without it (each blob GET reads through a fresh 4 MiB buffer,
registry/storage/filereader.go). So 10,000 tags cost Distribution ~70 s of CPU: ~35 s on 2
cores whatever the client does; the 15 s target needs ~5 free cores.

Targets (issue 12): first paint < 0.5 s, filter keystroke p95 < 50 ms, memory < 200 MB.
Issue 22, one repository of 10,000 tags: listed and painted within 1 s and every detail in
within 5 s on the bundled registry, within 15 s on Distribution; no event-loop stall over
100 ms while they load.

    python bench/bench_tui.py                    # 10,000 repos x 10 tags
    python bench/bench_tui.py --repos 1000 --tags 5
    python bench/bench_tui.py --storage DIR       # keep the storage in DIR, reuse it next time
    python bench/bench_tui.py --repos 100 --tags 10 --big-tags 2000   # a quick run
    python bench/bench_tui.py --repos 0 --big-tags 10000              # only the big repository
    python bench/bench_tui.py --repos 0 --big-tags 10000 --trace-stalls   # where it stalled
    python bench/bench_tui.py --repos 0 --big-tags 10000 --server bundled --rounds 1

On a shared machine the wall-clock stalls include waiting for a core; the loop's CPU time
between ticks ("CPU of the loop") is the app's own part and the steadier figure.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import cProfile
import gc
import hashlib
import json
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from textual import events  # noqa: E402

from embedded_registry.storage.paths import Layout  # noqa: E402
from tui.app import AppSettings, make_app  # noqa: E402
from tui.commands.connect import local_registry  # noqa: E402
from tui.logic.tags import TagSort  # noqa: E402
from tui.screens.registry import RegistryScreen  # noqa: E402
from tui.screens.repository import RepositoryScreen  # noqa: E402

TARGET_FIRST_PAINT = 0.5
TARGET_FILTER = 0.050
TARGET_MEMORY_MB = 200
TARGET_STALL = 0.100
TARGET_LIST = 1.0
"""Listed and painted, either registry."""
TARGET_DETAILS = {"bundled": 5.0, "distribution": 15.0}
SERVERS = ("bundled", "distribution")
STOCK_DISTRIBUTION = {"storage": {"cache": {"blobdescriptor": "inmemory"}}}
"""What the stock config.yml adds to the tests' (see the module)."""
BIG_REPOSITORY = "big/tags"
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _blob(layout: Layout, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    _write(layout.blob_data(digest), data)
    return digest


def _manifest(config_digest: str, config_size: int, layer_digest: str, layer_size: int) -> bytes:
    """An OCI image manifest of one config and one layer."""
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": config_size,
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": layer_digest,
                    "size": layer_size,
                }
            ],
        }
    ).encode()


def write_storage(root: Path, repos: int, tags: int) -> list[str]:
    layout = Layout(root)
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {}}).encode()
    layer = b"\x1f\x8b" + b"\0" * 64
    config_digest = _blob(layout, config)
    layer_digest = _blob(layout, layer)
    manifest = _manifest(config_digest, len(config), layer_digest, len(layer))
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


def write_big_repository(root: Path, tags: int) -> None:
    """``tags`` tags in one repository, each its own image (created a minute apart, sizes
    varying), sharing one layer blob (its declared size varies: only the manifest is read)."""
    layout = Layout(root)
    layer = b"\x1f\x8b" + b"\0" * 64
    layer_digest = _blob(layout, layer)
    _write(layout.layer_link(BIG_REPOSITORY, layer_digest), layer_digest.encode())
    for n in range(tags):
        created = (EPOCH + timedelta(minutes=n)).strftime("%Y-%m-%dT%H:%M:%SZ")
        config = json.dumps(
            {"architecture": "amd64", "os": "linux", "created": created, "rootfs": {}, "n": n}
        ).encode()
        config_digest = _blob(layout, config)
        manifest = _manifest(config_digest, len(config), layer_digest, 1000 + (n * 7919) % 100_000)
        digest = _blob(layout, manifest)
        link = digest.encode()
        tag = f"build-{n:05d}"
        _write(layout.layer_link(BIG_REPOSITORY, config_digest), config_digest.encode())
        _write(layout.revision_link(BIG_REPOSITORY, digest), link)
        _write(layout.tag_current_link(BIG_REPOSITORY, tag), link)
        _write(layout.tag_index_link(BIG_REPOSITORY, tag, digest), link)


class StallMeter:
    """How late a 5 ms tick of the event loop comes, per phase: the longest and the 99th
    percentile delay is how long the screen was frozen (no key, no frame in the meantime)."""

    TICK = 0.005

    def __init__(self, *, trace: bool = False) -> None:
        self.phase = "idle"
        self.delays: dict[str, list[float]] = {}
        self.busy: dict[str, list[float]] = {}
        """CPU time of the loop's thread between ticks: the part of a stall that is the app's
        own work (on a shared machine the rest is waiting for a core)."""
        self._task: asyncio.Task[None] | None = None
        self._last = time.perf_counter()
        self.trace = trace
        """Sample the event loop's stack every 10 ms while it is 40 ms late (``--trace-stalls``)."""
        self.stacks: collections.Counter[tuple[str, str]] = collections.Counter()
        self._stopped = threading.Event()
        self.gc_pauses: dict[str, float] = {}
        """The longest garbage collection per phase, CPU time (part of the stalls)."""
        self._gc_started = 0.0

    async def _tick(self) -> None:
        self._last = last = time.perf_counter()
        last_cpu = time.thread_time()
        while True:
            await asyncio.sleep(self.TICK)
            self._last = now = time.perf_counter()
            cpu = time.thread_time()
            self.delays.setdefault(self.phase, []).append(max(0.0, now - last - self.TICK))
            self.busy.setdefault(self.phase, []).append(cpu - last_cpu)
            last, last_cpu = now, cpu

    def _sample(self, thread: int) -> None:
        while not self._stopped.wait(0.01):
            frame = sys._current_frames().get(thread)
            if frame is not None and time.perf_counter() - self._last > 0.04:
                stack = traceback.extract_stack(frame)[-12:]
                where = " < ".join(
                    f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in reversed(stack)
                )
                self.stacks[self.phase, where] += 1

    def _gc_timer(self, stage: str, info: dict[str, int]) -> None:
        if stage == "start":
            self._gc_started = time.thread_time()
        else:
            pause = time.thread_time() - self._gc_started
            self.gc_pauses[self.phase] = max(self.gc_pauses.get(self.phase, 0.0), pause)

    def start(self) -> None:
        gc.callbacks.append(self._gc_timer)
        self._task = asyncio.create_task(self._tick())
        if self.trace:
            thread = threading.get_ident()
            threading.Thread(target=self._sample, args=(thread,), daemon=True).start()

    async def stop(self) -> None:
        gc.callbacks.remove(self._gc_timer)
        self._stopped.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for phase in self.delays:
            top = [(key, count) for key, count in self.stacks.most_common() if key[0] == phase]
            for (_, where), count in top[:6]:
                print(f"stalled {count * 10} ms in {phase}: {where}", file=sys.stderr)

    def worst(self, phase: str, *, cpu: bool = False) -> tuple[float, float]:
        """(max, p99) of the delays (or of the busy CPU time) seen in ``phase``."""
        delays = sorted((self.busy if cpu else self.delays).get(phase, [0.0]))
        return delays[-1], delays[min(len(delays) - 1, int(len(delays) * 0.99))]


def peak_rss_mb() -> float:
    """Peak resident memory of this process since the last :func:`reset_peak_rss`."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_rss() -> None:
    """Start the peak over (Linux: ``5`` into clear_refs); elsewhere the peak stays the
    process's whole-life peak."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


async def sort_until(pilot: Any, screen: RepositoryScreen, key: TagSort) -> dict[str, float]:
    """Press ``s`` until the table is sorted by ``key``: each keystroke (sent through the
    driver, as a terminal's) until the screen has drawn a frame with the new order."""
    app = pilot.app
    driver = app._driver
    assert driver is not None
    frames = 0
    refresh = screen._compositor_refresh

    def counting_refresh() -> None:
        nonlocal frames
        refresh()
        frames += 1

    screen._compositor_refresh = counting_refresh  # type: ignore[method-assign]
    times: dict[str, float] = {}
    try:
        for _ in range(len(TagSort)):
            if screen.sort_key is key:
                break
            was = screen.sort_key
            event = events.Key("s", "s")
            event.set_sender(app)
            before = time.perf_counter()
            driver.send_message(event)
            while screen.sort_key is was:  # noqa: ASYNC110 (a frame is waited for, not an event)
                await asyncio.sleep(0.0005)
            sorted_frames = frames
            while frames == sorted_frames:  # noqa: ASYNC110
                await asyncio.sleep(0.0005)
            times[str(screen.sort_key)] = time.perf_counter() - before
            await pilot.pause(0.05)  # a user's gap between keys
    finally:
        del screen._compositor_refresh
    assert screen.sort_key is key, screen.sort_key
    return times


def check_order(screen: RepositoryScreen, key: TagSort, tags: int) -> None:
    """The table is in ``key`` order, newest or biggest first, every row read."""
    shown = [str(row.key.value) for row in screen.table.ordered_rows]
    assert len(shown) == tags, (len(shown), tags)
    rows = [screen.rows[tag] for tag in shown]
    values = [row.created if key is TagSort.DATE else row.size for row in rows]
    assert None not in values, "a row without its details"
    assert values == sorted(values, reverse=True), f"not in {key} order"  # type: ignore[type-var]


async def measure_big_repository(host: str, tags: int, *, trace: bool) -> dict[str, float]:
    """Open the repository with ``tags`` tags; while its details load, sort it by date, then by
    size (as a user would), and once they are in, by date and by size again. The event loop's
    stalls in each phase, the time of each phase and of each sort keystroke, peak memory."""
    app = make_app(AppSettings(registry=host, insecure=True))
    meter = StallMeter(trace=trace)
    result: dict[str, float] = {}
    async with app.run_test(size=(120, 40)) as pilot:
        registry = app.screen
        assert isinstance(registry, RegistryScreen)
        while not registry.catalog_complete:
            await pilot.pause(0.02)
        gc.collect()
        reset_peak_rss()
        meter.start()
        meter.phase = "list"
        started = time.perf_counter()
        cpu = time.process_time()
        registry.open_repository(BIG_REPOSITORY)
        while not isinstance(app.screen, RepositoryScreen):
            await pilot.pause(0.01)
        screen = app.screen
        painted = asyncio.get_running_loop().create_future()
        done = asyncio.get_running_loop().create_future()

        async def watch() -> None:
            """When every tag is in the table (listed and painted), and when every detail
            is (a 5 ms poll beside the app: the sorts below do not delay the reading)."""
            while len(screen.rows) < tags or screen.table.row_count < tags:  # noqa: ASYNC110
                await asyncio.sleep(0.005)
            painted.set_result(time.perf_counter() - started)
            result["list_cpu_s"] = time.process_time() - cpu
            while not (screen.details_done and not screen.table.adding):  # noqa: ASYNC110
                await asyncio.sleep(0.005)
            done.set_result(time.perf_counter() - started)

        watcher = asyncio.create_task(watch())
        await painted
        await pilot.pause()  # painted
        result["list_s"] = painted.result()
        meter.phase = "load"
        # While the details load: by date, then (a second later) by size.
        during = await sort_until(pilot, screen, TagSort.DATE)
        await pilot.pause(1.0)
        during |= await sort_until(pilot, screen, TagSort.SIZE)
        await done
        await watcher
        result["details_s"] = done.result()
        result["cpu_s"] = time.process_time() - cpu
        await pilot.pause()
        check_order(screen, TagSort.SIZE, tags)
        # After: by date, then by size again (through name, version, pushed).
        meter.phase = "sort"
        after = await sort_until(pilot, screen, TagSort.DATE)
        check_order(screen, TagSort.DATE, tags)
        after |= await sort_until(pilot, screen, TagSort.SIZE)
        check_order(screen, TagSort.SIZE, tags)
        meter.phase = "idle"
        await meter.stop()
        result["peak_memory_mb"] = peak_rss_mb()
    for phase in ("list", "load", "sort"):
        result[f"{phase}_stall_max_s"], result[f"{phase}_stall_p99_s"] = meter.worst(phase)
        result[f"{phase}_busy_max_s"], result[f"{phase}_busy_p99_s"] = meter.worst(phase, cpu=True)
        result[f"{phase}_gc_max_s"] = meter.gc_pauses.get(phase, 0.0)
    result["sort_date_during_s"] = during["date"]
    result["sort_size_during_s"] = during["size"]
    result["sort_date_after_s"] = after["date"]
    result["sort_size_after_s"] = after["size"]
    return result


async def measure(host: str, repos: int, *, profile: Path | None = None) -> dict[str, float]:
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
        # Each keystroke enters through the driver like a real one (Input -> Changed -> the
        # screen); the clock stops when the tree has rendered a line of the rebuilt rows in a
        # frame composed by the screen's own refresh timer (no pilot idle-waits in the way).
        keys = [("minus" if char == "-" else char) for char in query]
        keys += ["backspace"] * len(query)
        profiler = cProfile.Profile() if profile else None
        tree = screen.repo_tree
        slowest: list[tuple[float, str]] = []
        driver = app._driver
        assert driver is not None

        async def type_and_erase(label: str) -> None:
            typed = ""
            for key in keys:
                typed = typed[:-1] if key == "backspace" else typed + query[len(typed)]
                generation = tree.generation
                char = "-" if key == "minus" else (None if key == "backspace" else key)
                event = events.Key(key, char)
                event.set_sender(app)
                if profiler:
                    profiler.enable()
                before = time.perf_counter()
                driver.send_message(event)
                # Polling at 0.5 ms: what is waited for is a frame, not an event to await.
                while not (  # noqa: ASYNC110
                    screen.shown_query == typed
                    and tree.generation > generation
                    and tree.painted_generation == tree.generation
                ):
                    await asyncio.sleep(0.0005)
                latencies.append(time.perf_counter() - before)
                slowest.append((latencies[-1], f"{label} “{typed}”"))
                if profiler:
                    profiler.disable()
                assert bar.value == typed, (bar.value, typed)
                await pilot.pause(0.05)  # a typist's gap between keys

        # Pass 1: namespaces closed (100 rows). Pass 2: the user opened every namespace, so
        # clearing the filter brings back 10,100 rows (the widget still draws only one screen).
        await type_and_erase("closed")
        await pilot.press("escape")
        await pilot.pause()
        if len(tree.rows) <= repos:  # a small tree opens every namespace by itself
            tree.action_toggle_all()
        assert len(tree.rows) > repos, len(tree.rows)
        await pilot.press("slash")
        await pilot.pause()
        await type_and_erase("all open")
        if profiler and profile:
            profiler.dump_stats(profile)
    slow = ", ".join(f"{text} {seconds * 1000:.0f} ms" for seconds, text in sorted(slowest)[-3:])
    print(f"slowest keystrokes: {slow}", flush=True)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "first_paint_s": first_paint,
        "full_catalog_s": full_catalog,
        "filter_median_ms": statistics.median(latencies) * 1000,
        "filter_p95_ms": statistics.quantiles(latencies, n=20)[-1] * 1000,
        "filter_max_ms": max(latencies) * 1000,
        "peak_memory_mb": peak_mb,
    }


def prepare_storage(root: Path, repos: int, tags: int, big: int) -> None:
    """Write the storage under ``root`` unless a previous run left the same one there."""
    marker = root / "regtui-bench.json"
    wanted = {"repos": repos, "tags": tags, "big": big}
    if marker.is_file() and json.loads(marker.read_text()) == wanted:
        print(f"storage: reusing {repos:,} repositories, {repos * tags:,} tags", flush=True)
        return
    started = time.perf_counter()
    write_storage(root, repos, tags)
    if big:
        write_big_repository(root, big)
    marker.write_text(json.dumps(wanted))
    print(
        f"storage: {repos:,} repositories, {repos * tags:,} tags "
        f"written in {time.perf_counter() - started:.1f} s",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repos", type=int, default=10_000)
    parser.add_argument("--tags", type=int, default=10)
    parser.add_argument(
        "--big-tags", type=int, default=10_000, help="tags of the one big repository (0: none)"
    )
    parser.add_argument(
        "--storage",
        type=Path,
        help="keep the generated storage in this directory and reuse it next time "
        "(writing 100,000 tags takes a minute)",
    )
    parser.add_argument(
        "--profile", type=Path, help="write a cProfile of the filter keystrokes to this file"
    )
    parser.add_argument(
        "--server",
        choices=(*SERVERS, "both"),
        default="both",
        help="where the big repository is opened (both: alternated rounds, and the ratio)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the big repository")
    parser.add_argument(
        "--trace-stalls",
        action="store_true",
        help="print where the event loop was while it stalled (big repository)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="regtui-bench-tui-") as tmp:
        root = args.storage or Path(tmp) / "registry"
        prepare_storage(root, args.repos, args.tags, args.big_tags)
        repos = args.repos + (1 if args.big_tags else 0)
        result: dict[str, float] = {}
        if args.repos:
            with (
                open(os.devnull, "w", encoding="utf-8") as log,
                local_registry(root, log=log) as reg,
            ):
                result = asyncio.run(measure(reg.host, repos, profile=args.profile))
        servers = SERVERS if args.server == "both" else (args.server,)
        big_rounds: dict[str, list[dict[str, float]]] = {server: [] for server in servers}
        for number in range(args.rounds if args.big_tags else 0):
            # Alternated: who goes first changes every round (a fresh server each time).
            for server in servers if number % 2 == 0 else tuple(reversed(servers)):
                with running(server, root) as (host, pid):
                    before = process_cpu_s(pid)
                    measured = asyncio.run(
                        measure_big_repository(host, args.big_tags, trace=args.trace_stalls)
                    )
                    measured["server_cpu_s"] = process_cpu_s(pid) - before
                print(f"round {number + 1}, {server}: ", end="")
                print_big(args.big_tags, measured)
                big_rounds[server].append(measured)
    checks: list[tuple[str, float, float, str]] = []
    if result:
        checks += [
            ("first painted catalog", result["first_paint_s"], TARGET_FIRST_PAINT, "s"),
            ("filter keystroke (p95)", result["filter_p95_ms"] / 1000, TARGET_FILTER, "s"),
            ("peak memory", result["peak_memory_mb"], TARGET_MEMORY_MB, "MB"),
        ]
        print(f"whole catalog loaded: {result['full_catalog_s']:.2f} s")
        print(
            f"filter keystroke: p50 {result['filter_median_ms']:.1f} ms, "
            f"p95 {result['filter_p95_ms']:.1f} ms, max {result['filter_max_ms']:.1f} ms"
        )
    medians = {
        server: {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
        for server, rounds in big_rounds.items()
        if rounds
    }
    for server, big in medians.items():
        print(f"median of {len(big_rounds[server])} rounds, {server}: ", end="")
        print_big(args.big_tags, big)
        loading = max(big["list_stall_max_s"], big["load_stall_max_s"])
        checks += [
            (f"{server}: listed, painted", big["list_s"], TARGET_LIST, "s"),
            (f"{server}: every detail", big["details_s"], TARGET_DETAILS[server], "s"),
            (f"{server}: stall loading", loading, TARGET_STALL, "s"),
        ]
    if len(medians) == 2:
        ours, peer = medians["bundled"], medians["distribution"]
        print(
            "bundled / Distribution: listed and painted "
            f"{ours['list_s'] / peer['list_s']:.2f}x, every detail "
            f"{ours['details_s'] / peer['details_s']:.2f}x the time"
        )
    ok = True
    for name, value, target, unit in checks:
        passed = value < target
        ok &= passed
        verdict = "OK" if passed else "MISSED"
        print(f"{name:<24} {value:8.3f} {unit}  (target < {target} {unit})  {verdict}")
    return 0 if ok else 1


@contextlib.contextmanager
def running(server: str, root: Path) -> Iterator[tuple[str, int]]:
    """A fresh ``server`` (bundled or Distribution) on ``root``; its host and process id."""
    if server == "bundled":
        with open(os.devnull, "w", encoding="utf-8") as log, local_registry(root, log=log) as reg:
            yield reg.host, reg.process.pid
        return
    from tests.helpers.servers import distribution_registry

    os.environ.pop("AWS_CA_BUNDLE", None)  # Debian's docker-registry panics with it set
    with distribution_registry(root, config=STOCK_DISTRIBUTION) as registry:
        yield registry.host, registry.process.pid


def process_cpu_s(pid: int) -> float:
    """CPU time (user and system) of process ``pid`` so far (Linux; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def print_big(tags: int, big: dict[str, float]) -> None:
    def ms(key: str) -> str:
        return f"{big[key] * 1000:.0f} ms"

    print(
        f"{tags:,} tags in one repository: listed and painted {big['list_s']:.2f} s, every "
        f"detail in {big['details_s']:.1f} s (app CPU {big['list_cpu_s']:.2f} s listing, "
        f"{big['cpu_s']:.1f} s in all; the registry's {big['server_cpu_s']:.1f} s), "
        f"peak memory {big['peak_memory_mb']:.0f} MB"
    )
    print(
        f"  sort keystroke to paint: while loading date {ms('sort_date_during_s')}, "
        f"size {ms('sort_size_during_s')}; after date {ms('sort_date_after_s')}, "
        f"size {ms('sort_size_after_s')}"
    )
    for phase, what in (
        ("list", "listing and painting the tags"),
        ("load", "details loading (sorted by date, then size)"),
        ("sort", "sorting after the load"),
    ):
        print(
            f"  event-loop stall, {what}: max {ms(f'{phase}_stall_max_s')}, "
            f"p99 {ms(f'{phase}_stall_p99_s')} (CPU of the loop: max "
            f"{ms(f'{phase}_busy_max_s')}, p99 {ms(f'{phase}_busy_p99_s')}; longest GC, CPU "
            f"{ms(f'{phase}_gc_max_s')})"
        )


if __name__ == "__main__":
    sys.exit(main())
