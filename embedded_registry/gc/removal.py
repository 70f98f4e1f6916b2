"""What the sweep asks of the storage before each removal: the last checks, on the core
operations of any driver, and closer ones where the driver's keys are local files.

On an object store a removal is a stat, then a delete: a write between the two is lost (an
object store has no delete-if-unchanged; the GC lease of :mod:`embedded_registry.storage.lease`
fences it). Where the driver offers :class:`~embedded_registry.storage.driver.capabilities.
LocalFiles`, the file is renamed aside first and checked again there, so a touch or a push that
comes in between is never lost (the rename aside is recorded by :mod:`embedded_registry.gc.
journal`, and put back after a crash).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from embedded_registry.storage.driver.base import PathNotFoundError, StorageDriver, pause_point
from embedded_registry.storage.driver.capabilities import LocalFiles
from embedded_registry.storage.fsutil import remove_stale_temp_files

SWEEPING_SUFFIX = ".sweeping"
"""GC's sweep renames a blob's ``data`` (or a link) to ``data.sweeping`` for its last check."""

Fence = Callable[[], Awaitable[None]]
"""Called right before a removal; raises :class:`~embedded_registry.storage.lease.LeaseLost`
when the sweep must stop."""

_MISSING = (FileNotFoundError, NotADirectoryError)


async def remove_if_older(
    driver: StorageDriver, path: str, cutoff: float, *, fence: Fence | None = None
) -> bool:
    """Delete the file at ``path`` unless it was written (or touched) after ``cutoff``;
    whether it is gone. ``fence`` (GC's lease check) is awaited right before the removal
    begins and stops it by raising.

    On local files the data is renamed aside, then checked: a touch (HEAD, GET, mount) or a
    re-push that comes after the rename finds no file and the client uploads the blob again;
    one that came before it is seen here and the file is put back. Then the file goes, and its
    directory if nothing else is in it (never a whole tree: an upload may have put a fresh
    file there since)."""
    if isinstance(driver, LocalFiles):
        if fence is not None:
            await fence()
        return await asyncio.to_thread(_remove_if_older, driver.local_path(path), cutoff)
    try:
        info = await driver.stat(path)
    except PathNotFoundError:
        return True
    if info.mtime > cutoff:
        return False
    if fence is not None:
        await fence()
    with contextlib.suppress(PathNotFoundError):
        await driver.delete(path)
    return True


async def remove_unless(driver: StorageDriver, path: str, witness: str) -> bool:
    """Delete the file at ``path`` (a link) unless ``witness`` (its blob) exists; whether it
    is gone. On local files the link is renamed aside, then the blob looked for: an upload that
    commits the blob again links it after its data is in place, so either this sees the data
    (the link is put back) or the upload comes later, finds no link and writes it again."""
    if isinstance(driver, LocalFiles):
        full, other = driver.local_path(path), driver.local_path(witness)
        return await asyncio.to_thread(_remove_unless, full, other)
    try:
        await driver.stat(witness)
    except PathNotFoundError:
        with contextlib.suppress(PathNotFoundError):
            await driver.delete(path)
        return True
    return False


async def remove_empty_dirs(driver: StorageDriver, path: str, stop: str) -> None:
    """Remove the directory ``path`` and its parents while empty, never ``stop`` or above
    (nothing to do where directories do not exist: an object store)."""
    if isinstance(driver, LocalFiles):
        start, end = Path(driver.local_path(path)), Path(driver.local_path(stop))
        await asyncio.to_thread(_remove_empty_dirs, start, end)


def _remove_if_older(data: str, cutoff: float) -> bool:
    try:
        if os.stat(data).st_mtime > cutoff:
            return False
    except _MISSING:
        return True
    # A HEAD, GET or mount may touch the blob right here: the check after the rename sees it.
    pause_point("gc-sweep-rename", data)
    aside = data + SWEEPING_SUFFIX
    os.rename(data, aside)
    if os.stat(aside).st_mtime > cutoff:
        # Touched between the two checks: back (a copy pushed meanwhile has the same bytes).
        os.replace(aside, data)
        return False
    return _remove_only(aside, data)


def _remove_unless(link: str, witness: str) -> bool:
    aside = link + SWEEPING_SUFFIX
    try:
        os.rename(link, aside)
    except _MISSING:
        return True
    if os.path.exists(witness):
        os.replace(aside, link)
        return False
    return _remove_only(aside, link)


def _remove_only(aside: str, live: str) -> bool:
    """Remove ``aside``, then its directory if empty; whether ``live`` is absent after."""
    with contextlib.suppress(*_MISSING):
        os.unlink(aside)
    directory = os.path.dirname(aside)
    for attempt in range(2):
        try:
            os.rmdir(directory)
            return True
        except _MISSING:
            return True
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
        if os.path.exists(live):
            return False  # pushed again meanwhile: it stays
        if attempt == 0:
            remove_stale_temp_files(Path(directory))
    return True


def _remove_empty_dirs(start: Path, stop: Path) -> None:
    current = start
    while current != stop and stop in current.parents:
        try:
            current.rmdir()
        except OSError:
            return
        current = current.parent
