"""The sweep: carry out a plan, kind by kind, through the storage driver."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator

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
    remove_if_older_now,
    remove_unless,
    remove_unless_now,
)
from embedded_registry.gc.scan import Snapshot
from embedded_registry.storage.driver.base import PathNotFoundError, StorageDriver
from embedded_registry.storage.driver.capabilities import RenameAside
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

SWEEP_RUN = 64
"""Where the driver renames aside (a local disk), blobs and ``_layers`` links are removed in
runs of this many by one worker thread each (SWEEP_CONCURRENCY runs at once), the lease's
fence awaited before each run: one thread hop per removal cost more than the removal (its
four or five system calls)."""

RUN_KINDS = ("blob", "layer_link")
"""The kinds removed in runs (the many): the others go one by one."""

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
    clock: Callable[[], None] | None = None,
) -> None:
    """Carry out a plan through the snapshot's driver; a failure is recorded as a problem and
    the sweep goes on.

    ``fence`` (a real run's :meth:`embedded_registry.storage.lease.Lease.fence`) is awaited
    right before each removal, stale temporary files included (on a driver that renames
    aside, before each run of at most ``SWEEP_RUN`` blobs or links that one worker thread
    removes: as many as the ``SWEEP_CONCURRENCY`` removals in flight that share one read of
    the lease elsewhere, a fraction of a second of work), and ``clock`` (the lease's check by
    the local clock, :meth:`~embedded_registry.storage.lease.Lease.check`: no request) right
    before each removal of a run, so a collector stopped in the middle of a run past its lease
    removes nothing more when it resumes. Once either raises :class:`LeaseLost` nothing more is
    removed, and the sweep ends with LeaseLost saying how far it got.

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
            with _outcome(removal, path, problems, lost):
                await _remove(driver, snapshot, removal, path, young, repositories, fence)

    async def remove_run(run: list[Removal], aside: RenameAside) -> None:
        async with limit:
            if await fenced():
                await asyncio.to_thread(
                    _remove_run_now, aside, snapshot, run, young, problems, clock, lost
                )

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
                    if not kept.isdisjoint(links.get(removal.repo or "", ())):
                        removal.skipped = REFRESHED
                batch = [r for r in batch if not r.skipped]
            if batch and progress is not None:
                progress(f"removing {len(batch)} {kind} item(s)")
            if isinstance(driver, RenameAside) and kind in RUN_KINDS:
                runs = [batch[n : n + SWEEP_RUN] for n in range(0, len(batch), SWEEP_RUN)]
                await asyncio.gather(*(remove_run(run, driver) for run in runs))
            else:
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


@contextlib.contextmanager
def _outcome(
    removal: Removal, path: str, problems: list[Problem], lost: list[LeaseLost]
) -> Iterator[None]:
    """One removal's failure as the sweep takes it: a lost lease ends the sweep (``lost``),
    a path already gone counts as removed (0 bytes freed), any other failure is reported
    and the sweep goes on."""
    try:
        yield
    except LeaseLost as exc:
        lost.append(exc)
    except PathNotFoundError:
        removal.size = 0
        removal.removed = True
    except Exception as exc:  # one failure is reported; the sweep goes on
        problems.append(Problem(removal.repo or "", removal.digest, f"{path}: {exc}"))


def _remove_run_now(
    driver: RenameAside,
    snapshot: Snapshot,
    run: list[Removal],
    young: float,
    problems: list[Problem],
    clock: Callable[[], None] | None,
    lost: list[LeaseLost],
) -> None:
    """Remove blobs and ``_layers`` links one after the other (a worker thread's blocking
    calls): each as :func:`_remove` removes it, with the same last checks, ``clock`` checked
    right before each; a lost lease (``lost``, or ``clock`` raising) ends the run."""
    for removal in run:
        path = snapshot.key(removal.path)
        if lost:
            return
        with _outcome(removal, path, problems, lost):
            if clock is not None:
                clock()
            if removal.kind == "blob" and removal.digest:
                st = snapshot.blob_stat(removal.digest)
                cutoff = max(young, st.mtime) if st is not None else young
                data = path + "/data"
                if not remove_if_older_now(driver, data, cutoff, removal.path + "/data"):
                    removal.skipped = REFRESHED
                    continue
            elif removal.kind == "layer_link" and removal.digest:
                if not remove_unless_now(driver, path + "/link", KEYS.blob_data(removal.digest)):
                    continue
            else:
                raise ValueError(f"not removed in runs: {removal.kind}")
            removal.removed = True
