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
``CheapTouch`` (``utime``), ``DirectoryTimes`` (a directory's stamp and entries, listings with
directories), ``BatchReads``,
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
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import Future
from pathlib import Path

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
from embedded_registry.storage.driver.capabilities import Contents, Stamp
from embedded_registry.storage.driver.lanes import Lane
from embedded_registry.storage.driver.writeback import (
    SYNC_EVERY,
    SYNC_POOL,
    SYNC_TAIL,
    DurableWrites,
    durable_writeback,
    start_writeback,
)
from embedded_registry.storage.fsutil import (
    MAKE_DIR_ATTEMPTS,
    TEMP_PREFIX,
    atomic_write,
    fsync_dir,
    is_disk_full,
)
from embedded_registry.storage.paths import KEYS

READ_CHUNK = 1 << 20
WRITE_AHEAD = 4 << 20
"""Bytes a writer's worker thread may have yet to write before ``write`` waits for it."""
INLINE_READ = 256 << 10
"""A file this small (a link, a manifest) is read on the event loop; a bigger one in a thread."""
FIRST_READ = 64 << 10
"""Bytes of a small file read first (a link, a manifest: all of it, one allocation)."""
IOV_MAX = os.sysconf("SC_IOV_MAX") if "SC_IOV_MAX" in os.sysconf_names else 1024
"""Buffers one ``writev(2)`` takes at most."""
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


def _write_all(fd: int, pieces: Sequence[bytes]) -> None:
    """Write ``pieces`` one after another with ``writev(2)`` (at most ``IOV_MAX`` a call),
    going on after a short write from the byte it stopped at."""
    views = [memoryview(piece) for piece in pieces if piece]
    first = 0
    while first < len(views):
        written = os.writev(fd, views[first : first + IOV_MAX])
        if not written:
            raise OSError(errno.EIO, "writev wrote nothing")
        while written:
            size = len(views[first])
            if written < size:
                views[first] = views[first][written:]
                break
            written -= size
            first += 1


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
    stale-temporary sweep removes.

    Writes are pipelined: ``write`` hands its bytes to this writer's
    :class:`~embedded_registry.storage.driver.lanes.Lane` and returns at once while less than
    ``WRITE_AHEAD`` bytes wait there, so the event loop reads the next bytes from the socket
    meanwhile, and the lane writes one block after another without waiting for the loop to
    hand it the next (no round trip per block: on a busy machine each costs a scheduler
    wake-up). Each block's disk write is started at once
    (:func:`~embedded_registry.storage.driver.writeback.start_writeback`), so ``commit``'s
    fsync finds little left to write: from a second lane, because starting it waits while the
    disk's queue is full, and the writes (what a PATCH's answer waits for) would then go at
    the disk's pace instead of memory's. A third lane makes them durable as the file grows
    (:func:`~embedded_registry.storage.driver.writeback.durable_writeback`, ``fdatasync``
    every ``SYNC_EVERY`` bytes, one at a time, and at the end of the writer), their outcomes
    kept in the file's :class:`~embedded_registry.storage.driver.writeback.DurableWrites`,
    shared by every writer of that file in this process (the PATCHes of an upload):
    ``commit`` settles them, and fails with the first that failed, before its own fsync.
    The lanes close the file after the last of their calls (never a call on a closed or
    reused descriptor). A write that failed is reported by the next ``write``, ``close`` or
    ``commit`` (a full disk as :class:`StorageFull`, with this writer's bytes given back)."""

    def __init__(
        self,
        path: Path,
        fd: int,
        size: int,
        temp: Path | None = None,
        durable: DurableWrites | None = None,
    ) -> None:
        self._path = path
        self._temp = temp
        self._fd: int | None = fd
        self._size = size
        self._start = size
        self._synced = size
        """The file's size at this writer's last durable writeback (its start at first)."""
        self._durable = DurableWrites() if durable is None else durable
        self._last_sync: Future[None] | None = None
        self._lane: Lane | None = None
        self._writeback: Lane | None = None
        self._syncing: Lane | None = None
        self._pending: deque[tuple[Future[None], int]] = deque()
        self._queued = 0
        self._failure: OSError | None = None

    @property
    def size(self) -> int:
        return self._size

    def _file(self) -> int:
        if self._fd is None:
            raise StorageDriverError("writer already closed")
        return self._fd

    def _write_at(self, fd: int, pieces: tuple[bytes, ...], offset: int, length: int) -> None:
        """In the worker thread: ``pieces`` (``length`` bytes) at the end of the file (at
        ``offset``), gathered by ``writev(2)``: never joined into one buffer first."""
        if self._failure is not None:
            return  # a write before this one failed: the file ends there
        try:
            _write_all(fd, pieces)
        except OSError as exc:
            self._failure = exc
            return
        if self._writeback is not None:
            self._writeback.submit(start_writeback, fd, offset, length)

    async def write(self, data: bytes, *more: bytes) -> None:
        fd = self._file()
        self._report()
        pieces = (data, *more) if more else (data,)
        length = sum(map(len, pieces)) if more else len(data)
        if not length:
            return
        if self._lane is None:
            self._lane, self._writeback, self._syncing = Lane(), Lane(), Lane(SYNC_POOL)
        future = self._lane.submit(self._write_at, fd, pieces, self._size, length)
        self._pending.append((future, length))
        self._queued += length
        self._size += length
        if self._size // SYNC_EVERY > self._synced // SYNC_EVERY and (
            self._last_sync is None or self._last_sync.done()
        ):
            # One at a time: on a slow disk, the next starts once this one is done (the
            # commit's fsync covers whatever none did).
            self._sync_after_writes(fd)
        while self._queued > WRITE_AHEAD:
            await self._settle_one()
        self._report()

    async def _settle_one(self) -> None:
        future, length = self._pending[0]
        try:
            await asyncio.shield(asyncio.wrap_future(future))
        finally:
            if future.done() and self._pending and self._pending[0][0] is future:
                self._pending.popleft()
                self._queued -= length

    async def _drain(self) -> None:
        """Wait for every write handed to the worker; report one that failed."""
        while self._pending:
            await self._settle_one()
        self._report()

    def _report(self) -> None:
        """Raise the failure of a write (the bytes after it were not written): what this
        writer wrote is given back, so the file is as it was opened."""
        failure, self._failure = self._failure, None
        if failure is None:
            return
        self._give_back()
        if is_disk_full(failure):
            raise StorageFull() from None
        raise failure

    def _give_back(self) -> None:
        """After a full disk: drop what this writer wrote (the file is as it was opened)."""
        with contextlib.suppress(OSError):
            os.truncate(self._temp or self._path, self._start)
        self._size = self._start

    def _sync_after_writes(self, fd: int) -> None:
        """Start a durable writeback of the file once the writes handed over so far are in
        it (from the write lane, so the sync lane gets it after them); its outcome goes to the
        file's :class:`DurableWrites`."""
        assert self._lane is not None and self._syncing is not None
        outcome: Future[None] = Future()
        self._durable.add(outcome)
        self._last_sync = outcome
        self._synced = self._size
        self._lane.submit(self._syncing.submit, durable_writeback, fd, outcome)

    def _end(self) -> None:
        """Close the file. With writes still in the lane (a close cancelled while it
        waited), writebacks being started or syncs running, the lanes close the file after
        them: never a call on a closed (or reused) descriptor."""
        fd, self._fd = self._fd, None
        lane, self._lane = self._lane, None
        writeback, syncing = self._writeback, self._syncing
        self._pending.clear()
        self._queued = 0
        if fd is None:
            return
        if lane is None or writeback is None or syncing is None:
            os.close(fd)
        else:
            # After the writes (which hand their writebacks and syncs over), after the
            # writebacks, after the syncs.
            lane.submit(writeback.submit, syncing.submit, os.close, fd)

    async def close(self) -> None:
        # Every write has reached the file once drained: close(2) of a file without fsync,
        # cheaper inline than in a worker thread. A new file takes its place at its key (a
        # rename, no fsync: close keeps the content for a later append; commit makes it
        # durable).
        if self._fd is None:
            return
        try:
            await self._drain()
            if self._lane is not None and self._size - self._synced >= SYNC_TAIL:
                self._sync_after_writes(self._file())
        except BaseException:
            self._end()
            temp, self._temp = self._temp, None
            if temp is not None:  # a new file that failed takes no place at its key
                with contextlib.suppress(OSError):
                    temp.unlink()
            raise
        self._end()
        temp, self._temp = self._temp, None
        if temp is not None:
            os.replace(temp, self._path)

    async def commit(self) -> None:
        """fsync the file (its bytes are durable before anything names them) and end the
        writer."""
        fd = self._file()

        def flush() -> None:
            with disk_full_as_storage_full():
                os.fsync(fd)

        try:
            await self._drain()
            # The background syncs of this file (this writer's and earlier writers'): one that
            # met a write error consumed it, and the fsync below would not see it.
            with disk_full_as_storage_full():
                await self._durable.settle()
            await asyncio.to_thread(flush)
        except BaseException:
            await self.cancel()
            raise
        self._synced = self._size  # durable: the close below starts no sync
        renamed = self._temp is not None
        await self.close()
        if renamed:
            await asyncio.to_thread(fsync_dir, self._path.parent)

    async def cancel(self) -> None:
        try:
            with contextlib.suppress(Exception):
                await self._drain()
        finally:
            self._end()
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
        self._durable: dict[str, DurableWrites] = {}
        """The background syncs of the files appended to (uploads), by local path: kept from
        request to request until the file is moved (committed) or deleted."""

    def _forget_durable(self, full: str) -> None:
        """Drop the background syncs' records of ``full`` and of any file under it."""
        if self._durable:
            under = full.rstrip("/") + "/"
            for path in [p for p in self._durable if p == full or p.startswith(under)]:
                del self._durable[path]

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
        if append:
            # Opening a file that is there is one system call, cheaper inline than a hop to a
            # worker thread (every PATCH of a chunked push opens its upload).
            try:
                with disk_full_as_storage_full():
                    fd = os.open(full, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
            except (*_MISSING, IsADirectoryError):
                raise PathNotFoundError(path) from None
            try:
                size = os.fstat(fd).st_size
            except BaseException:
                os.close(fd)
                raise
            durable = self._durable.get(str(full))
            if durable is None:
                durable = self._durable[str(full)] = DurableWrites()
            return _FileWriter(full, fd, size, durable=durable)

        def create() -> tuple[int, Path]:
            with disk_full_as_storage_full():
                for attempt in range(MAKE_DIR_ATTEMPTS):
                    full.parent.mkdir(parents=True, exist_ok=True)
                    try:
                        fd, temp = tempfile.mkstemp(dir=full.parent, prefix=TEMP_PREFIX)
                        os.fchmod(fd, NEW_FILE_MODE)  # as open(2) makes it, not mkstemp's 0600
                        return fd, Path(temp)
                    except FileNotFoundError:
                        # GC removed the (empty) directory between the mkdir and here.
                        if attempt == MAKE_DIR_ATTEMPTS - 1:
                            raise
                raise AssertionError("unreachable")

        fd, temp = await asyncio.to_thread(create)
        return _FileWriter(full, fd, 0, temp)

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
        self._forget_durable(str(src))

    async def delete(self, path: str) -> None:
        full = self._full(path)
        self._forget_durable(str(full))

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

    def directory_stamp(self, path: str) -> Stamp | None:
        """``DirectoryTimes``: the inode and modification time (ns) of what is at ``path``
        (one ``lstat``, blocking: inline or from a worker thread's walk)."""
        try:
            st = os.stat(self._local(path), follow_symlinks=False)
        except _MISSING:
            return None
        return (st.st_ino, st.st_mtime_ns)

    # -- blocking calls from a worker thread (NameListing: GC's scan; RenameAside: its sweep) ---
    def entries(self, path: str) -> _Entries | None:
        """``NameListing``, ``DirectoryTimes``: the entries of a directory with their kinds from
        ``d_type`` (no ``stat``); None when it is not there."""
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
