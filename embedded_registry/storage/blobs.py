"""Content-addressed blobs and the per-repository ``_layers`` links that expose them, on one
filesystem root, blocking: the toolkit of offline commands and test fixtures (the server writes
and serves blobs through its storage driver, :mod:`embedded_registry.storage.driven`)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from embedded_registry.storage.fsutil import (
    MAKE_DIR_ATTEMPTS,
    atomic_write,
    fsync_dir,
    read_link,
    write_link,
)
from embedded_registry.storage.paths import Layout


class BlobStore:
    """``blobs/<alg>/<xx>/<hex>/data`` plus ``repositories/<name>/_layers/<alg>/<hex>/link``."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        # Strings for the paths of every HEAD and GET: pathlib's joins cost more than the
        # system calls they name.
        self._blobs = os.fspath(layout.blobs_dir)
        self._repositories = os.fspath(layout.repositories_dir)

    def data_path(self, digest: str) -> str:
        """``Layout.blob_data`` as a string."""
        algorithm, _, hex_part = digest.partition(":")
        return f"{self._blobs}/{algorithm}/{hex_part[:2]}/{hex_part}/data"

    def layer_link_path(self, name: str, digest: str) -> str:
        """``Layout.layer_link`` as a string."""
        algorithm, _, hex_part = digest.partition(":")
        return f"{self._repositories}/{name}/_layers/{algorithm}/{hex_part}/link"

    def size(self, digest: str) -> int | None:
        """The blob's size, or ``None`` when the registry doesn't hold it."""
        try:
            return os.stat(self.data_path(digest)).st_size
        except (FileNotFoundError, NotADirectoryError):
            return None

    def is_linked(self, name: str, digest: str) -> bool:
        return read_link(self.layer_link_path(name, digest)) == digest

    def linked_size(self, name: str, digest: str) -> int | None:
        """The size of a blob ``name`` may serve, or ``None`` (not linked, or data gone)."""
        st = self.linked_stat(name, digest)
        return None if st is None else st.st_size

    def linked_stat(self, name: str, digest: str) -> os.stat_result | None:
        """The stat of the data of a blob ``name`` may serve, or ``None``."""
        if not self.is_linked(name, digest):
            return None
        try:
            return os.stat(self.data_path(digest))
        except (FileNotFoundError, NotADirectoryError):
            return None

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

    def touch(self, digest: str) -> bool:
        """Mark a blob as just pushed, so GC's grace period protects it like a new one;
        whether its data is there (a read-only filesystem counts as there)."""
        try:
            os.utime(self.data_path(digest))
        except (FileNotFoundError, NotADirectoryError):
            return False
        except OSError:
            pass  # read-only storage: no GC can run on it either
        return True

    def read(self, digest: str) -> bytes | None:
        try:
            with open(self.data_path(digest), "rb") as handle:
                return handle.read()
        except (FileNotFoundError, NotADirectoryError):
            return None

    def put_bytes(self, digest: str, data: bytes) -> None:
        """Store a small blob (a manifest) whose digest the caller has verified."""
        path = self.layout.blob_data(digest)
        if not path.exists():
            atomic_write(path, data)

    def commit_file(self, source: Path, digest: str) -> None:
        """Move a verified, fsynced file into place as the blob ``digest`` (offline tools and
        tests; the server's upload does the same through ``FilesystemDriver.move``).

        When the blob already exists (another upload of the same content won), ``source`` is
        removed and the existing copy kept: both pushes succeed and one copy remains.
        """
        target = self.layout.blob_data(digest)
        # The touch fails when GC has just taken the blob away: then this copy takes its place.
        if target.exists() and self.touch(digest):
            source.unlink(missing_ok=True)
            return
        for attempt in range(MAKE_DIR_ATTEMPTS):
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.replace(source, target)
                break
            except FileNotFoundError:
                # GC removed the blob's (then empty) directory between the mkdir and the
                # rename: make it again. A missing source is a real error and stays one.
                if not source.exists() or attempt == MAKE_DIR_ATTEMPTS - 1:
                    raise
        fsync_dir(target.parent)
