"""Benchmark the bundled registry against CNCF Distribution on the same S3 engine (SeaweedFS).

Both registries run on one ``weed mini`` (loopback, signatures checked), each on its own bucket
with the same ``storage.s3`` settings, in the same run; figures alternate A B, B A. Pull is
measured twice: with redirects off (the registry streams the object) and on (307 to a presigned
URL, which curl follows to the engine).

    python3 bench/bench_s3.py --size-mib 256 --rounds 3
    python3 bench/bench_s3.py --only tags head --size-mib 8     # a part of the figures
    python3 bench/bench_s3.py --requests --size-mib 64          # S3 requests per request

``--requests`` is the deterministic measure: the S3 requests regtui's storage sends for one
registry request of each kind, by S3 operation (no timing, no Distribution).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.bench_registry import (  # noqa: E402
    MIB,
    BlobFiles,
    Row,
    Server,
    ab_head,
    alternate,
    go_version,
    print_table,
    push_chunked,
    push_monolithic,
    seed_tags,
    wrk,
)
from tests.helpers.s3 import (  # noqa: E402
    SeaweedS3,
    bundled_on_s3,
    distribution_on_s3,
    registry_config,
    seaweed,
)


def pull(url: str, digest: str, size: int) -> float:
    """Seconds to GET the blob, following a redirect to the bucket."""
    started = time.perf_counter()
    result = subprocess.run(
        [
            "curl",
            "-sS",
            "-f",
            "-L",
            "-o",
            "/dev/null",
            "-w",
            "%{size_download}",
            f"{url}/v2/bench/mono/blobs/{digest}",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    if int(result.stdout) != size:
        raise RuntimeError(f"pulled {result.stdout} bytes, expected {size}")
    return time.perf_counter() - started


def gc_rows(engine: SeaweedS3, workdir: Path, images: int, rounds: int) -> list[Row]:
    """GC dry runs of one bucket holding ``images`` images, half of them deleted: regtui's
    ``gc --config`` against Distribution's ``garbage-collect --dry-run`` on the same file."""
    import concurrent.futures

    import httpx
    import yaml

    from tests.helpers.servers import server_env
    from tui.imagegen import make_image, push_image

    bucket = engine.create_bucket()
    config = registry_config(engine.s3_config(bucket), redirect={"disable": True})
    with bundled_on_s3(workdir, config, name="regtui-gc") as registry:

        def push(index: int) -> None:
            with httpx.Client(base_url=registry.url, timeout=120) as client:
                image = make_image([{"n": f"{index}\n".encode()}])
                push_image(client, f"gc/repo{index % 50:02d}", f"t{index}", image)
                if index % 2:
                    client.delete(f"/v2/gc/repo{index % 50:02d}/manifests/{image.digest}")

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(push, range(images)))
    config_file = workdir / "gc-config.yml"
    config_file.write_text(yaml.safe_dump(config))
    env = {k: v for k, v in server_env().items() if not k.startswith("AWS_")}
    commands = {
        "regtui": [
            sys.executable,
            "-m",
            "tui",
            "gc",
            "--config",
            str(config_file),
            "--dry-run",
            "--json",
            "--grace-period",
            "0",
        ],
        "distribution": ["docker-registry", "garbage-collect", "--dry-run", str(config_file)],
    }
    row = Row(f"GC dry run, {images:,} images, half deleted", "s", lower_is_better=True)
    for n in range(rounds):
        for name in commands if n % 2 == 0 else list(reversed(commands)):
            started = time.perf_counter()
            subprocess.run(commands[name], check=True, capture_output=True, env=env, cwd=REPO_ROOT)
            row.values.setdefault(name, []).append(time.perf_counter() - started)
    print("  measured GC dry run", file=sys.stderr)
    return [row]


@contextmanager
def pairs(engine: SeaweedS3, workdir: Path) -> Iterator[dict[bool, list[Server]]]:
    """Per redirect setting, the two registries on their buckets (the same bucket per name)."""
    with ExitStack() as stack:
        result: dict[bool, list[Server]] = {}
        buckets = {name: engine.create_bucket() for name in ("regtui", "distribution")}
        for redirect in (False, True):
            s3r = engine.s3_config(buckets["regtui"])
            s3d = engine.s3_config(buckets["distribution"])
            config = registry_config(s3r, redirect={"disable": not redirect})
            tag = "redirect" if redirect else "stream"
            ours = stack.enter_context(bundled_on_s3(workdir, config, name=f"regtui-{tag}"))
            theirs = stack.enter_context(
                distribution_on_s3(workdir, s3d, redirect=redirect, name=f"distribution-{tag}")
            )
            result[redirect] = [
                Server("regtui", ours.url, ours.process.pid),
                Server("distribution", theirs.url, theirs.process.pid),
            ]
        yield result


def measure(
    servers: dict[bool, list[Server]], args: argparse.Namespace, workdir: Path
) -> list[Row]:
    size = args.size_mib * MIB
    blob = BlobFiles(workdir, size, args.chunk_mib * MIB)
    counter = iter(range(1, 1_000_000))
    rows: list[Row] = []
    stream, redirect = servers[False], servers[True]

    def fresh(server: Server) -> str:
        return blob.make_unique(f"{server.name[:8]}-{next(counter):07d}".encode().ljust(16, b"."))

    def run(
        label: str, unit: str, pair: Sequence[Server], figure: Callable[[Server], float]
    ) -> None:
        row = Row(label, unit)
        for _, server in alternate(pair, args.rounds):
            row.values.setdefault(server.name, []).append(figure(server))
        rows.append(row)
        print(f"  measured {label}", file=sys.stderr)

    def mono(server: Server) -> float:
        digest = fresh(server)
        seconds = push_monolithic(server.url, blob, digest)
        server.pushed.append(digest)
        return size / MIB / seconds

    parts = set(args.only)
    if parts & {"push", "pull"}:
        run(f"push {args.size_mib} MiB monolithic (curl)", "MiB/s", stream, mono)
    if "push" in parts:
        run(
            f"push {args.size_mib} MiB chunked {args.chunk_mib} MiB (curl)",
            "MiB/s",
            stream,
            lambda s: size / MIB / push_chunked(s.url, blob, fresh(s)),
        )
    if "pull" in parts:
        pulls(stream, redirect, args, size, run)
    if parts & {"head", "tags"}:
        for server in stream:
            seed_tags(server.url, args.tags)
    if "head" in parts:
        if not all(s.pushed for s in stream):
            for server in stream:
                server.pushed.append(fresh(server))
                push_monolithic(server.url, blob, server.pushed[-1])
        for c in args.concurrency:

            def head(server: Server, c: int = c) -> float:
                url = f"{server.url}/v2/bench/mono/blobs/{server.pushed[-1]}"
                return ab_head(url, concurrency=c, seconds=args.seconds)

            run(f"HEAD blob c={c} (ab)", "req/s", stream, head)
    if "tags" in parts:
        for c in args.concurrency:

            def tags(server: Server, c: int = c) -> float:
                url = f"{server.url}/v2/bench/tagged/tags/list"
                return wrk(url, method="GET", concurrency=c, seconds=args.seconds, workdir=workdir)

            run(f"GET tags/list c={c} (wrk)", "req/s", stream, tags)
    return rows


def pulls(
    stream: list[Server],
    redirect: list[Server],
    args: argparse.Namespace,
    size: int,
    run: Callable[[str, str, Sequence[Server], Callable[[Server], float]], None],
) -> None:
    run(
        f"pull {args.size_mib} MiB, no redirect (curl)",
        "MiB/s",
        stream,
        lambda s: size / MIB / pull(s.url, s.pushed[-1], size),
    )
    by_name = {s.name: s for s in stream}
    for server in redirect:  # the same buckets: the blobs pushed above
        server.pushed = by_name[server.name].pushed
    run(
        f"pull {args.size_mib} MiB, redirect (curl -L)",
        "MiB/s",
        redirect,
        lambda s: size / MIB / pull(s.url, s.pushed[-1], size),
    )


def count_requests(engine: SeaweedS3, size_mib: int, chunk_mib: int, tags: int) -> None:
    """The deterministic measure: S3 requests the bundled registry's storage sends for one
    registry request of each kind (as the routes call it), by S3 operation."""
    import asyncio
    import hashlib

    from embedded_registry.config import load_config
    from embedded_registry.storage.driver.s3 import S3Driver
    from embedded_registry.storage.factory import open_storage
    from embedded_registry.storage.store import DriverStorage
    from tui.imagegen import make_image

    config = load_config(data=registry_config(engine.s3_config(engine.create_bucket())), env={})
    data = os.urandom(size_mib * MIB)
    chunk = chunk_mib * MIB
    rows: list[tuple[str, dict[str, int]]] = []

    async def pieces(body: bytes) -> AsyncIterator[bytes]:
        for start in range(0, len(body), MIB):
            yield body[start : start + MIB]

    async def scenario() -> None:
        storage = await open_storage(config)
        assert isinstance(storage, DriverStorage) and isinstance(storage.driver, S3Driver)
        counter = storage.driver.requests

        def row(label: str) -> None:
            rows.append((label, dict(counter)))
            counter.clear()

        try:
            image = make_image([{"bench": b"tags list"}])
            for blob in image.blobs():
                upload = await storage.create_upload("bench/tagged")
                body = pieces(blob.data)
                await storage.finish_upload_with("bench/tagged", upload, blob.digest, body)
            for n in range(tags):
                await storage.put_manifest(
                    "bench/tagged", f"v{n:03d}", image.manifest.data, image.manifest.media_type
                )
            await storage.tags("bench/tagged")
            counter.clear()
            await storage.tags("bench/tagged")
            row(f"GET tags/list ({tags} tags)")
            await storage.get_manifest("bench/tagged", "v000")
            row("GET manifest by tag")

            digest = "sha256:" + hashlib.sha256(data).hexdigest()
            upload = await storage.create_upload("bench/mono")
            row("POST upload")
            await storage.upload_size("bench/mono", upload)
            await storage.finish_upload_with("bench/mono", upload, digest, pieces(data))
            row(f"PUT {size_mib} MiB monolithic")
            again = data[::-1]
            upload = await storage.create_upload("bench/chunked")
            counter.clear()
            for start in range(0, len(again), chunk):
                await storage.upload_size("bench/chunked", upload)
                part = again[start : start + chunk]
                await storage.append_upload(
                    "bench/chunked", upload, pieces(part), start=start, length=len(part)
                )
            row(f"PATCH x{-(-len(again) // chunk)} ({chunk_mib} MiB each)")
            await storage.upload_size("bench/chunked", upload)
            await storage.finish_upload(
                "bench/chunked", upload, "sha256:" + hashlib.sha256(again).hexdigest()
            )
            row("PUT closing the chunked upload")
            await storage.served_blob("bench/mono", digest, 0)
            row("HEAD blob")
            await storage.served_blob("bench/mono", digest, 0)
            async for _block in storage.blob_reader(digest, 0, None):
                pass
            row(f"GET blob, {size_mib} MiB streamed")
            storage.blobs.redirect = True
            await storage.served_blob("bench/mono", digest, 0)
            await storage.blob_redirect(digest)
            row("GET blob, redirect")
        finally:
            await storage.close()

    asyncio.run(scenario())
    print("S3 requests per registry request (regtui; botocore's and the fast path's):")
    for label, counts in rows:
        detail = ", ".join(f"{name} {n}" for name, n in sorted(counts.items()))
        print(f"  {label:<36} {sum(counts.values()):>3}  {detail}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--chunk-mib", type=int, default=16)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--tags", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--gc-images", type=int, default=2000, help="0: no GC figure")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=["push", "pull", "head", "tags", "gc"],
        default=["push", "pull", "head", "tags", "gc"],
        help="measure only these (pull pushes its blob first)",
    )
    parser.add_argument(
        "--requests",
        action="store_true",
        help="count the S3 requests of each registry request (deterministic) and stop",
    )
    args = parser.parse_args(argv)
    missing = [t for t in ("docker-registry", "curl", "wrk", "ab") if not shutil.which(t)]
    if missing:
        print(f"bench: error: install {', '.join(missing)}", file=sys.stderr)
        return 1
    workdir = Path(tempfile.mkdtemp(prefix="regtui-bench-s3-"))
    if args.requests:
        try:
            with seaweed(workdir / "seaweed") as engine:
                count_requests(engine, args.size_mib, args.chunk_mib, args.tags)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        return 0
    try:
        with seaweed(workdir / "seaweed") as engine, pairs(engine, workdir) as servers:
            print(
                "Distribution: Debian's docker-registry built with "
                f"{go_version(shutil.which('docker-registry') or '')}; "
                f"both registries on one SeaweedFS (weed mini), a bucket each; blob "
                f"{args.size_mib} MiB, chunks {args.chunk_mib} MiB, medians of {args.rounds} "
                f"alternated rounds; {os.cpu_count()} cores, load average "
                f"{os.getloadavg()[0]:.2f} at start\n"
            )
            rows = measure(servers, args, workdir)
            if args.gc_images and "gc" in args.only:
                rows += gc_rows(engine, workdir, args.gc_images, args.rounds)
            print_table(rows, ["regtui", "distribution"])
            print(f"load average {os.getloadavg()[0]:.2f} at the end")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
