"""A push's event is on its way at once, and its delivery never runs beside a push in flight.

In one process: a real :class:`~embedded_registry.notifications.hub.Notifier` with its journal
on real files, its deliverer POSTing to a real aiohttp sink on loopback. A push whose own writes
take longer than ``LINGER`` (a loaded machine: a manifest PUT of 20-70 ms) is no quiet moment:
what waits in the journal is sent once it is answered (or after ``MAX_LINGER`` at the latest).
And the record of a push is handed to a worker thread by ``begin`` itself, before the request
yields to the manifest's own writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from embedded_registry.config import (
    Config,
    NotificationEndpoint,
    NotificationsConfig,
    StorageConfig,
)
from embedded_registry.notifications import delivery
from embedded_registry.notifications.events import Event
from embedded_registry.notifications.hub import Notifier
from embedded_registry.storage.driver.filesystem import FilesystemDriver
from tests.helpers.journal import JOURNAL, records
from tests.helpers.sink import Sink, webhook_sink

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
IGNORED = "application/vnd.example.ignored"
IN_FLIGHT = 0.6
"""Seconds the push stays in flight: many times ``LINGER`` (0.05 s)."""


def _event(event_id: str, media_type: str) -> Event:
    return {
        "id": event_id,
        "action": "push",
        "target": {"mediaType": media_type, "repository": "quiet/app", "tag": event_id},
    }


@contextlib.asynccontextmanager
async def _notifier(root: Path, sink: Sink) -> AsyncIterator[Notifier]:
    endpoint = NotificationEndpoint(
        name="ci", url=sink.url("/hook"), timeout=2.0, ignored_media_types=frozenset({IGNORED})
    )
    config = Config(
        storage=StorageConfig(root=root),
        notifications=NotificationsConfig(endpoints=(endpoint,)),
    )
    notifier = Notifier(config, FilesystemDriver(root))
    life = notifier.run()
    await anext(life)
    try:
        # One event through, and the journal empty again: the deliverer is past its first
        # scan and waits to be woken (a scan under way would send what it finds at once).
        await notifier.record([_event("warm-up", "application/octet-stream")])
        await _received(sink, 1)
        assert notifier.journal is not None
        for _ in range(1000):
            if not await notifier.journal.pending("ci"):
                break
            await asyncio.sleep(0.01)
        yield notifier
    finally:
        with contextlib.suppress(StopAsyncIteration):
            await anext(life)


async def _received(sink: Sink, count: int) -> list[str]:
    got = await asyncio.to_thread(sink.wait_for, "/hook", lambda events: len(events) >= count)
    return [item["id"] for item in got]


@pytest.fixture(autouse=True)
def _long_max_linger(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the push in flight may hold the delivery back in these tests."""
    monkeypatch.setattr(delivery, "MAX_LINGER", 30.0)


async def test_nothing_is_sent_beside_a_push_in_flight(tmp_path: Path) -> None:
    with webhook_sink() as sink:
        async with _notifier(tmp_path, sink) as notifier:
            await notifier.record([_event("blob", "application/octet-stream")])  # wakes it
            pushing = notifier.begin([_event("manifest", MANIFEST)])
            await asyncio.sleep(IN_FLIGHT)  # the push's own writes, slower than LINGER
            assert [item["id"] for item in sink.events("/hook")] == ["warm-up"]
            await pushing.commit()
            assert await _received(sink, 3) == ["warm-up", "blob", "manifest"]


async def test_a_failed_push_holds_the_delivery_back_no_longer(tmp_path: Path) -> None:
    with webhook_sink() as sink:
        async with _notifier(tmp_path, sink) as notifier:
            await notifier.record([_event("blob", "application/octet-stream")])
            pushing = notifier.begin([_event("manifest", MANIFEST)])
            await asyncio.sleep(IN_FLIGHT)
            pushing.abandon(failed=True)
            assert await _received(sink, 2) == ["warm-up", "blob"]
            await asyncio.sleep(0.3)
            assert [item["id"] for item in sink.events("/hook")] == ["warm-up", "blob"]


async def test_a_push_every_endpoint_ignores_holds_nothing_back(tmp_path: Path) -> None:
    with webhook_sink() as sink:
        async with _notifier(tmp_path, sink) as notifier:
            await notifier.record([_event("blob", "application/octet-stream")])
            notifier.begin([_event("ignored", IGNORED)])  # nothing to journal: never ended
            assert await _received(sink, 2) == ["warm-up", "blob"]


def _landed_without_the_loop(root: Path) -> list[str]:
    """The ids of the events waiting in the journal's logs once one lands (10 s at most),
    waiting without letting the event loop run."""
    deadline = time.monotonic() + 10
    found: list[str] = []
    while not found and time.monotonic() < deadline:
        time.sleep(0.02)
        found = [
            item["id"]
            for log in (root / JOURNAL).rglob("*.log")
            for record in records(log)
            if record.state == b"W"
            for item in record.events
        ]
    return found


async def test_a_push_s_record_is_under_way_before_the_request_yields(tmp_path: Path) -> None:
    with webhook_sink() as sink:
        async with _notifier(tmp_path, sink) as notifier:
            pushing = notifier.begin([_event("manifest", MANIFEST)])
            # No await since begin(): the loop has run nothing else, yet the record lands.
            assert _landed_without_the_loop(tmp_path) == ["manifest"]
            await pushing.commit()
            assert await _received(sink, 2) == ["warm-up", "manifest"]
