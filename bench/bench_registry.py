"""Benchmark the bundled registry against CNCF Distribution (Debian's docker-registry), fairly.

Both servers run on loopback in the same run, each on its own temporary storage root:

* Distribution with Debian's stock ``/etc/docker/registry/config.yml`` (its blob descriptor
  cache ``inmemory``, health checks, info-level logs with the access log), less its ``auth``
  section, with its root and address replaced; regtui with its defaults (info-level logs with
  the access log too). Both log to a file.
* Load comes from C programs from Debian, not from Python sharing the cores: ``curl`` for pushes
  (monolithic: POST + one streamed PUT; chunked: POST, a PATCH per chunk, PUT) and pulls, ``wrk``
  for requests per second (HEAD of a blob, GET of a tags list, GET of a catalog page over 10,000
  repositories), ``ab`` for the 100,000-request memory soak.
* Every figure is measured ``--rounds`` times (default 3), the two servers alternated and the
  one going first swapped every round; the table shows medians and the ratio of medians.
* Server memory: RSS at idle, after the c=32 load, and after 100,000 more requests.

Usage (from the repository root; ``apt-get install wrk`` first)::

    python3 bench/bench_registry.py               # 1 GiB blobs, 3 rounds
    python3 bench/bench_registry.py --size-mib 64 --rounds 1 --seconds 1   # a quick run
    python3 bench/bench_registry.py --blobs --sizes 256 1024 --rounds 5   # blob figures only

``--blobs`` measures only the blobs, as CI and an operator meet them: each round starts both
servers on fresh roots, pushes the blob monolithically and pulls it right after (page cache
warm for both, as it is after a push), then pushes it again in ``--chunk-mib`` PATCHes.

Push and pull figures are MiB/s of blob payload; higher is better for every figure except RSS.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.helpers.servers import bundled_registry, distribution_registry  # noqa: E402
from tui.imagegen import make_image, push_image  # noqa: E402

T = TypeVar("T")
MIB = 1024 * 1024
BLOCK = hashlib.shake_256(b"regtui bench").digest(MIB)  # 1 MiB of incompressible bytes
STOCK_CONFIG = Path("/etc/docker/registry/config.yml")
STOCK_FALLBACK: dict[str, Any] = {  # Debian 12's file, for a machine that lost it
    "version": 0.1,
    "log": {"fields": {"service": "registry"}},
    "storage": {"cache": {"blobdescriptor": "inmemory"}, "delete": {"enabled": True}},
    "http": {"headers": {"X-Content-Type-Options": ["nosniff"]}},
    "health": {"storagedriver": {"enabled": True, "interval": "10s", "threshold": 3}},
}
CATALOG_REPOS = 10_000


def go_version(binary: str) -> str:
    """The Go release a binary was built with (``runtime.buildVersion`` is in its data)."""
    data = Path(binary).read_bytes()
    match = re.search(rb"go1\.\d+(?:\.\d+)?", data)
    return match.group().decode() if match else "unknown"


def distribution_stock_config(root: Path) -> dict[str, Any]:
    """Debian's stock config less ``auth``; the helper fills in root and address."""
    config = yaml.safe_load(STOCK_CONFIG.read_text()) if STOCK_CONFIG.exists() else STOCK_FALLBACK
    config = dict(config)
    config.pop("auth", None)
    storage = dict(config.get("storage", {}))
    storage["filesystem"] = {"rootdirectory": str(root)}
    config["storage"] = storage
    http = dict(config.get("http", {}))
    http.pop("addr", None)
    config["http"] = http
    return config


# -- blobs on disk, sent by curl ----------------------------------------------------------------


@dataclass
class BlobFiles:
    """A ``size``-byte blob as one file and as chunk files, made unique by a 16-byte prefix."""

    directory: Path
    size: int
    chunk_size: int
    whole: Path = field(init=False)
    chunks: list[Path] = field(init=False)

    def __post_init__(self) -> None:
        self.whole = self.directory / "blob"
        self.chunks = []
        with open(self.whole, "wb") as out:
            for offset in range(0, self.size, MIB):
                out.write(BLOCK[: min(MIB, self.size - offset)])
        with open(self.whole, "rb") as source:
            for n, offset in enumerate(range(0, self.size, self.chunk_size)):
                path = self.directory / f"chunk-{n:05d}"
                path.write_bytes(source.read(min(self.chunk_size, self.size - offset)))
                self.chunks.append(path)

    def make_unique(self, prefix: bytes) -> str:
        """Write ``prefix`` (16 bytes) at offset 0 of both forms; return the new digest."""
        assert len(prefix) == 16
        for path in (self.whole, self.chunks[0]):
            with open(path, "r+b") as out:
                out.write(prefix)
        hasher = hashlib.sha256()
        with open(self.whole, "rb") as source:
            while piece := source.read(4 * MIB):
                hasher.update(piece)
        return "sha256:" + hasher.hexdigest()


def curl(*args: str) -> str:
    """Run curl; its stdout. Headers with -D - ; a non-2xx answer is an error (-f)."""
    result = subprocess.run(
        ["curl", "-sS", "-f", *args], check=True, capture_output=True, text=True
    )
    return result.stdout


def _location(base: str, headers: str) -> str:
    for line in headers.splitlines():
        if line.lower().startswith("location:"):
            location = line.split(":", 1)[1].strip()
            return location if location.startswith("http") else base + location
    raise RuntimeError(f"no Location in:\n{headers}")


def _with_digest(location: str, digest: str) -> str:
    return location + ("&" if "?" in location else "?") + f"digest={digest}"


def push_monolithic(url: str, blob: BlobFiles, digest: str) -> float:
    started = time.perf_counter()
    location = _location(
        url, curl("-D", "-", "-o", "/dev/null", "-X", "POST", f"{url}/v2/bench/mono/blobs/uploads/")
    )
    curl(
        "-o",
        "/dev/null",
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/octet-stream",
        "-T",
        str(blob.whole),
        _with_digest(location, digest),
    )
    return time.perf_counter() - started


def push_chunked(url: str, blob: BlobFiles, digest: str) -> float:
    started = time.perf_counter()
    location = _location(
        url,
        curl("-D", "-", "-o", "/dev/null", "-X", "POST", f"{url}/v2/bench/chunked/blobs/uploads/"),
    )
    offset = 0
    for path in blob.chunks:
        length = path.stat().st_size
        headers = curl(
            "-D",
            "-",
            "-o",
            "/dev/null",
            "-X",
            "PATCH",
            "-H",
            "Content-Type: application/octet-stream",
            "-H",
            f"Content-Range: {offset}-{offset + length - 1}",
            "-T",
            str(path),
            location,
        )
        location = _location(url, headers)
        offset += length
    curl("-o", "/dev/null", "-X", "PUT", "-H", "Content-Length: 0", _with_digest(location, digest))
    return time.perf_counter() - started


def pull(url: str, digest: str, size: int, repository: str = "bench/mono") -> float:
    started = time.perf_counter()
    received = int(
        curl("-o", "/dev/null", "-w", "%{size_download}", f"{url}/v2/{repository}/blobs/{digest}")
    )
    if received != size:
        raise RuntimeError(f"pulled {received} bytes, expected {size}")
    return time.perf_counter() - started


# -- requests per second with wrk --------------------------------------------------------------


def wrk(url: str, *, method: str, concurrency: int, seconds: int, workdir: Path) -> float:
    """Requests per second that wrk measured; any non-2xx answer is an error."""
    script = workdir / f"wrk-{method}.lua"
    script.write_text(
        f'wrk.method = "{method}"\n'
        "function response(status, headers, body)\n"
        '  if status >= 300 then error("status " .. status) end\n'
        "end\n"
    )
    threads = 1 if concurrency == 1 else 2
    result = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{concurrency}",
            f"-d{max(1, seconds)}s",
            "--timeout",
            "30s",  # a slow answer counts (wrk's 2 s default turns it into a socket error)
            "-s",
            str(script),
            url,
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    if "Non-2xx" in result.stdout or "errors:" in result.stdout.lower():
        raise RuntimeError(f"wrk saw errors against {url}:\n{result.stdout}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", result.stdout)
    if not match:
        raise RuntimeError(f"no Requests/sec in wrk's output:\n{result.stdout}")
    return float(match.group(1))


def ab_head(url: str, *, concurrency: int, seconds: int) -> float:
    """HEAD requests per second that ab measured (wrk waits for a body a HEAD never has)."""
    result = subprocess.run(
        ["ab", "-q", "-k", "-i", "-t", str(seconds), "-n", "10000000", "-c", str(concurrency), url],
        check=True,
        capture_output=True,
        text=True,
    )
    failed = re.search(r"Failed requests:\s+(\d+)", result.stdout)
    non_2xx = re.search(r"Non-2xx responses:\s+(\d+)", result.stdout)
    if (failed and int(failed.group(1))) or non_2xx:
        raise RuntimeError(f"ab saw failed requests against {url}:\n{result.stdout}")
    match = re.search(r"Requests per second:\s+([\d.]+)", result.stdout)
    if not match:
        raise RuntimeError(f"no rate in ab's output:\n{result.stdout}")
    return float(match.group(1))


def ab_soak(url: str, requests: int, concurrency: int) -> None:
    result = subprocess.run(
        ["ab", "-q", "-k", "-n", str(requests), "-c", str(concurrency), url],
        check=True,
        capture_output=True,
        text=True,
    )
    failed = re.search(r"Failed requests:\s+(\d+)", result.stdout)
    if failed and int(failed.group(1)):
        raise RuntimeError(f"ab saw failed requests:\n{result.stdout}")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


# -- storage seeded on disk ---------------------------------------------------------------------


def seed_catalog(root: Path, count: int) -> None:
    """``count`` repositories, each with one tag of one tiny image, written in the registry:2
    layout directly (both servers read the same layout; pushing 10,000 images would take
    minutes)."""
    v2 = root / "docker" / "registry" / "v2"
    config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    config_digest = hashlib.sha256(config).hexdigest()
    manifest = (
        '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'
        '"config":{"mediaType":"application/vnd.oci.image.config.v1+json",'
        f'"digest":"sha256:{config_digest}","size":{len(config)}}},"layers":[]}}'
    ).encode()
    manifest_digest = hashlib.sha256(manifest).hexdigest()
    for hexdigest, data in ((config_digest, config), (manifest_digest, manifest)):
        blob = v2 / "blobs" / "sha256" / hexdigest[:2] / hexdigest / "data"
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
    for n in range(count):
        repo = v2 / "repositories" / "catalog" / f"repo{n:05d}"
        links = [
            repo / "_layers" / "sha256" / config_digest / "link",
            repo / "_manifests" / "revisions" / "sha256" / manifest_digest / "link",
            repo / "_manifests" / "tags" / "latest" / "current" / "link",
            repo / "_manifests" / "tags" / "latest" / "index" / "sha256" / manifest_digest / "link",
        ]
        for link in links:
            link.parent.mkdir(parents=True, exist_ok=True)
        links[0].write_text(f"sha256:{config_digest}")
        for link in links[1:]:
            link.write_text(f"sha256:{manifest_digest}")


def seed_tags(url: str, tags: int) -> None:
    image = make_image([{"bench": b"tags list"}])
    for n in range(tags):
        push_image(url, "bench/tagged", f"v{n:03d}", image)


# -- the run ------------------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    url: str
    pid: int
    pushed: list[str] = field(default_factory=list)


@dataclass
class Row:
    label: str
    unit: str
    values: dict[str, list[float]] = field(default_factory=dict)
    lower_is_better: bool = False

    def median(self, name: str) -> float:
        return statistics.median(self.values[name]) if self.values.get(name) else float("nan")


def alternate(servers: Sequence[T], rounds: int) -> Iterator[tuple[int, T]]:
    """(round, server) in the order A B, B A, A B...: drift and warm caches hit both alike."""
    for n in range(rounds):
        for server in servers if n % 2 == 0 else list(reversed(servers)):
            yield n, server


def measure(servers: Sequence[Server], args: argparse.Namespace, workdir: Path) -> list[Row]:
    size = args.size_mib * MIB
    blob = BlobFiles(workdir, size, args.chunk_mib * MIB)
    rows: list[Row] = []
    counter = iter(range(1, 1_000_000))

    def fresh(server: Server) -> str:
        return blob.make_unique(f"{server.name[:8]}-{next(counter):07d}".encode().ljust(16, b"."))

    def run(label: str, unit: str, figure: Callable[[Server], float], lower: bool = False) -> None:
        row = Row(label, unit, lower_is_better=lower)
        for _, server in alternate(servers, args.rounds):
            row.values.setdefault(server.name, []).append(figure(server))
        rows.append(row)
        print(f"  measured {label}", file=sys.stderr)

    def mono(server: Server) -> float:
        digest = fresh(server)
        seconds = push_monolithic(server.url, blob, digest)
        server.pushed.append(digest)
        return size / MIB / seconds

    def chunked(server: Server) -> float:
        return size / MIB / push_chunked(server.url, blob, fresh(server))

    def pulled(server: Server) -> float:
        return size / MIB / pull(server.url, server.pushed[-1], size)

    run(f"push {args.size_mib} MiB monolithic (curl)", "MiB/s", mono)
    run(f"push {args.size_mib} MiB chunked {args.chunk_mib} MiB (curl)", "MiB/s", chunked)
    run(f"pull {args.size_mib} MiB (curl)", "MiB/s", pulled)

    def rps(method: str, path: Callable[[Server], str], c: int) -> Callable[[Server], float]:
        return lambda server: wrk(
            server.url + path(server),
            method=method,
            concurrency=c,
            seconds=args.seconds,
            workdir=workdir,
        )

    def head(c: int) -> Callable[[Server], float]:
        return lambda s: ab_head(
            f"{s.url}/v2/bench/mono/blobs/{s.pushed[-1]}", concurrency=c, seconds=args.seconds
        )

    for c in args.concurrency:
        run(f"HEAD blob c={c} (ab)", "req/s", head(c))
    for c in args.concurrency:
        run(
            f"GET tags/list c={c} (wrk)",
            "req/s",
            rps("GET", lambda s: "/v2/bench/tagged/tags/list", c),
        )
    middle = f"catalog/repo{CATALOG_REPOS // 2:05d}"
    for c in args.concurrency:
        run(
            f"GET _catalog n=1000 of {CATALOG_REPOS:,} c={c} (wrk)",
            "req/s",
            rps("GET", lambda s: f"/v2/_catalog?n=1000&last={middle}", c),
        )

    def walk(server: Server) -> float:
        started = time.perf_counter()
        url, pages = f"{server.url}/v2/_catalog?n=1000", 0
        while url:
            headers = curl("-D", "-", "-o", "/dev/null", url)
            pages += 1
            link = re.search(r"(?im)^link:\s*<([^>]+)>", headers)
            url = (
                (link.group(1) if link.group(1).startswith("http") else server.url + link.group(1))
                if link
                else ""
            )
        if pages < CATALOG_REPOS // 1000:
            raise RuntimeError(f"{server.name}: the catalog walk ended after {pages} pages")
        return time.perf_counter() - started

    run(f"whole _catalog of {CATALOG_REPOS:,}, n=1000 pages", "s", walk, lower=True)
    return rows


@contextmanager
def fresh_server(name: str, root: Path) -> Iterator[Server]:
    """``name`` ("regtui" or "distribution") on an empty ``root``, removed afterwards."""
    try:
        if name == "regtui":
            with bundled_registry(root) as ours:
                yield Server(name, ours.url, ours.process.pid)
        else:
            config = distribution_stock_config(root)
            with distribution_registry(root, config=config) as theirs:
                yield Server(name, theirs.url, theirs.process.pid)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _unique_prefix(name: str, n: int) -> bytes:
    return f"{name[:8]}-{n:07d}".encode().ljust(16, b".")


def measure_blobs(args: argparse.Namespace, workdir: Path) -> list[Row]:
    """Per size, per round, both servers alternated, each on a fresh root: a monolithic push,
    the pull of that blob right after it, and a chunked push of another."""
    rows: list[Row] = []
    counter = iter(range(1, 1_000_000))
    for size_mib in args.sizes:
        size = size_mib * MIB
        blob = BlobFiles(workdir, size, args.chunk_mib * MIB)
        mono = Row(f"push {size_mib} MiB monolithic (curl)", "MiB/s")
        pulled = Row(f"pull {size_mib} MiB right after its push (curl)", "MiB/s")
        chunked = Row(f"push {size_mib} MiB chunked {args.chunk_mib} MiB (curl)", "MiB/s")
        for n, name in alternate(["regtui", "distribution"], args.rounds):
            with fresh_server(name, workdir / f"root-{size_mib}-{n}-{name}") as server:
                digest = blob.make_unique(_unique_prefix(name, next(counter)))
                seconds = push_monolithic(server.url, blob, digest)
                mono.values.setdefault(name, []).append(size_mib / seconds)
                seconds = pull(server.url, digest, size)
                pulled.values.setdefault(name, []).append(size_mib / seconds)
                digest = blob.make_unique(_unique_prefix(name, next(counter)))
                seconds = push_chunked(server.url, blob, digest)
                chunked.values.setdefault(name, []).append(size_mib / seconds)
            print(f"  {size_mib} MiB round {n + 1} {name} done", file=sys.stderr)
        rows += [mono, pulled, chunked]
        for path in [blob.whole, *blob.chunks]:
            path.unlink()
    return rows


def memory_rows(
    servers: Sequence[Server], args: argparse.Namespace, idle: dict[str, float]
) -> list[Row]:
    loaded = {server.name: rss_mib(server.pid) for server in servers}
    for server in servers:
        ab_soak(f"{server.url}/v2/bench/tagged/tags/list", args.soak, 32)
    soaked = {server.name: rss_mib(server.pid) for server in servers}
    rows = []
    for label, values in (
        ("server RSS at idle", idle),
        ("server RSS after the c=32 figures", loaded),
        (f"server RSS after {args.soak:,} more requests", soaked),
    ):
        rows.append(Row(label, "MiB", {k: [v] for k, v in values.items()}, lower_is_better=True))
    return rows


def print_table(rows: list[Row], names: Sequence[str]) -> None:
    header = (
        f"{'measure':<46} {'unit':>6} " + " ".join(f"{n:>13}" for n in names) + f" {'ratio':>8}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        a, b = row.median(names[0]), row.median(names[1])
        cells = " ".join(f"{row.median(name):>13,.1f}" for name in names)
        ratio = (b / a if row.lower_is_better else a / b) if a and b else float("nan")
        shown = f"{ratio:>7.2f}x"
        if not row.lower_is_better and a and b == 0:
            shown = f"{'(none)':>8}"  # the peer answered nothing in time (wrk's 2 s timeout)
        print(f"{row.label:<46} {row.unit:>6} {cells} {shown}")
    print(
        f"\nmedians; ratio = how many times better {names[0]} is than {names[1]} "
        "(time and memory: theirs / ours; rates: ours / theirs)"
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="blob size (default 1024)")
    parser.add_argument("--chunk-mib", type=int, default=16, help="PATCH size of the chunked push")
    parser.add_argument("--seconds", type=int, default=5, help="wrk duration per figure")
    parser.add_argument(
        "--concurrency", type=int, nargs="+", default=[1, 32], help="small request concurrency"
    )
    parser.add_argument("--tags", type=int, default=50, help="tags in the listed repository")
    parser.add_argument("--rounds", type=int, default=3, help="alternated rounds per figure")
    parser.add_argument("--soak", type=int, default=100_000, help="requests of the memory soak")
    parser.add_argument("--keep", action="store_true", help="keep the temporary storage roots")
    parser.add_argument(
        "--blobs",
        action="store_true",
        help="only the blob figures (push, pull right after it, chunked push), fresh roots",
    )
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[256, 1024], help="blob MiB with --blobs"
    )
    return parser.parse_args(argv)


@contextmanager
def servers(workdir: Path) -> Iterator[list[Server]]:
    with ExitStack() as stack:
        for name in ("regtui", "distribution"):
            seed_catalog(workdir / name, CATALOG_REPOS)
        ours = stack.enter_context(bundled_registry(workdir / "regtui"))
        theirs = stack.enter_context(
            distribution_registry(
                workdir / "distribution",
                config=distribution_stock_config(workdir / "distribution"),
            )
        )
        yield [
            Server("regtui", ours.url, ours.process.pid),
            Server("distribution", theirs.url, theirs.process.pid),
        ]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    tools = ("docker-registry", "curl") if args.blobs else ("docker-registry", "curl", "wrk", "ab")
    missing = [tool for tool in tools if not shutil.which(tool)]
    if missing:
        print(
            f"bench: error: install {', '.join(missing)} (Debian: docker-registry curl wrk "
            "apache2-utils)",
            file=sys.stderr,
        )
        return 1
    workdir = Path(tempfile.mkdtemp(prefix="regtui-bench-"))
    distribution_binary = shutil.which("docker-registry") or ""
    if args.blobs:
        try:
            print(
                f"Distribution: Debian's docker-registry built with "
                f"{go_version(distribution_binary)}; stock config, less auth. Blobs of "
                f"{', '.join(map(str, args.sizes))} MiB, chunks {args.chunk_mib} MiB, medians "
                f"of {args.rounds} alternated rounds, fresh roots every round; "
                f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start\n"
            )
            print_table(measure_blobs(args, workdir), ["regtui", "distribution"])
            print(f"load average {os.getloadavg()[0]:.2f} at the end")
        finally:
            if not args.keep:
                shutil.rmtree(workdir, ignore_errors=True)
        return 0
    try:
        with servers(workdir) as running:
            idle = {server.name: rss_mib(server.pid) for server in running}
            for server in running:
                seed_tags(server.url, args.tags)
            go = go_version(distribution_binary)
            print(
                f"Distribution: Debian's docker-registry built with {go} (Go before 1.21 uses no "
                "SHA-NI for SHA-256: push ratios partly measure that); stock config, less auth.\n"
                f"blob {args.size_mib} MiB, chunks {args.chunk_mib} MiB, wrk {args.seconds:g} s "
                f"per figure, medians of {args.rounds} alternated rounds, load from curl/wrk/ab; "
                f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start\n"
            )
            rows = measure(running, args, workdir)
            rows += memory_rows(running, args, idle)
            print_table(rows, [server.name for server in running])
            print(f"load average {os.getloadavg()[0]:.2f} at the end")
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
