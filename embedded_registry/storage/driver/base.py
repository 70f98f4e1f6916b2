"""The storage driver seam, on the model of CNCF Distribution's ``StorageDriver``.

The layout (:mod:`embedded_registry.storage.paths`) says *what* is stored under which key; a
driver says *how* bytes are kept. Keys are absolute slash-separated paths (``/docker/registry/v2/
blobs/sha256/ab/<hex>/data``), the same for every driver, so a bucket prefix written by
Distribution's s3 driver and a directory written by its filesystem driver are served as they are.

Every method is async: the s3 driver is natively async, the filesystem driver runs its blocking
calls in threads where they are more than a stat. What only one driver can offer is optional:
:meth:`StorageDriver.local_path` (sendfile) and :meth:`StorageDriver.redirect_url` (a presigned
URL), and the capability flags the stores read (``invisible_until_commit``, ``cheap_touch``,
``directory_times``).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import os
import signal
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

MANY_CONCURRENCY = 32
"""Requests :meth:`StorageDriver.get_many` keeps in flight."""

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


Contents = list[bytes | StorageDriverError | None]
"""What :meth:`StorageDriver.get_many` returns: per path, the bytes, None (nothing there) or the
error that kept it from being read."""


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
    async def write(self, data: bytes) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def commit(self) -> None: ...

    @abc.abstractmethod
    async def cancel(self) -> None: ...


class StorageDriver(abc.ABC):
    """Bytes under keys. Missing keys raise :class:`PathNotFoundError`."""

    name: str = "driver"
    shared: bool = True
    """Other processes (replicas of one bucket) may commit to this storage at the same time:
    GC then waits ``storage.lease.COMMIT_WINDOW`` after taking its lease."""

    invisible_until_commit: bool = True
    """A writer's bytes are invisible at its key until ``commit`` (an S3 multipart upload).
    Where they are not (a file written in place), the stores never write a blob's own key
    with a writer: they write an upload and ``move`` it into place once verified."""

    cheap_touch: bool = False
    """``touch`` is a cheap local call (a ``utime``), not a request: the stores then refresh
    a blob's time whenever they tell a client about it (GC's grace period then protects it)."""

    directory_times: bool = False
    """``local_path`` gives every key, and a directory's modification time changes whenever
    an entry is added to it or removed from it (a local filesystem): the stores then keep
    their listings (tags, catalog, referrers) in memory and check them with a ``stat`` of
    each directory instead of listing it again. The system calls of a ``stat`` or of a small
    read are cheaper than the hop to a worker thread, so such a driver does them inline. Its
    ``list_files(path, directories=True, leaf=...)`` also lists directories with their times
    (GC reads deletes there)."""

    @abc.abstractmethod
    async def get_content(self, path: str, *, limit: int | None = None) -> bytes:
        """The whole content at ``path`` (a small object: a link, a manifest)."""

    async def get_many(self, paths: Sequence[str], *, limit: int | None = None) -> Contents:
        """The contents of many small files (GC's scan reads every manifest and tag link):
        for each path its bytes, None when nothing is stored there, or the error that kept it
        from being read. Here: ``MANY_CONCURRENCY`` requests at once."""
        gate = asyncio.Semaphore(MANY_CONCURRENCY)

        async def one(path: str) -> bytes | StorageDriverError | None:
            async with gate:
                try:
                    return await self.get_content(path, limit=limit)
                except PathNotFoundError:
                    return None
                except StorageDriverError as exc:
                    return exc

        return list(await asyncio.gather(*(one(path) for path in paths)))

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
    async def stat(self, path: str) -> FileInfo: ...

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

    async def version(self, path: str) -> str | None:
        """An opaque tag of the file at ``path`` that changes whenever it is rewritten or
        removed (None: no file there); callers compare two of them, never parse one."""
        try:
            info = await self.stat(path)
        except PathNotFoundError:
            return None
        return None if info.is_dir else f"{info.size}:{info.mtime!r}"

    async def touch(self, path: str) -> bool:
        """Make ``path`` look just written (GC's grace period then protects it); whether it is
        there. The default rewrites small content; drivers do better where they can."""
        try:
            await self.put_content(path, await self.get_content(path))
        except PathNotFoundError:
            return False
        return True

    async def get_versioned(self, path: str) -> tuple[bytes, str]:
        """The content at ``path`` and its version tag (an S3 ETag), for conditional writes."""
        raise StorageDriverError(f"the {self.name} driver has no conditional writes")

    async def put_conditional(self, path: str, data: bytes, *, version: str | None) -> str:
        """Write ``path`` only if it is absent (``version`` None) or still at ``version``;
        its new version tag. PreconditionFailedError otherwise (another writer won)."""
        raise StorageDriverError(f"the {self.name} driver has no conditional writes")

    # -- what GC's sweep asks (the filesystem driver closes the windows an object store has) --
    async def remove_if_older(
        self,
        path: str,
        cutoff: float,
        *,
        fence: Callable[[], Awaitable[None]] | None = None,
    ) -> bool:
        """Delete the file at ``path`` unless it was written (or touched) after ``cutoff``;
        whether it is gone. ``fence`` (GC's lease check) is awaited right before the delete
        and stops it by raising. Here a stat, then a delete: a write between the two is lost
        (an object store has no delete-if-unchanged; :mod:`embedded_registry.storage.lease`)."""
        try:
            info = await self.stat(path)
        except PathNotFoundError:
            return True
        if info.mtime > cutoff:
            return False
        if fence is not None:
            await fence()
        with contextlib.suppress(PathNotFoundError):
            await self.delete(path)
        return True

    async def remove_unless(self, path: str, witness: str) -> bool:
        """Delete the file at ``path`` (a link) unless ``witness`` (its blob) exists; whether
        it is gone."""
        try:
            await self.stat(witness)
        except PathNotFoundError:
            with contextlib.suppress(PathNotFoundError):
                await self.delete(path)
            return True
        return False

    async def remove_empty_dirs(self, path: str, stop: str) -> None:
        """Remove the directory ``path`` and its parents while empty, never ``stop`` or above
        (nothing to do where directories do not exist)."""
        return None

    async def before_gc(self) -> None:
        """Repair what a killed sweep or writer left, before a real GC scans."""
        return None

    async def sweep_started(self) -> None:
        """A sweep begins: record it, so that a killed one can be repaired."""
        return None

    async def sweep_finished(self) -> None:
        return None

    async def redirect_url(self, path: str, method: str = "GET") -> str | None:
        """A URL the client may fetch ``path`` from directly, or ``None`` (serve it here)."""
        return None

    def local_path(self, path: str) -> str | None:
        """A path on this machine holding ``path``'s bytes (for sendfile), or ``None``."""
        return None

    async def check(self) -> None:
        """Raise :class:`StorageDriverError` with one line when the storage is unusable."""
        return None

    async def close(self) -> None:
        """Release connections."""
        return None


async def list_files(driver: StorageDriver, path: str) -> AsyncIterator[FileInfo]:
    """Every file under ``path`` (the driver's flat listing where it has one)."""
    lister = getattr(driver, "list_files", None)
    if lister is not None:
        async for info in lister(path):
            yield info
        return
    try:
        async for info in driver.walk(path):
            if not info.is_dir:
                yield info
    except PathNotFoundError:
        return
