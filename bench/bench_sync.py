"""Benchmark: a second ``regtui sync`` of unchanged repositories against ``skopeo sync``'s.

Debian's docker-registry (Distribution 2.8) holds ``--repos`` repositories of one small image
each (the source); the bundled registry is the target. Each tool first copies everything once
(into its own prefix), then, in ``--rounds`` alternated rounds, runs again over the unchanged
sources: regtui compares digests and moves nothing, skopeo copies again (it skips blobs the
target has, and writes the manifests). Whole processes, wall time, medians; the issue's target
(23): regtui's second run at least 5x as fast as skopeo's.

The source runs as an operator runs Debian's docker-registry: its stock config.yml's
``storage.cache.blobdescriptor: inmemory`` (``--source-cache none`` without it), for both tools.
regtui is timed as a user runs it: the ``regtui`` script of a regular install (not editable:
the editable install's import hook and ``python -m``'s runpy cost a start-up ~15 ms), built in a
temporary virtual environment unless ``--regtui PATH`` names one (``--regtui module``: this
tree's ``python -m tui``, as the bench did before).

    python bench/bench_sync.py [--repos 100] [--rounds 5] [--regtui PATH|module]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


CPU: dict[str, list[float]] = {"regtui": [], "skopeo": []}
"""Each run's own CPU time (user + system), by tool: on a loaded machine the wall time of a
single-threaded process is mostly its wait for a CPU, so this says what a quiet machine would."""


ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
"""regtui's modules start from their bytecode, as a regular install's do (from this source tree
with ``PYTHONDONTWRITEBYTECODE`` set, every start would compile them; the first, untimed run
writes it)."""


SERVERS_CPU: dict[str, list[float]] = {"regtui": [], "skopeo": []}
"""The CPU time both registries spent answering each run, by tool: on a machine where every
process waits for a CPU, the run's whole cost is the tool's CPU and theirs."""
SOURCE_CPU: dict[str, list[float]] = {"regtui": [], "skopeo": []}
"""Of which the source's (Distribution: a few milliseconds of CPU per request, whatever it is)."""
SERVER_PIDS: list[int] = []
"""The source's, then the target's."""


def process_cpu(pid: int) -> float:
    """A running process's CPU time so far (user + system, its threads included), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(command: list[str], tool: str = "") -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    servers_before = sum(process_cpu(pid) for pid in SERVER_PIDS)
    source_before = process_cpu(SERVER_PIDS[0])
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=ENV)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[:3])}… failed: {done.stderr.strip()[-500:]}")
    if tool:
        used = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
        CPU[tool].append(used)
        servers = sum(process_cpu(pid) for pid in SERVER_PIDS) - servers_before
        SERVERS_CPU[tool].append(servers)
        SOURCE_CPU[tool].append(process_cpu(SERVER_PIDS[0]) - source_before)
    return elapsed


def which_path(command: list[str]) -> str:
    """Which plan a run took (one more run, untimed, its imports listed): the quick check
    alone, or the engine (after the check gave up, or without it)."""
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=ENV)
    loaded = {line.split("|")[-1].strip() for line in done.stderr.splitlines()}
    if "tui.data.sync" in loaded:
        return "the engine (asyncio and httpx loaded)"
    if "tui.data.sync_check" in loaded:
        return "the quick check alone (neither asyncio nor httpx loaded)"
    return "neither plan (the run failed?)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repos", type=int, default=100, help="repositories (default: 100)")
    parser.add_argument("--rounds", type=int, default=5, help="alternated rounds (default: 5)")
    parser.add_argument(
        "--regtui",
        metavar="PATH",
        help="the regtui script to time (default: a regular install, built); 'module': this "
        "tree's python -m tui",
    )
    parser.add_argument(
        "--source-cache",
        choices=("inmemory", "none"),
        default="inmemory",
        help="the source's storage.cache.blobdescriptor (default: inmemory, as Debian's "
        "docker-registry ships it)",
    )
    args = parser.parse_args()
    skopeo = shutil.which("skopeo")
    if skopeo is None:
        raise SystemExit("skopeo is needed for the comparison")
    from tests.helpers.servers import bundled_registry, distribution_registry
    from tui.imagegen import make_image, push_image

    cache = {"blobdescriptor": args.source_cache} if args.source_cache != "none" else None
    with tempfile.TemporaryDirectory(prefix="regtui-bench-sync-") as tmp:
        base = Path(tmp)
        if args.regtui == "module":
            regtui_command = [sys.executable, "-m", "tui"]
        else:
            from bench.bench_cli import regular_install

            script = args.regtui or str(regular_install(base / "venv"))
            regtui_command = [str(Path(script).parent / "python"), script]
        with (
            distribution_registry(
                base / "source", config={"storage": {"cache": cache}} if cache else None
            ) as source,
            bundled_registry(base / "target") as target,
        ):
            SERVER_PIDS[:] = [source.process.pid, target.process.pid]
            names = [f"team/app{n:03d}" for n in range(args.repos)]
            for name in names:
                push_image(source.url, name, "1.0", make_image([{"f": os.urandom(2048)}]))
            spec = base / "sync.yml"
            spec.write_text(
                yaml.safe_dump(
                    {
                        "sync": [
                            {
                                "source": source.host,
                                "target": f"{target.host}/regtui",
                                "repositories": ["team/*"],
                            }
                        ]
                    }
                )
            )
            listing = base / "skopeo.yml"
            listing.write_text(
                yaml.safe_dump(
                    {source.host: {"tls-verify": False, "images": {n: [] for n in names}}}
                )
            )
            regtui = [*regtui_command, "sync", str(spec)]
            skopeo_sync = [
                skopeo,
                "sync",
                "--src",
                "yaml",
                "--dest",
                "docker",
                "--dest-tls-verify=false",
                "--all",
                str(listing),
                f"{target.host}/skopeo",
            ]
            first = {"regtui": timed(regtui), "skopeo": timed(skopeo_sync)}
            again: dict[str, list[float]] = {"regtui": [], "skopeo": []}
            for _ in range(args.rounds):
                again["regtui"].append(timed(regtui, "regtui"))
                again["skopeo"].append(timed(skopeo_sync, "skopeo"))
            path = which_path([regtui[0], "-X", "importtime", *regtui[1:]])
    medians = {tool: statistics.median(times) for tool, times in again.items()}
    print(f"{args.repos} repositories, one image each; medians of {args.rounds} alternated rounds")
    print(f"regtui: {' '.join(regtui_command)}; source cache: {args.source_cache}")
    print(
        f"{'':<8} {'first s':>8} {'again s':>8} {'again CPU s':>12} {'registries CPU s':>17} "
        f"{'of which source':>16}"
    )
    for tool in ("regtui", "skopeo"):
        cpu = statistics.median(CPU[tool])
        servers = statistics.median(SERVERS_CPU[tool])
        source_cpu = statistics.median(SOURCE_CPU[tool])
        print(
            f"{tool:<8} {first[tool]:>8.2f} {medians[tool]:>8.2f} {cpu:>12.2f} {servers:>17.2f} "
            f"{source_cpu:>16.2f}"
        )
    ratio = medians["skopeo"] / medians["regtui"]
    whole = {t: statistics.median(CPU[t]) + statistics.median(SERVERS_CPU[t]) for t in CPU}
    print(
        f"CPU of a second run, the tool's and both registries': regtui {whole['regtui']:.2f} s, "
        f"skopeo {whole['skopeo']:.2f} s ({whole['skopeo'] / whole['regtui']:.1f}x)"
    )
    verdict = "meets" if ratio >= 5 else "MISSES"
    print(f"second run: regtui {ratio:.1f}x as fast as skopeo sync (target 5x: {verdict})")
    print(f"regtui's second run went through {path}")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
