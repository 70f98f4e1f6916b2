"""``/v2/_catalog``: repositories in Distribution's order, ``n``/``last``, ``Link``."""

from __future__ import annotations

import json

from aiohttp import web

from embedded_registry.routes.common import json_response, next_link, page_size, storage
from embedded_registry.storage.catalog import page

# Distribution 2.8 returns 100 repositories when ``n`` is absent, not a number or negative.
DEFAULT_PAGE = 100


async def catalog(request: web.Request) -> web.Response:
    requested = page_size(request, default=None)
    count = DEFAULT_PAGE if requested is None else requested
    repositories = await storage(request).repositories()
    selected, more = page(repositories, request.query.get("last"), count)
    headers: dict[str, str] = {}
    if more and selected:
        headers["Link"] = next_link(request, selected[-1], count)
    body = json.dumps({"repositories": selected}, separators=(",", ":")) + "\n"
    return json_response(body.encode(), headers=headers)


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/v2/_catalog", catalog)
