#!/usr/bin/env python3
"""What ``http.debug.prometheus`` costs on small requests (issue 24's budget: at most 5% of
``bench_registry``'s HEAD blob and tags list throughput at concurrency 32).

Two bundled registries, identical but for the metrics, on copies of one seeded storage; ``ab``
(keep-alive) alternates between them for ``--rounds`` rounds; medians are printed with the
ratio. Both keep the access log on, as Distribution's stock config does."""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
for path in (REPO_ROOT, REPO_ROOT / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from bench_registry import ab_head, seed_tags  # noqa: E402

from tests.helpers.servers import bundled_registry, free_port  # noqa: E402
from tui.imagegen import make_image, push_image  # noqa: E402


def ab_get(url: str, *, concurrency: int, seconds: int) -> float:
    """GET requests per second that ab measured (any failure or non-2xx stops the run)."""
    result = subprocess.run(
        ["ab", "-q", "-k", "-t", str(seconds), "-n", "10000000", "-c", str(concurrency), url],
        check=True,
        capture_output=True,
        text=True,
    )
    failed = re.search(r"Failed requests:\s+(\d+)", result.stdout)
    if (failed and int(failed.group(1))) or "Non-2xx" in result.stdout:
        raise RuntimeError(f"ab saw failed requests against {url}:\n{result.stdout}")
    match = re.search(r"Requests per second:\s+([\d.]+)", result.stdout)
    if not match:
        raise RuntimeError(f"no rate in ab's output:\n{result.stdout}")
    return float(match.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5, help="ab duration per figure")
    parser.add_argument("--rounds", type=int, default=3, help="alternated rounds")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--tags", type=int, default=50, help="tags in the listed repository")
    args = parser.parse_args()
    if shutil.which("ab") is None:
        print("bench_metrics: error: ab (apache2-utils) is not installed", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="bench-metrics-"))
    try:
        seed = work / "seed"
        with bundled_registry(seed) as registry:
            seed_tags(registry.url, args.tags)
            image = make_image([{"bench": b"head me"}])
            push_image(registry.url, "bench/head", "v1", image)
        layers = seed / "docker/registry/v2/repositories/bench/head/_layers/sha256"
        layer = sorted(p.name for p in layers.iterdir())[0]  # a blob linked to bench/head
        roots = {name: work / name for name in ("plain", "metrics")}
        for root in roots.values():
            shutil.copytree(seed, root)
        debug = {
            "http": {"debug": {"addr": f"127.0.0.1:{free_port()}", "prometheus": {"enabled": True}}}
        }
        figures: dict[tuple[str, str], list[float]] = {}
        with (
            bundled_registry(roots["plain"], config={"log": {"level": "info"}}) as plain,
            bundled_registry(
                roots["metrics"], config={"log": {"level": "info"}, **debug}
            ) as metered,
        ):
            servers = {"plain": plain.url, "metrics": metered.url}
            for number in range(args.rounds):
                order = list(servers.items())
                for name, url in order if number % 2 == 0 else order[::-1]:
                    head = f"{url}/v2/bench/head/blobs/sha256:{layer}"
                    rate = ab_head(head, concurrency=args.concurrency, seconds=args.seconds)
                    figures.setdefault(("HEAD blob", name), []).append(rate)
                    tags = f"{url}/v2/bench/tagged/tags/list"
                    rate = ab_get(tags, concurrency=args.concurrency, seconds=args.seconds)
                    figures.setdefault(("tags list", name), []).append(rate)
        for what in ("HEAD blob", "tags list"):
            plain_rate = statistics.median(figures[(what, "plain")])
            metered_rate = statistics.median(figures[(what, "metrics")])
            cost = 100 * (1 - metered_rate / plain_rate)
            print(
                f"{what:10} c={args.concurrency}: without {plain_rate:8.0f} req/s, with metrics "
                f"{metered_rate:8.0f} req/s, cost {cost:+.1f}%"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
