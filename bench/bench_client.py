"""Benchmark: ``regtui tags`` and ``regtui du HOST`` against ``skopeo list-tags`` per repository.

Writes a storage directory in Distribution's layout directly (fast): ``--repos`` repositories
with ``--tags`` tags each, every tag its own image (manifest, config, one layer) over a base
layer shared by all repositories. Serves it with the bundled registry (``--server bundled``) or
Debian's docker-registry (``--server distribution``) on 127.0.0.1, then measures, in one run:

* ``skopeo list-tags`` once per repository (a sample of ``--sample`` repositories, extrapolated
  to all of them; ``--sample 0`` runs them all),
* ``regtui tags HOST/REPO`` per repository (the same sample, extrapolated),
* ``regtui tags`` over every repository in one process (the library: one client, concurrent),
* ``regtui du HOST --estimate``: catalog, every tag, every manifest over the API,
* ``regtui du HOST``: the same, or the bundled registry's own storage report when it offers one,
* start-up: ``regtui tags HOST/REPO`` and ``regtui --help`` beside ``skopeo list-tags`` and
  ``python -c pass``, each a whole process, medians of ``--rounds`` alternated rounds (wall
  time, and CPU time of the process from ``wait4``).

The targets: ``du`` of the whole registry in under 10 s; ``regtui tags`` in at most 150 ms and
``regtui --help`` in at most 80 ms (wall, loopback). regtui is this source tree's
(``python -m tui`` run from it, bytecode cached), or ``--regtui .venv/bin/regtui`` for one
installed in a virtual environment as CI builds it (``python -c pass`` then uses that
environment's Python).

Every figure is a command-line process, so it includes starting Python. Prints times and
ratios (regtui / skopeo: below 1 means regtui is faster).

    python bench/bench_client.py                     # 1,000 repositories x 20 tags
    python bench/bench_client.py --repos 100 --tags 5 --sample 0
    python bench/bench_client.py --startup-only --repos 1 --rounds 15
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

V2 = Path("docker") / "registry" / "v2"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def _write(path: Path, data: bytes | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data)
    else:
        path.write_bytes(data)


def _blob(v2: Path, data: bytes) -> str:
    hex_part = hashlib.sha256(data).hexdigest()
    path = v2 / "blobs" / "sha256" / hex_part[:2] / hex_part / "data"
    if not path.exists():
        _write(path, data)
    return f"sha256:{hex_part}"


def synthesize(root: Path, repos: int, tags: int) -> int:
    """Write the registry; return the number of blobs."""
    v2 = root / V2
    base = b"shared base layer " * 512
    base_digest = _blob(v2, base)
    blobs = 1
    for r in range(repos):
        repo = f"team{r % 20}/service{r}"
        repo_dir = v2 / "repositories" / repo
        _write(repo_dir / "_layers" / "sha256" / base_digest[7:] / "link", base_digest)
        for t in range(tags):
            layer = f"layer of {repo} build {t}".encode() * 64
            config = json.dumps(
                {
                    "architecture": "amd64",
                    "os": "linux",
                    "created": "2024-01-01T00:00:00Z",
                    "rootfs": {"type": "layers", "diff_ids": []},
                    "build": [r, t],
                }
            ).encode()
            layer_digest, config_digest = _blob(v2, layer), _blob(v2, config)
            manifest = json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST,
                    "config": {
                        "mediaType": OCI_CONFIG,
                        "digest": config_digest,
                        "size": len(config),
                    },
                    "layers": [
                        {"mediaType": OCI_LAYER, "digest": base_digest, "size": len(base)},
                        {"mediaType": OCI_LAYER, "digest": layer_digest, "size": len(layer)},
                    ],
                }
            ).encode()
            manifest_digest = _blob(v2, manifest)
            blobs += 3
            for digest in (layer_digest, config_digest):
                _write(repo_dir / "_layers" / "sha256" / digest[7:] / "link", digest)
            hex_part = manifest_digest[7:]
            _write(
                repo_dir / "_manifests" / "revisions" / "sha256" / hex_part / "link",
                manifest_digest,
            )
            tag_dir = repo_dir / "_manifests" / "tags" / f"1.{t}.0"
            _write(tag_dir / "current" / "link", manifest_digest)
            _write(tag_dir / "index" / "sha256" / hex_part / "link", manifest_digest)
    return blobs


@contextlib.contextmanager
def serve(kind: str, root: Path) -> Iterator[str]:
    """Start a registry on ``root``; yield its ``host:port``."""
    from tests.helpers.servers import bundled_registry, distribution_registry

    context = bundled_registry(root) if kind == "bundled" else distribution_registry(root)
    with context as running:
        yield running.host


CPU_USED: dict[str, float] = {}
"""Label -> CPU seconds (user + system) of the command: the client's share, whatever the load."""


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(command: Sequence[str], label: str | None = None) -> tuple[float, str]:
    started, cpu = time.perf_counter(), _children_cpu()
    done = subprocess.run(
        list(command), capture_output=True, text=True, check=False, cwd=ROOT, env=_env()
    )
    elapsed = time.perf_counter() - started
    if label is not None:
        CPU_USED[label] = _children_cpu() - cpu
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {done.stderr.strip() or done.stdout}")
    return elapsed, done.stdout


async def _all_tags(host: str, repos: list[str]) -> int:
    from tui.client import RegistryClient

    async with RegistryClient(host, max_concurrency=16) as client:
        lists = await asyncio.gather(*(client.list_tags(repo) for repo in repos))
    return sum(len(tags) for tags in lists)


REGTUI: list[str] = []
"""The regtui command (``--regtui``)."""


def regtui() -> list[str]:
    return REGTUI or [sys.executable, "-m", "tui"]


def _env() -> dict[str, str]:
    """The environment of the timed commands: bytecode cached, as an installed package has it
    (run from this source tree with ``PYTHONDONTWRITEBYTECODE`` set, every start would compile
    regtui's modules again)."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _process(command: Sequence[str]) -> tuple[float, float]:
    """Wall and CPU seconds of one whole process (its output discarded)."""
    started = time.perf_counter()
    process = subprocess.Popen(
        list(command),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        cwd=ROOT,
        env=_env(),
    )
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    errors = process.stderr.read() if process.stderr else b""
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {errors.decode(errors='replace').strip()}")
    return elapsed, usage.ru_utime + usage.ru_stime


def _python_of(command: list[str]) -> str:
    """The interpreter of the regtui script (its virtual environment's), else this one."""
    beside = Path(command[0]).parent / "python"
    return str(beside) if command[0] != sys.executable and beside.exists() else sys.executable


def startup(host: str, repo: str, skopeo: str, rounds: int) -> None:
    """Medians of alternated rounds: every command once per round, in turn."""
    commands = {
        "skopeo list-tags": [skopeo, "list-tags", "--tls-verify=false", f"docker://{host}/{repo}"],
        "regtui tags": [*regtui(), "tags", f"{host}/{repo}"],
        "regtui --help": [*regtui(), "--help"],
        "python -c pass": [_python_of(regtui()), "-c", "pass"],
    }
    for command in commands.values():
        _process(command)  # warm the page cache
    walls: dict[str, list[float]] = {label: [] for label in commands}
    cpus: dict[str, list[float]] = {label: [] for label in commands}
    for _ in range(rounds):
        for label, command in commands.items():
            wall, cpu = _process(command)
            walls[label].append(wall)
            cpus[label].append(cpu)
    skopeo_wall = statistics.median(walls["skopeo list-tags"])
    print(
        f"\nstart-up, whole processes, medians of {rounds} alternated rounds ({' '.join(regtui())})"
    )
    print(f"{'what':<20} {'wall ms':>8} {'CPU ms':>8} {'vs skopeo':>10} {'target':>8}")
    targets = {"regtui tags": 0.150, "regtui --help": 0.080}
    for label in commands:
        wall, cpu = statistics.median(walls[label]), statistics.median(cpus[label])
        target = targets.get(label)
        verdict = "" if target is None else ("meets" if wall <= target else "MISSES")
        print(
            f"{label:<20} {1000 * wall:>8.1f} {1000 * cpu:>8.1f} {wall / skopeo_wall:>10.2f} "
            f"{verdict:>8}"
        )
    print(f"load average {os.getloadavg()[0]:.1f}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repos", type=int, default=1000)
    parser.add_argument("--tags", type=int, default=20)
    parser.add_argument("--sample", type=int, default=100, help="0: run skopeo on every repo")
    parser.add_argument("--server", choices=("bundled", "distribution"), default="bundled")
    parser.add_argument("--concurrency", type=int, help="for du --estimate (default: regtui's)")
    parser.add_argument("--rounds", type=int, default=9, help="start-up rounds (default: 9)")
    parser.add_argument("--startup-only", action="store_true", help="only the start-up figures")
    parser.add_argument(
        "--regtui",
        metavar="COMMAND",
        help="the regtui to time, e.g. .venv/bin/regtui (default: python -m tui, this tree)",
    )
    args = parser.parse_args(argv)
    if args.regtui:
        REGTUI[:] = args.regtui.split()
    skopeo = shutil.which("skopeo")
    if skopeo is None:
        raise SystemExit("skopeo is needed for the comparison")
    env_note = f"{os.cpu_count()} CPUs"
    with tempfile.TemporaryDirectory(prefix="regtui-bench-client-") as tmp:
        root = Path(tmp) / "registry"
        started = time.perf_counter()
        blobs = synthesize(root, args.repos, args.tags)
        print(
            f"wrote {args.repos} repos x {args.tags} tags ({blobs} blobs) "
            f"in {time.perf_counter() - started:.1f} s; {env_note}; server: {args.server}"
        )
        with serve(args.server, root) as host:
            repos_time, out = timed([*regtui(), "ls", host])
            repos = out.split()
            assert len(repos) == args.repos, f"catalog has {len(repos)} repositories"
            startup(host, repos[0], skopeo, args.rounds)
            if args.startup_only:
                return 0
            sample = repos if args.sample <= 0 else repos[:: max(1, len(repos) // args.sample)]
            sample = sample[: args.sample] if args.sample > 0 else sample
            scale = len(repos) / len(sample)

            skopeo_time = 0.0
            for repo in sample:
                elapsed, out = timed(
                    [skopeo, "list-tags", "--tls-verify=false", f"docker://{host}/{repo}"]
                )
                skopeo_time += elapsed
                expected = json.loads(out)["Tags"]
            regtui_time = 0.0
            for repo in sample:
                elapsed, out = timed([*regtui(), "tags", f"{host}/{repo}"])
                regtui_time += elapsed
            assert out.split() == expected, "regtui tags differs from skopeo list-tags"

            started = time.perf_counter()
            total_tags = asyncio.run(_all_tags(host, repos))
            library_time = time.perf_counter() - started + repos_time
            assert total_tags == args.repos * args.tags

            concurrency = ["--concurrency", str(args.concurrency)] if args.concurrency else []
            estimate_time, out = timed(
                [*regtui(), "du", host, "--json", "--estimate", *concurrency], "du --estimate"
            )
            report = json.loads(out)
            assert report["blob_count"] == blobs, (report["blob_count"], blobs)
            du_time, out = timed([*regtui(), "du", host, "--json"], "du")
            report = json.loads(out)
            assert report["blob_count"] == blobs, (report["blob_count"], blobs)
            du_source = "estimate" if report["is_estimate"] else "the registry's own report"

    skopeo_all = skopeo_time * scale
    rows = [
        (f"skopeo list-tags, per repo (x{len(repos)})", skopeo_all),
        (f"regtui tags, per repo (x{len(repos)})", regtui_time * scale),
        ("regtui ls + all tags in one client", library_time),
        ("regtui du HOST --estimate (every manifest)", estimate_time),
        (f"regtui du HOST ({du_source})", du_time),
    ]
    sampled = "" if scale == 1 else f" (sampled {len(sample)} repos, extrapolated)"
    print(f"\n{'what':<44} {'seconds':>9} {'vs skopeo':>10}{sampled}")
    for label, seconds in rows:
        print(f"{label:<44} {seconds:>9.2f} {seconds / skopeo_all:>10.3f}")
    print(
        f"\nper repository: skopeo {1000 * skopeo_time / len(sample):.0f} ms, "
        f"regtui tags {1000 * regtui_time / len(sample):.0f} ms (process start included)"
    )
    for label, seconds in (("du", du_time), ("du --estimate", estimate_time)):
        verdict = "meets" if seconds < 10 else "MISSES"
        print(
            f"{label} of {args.repos * args.tags} tags: {seconds:.2f} s "
            f"({verdict} the 10 s target); regtui's CPU {CPU_USED[label]:.2f} s; "
            f"load average {os.getloadavg()[0]:.1f}"
        )
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.exit(main())
