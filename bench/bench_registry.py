"""Benchmark the bundled registry against CNCF Distribution (Debian's docker-registry).

Both servers run on loopback, each on its own temporary storage root, in the same run, and are
measured with the same client (aiohttp) one after the other:

* monolithic push: POST, then one streaming PUT ?digest= of the whole blob;
* chunked push: POST, PATCH chunks with Content-Range, then PUT ?digest=;
* pull: GET of the blob, streamed and discarded;
* HEAD of a blob and GET of a tags list, in requests per second, at concurrency 1 and 32.

Usage (from the repository root)::

    python bench/bench_registry.py               # 1 GiB blobs, as issue 2 asks
    python bench/bench_registry.py --size-mib 64 # a quick run

It prints a table with the ratio regtui / Distribution for every figure (higher is better for
regtui). Push and pull figures are MiB/s of blob payload.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.helpers.servers import bundled_registry, distribution_registry  # noqa: E402
from tui.imagegen import make_image, push_image  # noqa: E402

MIB = 1024 * 1024
BLOCK = hashlib.shake_256(b"regtui bench").digest(MIB)  # 1 MiB of incompressible bytes


@dataclass(frozen=True)
class SyntheticBlob:
    """``size`` bytes: a 16-byte unique prefix, then the 1 MiB block repeated; never in memory."""

    prefix: bytes
    size: int

    def chunks(self, chunk_size: int = MIB) -> list[tuple[int, int]]:
        """(offset, length) of each chunk of ``chunk_size`` bytes."""
        return [
            (offset, min(chunk_size, self.size - offset))
            for offset in range(0, self.size, chunk_size)
        ]

    def slices(self, offset: int, length: int) -> AsyncIterator[bytes]:
        """The bytes ``[offset, offset+length)`` as a stream of at most 1 MiB pieces."""

        async def generate() -> AsyncIterator[bytes]:
            position = offset
            end = offset + length
            while position < end:
                piece = self.read(position, min(MIB - position % MIB, end - position))
                position += len(piece)
                yield piece

        return generate()

    def read(self, offset: int, length: int) -> bytes:
        """At most one block's worth of bytes starting at ``offset`` (within one block)."""
        in_block = offset % MIB
        data = BLOCK[in_block : in_block + length]
        if offset < len(self.prefix):
            head = self.prefix[offset : offset + length]
            data = head + data[len(head) :]
        return data

    def digest(self) -> str:
        hasher = hashlib.sha256()
        for offset in range(0, self.size, MIB):
            hasher.update(self.read(offset, min(MIB, self.size - offset)))
        return "sha256:" + hasher.hexdigest()


@dataclass
class Server:
    name: str
    url: str


def _location(base: str, response: aiohttp.ClientResponse) -> str:
    location = response.headers["Location"]
    return location if location.startswith("http") else base + location


def _with_digest(location: str, digest: str) -> str:
    return location + ("&" if "?" in location else "?") + f"digest={digest}"


async def _expect(response: aiohttp.ClientResponse, status: int) -> None:
    if response.status != status:
        body = await response.text()
        raise RuntimeError(f"{response.method} {response.url} -> {response.status}: {body[:300]}")


async def push_monolithic(
    session: aiohttp.ClientSession, server: Server, blob: SyntheticBlob, digest: str
) -> float:
    started = time.perf_counter()
    async with session.post(f"{server.url}/v2/bench/mono/blobs/uploads/") as response:
        await _expect(response, 202)
        location = _location(server.url, response)
    headers = {"Content-Type": "application/octet-stream", "Content-Length": str(blob.size)}
    async with session.put(
        _with_digest(location, digest), data=blob.slices(0, blob.size), headers=headers
    ) as response:
        await _expect(response, 201)
    return time.perf_counter() - started


async def push_chunked(
    session: aiohttp.ClientSession, server: Server, blob: SyntheticBlob, digest: str, chunk_mib: int
) -> float:
    started = time.perf_counter()
    async with session.post(f"{server.url}/v2/bench/chunked/blobs/uploads/") as response:
        await _expect(response, 202)
        location = _location(server.url, response)
    for offset, length in blob.chunks(chunk_mib * MIB):
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Length": str(length),
            "Content-Range": f"{offset}-{offset + length - 1}",
        }
        async with session.patch(
            location, data=blob.slices(offset, length), headers=headers
        ) as response:
            await _expect(response, 202)
            location = _location(server.url, response)
    async with session.put(
        _with_digest(location, digest), headers={"Content-Length": "0"}
    ) as response:
        await _expect(response, 201)
    return time.perf_counter() - started


async def pull(session: aiohttp.ClientSession, server: Server, digest: str, size: int) -> float:
    started = time.perf_counter()
    received = 0
    async with session.get(f"{server.url}/v2/bench/mono/blobs/{digest}") as response:
        await _expect(response, 200)
        async for piece in response.content.iter_chunked(4 * MIB):
            received += len(piece)
    if received != size:
        raise RuntimeError(f"{server.name}: pulled {received} bytes, expected {size}")
    return time.perf_counter() - started


async def requests_per_second(
    session: aiohttp.ClientSession, method: str, url: str, concurrency: int, total: int
) -> float:
    """Send ``total`` requests with ``concurrency`` workers; every answer must be 200."""
    remaining = total

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            async with session.request(method, url) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"{method} {url} -> {response.status}")

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return total / (time.perf_counter() - started)


def labels(args: argparse.Namespace) -> list[tuple[str, str]]:
    """(label, unit) of every figure, in table order."""
    rows = [
        (f"push {args.size_mib} MiB monolithic", "MiB/s"),
        (f"push {args.size_mib} MiB chunked ({args.chunk_mib} MiB)", "MiB/s"),
        (f"pull {args.size_mib} MiB", "MiB/s"),
    ]
    for kind in ("HEAD blob", "GET tags/list"):
        rows += [(f"{kind} c={concurrency}", "req/s") for concurrency in args.concurrency]
    return rows


class Bench:
    """One server's client session and the figures measured against it."""

    def __init__(self, server: Server, args: argparse.Namespace) -> None:
        self.server = server
        self.args = args
        self.size = args.size_mib * MIB
        self.session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=3600),
            connector=aiohttp.TCPConnector(limit=max(args.concurrency) + 4),
        )
        self.blob_count = 0
        self.pushed: list[str] = []

    def next_blob(self) -> SyntheticBlob:
        self.blob_count += 1
        prefix = f"{self.server.name}-{self.blob_count:06d}-".encode().ljust(16, b".")
        return SyntheticBlob(prefix, self.size)

    async def push_monolithic(self) -> float:
        blob = self.next_blob()
        digest = blob.digest()
        seconds = await push_monolithic(self.session, self.server, blob, digest)
        self.pushed.append(digest)
        return self.size / MIB / seconds

    async def push_chunked(self) -> float:
        blob = self.next_blob()
        seconds = await push_chunked(
            self.session, self.server, blob, blob.digest(), self.args.chunk_mib
        )
        return self.size / MIB / seconds

    async def pull(self) -> float:
        return self.size / MIB / await pull(self.session, self.server, self.pushed[-1], self.size)

    def small(self, kind: str, concurrency: int) -> Callable[[], Coroutine[Any, Any, float]]:
        async def run() -> float:
            if kind == "HEAD blob":
                method, url = "HEAD", f"{self.server.url}/v2/bench/mono/blobs/{self.pushed[-1]}"
            else:
                method, url = "GET", f"{self.server.url}/v2/bench/tagged/tags/list"
            await requests_per_second(self.session, method, url, concurrency, 50)  # warm up
            return await requests_per_second(
                self.session, method, url, concurrency, self.args.requests
            )

        return run

    def figures(self) -> list[Callable[[], Coroutine[Any, Any, float]]]:
        """The measures of ``labels(args)``, in the same order."""
        runs = [self.push_monolithic, self.push_chunked, self.pull]
        for kind in ("HEAD blob", "GET tags/list"):
            runs += [self.small(kind, concurrency) for concurrency in self.args.concurrency]
        return runs


async def measure(
    servers: Sequence[Server], args: argparse.Namespace
) -> list[tuple[str, str, dict[str, float]]]:
    """Every figure for every server, interleaved (A, B, A, B...) so drift hits both alike."""
    benches = [Bench(server, args) for server in servers]
    rows: list[tuple[str, str, dict[str, float]]] = []
    try:
        per_bench = [bench.figures() for bench in benches]
        for n, (label, unit) in enumerate(labels(args)):
            values: dict[str, float] = {}
            for _ in range(args.repeat):
                for bench, runs in zip(benches, per_bench, strict=True):
                    value = await runs[n]()
                    values[bench.server.name] = max(values.get(bench.server.name, 0.0), value)
            rows.append((label, unit, values))
            print(f"  measured {label}", file=sys.stderr)
    finally:
        for bench in benches:
            await bench.session.close()
    return rows


def print_table(rows: list[tuple[str, str, dict[str, float]]], names: Sequence[str]) -> None:
    header = (
        f"{'measure':<36} {'unit':>6} "
        + " ".join(f"{name:>14}" for name in names)
        + f" {'ratio':>8}"
    )
    print(header)
    print("-" * len(header))
    for label, unit, values in rows:
        cells = " ".join(f"{values.get(name, float('nan')):>14.1f}" for name in names)
        ratio = values[names[0]] / values[names[1]] if values.get(names[1]) else float("nan")
        print(f"{label:<36} {unit:>6} {cells} {ratio:>7.2f}x")
    print(f"\nratio = {names[0]} / {names[1]} (higher is better for {names[0]})")


def seed_tags(url: str, tags: int) -> None:
    image = make_image([{"bench": b"tags list"}])
    for n in range(tags):
        push_image(url, "bench/tagged", f"v{n:03d}", image)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="blob size (default 1024)")
    parser.add_argument("--chunk-mib", type=int, default=16, help="PATCH size of the chunked push")
    parser.add_argument("--requests", type=int, default=3000, help="small requests per measure")
    parser.add_argument(
        "--concurrency", type=int, nargs="+", default=[1, 32], help="small request concurrency"
    )
    parser.add_argument("--tags", type=int, default=50, help="tags in the listed repository")
    parser.add_argument("--repeat", type=int, default=1, help="runs per figure; the best is kept")
    parser.add_argument("--keep", action="store_true", help="keep the temporary storage roots")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("docker-registry") is None:
        print("bench: error: docker-registry is not installed", file=sys.stderr)
        return 1
    workdir = Path(tempfile.mkdtemp(prefix="regtui-bench-"))
    try:
        with ExitStack() as stack:
            config = {"version": "0.1", "log": {"level": "warn"}}
            ours = stack.enter_context(bundled_registry(workdir / "regtui", config=config))
            theirs = stack.enter_context(distribution_registry(workdir / "distribution"))
            servers = [Server("regtui", ours.url), Server("distribution", theirs.url)]
            for server in servers:
                seed_tags(server.url, args.tags)
            print(
                f"blob {args.size_mib} MiB, chunks {args.chunk_mib} MiB, {args.requests} small "
                f"requests per figure, best of {args.repeat}; storage under {workdir}\n"
            )
            rows = asyncio.run(measure(servers, args))
            print_table(rows, [server.name for server in servers])
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
