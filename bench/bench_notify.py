#!/usr/bin/env python3
"""What ``notifications.endpoints`` adds to a push (issue 24: "notifications add no latency to
a push: queued, never in the request path").

Three bundled registries on copies of one seeded storage: without notifications, with an
endpoint whose sink answers 200 at once, and with one whose sink never answers (each request
hangs until the endpoint's timeout). A push's last step, the manifest PUT that makes the tag
(one event each, written to the journal in the storage before the answer, as the README says),
is timed one request at a time over a kept-alive connection, ``--puts`` a round, in alternated
rounds; then the same PUTs from ``--concurrency`` threads for the rate. Medians of the rounds,
with each server's figure against the one without notifications from the same run.

``--baseline DIR`` (a checkout of the code to compare with, e.g. ``git worktree add DIR main``)
adds that code's registries with the same two sinks to the same alternated rounds: before and
after in one run, on one machine load. After its round each server is left to go idle (its
deliverer sends the round's backlog) before the next one is timed: otherwise the server timed
after an answering one pays for that one's delivery. The number of envelopes the answering
sink got says how well the delivery batches (one POST per push competes with the pushes).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.helpers.servers import RunningRegistry, bundled_registry  # noqa: E402
from tests.helpers.sink import Behaviour, webhook_sink  # noqa: E402
from tui.imagegen import make_image, push_image  # noqa: E402

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
REPOSITORY = "bench/pushed"


def endpoint(url: str) -> dict[str, object]:
    return {
        "notifications": {
            "endpoints": [
                {"name": "bench", "url": url, "timeout": "2s", "threshold": 3, "backoff": "1s"}
            ]
        }
    }


def manifest_of(registry: RunningRegistry) -> bytes:
    answer = httpx.get(
        f"{registry.url}/v2/{REPOSITORY}/manifests/v1", headers={"Accept": MANIFEST}, timeout=30
    )
    answer.raise_for_status()
    return answer.content


def put_one(client: httpx.Client, url: str, tag: str, body: bytes) -> float:
    started = time.perf_counter()
    answer = client.put(
        f"{url}/v2/{REPOSITORY}/manifests/{tag}", content=body, headers={"Content-Type": MANIFEST}
    )
    elapsed = time.perf_counter() - started
    if answer.status_code != 201:
        raise RuntimeError(f"PUT {tag}: {answer.status_code} {answer.text[:200]}")
    return elapsed


def device_stat(path: Path) -> Path | None:
    """The block device statistics (``/sys/dev/block/M:m/stat``) of the disk holding ``path``,
    where Linux shows them with the flush counters (kernel 5.5 or later)."""
    device = os.stat(path).st_dev
    stat = Path(f"/sys/dev/block/{os.major(device)}:{os.minor(device)}/stat")
    try:
        fields = stat.read_text().split()
    except OSError:
        return None
    return stat if len(fields) >= 17 else None


def disk_counts(stat: Path | None) -> tuple[int, int]:
    """Writes completed and cache flushes completed by the disk so far (the whole disk: other
    processes' count too, alike for every server of the alternated rounds)."""
    if stat is None:
        return 0, 0
    fields = stat.read_text().split()
    return int(fields[4]), int(fields[15])


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds the process ``pid`` used so far (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def settle(pid: int, limit: float = 5.0) -> float:
    """Wait until the server ``pid`` is idle (under 10 ms of CPU in 200 ms: its deliverer
    has sent what the round left, its background work ended), ``limit`` seconds at most; the
    seconds waited. The next server's round is then not timed beside this one's tail."""
    started = time.perf_counter()
    while time.perf_counter() - started < limit:
        used = cpu_seconds(pid)
        time.sleep(0.2)
        if cpu_seconds(pid) - used < 0.01:
            break
    return time.perf_counter() - started


def latencies(url: str, prefix: str, body: bytes, count: int) -> list[float]:
    with httpx.Client(timeout=30) as client:
        return [put_one(client, url, f"{prefix}-{n}", body) for n in range(count)]


def rate(url: str, prefix: str, body: bytes, count: int, threads: int) -> float:
    """PUTs per second from ``threads`` threads, ``count`` in all."""
    per_thread = max(1, count // threads)

    def work(index: int) -> None:
        with httpx.Client(timeout=30) as client:
            for n in range(per_thread):
                put_one(client, url, f"{prefix}-{index}-{n}", body)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return per_thread * threads / (time.perf_counter() - started)


@contextmanager
def servers(
    work: Path, seed: Path, sink_url: str, hang_url: str, baseline: Path | None
) -> Iterator[dict[str, RunningRegistry]]:
    """The registries of the run: this code's, and ``baseline``'s with the same sinks."""
    ours = {"PYTHONPATH": str(REPO_ROOT)}
    configs: dict[str, tuple[dict[str, object], dict[str, str]]] = {
        "without notifications": ({}, ours),
        "sink answering": (endpoint(sink_url), ours),
        "sink hanging": (endpoint(hang_url), ours),
    }
    if baseline is not None:
        theirs = {"PYTHONPATH": str(baseline.resolve())}
        configs["baseline, sink answering"] = (endpoint(sink_url + "-baseline"), theirs)
        configs["baseline, sink hanging"] = (endpoint(hang_url), theirs)
    with ExitStack() as stack:
        running = {}
        for index, (name, (config, env)) in enumerate(configs.items()):
            root = work / f"root{index}"
            shutil.copytree(seed, root)
            running[name] = stack.enter_context(
                bundled_registry(root, config={"log": {"level": "warn"}, **config}, env=env)
            )
        yield running


Components = dict[str, tuple[list[float], list[tuple[int, int]]]]
"""Per mode: each commit's seconds, and the disk's writes and cache flushes meanwhile."""


async def _components(rounds: int, puts: int, stat: Path | None) -> Components:
    """In one process, on the filesystem driver: a manifest's commit alone, and overlapped with
    its event's journal write as an object (file and directory fsync: the code before) and as a
    record of a preallocated log (one fdatasync: now), one PUT of each in turn."""
    from embedded_registry.notifications.journal import Journal
    from embedded_registry.notifications.recordlog import LogJournal
    from embedded_registry.storage.driver.filesystem import FilesystemDriver
    from embedded_registry.storage.driver.records import record_files
    from embedded_registry.storage.factory import driver_storage

    root = Path(tempfile.mkdtemp(prefix="bench-notify-components-"))
    try:
        driver = FilesystemDriver(root)
        store = driver_storage(driver)
        config = b"{}"
        digest = f"sha256:{hashlib.sha256(config).hexdigest()}"
        hexa = digest.removeprefix("sha256:")
        await driver.put_content(f"/docker/registry/v2/blobs/sha256/{hexa[:2]}/{hexa}/data", config)
        link = f"/docker/registry/v2/repositories/{REPOSITORY}/_layers/sha256/{hexa}/link"
        await driver.put_content(link, digest.encode())
        described = {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 2}
        body = json.dumps(
            {"schemaVersion": 2, "mediaType": MANIFEST, "config": {**described, "digest": digest}}
        ).encode()
        files = record_files(driver)
        assert files is not None
        journals: dict[str, Journal | None] = {
            "commit alone": None,
            "with an object": Journal(driver, "0" * 32),
            "with a record": LogJournal(driver, "1" * 32, files),
        }
        for journal in journals.values():
            if journal is not None:
                await journal.start(["bench"])
        target = {"mediaType": MANIFEST, "digest": digest, "repository": REPOSITORY, "tag": "t"}
        events = [{"id": "0" * 36, "action": "push", "target": target}]
        times: Components = {mode: ([], []) for mode in journals}
        number = 0
        for _ in range(rounds * puts):
            order = list(journals.items())
            for mode, journal in order if number % 2 == 0 else order[::-1]:
                number += 1
                counts = disk_counts(stat)
                started = time.perf_counter()
                writing = None
                if journal is not None:
                    writing = asyncio.create_task(journal.write(journal.segment("bench", events)))
                await store.put_manifest(REPOSITORY, f"t{number}", body, MANIFEST)
                if writing is not None:
                    await writing
                times[mode][0].append(time.perf_counter() - started)
                after = disk_counts(stat)
                times[mode][1].append((after[0] - counts[0], after[1] - counts[1]))
        return times
    finally:
        shutil.rmtree(root, ignore_errors=True)


def components(rounds: int, puts: int) -> int:
    work = Path(tempfile.gettempdir())
    stat = device_stat(work)
    times = asyncio.run(_components(rounds, puts, stat))
    print(
        f"manifest commit in one process (filesystem driver, no HTTP), medians of "
        f"{rounds * puts} commits of each, in turn; load average {os.getloadavg()[0]:.2f} "
        "at the end"
    )
    base = statistics.median(times["commit alone"][0])
    for mode, (found, disk) in times.items():
        one = statistics.median(found)
        writes = sum(w for w, _ in disk) / len(disk)
        flushes = sum(f for _, f in disk) / len(disk)
        print(
            f"{mode:14}: {one * 1e3:6.2f} ms; {one / base:.2f}x the commit alone"
            + (f"; disk writes {writes:.1f}, cache flushes {flushes:.1f} a commit" if stat else "")
        )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--puts", type=int, default=300, help="manifest PUTs a round")
    parser.add_argument("--rounds", type=int, default=5, help="alternated rounds")
    parser.add_argument("--concurrency", type=int, default=8, help="threads for the rate")
    parser.add_argument(
        "--baseline", type=Path, help="a checkout of the code to compare with, in the same run"
    )
    parser.add_argument(
        "--components",
        action="store_true",
        help="only the journal write against the manifest's commit, in one process",
    )
    args = parser.parse_args()
    if args.components:
        return components(args.rounds, min(args.puts, 50))
    # The servers run `python -m embedded_registry`, which puts the working directory first on
    # their path: from a neutral one, each runs the code its PYTHONPATH names.
    os.chdir(tempfile.gettempdir())
    work = Path(tempfile.mkdtemp(prefix="bench-notify-"))
    try:
        seed = work / "seed"
        with bundled_registry(seed) as registry:
            push_image(registry.url, REPOSITORY, "v1", make_image([{"etc/motd": b"push me"}]))
            body = manifest_of(registry)
        with webhook_sink() as sink:
            sink.answer("/hang", Behaviour(hang=True))
            urls = sink.url("/events"), sink.url("/hang")
            with servers(work, seed, *urls, args.baseline) as running:
                single: dict[str, list[float]] = {}
                tails: dict[str, list[float]] = {}
                rates: dict[str, list[float]] = {}
                disk: dict[str, list[tuple[int, int]]] = {}
                cpu: dict[str, list[float]] = {}
                stat = device_stat(work)
                order = list(running.items())
                for number in range(args.rounds):
                    for name, server in order if number % 2 == 0 else order[::-1]:
                        counts, used = disk_counts(stat), cpu_seconds(server.process.pid)
                        times = latencies(server.url, f"r{number}", body, args.puts)
                        after = disk_counts(stat)
                        cpu.setdefault(name, []).append(cpu_seconds(server.process.pid) - used)
                        disk.setdefault(name, []).append(
                            (after[0] - counts[0], after[1] - counts[1])
                        )
                        single.setdefault(name, []).append(statistics.median(times))
                        tails.setdefault(name, []).append(statistics.quantiles(times, n=100)[98])
                        rates.setdefault(name, []).append(
                            rate(server.url, f"c{number}", body, args.puts, args.concurrency)
                        )
                        settle(server.process.pid)
                envelopes = {
                    path: [len(got.events) for got in sink.received if got.path == path]
                    for path in ("/events", "/events-baseline")
                }
        print(
            f"manifest PUT (a push's last step), medians of {args.rounds} alternated rounds of "
            f"{args.puts} PUTs; {os.cpu_count()} cores, load average "
            f"{os.getloadavg()[0]:.2f} at the end"
        )
        base_single = statistics.median(single["without notifications"])
        base_rate = statistics.median(rates["without notifications"])
        for name in running:
            one = statistics.median(single[name])
            tail = statistics.median(tails[name])
            many = statistics.median(rates[name])
            writes = sum(w for w, _ in disk[name]) / (args.puts * args.rounds)
            flushes = sum(f for _, f in disk[name]) / (args.puts * args.rounds)
            used = sum(cpu[name]) / (args.puts * args.rounds)
            print(
                f"{name:22}: one at a time {one * 1e3:6.2f} ms (p99 {tail * 1e3:6.2f} ms), "
                f"{args.concurrency} threads {many:6.0f} PUT/s; "
                f"{one / base_single:.2f}x the latency, {many / base_rate:.2f}x the rate; "
                f"a PUT one at a time: server CPU {used * 1e3:.2f} ms"
                + (f", disk writes {writes:.1f}, cache flushes {flushes:.1f}" if stat else "")
            )
        for path, sizes in envelopes.items():
            if sizes:
                print(
                    f"the answering sink ({path}) received {sum(sizes)} events in "
                    f"{len(sizes)} envelopes ({sum(sizes) / len(sizes):.1f} a POST)"
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
