"""Benchmark the bundled registry as a pull-through cache, with its peers in the same run.

One upstream: Debian's docker-registry on loopback, without auth (Distribution 2.8's proxy
authenticates to its upstream with tokens only, so an htpasswd upstream would shut it out).
Two figures, each measured ``--rounds`` times with the two sides alternated (A B, B A, ...):

* **first pull**: a fresh image (``--layers`` layers of ``--size-mib`` MiB of incompressible
  bytes, new bytes every round) pushed to the upstream, then pulled by ``skopeo copy`` to a
  ``dir:`` through regtui (``regtui.proxy``, namespace ``up``) and through Debian's
  docker-registry in proxy mode (``proxy.remoteurl``), each pulling from the upstream;
* **cached pull**: the same image pulled again through regtui (every blob from its storage,
  the tag checked with one HEAD upstream, as Distribution does), against a pull of the same
  image pushed to the same regtui server outside the cached namespace.

The table shows medians (seconds, lower is better) and the ratio of medians (theirs / ours:
above 1 means regtui is faster).

Usage (from the repository root)::

    python3 bench/bench_mirror.py                                  # 5 x 32 MiB, 5 rounds
    python3 bench/bench_mirror.py --layers 3 --size-mib 8 --rounds 3   # a quick run
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.helpers.servers import bundled_registry, distribution_registry  # noqa: E402
from tui.imagegen import Blob, Image, make_image, push_image  # noqa: E402

MIB = 1024 * 1024
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar"


def fresh_image(layers: int, size: int) -> Image:
    """An image of ``layers`` layers of new incompressible bytes (stored as they are)."""
    return make_image([Blob(os.urandom(size), LAYER_TYPE) for _ in range(layers)])


def skopeo_pull(host: str, reference: str, workdir: Path) -> float:
    """Seconds ``skopeo copy docker://HOST/REF dir:…`` takes (the copy is removed after)."""
    target = Path(tempfile.mkdtemp(dir=workdir, prefix="pull-"))
    started = time.perf_counter()
    result = subprocess.run(
        [
            "skopeo",
            "copy",
            "--src-tls-verify=false",
            f"docker://{host}/{reference}",
            f"dir:{target}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    elapsed = time.perf_counter() - started
    shutil.rmtree(target, ignore_errors=True)
    if result.returncode != 0:
        raise SystemExit(f"bench: skopeo failed pulling {host}/{reference}: {result.stderr}")
    return elapsed


def alternate(sides: Sequence[str], rounds: int) -> Iterator[tuple[int, str]]:
    for n in range(rounds):
        for side in sides if n % 2 == 0 else list(reversed(sides)):
            yield n, side


def run(
    label: str, sides: Sequence[str], rounds: int, figure: Callable[[int, str], float]
) -> tuple[str, dict[str, float]]:
    values: dict[str, list[float]] = {side: [] for side in sides}
    for n, side in alternate(sides, rounds):
        values[side].append(figure(n, side))
    print(f"  measured {label}: {values}", file=sys.stderr)
    return label, {side: statistics.median(v) for side, v in values.items()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=5)
    parser.add_argument("--size-mib", type=int, default=32, help="size of each layer")
    parser.add_argument("--rounds", type=int, default=5, help="alternated rounds per figure")
    args = parser.parse_args(argv)
    missing = [tool for tool in ("docker-registry", "skopeo") if not shutil.which(tool)]
    if missing:
        print(f"bench: error: install {', '.join(missing)}", file=sys.stderr)
        return 1
    workdir = Path(tempfile.mkdtemp(prefix="regtui-bench-mirror-"))
    size = args.size_mib * MIB
    try:
        with ExitStack() as stack:
            up = stack.enter_context(distribution_registry(workdir / "upstream"))
            config = {"regtui": {"proxy": [{"namespace": "up", "remoteurl": up.url}]}}
            ours = stack.enter_context(bundled_registry(workdir / "regtui", config=config))
            theirs = stack.enter_context(
                distribution_registry(
                    workdir / "distribution", config={"proxy": {"remoteurl": up.url}}
                )
            )
            images = [fresh_image(args.layers, size) for _ in range(args.rounds)]
            for n, image in enumerate(images):
                push_image(up.url, f"bench/r{n}", "v1", image)
                push_image(ours.url, f"local/r{n}", "v1", image)

            def first(n: int, side: str) -> float:
                if side == "regtui":
                    return skopeo_pull(ours.host, f"up/bench/r{n}:v1", workdir)
                return skopeo_pull(theirs.host, f"bench/r{n}:v1", workdir)

            def cached(n: int, side: str) -> float:
                if side == "regtui cached":
                    return skopeo_pull(ours.host, f"up/bench/r{n}:v1", workdir)
                return skopeo_pull(ours.host, f"local/r{n}:v1", workdir)

            rows = [
                run(
                    "first pull (from the upstream)", ["regtui", "distribution"], args.rounds, first
                ),
                run(
                    "cached pull vs pushed image",
                    ["regtui cached", "regtui pushed"],
                    args.rounds,
                    cached,
                ),
            ]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    total = args.layers * args.size_mib
    print(f"image: {args.layers} layers x {args.size_mib} MiB = {total} MiB; {args.rounds} rounds")
    print(f"{'measure':<34} {'ours (s)':>10} {'peer (s)':>10} {'ratio':>8}  (peer)")
    for label, medians in rows:
        (_, ours_value), (peer_name, peer_value) = medians.items()
        ratio = peer_value / ours_value if ours_value else float("nan")
        print(f"{label:<34} {ours_value:>10.3f} {peer_value:>10.3f} {ratio:>7.2f}x  ({peer_name})")
    print("\nmedians; ratio = peer / ours (above 1: regtui is faster)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
