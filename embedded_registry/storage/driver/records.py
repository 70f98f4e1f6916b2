"""Record files: small records made durable with one ``fdatasync`` and no metadata change.

A durable small write through :meth:`~.base.StorageDriver.put_content` creates a file: its
``fsync`` and the ``fsync`` of its directory each commit the filesystem's journal (two cache
flushes of the disk, serialised with every other commit of the filesystem). A record file is
created once, at its full size, with *written* zeros (not ``fallocate``: its unwritten extents
would be converted at the first write, a metadata change), made durable with its directory;
after that a record is a ``pwrite`` into the zeros and an ``fdatasync``, which only writes the
data back (the file's size and blocks do not change: the filesystem journal is not touched).
Concurrent appenders share one ``fdatasync`` (group commit): an append returns once a sync that
started after its own ``pwrite`` completed.

A record::

    magic (4) | state (1) | written ns (8, LE) | length (4, LE) | crc32 (4, LE) | body (length)

The crc covers the time, the length and the body: a record torn by a crash (never
acknowledged: its append had not returned) fails it and is skipped; the next record is found
by its magic (``0xff`` never occurs in a body of ASCII JSON). ``state`` is ``W`` (waiting) or
``D`` (done); it is overwritten in place, without a sync (a mark lost in a crash only makes a
record waiting again: at least once).

The owner of a record file holds an exclusive ``flock`` on it for its lifetime; the kernel
releases it when the process dies (kill -9 too), so another process can tell whether the
owner is gone before it removes the file.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import struct
import threading
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from embedded_registry.storage.driver.base import StorageDriver
from embedded_registry.storage.driver.capabilities import LocalFiles
from embedded_registry.storage.fsutil import TEMP_PREFIX, fsync_dir

MAGIC = b"\xffRN1"
WAITING = b"W"
DONE = b"D"
_HEADER = struct.Struct("<4scQII")
HEADER_BYTES = _HEADER.size
_SIGNED = struct.Struct("<QI")
_ZEROS = bytes(1 << 20)
_datasync = getattr(os, "fdatasync", os.fsync)
"""``fdatasync`` where the system has it (not macOS: ``fsync`` there)."""


@dataclass(frozen=True)
class Record:
    """One valid record of a file: where it starts, when it was written, its state and body."""

    offset: int
    written_ns: int
    state: bytes
    body: bytes


def encode(written_ns: int, body: bytes) -> bytes:
    """The bytes of a waiting record holding ``body``."""
    crc = zlib.crc32(_SIGNED.pack(written_ns, len(body)) + body)
    return _HEADER.pack(MAGIC, WAITING, written_ns, len(body), crc) + body


def parse(data: bytes) -> list[Record]:
    """The valid records of ``data`` (a record file's bytes), in file order."""
    found: list[Record] = []
    position = data.find(MAGIC)
    while 0 <= position <= len(data) - HEADER_BYTES:
        _, state, written_ns, length, crc = _HEADER.unpack_from(data, position)
        start = position + HEADER_BYTES
        body = data[start : start + length]
        if (
            len(body) == length
            and state in (WAITING, DONE)
            and zlib.crc32(_SIGNED.pack(written_ns, length) + body) == crc
        ):
            found.append(Record(position, written_ns, state, body))
            position = data.find(MAGIC, start + length)
        else:  # torn by a crash: look for the next record
            position = data.find(MAGIC, position + 1)
    return found


class RecordFile:
    """An open record file (blocking calls: run them in a worker thread)."""

    def __init__(self, path: str, fd: int, size: int) -> None:
        self.path = path
        self.fd = fd
        self.size = size
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._written = 0
        self.synced = 0
        """Appends (counted as they complete their ``pwrite``) made durable so far."""
        self.syncs = 0
        """``fdatasync`` calls made: fewer than appends when appends run concurrently."""

    @classmethod
    def create(cls, path: str, size: int) -> RecordFile:
        """A new record file of ``size`` zeros at ``path``, durable and locked by this
        process (made aside and renamed into place: never seen half made)."""
        directory = os.path.dirname(path)
        os.makedirs(directory, exist_ok=True)
        temp = os.path.join(directory, f"{TEMP_PREFIX}{os.path.basename(path)}")
        fd = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            left = size
            while left > 0:
                left -= os.write(fd, _ZEROS[: min(left, len(_ZEROS))])
            os.fsync(fd)
            os.replace(temp, path)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise
        fsync_dir_of(path)
        return cls(path, fd, size)

    @classmethod
    def open(cls, path: str) -> RecordFile:
        """An existing record file (another process's), not locked."""
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        return cls(path, fd, os.fstat(fd).st_size)

    def append(self, offset: int, data: bytes) -> None:
        """Write ``data`` at ``offset`` and return once it is durable."""
        if offset + len(data) > self.size:
            raise ValueError("a record beyond the end of its file")
        written = os.pwrite(self.fd, data, offset)
        if written != len(data):
            raise OSError(f"short write to {self.path}: {written} of {len(data)} bytes")
        with self._lock:
            self._written += 1
            ticket = self._written
        with self._sync_lock:
            if self.synced >= ticket:  # a sync that started after our pwrite covered it
                return
            with self._lock:
                target = self._written
            _datasync(self.fd)
            self.syncs += 1
            self.synced = target

    def mark(self, offsets: Iterable[int], state: bytes = DONE) -> None:
        """Overwrite the state of the records at ``offsets`` (no sync)."""
        for offset in offsets:
            os.pwrite(self.fd, state, offset + len(MAGIC))

    def read(self) -> list[Record]:
        """The file's valid records."""
        return parse(os.pread(self.fd, os.fstat(self.fd).st_size, 0))

    def read_at(self, offset: int) -> Record | None:
        """The valid record at ``offset``, or ``None``."""
        header = os.pread(self.fd, HEADER_BYTES, offset)
        if len(header) < HEADER_BYTES or not header.startswith(MAGIC):
            return None
        length = _HEADER.unpack(header)[3]
        if offset + HEADER_BYTES + length > self.size:
            return None
        found = parse(header + os.pread(self.fd, length, offset + HEADER_BYTES))
        if not found:
            return None
        return Record(offset, found[0].written_ns, found[0].state, found[0].body)

    def stamp(self) -> tuple[int, int]:
        """What changes when the file is written: its size and modification time."""
        st = os.fstat(self.fd)
        return st.st_size, st.st_mtime_ns

    def owner_gone(self) -> bool:
        """Whether no process holds the file's lock (its owner ended: this process takes
        it, and may remove the file)."""
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def remove(self) -> None:
        """Remove the file (durably) and close it."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        fsync_dir_of(self.path)
        self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


def fsync_dir_of(path: str) -> None:
    fsync_dir(Path(path).parent)


class RecordFiles:
    """Record files at keys of a driver whose keys are local files."""

    def __init__(self, driver: LocalFiles) -> None:
        self.driver = driver

    def create(self, key: str, size: int) -> RecordFile:
        return RecordFile.create(self.driver.local_path(key), size)

    def open(self, key: str) -> RecordFile:
        return RecordFile.open(self.driver.local_path(key))


def record_files(driver: StorageDriver) -> RecordFiles | None:
    """Record files on ``driver``, where its keys are local files (the filesystem driver);
    ``None`` elsewhere (an object store: a small object is written whole anyway)."""
    return RecordFiles(driver) if isinstance(driver, LocalFiles) else None
