"""What only some drivers can do: small Protocols, each named for what it allows, checked with
``isinstance`` by the stores, the GC lease and GC (never a flag or a ``getattr``).

========================  ==========  ===================================================
Protocol                  drivers     what it allows
========================  ==========  ===================================================
:class:`LocalFiles`       filesystem  sendfile of a blob
:class:`CheapTouch`       filesystem  refresh a blob whenever a client is told of it
:class:`TimedListing`     both        one flat listing of files with sizes and times
:class:`DirectoryTimes`   filesystem  a directory's stamp tells whether its listing changed:
                                      listings kept in memory, checked with one ``stat``;
                                      listings with directories (their times record deletes)
:class:`BatchReads`       filesystem  many small reads per worker-thread hop
:class:`ConditionalWrites` both       versions, get and put-if-unchanged (the GC lease)
:class:`MultipartUploads` s3          writes invisible until commit, listed and aborted
:class:`NameListing`      filesystem  GC's scan by name, stats only where a decision needs
:class:`RenameAside`      filesystem  GC's sweep renames aside for its last check
:class:`LocalRoot`        filesystem  reports name local paths
:class:`BlockingReads`    filesystem  scrub hashes many files per worker-thread hop
========================  ==========  ===================================================

A store reads and writes only keys of :mod:`embedded_registry.storage.paths`, through the core
operations and these Protocols: nothing outside the drivers opens, stats or walks a file of the
storage itself (``tests/server/test_seam_rule.py`` keeps it so). ``LocalFiles`` is for what needs
a real file descriptor only.

:func:`list_files`, :func:`get_many` and :func:`version_of` use a capability where the driver
has it and the core operations otherwise.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from embedded_registry.storage.driver.base import (
    FileInfo,
    PathNotFoundError,
    StorageDriver,
    StorageDriverError,
)

MANY_CONCURRENCY = 32
"""Requests :func:`get_many` keeps in flight on a driver without :class:`BatchReads`."""

Contents = list[bytes | StorageDriverError | None]
"""What :func:`get_many` returns: per path, the bytes, None (nothing there) or the error that
kept it from being read."""

Uploads = list[tuple[str, str, float]]
"""Unfinished multipart uploads: ``(key, upload id, initiated)``."""

Stamp = tuple[int, int]
"""What :meth:`DirectoryTimes.directory_stamp` gives: ``(identity, time)``, the identity of
the directory (an inode: it changes when the directory is replaced) and its modification time
in nanoseconds (it changes when an entry is added or removed)."""

Entry = tuple[str, bool]
"""One entry of a directory: its name and whether it is a directory."""


@runtime_checkable
class LocalFiles(Protocol):
    """Every key is a file on this machine: a blob is served with sendfile."""

    def local_path(self, path: str) -> str:
        """The file holding key ``path``."""
        ...


@runtime_checkable
class CheapTouch(Protocol):
    """``touch`` is a local call (a ``utime``), not a request: the stores refresh a blob's
    time whenever they tell a client about it, and GC's grace period then protects it."""

    async def touch(self, path: str) -> bool:
        """Make ``path`` look just written; whether it is there."""
        ...


@runtime_checkable
class TimedListing(Protocol):
    """One flat listing of every file under a key, with sizes and times (S3's
    ``ListObjectsV2``; a ``scandir`` walk)."""

    def list_files(self, path: str) -> AsyncIterator[FileInfo]:
        """Every file under ``path``."""
        ...


@runtime_checkable
class DirectoryTimes(Protocol):
    """Directories exist, and a directory's time changes whenever an entry is added to it or
    removed from it (a local filesystem): a directory's stamp tells whether its listing
    changed. The listings kept in memory (tags, catalog, referrers, upload sessions:
    :mod:`embedded_registry.storage.local_listings`) are checked with one stamp per directory
    instead of being listed again, and GC reads deletes in the listings with directories.

    :meth:`directory_stamp` and :meth:`entries` are blocking, one system call each: cheap
    enough for the event loop, and what a walk run in a worker thread calls."""

    def directory_stamp(self, path: str) -> Stamp | None:
        """A token of what is at ``path`` that changes whenever an entry is added to that
        directory or removed from it, or the directory is replaced (one ``stat``); None when
        nothing is there."""
        ...

    def entries(self, path: str) -> list[Entry] | None:
        """The entries of the directory ``path``, each with whether it is a directory (one
        listing, no ``stat``), unsorted; None when there is no such directory (the same call
        as :class:`NameListing`'s)."""
        ...

    def list_files(
        self,
        path: str,
        *,
        directories: bool = False,
        leaf: Callable[[str], str | None] | None = None,
    ) -> AsyncIterator[FileInfo]:
        """Every file (with ``directories``, and directory) under ``path``, parents before
        children; ``leaf(key)`` may name the one file a directory holds (one ``stat``)."""
        ...

    def list_tree(
        self, path: str, *, leaf: Callable[[str], str | None] | None = None
    ) -> AsyncIterator[FileInfo]:
        """``list_files(path, directories=True, leaf=leaf)``."""
        ...


@runtime_checkable
class BatchReads(Protocol):
    """Many small files read at once, cheaper than one request each."""

    async def get_many(self, paths: Sequence[str], *, limit: int | None = None) -> Contents:
        """For each path its bytes, None when nothing is stored there, or the error."""
        ...


@runtime_checkable
class ConditionalWrites(Protocol):
    """Versions of a file and writes that succeed only on the version read (S3
    ``If-Match``/``If-None-Match``, a ``flock`` on the filesystem): the GC lease."""

    async def version(self, path: str) -> str | None:
        """An opaque tag of the file at ``path`` that changes whenever it is rewritten or
        removed (None: no file there)."""
        ...

    async def get_versioned(self, path: str) -> tuple[bytes, str]:
        """The content at ``path`` and its version tag."""
        ...

    async def put_conditional(self, path: str, data: bytes, *, version: str | None) -> str:
        """Write ``path`` only if it is absent (``version`` None) or still at ``version``;
        its new version tag. PreconditionFailedError otherwise (another writer won)."""
        ...


@runtime_checkable
class MultipartUploads(Protocol):
    """A writer is a multipart upload: its bytes are invisible at its key until ``commit``
    (a monolithic push may stream straight to the blob's key), and one left unfinished by a
    crash is listed and aborted (upload purging). A driver without it keeps what a closed
    writer wrote at the writer's key: a ``stat`` tells an upload's size."""

    async def multipart_uploads(self, path: str) -> Uploads:
        """Unfinished multipart uploads under ``path``."""
        ...

    async def abort_upload(self, path: str, upload_id: str) -> None:
        """Abort one multipart upload (gone already: nothing to do)."""
        ...


async def list_files(driver: StorageDriver, path: str) -> AsyncIterator[FileInfo]:
    """Every file under ``path``: the driver's :class:`TimedListing` where it has one, else
    its ``walk`` (nothing when ``path`` does not exist)."""
    if isinstance(driver, TimedListing):
        async for info in driver.list_files(path):
            yield info
        return
    try:
        async for info in driver.walk(path):
            if not info.is_dir:
                yield info
    except PathNotFoundError:
        return


async def get_many(
    driver: StorageDriver, paths: Sequence[str], *, limit: int | None = None
) -> Contents:
    """The contents of many small files (GC's scan reads every manifest and tag link): for
    each path its bytes, None when nothing is stored there, or the error that kept it from
    being read. The driver's :class:`BatchReads` where it has one; else ``MANY_CONCURRENCY``
    requests at once."""
    if isinstance(driver, BatchReads):
        return await driver.get_many(paths, limit=limit)
    gate = asyncio.Semaphore(MANY_CONCURRENCY)

    async def one(path: str) -> bytes | StorageDriverError | None:
        async with gate:
            try:
                return await driver.get_content(path, limit=limit)
            except PathNotFoundError:
                return None
            except StorageDriverError as exc:
                return exc

    return list(await asyncio.gather(*(one(path) for path in paths)))


async def version_of(driver: StorageDriver, path: str) -> str | None:
    """A tag of the file at ``path`` that changes when it is rewritten or removed (None: no
    file): the driver's :class:`ConditionalWrites` version, else its size and time."""
    if isinstance(driver, ConditionalWrites):
        return await driver.version(path)
    try:
        info = await driver.stat(path)
    except PathNotFoundError:
        return None
    return None if info.is_dir else f"{info.size}:{info.mtime!r}"


def conditional_writes(driver: StorageDriver) -> ConditionalWrites:
    """``driver`` as :class:`ConditionalWrites`; StorageDriverError when it has none."""
    if not isinstance(driver, ConditionalWrites):
        raise StorageDriverError(f"the {driver.name} driver has no conditional writes")
    return driver


@runtime_checkable
class NameListing(Protocol):
    """A directory is listed by name, each entry's kind known without a ``stat``
    (``scandir``'s ``d_type``), and a file's size and time is one blocking call: GC's scan
    reads the layout level by level in one worker thread and stats only what a decision needs
    (:mod:`embedded_registry.gc.scan`). Blocking: call them from a worker thread."""

    def entries(self, path: str) -> list[tuple[str, bool]] | None:
        """The entries of the directory ``path`` as (name, is a directory); None when there
        is no such directory."""
        ...

    def stat_now(self, path: str) -> FileInfo | None:
        """What is at ``path`` (None: nothing)."""
        ...

    def read_now(self, path: str, limit: int) -> bytes | StorageDriverError | None:
        """At most ``limit`` bytes of the file ``path``; None when it is not there, the error
        when it cannot be read."""
        ...


@runtime_checkable
class RenameAside(Protocol):
    """A file is renamed atomically (aside, and back), and an emptied directory removed, by
    blocking calls one worker thread makes in a row: GC's sweep renames a blob's data or a
    link aside for its last check, one thread hop per removal (:mod:`embedded_registry.gc.
    removal`; its journal, :mod:`embedded_registry.gc.journal`, puts back what a killed
    sweep left aside). Blocking: call them from a worker thread."""

    def stat_now(self, path: str) -> FileInfo | None:
        """What is at ``path`` (None: nothing)."""
        ...

    def entries(self, path: str) -> list[tuple[str, bool]] | None:
        """The entries of the directory ``path`` as (name, is a directory); None: none."""
        ...

    def rename_now(self, source: str, dest: str) -> bool:
        """Rename ``source`` to ``dest`` in one step (replacing it); False when ``source``
        is not there."""
        ...

    def unlink_now(self, path: str) -> bool:
        """Remove the file ``path``; False when it is not there."""
        ...

    def remove_dir_now(self, path: str) -> bool:
        """Remove the directory ``path`` if it is empty; False when something is in it (True
        when it is gone or was not there)."""
        ...


@runtime_checkable
class LocalRoot(Protocol):
    """Every key is a file under one directory of this machine: reports (GC's removals) name
    what they list by its local path, ``<root>/docker/registry/v2/...``."""

    root: Path


@runtime_checkable
class BlockingReads(Protocol):
    """A file is opened and read by blocking calls one worker thread makes in a row (a local
    disk): scrub hashes blob after blob in large reads, one thread hop for many files,
    instead of a hop per block of the driver's ``reader``."""

    def open_now(self, path: str) -> io.RawIOBase | None:
        """The file ``path`` opened for reading (unbuffered); None when nothing is there.
        Raises IsADirectoryError when what is there is not a file, the OSError of an
        unreadable one."""
        ...
