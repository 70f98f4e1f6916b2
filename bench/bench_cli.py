"""Benchmark: the wall time of ``regtui``'s scripting commands against ``skopeo``'s, one run.

Starts the bundled registry on 127.0.0.1 with one repository (``team/app``: five tags, an
index among them), then times whole processes, each command once per round, in turn (medians of
``--rounds`` alternated rounds, so a drift of the machine's speed hits every command alike):

* ``skopeo list-tags`` (the yardstick) and ``regtui tags HOST/REPO``,
* ``regtui ls HOST`` and ``regtui inspect HOST/REPO:TAG`` (``skopeo inspect`` beside it),
* ``regtui --help`` and ``python -c pass`` (the interpreter's own start-up),

each as wall and CPU milliseconds (CPU from ``wait4``: the process's own, whatever the load)
and as a ratio of skopeo's median from the same run. The targets (issue 22): ``regtui tags``
at most 60 ms, ``regtui --help`` at most 40 ms of wall time, from a regular (not editable)
install. By default the script builds one: a virtual environment in a temporary directory,
this source tree installed into it with pip (``--regtui PATH`` times an existing one instead).

    python bench/bench_cli.py                       # builds a regular install, 15 rounds
    python bench/bench_cli.py --regtui .venv/bin/regtui --rounds 31
    python bench/bench_cli.py --baseline /tmp/old/bin/regtui   # an older regtui, same rounds
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
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGETS_MS = {"regtui tags": 60.0, "regtui --help": 40.0}


def regular_install(where: Path) -> Path:
    """A virtual environment in ``where`` with this tree installed (not editable): its regtui."""
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True)
    python = where / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(ROOT)],
        check=True,
    )
    return where / "bin" / "regtui"


def run_once(command: Sequence[str]) -> tuple[float, float]:
    """Wall and CPU seconds of one whole process (its output discarded; it must succeed)."""
    started = time.perf_counter()
    process = subprocess.Popen(
        list(command),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    errors = process.stderr.read() if process.stderr else b""
    if process.stderr:
        process.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed: {errors.decode(errors='replace').strip()}")
    return elapsed, usage.ru_utime + usage.ru_stime


def measure(commands: dict[str, list[str]], rounds: int) -> dict[str, tuple[float, float]]:
    """Label -> (median wall, median CPU) seconds over ``rounds`` alternated rounds."""
    for command in commands.values():
        run_once(command)  # warm the page cache and the bytecode
    walls: dict[str, list[float]] = {label: [] for label in commands}
    cpus: dict[str, list[float]] = {label: [] for label in commands}
    for _ in range(rounds):
        for label, command in commands.items():
            wall, cpu = run_once(command)
            walls[label].append(wall)
            cpus[label].append(cpu)
    return {
        label: (statistics.median(walls[label]), statistics.median(cpus[label]))
        for label in commands
    }


def report(figures: dict[str, tuple[float, float]], rounds: int, regtui: str) -> None:
    yardstick = figures["skopeo list-tags"][0]
    print(f"whole processes, medians of {rounds} alternated rounds; regtui: {regtui}")
    print(f"{'what':<22} {'wall ms':>8} {'CPU ms':>8} {'/ skopeo':>9} {'target':>8}")
    for label, (wall, cpu) in figures.items():
        target = TARGETS_MS.get(label)
        verdict = "" if target is None else ("meets" if 1000 * wall <= target else "MISSES")
        print(
            f"{label:<22} {1000 * wall:>8.1f} {1000 * cpu:>8.1f} {wall / yardstick:>9.2f} "
            f"{verdict:>8}"
        )
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15, help="alternated rounds (default: 15)")
    parser.add_argument(
        "--regtui", metavar="PATH", help="the regtui to time (default: a regular install, built)"
    )
    parser.add_argument(
        "--baseline",
        metavar="PATH",
        help="another regtui (e.g. main's) whose tags and --help run in the same rounds",
    )
    args = parser.parse_args(argv)
    skopeo = shutil.which("skopeo")
    if skopeo is None:
        raise SystemExit("skopeo is needed for the comparison")
    from tests.client.test_client_registries import populate
    from tests.helpers.servers import bundled_registry

    with tempfile.TemporaryDirectory(prefix="regtui-bench-cli-") as tmp:
        regtui = args.regtui or str(regular_install(Path(tmp) / "venv"))
        python = Path(regtui).parent / "python"
        with bundled_registry(Path(tmp) / "registry") as registry:
            populate(registry.url)
            host = registry.host
            commands = {
                "skopeo list-tags": [
                    skopeo,
                    "list-tags",
                    "--tls-verify=false",
                    f"docker://{host}/team/app",
                ],
                "regtui tags": [regtui, "tags", f"{host}/team/app"],
                "regtui ls": [regtui, "ls", host],
                "skopeo inspect": [
                    skopeo,
                    "inspect",
                    "--tls-verify=false",
                    f"docker://{host}/team/app:v1",
                ],
                "regtui inspect": [regtui, "inspect", f"{host}/team/app:v1"],
                "regtui --help": [regtui, "--help"],
                "python -c pass": [str(python), "-c", "pass"],
            }
            if args.baseline:
                commands["baseline tags"] = [args.baseline, "tags", f"{host}/team/app"]
                commands["baseline --help"] = [args.baseline, "--help"]
            report(measure(commands, args.rounds), args.rounds, regtui)
    return 0


if __name__ == "__main__":
    sys.exit(main())
