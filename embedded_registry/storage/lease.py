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
5. **Every removal is fenced** (:meth:`Lease.fence`): right before each delete, GC checks that
   more than ``MARGIN_FRACTION`` of the lease's time is left by its own clock, and reads the
   lease object again (one read shared by the removals waiting at that moment) to see that it
   still names this collector. A GC stopped (SIGSTOP, a VM pause, a long stall) past its lease
   therefore removes nothing more once it runs again, although the replicas committed in the
   meantime: it ends with :class:`LeaseLost` ("lost the GC lease ..."), and a later GC starts
   afresh. A refresh never extends a lease that has run out (the loss is final), and it fails
   when another process rewrote the lease.
6. **A replica revokes a lease that has run out** before it commits (:func:`revoke`: rewritten
   on its ETag as expired and held by nobody), so a stopped collector that comes back finds
   the lease no longer its own even if its clock is behind.

Limits, said plainly: a removal that passed its fence is one request; should the collector stop
between its fence and that request reaching the storage for longer than the margin (30 s of the
120 s lease), it could still land after a replica committed (S3 has no delete conditional on
another object). An old unreferenced blob pushed again in the very moment between the sweep's
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
from embedded_registry.storage.driver.capabilities import conditional_writes

LEASE_PATH = "/regtui/gc-lease"
LEASE_TTL = 120.0
LEASE_TTL_ENV = "REGTUI_GC_LEASE_TTL"
"""Seconds of a lease instead of ``LEASE_TTL`` (tests: a GC that loses its lease in seconds)."""
COMMIT_WINDOW = 10.0
"""Seconds a commit may take between its lease check and its last write; GC waits this long
after taking the lease before it scans."""
LEASE_WAIT = 300.0
"""How long a commit waits for a running GC before it answers "retry"."""
POLL_INTERVAL = 0.5
MARGIN_FRACTION = 0.25
"""The part of its time a lease must still have for its holder to start a removal."""
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


async def lease_holder(driver: StorageDriver, path: str = LEASE_PATH) -> str | None:
    """Who holds a live lease (GC's, or the one at ``path``), or None."""
    try:
        data = await driver.get_content(path, limit=LEASE_MAX_BYTES)
    except PathNotFoundError:
        return None
    document = _decode(data)
    if _expires(document) <= time.time():
        return None
    return str(document.get("holder", "?"))


class LeaseLost(GcBusy):
    """This collector no longer holds the lease (it expired, or another holder replaced it):
    it must remove nothing more. The message is one line."""


class Lease:
    """A held lease: refresh it with :meth:`keep`, fence each removal with :meth:`fence`, give
    it back with :meth:`release`.

    ``expires`` is the local time the lease runs out, as last written to the storage (set
    before the write is sent, so never later than what replicas read). The lease counts as
    lost once ``MARGIN_FRACTION`` of its time or less is left: a removal never starts so close
    to the end that it could reach the storage after the replicas see the lease expired.
    """

    def __init__(
        self,
        driver: StorageDriver,
        holder: str,
        version: str,
        ttl: float,
        expires: float,
        path: str = LEASE_PATH,
    ) -> None:
        self.driver = driver
        self.path = path
        """The lease object: GC's (``LEASE_PATH``), or another run's that must be alone
        across replicas (scheduled retention's)."""
        self.holder = holder
        self.version = version
        self.ttl = ttl
        self.expires = expires
        self.margin = ttl * MARGIN_FRACTION
        self._lost: str | None = None
        self._verifications = 0
        """Reads of the lease object (:meth:`fence`) started so far."""
        self._verifying: asyncio.Future[None] | None = None
        self.refresh_error = ""

    @property
    def lost(self) -> bool:
        """Whether the lease is lost: found replaced, or (by the local clock) too close to its
        end or past it (a process stopped or stalled for longer than the lease)."""
        if self._lost is None and time.time() + self.margin >= self.expires:
            why = "it ran out (the collector was stopped or stalled"
            if self.refresh_error:
                why += f"; its last refresh failed: {self.refresh_error}"
            self._lost = why + ")"
        return self._lost is not None

    @property
    def reason(self) -> str:
        """Why the lease is lost ("" while held)."""
        return (self._lost or "") if self.lost else ""

    def _lose(self, why: str) -> None:
        if self._lost is None:
            self._lost = why

    def check(self) -> None:
        """LeaseLost unless the lease is still held by the local clock (no request)."""
        if self.lost:
            raise LeaseLost(f"lost the GC lease: {self._lost}")

    def _body(self, expires: float) -> bytes:
        return json.dumps({"holder": self.holder, "expires": expires}).encode()

    async def refresh(self) -> None:
        """Extend the lease, only while it is still held: never one that has run out (a
        replica may have committed since) or that another holder replaced."""
        self.check()
        expires = time.time() + self.ttl
        try:
            self.version = await conditional_writes(self.driver).put_conditional(
                self.path, self._body(expires), version=self.version
            )
        except PreconditionFailedError:
            self._lose("another process replaced or revoked it")
            raise LeaseLost(f"lost the GC lease: {self._lost}") from None
        self.expires = expires

    async def _verify(self) -> None:
        try:
            data, _version = await conditional_writes(self.driver).get_versioned(self.path)
        except PathNotFoundError:
            self._lose("it was removed from the storage")
            return
        except Exception as exc:  # unproven is lost: no removal without a held lease
            self._lose(f"it could not be read ({exc.__class__.__name__}: {exc})")
            return
        holder = _decode(data).get("holder")
        if holder != self.holder:
            self._lose(f"it is now held by {holder or '?'}")

    async def fence(self) -> None:
        """Return only while the lease is held: by the local clock, and in the storage by a
        read of the lease begun after this call (concurrent callers share one read).
        LeaseLost otherwise. GC's sweep calls it right before each removal."""
        self.check()
        wanted = self._verifications + 1
        while True:
            if self._verifying is None or self._verifying.done():
                self._verifications += 1
                self._verifying = asyncio.ensure_future(self._verify())
            task, number = self._verifying, self._verifications
            await asyncio.shield(task)
            if number >= wanted:
                break
        self.check()

    @contextlib.asynccontextmanager
    async def keep(self) -> AsyncIterator[Lease]:
        """Refresh every ``ttl / 3`` while the block runs (a failed refresh loses it)."""

        async def loop() -> None:
            while not self.lost:
                await asyncio.sleep(self.ttl / 3)
                try:
                    await self.refresh()
                except LeaseLost:
                    return
                except Exception as exc:
                    # Not fatal by itself: the lease runs out (and is lost) unless a later
                    # refresh gets through in time; the loss then says why.
                    self.refresh_error = f"{exc.__class__.__name__}: {exc}"

        task = asyncio.create_task(loop())
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def release(self) -> None:
        """Remove the lease object while it is still held by this collector. A lost one is
        left as it is: it has run out or is another's, and a new collector replaces it."""
        if self.lost:
            return
        with contextlib.suppress(PathNotFoundError):
            data, _version = await conditional_writes(self.driver).get_versioned(self.path)
            if _decode(data).get("holder") == self.holder:
                await self.driver.delete(self.path)


async def revoke(driver: StorageDriver) -> bool:
    """Replace a lease that has run out with a revoked one (on its version: a lease taken
    or refreshed meanwhile stays); whether it was revoked."""
    try:
        data, version = await conditional_writes(driver).get_versioned(LEASE_PATH)
    except PathNotFoundError:
        return False
    document = _decode(data)
    if _expires(document) > time.time() or document.get("revoked"):
        return False
    body = json.dumps(
        {"holder": f"nobody (revoked by pid {os.getpid()})", "expires": 0, "revoked": True}
    ).encode()
    try:
        await conditional_writes(driver).put_conditional(LEASE_PATH, body, version=version)
    except PreconditionFailedError:
        return False
    return True


def lease_ttl() -> float:
    """``REGTUI_GC_LEASE_TTL`` when set to a positive number of seconds, else ``LEASE_TTL``."""
    try:
        value = float(os.environ.get(LEASE_TTL_ENV, ""))
    except ValueError:
        return LEASE_TTL
    return value if 0 < value < float("inf") else LEASE_TTL


async def acquire(
    driver: StorageDriver, *, ttl: float | None = None, path: str = LEASE_PATH
) -> Lease:
    """Take the GC lease (or the lease at ``path``) for ``ttl`` seconds (:func:`lease_ttl`);
    GcBusy when a live one is held by another collector."""
    if ttl is None:
        ttl = lease_ttl()
    holder = f"{uuid.uuid4()} pid {os.getpid()}"
    expires = time.time() + ttl
    body = json.dumps({"holder": holder, "expires": expires}).encode()
    try:
        version = await conditional_writes(driver).put_conditional(path, body, version=None)
        return Lease(driver, holder, version, ttl, expires, path)
    except PreconditionFailedError:
        pass
    try:
        data, current = await conditional_writes(driver).get_versioned(path)
    except PathNotFoundError:
        data, current = b"", ""
    document = _decode(data)
    if current and _expires(document) > time.time():
        raise GcBusy(f"another garbage collection holds the lease ({document.get('holder')})")
    expires = time.time() + ttl
    body = json.dumps({"holder": holder, "expires": expires}).encode()
    try:
        version = await conditional_writes(driver).put_conditional(
            path, body, version=current or None
        )
    except PreconditionFailedError:
        raise GcBusy("another garbage collection took the lease at the same moment") from None
    return Lease(driver, holder, version, ttl, expires, path)


class CommitGuard:
    """What a replica does around a commit: wait for no live lease, then write in time."""

    def __init__(self, driver: StorageDriver, *, wait: float = LEASE_WAIT) -> None:
        self.driver = driver
        self.wait = wait
        self.checked = 0.0

    async def begin(self) -> None:
        """Return once no GC holds the lease; TimeoutError after ``wait`` seconds.

        A lease that ran out without being released (its collector died, or is stopped) is
        revoked first: rewritten, on its version, as expired and held by nobody, so that its
        collector, should it come back, finds it replaced at its next check and removes
        nothing more (:meth:`Lease.fence`)."""
        deadline = time.monotonic() + self.wait
        while True:
            try:
                data = await self.driver.get_content(LEASE_PATH, limit=LEASE_MAX_BYTES)
            except PathNotFoundError:
                break
            document = _decode(data)
            if _expires(document) <= time.time():
                if not document.get("revoked"):
                    await revoke(self.driver)
                break
            if time.monotonic() > deadline:
                raise TimeoutError("a garbage collection is running")
            await asyncio.sleep(POLL_INTERVAL)
        self.checked = time.monotonic()

    def before_last_write(self) -> None:
        if time.monotonic() - self.checked > COMMIT_WINDOW:
            raise CommitTooSlow("the commit took too long; a garbage collection may have begun")
