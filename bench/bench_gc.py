"""Benchmark: regtui's GC and du against Distribution's ``registry garbage-collect`` and ``du -sb``.

Synthesizes a storage directory in Distribution's layout (written directly: fast, small blobs):
``--images`` images in ``--repos`` repositories, each repository with a shared base layer, each
image with its own layer, config and manifest; a fifth of the images deleted (as the API deletes:
revision link and tag gone) and a tenth of the tags moved (the old manifest left untagged). Then,
on identical copies with a warm page cache, in the same run:

* ``docker-registry garbage-collect --dry-run`` vs ``regtui gc --dry-run``,
* ``docker-registry garbage-collect`` vs ``regtui gc`` (real runs, each on its own copy),
* ``du -sb`` vs ``regtui du --root``,

all as command-line processes (regtui's times include starting Python, its modules compiled
once as an install does), medians of ``--runs``
rounds alternating the two (a real run gets fresh copies each round). Prints the Go release of
the Distribution binary, times and ratios (regtui / other: below 1 means regtui is faster) and
checks both GCs chose the same blobs.

    python bench/bench_gc.py                # 2,000 images in 200 repos, then 20,000 in 2,000
    python bench/bench_gc.py --images 2000 --repos 200
    python bench/bench_gc.py --images 200000 --repos 20000 --runs 1 --tree /var/tmp/gc-200k \\
        --hardlink

Each figure: wall time, CPU time (user + system of the process and its threads: steadier than
wall time on a loaded machine) and peak memory (the process's ``VmHWM``), ours and the peer's.
The dry runs read the synthetic tree itself (GC's dry run writes nothing); the real runs each
get a fresh copy. ``--tree`` keeps the tree for the next run (writing 200,000 images takes a
while: ``--jobs`` processes write it).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import multiprocessing
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.bench_registry import alternate, go_version  # noqa: E402

V2 = Path("docker") / "registry" / "v2"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


class Writer:
    """Writes blobs and links in Distribution's layout with bare ``os`` calls: each directory
    made once by ``mkdir`` (its parent known to exist), each file by one ``open``/``write``
    (no ``pathlib``, no ``makedirs`` probing every level): 200,000 images in minutes."""

    def __init__(self, root: Path) -> None:
        v2 = os.path.join(root, V2)
        self.blobs = os.path.join(v2, "blobs", "sha256")
        self.repos = os.path.join(v2, "repositories")
        for two in range(256):
            os.makedirs(os.path.join(self.blobs, f"{two:02x}"), exist_ok=True)
        os.makedirs(self.repos, exist_ok=True)

    @staticmethod
    def _file(path: str, data: bytes) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)

    @staticmethod
    def _mkdir(path: str) -> None:
        with contextlib.suppress(FileExistsError):
            os.mkdir(path)

    def blob(self, data: bytes) -> str:
        hex_part = hashlib.sha256(data).hexdigest()
        directory = f"{self.blobs}/{hex_part[:2]}/{hex_part}"
        self._mkdir(directory)
        self._file(directory + "/data", data)
        return "sha256:" + hex_part

    def repository(self, repo: str) -> str:
        """Make ``repo``'s directories; its path."""
        top = f"{self.repos}/{repo}"
        for sub in ("_layers/sha256", "_manifests/revisions/sha256", "_manifests/tags"):
            os.makedirs(f"{top}/{sub}", exist_ok=True)
        return top

    def link(self, directory: str, digest: str) -> None:
        self._mkdir(directory)
        self._file(directory + "/link", digest.encode())

    def layer_link(self, top: str, digest: str) -> None:
        self.link(f"{top}/_layers/sha256/{digest[7:]}", digest)

    def revision(self, top: str, digest: str) -> None:
        self.link(f"{top}/_manifests/revisions/sha256/{digest[7:]}", digest)

    def tag(self, top: str, tag: str, digest: str) -> None:
        tag_dir = f"{top}/_manifests/tags/{tag}"
        self._mkdir(tag_dir)
        self.link(tag_dir + "/current", digest)
        self._mkdir(tag_dir + "/index")
        self._mkdir(tag_dir + "/index/sha256")
        self.link(f"{tag_dir}/index/sha256/{digest[7:]}", digest)


def _descriptor(media_type: str, digest: str, size: int) -> dict[str, object]:
    return {"mediaType": media_type, "size": size, "digest": digest}


def synthesize(root: Path, images: int, repos: int, which: range | None = None) -> None:
    """``images`` images in ``repos`` repositories (or the repositories ``which`` of them).

    An image deleted through the API (revision link and tag gone) is written without them:
    its blobs and layer links stay, as the API's delete leaves them."""
    writer = Writer(root)
    per_repo = max(1, images // repos)
    for r in which if which is not None else range(repos):
        repo = f"ns{r % 10}/repo{r}"
        top = writer.repository(repo)
        base = f"base layer of {repo}".encode() * 8
        base_digest = writer.blob(base)
        writer.layer_link(top, base_digest)
        for i in range(per_repo):
            layer = f"layer {i} of {repo}".encode() * 16
            config = json.dumps({"architecture": "amd64", "os": "linux", "n": i, "r": r}).encode()
            layer_digest = writer.blob(layer)
            config_digest = writer.blob(config)
            manifest = json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": DOCKER_MANIFEST,
                    "config": _descriptor(
                        "application/vnd.docker.container.image.v1+json", config_digest, len(config)
                    ),
                    "layers": [
                        _descriptor(
                            "application/vnd.docker.image.rootfs.diff.tar.gzip",
                            base_digest,
                            len(base),
                        ),
                        _descriptor(
                            "application/vnd.docker.image.rootfs.diff.tar.gzip",
                            layer_digest,
                            len(layer),
                        ),
                    ],
                },
                indent=3,
            ).encode()
            manifest_digest = writer.blob(manifest)
            for digest in (layer_digest, config_digest, manifest_digest):
                writer.layer_link(top, digest)
            if i % 5 == 3:  # deleted through the API: revision and tag gone
                continue
            writer.revision(top, manifest_digest)
            tag = f"v{i}"
            if i % 10 == 9:  # a moved tag: the previous image stays as an untagged revision
                tag = f"v{i - 2}"
            writer.tag(top, tag, manifest_digest)


@dataclass
class Run:
    """One process: wall time, CPU time (user + system, every thread), peak memory (KiB) and
    its output."""

    wall: float
    cpu: float
    peak_kib: int
    out: str


def _vmhwm(pid: int) -> int:
    """``VmHWM`` of a running process in KiB (as ``tests.helpers.memory.peak_kib`` reads its
    own), 0 once it has exited."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _timed(command: list[str], env: dict[str, str] | None = None) -> Run:
    """Run ``command``; its peak memory is its own ``VmHWM``, read every few milliseconds
    while it runs (``ru_maxrss`` would carry over this process's own over the exec)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=err, text=True, env=env)
        peak = 0
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            peak = max(peak, _vmhwm(process.pid))
            time.sleep(0.002)
        elapsed = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        output = out.read()
        if process.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed: {err.read() or output}")
    return Run(elapsed, usage.ru_utime + usage.ru_stime, peak, output)


def _config(root: Path, path: Path) -> Path:
    path.write_text(
        json.dumps(
            {
                "version": 0.1,
                "log": {"level": "error"},
                "storage": {
                    "filesystem": {"rootdirectory": str(root)},
                    "delete": {"enabled": True},
                },
                "http": {"addr": "127.0.0.1:0"},
            }
        )
    )
    return path


def _blob_names(root: Path) -> set[str]:
    blobs = root / V2 / "blobs" / "sha256"
    return {d.name for prefix in blobs.iterdir() for d in prefix.iterdir() if (d / "data").exists()}


def _warm(*roots: Path) -> None:
    for root in roots:
        subprocess.run(["du", "-sb", str(root)], capture_output=True, check=True)


def _alternated(
    runs: int, ours: Callable[[], Run], theirs: Callable[[], Run] | None
) -> tuple[Run, Run | None]:
    """Medians of ``runs`` alternated rounds (:func:`bench.bench_registry.alternate`) of wall
    and CPU time, the highest peak memory; each with the output of its first run."""
    results: dict[str, list[Run]] = {"ours": [], "theirs": []}
    runners = {"ours": ours, **({"theirs": theirs} if theirs is not None else {})}
    for _, name in alternate(list(runners), runs):
        results[name].append(runners[name]())

    def median(done: list[Run]) -> Run:
        return Run(
            statistics.median(r.wall for r in done),
            statistics.median(r.cpu for r in done),
            max(r.peak_kib for r in done),
            done[0].out,
        )

    return median(results["ours"]), (median(results["theirs"]) if results["theirs"] else None)


def _synthesize_part(args: tuple[Path, int, int, int, int]) -> None:
    root, images, repos, first, last = args
    synthesize(root, images, repos, range(first, last))


def generate(root: Path, images: int, repos: int, jobs: int) -> None:
    """:func:`synthesize` in ``jobs`` processes, each writing its own repositories (the
    writes wait on the disk more than on Python: processes overlap the waits)."""
    if jobs <= 1:
        synthesize(root, images, repos)
        return
    step = -(-repos // jobs)
    parts = [(root, images, repos, n, min(n + step, repos)) for n in range(0, repos, step)]
    with multiprocessing.Pool(jobs) as pool:
        pool.map(_synthesize_part, parts)


def _row(name: str, mine: Run, other: Run | None) -> None:
    """One row of the table, printed as soon as it is measured (a long run stopped halfway
    keeps what it measured)."""
    if other is None:
        print(f"   {name:<14} {mine.wall:>7.2f}s {'-':>8} {'-':>6}", flush=True)
        return
    print(
        f"   {name:<14} {mine.wall:>7.2f}s {other.wall:>7.2f}s {mine.wall / other.wall:>5.2f}x"
        f"   {mine.cpu:>10.2f}s {other.cpu:>6.2f}s {mine.cpu / other.cpu:>5.2f}x"
        f"   {mine.peak_kib / 1024:>16.1f} {other.peak_kib / 1024:>6.1f}",
        flush=True,
    )


def bench(
    images: int,
    repos: int,
    workdir: Path,
    runs: int,
    *,
    jobs: int,
    tree: Path | None,
    real: bool,
    hardlink: bool = False,
) -> None:
    registry = shutil.which("docker-registry")
    regtui = [sys.executable, "-m", "tui"]
    base = tree if tree is not None else workdir / f"base-{images}"
    started = time.perf_counter()
    if not (base / V2).is_dir():
        generate(base, images, repos, jobs)
    print(
        f"\n== {images} images in {repos} repositories (written in "
        f"{time.perf_counter() - started:.1f} s), medians of {runs} alternated rounds",
        flush=True,
    )
    gc = [*regtui, "gc", "--grace-period", "0", "--force", "--json"]
    # The dry runs read the tree itself: nothing is written there.
    dry = base
    _warm(base)
    # regtui as installed: its modules compiled once (pip does it at install), not at every
    # start, whatever PYTHONDONTWRITEBYTECODE says; one untimed run compiles them.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
    empty = workdir / "empty"
    (empty / V2).mkdir(parents=True, exist_ok=True)
    _timed([*gc, "--root", str(empty), "--dry-run"], env)  # compiles what a dry run imports
    _timed([*regtui, "du", "--root", str(empty), "--json"], env)

    print(
        f"   {'':<14} {'regtui':>8} {'other':>8} {'ratio':>6}   {'CPU: regtui':>11} {'other':>7}"
        f" {'ratio':>6}   {'peak MiB: regtui':>16} {'other':>6}   (other: Distribution; du -sb)",
        flush=True,
    )
    config = _config(dry, workdir / f"dry-{images}.yml")
    ours_dry, theirs_dry = _alternated(
        runs,
        lambda: _timed([*gc, "--root", str(dry), "--dry-run"], env),
        (lambda: _timed([registry, "garbage-collect", "--dry-run", str(config)]))
        if registry
        else None,
    )
    ours = {r["digest"] for r in json.loads(ours_dry.out)["removals"] if r["kind"] == "blob"}
    if theirs_dry is not None:
        eligible = set(re.findall(r"^blob eligible for deletion: (\S+)$", theirs_dry.out, re.M))
        same = "same blobs" if eligible == ours else f"DIFFERENT: {len(eligible)} vs {len(ours)}"
        print(f"   {len(ours)} blobs eligible ({same})", flush=True)
    _row("gc --dry-run", ours_dry, theirs_dry)

    _warm(base)
    du_ours, du_theirs = _alternated(
        runs,
        lambda: _timed([*regtui, "du", "--root", str(base), "--json"], env),
        lambda: _timed(["du", "-sb", str(base)]),
    )
    _row("du", du_ours, du_theirs)

    copies: list[Path] = []

    # With --hardlink, each copy is `cp -al` (both GCs only unlink and rename, never write a
    # file in place: checked below) and goes right after its run, so one copy at a time is
    # on disk; the blobs it kept are kept by name.
    left: dict[str, set[str]] = {}

    def fresh(name: str) -> Path:
        copy = workdir / f"{name}-{images}-{len(copies)}"
        subprocess.run(["cp", "-al" if hardlink else "-a", str(base), str(copy)], check=True)
        _warm(copy)
        copies.append(copy)
        return copy

    def finished(done: Run, root: Path) -> Run:
        done.out = str(root)
        if hardlink:
            left[done.out] = _blob_names(root)
            shutil.rmtree(root)
        return done

    def blobs_left(run: Run) -> set[str]:
        return left[run.out] if hardlink else _blob_names(Path(run.out))

    def ours_real() -> Run:
        root = fresh("regtui-real")
        return finished(_timed([*gc, "--root", str(root)], env), root)

    def theirs_real() -> Run:
        root = fresh("dist-real")
        config = _config(root, workdir / f"real-{images}-{len(copies)}.yml")
        return finished(_timed([registry or "", "garbage-collect", str(config)]), root)

    if real:
        before = _blob_names(base) if hardlink else set()
        ours_run, theirs = _alternated(runs, ours_real, theirs_real if registry else None)
        _row("gc (real run)", ours_run, theirs)
        if theirs is not None:
            left_theirs, left_ours = blobs_left(theirs), blobs_left(ours_run)
            same = "the same" if left_theirs == left_ours else "DIFFERENT"
            print(
                f"   after the real runs, {len(left_ours)} blobs left: {same} on both copies",
                flush=True,
            )
        if hardlink and _blob_names(base) != before:
            raise SystemExit("a real run on a hard-linked copy changed the tree")
        for path in copies:
            if path.exists():
                shutil.rmtree(path)

    if tree is None:
        shutil.rmtree(base)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, help="images (default: 2,000 then 20,000)")
    parser.add_argument("--repos", type=int, help="repositories (default: images / 10)")
    parser.add_argument("--runs", type=int, default=3, help="alternated rounds (medians)")
    parser.add_argument(
        "--jobs", type=int, default=4, help="processes writing the synthetic tree (default 4)"
    )
    parser.add_argument(
        "--tree",
        type=Path,
        help="keep the synthetic tree here and reuse it when it exists (one size only)",
    )
    parser.add_argument(
        "--no-real", action="store_true", help="skip the real runs (each needs two copies)"
    )
    parser.add_argument(
        "--hardlink",
        action="store_true",
        help="real runs on `cp -al` copies, each removed after its run (200,000 images)",
    )
    args = parser.parse_args()
    sizes = (
        [(args.images, args.repos or max(1, args.images // 10))]
        if args.images
        else [
            (2000, 200),
            (20000, 2000),
        ]
    )
    if args.tree is not None and len(sizes) > 1:
        parser.error("--tree needs --images")
    registry = shutil.which("docker-registry")
    if not registry:
        print("docker-registry not installed: regtui times only", file=sys.stderr)
    else:
        print(
            f"Distribution: Debian's docker-registry built with {go_version(registry)}; "
            "regtui's times include starting Python"
        )
    with tempfile.TemporaryDirectory(prefix="regtui-bench-gc-") as tmp:
        for images, repos in sizes:
            bench(
                images,
                repos,
                Path(tmp),
                args.runs,
                jobs=args.jobs,
                tree=args.tree,
                real=not args.no_real,
                hardlink=args.hardlink,
            )


if __name__ == "__main__":
    main()
