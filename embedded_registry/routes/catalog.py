"""``/v2/_catalog``: repositories in Distribution's order, ``n``/``last``, ``Link``.

The storage answers the page (:meth:`RegistryStorage.catalog_page`). On the filesystem driver
the names come from an index kept in memory and checked against the disk for every request (a
``stat`` per directory, not a walk: :class:`embedded_registry.storage.catalog.RepositoryIndex`),
so a repository another process created or removed is listed, or not, at once; requests that
arrive together share one check. On object storage, from the driver's listing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

from aiohttp import web

from embedded_registry.keys import STORAGE_KEY
from embedded_registry.routes.common import json_response, next_link, page_size, storage

# Distribution 2.8 returns 100 repositories when ``n`` is absent, not a number or negative.
DEFAULT_PAGE = 100


async def catalog(request: web.Request) -> web.Response:
    requested = page_size(request, default=None)
    count = DEFAULT_PAGE if requested is None else requested
    selected, more = await storage(request).catalog_page(request.query.get("last"), count)
    headers: dict[str, str] = {}
    if more and selected:
        headers["Link"] = next_link(request, selected[-1], count)
    body = json.dumps({"repositories": selected}, separators=(",", ":")) + "\n"
    return json_response(body.encode(), headers=headers)


async def _warm_up_at_start(app: web.Application) -> AsyncIterator[None]:
    """The first walk of the catalog (every directory listed) starts with the server, not
    with the first request; a request that comes meanwhile waits for it, then for a cheap
    check."""
    task = asyncio.create_task(app[STORAGE_KEY].warm_up())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, OSError):
        await task


def setup_routes(app: web.Application) -> None:
    app.cleanup_ctx.append(_warm_up_at_start)
    app.router.add_get("/v2/_catalog", catalog)
