"""Delivery of the journal to one endpoint, in the background (never in a request's path).

One task per endpoint and process sends the endpoint's segments oldest first (up to
``MAX_BATCH`` of them in one envelope) and removes them once the endpoint accepted them: at
least once, in order, each event with its id for the receiver to drop a duplicate. Failures
follow Distribution's retrying sink: after ``threshold`` failures in a row, one attempt per
``backoff``; an envelope is retried until it goes through, so a sink that is down for an hour
gets everything when it returns.

The HTTP request follows Distribution's ``httpSink``: POST, ``Content-Type`` the events media
type, the configured headers, ``timeout`` for the whole exchange; 2xx and 3xx accepted. A
redirect (301, 302, 303, 307, 308) is followed with the same POST, ten at most; the configured
headers (credentials, typically) go only to the endpoint's own origin, never to another one.

Replicas on one bucket: a process sends what it wrote at once, and what another process wrote
before it started (a crashed predecessor) or more than ``TAKEOVER_AGE`` ago (a replica that is
gone): a segment two processes send is received twice, with the same event ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable
from urllib.parse import urljoin, urlsplit

import aiohttp

from embedded_registry.config import NotificationEndpoint
from embedded_registry.errors import RegistryError
from embedded_registry.notifications.events import (
    BLOB_MEDIA_TYPE,
    EVENTS_MEDIA_TYPE,
    Event,
    envelope,
)
from embedded_registry.notifications.journal import Journal, Segment
from embedded_registry.storage.api import RegistryStorage

log = logging.getLogger(__name__)

TAKEOVER_AGE = 30.0
"""Seconds after which a segment another process wrote is sent by this one too."""
TAKEOVER_AGE_ENV = "REGTUI_NOTIFY_TAKEOVER_AGE"
"""Seconds instead of ``TAKEOVER_AGE`` (tests: a replica takes over in seconds)."""
LINGER = 0.05
"""Seconds without a new event a deliverer woken by a request waits for before it lists the
journal: a burst of requests goes in few envelopes, and the delivery's own work (a POST, its
JSON, the journal's bookkeeping) runs between bursts rather than beside each request."""
MAX_LINGER = 1.0
"""Seconds a deliverer waits at most for the registry to be quiet: during a steady stream of
requests, one envelope a second."""
RESCAN_INTERVAL = 5.0
"""Seconds between two listings of the journal when nothing new was written here."""
MAX_BATCH = 50
"""Journal segments (each the events of one request) sent in one envelope at most: a sink
that comes back after an outage gets the backlog in few requests."""
MEMORY_LIMIT = 100_000
"""Requests' events kept in memory when the journal cannot be written (the oldest go first)."""
MAX_REDIRECTS = 10
REDIRECTS = frozenset({301, 302, 303, 307, 308})
USER_AGENT = "regtui-notifications"


class DeliveryError(Exception):
    """One attempt that did not deliver (the message says why, in one line)."""


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


async def post(session: aiohttp.ClientSession, endpoint: NotificationEndpoint, body: bytes) -> int:
    """POST ``body`` to the endpoint, following redirects; the final status (2xx, 3xx), or
    DeliveryError."""
    url, home = endpoint.url, _origin(endpoint.url)
    timeout = aiohttp.ClientTimeout(total=endpoint.timeout)
    for _ in range(MAX_REDIRECTS + 1):
        headers: list[tuple[str, str]] = [
            ("Content-Type", EVENTS_MEDIA_TYPE),
            ("User-Agent", USER_AGENT),
        ]
        if _origin(url) == home:
            headers += endpoint.headers
        try:
            async with session.post(
                url, data=body, headers=headers, allow_redirects=False, timeout=timeout
            ) as response:
                status = response.status
                location = response.headers.get("Location")
        except TimeoutError:
            raise DeliveryError(f"no answer within {endpoint.timeout:g} s") from None
        except aiohttp.ClientError as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from None
        if status in REDIRECTS and location:
            url = urljoin(url, location)
            if urlsplit(url).scheme not in ("http", "https"):
                raise DeliveryError(f"redirected to a URL that is not http(s): {url[:200]}")
            continue
        if 200 <= status < 400:
            return status
        raise DeliveryError(f"answered {status}")
    raise DeliveryError(f"more than {MAX_REDIRECTS} redirects")


class Breaker:
    """Distribution's retrying sink: after ``threshold`` failures in a row, wait ``backoff``
    since the last failure before the next attempt."""

    def __init__(self, threshold: int, backoff: float) -> None:
        self.threshold, self.backoff = threshold, backoff
        self.recent, self.last = 0, 0.0

    def delay(self) -> float:
        if self.recent < self.threshold:
            return 0.0
        return max(0.0, self.last + self.backoff - time.monotonic())

    def failed(self) -> None:
        self.recent += 1
        self.last = time.monotonic()

    def succeeded(self) -> None:
        self.recent, self.last = 0, 0.0


Landed = Callable[[str, str], Awaitable[bool]]
"""Whether repository ``name`` holds the manifest ``digest`` (a push event's outcome)."""


def manifest_landed(storage: RegistryStorage) -> Landed:
    """:data:`Landed` answered by ``storage`` (a storage error propagates: asked again later)."""

    async def landed(name: str, digest: str) -> bool:
        try:
            await storage.get_manifest(name, digest)
        except RegistryError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    return landed


def _manifest_push(item: Event) -> tuple[str, str] | None:
    """The repository and digest of a manifest's push event (``None``: another event)."""
    target = item.get("target")
    if item.get("action") != "push" or not isinstance(target, dict):
        return None
    if target.get("mediaType") == BLOB_MEDIA_TYPE:
        return None
    name, digest = target.get("repository"), target.get("digest")
    return (name, digest) if isinstance(name, str) and isinstance(digest, str) else None


class Activity:
    """When the registry last made an event, and how many requests are journaling theirs now
    (its deliverers wait for a quiet moment: none in flight, none for a while)."""

    def __init__(self) -> None:
        self.last = 0.0
        self.busy = 0
        """Requests between the start of their journal write and their answer."""

    def note(self) -> None:
        self.last = time.monotonic()

    def started(self) -> None:
        """A request began writing its events (a push: its own writes run meanwhile)."""
        self.busy += 1
        self.note()

    def ended(self) -> None:
        self.busy -= 1
        self.note()

    def quiet_for(self) -> float:
        """Seconds since the last event; 0 while a request is in flight (a push slower than
        ``LINGER``, on a loaded machine, is no quiet moment)."""
        return 0.0 if self.busy > 0 else time.monotonic() - self.last


class Deliverer:
    """The background sender of one endpoint's journal."""

    def __init__(
        self,
        endpoint: NotificationEndpoint,
        journal: Journal,
        landed: Landed | None = None,
        activity: Activity | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.activity = activity or Activity()
        self.journal = journal
        self.landed = landed
        self.started_ns = time.time_ns()
        self.takeover_ns = float(os.environ.get(TAKEOVER_AGE_ENV) or TAKEOVER_AGE) * 1e9
        self.wake = asyncio.Event()
        self.breaker = Breaker(endpoint.threshold, endpoint.backoff)
        self.delivered = 0
        self.last_error: str | None = None
        self._unreadable: set[str] = set()
        self.memory: deque[list[Event]] = deque(maxlen=MEMORY_LIMIT)
        """Events the journal could not take (a read-only or failing storage): sent from
        memory, as Distribution sends everything, and lost on a crash."""

    def _due(self, segment: Segment) -> bool:
        if segment.key in self._unreadable or segment.key in self.journal.held:
            return False
        if segment.instance == self.journal.instance or segment.written_ns < self.started_ns:
            return True
        return time.time_ns() - segment.written_ns > self.takeover_ns

    async def run(self) -> None:
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(force_close=True)
        ) as session:
            while True:
                self.wake.clear()
                try:
                    segments = await self.journal.pending(self.endpoint.name)
                except Exception as exc:  # the storage may be down a while: list again later
                    log.warning("notifications: cannot list the journal: %s", exc)
                    segments = []
                due = [segment for segment in segments if self._due(segment)]
                for start in range(0, len(due), MAX_BATCH):
                    await self._send(session, due[start : start + MAX_BATCH])
                await self._send_memory(session)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), RESCAN_INTERVAL)
                    await self._linger()

    async def _linger(self) -> None:
        """Woken by a request: wait until no request is in flight and no event came for
        ``LINGER`` (``MAX_LINGER`` at most), so that the requests of a burst join one envelope
        (one listing, one POST) and the delivery does not compete with them."""
        started = time.monotonic()
        while True:
            await asyncio.sleep(LINGER)
            if self.activity.quiet_for() >= LINGER or time.monotonic() - started >= MAX_LINGER:
                return

    async def _read(self, batch: list[Segment]) -> tuple[list[Segment], list[Event]]:
        """The segments of ``batch`` still there and readable, and their events in order."""
        kept: list[Segment] = []
        events: list[Event] = []
        for segment, found in zip(
            batch, await asyncio.gather(*(self.journal.read(s) for s in batch)), strict=True
        ):
            if found is None:
                self._unreadable.add(segment.key)
                continue
            if segment.instance != self.journal.instance or segment.key in self.journal.unsure:
                happened = await self._happened(segment, found)
                if happened is None:  # maybe still being pushed: decided at a later scan
                    continue
                found = happened
            kept.append(segment)
            events += found
        return kept, events

    async def _happened(self, segment: Segment, events: list[Event]) -> list[Event] | None:
        """``events`` of a segment whose request's outcome this process does not know (written
        by a process that crashed, or cancelled mid-way): a manifest's push journaled while its
        own writes ran is sent only when the manifest is in the storage. ``None`` while such a
        manifest is missing and the segment is younger than the takeover age: its push may
        still be running (another replica's, or one that just started)."""
        if self.landed is None:
            return events
        young = time.time_ns() - segment.written_ns <= self.takeover_ns
        kept = []
        for item in events:
            push = _manifest_push(item)
            if push is not None and not await self.landed(*push):
                if young:
                    return None
                log.info(
                    "notifications: endpoint %s: dropping the push event of %s@%s: the "
                    "manifest is not in the storage (its push did not complete)",
                    self.endpoint.name,
                    *push,
                )
                continue
            kept.append(item)
        return kept

    async def _send(self, session: aiohttp.ClientSession, batch: list[Segment]) -> None:
        """Send the journal segments of ``batch`` in one envelope, then remove them."""
        while True:
            try:
                segments, events = await self._read(batch)
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # storage trouble: try again after the backoff
                self.breaker.failed()
                self._note(f"cannot read the journal: {type(exc).__name__}: {exc}")
                await asyncio.sleep(self.breaker.delay())
        if events:
            await self._deliver(session, events)
        try:
            await self.journal.remove_all(segments)
        except Exception as exc:  # sent again later: the receiver drops it by id
            log.warning("notifications: cannot remove delivered segments: %s", exc)
        else:
            self.journal.unsure.difference_update(segment.key for segment in segments)

    async def _send_memory(self, session: aiohttp.ClientSession) -> None:
        """Send what could not be journaled (Distribution's in-memory queue, as a fallback)."""
        while self.memory:
            events: list[Event] = []
            while self.memory and len(events) < MAX_BATCH:
                events += self.memory.popleft()
            await self._deliver(session, events)

    async def _deliver(self, session: aiohttp.ClientSession, events: list[Event]) -> None:
        """POST ``events`` in one envelope until the endpoint takes them."""
        body = envelope(events)
        while True:
            await asyncio.sleep(self.breaker.delay())
            try:
                await post(session, self.endpoint, body)
            except DeliveryError as exc:
                self.breaker.failed()
                self._note(str(exc))
                continue
            self.breaker.succeeded()
            self.last_error = None
            self.delivered += len(events)
            return

    def _note(self, error: str) -> None:
        if error != self.last_error:
            log.warning(
                "notifications: endpoint %s: %s (retrying; events kept in the journal)",
                self.endpoint.name,
                error,
            )
        self.last_error = error
