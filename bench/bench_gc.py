"""Benchmark: regtui's GC and du against Distribution's ``registry garbage-collect`` and ``du -sb``.

Synthesizes a storage directory in Distribution's layout (written directly: fast, small blobs):
``--images`` images in ``--repos`` repositories, each repository with a shared base layer, each
image with its own layer, config and manifest; a fifth of the images deleted (as the API deletes:
revision link and tag gone) and a tenth of the tags moved (the old manifest left untagged). Then,
on identical copies with a warm page cache, in the same run:

* ``docker-registry garbage-collect --dry-run`` vs ``regtui gc --dry-run``,
* ``docker-registry garbage-collect`` vs ``regtui gc`` (real runs, each on its own copy),
* ``du -sb`` vs ``regtui du --root``,

all as command-line processes (regtui's times include starting Python). Prints times and ratios
(regtui / other: below 1 means regtui is faster) and checks both GCs chose the same blobs.

    python bench/bench_gc.py                # 2,000 images in 200 repos, then 20,000 in 2,000
    python bench/bench_gc.py --images 2000 --repos 200
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

V2 = Path("docker") / "registry" / "v2"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


class Writer:
    """Writes blobs and links in Distribution's layout, as fast as Python allows."""

    def __init__(self, root: Path) -> None:
        self.v2 = root / V2
        self.blobs = self.v2 / "blobs" / "sha256"
        self.repos = self.v2 / "repositories"

    def blob(self, data: bytes) -> str:
        hex_part = hashlib.sha256(data).hexdigest()
        directory = self.blobs / hex_part[:2] / hex_part
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "data").write_bytes(data)
        return "sha256:" + hex_part

    def link(self, path: Path, digest: str) -> None:
        path.mkdir(parents=True, exist_ok=True)
        (path / "link").write_text(digest)

    def layer_link(self, repo: str, digest: str) -> None:
        self.link(self.repos / repo / "_layers" / "sha256" / digest[7:], digest)

    def revision(self, repo: str, digest: str) -> None:
        self.link(self.repos / repo / "_manifests" / "revisions" / "sha256" / digest[7:], digest)

    def tag(self, repo: str, tag: str, digest: str) -> None:
        tag_dir = self.repos / repo / "_manifests" / "tags" / tag
        self.link(tag_dir / "current", digest)
        self.link(tag_dir / "index" / "sha256" / digest[7:], digest)

    def untag(self, repo: str, tag: str) -> None:
        shutil.rmtree(self.repos / repo / "_manifests" / "tags" / tag)

    def unrevision(self, repo: str, digest: str) -> None:
        shutil.rmtree(self.repos / repo / "_manifests" / "revisions" / "sha256" / digest[7:])


def _descriptor(media_type: str, digest: str, size: int) -> dict[str, object]:
    return {"mediaType": media_type, "size": size, "digest": digest}


def synthesize(root: Path, images: int, repos: int) -> None:
    writer = Writer(root)
    per_repo = max(1, images // repos)
    for r in range(repos):
        repo = f"ns{r % 10}/repo{r}"
        base = f"base layer of {repo}".encode() * 8
        base_digest = writer.blob(base)
        writer.layer_link(repo, base_digest)
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
                writer.layer_link(repo, digest)
            writer.revision(repo, manifest_digest)
            tag = f"v{i}"
            if i % 10 == 9:  # a moved tag: the previous image stays as an untagged revision
                tag = f"v{i - 2}"
            writer.tag(repo, tag, manifest_digest)
            if i % 5 == 3:  # deleted through the API: revision and tag gone
                writer.untag(repo, tag)
                writer.unrevision(repo, manifest_digest)


def _timed(command: list[str], **kw: object) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False, **kw)  # type: ignore[call-overload]
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {done.stderr or done.stdout}")
    return elapsed, done.stdout


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


def _best(runs: int, command: list[str]) -> tuple[float, str]:
    results = [_timed(command) for _ in range(runs)]
    return min(r[0] for r in results), results[0][1]


def bench(images: int, repos: int, workdir: Path, runs: int) -> None:
    registry = shutil.which("docker-registry")
    regtui = [sys.executable, "-m", "tui"]
    base = workdir / f"base-{images}"
    started = time.perf_counter()
    synthesize(base, images, repos)
    print(
        f"\n== {images} images in {repos} repositories (written in "
        f"{time.perf_counter() - started:.1f} s)"
    )
    copies = {}
    for name in ("dry", "dist-real", "regtui-real"):
        copies[name] = workdir / f"{name}-{images}"
        subprocess.run(["cp", "-a", str(base), str(copies[name])], check=True)
    _warm(*copies.values())
    gc = [*regtui, "gc", "--grace-period", "0", "--force", "--json"]

    rows: list[tuple[str, float, float | None]] = []
    ours_dry, out = _best(runs, [*gc, "--root", str(copies["dry"]), "--dry-run"])
    ours = set()
    for removal in json.loads(out)["removals"]:
        if removal["kind"] == "blob":
            ours.add(removal["digest"])
    if registry:
        config = _config(copies["dry"], workdir / f"dry-{images}.yml")
        theirs_dry, out = _best(runs, [registry, "garbage-collect", "--dry-run", str(config)])
        theirs = set(re.findall(r"^blob eligible for deletion: (\S+)$", out, re.M))
        same = "same blobs" if theirs == ours else f"DIFFERENT: {len(theirs)} vs {len(ours)}"
        print(f"   {len(ours)} blobs eligible ({same})")
        rows.append(("gc --dry-run", ours_dry, theirs_dry))
        config = _config(copies["dist-real"], workdir / f"real-{images}.yml")
        theirs_real, _ = _timed([registry, "garbage-collect", str(config)])
    else:
        rows.append(("gc --dry-run", ours_dry, None))
        theirs_real = None
    ours_real, _ = _timed([*gc, "--root", str(copies["regtui-real"])])
    rows.append(("gc (real run)", ours_real, theirs_real))
    if registry:
        left_theirs, left_ours = (
            _blob_names(copies["dist-real"]),
            _blob_names(copies["regtui-real"]),
        )
        same = "the same" if left_theirs == left_ours else "DIFFERENT"
        print(f"   after the real runs, {len(left_ours)} blobs left: {same} on both copies")

    _warm(base)
    du_theirs, _ = _best(runs, ["du", "-sb", str(base)])
    du_ours, _ = _best(runs, [*regtui, "du", "--root", str(base), "--json"])
    rows.append(("du", du_ours, du_theirs))

    print(f"   {'':<14} {'regtui':>8} {'other':>8} {'ratio':>6}   (other: Distribution; du -sb)")
    for name, mine, other in rows:
        if other is None:
            print(f"   {name:<14} {mine:>7.2f}s {'-':>8} {'-':>6}")
        else:
            print(f"   {name:<14} {mine:>7.2f}s {other:>7.2f}s {mine / other:>5.2f}x")
    for path in [base, *copies.values()]:
        shutil.rmtree(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, help="images (default: 2,000 then 20,000)")
    parser.add_argument("--repos", type=int, help="repositories (default: images / 10)")
    parser.add_argument("--runs", type=int, default=3, help="best of N for read-only runs")
    args = parser.parse_args()
    sizes = (
        [(args.images, args.repos or max(1, args.images // 10))]
        if args.images
        else [
            (2000, 200),
            (20000, 2000),
        ]
    )
    if not shutil.which("docker-registry"):
        print("docker-registry not installed: regtui times only", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="regtui-bench-gc-") as tmp:
        for images, repos in sizes:
            bench(images, repos, Path(tmp), args.runs)


if __name__ == "__main__":
    main()
