"""When each manifest was last pulled: recorded in memory on the request path, written to the
storage in batches.

A pull is a GET of a manifest, by tag or by digest, answered 200 (or 304 to a client that has
it cached): what zot's ``lastPullTimestamp`` and Harbor's ``pull_time`` count. A HEAD is no pull
(clients HEAD a tag to see whether it moved, and ``regtui`` itself HEADs tags), nor is a blob
GET (a layer is shared by many images).

**Cheap.** :meth:`PullTimes.record` is a dictionary assignment: no I/O on the request path.
:meth:`PullTimes.flush`, which the server calls on an interval and at shutdown, writes one
document per repository that was pulled since the last flush:
``<root>/regtui/pulled/<name>/_pulled.json`` (outside ``docker/registry/v2``, so Distribution
never sees it; ``_pulled`` is no valid name component, so no repository's path is another's)::

    {"digest sha256:…": 1765000000.5, …}   # digest -> seconds since the epoch

**Several replicas.** Each flush reads the document, keeps for every digest the later of the
stored and the recorded time (``max``: the merge is the same whatever the order of the
replicas' flushes), and writes it with a conditional write on the version it read (S3
``If-Match``/``If-None-Match``, a ``flock`` on the filesystem), reading and merging again when
another replica wrote in between. A flush that fails keeps its times for the next one.

Readers (:meth:`PullTimes.times`) see the stored document merged with what this process has
not flushed yet. Entries of deleted manifests stay until :meth:`forget` drops them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

from embedded_registry.storage.driver.base import (
    PathNotFoundError,
    PreconditionFailedError,
    StorageDriver,
    StorageDriverError,
)
from embedded_registry.storage.driver.capabilities import conditional_writes

log = logging.getLogger("embedded_registry.pulls")

PULLS_DIR = "/regtui/pulled"
DOCUMENT_NAME = "_pulled.json"
DOCUMENT_MAX_BYTES = 16 << 20
FLUSH_ATTEMPTS = 8
"""Conditional writes tried per repository and flush before its times wait for the next one."""


def pulls_key(name: str) -> str:
    """The key of ``name``'s pull times: ``/regtui/pulled/<name>/_pulled.json``."""
    return f"{PULLS_DIR}/{name}/{DOCUMENT_NAME}"


def _decode(data: bytes) -> dict[str, float]:
    try:
        document = json.loads(data)
    except ValueError:
        return {}
    if not isinstance(document, dict):
        return {}
    return {
        str(digest): float(when)
        for digest, when in document.items()
        if isinstance(when, int | float) and not isinstance(when, bool)
    }


def merge(into: dict[str, float], other: dict[str, float]) -> dict[str, float]:
    """``into`` with, for every digest, the later of its time and ``other``'s (in place)."""
    for digest, when in other.items():
        if when > into.get(digest, 0.0):
            into[digest] = when
    return into


class PullTimes:
    """The pull times of one storage: recorded in memory, flushed in batches (see above)."""

    def __init__(self, driver: StorageDriver) -> None:
        self.driver = driver
        self._pending: dict[str, dict[str, float]] = {}
        self._forgotten: dict[str, set[str]] = {}
        self._flushing = asyncio.Lock()

    def record(self, name: str, digest: str, when: float | None = None) -> None:
        """A pull of ``name``'s manifest ``digest`` now: memory only, no I/O."""
        when = time.time() if when is None else when
        pending = self._pending.setdefault(name, {})
        if when > pending.get(digest, 0.0):
            pending[digest] = when

    def forget(self, name: str, digests: set[str]) -> None:
        """Drop the times of deleted manifests at the next flush."""
        for digest in digests:
            self._pending.get(name, {}).pop(digest, None)
        self._forgotten.setdefault(name, set()).update(digests)

    @property
    def pending(self) -> int:
        """Pulls recorded and not written yet (distinct manifests)."""
        return sum(len(times) for times in self._pending.values())

    async def stored(self, name: str) -> dict[str, float]:
        """The times written to the storage for ``name`` (by every replica)."""
        try:
            data = await self.driver.get_content(pulls_key(name), limit=DOCUMENT_MAX_BYTES)
        except PathNotFoundError:
            return {}
        return _decode(data)

    async def times(self, name: str) -> dict[str, float]:
        """Digest -> last pull time of ``name``: the storage's, with this process's unflushed."""
        return merge(await self.stored(name), self._pending.get(name, {}))

    async def flush(self) -> int:
        """Write what was recorded since the last flush; the number of repositories written.
        One flush at a time; a repository whose write fails keeps its times for the next."""
        async with self._flushing:
            batch, self._pending = self._pending, {}
            forgotten, self._forgotten = self._forgotten, {}
            written = 0
            for name in sorted(set(batch) | set(forgotten)):
                times = batch.get(name, {})
                try:
                    await self._write(name, times, forgotten.get(name, set()))
                except (StorageDriverError, OSError) as exc:
                    log.warning("could not write the pull times of %s: %s", name, exc)
                    for digest, when in times.items():
                        self.record(name, digest, when)
                    if name in forgotten:
                        self._forgotten.setdefault(name, set()).update(forgotten[name])
                    continue
                written += 1
            return written

    async def _write(self, name: str, times: dict[str, float], forgotten: set[str]) -> None:
        key = pulls_key(name)
        for _ in range(FLUSH_ATTEMPTS):
            try:
                data, version = await conditional_writes(self.driver).get_versioned(key)
            except PathNotFoundError:
                data, version = b"", None
            stored = _decode(data) if data else {}
            merged = merge(dict(stored), times)
            for digest in forgotten:
                merged.pop(digest, None)
            if merged == stored and version is not None:
                return
            body = json.dumps(merged, separators=(",", ":"), sort_keys=True).encode()
            try:
                await conditional_writes(self.driver).put_conditional(key, body, version=version)
            except PreconditionFailedError:
                continue  # another replica wrote in between: read, merge again
            return
        raise StorageDriverError(f"{FLUSH_ATTEMPTS} replicas' writes in a row won the race")
