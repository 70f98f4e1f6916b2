"""The filesystem driver: keys are paths under a root directory (Distribution's
``filesystem`` driver; the same tree, so a registry:2 volume is served as it is).

Writes of content go through :func:`embedded_registry.storage.fsutil.atomic_write` (temporary
file, fsync, rename). A writer of a new file writes a temporary file beside its key, renamed
into place by ``close`` or ``commit`` (which fsyncs first); a writer that appends writes the
file itself, so its bytes are visible as they are written (it has no ``MultipartUploads``: the
stores append to uploads, never to a blob's own key, and ``move`` them into place once
verified).

What a local disk offers more than an object store, as the Protocols of
:mod:`embedded_registry.storage.driver.capabilities`: ``LocalFiles`` (sendfile),
``CheapTouch`` (``utime``), ``DirectoryTimes`` (listings with directories), ``BatchReads``,
``ConditionalWrites`` (a ``flock``), blocking calls on keys for a worker thread to make in a
row (``NameListing``: GC's scan; ``RenameAside``: GC's sweep; ``BlockingReads``: scrub),
``LocalRoot`` (reports name local paths), and inline system calls: a ``stat``, a
``utime`` and the read of a small file (a link, a manifest) run on the event loop, cheaper than a
hop to a worker thread; larger reads and writes, listings, renames and deletes run in worker
threads.

A full disk (ENOSPC, EDQUOT) raises :class:`~embedded_registry.storage.driver.base.StorageFull`,
and a writer that meets it gives back the space of what it had written.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import io
import os
import shutil
import stat as stat_module
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from embedded_registry.storage.driver.base import (
    FileInfo,
    FileWriter,
    InvalidOffsetError,
    PathNotFoundError,
    PreconditionFailedError,
    StorageDriver,
    StorageDriverError,
    StorageFull,
)
from embedded_registry.storage.driver.capabilities import Contents
from embedded_registry.storage.fsutil import (
    MAKE_DIR_ATTEMPTS,
    TEMP_PREFIX,
    atomic_write,
    fsync_dir,
    is_disk_full,
)
from embedded_registry.storage.paths import KEYS

READ_CHUNK = 1 << 20
INLINE_READ = 256 << 10
"""A file this small (a link, a manifest) is read on the event loop; a bigger one in a thread."""
FIRST_READ = 64 << 10
"""Bytes of a small file read first (a link, a manifest: all of it, one allocation)."""
MANY_BATCH = 512
"""Files :meth:`FilesystemDriver.get_many` reads per worker-thread hop."""
_MISSING = (FileNotFoundError, NotADirectoryError)
_Entries = list[tuple[str, bool]]


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def disk_full_as_storage_full() -> Iterator[None]:
    """Turn ENOSPC/EDQUOT raised inside into :class:`StorageFull` (its message names no
    path)."""
    try:
        yield
    except OSError as exc:
        if is_disk_full(exc):
            raise StorageFull() from None
        raise


def _atomic_write(path: Path, data: bytes) -> None:
    with disk_full_as_storage_full():
        atomic_write(path, data)


NEW_FILE_MODE = 0o666 & ~_umask()
"""The mode of a file a writer creates: what ``open(2)`` gives under the process's umask
(read at import, while one thread runs), so an upload moved into place as a blob is readable
as before."""


def _read_small(full: str, limit: int | None) -> tuple[bytes, bool]:
    """Up to ``INLINE_READ`` bytes of ``full`` (at most ``limit``), and whether that is all
    that was asked for. One ``open``/``read``/``close`` without a file object."""
    fd = os.open(full, os.O_RDONLY | os.O_CLOEXEC)
    try:
        wanted = INLINE_READ + 1 if limit is None else min(limit, INLINE_READ + 1)
        data = os.read(fd, wanted)
    finally:
        os.close(fd)
    complete = len(data) < wanted or (limit is not None and len(data) >= limit)
    return data, complete


class _FileWriter(FileWriter):
    """Appends to ``path``; or, for a new file (``temp`` given), writes ``temp`` beside it,
    renamed onto ``path`` by ``close`` or ``commit``: a writer cut short (a crash, a
    cancellation) never leaves a partial file at its key, only a temporary one that GC's
    stale-temporary sweep removes."""

    def __init__(self, path: Path, handle: BinaryIO, size: int, temp: Path | None = None) -> None:
        self._path = path
        self._temp = temp
        self._handle: BinaryIO | None = handle
        self._size = size
        self._start = size

    @property
    def size(self) -> int:
        return self._size

    def _file(self) -> BinaryIO:
        if self._handle is None:
            raise StorageDriverError("writer already closed")
        return self._handle

    async def write(self, data: bytes) -> None:
        handle = self._file()

        def write_through() -> None:
            # Flushed here, in the worker thread: nothing is left for close() to write (and
            # to fail at) on the event loop.
            handle.write(data)
            handle.flush()

        try:
            await asyncio.to_thread(write_through)
        except OSError as exc:
            if not is_disk_full(exc):
                raise
            self._give_back()
            raise StorageFull() from None
        self._size += len(data)

    def _give_back(self) -> None:
        """After a full disk: drop what this writer wrote (the file is as it was opened)."""
        with contextlib.suppress(OSError):
            os.truncate(self._temp or self._path, self._start)
        self._size = self._start

    async def close(self) -> None:
        # Every write was flushed: close(2) of a file without fsync, cheaper inline than in
        # a worker thread. A new file takes its place at its key (a rename, no fsync: close
        # keeps the content for a later append; commit makes it durable).
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.close()
            temp, self._temp = self._temp, None
            if temp is not None:
                os.replace(temp, self._path)

    async def commit(self) -> None:
        """fsync the file (its bytes are durable before anything names them) and end the
        writer."""
        handle = self._file()

        def flush() -> None:
            with disk_full_as_storage_full():
                os.fsync(handle.fileno())

        try:
            await asyncio.to_thread(flush)
        except BaseException:
            await self.cancel()
            raise
        renamed = self._temp is not None
        await self.close()
        if renamed:
            await asyncio.to_thread(fsync_dir, self._path.parent)

    async def cancel(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.close()
        temp, self._temp = self._temp, None
        await asyncio.to_thread((temp or self._path).unlink, missing_ok=True)


class FilesystemDriver(StorageDriver):
    name = "filesystem"
    shared = False
    """One bundled registry serves a root and holds its own commits back while its GC runs;
    ``regtui gc --root`` refuses while it serves (:mod:`embedded_registry.gc.offline`)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        # A string: pathlib's joins cost more than the system calls of a blob HEAD.
        self._root = os.fspath(self.root).rstrip("/") or "/"

    def _local(self, path: str) -> str:
        """The file of key ``path``, as a string (the hot paths: stat, small reads)."""
        if ".." in path and ".." in path.split("/"):
            raise StorageDriverError(f"invalid path {path!r}")
        relative = path.lstrip("/")
        if not relative:
            return self._root
        return f"{self._root}/{relative}" if self._root != "/" else f"/{relative}"

    def _full(self, path: str) -> Path:
        return Path(self._local(path))

    def local_path(self, path: str) -> str:
        """The file of key ``path`` (``LocalFiles``: sendfile, GC's sweep)."""
        return self._local(path)

    async def get_content(self, path: str, *, limit: int | None = None) -> bytes:
        full = self._local(path)
        try:
            data, complete = _read_small(full, limit)
            if complete:
                return data

            def read() -> bytes:
                with open(full, "rb") as handle:
                    return handle.read() if limit is None else handle.read(limit)

            return await asyncio.to_thread(read)
        except _MISSING:
            raise PathNotFoundError(path) from None
        except IsADirectoryError:
            # A directory where a file should be is a damaged store, not a missing key (as in
            # Distribution's driver): the request fails (500) rather than saying "unknown".
            raise StorageDriverError(f"{full}: is a directory") from None

    async def put_content(self, path: str, data: bytes) -> None:
        await asyncio.to_thread(_atomic_write, self._full(path), data)

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

        def open_file() -> tuple[BinaryIO, int, Path | None]:
            with disk_full_as_storage_full():
                return open_or_create()

        def open_or_create() -> tuple[BinaryIO, int, Path | None]:
            if append:
                try:
                    handle = full.open("ab")
                except _MISSING:
                    raise PathNotFoundError(path) from None
                return handle, handle.tell(), None
            for attempt in range(MAKE_DIR_ATTEMPTS):
                full.parent.mkdir(parents=True, exist_ok=True)
                try:
                    fd, temp = tempfile.mkstemp(dir=full.parent, prefix=TEMP_PREFIX)
                    os.fchmod(fd, NEW_FILE_MODE)  # as open(2) makes it, not mkstemp's 0600
                    return os.fdopen(fd, "wb"), 0, Path(temp)
                except FileNotFoundError:
                    # GC removed the (empty) directory between the mkdir and here.
                    if attempt == MAKE_DIR_ATTEMPTS - 1:
                        raise
            raise AssertionError("unreachable")

        handle, size, temp = await asyncio.to_thread(open_file)
        return _FileWriter(full, handle, size, temp)

    async def stat(self, path: str) -> FileInfo:
        try:
            st = os.stat(self._local(path))
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
            with disk_full_as_storage_full():
                move_into_place()

        def move_into_place() -> None:
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
        """``CheapTouch``: one ``utime``; whether ``path`` is there."""
        try:
            os.utime(self._local(path))
        except _MISSING:
            return False
        except OSError:
            pass  # read-only storage: nothing can be swept there either
        return True

    async def check(self) -> None:
        """The layout's top directory (``docker/registry/v2``) must be readable: an unmounted
        volume or a storage moved away is unhealthy."""
        top = self._local(KEYS.v2)
        if not os.access(top, os.R_OK | os.X_OK):
            raise StorageDriverError(f"storage root {top} is not readable")

    # -- conditional writes (the GC lease) and flat listings (GC's scan) -------------------------
    def _versioned(self, full: str) -> tuple[bytes, str]:
        try:
            fd = os.open(full, os.O_RDONLY)
        except (*_MISSING, IsADirectoryError):
            raise PathNotFoundError(full) from None
        try:
            st = os.fstat(fd)
            data = os.read(fd, st.st_size)
        finally:
            os.close(fd)
        return data, _version_of(st)

    async def get_versioned(self, path: str) -> tuple[bytes, str]:
        try:
            return await asyncio.to_thread(self._versioned, self._local(path))
        except PathNotFoundError:
            raise PathNotFoundError(path) from None

    async def version(self, path: str) -> str | None:
        try:
            st = os.stat(self._local(path))
        except _MISSING:
            return None
        return None if stat_module.S_ISDIR(st.st_mode) else _version_of(st)

    async def get_many(self, paths: Sequence[str], *, limit: int | None = None) -> Contents:
        """Read in worker threads, ``MANY_BATCH`` files per thread hop (a hop costs more than
        reading a small file)."""
        files = [self._local(path) for path in paths]

        def read(batch: Sequence[str]) -> Contents:
            return [_read_file(full, limit) for full in batch]

        batches = [files[i : i + MANY_BATCH] for i in range(0, len(files), MANY_BATCH)]
        done = await asyncio.gather(*(asyncio.to_thread(read, batch) for batch in batches))
        return [content for batch in done for content in batch]

    async def put_conditional(self, path: str, data: bytes, *, version: str | None) -> str:
        """The write of :meth:`put_content`, under an exclusive ``flock`` of the file's
        directory held while the current version is compared: two processes on one root (a
        server and ``regtui gc``) never both win, and no lock file is left behind."""
        full = self._full(path)

        def write() -> str:
            full.parent.mkdir(parents=True, exist_ok=True)
            with _locked(full.parent):
                try:
                    current: str | None = _version_of(os.stat(full))
                except _MISSING:
                    current = None
                if current != version:
                    raise PreconditionFailedError(f"{path} changed (expected {version})")
                _atomic_write(full, data)
                return _version_of(os.stat(full))

        return await asyncio.to_thread(write)

    async def list_files(
        self,
        path: str,
        *,
        directories: bool = False,
        leaf: Callable[[str], str | None] | None = None,
    ) -> AsyncIterator[FileInfo]:
        """Every file under ``path`` (and, with ``directories``, every directory: their times
        record deletes), from ``os.scandir`` in a worker thread.

        ``leaf(key)`` may name the one file a directory of the layout holds (``data`` of a
        blob, ``link`` of a link): that file is then looked at with one ``stat`` instead of a
        listing of its directory (opening tens of thousands of directories is most of a walk),
        and the directory is listed only when the file is missing. A directory that cannot be
        read is an error, never skipped: GC must not take what it cannot see for unused."""
        full, key = self._full(path), path.rstrip("/")
        try:
            found = await asyncio.to_thread(_walk, str(full), key, directories, leaf)
        except OSError as exc:
            raise StorageDriverError(f"cannot list {path}: {exc.strerror or exc}") from None
        for info in found:
            yield info

    def list_tree(
        self, path: str, *, leaf: Callable[[str], str | None] | None = None
    ) -> AsyncIterator[FileInfo]:
        """``DirectoryTimes``: :meth:`list_files` with the directories and their times."""
        return self.list_files(path, directories=True, leaf=leaf)

    # -- blocking calls from a worker thread (NameListing: GC's scan; RenameAside: its sweep) ---
    def entries(self, path: str) -> _Entries | None:
        """``NameListing``: the entries of a directory with their kinds from ``d_type`` (no
        ``stat``); None when it is not there."""
        try:
            with os.scandir(self._local(path)) as it:
                return [(entry.name, entry.is_dir(follow_symlinks=False)) for entry in it]
        except _MISSING:
            return None

    def stat_now(self, path: str) -> FileInfo | None:
        """``NameListing``, ``RenameAside``: one ``stat``; None when nothing is there."""
        try:
            st = os.stat(self._local(path))
        except _MISSING:
            return None
        if stat_module.S_ISDIR(st.st_mode):
            return FileInfo(path, 0, st.st_mtime, True)
        return FileInfo(path, st.st_size, st.st_mtime, False)

    def read_now(self, path: str, limit: int) -> bytes | StorageDriverError | None:
        """``NameListing``: at most ``limit`` bytes of a small file (a link)."""
        return _read_file(self._local(path), limit)

    def open_now(self, path: str) -> io.FileIO | None:
        """``BlockingReads``: the file opened unbuffered, read ahead sequentially (scrub
        hashes it whole); None when it is not there."""
        try:
            fd = os.open(self._local(path), os.O_RDONLY | os.O_CLOEXEC)
        except _MISSING:
            return None
        try:
            if not stat_module.S_ISREG(os.fstat(fd).st_mode):
                raise IsADirectoryError(errno.EISDIR, "not a file", path)
            with contextlib.suppress(OSError, AttributeError):
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
            return io.FileIO(fd, "rb")
        except BaseException:
            os.close(fd)
            raise

    def rename_now(self, source: str, dest: str) -> bool:
        """``RenameAside``: one ``rename(2)``, no ``fsync`` (a rename aside is undone by GC's
        journal after a crash); False when ``source`` is not there."""
        try:
            os.replace(self._local(source), self._local(dest))
        except _MISSING:
            return False
        return True

    def unlink_now(self, path: str) -> bool:
        """``RenameAside``: one ``unlink(2)``; False when the file is not there."""
        try:
            os.unlink(self._local(path))
        except _MISSING:
            return False
        return True

    def remove_dir_now(self, path: str) -> bool:
        """``RenameAside``: one ``rmdir(2)``; False when the directory is not empty."""
        try:
            os.rmdir(self._local(path))
        except _MISSING:
            return True
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                return False
            raise
        return True


def _read_file(path: str, limit: int | None) -> bytes | StorageDriverError | None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except _MISSING:
        return None
    except OSError as exc:
        return StorageDriverError(f"unreadable: {exc.strerror}")
    try:
        # A first read of a small size: os.read(fd, n) allocates n bytes before it reads, and
        # a limit is usually far above what a link or a manifest holds.
        first = os.read(fd, FIRST_READ if limit is None else min(limit, FIRST_READ))
        if len(first) < FIRST_READ or limit == FIRST_READ:
            return first
        chunks = [first]
        left = None if limit is None else limit - len(first)
        while left is None or left > 0:
            chunk = os.read(fd, READ_CHUNK if left is None else min(left, READ_CHUNK))
            if not chunk:
                break
            chunks.append(chunk)
            if left is not None:
                left -= len(chunk)
        return b"".join(chunks)
    except OSError as exc:
        return StorageDriverError(f"unreadable: {exc.strerror}")
    finally:
        os.close(fd)


def _version_of(st: os.stat_result) -> str:
    # A write renames a new file into place: a new inode, whatever the size and time say.
    return f"{st.st_ino}:{st.st_mtime_ns}:{st.st_size}"


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _walk(
    top: str, key: str, directories: bool, leaf: Callable[[str], str | None] | None
) -> list[FileInfo]:
    """The files (and directories) under ``top``, as driver keys under ``key``, parents before
    children. Entries that vanish while listed (a push, a GC) are left out. A loop over a stack
    of directories, not recursive generators: every item would pass through each level."""
    found: list[FileInfo] = []
    pending = [(top, key)]
    while pending:
        path, path_key = pending.pop()
        try:
            with os.scandir(path) as it:
                entries = list(it)
        except _MISSING:
            continue
        for entry in entries:
            child = f"{path_key}/{entry.name}"
            try:
                if entry.is_dir(follow_symlinks=False):
                    name = leaf(child) if leaf is not None else None
                    if name is not None:
                        try:
                            st = os.stat(f"{entry.path}/{name}")
                        except _MISSING:
                            pass  # not the one file it should hold: listed below
                        else:
                            found.append(
                                FileInfo(f"{child}/{name}", st.st_size, st.st_mtime, False)
                            )
                            continue
                    if directories:
                        mtime = entry.stat(follow_symlinks=False).st_mtime
                        found.append(FileInfo(child, 0, mtime, True))
                    pending.append((entry.path, child))
                elif entry.is_file(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                    found.append(FileInfo(child, st.st_size, st.st_mtime, False))
            except _MISSING:
                continue
    return found
