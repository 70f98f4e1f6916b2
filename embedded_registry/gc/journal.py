"""The sweep's journal and its recovery, through the driver.

Where the sweep renames files aside (a driver with
:class:`~embedded_registry.storage.driver.capabilities.RenameAside`,
:mod:`embedded_registry.gc.removal`), a journal under ``docker/registry/v2/`` says a sweep
runs. Found at the start of the next GC or server start, it means a sweep was killed: a blob or
a ``_layers`` link may be left renamed aside, and :func:`recover_interrupted_sweep` puts them
back. On an object store nothing is renamed aside: no journal, nothing to recover.
"""

from __future__ import annotations

import contextlib
import os

from embedded_registry import names
from embedded_registry.gc.removal import SWEEPING_SUFFIX
from embedded_registry.storage.driver.base import PathNotFoundError, StorageDriver
from embedded_registry.storage.driver.capabilities import RenameAside, list_files
from embedded_registry.storage.paths import KEYS

SWEEP_JOURNAL = ".regtui-gc-sweeping"
"""Present under ``docker/registry/v2/`` while a sweep runs (a sweep that renames aside)."""

JOURNAL_KEY = f"{KEYS.v2}/{SWEEP_JOURNAL}"

_DATA_ASIDE = "data" + SWEEPING_SUFFIX
_LINK_ASIDE = "link" + SWEEPING_SUFFIX


async def sweep_started(driver: StorageDriver) -> None:
    """A sweep begins: record it, so that a killed one can be repaired."""
    if isinstance(driver, RenameAside):
        await driver.put_content(JOURNAL_KEY, f"{os.getpid()}\n".encode())


async def sweep_finished(driver: StorageDriver) -> None:
    """The sweep ended (whatever the outcome): nothing is left aside."""
    if isinstance(driver, RenameAside):
        with contextlib.suppress(PathNotFoundError):
            await driver.delete(JOURNAL_KEY)


async def _exists(driver: StorageDriver, path: str) -> bool:
    try:
        return not (await driver.stat(path)).is_dir
    except PathNotFoundError:
        return False


async def recover_interrupted_sweep(driver: StorageDriver) -> list[str]:
    """Put back what a killed sweep left renamed aside; the keys put back.

    Cheap when no sweep was interrupted (one ``stat``); otherwise one listing of the blobs and
    one of the repositories."""
    if not await _exists(driver, JOURNAL_KEY):
        return []
    restored = []
    async for info in list_files(driver, KEYS.blobs_dir):
        if info.path.rpartition("/")[2] != _DATA_ASIDE:
            continue
        data = info.path.removesuffix(SWEEPING_SUFFIX)
        with contextlib.suppress(PathNotFoundError):
            if await _exists(driver, data):
                await driver.delete(info.path)  # a fresh push of the same bytes replaced it
            else:
                await driver.move(info.path, data)
                restored.append(data)
    # A ``_layers`` link renamed aside: back when its blob is there, else it goes.
    async for info in list_files(driver, KEYS.repositories_dir):
        head, _, leaf = info.path.rpartition("/")
        if leaf != _LINK_ASIDE or "/_layers/" not in head:
            continue
        link = f"{head}/link"
        with contextlib.suppress(PathNotFoundError):
            text = (await driver.get_content(info.path, limit=1024)).decode("ascii", "replace")
            digest = text.strip()
            blob = KEYS.blob_data(digest) if names.is_valid_digest(digest) else None
            if blob is not None and not await _exists(driver, link) and await _exists(driver, blob):
                await driver.move(info.path, link)
                restored.append(link)
            else:
                await driver.delete(info.path)
    with contextlib.suppress(PathNotFoundError):
        await driver.delete(JOURNAL_KEY)
    return restored
