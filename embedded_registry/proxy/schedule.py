"""When cached content expires: Distribution's proxy scheduler, kept in the storage.

The state is Distribution's own document, ``scheduler-state.json`` at the storage root: a map
from ``<repository>@<digest>`` to ``{"Key", "ExpiryData" (RFC 3339), "EntryType" (0 a blob,
1 a manifest)}``. It is written as soon as it changes, in the background, and at a clean stop
(Distribution writes it every 5 s); it is read at start, and entries already past their time
then expire at once: a restart keeps the schedule, and a registry:2 cache's storage served by
regtui keeps its own.

Expiry does what Distribution's does: a manifest's revision goes (with the tags on it), a
blob's link leaves the repository; garbage collection then frees the bytes nothing links.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from embedded_registry import names

log = logging.getLogger(__name__)

STATE_NAME = "scheduler-state.json"
BLOB, MANIFEST = 0, 1
MAX_SLEEP = 60.0
RETRY_DELAY = 30.0

Expire = Callable[[int, str, str], Awaitable[None]]
"""``expire(kind, repository, digest)``: remove one expired entry's content."""


@dataclass
class Entry:
    key: str
    expiry: float
    kind: int

    def document(self) -> dict[str, object]:
        stamp = datetime.fromtimestamp(self.expiry, UTC).isoformat().replace("+00:00", "Z")
        return {"Key": self.key, "ExpiryData": stamp, "EntryType": self.kind}


def _parse_time(text: str) -> float:
    """RFC 3339 as Go writes it (nanoseconds, ``Z`` or an offset)."""
    text = text.strip().replace("Z", "+00:00").replace("z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:  # Python reads at most microseconds: cut the fraction to six digits
        digits = len(rest) - len(rest.lstrip("0123456789"))
        rest = rest[: min(digits, 6)] + rest[digits:]
        text = f"{head}.{rest}"
    return datetime.fromisoformat(text).timestamp()


def split_key(key: str) -> tuple[str, str] | None:
    name, _, digest = key.rpartition("@")
    if not names.is_valid_name(name) or not names.is_valid_digest(digest):
        return None
    return name, digest


class Schedule:
    """The expiry times of cached manifests and blobs, stored through ``read``/``write``."""

    def __init__(
        self,
        read: Callable[[str], Awaitable[bytes | None]],
        write: Callable[[str, bytes], Awaitable[None]],
    ) -> None:
        self._read = read
        self._write = write
        self.entries: dict[str, Entry] = {}
        self._changed = asyncio.Event()
        self._save_lock = asyncio.Lock()
        self._dirty = False
        self._writer: asyncio.Future[None] | None = None

    async def load(self) -> None:
        data = await self._read(STATE_NAME)
        if not data:
            return
        try:
            document = json.loads(data)
        except ValueError:
            log.warning("%s is not JSON: starting with an empty schedule", STATE_NAME)
            return
        if not isinstance(document, dict):
            return
        for key, value in document.items():
            try:
                entry = Entry(str(key), _parse_time(value["ExpiryData"]), int(value["EntryType"]))
            except (KeyError, TypeError, ValueError):
                log.warning("ignoring a malformed entry of %s: %r", STATE_NAME, key)
                continue
            if split_key(entry.key) is not None and entry.kind in (BLOB, MANIFEST):
                self.entries[entry.key] = entry

    async def save(self) -> None:
        async with self._save_lock:
            document = {key: entry.document() for key, entry in sorted(self.entries.items())}
            await self._write(STATE_NAME, json.dumps(document, indent=1).encode())

    def add(self, kind: int, name: str, digest: str, ttl: float) -> None:
        """Expire ``name@digest`` in ``ttl`` seconds (never when ``ttl`` is 0). The state is
        written at once, off the request's path: additions meanwhile join the next write."""
        if ttl <= 0:
            return
        key = f"{name}@{digest}"
        self.entries[key] = Entry(key, time.time() + ttl, kind)
        self._dirty = True
        if self._writer is None or self._writer.done():
            self._writer = asyncio.ensure_future(self._flush())
        self._changed.set()

    async def _flush(self) -> None:
        while self._dirty:
            self._dirty = False
            try:
                await self.save()
            except Exception as exc:  # retried with the next change, and at shutdown
                log.warning("writing %s failed: %s", STATE_NAME, exc)
                return

    async def close(self) -> None:
        """Wait for the last write, and write once more (a clean stop keeps everything)."""
        if self._writer is not None:
            with contextlib.suppress(Exception):
                await self._writer
        await self.save()

    def expiry(self, name: str, digest: str) -> float | None:
        entry = self.entries.get(f"{name}@{digest}")
        return None if entry is None else entry.expiry

    async def run(self, expire: Expire) -> None:
        """Expire entries as their time comes, until cancelled."""
        while True:
            self._changed.clear()
            now = time.time()
            due = sorted(
                (e for e in self.entries.values() if e.expiry <= now), key=lambda e: e.expiry
            )
            changed = False
            for entry in due:
                parts = split_key(entry.key)
                if parts is None:
                    continue
                try:
                    await expire(entry.kind, *parts)
                except Exception as exc:  # a storage hiccup: try again later
                    log.warning("expiring %s failed: %s", entry.key, exc)
                    entry.expiry = time.time() + RETRY_DELAY
                    changed = True
                    continue
                log.info("expired %s from the cache", entry.key)
                if self.entries.get(entry.key) is entry:
                    del self.entries[entry.key]
                    changed = True
            if changed:
                try:
                    await self.save()
                except Exception as exc:
                    log.warning("writing %s failed: %s", STATE_NAME, exc)
            upcoming = min((e.expiry for e in self.entries.values()), default=None)
            delay = MAX_SLEEP
            if upcoming is not None:
                delay = max(0.0, min(upcoming - time.time(), MAX_SLEEP))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=delay)
