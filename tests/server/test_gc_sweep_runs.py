"""The sweep on a local disk removes blobs and ``_layers`` links in runs of a worker thread, the
lease's fence awaited before each run (issue 22: a thread hop and a fence per removal cost more
than the removal), with every last check of a removal one by one."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from embedded_registry.gc import decide, execute
from embedded_registry.gc.scan import scan
from embedded_registry.gc.sweep import REFRESHED, SWEEP_RUN
from embedded_registry.storage.driver.filesystem import FilesystemDriver
from embedded_registry.storage.lease import LeaseLost, acquire
from embedded_registry.storage.paths import Layout
from tests.helpers.layout import LayoutWriter

HOURS = 3600.0
BLOBS = 3 * SWEEP_RUN + 5


def _garbage(root: Path) -> list[str]:
    """``BLOBS`` unreferenced blobs, each linked from the repository ``app``, two hours old."""
    writer = LayoutWriter(root)
    writer.ensure()
    digests = [
        writer.add_blob("app", f"garbage {n}\n".encode() * 50)["digest"] for n in range(BLOBS)
    ]
    old = time.time() - 2 * HOURS
    for path in (root / "docker").rglob("*"):
        os.utime(path, (old, old))
    return [str(d) for d in digests]


def test_a_sweep_fences_once_per_run_and_removes_every_blob_and_link(tmp_path: Path) -> None:
    root = tmp_path / "root"
    garbage = _garbage(root)
    driver = FilesystemDriver(root)
    layout = Layout(root)
    fences = 0

    async def run() -> None:
        lease = await acquire(driver, ttl=HOURS)

        async def counted_fence() -> None:
            nonlocal fences
            fences += 1
            await lease.fence()

        snapshot = await scan(driver, temporaries=True)
        decided = decide(
            snapshot, delete_untagged=False, remove_empty_repos=False, now=time.time(), grace=0
        )
        kinds = [r.kind for r in decided.removals]
        assert kinds.count("blob") == kinds.count("layer_link") == BLOBS
        # A blob used after the plan (a HEAD refreshes it) is kept by its last check.
        used = garbage[7]
        os.utime(layout.blob_data(used))
        await execute(
            snapshot, decided.removals, decided.problems, time.time() - HOURS, fence=counted_fence
        )
        await lease.release()
        assert decided.problems == []
        skipped = [r for r in decided.removals if r.skipped]
        assert [(r.kind, r.digest, r.skipped) for r in skipped] == [("blob", used, REFRESHED)]
        assert all(
            r.removed
            for r in decided.removals
            if r is not skipped[0] and not (r.kind == "layer_link" and r.digest == used)
        )

    asyncio.run(run())
    runs = -(-BLOBS // SWEEP_RUN)
    # One fence per run of blobs and one per run of links (it was one per removal: 2 * BLOBS).
    assert fences == 2 * runs, fences
    for digest in garbage:
        assert layout.blob_data(digest).exists() == (digest == garbage[7])
        link = layout.layer_link(  # the link of the kept blob stays with it
            "app", digest
        )
        assert link.exists() == (digest == garbage[7])


def test_a_lost_lease_stops_every_run_in_flight(tmp_path: Path) -> None:
    """The fence before the second run finds the lease lost: that run and the ones after it
    remove nothing, and the run in flight stops at its next removal."""
    root = tmp_path / "root"
    garbage = _garbage(root)
    driver = FilesystemDriver(root)
    fences = 0

    async def run() -> None:
        snapshot = await scan(driver, temporaries=True)
        decided = decide(
            snapshot, delete_untagged=False, remove_empty_repos=False, now=time.time(), grace=0
        )

        async def lost_after_one_run() -> None:
            nonlocal fences
            fences += 1
            if fences > 1:
                raise LeaseLost("lost the GC lease: taken by another collector")

        with pytest.raises(LeaseLost, match=f"after [0-9]+ of {2 * BLOBS} planned"):
            await execute(
                snapshot, decided.removals, decided.problems, time.time(), fence=lost_after_one_run
            )
        assert sum(r.removed for r in decided.removals) <= SWEEP_RUN

    asyncio.run(run())
    left = [d for d in garbage if Layout(root).blob_data(d).exists()]
    assert len(left) >= BLOBS - SWEEP_RUN


def test_the_lease_clock_is_checked_before_each_removal_of_a_run(tmp_path: Path) -> None:
    """A collector stopped in the middle of a run past its lease (its clock says so when it
    resumes) removes nothing more: the clock is read before each removal, not each run."""
    root = tmp_path / "root"
    garbage = _garbage(root)
    driver = FilesystemDriver(root)
    checks = 0

    def runs_out_after_ten() -> None:
        nonlocal checks
        checks += 1
        if checks > 10:
            raise LeaseLost("lost the GC lease: it ran out (the collector was stopped)")

    async def fence() -> None:
        """The storage still names this collector."""

    async def run() -> None:
        snapshot = await scan(driver, temporaries=True)
        decided = decide(
            snapshot, delete_untagged=False, remove_empty_repos=False, now=time.time(), grace=0
        )
        with pytest.raises(LeaseLost, match=f"after 10 of {2 * BLOBS} planned"):
            await execute(
                snapshot,
                decided.removals,
                decided.problems,
                time.time(),
                fence=fence,
                clock=runs_out_after_ten,
            )

    asyncio.run(run())
    left = [d for d in garbage if Layout(root).blob_data(d).exists()]
    assert len(left) == BLOBS - 10
