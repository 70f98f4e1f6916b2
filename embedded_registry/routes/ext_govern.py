"""``GET /v2/<name>/_regtui/immutable``: the tags of a repository that ``regtui.immutable``
holds (they may not move or go)::

    {"name": "team/app", "tags": ["v1.0.0", "v1.1.0"]}

A plain list of names (what ``regtui tags --json`` reads in one quick request), beside
``tags/list`` under the repository's own path, with its access: it says no more than the tag
list and the rules a push or delete would meet anyway. Each tag's rule is in ``ext/tags``.
"""

from __future__ import annotations

import json

from aiohttp import web

from embedded_registry import errors, govern, names
from embedded_registry.routes.common import json_response, storage

PATH = "/v2/{name:.+}/_regtui/immutable"


async def immutable_tags(request: web.Request) -> web.Response:
    name = names.check_name(request.match_info["name"])
    tags = await storage(request).tags(name)
    if tags is None:
        raise errors.name_unknown(name)
    rules = govern.governor(request)
    held = [t for t in tags if rules is not None and rules.immutable_rule(name, t) is not None]
    return json_response(json.dumps({"name": name, "tags": held}).encode())


def setup_routes(app: web.Application) -> None:
    app.router.add_get(PATH, immutable_tags)
