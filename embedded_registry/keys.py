"""Typed keys for the state the aiohttp application shares between handlers."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from embedded_registry.config import Config
    from embedded_registry.gc.collect import GcObserver
    from embedded_registry.storage.api import RegistryStorage

CONFIG_KEY: web.AppKey[Config] = web.AppKey("config")
STORAGE_KEY: web.AppKey[RegistryStorage] = web.AppKey("storage")
# Held by every manifest commit (PUT) and every manifest/tag/blob delete, and by garbage
# collection from the start of its mark phase to the end of its sweep: a manifest can never be
# committed against a blob that GC has already decided to remove.
COMMIT_LOCK_KEY: web.AppKey[asyncio.Lock] = web.AppKey("commit_lock", asyncio.Lock)
# Told how each online GC run ended (set when the metrics are on).
GC_OBSERVER_KEY: web.AppKey[GcObserver] = web.AppKey("gc_observer")
