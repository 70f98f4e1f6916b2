"""What the sweep asks of the storage before each removal: the last checks, on the core
operations of any driver, and closer ones where the driver can rename a file aside.

On an object store a removal is a stat, then a delete: a write between the two is lost (an
object store has no delete-if-unchanged; the GC lease of :mod:`embedded_registry.storage.lease`
fences it). Where the driver offers :class:`~embedded_registry.storage.driver.capabilities.
RenameAside` (a local disk), the file is renamed aside first and checked again there, so a
touch or a push that comes in between is never lost (the rename aside is recorded by
:mod:`embedded_registry.gc.journal`, and put back after a crash). Each removal is then one
worker-thread hop of the driver's blocking calls, on keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

from embedded_registry.storage.driver.base import PathNotFoundError, StorageDriver, pause_point
from embedded_registry.storage.driver.capabilities import RenameAside
from embedded_registry.storage.fsutil import STALE_TEMP_AGE, TEMP_PREFIX

SWEEPING_SUFFIX = ".sweeping"
"""GC's sweep renames a blob's ``data`` (or a link) to ``data.sweeping`` for its last check."""

Fence = Callable[[], Awaitable[None]]
"""Called right before a removal; raises :class:`~embedded_registry.storage.lease.LeaseLost`
when the sweep must stop."""


async def remove_if_older(
    driver: StorageDriver,
    path: str,
    cutoff: float,
    *,
    fence: Fence | None = None,
    shown: str | None = None,
) -> bool:
    """Delete the file at ``path`` unless it was written (or touched) after ``cutoff``;
    whether it is gone. ``fence`` (GC's lease check) is awaited right before the removal
    begins and stops it by raising; ``shown`` names the file in a pause line (its path in
    reports).

    Where files are renamed aside, the data is renamed aside, then checked: a touch (HEAD,
    GET, mount) or a re-push that comes after the rename finds no file and the client uploads
    the blob again; one that came before it is seen here and the file is put back. Then the
    file goes, and its directory if nothing else is in it (never a whole tree: an upload may
    have put a fresh file there since)."""
    if isinstance(driver, RenameAside):
        if fence is not None:
            await fence()
        return await asyncio.to_thread(remove_if_older_now, driver, path, cutoff, shown or path)
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
    is gone. Where files are renamed aside, the link is renamed aside, then the blob looked
    for: an upload that commits the blob again links it after its data is in place, so either
    this sees the data (the link is put back) or the upload comes later, finds no link and
    writes it again."""
    if isinstance(driver, RenameAside):
        return await asyncio.to_thread(remove_unless_now, driver, path, witness)
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
    if isinstance(driver, RenameAside):
        await asyncio.to_thread(_remove_empty_dirs, driver, path, stop)


def remove_if_older_now(driver: RenameAside, data: str, cutoff: float, shown: str) -> bool:
    """:func:`remove_if_older` where files are renamed aside, as a blocking call (no fence)."""
    info = driver.stat_now(data)
    if info is None:
        return True
    if info.mtime > cutoff:
        return False
    # A HEAD, GET or mount may touch the blob right here: the check after the rename sees it.
    pause_point("gc-sweep-rename", shown)
    aside = data + SWEEPING_SUFFIX
    if not driver.rename_now(data, aside):
        raise PathNotFoundError(data)
    moved = driver.stat_now(aside)
    if moved is not None and moved.mtime > cutoff:
        # Touched between the two checks: back (a copy pushed meanwhile has the same bytes).
        driver.rename_now(aside, data)
        return False
    return _remove_only(driver, aside, data)


def remove_unless_now(driver: RenameAside, link: str, witness: str) -> bool:
    """:func:`remove_unless` where files are renamed aside, as a blocking call."""
    aside = link + SWEEPING_SUFFIX
    if not driver.rename_now(link, aside):
        return True
    found = driver.stat_now(witness)
    if found is not None:
        driver.rename_now(aside, link)
        return False
    return _remove_only(driver, aside, link)


def _remove_only(driver: RenameAside, aside: str, live: str) -> bool:
    """Remove ``aside``, then its directory if empty; whether ``live`` is absent after."""
    driver.unlink_now(aside)
    directory = aside.rsplit("/", 1)[0]
    for attempt in range(2):
        if driver.remove_dir_now(directory):
            return True
        if driver.stat_now(live) is not None:
            return False  # pushed again meanwhile: it stays
        if attempt == 0:
            _remove_stale_temporaries(driver, directory)
    return True


def _remove_stale_temporaries(driver: RenameAside, top: str) -> None:
    """Remove the temporary files of atomic writes under ``top`` older than
    ``STALE_TEMP_AGE`` (left by a killed writer); a write in flight is never touched."""
    cutoff = time.time() - STALE_TEMP_AGE
    pending = [top]
    while pending:
        directory = pending.pop()
        for name, is_dir in driver.entries(directory) or ():
            path = f"{directory}/{name}"
            if is_dir:
                pending.append(path)
                continue
            if name.startswith(TEMP_PREFIX):
                info = driver.stat_now(path)
                if info is not None and info.mtime < cutoff:
                    driver.unlink_now(path)


def _remove_empty_dirs(driver: RenameAside, start: str, stop: str) -> None:
    current = start.rstrip("/")
    stop = stop.rstrip("/")
    while current != stop and current.startswith(stop + "/"):
        try:
            if not driver.remove_dir_now(current):
                return
        except OSError:
            return
        current = current.rsplit("/", 1)[0]
