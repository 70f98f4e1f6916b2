"""Small, durable file operations: every visible file appears whole or not at all."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
import time
from pathlib import Path

from embedded_registry import names

TEMP_PREFIX = ".tmp-"

STALE_TEMP_AGE = 3600.0
"""Seconds after which a temporary file of an atomic write is taken as left by a killed
writer (a write in flight lasts milliseconds: a manifest or a link is a few KiB)."""

DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` says the filesystem (or the user's quota) is full."""
    return isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS


def fsync_dir(path: Path) -> None:
    """Make a rename or creation in ``path`` durable (a no-op where directories can't sync)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        # Some filesystems refuse fsync on directories; the rename itself stays atomic.
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, fsync it, rename it into place.

    A full disk raises its OSError (ENOSPC, EDQUOT) and leaves no temporary file behind.
    """
    for attempt in range(MAKE_DIR_ATTEMPTS):
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=TEMP_PREFIX)
            break
        except FileNotFoundError:
            # GC removed the (empty) directory between the mkdir and here: make it again.
            if attempt == MAKE_DIR_ATTEMPTS - 1:
                raise
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise
    fsync_dir(path.parent)


MAKE_DIR_ATTEMPTS = 5
"""How often a write re-creates a directory that a concurrent GC removed as empty under it."""


def remove_stale_temp_files(top: Path, *, older_than: float = STALE_TEMP_AGE) -> list[str]:
    """Remove the temporary files of atomic writes under ``top`` that are older than
    ``older_than`` seconds (left by a writer that was killed); return their paths.

    A write in flight is never touched: its temporary file is seconds old at most.
    """
    cutoff = time.time() - older_than
    removed: list[str] = []
    for directory, _subdirs, files in os.walk(top):
        for name in files:
            if not name.startswith(TEMP_PREFIX):
                continue
            path = os.path.join(directory, name)
            try:
                if os.lstat(path).st_mtime < cutoff:
                    os.unlink(path)
                    removed.append(path)
            except FileNotFoundError:
                continue
    return removed


LINK_READ_LIMIT = 4096
"""A link file holds one digest (71 bytes for sha256): one bigger than this is not a link."""


def read_link(path: Path | str) -> str | None:
    """The digest a link file holds, or ``None`` when it is missing or malformed.

    One ``open``/``read``/``close`` without a file object: this runs on every blob HEAD/GET and
    manifest GET."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        data = os.read(fd, LINK_READ_LIMIT + 1)
    except IsADirectoryError:
        return None
    finally:
        os.close(fd)
    if len(data) > LINK_READ_LIMIT:
        return None
    text = data.decode("ascii", errors="replace").strip()
    return text if names.is_valid_digest(text) else None
