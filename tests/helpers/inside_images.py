"""Two versions of an image with known differences, built as real tar layers (for issue 14).

``v1`` = base + app layer; ``v2`` = base + an update layer that deletes a file (whiteout), empties
a directory (opaque marker), changes a size, a mode, an owner, a symlink target, adds files, and
drops the app's data file (it is only in v1's own layer). Their configs differ in env, labels,
user, cmd and exposed ports. Every expectation below is written out by hand.
"""

from __future__ import annotations

import io
import tarfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tui.imagegen import (
    DEFAULT_CREATED,
    FIXED_MTIME,
    OCI_CONFIG,
    OCI_LAYER_GZIP,
    OCI_LAYER_ZSTD,
    OCI_MANIFEST,
    Blob,
    Image,
    canonical_json,
    compress,
    sha256_digest,
)


@dataclass(frozen=True)
class T:
    """A tar entry: ``kind`` is file/dir/symlink/hardlink."""

    name: str
    kind: str = "file"
    size: int = 0
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    link: str = ""


def log_after(registry: Any, start: int, line: str, seconds: float = 10.0) -> str:
    """The registry's log from ``start`` once ``line`` is in it (access lines land after the
    response, so a test waits for its last request's line before reading what came before)."""
    deadline = time.monotonic() + seconds
    while True:
        log: str = registry.log()[start:]
        if line in log or time.monotonic() > deadline:
            return log
        time.sleep(0.05)


def tar_of(entries: Sequence[T]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for item in entries:
            info = tarfile.TarInfo(item.name)
            info.mtime = FIXED_MTIME
            info.mode, info.uid, info.gid = item.mode, item.uid, item.gid
            if item.kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif item.kind in ("symlink", "hardlink"):
                info.type = tarfile.SYMTYPE if item.kind == "symlink" else tarfile.LNKTYPE
                info.linkname = item.link
                tar.addfile(info)
            else:
                info.size = item.size
                tar.addfile(info, io.BytesIO(b"x" * item.size))
    return buffer.getvalue()


def layer_of(entries: Sequence[T], compression: str = "gzip") -> Blob:
    media = OCI_LAYER_ZSTD if compression == "zstd" else OCI_LAYER_GZIP
    return Blob(compress(tar_of(entries), compression), media)  # type: ignore[arg-type]


def image_of(
    layers: Sequence[tuple[Blob, bytes]],
    runtime: dict[str, Any],
    *,
    architecture: str = "amd64",
    created: str = DEFAULT_CREATED,
) -> Image:
    config_doc = {
        "architecture": architecture,
        "os": "linux",
        "created": created,
        "config": runtime,
        "rootfs": {"type": "layers", "diff_ids": [sha256_digest(tar) for _, tar in layers]},
        "history": [{"created": created, "created_by": f"layer {n}"} for n in range(len(layers))],
    }
    config = Blob(canonical_json(config_doc), OCI_CONFIG)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": [blob.descriptor() for blob, _ in layers],
    }
    return Image(
        Blob(canonical_json(manifest), OCI_MANIFEST),
        config,
        tuple(blob for blob, _ in layers),
        {"os": "linux", "architecture": architecture},
    )


def layer_and_tar(entries: list[T], compression: str = "gzip") -> tuple[Blob, bytes]:
    return layer_of(entries, compression), tar_of(entries)


BASE = [
    T("etc", "dir", mode=0o755),
    T("etc/passwd", size=100),
    T("etc/motd", size=50),
    T("usr", "dir", mode=0o755),
    T("usr/bin", "dir", mode=0o755),
    T("usr/bin/tool", size=300, mode=0o755),
    T("usr/lib", "dir", mode=0o755),
    T("usr/lib/libc.so", size=5000),
    T("usr/lib/libc.so.6", "symlink", mode=0o777, link="libc.so"),
    T("usr/lib/libc.hard", "hardlink", link="usr/lib/libc.so"),
    T("var", "dir", mode=0o755),
    T("var/cache", "dir", mode=0o755),
    T("var/cache/a", size=1000),
    T("var/cache/b", size=2000),
]
APP = [
    T("app", "dir", mode=0o755),
    T("app/config.json", size=40),
    T("app/data.bin", size=4000),
]
UPDATE = [
    T("app", "dir", mode=0o755),
    T("app/config.json", size=40, uid=1000, gid=1000),
    T("etc", "dir", mode=0o755),
    T("etc/.wh.motd"),
    T("etc/passwd", size=120),
    T("opt", "dir", mode=0o755),
    T("opt/new", size=10),
    T("usr/bin/tool", size=300, mode=0o700),
    T("usr/lib/libc.so.6", "symlink", mode=0o777, link="libc-2.so"),
    T("var/cache", "dir", mode=0o755),
    T("var/cache/.wh..wh..opq"),
    T("var/cache/new", size=7),
]

RUNTIME_V1 = {
    "Env": ["PATH=/usr/bin", "FOO=1"],
    "Cmd": ["/bin/sh"],
    "Labels": {"version": "1", "team": "core"},
}
RUNTIME_V2 = {
    "Env": ["PATH=/usr/bin", "FOO=2", "BAR=x"],
    "Cmd": ["/app/run"],
    "User": "1000:1000",
    "ExposedPorts": {"8080/tcp": {}},
    "Labels": {"version": "2", "team": "core"},
}


def v1() -> Image:
    return image_of([layer_and_tar(BASE), layer_and_tar(APP)], RUNTIME_V1)


def v2(architecture: str = "amd64") -> Image:
    return image_of(
        [layer_and_tar(BASE), layer_and_tar(UPDATE, "zstd")], RUNTIME_V2, architecture=architecture
    )


# The file-level diff v1 -> v2, by hand: (path, change, fields, size change)
EXPECTED_FILES = [
    ("app/config.json", "modified", ["owner"], 0),
    ("app/data.bin", "removed", [], -4000),
    ("etc/motd", "removed", [], -50),
    ("etc/passwd", "modified", ["size", "content"], 20),
    ("opt", "added", [], 0),
    ("opt/new", "added", [], 10),
    ("usr/bin/tool", "modified", ["mode"], 0),
    ("usr/lib/libc.so.6", "modified", ["link"], 0),
    ("var/cache/a", "removed", [], -1000),
    ("var/cache/b", "removed", [], -2000),
    ("var/cache/new", "added", [], 7),
]

# v2 as of its last layer (the update over the base): dive's view, by hand.
EXPECTED_V2_TOP = {
    "app": "added",
    "app/config.json": "added",
    "etc": "unchanged",
    "etc/motd": "removed",
    "etc/passwd": "modified",
    "opt": "added",
    "opt/new": "added",
    "usr/bin/tool": "modified",
    "usr/lib/libc.so.6": "modified",
    "var/cache": "unchanged",
    "var/cache/a": "removed",
    "var/cache/b": "removed",
    "var/cache/new": "added",
}
# Overwritten or deleted below: motd 50, a 1000, b 2000, passwd 100, tool 300.
EXPECTED_V2_WASTED = 50 + 1000 + 2000 + 100 + 300
# dive's score: smallest size per path / every size written (deletions count as 0 bytes).
EXPECTED_V2_EFFICIENCY = (100 + 0 + 0 + 0 + 5000 + 300 + 7 + 40 + 10) / (
    8450 + 120 + 7 + 40 + 300 + 10
)
