"""Content-addressed blobs and the per-repository ``_layers`` links that expose them."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from embedded_registry.storage.fsutil import atomic_write, fsync_dir, read_link, write_link
from embedded_registry.storage.paths import Layout


class BlobStore:
    """``blobs/<alg>/<xx>/<hex>/data`` plus ``repositories/<name>/_layers/<alg>/<hex>/link``."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout

    def size(self, digest: str) -> int | None:
        """The blob's size, or ``None`` when the registry doesn't hold it."""
        try:
            return os.stat(self.layout.blob_data(digest)).st_size
        except (FileNotFoundError, NotADirectoryError):
            return None

    def is_linked(self, name: str, digest: str) -> bool:
        return read_link(self.layout.layer_link(name, digest)) == digest

    def linked_size(self, name: str, digest: str) -> int | None:
        """The size of a blob ``name`` may serve, or ``None`` (not linked, or data gone)."""
        if not self.is_linked(name, digest):
            return None
        return self.size(digest)

    def link(self, name: str, digest: str) -> None:
        path = self.layout.layer_link(name, digest)
        if read_link(path) != digest:
            write_link(path, digest)

    def unlink(self, name: str, digest: str) -> bool:
        """Remove ``name``'s link to the blob (the data stays for GC); whether it existed."""
        path = self.layout.layer_link(name, digest)
        if read_link(path) is None:
            return False
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return True

    def touch(self, digest: str) -> None:
        """Mark a blob as just pushed, so GC's grace period protects it like a new one."""
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            os.utime(self.layout.blob_data(digest))

    def read(self, digest: str) -> bytes | None:
        try:
            return self.layout.blob_data(digest).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None

    def put_bytes(self, digest: str, data: bytes) -> None:
        """Store a small blob (a manifest) whose digest the caller has verified."""
        path = self.layout.blob_data(digest)
        if not path.exists():
            atomic_write(path, data)

    def commit_file(self, source: Path, digest: str) -> None:
        """Move a verified, fsynced file into place as the blob ``digest``.

        When the blob already exists (another upload of the same content won), ``source`` is
        removed and the existing copy kept: both pushes succeed and one copy remains.
        """
        target = self.layout.blob_data(digest)
        if target.exists():
            source.unlink(missing_ok=True)
            self.touch(digest)
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)
        fsync_dir(target.parent)
