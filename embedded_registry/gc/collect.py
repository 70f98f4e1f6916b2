"""Garbage collection through a storage driver: the filesystem one or the s3 one.

:func:`collect_garbage_on` scans (:func:`embedded_registry.gc.scan.scan`), marks, plans and
sweeps (:func:`embedded_registry.gc.sweep.sweep`) the storage of one driver; a real run holds
the GC lease. Several replicas: see :mod:`embedded_registry.storage.lease` for how GC
coordinates with the others. :func:`with_configured_driver` opens the driver a configuration
names (for GC here and for :func:`embedded_registry.usage.usage_configured`).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from embedded_registry.gc.journal import recover_interrupted_sweep
from embedded_registry.gc.offline import RegistryActive, writer_activity
from embedded_registry.gc.plan import UPLOAD_MAX_IDLE, GcReport, decide
from embedded_registry.gc.scan import (
    DEFAULT_GRACE_PERIOD,
    Progress,
    Snapshot,
    scan,
)
from embedded_registry.gc.sweep import execute
from embedded_registry.storage.driver.base import (
    StorageDriver,
    pause_point,
)
from embedded_registry.storage.driver.filesystem import FilesystemDriver
from embedded_registry.storage.lease import COMMIT_WINDOW, GcBusy, Lease, LeaseLost, acquire

if TYPE_CHECKING:  # the configuration, yaml and the bucket's store: only for --config
    from embedded_registry.config import Config

COMPLETED, DRY_RUN, BUSY, FAILED = "completed", "dry_run", "busy", "failed"

GcObserver = Callable[[str, GcReport | None], None]
"""Told of the end of each :func:`collect_garbage_on` run (the metrics count them): its outcome,
``completed`` or ``dry_run`` with the report, ``busy`` (another collector holds the lease) or
``failed`` (anything else, a lost lease included) with None."""


def gc_outcome(error: BaseException) -> str:
    """The outcome of a run that raised ``error``."""
    return BUSY if isinstance(error, GcBusy) and not isinstance(error, LeaseLost) else FAILED


async def collect_garbage_on(
    driver: StorageDriver,
    *,
    dry_run: bool = False,
    delete_untagged: bool = False,
    remove_empty_repos: bool = False,
    grace_period: float = DEFAULT_GRACE_PERIOD,
    now: float | None = None,
    upload_max_idle: float = UPLOAD_MAX_IDLE,
    progress: Progress | None = None,
    where: str = "",
    commit_window: float | None = None,
    check: Callable[[Snapshot], None] | None = None,
    observe: GcObserver | None = None,
) -> GcReport:
    """Mark and sweep the storage of ``driver`` (a dry run removes nothing).

    A real run holds the GC lease of :mod:`embedded_registry.storage.lease` from before its
    scan to the end of its sweep (GcBusy when another collector holds it), and waits
    ``commit_window`` seconds after taking it so that every commit begun before is seen: by
    default ``COMMIT_WINDOW`` on storage that other processes share (a bucket), none on a
    filesystem root, whose one registry holds its own commits back while its GC runs.
    ``check`` sees the snapshot before anything is planned (``regtui gc`` refuses there while a
    registry is writing). A real run first lets the driver repair what a killed sweep or writer
    left aside (:func:`embedded_registry.gc.journal.recover_interrupted_sweep`). ``observe``
    hears how the run ended.
    """
    if commit_window is None:
        commit_window = COMMIT_WINDOW if driver.shared else 0.0
    collect = functools.partial(
        _collect,
        driver,
        dry_run,
        delete_untagged,
        remove_empty_repos,
        grace_period,
        now,
        upload_max_idle,
        progress,
        where,
        check,
    )
    try:
        report = await (collect() if dry_run else _leased(driver, collect, commit_window, progress))
    except BaseException as error:
        if observe is not None:
            observe(gc_outcome(error), None)
        raise
    if observe is not None:
        observe(DRY_RUN if dry_run else COMPLETED, report)
    return report


async def _leased(
    driver: StorageDriver,
    collect: Callable[..., Any],
    commit_window: float,
    progress: Progress | None,
) -> GcReport:
    """A real run: under the GC lease, after the commit window and the driver's repairs."""
    lease = await acquire(driver)
    try:
        async with lease.keep():
            if progress is not None and commit_window > 0:
                progress(f"took the GC lease; waiting {commit_window:g} s for commits in flight")
            await asyncio.sleep(commit_window)
            await recover_interrupted_sweep(driver)
            report: GcReport = await collect(lease)
    finally:
        await lease.release()
    return report


async def _collect(
    driver: StorageDriver,
    dry_run: bool,
    delete_untagged: bool,
    remove_empty_repos: bool,
    grace_period: float,
    now: float | None,
    upload_max_idle: float,
    progress: Progress | None,
    where: str,
    check: Callable[[Snapshot], None] | None,
    lease: Lease | None = None,
) -> GcReport:
    started = time.monotonic()
    now = time.time() if now is None else now
    snapshot = await scan(driver, progress, temporaries=not dry_run)
    if check is not None:
        check(snapshot)
    decided = await asyncio.to_thread(
        decide,
        snapshot,
        delete_untagged=delete_untagged,
        remove_empty_repos=remove_empty_repos,
        now=now,
        grace=grace_period,
        upload_max_idle=upload_max_idle,
    )
    if not dry_run:
        pause_point("gc-sweep", f"{len(decided.removals)} removal(s) planned")
        if lease is not None and lease.lost:
            raise LeaseLost(
                f"lost the GC lease before the sweep: {lease.reason}; nothing was removed"
            )
        await execute(
            snapshot,
            decided.removals,
            decided.problems,
            now - grace_period,
            progress,
            fence=lease.fence if lease is not None else None,
            clock=lease.check if lease is not None else None,
        )
    return decided.report(root=where or driver.name, dry_run=dry_run, started=started)


def storage_location(config: Config) -> str:
    """Where ``config``'s storage is, for reports: the root, or ``s3://bucket/rootdirectory``."""
    s3 = config.storage.s3
    if s3 is None:
        return str(config.storage.root)
    root = s3.rootdirectory.strip("/")
    return f"s3://{s3.bucket}/{root}" if root else f"s3://{s3.bucket}"


async def with_configured_driver(config: Config, work: Callable[[StorageDriver], Any]) -> Any:
    """Run ``work`` on the driver of ``config``'s storage (opened, then closed): the
    filesystem driver on the root, or the bucket's driver, checked first
    (:class:`~embedded_registry.storage.factory.StorageUnavailable` when it cannot be used).

    The store and its factory are imported here, not with this module: ``regtui gc --root``
    and ``du --root`` on a directory need neither (nor yaml, re2 and the policies they load),
    and every module imported counts in the peak memory of a GC run."""
    if config.storage.s3 is None:
        return await work(FilesystemDriver(config.storage.root))
    from embedded_registry.storage.factory import StorageUnavailable, open_storage
    from embedded_registry.storage.store import DriverStorage

    storage = await open_storage(config)
    try:
        if not isinstance(storage, DriverStorage):
            raise StorageUnavailable("the configuration names no storage driver")
        return await work(storage.driver)
    finally:
        await storage.close()


def collect_garbage_configured(
    config: Config,
    *,
    refuse_if_active: bool = False,
    progress: Progress | None = None,
    **options: Any,
) -> GcReport:
    """GC of the storage driver ``config`` names (``regtui gc --config FILE`` on s3).

    Raises :class:`embedded_registry.storage.factory.StorageUnavailable` (one line) when the
    bucket cannot be used, :class:`RegistryActive` when ``refuse_if_active`` and an upload
    session was written within the last minute (a registry is taking pushes).
    """

    def refuse(snapshot: Snapshot) -> None:
        reason = writer_activity(
            snapshot, root=config.storage.root if config.storage.s3 is None else None
        )
        if reason is not None:
            raise RegistryActive(reason)

    async def work(driver: StorageDriver) -> GcReport:
        check = refuse if refuse_if_active and not options.get("dry_run") else None
        return await collect_garbage_on(
            driver, progress=progress, where=storage_location(config), check=check, **options
        )

    report: GcReport = asyncio.run(with_configured_driver(config, work))
    return report
