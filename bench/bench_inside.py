"""Benchmark: ``regtui diff`` and ``regtui find`` on big images, time and peak memory.

Builds two images over a shared base layer of ``--files`` small files: image A adds a
``--big-mib`` MiB incompressible file; image B rewrites every base file in a second layer and
adds its own big file. Pushes them to the bundled registry on 127.0.0.1 and measures, as
command-line processes (Python start-up included):

* ``regtui diff A B --no-files`` (manifests and configs only),
* ``regtui diff A B`` (every layer streamed once, every file compared, content hashed),
* ``regtui find HOST --digest <base layer>``.

Peak memory is the child's maximum resident set size: the big files must not show in it (only
entries' metadata is kept).

    python bench/bench_inside.py                      # 100,000 files, 200 MiB files
    python bench/bench_inside.py --files 10000 --big-mib 20
"""

from __future__ import annotations

import argparse
import gzip
import io
import os
import random
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.helpers.servers import bundled_registry
from tui.imagegen import OCI_LAYER_GZIP, OCI_LAYER_TAR, Blob, make_image, push_image


def many_files(count: int, salt: str) -> Blob:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for number in range(count):
            info = tarfile.TarInfo(f"usr/share/d{number // 1000}/f{number}")
            data = f"{salt}{number}".encode()
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return Blob(gzip.compress(buffer.getvalue(), 1, mtime=0), OCI_LAYER_GZIP)


def big_file(mib: int, seed: int) -> Blob:
    noise = random.Random(seed).randbytes(mib * 1024 * 1024)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("opt/big.bin")
        info.size = len(noise)
        tar.addfile(info, io.BytesIO(noise))
    return Blob(buffer.getvalue(), OCI_LAYER_TAR)


def measure(command: list[str]) -> tuple[float, float, int]:
    """Seconds, peak RSS of this child alone in MiB (``wait4``), and lines printed."""
    with tempfile.TemporaryFile("w+") as out:
        start = time.perf_counter()
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed with {child.returncode}")
        out.seek(0)
        lines = sum(1 for _ in out)
    return seconds, usage.ru_maxrss / 1024, lines


def push(url: str, files: int, big_mib: int) -> str:
    """Build and push both images; the base layer's digest."""
    base = many_files(files, "a")
    push_image(url, "bench/app", "a", make_image([base, big_file(big_mib, 1)]))
    second = make_image([base, many_files(files, "bb"), big_file(big_mib, 2)])
    push_image(url, "bench/app", "b", second)
    return base.digest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--big-mib", type=int, default=200)
    parser.add_argument("--push-to", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.push_to:
        print(push(args.push_to, args.files, args.big_mib))
        return 0
    regtui = [sys.executable, "-m", "tui"]
    with (
        tempfile.TemporaryDirectory(prefix="regtui-bench-inside-") as tmp,
        bundled_registry(Path(tmp) / "registry") as registry,
    ):
        # Built in another process: a child forked from a big parent would report its RSS.
        builder = [sys.executable, __file__, f"--files={args.files}", f"--big-mib={args.big_mib}"]
        pushed = subprocess.run(
            [*builder, "--push-to", registry.url],
            capture_output=True,
            text=True,
            check=True,
        )
        base_digest = pushed.stdout.strip()
        a, b = f"{registry.host}/bench/app:a", ":b"
        rows = [
            ("diff --no-files", [*regtui, "diff", a, b, "--insecure", "--no-files"]),
            ("diff (every file)", [*regtui, "diff", a, b, "--insecure"]),
            (
                "find --digest (base layer)",
                [*regtui, "find", registry.host, "--insecure", "--digest", base_digest],
            ),
        ]
        print(f"{args.files:,} files per layer, {args.big_mib} MiB big files")
        for name, command in rows:
            seconds, peak, lines = measure(command)
            print(f"{name:28} {seconds:6.1f} s   peak RSS {peak:7.0f} MiB   {lines:,} lines")
    return 0


if __name__ == "__main__":
    sys.exit(main())
