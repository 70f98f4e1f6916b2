"""Benchmark: ``regtui cp`` against ``skopeo copy``, registry to registry.

An image of ``--size-mib`` MiB (default 1024) in ``--layers`` layers (default 10) of random,
incompressible bytes is pushed once into a source registry (Debian's docker-registry, from
files, streamed). Each round then copies it into a fresh destination registry (a new
docker-registry on an empty root, so neither tool finds anything there, and skopeo's blob-info
cache cannot turn the copy into a mount), once with each tool, the order swapped every round.
Both run as command-line processes (regtui's time includes starting Python). Prints medians
of ``--rounds`` rounds and the ratio skopeo / regtui (above 1: regtui is faster).

    python bench/bench_copy.py                      # 1 GiB in 10 layers, 3 rounds
    python bench/bench_copy.py --size-mib 256 --rounds 5
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.bench_registry import alternate  # noqa: E402
from tests.helpers.servers import distribution_registry  # noqa: E402

MIB = 1024 * 1024
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def _file_digest(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(4 * MIB):
            hasher.update(chunk)
    return "sha256:" + hasher.hexdigest()


def _upload(client: httpx.Client, repo: str, digest: str, body: bytes | Iterator[bytes]) -> None:
    started = client.post(f"/v2/{repo}/blobs/uploads/")
    started.raise_for_status()
    location = started.headers["Location"]
    joiner = "&" if "?" in location else "?"
    done = client.put(f"{location}{joiner}digest={digest}", content=body)
    done.raise_for_status()


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as file:
        while chunk := file.read(4 * MIB):
            yield chunk


def seed(url: str, workdir: Path, size_mib: int, layers: int) -> str:
    """Push the image into ``url`` as ``bench/big:1``, layer files streamed; its digest."""
    per_layer = max(1, size_mib // layers) * MIB
    descriptors = []
    with httpx.Client(base_url=url, timeout=600) as client:
        for n in range(layers):
            path = workdir / f"layer{n}"
            with path.open("wb") as file:
                for _ in range(per_layer // MIB):
                    file.write(os.urandom(MIB))
            digest = _file_digest(path)
            _upload(client, "bench/big", digest, _chunks(path))
            descriptors.append({"mediaType": OCI_LAYER, "digest": digest, "size": per_layer})
            path.unlink()
        config = json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": [d["digest"] for d in descriptors]},
            }
        ).encode()
        config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
        _upload(client, "bench/big", config_digest, config)
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
                "layers": descriptors,
            }
        ).encode()
        put = client.put(
            "/v2/bench/big/manifests/1", content=manifest, headers={"Content-Type": OCI_MANIFEST}
        )
        put.raise_for_status()
    return "sha256:" + hashlib.sha256(manifest).hexdigest()


def command(tool: str, source: str, destination: str) -> list[str]:
    if tool == "skopeo":
        return [
            "skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false", "--quiet",
            f"docker://{source}", f"docker://{destination}",
        ]  # fmt: skip
    return [sys.executable, "-m", "tui", "cp", "--json", source, destination]


def timed_copy(tool: str, source: str, workdir: Path, digest: str, n: int) -> float:
    root = workdir / f"dst-{tool}-{n}"
    with distribution_registry(root) as destination:
        target = f"{destination.host}/bench/copy:1"
        started = time.perf_counter()
        done = subprocess.run(
            command(tool, source, target), capture_output=True, text=True, cwd=REPO_ROOT
        )
        if done.returncode != 0:
            sys.exit(f"{tool} failed: {done.stderr.strip()}")
        elapsed = time.perf_counter() - started
        got = httpx.head(
            f"{destination.url}/v2/bench/copy/manifests/1", headers={"Accept": OCI_MANIFEST}
        )
        assert got.status_code == 200, (tool, got.status_code)
        if tool == "regtui":  # skopeo may write the manifest again in its own way
            assert got.headers.get("Docker-Content-Digest") == digest, got.headers
    shutil.rmtree(root, ignore_errors=True)
    return elapsed


def profile(size_mib: int, layers: int) -> None:
    """One regtui copy under cProfile (``--profile``): where the time goes."""
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-copy-")))
        source = stack.enter_context(distribution_registry(workdir / "src"))
        seed(source.url, workdir, size_mib, layers)
        destination = stack.enter_context(distribution_registry(workdir / "dst"))
        order = os.environ.get("PROFILE_SORT", "cumtime")  # tottime: where the CPU goes
        subprocess.run(
            [sys.executable, "-m", "cProfile", "-s", order, "-m", "tui", "cp",
             f"{source.host}/bench/big:1", f"{destination.host}/bench/copy:1"],
            check=True, cwd=REPO_ROOT,
        )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="profile one regtui copy")
    args = parser.parse_args()
    if args.profile:
        profile(args.size_mib, args.layers)
        return
    if shutil.which("skopeo") is None:
        sys.exit("skopeo is not installed")
    os.environ.pop("AWS_CA_BUNDLE", None)  # Debian's docker-registry panics with it set
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-copy-")))
        source = stack.enter_context(distribution_registry(workdir / "src"))
        digest = seed(source.url, workdir, args.size_mib, args.layers)
        image = f"{source.host}/bench/big:1"
        times: dict[str, list[float]] = {"regtui": [], "skopeo": []}
        for n, tool in alternate(["regtui", "skopeo"], args.rounds):
            times[tool].append(timed_copy(tool, image, workdir, digest, n))
            print(f"round {n + 1}: {tool:6} {times[tool][-1]:7.2f} s", flush=True)
    regtui, skopeo = statistics.median(times["regtui"]), statistics.median(times["skopeo"])
    mib = args.size_mib
    print(f"\n{mib} MiB in {args.layers} layers, registry to registry, {args.rounds} rounds")
    print(f"  regtui cp    {regtui:7.2f} s  ({mib / regtui:6.1f} MiB/s)")
    print(f"  skopeo copy  {skopeo:7.2f} s  ({mib / skopeo:6.1f} MiB/s)")
    print(f"  ratio skopeo/regtui: {skopeo / regtui:.2f}x (above 1: regtui is faster)")


if __name__ == "__main__":
    main()
