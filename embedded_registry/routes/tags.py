"""``/v2/<name>/tags/list`` with ``n``/``last`` pagination and a ``Link`` header."""

from __future__ import annotations

import bisect
import json

from aiohttp import web

from embedded_registry import errors
from embedded_registry.routes.common import json_response, next_link, page_size, repo_name, storage


async def list_tags(request: web.Request) -> web.Response:
    name = repo_name(request)
    count = page_size(request, default=None)
    tags = await storage(request).tags(name)
    if tags is None:
        raise errors.name_unknown(name)
    last = request.query.get("last")
    if last:
        tags = tags[bisect.bisect_right(tags, last) :]
    headers: dict[str, str] = {}
    if count is not None:
        if len(tags) > count:
            tags = tags[:count]
            if tags:
                headers["Link"] = next_link(request, tags[-1], count)
        else:
            tags = tags[:count]
    body = json.dumps({"name": name, "tags": tags}, separators=(",", ":")) + "\n"
    return json_response(body.encode(), headers=headers)


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/v2/{name:.+}/tags/list", list_tags)
