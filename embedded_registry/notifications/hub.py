"""The registry's events: recorded for the Events extension, journaled for the webhooks.

:class:`Notifier` lives in the application (``NOTIFIER_KEY``). Each event a route reports
(:mod:`embedded_registry.notifications`) is

* kept in a ring of the last :data:`RECENT` events of this process, with a cursor, for the
  administrative ``/v2/_regtui/ext/events`` (long-poll: a reader waits for the next one);
* written to the journal (:mod:`.journal`) for each active endpoint that does not ignore it,
  then sent by that endpoint's :class:`~.delivery.Deliverer` in the background. A push, mount
  or delete is journaled before its answer goes out (a crash after the answer loses nothing);
  a pull is journaled right after, without holding the answer back. A storage that refuses
  the journal (mounted read-only, failing) does not lose the events at once: they are sent
  from memory, as Distribution sends everything (one error line until the journal works again).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import uuid
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from embedded_registry.admin import AUTH_USER
from embedded_registry.config import Config, ConfigError
from embedded_registry.notifications.delivery import (
    Activity,
    Deliverer,
    Landed,
    manifest_landed,
)
from embedded_registry.notifications.events import Event, Origin, RequestRecord, new_id, wanted
from embedded_registry.notifications.journal import Journal, Segment, endpoint_dir
from embedded_registry.notifications.recordlog import LogJournal
from embedded_registry.storage.api import RegistryStorage
from embedded_registry.storage.driver.base import StorageDriver
from embedded_registry.storage.driver.records import record_files

log = logging.getLogger(__name__)

RECENT = 2000
"""Events this process keeps for the Events extension."""
SHUTDOWN_GRACE = 5.0
"""Seconds a clean shutdown waits for the journal writes still in flight (pulls)."""


def _ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def remote_addr(request: web.Request) -> str:
    """Distribution's ``RemoteAddr``: the first ``X-Forwarded-For`` address, else
    ``X-Real-Ip``, else the peer's ``host:port``."""
    forwarded = request.headers.get("X-Forwarded-For", "")
    if forwarded:
        first = forwarded.split(",")[0].strip()
        if _ip(first):
            return first
    real = request.headers.get("X-Real-Ip", "").strip()
    if real and _ip(real):
        return real
    peer = request.transport.get_extra_info("peername") if request.transport else None
    if isinstance(peer, tuple) and len(peer) >= 2:
        host, port = str(peer[0]), peer[1]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return request.remote or ""


def base_url(request: web.Request) -> str:
    """This registry as the client reached it (Distribution's URL builder, as
    ``routes.common.absolute_url``)."""
    scheme = request.headers.get("X-Forwarded-Proto", request.scheme).split(",")[0].strip()
    host = request.headers.get("X-Forwarded-Host", request.host).split(",")[0].strip()
    return f"{scheme}://{host}"


def open_journal(driver: StorageDriver, instance: str) -> Journal:
    """The journal of ``instance`` in ``driver``: logs of records on the filesystem, objects
    elsewhere."""
    files = record_files(driver)
    return LogJournal(driver, instance, files) if files is not None else Journal(driver, instance)


class Notifier:
    """Events of one registry process: the recent ones, and the webhooks' journal."""

    def __init__(
        self, config: Config, driver: StorageDriver | None, landed: Landed | None = None
    ) -> None:
        self.config = config
        self.endpoints = config.notifications.active
        self.include_references = config.notifications.include_references
        self.instance_id = str(uuid.uuid4())
        self.hostname = socket.gethostname()
        self.journal = open_journal(driver, uuid.UUID(self.instance_id).hex) if driver else None
        if self.endpoints and self.journal is None:
            raise ConfigError("notifications need a storage driver for their journal")
        self.activity = Activity()
        self.deliverers = {
            endpoint.name: Deliverer(endpoint, self.journal, landed, self.activity)
            for endpoint in self.endpoints
            if self.journal is not None
        }
        self.recent: deque[tuple[int, Event]] = deque(maxlen=RECENT)
        self.cursor = 0
        self._changed: asyncio.Event | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._journal_error: str | None = None
        self._closing = False

    # -- recording ----------------------------------------------------------------------------
    def origin(self, request: web.Request) -> Origin:
        port = self.config.http.port
        if not port:
            local = request.transport.get_extra_info("sockname") if request.transport else None
            port = local[1] if isinstance(local, tuple) and len(local) >= 2 else 0
        user = request.get(AUTH_USER)
        return Origin(
            request=RequestRecord(
                id=new_id(),
                addr=remote_addr(request),
                host=request.host,
                method=request.method,
                useragent=request.headers.get("User-Agent", ""),
            ),
            actor=user if isinstance(user, str) else "",
            source_addr=f"{self.hostname}:{port}",
            instance_id=self.instance_id,
        )

    def _remember(self, events: list[Event]) -> None:
        self.activity.note()
        for item in events:
            self.cursor += 1
            self.recent.append((self.cursor, item))
        changed, self._changed = self._changed, None
        if changed is not None:  # someone waits (a long poll)
            changed.set()

    async def record(self, events: list[Event]) -> None:
        """Keep ``events`` and return once they are in the journal (a push, a delete)."""
        self._remember(events)
        if self.deliverers:
            self.activity.started()
            try:
                await self._journal(events)
            finally:
                self.activity.ended()

    def record_soon(self, events: list[Event]) -> None:
        """Keep ``events``; journal them in the background (a pull: the answer is not held
        back)."""
        self._remember(events)
        if not self.deliverers:
            return
        self._keep(asyncio.get_running_loop().create_task(self._journal(events)))

    def begin(self, events: list[Event]) -> Pending:
        """Start journaling ``events`` of a request whose own writes run meanwhile (a manifest
        push): the caller ends it with :meth:`Pending.commit` once the writes succeeded (it
        returns when the events are in the journal), or :meth:`Pending.abandon`."""
        writes: list[_Write] = []
        if self.deliverers:
            assert self.journal is not None
            for endpoint, kept in self._per_endpoint(events):
                segment = self.journal.segment(endpoint, kept)
                self.journal.held.add(segment.key)
                task = self.journal.begin_write(segment)  # under way before the push's writes
                writes.append(_Write(endpoint, segment, kept, task))
        if writes:
            self.activity.started()  # ended by commit() or abandon()
        else:
            self.activity.note()
        return Pending(self, events, writes)

    def _per_endpoint(self, events: list[Event]) -> list[tuple[str, list[Event]]]:
        """Each active endpoint's share of ``events`` (what it does not ignore)."""
        shares = []
        for endpoint in self.endpoints:
            kept = [
                item
                for item in events
                if wanted(item, endpoint.ignored_media_types, endpoint.ignored_actions)
            ]
            if kept:
                shares.append((endpoint.name, kept))
        return shares

    def _journaled(self, endpoint: str, events: list[Event], error: Exception | None) -> None:
        """The journal write of ``events`` for ``endpoint`` ended (``error``: it failed, the
        events are sent from memory); the endpoint's deliverer is woken."""
        deliverer = self.deliverers[endpoint]
        if error is None:
            self._journal_error = None
        else:  # the request succeeded: never fail it for this
            deliverer.memory.append(events)
            if str(error) != self._journal_error:
                log.error(
                    "notifications: cannot write the journal (%s): events are sent from "
                    "memory until it can, and a crash loses them",
                    error,
                )
            self._journal_error = str(error)
        deliverer.wake.set()

    async def _journal(self, events: list[Event]) -> None:
        assert self.journal is not None
        for endpoint, kept in self._per_endpoint(events):
            try:
                await self.journal.append(endpoint, kept)
            except Exception as exc:
                self._journaled(endpoint, kept, exc)
            else:
                self._journaled(endpoint, kept, None)

    def _keep(self, task: asyncio.Task[None]) -> None:
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- reading ------------------------------------------------------------------------------
    def since(self, cursor: int, limit: int) -> tuple[list[tuple[int, Event]], int]:
        """Events after ``cursor`` (all kept ones when ``cursor`` is ahead of this process: a
        restart), at most ``limit`` (the oldest first); and the cursor to ask with next."""
        if cursor > self.cursor or cursor < 0:
            cursor = 0
        found = [(seq, item) for seq, item in self.recent if seq > cursor][:limit]
        return found, found[-1][0] if found else max(cursor, 0)

    async def wait(self, cursor: int, seconds: float) -> None:
        """Return when an event after ``cursor`` exists, or after ``seconds``."""
        if cursor != self.cursor or seconds <= 0 or self._closing:
            return
        if self._changed is None:
            self._changed = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), seconds)

    async def closing(self, _: web.Application) -> None:
        """The server is stopping: answer the long polls now (aiohttp waits for every request
        in flight before it stops, up to a minute)."""
        self._closing = True
        changed, self._changed = self._changed, None
        if changed is not None:
            changed.set()

    def status(self) -> list[dict[str, Any]]:
        """Each endpoint's delivery state (for the Events extension)."""
        return [
            {
                "name": name,
                "delivered": deliverer.delivered,
                "failing": deliverer.last_error,
            }
            for name, deliverer in self.deliverers.items()
        ]

    # -- lifetime -----------------------------------------------------------------------------
    async def _warn_orphans(self) -> None:
        """Say so when the journal holds events for an endpoint no longer configured (renamed,
        removed, disabled): nothing sends them."""
        if self.journal is None:
            return
        active = {endpoint_dir(endpoint.name) for endpoint in self.endpoints}
        try:
            for directory in await self.journal.endpoint_dirs():
                if directory.rstrip("/") in active:
                    continue
                waiting = await self.journal.waiting(directory)
                if waiting:
                    log.warning(
                        "notifications: %s holds %d undelivered journal entries of an endpoint "
                        "that is not configured (or disabled); nothing sends them",
                        directory,
                        waiting,
                    )
        except Exception as exc:  # a warning only: never keep the registry from serving
            log.warning("notifications: cannot read the journal: %s", exc)

    async def run(self) -> AsyncIterator[None]:
        if self.journal is not None and self.deliverers:
            await self.journal.start(list(self.deliverers))  # the first log, before serving
        tasks = [asyncio.create_task(d.run()) for d in self.deliverers.values()]
        tasks.append(asyncio.create_task(self._warn_orphans()))
        for endpoint in self.config.notifications.endpoints:
            if endpoint.disabled:
                log.info("notifications: endpoint %s disabled, skipping", endpoint.name)
            else:
                log.info("notifications: endpoint %s (%s)", endpoint.name, endpoint.url)
        yield
        if self._background:  # pulls still being journaled: let them land (bounded)
            await asyncio.wait(set(self._background), timeout=SHUTDOWN_GRACE)
        for task in [*tasks, *self._background]:
            task.cancel()
        for task in [*tasks, *self._background]:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.journal is not None:
            await self.journal.close()


@dataclass(frozen=True)
class _Write:
    """One endpoint's journal write of a :class:`Pending` request."""

    endpoint: str
    segment: Segment
    events: list[Event]
    task: asyncio.Future[None]


class Pending:
    """The events of a request, being journaled while the request's own writes run.

    The segments are *held*: no deliverer sends them before :meth:`commit` (the writes
    succeeded) or :meth:`abandon` (they failed: the segments are removed). A crash in between
    leaves segments that no process knows the outcome of; the deliverer that finds them sends
    only the pushes whose manifest is in the storage (:mod:`.delivery`)."""

    def __init__(self, notifier: Notifier, events: list[Event], writes: list[_Write]) -> None:
        self.notifier = notifier
        self.events = events
        self.writes = writes
        self._in_flight = bool(writes)
        """Counted in the notifier's activity (a deliverer waits for it to end)."""

    def _end(self) -> None:
        if self._in_flight:
            self._in_flight = False
            self.notifier.activity.ended()

    async def commit(self) -> None:
        """The request succeeded: return once its events are in the journal (or, the journal
        refusing them, queued in memory)."""
        try:
            await self._commit()
        finally:
            self._end()

    async def _commit(self) -> None:
        self.notifier._remember(self.events)
        journal = self.notifier.journal
        for number, write in enumerate(self.writes):
            assert journal is not None
            error: Exception | None = None
            try:
                await asyncio.shield(write.task)
            except asyncio.CancelledError:
                # The request was cancelled while waiting: the writes go on; the deliverer
                # checks their segments against the storage (the manifest is there: sent).
                for left in self.writes[number:]:
                    self._settle_later(left, unsure=True)
                raise
            except Exception as exc:
                error = exc
            journal.held.discard(write.segment.key)
            self.notifier._journaled(write.endpoint, write.events, error)

    def abandon(self, *, failed: bool) -> None:
        """The request ended without success: its segments are removed once written
        (``failed``: its writes failed), or left for the deliverer to check against the
        storage (not ``failed``: cancelled, they may have landed)."""
        self._end()
        for write in self.writes:
            self._settle_later(write, unsure=not failed)

    def _settle_later(self, write: _Write, *, unsure: bool) -> None:
        journal = self.notifier.journal
        assert journal is not None

        async def settle() -> None:
            check = unsure
            try:
                with contextlib.suppress(Exception):  # not written: nothing to remove
                    await asyncio.shield(write.task)
                if not check:
                    try:
                        await journal.remove(write.segment)
                    except Exception:  # still there: the deliverer checks it as unsure
                        check = True
                if check:
                    journal.unsure.add(write.segment.key)
            finally:
                journal.held.discard(write.segment.key)
                self.notifier.deliverers[write.endpoint].wake.set()

        self.notifier._keep(asyncio.get_running_loop().create_task(settle()))


NOTIFIER_KEY: web.AppKey[Notifier] = web.AppKey("notifier", Notifier)


def setup(app: web.Application, config: Config, storage: RegistryStorage) -> None:
    """Give ``app`` its :class:`Notifier` (ConfigError when the endpoints cannot be served)."""
    driver = getattr(storage, "driver", None)
    notifier = Notifier(
        config, driver if isinstance(driver, StorageDriver) else None, manifest_landed(storage)
    )
    app[NOTIFIER_KEY] = notifier

    async def lifetime(_: web.Application) -> AsyncIterator[None]:
        async for _step in notifier.run():
            yield

    app.cleanup_ctx.append(lifetime)
    app.on_shutdown.append(notifier.closing)
