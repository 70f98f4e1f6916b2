"""The sweep: carry out a plan, kind by kind, through the storage driver."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from embedded_registry.gc.journal import (
    SWEEP_JOURNAL,
    recover_interrupted_sweep,
    sweep_finished,
    sweep_started,
)
from embedded_registry.gc.mark import Problem
from embedded_registry.gc.plan import Removal
from embedded_registry.gc.removal import (
    SWEEPING_SUFFIX,
    Fence,
    remove_empty_dirs,
    remove_if_older,
    remove_unless,
)
from embedded_registry.gc.scan import Snapshot
from embedded_registry.storage.driver.base import PathNotFoundError, StorageDriver
from embedded_registry.storage.lease import LeaseLost
from embedded_registry.storage.paths import KEYS

__all__ = [
    "REFRESHED",
    "SWEEPING_SUFFIX",
    "SWEEP_CONCURRENCY",
    "SWEEP_JOURNAL",
    "SWEEP_ORDER",
    "execute",
    "recover_interrupted_sweep",
]

SWEEP_ORDER = ("manifest", "blob", "layer_link", "tag_index", "upload", "repository")
"""Manifests go before their blobs (as Distribution does), links after the blobs they name."""

SWEEP_CONCURRENCY = 32
"""Removals of one kind in flight at once: on a filesystem they run in worker threads (unlink
and rmdir are kernel time that threads overlap, and on overlay or network filesystems they
dominate a sweep), on an object store they are requests."""

REFRESHED = "used since the scan"
"""Why a planned blob was kept: its data was touched (a HEAD, GET, mount) or pushed again after
the plan was made, so a client may be about to reference it."""


async def execute(
    snapshot: Snapshot,
    removals: list[Removal],
    problems: list[Problem],
    young: float,
    progress: Callable[[str], None] | None = None,
    *,
    fence: Fence | None = None,
) -> None:
    """Carry out a plan through the snapshot's driver; a failure is recorded as a problem and
    the sweep goes on.

    ``fence`` (a real run's :meth:`embedded_registry.storage.lease.Lease.fence`) is awaited
    right before each removal, stale temporary files included: once it raises
    :class:`LeaseLost` nothing more is removed, and the sweep ends with LeaseLost saying how
    far it got.

    Only the directory of each item goes (``<hex>/`` of a blob or link, the upload), as
    Distribution does, so a concurrent writer never loses a directory it has just created.
    Each blob is checked once more right before it goes (:func:`.removal.remove_if_older`):
    one modified after ``young`` (the grace cutoff) or, for a blob planned younger than that,
    after the scan, is kept and its removal marked ``skipped``. A ``_layers`` link planned
    because its blob was gone stays when the blob is back (:func:`.removal.remove_unless`).
    """
    driver = snapshot.driver
    limit = asyncio.Semaphore(SWEEP_CONCURRENCY)
    repositories = KEYS.repositories_dir

    lost: list[LeaseLost] = []

    async def fenced() -> bool:
        """Whether the removal may go (the lease is still held)."""
        if lost:
            return False
        if fence is not None:
            try:
                await fence()
            except LeaseLost as exc:
                lost.append(exc)
                return False
        return True

    def stop_if_lost() -> None:
        if lost:
            done = sum(1 for r in removals if r.removed)
            raise LeaseLost(
                f"{lost[0]}; the sweep stopped after {done} of {len(removals)} planned "
                "removal(s), the rest stay: run GC again"
            )

    async def remove(removal: Removal) -> None:
        path = snapshot.key(removal.path)
        async with limit:
            if lost:
                return
            try:
                await _remove(driver, snapshot, removal, path, young, repositories, fence)
            except LeaseLost as exc:
                lost.append(exc)
            except PathNotFoundError:
                removal.size = 0
                removal.removed = True
            except Exception as exc:  # one failure is reported; the sweep goes on
                problems.append(Problem(removal.repo or "", removal.digest, f"{path}: {exc}"))

    await sweep_started(driver)
    try:
        for path in snapshot.stale_temporaries:
            if not await fenced():
                break
            with contextlib.suppress(PathNotFoundError):
                await driver.delete(path)
        for kind in SWEEP_ORDER:
            stop_if_lost()
            batch = [r for r in removals if r.kind == kind]
            if kind == "repository":
                # A repository that links a blob kept after all is kept too (a client found
                # the blob through it and may be about to push a manifest there).
                kept = {r.digest for r in removals if r.kind == "blob" and r.skipped}
                links = {repo.name: repo.layer_links for repo in snapshot.repos}
                for removal in batch:
                    if kept & links.get(removal.repo or "", set()):
                        removal.skipped = REFRESHED
                batch = [r for r in batch if not r.skipped]
            if batch and progress is not None:
                progress(f"removing {len(batch)} {kind} item(s)")
            await asyncio.gather(*(remove(r) for r in batch))
        stop_if_lost()
    finally:
        await sweep_finished(driver)


async def _remove(
    driver: StorageDriver,
    snapshot: Snapshot,
    removal: Removal,
    path: str,
    young: float,
    repositories: str,
    fence: Fence | None,
) -> None:
    if removal.kind == "blob" and removal.digest:
        st = snapshot.blob_stat(removal.digest)
        cutoff = max(young, st.mtime) if st is not None else young
        # The fence goes between the blob's last check and its delete (the driver's call).
        data = path + "/data"
        shown = removal.path + "/data"
        if not await remove_if_older(driver, data, cutoff, fence=fence, shown=shown):
            removal.skipped = REFRESHED
            return
        removal.removed = True
        return
    if fence is not None:
        await fence()
    if removal.kind == "layer_link" and removal.digest:
        blob = KEYS.blob_data(removal.digest)
        if not await remove_unless(driver, path + "/link", blob):
            return
    elif removal.kind == "repository":
        for part in ("_layers", "_manifests", "_uploads"):
            with contextlib.suppress(PathNotFoundError):
                await driver.delete(f"{path}/{part}")
        await remove_empty_dirs(driver, path, repositories)
    else:
        await driver.delete(path)
    removal.removed = True
