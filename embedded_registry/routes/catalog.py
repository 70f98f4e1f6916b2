"""``/v2/_catalog``: repositories in Distribution's order, ``n``/``last``, ``Link``.

The names come from a :class:`RepositoryIndex` kept in memory and checked against the disk
for every request (a ``stat`` per directory, not a walk), so a repository another process
created or removed is listed, or not, at once. Requests that arrive together share one check:
each waits for a check that started after it arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

from aiohttp import web

from embedded_registry.keys import STORAGE_KEY
from embedded_registry.routes.common import json_response, next_link, page_size, storage
from embedded_registry.storage import Storage
from embedded_registry.storage.catalog import RepositoryIndex, page

# Distribution 2.8 returns 100 repositories when ``n`` is absent, not a number or negative.
DEFAULT_PAGE = 100


class SharedRefresh:
    """One :meth:`RepositoryIndex.refresh` at a time, shared by the requests waiting for it."""

    def __init__(self, index: RepositoryIndex) -> None:
        self.index = index
        self._lock = asyncio.Lock()
        self._started = 0
        self._finished = 0

    async def page(self, last: str | None, count: int) -> tuple[list[str], bool]:
        await self.refresh()
        return self.index.page(last, count, refresh=False)

    async def refresh(self) -> None:
        """Return after a check that began after this call."""
        arrived_after = self._started
        async with self._lock:
            if self._finished <= arrived_after:  # no check began after this call came
                self._started += 1
                number = self._started
                await asyncio.to_thread(self.index.refresh)
                self._finished = number


CATALOG_KEY = web.AppKey("catalog_index", SharedRefresh)


async def catalog(request: web.Request) -> web.Response:
    requested = page_size(request, default=None)
    count = DEFAULT_PAGE if requested is None else requested
    index = request.app.get(CATALOG_KEY)
    if index is not None:  # the filesystem: an index checked with a stat per directory
        selected, more = await index.page(request.query.get("last"), count)
    else:  # object storage: the driver's listing
        repositories = await storage(request).repositories()
        selected, more = page(repositories, request.query.get("last"), count)
    headers: dict[str, str] = {}
    if more and selected:
        headers["Link"] = next_link(request, selected[-1], count)
    body = json.dumps({"repositories": selected}, separators=(",", ":")) + "\n"
    return json_response(body.encode(), headers=headers)


async def _walk_at_start(app: web.Application) -> AsyncIterator[None]:
    """The first walk (every directory listed) starts with the server, not with the first
    request; a request that comes meanwhile waits for it, then for a cheap check."""
    task = asyncio.create_task(app[CATALOG_KEY].refresh())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, OSError):
        await task


def setup_routes(app: web.Application) -> None:
    store = app[STORAGE_KEY]
    if isinstance(store, Storage):
        app[CATALOG_KEY] = SharedRefresh(RepositoryIndex(store.layout.repositories_dir))
        app.cleanup_ctx.append(_walk_at_start)
    app.router.add_get("/v2/_catalog", catalog)
