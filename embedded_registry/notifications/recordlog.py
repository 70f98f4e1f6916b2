"""The journal on the filesystem: each process appends its events to a preallocated log.

A journal object per request (:class:`~.journal.Journal`) costs a push two journal commits of
the filesystem (the file's ``fsync``, its directory's), which the disk serialises with the
manifest's own. Here each process writes, per endpoint, records into one preallocated file
(:mod:`embedded_registry.storage.driver.records`)::

    <root>/regtui/notifications/<endpoint>/<created ns>-<instance>.log

A request's events are one record: a ``pwrite`` and an ``fdatasync`` that touches no metadata,
shared by concurrent requests. Delivered records are marked done in place (no sync); a full log
is replaced by a spare made in advance in the background, and removed once all its records are
done. Nothing is lost or reordered on the way: every record is a :class:`~.journal.Segment` to
the deliverer (key ``<log key>#<offset>``), so holding, takeover and the check of a crashed
process's pushes work as for objects. A log of another process (a crashed predecessor, a replica
on a shared filesystem) is read from the disk, and removed only when all its records are done
and its owner is gone (its lock released). Segment objects (written by an older version, or
when no log is ready) are still read and written.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from dataclasses import dataclass, field

from embedded_registry.notifications.events import Event
from embedded_registry.notifications.journal import Journal, Segment, endpoint_dir, parse_events
from embedded_registry.storage.driver.base import PathNotFoundError, StorageDriver
from embedded_registry.storage.driver.records import (
    DONE,
    WAITING,
    Record,
    RecordFile,
    RecordFiles,
    encode,
)

log = logging.getLogger(__name__)

LOG_BYTES = 4 << 20
"""The size of one log (about 5,000 push events)."""
RETRY_AFTER = 5.0
"""Seconds before a log that could not be made is tried again (objects are written meanwhile)."""
_LOG = re.compile(r"(\d{20})-([0-9a-f]{32})\.log")


@dataclass
class _Own:
    """A log of this process."""

    key: str
    file: RecordFile
    next: int = 0
    writing: dict[str, tuple[int, list[Event]]] = field(default_factory=dict)
    """Records reserved whose write has not ended, by segment key: when, the events."""
    waiting: dict[str, tuple[int, list[Event] | None]] = field(default_factory=dict)
    """The records written and not done, by segment key: when, and the events (``None``
    once the log is sealed: read from the file again, memory stays bounded by one log)."""
    sealed: bool = False
    """Full: nothing more is appended (removed once nothing waits)."""


@dataclass
class _Foreign:
    """A log of another process, as last read."""

    file: RecordFile
    stamp: tuple[int, int]
    instance: str
    waiting: dict[str, int]
    """The records not done, by segment key: when written (the events are read when sent)."""


class LogJournal(Journal):
    """The journal of a filesystem storage: logs of records, objects read as before."""

    def __init__(self, driver: StorageDriver, instance: str, files: RecordFiles) -> None:
        super().__init__(driver, instance)
        self.files = files
        self.log_bytes = LOG_BYTES
        self.current: dict[str, _Own] = {}
        self.spare: dict[str, _Own] = {}
        self.own: dict[str, _Own] = {}
        self.foreign: dict[str, _Foreign] = {}
        self._making: dict[str, asyncio.Task[None]] = {}
        self._failed: dict[str, float] = {}
        self._removing: set[asyncio.Task[None]] = set()

    # -- writing ------------------------------------------------------------------------------
    async def start(self, endpoints: list[str]) -> None:
        """Make each endpoint's first log (requests meanwhile write objects)."""
        await asyncio.gather(*(self._make(endpoint) for endpoint in endpoints))

    async def close(self) -> None:
        """Close the logs (this process's lock goes: the next process takes them over)."""
        busy = {*self._removing, *self._making.values()}
        if busy:  # a log being made or removed: a few thread hops
            await asyncio.wait(busy)
        for own in self.own.values():
            own.file.close()
        for foreign in self.foreign.values():
            foreign.file.close()
        self.own, self.current, self.spare, self.foreign = {}, {}, {}, {}

    async def _make(self, endpoint: str) -> None:
        key = f"{endpoint_dir(endpoint)}/{time.time_ns():020d}-{self.instance}.log"
        try:
            made = await asyncio.to_thread(self.files.create, key, self.log_bytes)
        except Exception as exc:
            self._failed[endpoint] = time.monotonic()
            log.debug("notifications: cannot make a journal log (objects instead): %s", exc)
            return
        own = _Own(key, made)
        self.own[key] = own
        if endpoint in self.current:
            self.spare[endpoint] = own
        else:
            self.current[endpoint] = own

    def _prepare(self, endpoint: str) -> None:
        """Make a spare log of ``endpoint`` in the background (unless one is being made, or
        the last attempt failed a moment ago)."""
        if endpoint in self.spare or endpoint in self._making:
            return
        if time.monotonic() - self._failed.get(endpoint, -RETRY_AFTER) < RETRY_AFTER:
            return
        task = asyncio.get_running_loop().create_task(self._make(endpoint))
        self._making[endpoint] = task
        task.add_done_callback(lambda _: self._making.pop(endpoint, None))

    def segment(self, endpoint: str, events: list[Event]) -> Segment:
        written = time.time_ns()
        body = json.dumps({"events": events}, separators=(",", ":")).encode()
        data = encode(written, body)
        own = self.current.get(endpoint)
        if own is None or own.next + len(data) > own.file.size:
            if own is not None:
                self._seal(own)
                del self.current[endpoint]
            own = self.spare.pop(endpoint, None)
            if own is not None:
                self.current[endpoint] = own
            self._prepare(endpoint)
        if own is None or own.next + len(data) > own.file.size:
            return super().segment(endpoint, events)  # no log ready: an object
        offset, own.next = own.next, own.next + len(data)
        if own.next > own.file.size // 2:
            self._prepare(endpoint)  # the next log, ready before this one is full
        key = f"{own.key}#{offset:010d}"
        own.writing[key] = (written, events)
        return Segment(written, self.instance, key, data)

    def _seal(self, own: _Own) -> None:
        """``own`` is full: nothing more goes there; its events are read from the file when
        sent (a sink down a long time fills logs, not the memory)."""
        own.sealed = True
        own.waiting = {key: (written, None) for key, (written, _) in own.waiting.items()}
        self._retire(own)

    async def write(self, segment: Segment) -> None:
        if "#" not in segment.key:  # an object (no log was ready)
            await super().write(segment)
            return
        # Shielded: a request cancelled meanwhile (its client went away) leaves the record
        # to land and be sent, as an object's write would.
        await asyncio.shield(self.begin_write(segment))

    def begin_write(self, segment: Segment) -> asyncio.Future[None]:
        """Hand the record's ``pwrite`` and ``fdatasync`` to a worker thread at once (no task
        in between: a push's record is on its way before the manifest's first write)."""
        key, _, offset = segment.key.partition("#")
        if not offset:
            return super().begin_write(segment)
        own = self.own[key]
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None]
        try:
            future = loop.run_in_executor(None, own.file.append, int(offset), segment.body)
        except RuntimeError as exc:  # no worker thread (shutting down): the request sees it
            future = loop.create_future()
            future.set_exception(exc)
        future.add_done_callback(lambda done: self._written(own, segment.key, done))
        return future

    def _written(self, own: _Own, key: str, task: asyncio.Future[None]) -> None:
        written, events = own.writing.pop(key)
        if not task.cancelled() and task.exception() is None:
            own.waiting[key] = (written, None if own.sealed else events)
        self._retire(own)

    # -- reading ------------------------------------------------------------------------------
    async def pending(self, endpoint: str) -> list[Segment]:
        try:
            keys = await self.driver.list(endpoint_dir(endpoint))
        except PathNotFoundError:
            keys = []
        segments = self.objects(keys)
        prefix, listed = endpoint_dir(endpoint) + "/", set(keys)
        for key in [key for key in self.foreign if key.startswith(prefix)]:
            if key not in listed:  # removed (by another process): let its file go
                self.foreign.pop(key).file.close()
        for key in keys:
            match = _LOG.fullmatch(key.rsplit("/", 1)[-1])
            if match is None:
                continue
            own = self.own.get(key)
            if own is not None:
                segments += [
                    Segment(written, self.instance, entry)
                    for entry, (written, _) in own.waiting.items()
                ]
                continue
            try:
                foreign = await self._foreign(key, match.group(2))
            except FileNotFoundError:
                continue
            if foreign is None:
                continue
            segments += [
                Segment(written, foreign.instance, entry)
                for entry, written in foreign.waiting.items()
            ]
        return sorted(segments)

    async def _foreign(self, key: str, instance: str) -> _Foreign | None:
        """Another process's log ``key`` as it is now (read again when it changed); removed,
        and ``None``, when nothing waits there and its owner is gone."""
        known = self.foreign.get(key)
        if known is None:
            opened = await asyncio.to_thread(self.files.open, key)
            known = _Foreign(opened, (-1, -1), instance, {})
            self.foreign[key] = known
        stamp = await asyncio.to_thread(known.file.stamp)
        if stamp != known.stamp:
            records: list[Record] = await asyncio.to_thread(known.file.read)
            known.stamp = stamp
            known.waiting = {
                f"{key}#{record.offset:010d}": record.written_ns
                for record in records
                if record.state == WAITING
            }
        if not known.waiting and await asyncio.to_thread(known.file.owner_gone):
            del self.foreign[key]
            await asyncio.to_thread(known.file.remove)
            return None
        return known

    async def read(self, segment: Segment) -> list[Event] | None:
        key, _, offset = segment.key.partition("#")
        if not offset:
            return await super().read(segment)
        own, foreign = self.own.get(key), self.foreign.get(key)
        if own is not None and segment.key in own.waiting:
            events = own.waiting[segment.key][1]
            if events is not None:
                return events
            file = own.file
        elif foreign is not None and segment.key in foreign.waiting:
            file = foreign.file
        else:
            return None
        record = await asyncio.to_thread(file.read_at, int(offset))
        return parse_events(record.body) if record is not None else None

    # -- removing -----------------------------------------------------------------------------
    async def remove_all(self, segments: list[Segment]) -> None:
        """Mark delivered records done (one worker-thread hop a log), remove objects."""
        marks: dict[str, list[int]] = {}
        objects = []
        for segment in segments:
            key, _, offset = segment.key.partition("#")
            if offset:
                marks.setdefault(key, []).append(int(offset))
            else:
                objects.append(segment)
        await super().remove_all(objects)
        for key, offsets in marks.items():
            own, foreign = self.own.get(key), self.foreign.get(key)
            file = own.file if own is not None else foreign.file if foreign is not None else None
            if file is None:
                continue
            await asyncio.to_thread(file.mark, offsets, DONE)
            done = {f"{key}#{offset:010d}" for offset in offsets}
            if own is not None:
                for entry in done:
                    own.waiting.pop(entry, None)
                self._retire(own)
            elif foreign is not None:
                for entry in done:
                    foreign.waiting.pop(entry, None)

    def _retire(self, own: _Own) -> None:
        """Remove a full log of this process once nothing waits in it (in the background)."""
        if not own.sealed or own.writing or own.waiting or own.key not in self.own:
            return
        del self.own[own.key]

        async def remove() -> None:
            try:
                await asyncio.to_thread(own.file.remove)
            except OSError as exc:
                log.warning("notifications: cannot remove a delivered journal log: %s", exc)

        task = asyncio.get_running_loop().create_task(remove())
        self._removing.add(task)
        task.add_done_callback(self._removing.discard)

    async def waiting(self, directory: str) -> int:
        count = await super().waiting(directory)
        for key in await self.driver.list(directory):
            match = _LOG.fullmatch(key.rsplit("/", 1)[-1])
            if match is None or key in self.own:
                continue
            with contextlib.suppress(FileNotFoundError):
                opened = await asyncio.to_thread(self.files.open, key)
                try:
                    records = await asyncio.to_thread(opened.read)
                finally:
                    opened.close()
                count += sum(record.state == WAITING for record in records)
        return count
