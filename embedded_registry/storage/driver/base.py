"""The storage driver seam, on the model of CNCF Distribution's ``StorageDriver``.

The layout (:mod:`embedded_registry.storage.paths`) says *what* is stored under which key; a
driver says *how* bytes are kept. Keys are absolute slash-separated paths (``/docker/registry/v2/
blobs/sha256/ab/<hex>/data``), the same for every driver, so a bucket prefix written by
Distribution's s3 driver and a directory written by its filesystem driver are served as they are.

Every method is async: the s3 driver is natively async, the filesystem driver runs its blocking
calls in threads where they are more than a stat. :class:`StorageDriver` holds the core
operations only; what only some drivers can do (a local path for sendfile, a cheap touch,
listings with times, conditional writes, multipart uploads) is a small Protocol of
:mod:`embedded_registry.storage.driver.capabilities`. A driver knows nothing of HTTP nor of GC:
it raises :class:`StorageDriverError` and its kinds (:class:`StorageFull` for a full disk),
which the routes turn into answers; GC's sweep, its journal and its recovery live in
:mod:`embedded_registry.gc`.
"""

from __future__ import annotations

import abc
import os
import signal
import sys
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass

PAUSE_ENV = "REGTUI_PAUSE_AT"
"""For tests of races only: ``<point>`` or ``<point>@<text>`` (comma-separated) names where
:func:`pause_point` stops the process."""

_paused: set[str] = set()


def pause_point(point: str, detail: str = "") -> None:
    """Stop this process (SIGSTOP to itself) the first time it reaches ``point``, when
    ``REGTUI_PAUSE_AT`` names it (``<point>@<text>``: only where ``detail`` contains
    ``<text>``), after one line on stderr: ``regtui: paused at <point>: <detail> (pid N)``.
    A test then does what races with that instant and resumes the process with SIGCONT.
    Without the variable (always, outside tests) this is one dictionary lookup."""
    wanted = os.environ.get(PAUSE_ENV)
    if not wanted or point in _paused:
        return
    for item in wanted.split(","):
        name, _, text = item.partition("@")
        if name == point and text in detail:
            _paused.add(point)
            sys.stderr.write(f"regtui: paused at {point}: {detail} (pid {os.getpid()})\n")
            sys.stderr.flush()
            # To this thread: a signal sent to the process may be taken by another thread,
            # and this one would run on until that one stops the others.
            signal.pthread_kill(threading.get_ident(), signal.SIGSTOP)
            return


class StorageDriverError(Exception):
    """A driver could not do what was asked (the message is one line, without secrets)."""


class StorageFull(StorageDriverError):
    """The storage has no room left (ENOSPC, EDQUOT: a full disk or quota). The routes answer
    507 Insufficient Storage; the message names no path."""

    def __init__(self) -> None:
        super().__init__(
            "the registry's storage is full: free space on it (or raise its quota) and retry"
        )


class PathNotFoundError(StorageDriverError):
    """Nothing is stored at the key (Distribution's ``PathNotFoundError``)."""

    def __init__(self, path: str) -> None:
        super().__init__(f"path not found: {path}")
        self.path = path


class PreconditionFailedError(StorageDriverError):
    """A conditional write found the object changed (or present, or absent)."""


class InvalidOffsetError(StorageDriverError):
    """A reader was asked for an offset past the end of the content."""


@dataclass(frozen=True, slots=True)
class FileInfo:
    """What :meth:`StorageDriver.stat` knows of a key: a file (size, mtime) or a directory
    (a common prefix: size 0, mtime 0 when the driver cannot tell)."""

    path: str
    size: int
    mtime: float
    is_dir: bool


class FileWriter(abc.ABC):
    """An append-only writer (Distribution's ``FileWriter``).

    ``write`` adds bytes; ``close`` ends this writer and keeps what was written so that a later
    ``writer(path, append=True)`` (on any replica, for the s3 driver) continues it; ``commit``
    makes the content visible at ``path``; ``cancel`` throws everything away.
    """

    @property
    @abc.abstractmethod
    def size(self) -> int:
        """The bytes written so far, by this writer and the ones it continues."""

    @abc.abstractmethod
    async def write(self, data: bytes, *more: bytes) -> None:
        """Append ``data``, then each of ``more`` in order: pieces as they came from a socket,
        which a writer may store without joining them first (one copy less per byte)."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def commit(self) -> None: ...

    @abc.abstractmethod
    async def cancel(self) -> None: ...


class StorageDriver(abc.ABC):
    """Bytes under keys, the core operations of Distribution's ``StorageDriver``: get and
    put content, a reader, a writer, stat, list, move, delete, walk and a redirect URL (plus
    ``check`` and ``close``). Missing keys raise :class:`PathNotFoundError`; a full storage
    :class:`StorageFull`. What only some drivers can do is a Protocol of
    :mod:`embedded_registry.storage.driver.capabilities`, checked with ``isinstance``."""

    name: str = "driver"
    shared: bool = True
    """Other processes (replicas of one bucket) may commit to this storage at the same time:
    GC then waits ``storage.lease.COMMIT_WINDOW`` after taking its lease."""

    @abc.abstractmethod
    async def get_content(self, path: str, *, limit: int | None = None) -> bytes:
        """The whole content at ``path`` (a small object: a link, a manifest), at most
        ``limit`` bytes of it."""

    @abc.abstractmethod
    async def put_content(self, path: str, data: bytes) -> None:
        """Store ``data`` at ``path`` atomically: readers see the old content or the new."""

    @abc.abstractmethod
    def reader(self, path: str, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        """The content from ``offset`` (``length`` bytes, or to the end), in pieces."""

    @abc.abstractmethod
    async def writer(self, path: str, *, append: bool = False) -> FileWriter:
        """A writer at ``path``; with ``append``, continuing the content written so far
        (PathNotFoundError when there is none)."""

    @abc.abstractmethod
    async def stat(self, path: str) -> FileInfo:
        """What is at ``path``: a file (size, time) or a directory (a common prefix)."""

    @abc.abstractmethod
    async def list(self, path: str) -> list[str]:
        """The direct children of the directory ``path`` (full keys), PathNotFoundError when
        there is no such directory."""

    @abc.abstractmethod
    async def move(self, source: str, dest: str) -> None:
        """Move ``source`` to ``dest`` (replacing it)."""

    @abc.abstractmethod
    async def delete(self, path: str) -> None:
        """Delete ``path`` and everything under it; PathNotFoundError when nothing was there."""

    async def walk(self, path: str) -> AsyncIterator[FileInfo]:
        """Every file and directory under ``path``, depth first, in key order."""
        for child in sorted(await self.list(path)):
            info = await self.stat(child)
            yield info
            if info.is_dir:
                async for inner in self.walk(child):
                    yield inner

    async def redirect_url(self, path: str, method: str = "GET") -> str | None:
        """A URL the client may fetch ``path`` from directly, or ``None`` (serve it here)."""
        return None

    async def check(self) -> None:
        """Raise :class:`StorageDriverError` with one line when the storage is unusable."""
        return None

    async def close(self) -> None:
        """Release connections."""
        return None
