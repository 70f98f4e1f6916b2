"""Benchmark: ``regtui scrub`` against ``sha256sum`` over the same blob files, and its memory.

1. **Throughput.** ``--blobs`` blobs of ``--blob-mib`` MiB each (random bytes) written in
   Distribution's layout, one repository linking them all. With a warm page cache (each file
   read once first), rounds alternate ``sha256sum FILE...`` (one process over every
   ``data`` file) and the scrub (in this process: ``Scrubber.run`` with a fresh state, its
   default jobs and with one job), each timed from start to report. MiB/s are medians of
   ``--rounds``; the ratio is scrub / sha256sum (the target is at least 0.8).
2. **Memory.** ``--small`` small blobs (100 bytes each, a thousand repositories of images),
   then ``regtui scrub --root`` run as a process: its peak resident memory (``ru_maxrss``) and
   time, beside the same at a tenth of the size: bounded memory means the two are close.

    python bench/bench_scrub.py                       # 8 x 64 MiB, then 100,000 small blobs
    python bench/bench_scrub.py --blobs 4 --blob-mib 32 --small 20000
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.bench_registry import alternate  # noqa: E402
from embedded_registry.gc.scrub import DEFAULT_JOBS, Scrubber  # noqa: E402
from embedded_registry.storage.driver.filesystem import FilesystemDriver  # noqa: E402

V2 = Path("docker") / "registry" / "v2"
MIB = 1 << 20
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


class Writer:
    """Blobs, links and tags in Distribution's layout, written directly."""

    def __init__(self, root: Path) -> None:
        self.v2 = root / V2
        self.blobs = self.v2 / "blobs" / "sha256"
        self.repos = self.v2 / "repositories"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.repos.mkdir(parents=True, exist_ok=True)

    def blob(self, data: bytes) -> str:
        hex_part = hashlib.sha256(data).hexdigest()
        directory = self.blobs / hex_part[:2] / hex_part
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "data").write_bytes(data)
        return "sha256:" + hex_part

    def link(self, path: Path, digest: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(digest.encode())

    def image(self, repo: str, tag: str, layers: list[bytes]) -> None:
        base = self.repos / repo
        config = json.dumps({"tag": tag}).encode()
        descriptors = []
        for data in [config, *layers]:
            digest = self.blob(data)
            self.link(base / "_layers" / "sha256" / digest[7:] / "link", digest)
            descriptors.append({"mediaType": "x", "digest": digest, "size": len(data)})
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": descriptors[0],
                "layers": descriptors[1:],
            }
        ).encode()
        digest = self.blob(manifest)
        self.link(base / "_manifests" / "revisions" / "sha256" / digest[7:] / "link", digest)
        self.link(base / "_manifests" / "tags" / tag / "current" / "link", digest)


def data_files(root: Path) -> list[str]:
    return sorted(str(p) for p in (root / V2 / "blobs").rglob("data"))


def sha256sum(files: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(["sha256sum", *files], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def scrub(root: Path, state: Path, jobs: int) -> float:
    started = time.perf_counter()
    report = asyncio.run(
        Scrubber(FilesystemDriver(root), jobs=jobs, state_file=str(state), restart=True).run()
    )
    elapsed = time.perf_counter() - started
    if not report.clean:
        raise SystemExit(f"the scrub found problems: {report.problems[:3]}")
    return elapsed


def throughput(workdir: Path, args: argparse.Namespace) -> None:
    root = workdir / "big"
    writer = Writer(root)
    layers = [os.urandom(args.blob_mib * MIB) for _ in range(args.blobs)]
    writer.image("big", "latest", layers)
    del layers
    files = data_files(root)
    total = sum(os.path.getsize(f) for f in files) / MIB
    for name in files:  # a warm page cache: both read from memory
        with open(name, "rb") as handle:
            while handle.read(8 * MIB):
                pass
    state = workdir / "state.json"
    contenders = ["sha256sum", f"scrub (jobs {DEFAULT_JOBS})", "scrub (jobs 1)"]
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _round, name in alternate(contenders, args.rounds):
        if name == "sha256sum":
            times[name].append(sha256sum(files))
        else:
            times[name].append(scrub(root, state, DEFAULT_JOBS if "jobs 1" not in name else 1))
    print(
        f"\nThroughput: {len(files)} files, {total:.0f} MiB, warm page cache, {args.rounds} rounds"
    )
    base = total / statistics.median(times["sha256sum"])
    for name in contenders:
        speed = total / statistics.median(times[name])
        print(f"  {name:<18} {speed:8.0f} MiB/s   ratio {speed / base:.2f}")
    shutil.rmtree(root)


def small_store(root: Path, count: int) -> None:
    writer = Writer(root)
    images = count // 3  # config, layer and manifest per image
    for number in range(images):
        writer.image(f"repo{number % 1000:04d}", f"t{number}", [b"%08d" % number * 12])


MEASURE = """
import json, resource, subprocess, sys
done = subprocess.run(sys.argv[1:], capture_output=True)
if done.returncode not in (0, 1):  # 1: problems found, in the report
    sys.stderr.write(done.stderr.decode())
    sys.exit(done.returncode)
report = json.loads(done.stdout)
for problem in report["problems"][:3]:
    sys.stderr.write(json.dumps(problem) + "\\n")
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(report["blobs"], peak, len(report["problems"]))
"""


def measure_scrub(root: Path) -> tuple[int, float, int]:
    """``regtui scrub --root`` as a process: the blobs it read, its time, its peak RSS (KiB).
    A fresh parent per measure: RUSAGE_CHILDREN's peak is the largest of every child waited."""
    scrub_command = [sys.executable, "-m", "tui", "scrub", "--root", str(root), "--json"]
    command = [sys.executable, "-c", MEASURE, *scrub_command]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"scrub failed ({done.returncode}): {done.stderr.decode()[-500:]}")
    blobs, peak, problems = (int(x) for x in done.stdout.decode().split()[-3:])
    if problems:
        raise SystemExit(f"the scrub found {problems} problems: {done.stderr.decode()[-1500:]}")
    return blobs, seconds, peak


def memory(workdir: Path, count: int) -> tuple[int, float, int]:
    root = workdir / f"small-{count}"
    started = time.perf_counter()
    small_store(root, count)
    print(f"  wrote {count:,} blobs in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return measure_scrub(root)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blobs", type=int, default=8, help="large blobs (default 8)")
    parser.add_argument("--blob-mib", type=int, default=64, help="MiB each (default 64)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--small", type=int, default=100_000, help="small blobs (default 100,000)")
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="regtui-bench-scrub-") as tmp:
        workdir = Path(tmp)
        if not args.skip_throughput:
            throughput(workdir, args)
        print("\nMemory: regtui scrub --root as a process (peak RSS)")
        for count in (args.small // 10, args.small):
            blobs, seconds, peak = memory(workdir, count)
            print(f"  {blobs:>7,} blobs: {seconds:6.1f} s, peak {peak / 1024:6.1f} MiB", flush=True)
        print("(removing the stores: on a busy disk this takes a while)", file=sys.stderr)


if __name__ == "__main__":
    main()
