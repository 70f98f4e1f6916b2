"""The filesystem driver: keys are paths under a root directory (Distribution's
``filesystem`` driver; the same tree, so a registry:2 volume is served as it is).

Writes of content go through :func:`embedded_registry.storage.fsutil.atomic_write` (temporary
file, fsync, rename); a writer appends to the file itself and ``commit`` fsyncs it. Blocking
calls run in worker threads except a single ``stat``. ``local_path`` gives sendfile its file.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import stat as stat_module
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

from embedded_registry.storage.driver.base import (
    FileInfo,
    FileWriter,
    InvalidOffsetError,
    PathNotFoundError,
    StorageDriver,
    StorageDriverError,
)
from embedded_registry.storage.fsutil import MAKE_DIR_ATTEMPTS, atomic_write, fsync_dir

READ_CHUNK = 1 << 20
_MISSING = (FileNotFoundError, NotADirectoryError)


class _FileWriter(FileWriter):
    def __init__(self, path: Path, handle: BinaryIO, size: int) -> None:
        self._path = path
        self._handle: BinaryIO | None = handle
        self._size = size

    @property
    def size(self) -> int:
        return self._size

    def _file(self) -> BinaryIO:
        if self._handle is None:
            raise StorageDriverError("writer already closed")
        return self._handle

    async def write(self, data: bytes) -> None:
        await asyncio.to_thread(self._file().write, data)
        self._size += len(data)

    async def close(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            await asyncio.to_thread(handle.close)

    async def commit(self) -> None:
        handle = self._file()

        def flush() -> None:
            handle.flush()
            os.fsync(handle.fileno())

        await asyncio.to_thread(flush)

    async def cancel(self) -> None:
        await self.close()
        await asyncio.to_thread(self._path.unlink, missing_ok=True)


class FilesystemDriver(StorageDriver):
    name = "filesystem"

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def _full(self, path: str) -> Path:
        relative = path.lstrip("/")
        if ".." in relative.split("/"):
            raise StorageDriverError(f"invalid path {path!r}")
        return self.root / relative if relative else self.root

    def local_path(self, path: str) -> str | None:
        return str(self._full(path))

    async def get_content(self, path: str, *, limit: int | None = None) -> bytes:
        full = self._full(path)

        def read() -> bytes:
            with full.open("rb") as handle:
                return handle.read() if limit is None else handle.read(limit)

        try:
            return await asyncio.to_thread(read)
        except (*_MISSING, IsADirectoryError):
            raise PathNotFoundError(path) from None

    async def put_content(self, path: str, data: bytes) -> None:
        await asyncio.to_thread(atomic_write, self._full(path), data)

    async def reader(
        self, path: str, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        full = self._full(path)
        try:
            handle = await asyncio.to_thread(full.open, "rb")
        except (*_MISSING, IsADirectoryError):
            raise PathNotFoundError(path) from None
        try:
            size = os.fstat(handle.fileno()).st_size
            if offset > size:
                raise InvalidOffsetError(f"offset {offset} past the end of {path}")
            handle.seek(offset)
            left = size - offset if length is None else min(length, size - offset)
            while left > 0:
                block = await asyncio.to_thread(handle.read, min(READ_CHUNK, left))
                if not block:
                    return
                left -= len(block)
                yield block
        finally:
            handle.close()

    async def writer(self, path: str, *, append: bool = False) -> FileWriter:
        full = self._full(path)

        def open_file() -> tuple[BinaryIO, int]:
            if append:
                try:
                    handle = full.open("ab")
                except _MISSING:
                    raise PathNotFoundError(path) from None
                return handle, handle.tell()
            for attempt in range(MAKE_DIR_ATTEMPTS):
                full.parent.mkdir(parents=True, exist_ok=True)
                try:
                    return full.open("wb"), 0
                except FileNotFoundError:
                    if attempt == MAKE_DIR_ATTEMPTS - 1:
                        raise
            raise AssertionError("unreachable")

        handle, size = await asyncio.to_thread(open_file)
        return _FileWriter(full, handle, size)

    async def stat(self, path: str) -> FileInfo:
        try:
            st = os.stat(self._full(path))
        except _MISSING:
            raise PathNotFoundError(path) from None
        is_dir = stat_module.S_ISDIR(st.st_mode)
        return FileInfo(path, 0 if is_dir else st.st_size, st.st_mtime, is_dir)

    async def list(self, path: str) -> list[str]:
        full = self._full(path)
        try:
            names = await asyncio.to_thread(os.listdir, full)
        except _MISSING:
            raise PathNotFoundError(path) from None
        base = path.rstrip("/")
        return sorted(f"{base}/{name}" for name in names)

    async def move(self, source: str, dest: str) -> None:
        src, dst = self._full(source), self._full(dest)

        def rename() -> None:
            for attempt in range(MAKE_DIR_ATTEMPTS):
                dst.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.replace(src, dst)
                    break
                except FileNotFoundError:
                    if not src.exists():
                        raise PathNotFoundError(source) from None
                    if attempt == MAKE_DIR_ATTEMPTS - 1:
                        raise
            fsync_dir(dst.parent)

        await asyncio.to_thread(rename)

    async def delete(self, path: str) -> None:
        full = self._full(path)

        def remove() -> None:
            if full.is_dir() and not full.is_symlink():
                shutil.rmtree(full)
            else:
                try:
                    full.unlink()
                except _MISSING:
                    raise PathNotFoundError(path) from None

        await asyncio.to_thread(remove)

    async def touch(self, path: str) -> bool:
        try:
            os.utime(self._full(path))
        except _MISSING:
            return False
        except OSError:
            pass  # read-only storage: nothing can be swept there either
        return True

    async def check(self) -> None:
        if not os.access(self.root, os.R_OK | os.X_OK):
            raise StorageDriverError(f"storage root {self.root} is not a readable directory")
