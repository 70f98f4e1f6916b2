"""Storage bytes per repository for the metrics (zot's ``zot_repo_storage_bytes``), kept
current without walking the storage when Prometheus scrapes.

What is measured is ``regtui du``'s ``referenced_bytes`` of each repository: the bytes of every
blob its manifests reference (manifests, configs, layers, index children), each counted once per
repository; a blob two repositories share counts in both, so the sum over repositories may
exceed the storage's total.

How it stays current: a scrape only reads the last result. The result comes from one scan of
the storage and a mark (GC's, :mod:`embedded_registry.gc`), run in the background:

- at start;
- after a change made through this server (a manifest pushed or deleted, a blob deleted, a GC
  run), once :data:`SETTLE` seconds passed, and never sooner than :data:`SCAN_SHARE` times the
  last scan's duration after it (a scan that takes 2 s runs at most every 8 s, whatever the
  push rate: at most a fifth of the server's time goes to it);
- every :data:`REFRESH_INTERVAL` seconds whatever happened (what other replicas of a bucket,
  or a hand edit, changed).

Staleness: a change through this server shows after about ``SETTLE`` plus one scan; any other
after at most ``REFRESH_INTERVAL`` plus one scan. ``regtui_repository_storage_scan_timestamp_
seconds`` says when the figures were taken, so a dashboard can tell.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterable

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from embedded_registry.gc import Snapshot, mark
from embedded_registry.gc.scan import scan
from embedded_registry.storage.driver.base import StorageDriver

log = logging.getLogger(__name__)

SETTLE = 1.0
"""Seconds between a change and the scan that counts it (a push of several tags is one scan)."""
SCAN_SHARE = 4.0
"""A scan starts at least this many times its predecessor's duration after it ended."""
REFRESH_INTERVAL = 300.0
"""Seconds between scans when nothing changed through this server."""

BYTES_NAME = "registry_repository_storage_bytes"
SCANNED_NAME = "regtui_repository_storage_scan_timestamp_seconds"


def referenced_bytes(snapshot: Snapshot) -> dict[str, int]:
    """Per repository, the bytes of the blobs its manifests reference (``regtui du``'s
    ``referenced_bytes``: the same mark, every revision a root)."""
    marks = mark(snapshot, delete_untagged=False, now=time.time(), grace=0.0)
    blobs = snapshot.blob_stats()
    return {
        repo.name: sum(blobs[d].size for d in marks.repos[repo.name].blobs if d in blobs)
        for repo in snapshot.repos
    }


class RepositoryBytes(Collector):
    """The last figures per repository, and the background task that renews them."""

    def __init__(self, driver: StorageDriver) -> None:
        self.driver = driver
        self.sizes: dict[str, int] = {}
        self.scanned_at: float | None = None
        self.scans = 0
        self._changed = asyncio.Event()

    def changed(self) -> None:
        """Something that may move a repository's bytes happened through this server."""
        self._changed.set()

    async def refresh(self) -> None:
        """Scan now and keep the result."""
        snapshot = await scan(self.driver)
        # The mark is CPU work: in a thread, so that the server stays live meanwhile.
        self.sizes = await asyncio.to_thread(referenced_bytes, snapshot)
        self.scanned_at = time.time()
        self.scans += 1

    async def run(self) -> None:
        """Refresh at start, then after each change and every ``REFRESH_INTERVAL``."""
        while True:
            self._changed.clear()
            started = time.monotonic()
            try:
                await self.refresh()
            except Exception as exc:  # a storage hiccup must not end the figures for good
                log.warning("repository storage bytes: the scan failed: %s", exc)
            took = time.monotonic() - started
            try:
                await asyncio.wait_for(self._changed.wait(), REFRESH_INTERVAL)
            except TimeoutError:
                continue
            await asyncio.sleep(max(SETTLE, SCAN_SHARE * took))

    async def background(self, _app: object) -> AsyncIterator[None]:
        """An aiohttp ``cleanup_ctx``: :meth:`run` while the application runs."""
        task = asyncio.create_task(self.run())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterable[Metric]:
        return self._families(self.sizes, self.scanned_at)

    @staticmethod
    def _families(sizes: dict[str, int] | None = None, at: float | None = None) -> list[Metric]:
        per_repo = GaugeMetricFamily(
            BYTES_NAME,
            "Bytes of the blobs each repository's manifests reference (shared blobs count in "
            "each repository), as of the last scan.",
            labels=["repository"],
        )
        for name, size in sorted((sizes or {}).items()):
            per_repo.add_metric([name], size)
        scanned = GaugeMetricFamily(
            SCANNED_NAME, "When the per-repository storage bytes were last scanned (Unix time)."
        )
        if at is not None:
            scanned.add_metric([], at)
        return [per_repo, scanned]
