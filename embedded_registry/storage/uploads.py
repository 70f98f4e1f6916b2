"""Blob uploads on one filesystem root: ``_uploads/<uuid>/{data,startedat}``, blocking.

The server writes uploads through its storage driver (:mod:`embedded_registry.storage.driven`);
what stays here is what offline tools and test fixtures need: create, size, cancel, list and
purge sessions, and the ``startedat`` format Distribution reads (shared with the driver path).
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from embedded_registry import errors
from embedded_registry.storage.blobs import BlobStore
from embedded_registry.storage.fsutil import disk_full_as_registry_error
from embedded_registry.storage.paths import Layout


def _startedat_text() -> str:
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond * 1000:09d}Z"


def _parse_startedat(text: str) -> float | None:
    text = text.strip()
    if not text:
        return None
    main, _, rest = text.partition(".")
    fraction = rest.rstrip("Z")[:6] if rest else ""
    try:
        moment = datetime.strptime(main.rstrip("Z"), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return None
    return moment.timestamp() + (float(f"0.{fraction}") if fraction.isdigit() else 0.0)


class UploadStore:
    def __init__(self, layout: Layout, blobs: BlobStore) -> None:
        self.layout = layout
        self.blobs = blobs

    # --- lifecycle -------------------------------------------------------------------------
    def create(self, name: str) -> str:
        """A new upload session; a full disk raises ``errors.storage_full`` and leaves none."""
        upload_id = str(uuid.uuid4())
        directory = self.layout.upload_dir(name, upload_id)
        try:
            with disk_full_as_registry_error():
                directory.mkdir(parents=True)
                self.layout.upload_data(name, upload_id).touch()
                self.layout.upload_startedat(name, upload_id).write_text(_startedat_text())
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        return upload_id

    def exists(self, name: str, upload_id: str) -> bool:
        return self.layout.upload_data(name, upload_id).is_file()

    def size(self, name: str, upload_id: str) -> int:
        """The bytes received so far; BLOB_UPLOAD_UNKNOWN when there is no such upload."""
        try:
            return os.stat(self.layout.upload_data(name, upload_id)).st_size
        except (FileNotFoundError, NotADirectoryError):
            raise errors.blob_upload_unknown() from None

    def cancel(self, name: str, upload_id: str) -> bool:
        """Remove the upload and its data; whether it existed."""
        directory = self.layout.upload_dir(name, upload_id)
        if not directory.is_dir():
            return False
        shutil.rmtree(directory, ignore_errors=True)
        return True

    # --- maintenance ------------------------------------------------------------------------
    def started_at(self, name: str, upload_id: str) -> float | None:
        path = self.layout.upload_startedat(name, upload_id)
        try:
            parsed = _parse_startedat(path.read_text())
        except OSError:
            parsed = None
        if parsed is not None:
            return parsed
        try:
            return self.layout.upload_dir(name, upload_id).stat().st_mtime
        except OSError:
            return None

    def iter_uploads(self) -> list[tuple[str, str]]:
        """Every ``(repository, upload id)`` on disk."""
        found: list[tuple[str, str]] = []
        root = self.layout.repositories_dir
        if not root.is_dir():
            return found
        for directory, subdirs, _files in os.walk(root):
            current = Path(directory)
            if current.name == "_uploads":
                name = current.parent.relative_to(root).as_posix()
                found += [(name, upload_id) for upload_id in sorted(subdirs)]
                subdirs.clear()
            else:
                subdirs[:] = sorted(d for d in subdirs if d == "_uploads" or not d.startswith("_"))
        return found

    def purge(self, older_than: float, *, dry_run: bool = False) -> list[tuple[str, str]]:
        """Remove uploads started more than ``older_than`` seconds ago; return them."""
        cutoff = time.time() - older_than
        purged = []
        for name, upload_id in self.iter_uploads():
            started = self.started_at(name, upload_id)
            if started is not None and started < cutoff:
                purged.append((name, upload_id))
                if not dry_run:
                    self.cancel(name, upload_id)
        return purged
