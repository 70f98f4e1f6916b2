"""Server CPU time per request of two source trees of the bundled registry (before / after).

A deterministic measure for a shared machine: the user + system CPU seconds the registry process
spends per operation (``/proc/<pid>/stat``), which another engineer's load does not change the
way it changes a rate. Each tree serves its own temporary root on loopback; the trees alternate
(A B, B A, ...), and each figure is the median of the rounds:

* a 64 MiB push, monolithic (POST with the body) and chunked (16 MiB PATCHes), and a pull;
* ``ab -n N -c 32 -k``: HEAD of a blob, GET of a tags list (50 tags), GET of a manifest by tag.

Usage (from the repository root; two checkouts, e.g. ``git worktree add`` or ``git archive``)::

    python3 bench/bench_cpu.py --before /tmp/main-tree --after . --requests 20000 --rounds 2
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

OCTETS = {"Content-Type": "application/octet-stream"}
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
LAYER = hashlib.shake_256(b"regtui bench_cpu").digest(64 << 20)
CHUNK = 16 << 20
TAGS = 50


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of process ``pid``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start(tree: Path, root: Path) -> tuple[subprocess.Popen[bytes], str]:
    """``python -m embedded_registry`` from ``tree`` on ``root``; the process and its URL."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    command = [sys.executable, "-m", "embedded_registry", "--root", str(root)]
    with (root.parent / "server.log").open("wb") as log:  # the child keeps its own copy
        process = subprocess.Popen(
            [*command, "--addr", "127.0.0.1:0"],
            cwd=tree,
            stdout=subprocess.PIPE,
            stderr=log,
            env=env,
        )
    assert process.stdout is not None
    line = process.stdout.readline().decode().strip()
    if not line.startswith("listening on "):
        process.kill()
        raise SystemExit(f"{tree}: the registry did not start: {line!r}")
    return process, line.removeprefix("listening on ")


def measure(tree: Path, requests: int, work: Path) -> dict[str, float]:
    """One round of every figure on a fresh registry from ``tree``."""
    root = work / "root"
    process, url = start(tree, root)
    digest = "sha256:" + hashlib.sha256(LAYER).hexdigest()
    config = b'{"architecture":"amd64","os":"linux"}'
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    figures: dict[str, float] = {}
    try:
        with httpx.Client(base_url=url, timeout=120) as client:
            before = process_cpu(process.pid)
            answer = client.post(f"/v2/mono/blobs/uploads/?digest={digest}", content=LAYER)
            assert answer.status_code == 201, answer.text
            figures["push 64 MiB monolithic (CPU s)"] = process_cpu(process.pid) - before

            before = process_cpu(process.pid)
            location = client.post("/v2/chunked/blobs/uploads/").headers["Location"]
            for offset in range(0, len(LAYER), CHUNK):
                part = LAYER[offset : offset + CHUNK]
                headers = {**OCTETS, "Content-Range": f"{offset}-{offset + len(part) - 1}"}
                answer = client.patch(location, content=part, headers=headers)
                assert answer.status_code == 202, answer.text
                location = answer.headers["Location"]
            answer = client.put(f"{location}&digest={digest}")
            assert answer.status_code == 201, answer.text
            figures["push 64 MiB chunked 16 MiB (CPU s)"] = process_cpu(process.pid) - before

            client.post(f"/v2/mono/blobs/uploads/?digest={config_digest}", content=config)
            manifest = json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST,
                    "config": {
                        "mediaType": "application/vnd.oci.image.config.v1+json",
                        "digest": config_digest,
                        "size": len(config),
                    },
                    "layers": [
                        {
                            "mediaType": "application/vnd.oci.image.layer.v1.tar",
                            "digest": digest,
                            "size": len(LAYER),
                        }
                    ],
                }
            ).encode()
            for tag in range(TAGS):
                answer = client.put(
                    f"/v2/mono/manifests/t{tag}",
                    content=manifest,
                    headers={"Content-Type": OCI_MANIFEST},
                )
                assert answer.status_code == 201, answer.text

            before = process_cpu(process.pid)
            with client.stream("GET", f"/v2/mono/blobs/{digest}") as response:
                for _ in response.iter_bytes(1 << 20):
                    pass
            figures["pull 64 MiB (CPU s)"] = process_cpu(process.pid) - before

        for label, path, head in (
            ("HEAD blob c=32", f"/v2/mono/blobs/{digest}", True),
            (f"GET tags/list ({TAGS} tags) c=32", "/v2/mono/tags/list", False),
            ("GET manifest by tag c=32", "/v2/mono/manifests/t7", False),
        ):
            command = ["ab", "-q", "-n", str(requests), "-c", "32", "-k"]
            command += ["-i"] if head else []
            before = process_cpu(process.pid)
            subprocess.run([*command, url + path], capture_output=True, check=True)
            figures[f"{label} (CPU us each)"] = (process_cpu(process.pid) - before) / requests * 1e6
    finally:
        process.terminate()
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, required=True, help="source tree A")
    parser.add_argument("--after", type=Path, required=True, help="source tree B")
    parser.add_argument("--requests", type=int, default=20000, help="ab requests per figure")
    parser.add_argument("--rounds", type=int, default=2, help="alternated rounds")
    args = parser.parse_args()
    if shutil.which("ab") is None:
        raise SystemExit("ab is missing: apt-get install apache2-utils")
    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    results: dict[str, dict[str, list[float]]] = {}
    for round_number in range(args.rounds):
        order = list(trees) if round_number % 2 == 0 else list(reversed(trees))
        for name in order:
            with tempfile.TemporaryDirectory(prefix="bench-cpu-") as work:
                for figure, value in measure(trees[name], args.requests, Path(work)).items():
                    results.setdefault(figure, {}).setdefault(name, []).append(value)
    print(f"{'figure':45s} {'before':>10s} {'after':>10s} {'after/before':>13s}")
    for figure, values in results.items():
        before = statistics.median(values["before"])
        after = statistics.median(values["after"])
        ratio = after / before if before else float("nan")
        print(f"{figure:45s} {before:10.4f} {after:10.4f} {ratio:13.2f}")
    print("CPU time of the registry process (user + system); lower is better")


if __name__ == "__main__":
    main()
