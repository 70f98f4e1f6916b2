"""The server's side of the pull times (:mod:`embedded_registry.storage.pulls`): written on
an interval while serving, and once more at shutdown, never on the request path."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator

from aiohttp import web

from embedded_registry.keys import CONFIG_KEY, STORAGE_KEY
from embedded_registry.storage.api import RegistryStorage

log = logging.getLogger("embedded_registry.pulls")

PULL_FLUSH_INTERVAL = 10.0
PULL_FLUSH_ENV = "REGTUI_PULL_FLUSH_INTERVAL"
"""Seconds between two writes of the pull times instead of ``PULL_FLUSH_INTERVAL``."""


def pull_flush_interval() -> float:
    try:
        value = float(os.environ.get(PULL_FLUSH_ENV, ""))
    except ValueError:
        return PULL_FLUSH_INTERVAL
    return value if 0 < value < float("inf") else PULL_FLUSH_INTERVAL


async def _flush_loop(storage: RegistryStorage, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await storage.flush_pulls()
        except Exception as exc:  # the next flush tries again (the times stay in memory)
            log.warning("writing pull times failed: %s", exc)


async def pull_time_flusher(app: web.Application) -> AsyncIterator[None]:
    """The ``cleanup_ctx`` of the pull times: written every :func:`pull_flush_interval`
    seconds, and once more at shutdown (after the last request was answered)."""
    storage = app[STORAGE_KEY]
    task = None
    if not app[CONFIG_KEY].storage.read_only:
        task = asyncio.create_task(_flush_loop(storage, pull_flush_interval()))
    yield
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        try:
            await storage.flush_pulls()
        except Exception as exc:
            log.warning("writing pull times at shutdown failed: %s", exc)
