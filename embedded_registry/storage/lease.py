"""How GC and the replicas of one bucket keep out of each other's way: a lease object.

Several bundled registries may serve one bucket. Each holds an in-process commit lock, but a
garbage collection running on one replica must also keep every *other* replica from committing
a manifest against a blob it is about to sweep (a client that HEADs a layer and sees 200 skips
its upload and pushes a manifest naming it). The guarantee: **no acknowledged manifest ever
names a swept blob**; a push that meets GC either commits before GC looks, or waits and then
either commits (its blobs still there) or fails with MANIFEST_BLOB_UNKNOWN and is pushed again.

The protocol, with ``<rootdirectory>/regtui/gc-lease`` (outside ``docker/registry/v2``, so
Distribution never sees it) written only with S3 conditional writes:

1. **GC takes the lease**: ``PutObject If-None-Match: *`` with ``{holder, expires}``; when one
   exists and its ``expires`` has passed (a GC that died), it is replaced with ``If-Match`` on
   the ETag read, so exactly one of two racing collectors wins. A live lease: the GC refuses
   (one at a time across replicas). The holder rewrites it (``If-Match``) every ``TTL/3``; a
   failed refresh stops the sweep.
2. **GC waits ``COMMIT_WINDOW`` before it scans**, so that every commit that checked the lease
   before it was taken has finished its writes and is seen by the scan.
3. **A replica commits (manifest PUT, manifest or tag DELETE) only after reading no live
   lease**, waiting while one is held (up to ``LEASE_WAIT``, then 503-style TOOMANYREQUESTS:
   retry). A commit that has taken longer than ``COMMIT_WINDOW`` since its check gives up
   before its last write, so step 2 holds. The manifest's blobs are checked after the wait.
4. Upload sessions go on during GC: what they write is younger than the grace period, whose
   ``LastModified`` comparison (whole seconds on S3) protects it where a push is in flight
   (:mod:`embedded_registry.gc.activity`); sessions themselves are never swept before upload
   purging's age.

Limits, said plainly: an old unreferenced blob pushed again in the very moment between the sweep's
last check of its LastModified and its delete (S3 has no delete-if-unchanged) is removed although
its upload was answered 201; the manifest that names it then fails with MANIFEST_BLOB_UNKNOWN and
the client pushes again, so no acknowledged *manifest* ever loses a blob (on the filesystem the
sweep renames a blob aside first and closes that window). The clocks of the replicas must agree to
well within ``LEASE_TTL`` (the lease's ``expires`` is compared with local time) and with the
storage's clock to within the grace period; Distribution (or an older regtui) writing to the same
bucket does not honour the lease, as Distribution's own GC requires a read-only registry; two
collectors exclude each other only on an engine with conditional writes (AWS S3 since 2024,
SeaweedFS, MinIO): one that ignores the conditions lets two GCs run at once (replicas still wait
for either).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import uuid
from collections.abc import AsyncIterator

from embedded_registry.storage.driver.base import (
    PathNotFoundError,
    PreconditionFailedError,
    StorageDriver,
)

LEASE_PATH = "/regtui/gc-lease"
LEASE_TTL = 120.0
COMMIT_WINDOW = 10.0
"""Seconds a commit may take between its lease check and its last write; GC waits this long
after taking the lease before it scans."""
LEASE_WAIT = 300.0
"""How long a commit waits for a running GC before it answers "retry"."""
POLL_INTERVAL = 0.5
LEASE_MAX_BYTES = 4096


class GcBusy(Exception):
    """Another garbage collection holds the lease; the message is one line."""


class CommitTooSlow(Exception):
    """A commit took longer than ``COMMIT_WINDOW`` since its lease check: it must not write."""


def _decode(data: bytes) -> dict[str, object]:
    try:
        document = json.loads(data)
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}


def _expires(document: dict[str, object]) -> float:
    value = document.get("expires")
    return float(value) if isinstance(value, int | float) else 0.0


async def lease_holder(driver: StorageDriver) -> str | None:
    """Who holds a live lease, or None."""
    try:
        data = await driver.get_content(LEASE_PATH, limit=LEASE_MAX_BYTES)
    except PathNotFoundError:
        return None
    document = _decode(data)
    if _expires(document) <= time.time():
        return None
    return str(document.get("holder", "?"))


class Lease:
    """A held lease; refresh it with :meth:`keep` and give it back with :meth:`release`."""

    def __init__(self, driver: StorageDriver, holder: str, version: str, ttl: float) -> None:
        self.driver = driver
        self.holder = holder
        self.version = version
        self.ttl = ttl
        self.lost = False

    def _body(self) -> bytes:
        return json.dumps({"holder": self.holder, "expires": time.time() + self.ttl}).encode()

    async def refresh(self) -> None:
        try:
            self.version = await self.driver.put_conditional(
                LEASE_PATH, self._body(), version=self.version
            )
        except PreconditionFailedError:
            self.lost = True
            raise

    @contextlib.asynccontextmanager
    async def keep(self) -> AsyncIterator[Lease]:
        """Refresh every ``ttl / 3`` while the block runs."""

        async def loop() -> None:
            while True:
                await asyncio.sleep(self.ttl / 3)
                await self.refresh()

        task = asyncio.create_task(loop())
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, PreconditionFailedError):
                await task

    async def release(self) -> None:
        with contextlib.suppress(PathNotFoundError):
            data, version = await self.driver.get_versioned(LEASE_PATH)
            if version == self.version or _decode(data).get("holder") == self.holder:
                await self.driver.delete(LEASE_PATH)


async def acquire(driver: StorageDriver, *, ttl: float = LEASE_TTL) -> Lease:
    """Take the GC lease; GcBusy when a live one is held by another collector."""
    holder = f"{uuid.uuid4()} pid {os.getpid()}"
    body = json.dumps({"holder": holder, "expires": time.time() + ttl}).encode()
    try:
        version = await driver.put_conditional(LEASE_PATH, body, version=None)
        return Lease(driver, holder, version, ttl)
    except PreconditionFailedError:
        pass
    try:
        data, current = await driver.get_versioned(LEASE_PATH)
    except PathNotFoundError:
        data, current = b"", ""
    document = _decode(data)
    if current and _expires(document) > time.time():
        raise GcBusy(f"another garbage collection holds the lease ({document.get('holder')})")
    try:
        version = await driver.put_conditional(LEASE_PATH, body, version=current or None)
    except PreconditionFailedError:
        raise GcBusy("another garbage collection took the lease at the same moment") from None
    return Lease(driver, holder, version, ttl)


class CommitGuard:
    """What a replica does around a commit: wait for no live lease, then write in time."""

    def __init__(self, driver: StorageDriver, *, wait: float = LEASE_WAIT) -> None:
        self.driver = driver
        self.wait = wait
        self.checked = 0.0

    async def begin(self) -> None:
        """Return once no GC holds the lease; TimeoutError after ``wait`` seconds."""
        deadline = time.monotonic() + self.wait
        while await lease_holder(self.driver) is not None:
            if time.monotonic() > deadline:
                raise TimeoutError("a garbage collection is running")
            await asyncio.sleep(POLL_INTERVAL)
        self.checked = time.monotonic()

    def before_last_write(self) -> None:
        if time.monotonic() - self.checked > COMMIT_WINDOW:
            raise CommitTooSlow("the commit took too long; a garbage collection may have begun")
