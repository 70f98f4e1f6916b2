#!/usr/bin/env python3
"""What ``regtui.quota`` costs a push: two bundled registries on a disk, identical but for a
repository quota (with room for everything) on the one; rounds alternate between them, each
pushing ``--images`` images (a config, one layer of ``--size`` random bytes, the manifest) one
after the other into one repository. Printed: the median seconds of one image's push and of one
blob upload (POST, then PUT with the body) per server, and the ratio quota / none.

With a quota, each blob upload reserves its bytes (a conditional write of the quota's record,
after a count of the repository's usage) and turns the reservation into the blob's at the
closing PUT; the manifest PUT checks and records its own. The repository grows through the run
(``--images`` x ``--rounds`` images), so the later counts list more revisions.

    .venv/bin/python bench/bench_quota.py --rounds 5 --images 20
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.helpers.servers import bundled_registry  # noqa: E402
from tui.imagegen import make_image, make_layer, push_blob, push_manifest  # noqa: E402

REPO = "bench/app"


def one_round(url: str, images: int, size: int) -> tuple[list[float], list[float]]:
    """Seconds per image push and per blob upload."""
    pushes: list[float] = []
    uploads: list[float] = []
    with httpx.Client(base_url=url, timeout=120) as client:
        for _ in range(images):
            image = make_image([make_layer({"data": os.urandom(size)})])
            started = time.perf_counter()
            for blob in image.blobs():
                before = time.perf_counter()
                push_blob(client, REPO, blob)
                uploads.append(time.perf_counter() - before)
            push_manifest(client, REPO, f"t{time.monotonic_ns()}", image.manifest)
            pushes.append(time.perf_counter() - started)
    return pushes, uploads


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--size", type=int, default=256 * 1024)
    args = parser.parse_args()
    quota = {"version": "0.1", "regtui": {"quota": [{"repository": REPO, "limit": "1TiB"}]}}
    plain = {"version": "0.1"}
    results: dict[str, tuple[list[float], list[float]]] = {"quota": ([], []), "none": ([], [])}
    with (
        tempfile.TemporaryDirectory() as work,
        bundled_registry(Path(work) / "quota", config=quota) as with_quota,
        bundled_registry(Path(work) / "none", config=plain) as without,
    ):
        servers = {"quota": with_quota.url, "none": without.url}
        for number in range(args.rounds):
            order = ("quota", "none") if number % 2 == 0 else ("none", "quota")
            for name in order:
                pushes, uploads = one_round(servers[name], args.images, args.size)
                results[name][0].extend(pushes)
                results[name][1].extend(uploads)
    print(f"load: {os.getloadavg()[0]:.2f} (1 min)")
    for label, index in (("image push", 0), ("blob upload", 1)):
        ours = statistics.median(results["quota"][index]) * 1000
        peer = statistics.median(results["none"][index]) * 1000
        print(
            f"{label}: quota {ours:.1f} ms, none {peer:.1f} ms (median), ratio {ours / peer:.2f}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
