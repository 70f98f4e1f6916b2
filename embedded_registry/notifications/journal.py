"""The notification journal: events waiting for an endpoint, kept in the registry's storage.

Distribution keeps its queue in memory: a restart or a crash loses every event not yet
delivered. regtui writes each request's events, for each endpoint that takes them, to one
object of the storage *before* the request is answered (through the storage driver, so a
bucket shared by replicas holds it as the filesystem does)::

    <root>/regtui/notifications/<endpoint>/<time ns>-<instance>-<seq>.json

``<endpoint>`` is the endpoint's name made safe for a key, plus a short hash of the name. The
object holds ``{"events": [...]}``; it is removed once the endpoint answered 2xx (or 3xx, as
Distribution accepts) for it. Keys sort by time, so the oldest events go first. Outside
``docker/registry/v2``: neither Distribution nor GC ever reads it.

That is the journal of an object store (S3: replicas share it). On the filesystem,
:class:`~.recordlog.LogJournal` writes the events as records of a preallocated file per process
and endpoint instead (one ``fdatasync``, no file created per request), and reads both.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import re
import time
from dataclasses import dataclass, field

from embedded_registry.notifications.events import Event
from embedded_registry.storage.driver.base import PathNotFoundError, StorageDriver

JOURNAL_DIR = "/regtui/notifications"
MAX_SEGMENT_BYTES = 16 << 20
"""A segment larger than this is not an event file of ours: it is left alone."""
_SEGMENT = re.compile(r"(\d{20})-([0-9a-f]{32})-(\d{10})\.json")


def endpoint_dir(name: str) -> str:
    slug = re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-.")[:40] or "endpoint"
    return f"{JOURNAL_DIR}/{slug}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


@dataclass(frozen=True, order=True)
class Segment:
    """One journal object: when it was written, by which process (instance), its key."""

    written_ns: int
    instance: str
    key: str
    body: bytes = field(default=b"", compare=False, repr=False)
    """What :meth:`Journal.write` writes (a segment made by :meth:`Journal.segment`)."""


class Journal:
    """The events of one process waiting for its endpoints, in a storage driver."""

    def __init__(self, driver: StorageDriver, instance: str) -> None:
        self.driver = driver
        self.instance = instance
        self._seq = itertools.count()
        self.held: set[str] = set()
        """Segments of requests still running (a manifest push whose own writes are in
        flight): not sent until the request's outcome is known."""
        self.unsure: set[str] = set()
        """Segments of requests that ended without an outcome (cancelled in the middle): sent
        only for what the storage shows happened, as a crashed process's segments."""

    async def start(self, endpoints: list[str]) -> None:
        """Get ready to write for ``endpoints`` (nothing to do for objects)."""

    async def close(self) -> None:
        """Let go of what the journal holds open (nothing for objects)."""

    def segment(self, endpoint: str, events: list[Event]) -> Segment:
        """A new segment of ``endpoint`` holding ``events`` (nothing is written yet)."""
        written = time.time_ns()
        name = f"{written:020d}-{self.instance}-{next(self._seq):010d}.json"
        body = json.dumps({"events": events}, separators=(",", ":")).encode()
        return Segment(written, self.instance, f"{endpoint_dir(endpoint)}/{name}", body)

    async def write(self, segment: Segment) -> None:
        """Write ``segment`` (one object, atomically)."""
        await self.driver.put_content(segment.key, segment.body)

    def begin_write(self, segment: Segment) -> asyncio.Future[None]:
        """Start writing ``segment`` now; a future of the write's end (await it shielded:
        cancelling it does not stop the write)."""
        return asyncio.ensure_future(self.write(segment))

    async def append(self, endpoint: str, events: list[Event]) -> Segment:
        """Write ``events`` for ``endpoint`` (one object, atomically)."""
        segment = self.segment(endpoint, events)
        await self.write(segment)
        return segment

    async def pending(self, endpoint: str) -> list[Segment]:
        """The segments waiting for ``endpoint``, oldest first."""
        try:
            keys = await self.driver.list(endpoint_dir(endpoint))
        except PathNotFoundError:
            return []
        return sorted(self.objects(keys))

    def objects(self, keys: list[str]) -> list[Segment]:
        """The segment objects among ``keys`` (a listing of an endpoint directory)."""
        segments = []
        for key in keys:
            match = _SEGMENT.fullmatch(key.rsplit("/", 1)[-1])
            if match is not None:
                segments.append(Segment(int(match.group(1)), match.group(2), key))
        return segments

    async def read(self, segment: Segment) -> list[Event] | None:
        """The events of ``segment``; ``None`` when it is gone (delivered by another
        replica) or is no journal object (unreadable: it is left for an operator)."""
        try:
            data = await self.driver.get_content(segment.key, limit=MAX_SEGMENT_BYTES)
        except PathNotFoundError:
            return None
        return parse_events(data)

    async def remove(self, segment: Segment) -> None:
        await self.remove_all([segment])

    async def remove_all(self, segments: list[Segment]) -> None:
        """Remove the delivered ``segments``."""
        await asyncio.gather(*(self._delete(segment) for segment in segments))

    async def _delete(self, segment: Segment) -> None:
        try:
            await self.driver.delete(segment.key)
        except PathNotFoundError:
            return

    async def waiting(self, directory: str) -> int:
        """How many requests' events wait in the endpoint directory ``directory``."""
        keys = await self.driver.list(directory)
        return sum(_SEGMENT.fullmatch(key.rsplit("/", 1)[-1]) is not None for key in keys)

    async def endpoint_dirs(self) -> list[str]:
        """Every endpoint directory of the journal (configured endpoints or not)."""
        try:
            return sorted(await self.driver.list(JOURNAL_DIR))
        except PathNotFoundError:
            return []


def parse_events(body: bytes) -> list[Event] | None:
    """The events of a journal entry's body (an object or a record), ``None`` when it is no
    journal entry (unreadable: it is left for an operator)."""
    try:
        document = json.loads(body)
    except ValueError:
        return None
    events = document.get("events") if isinstance(document, dict) else None
    if not isinstance(events, list) or not all(isinstance(item, dict) for item in events):
        return None
    return events
