"""``GET /v2/_regtui/ext/events``: the registry's recent events (the Events screen's source).

Query: ``since`` (a cursor from a previous answer; 0 or absent: every event kept), ``wait``
(seconds, at most :data:`MAX_WAIT`: a long poll, answered as soon as an event after ``since``
exists), ``limit`` (at most :data:`MAX_LIMIT`). The answer::

    {"instance": "<id of this process>", "next": <cursor>, "events": [<Distribution event>...],
     "endpoints": [{"name", "delivered", "failing"}...]}

Each event is the one the webhooks get (:mod:`embedded_registry.notifications`): action,
target, request (with the client's address), actor (the user) and source. A client that sees
``instance`` change (a restart) starts again from 0. Events are this process's (the last
``RECENT``): behind a load balancer, each replica answers with its own.

Access as the other administrative extensions (:func:`routes.ext._check_access`): the local
admin secret, or a user named in ``regtui.extensions.admins``; everyone else 403 DENIED.
"""

from __future__ import annotations

import json

from aiohttp import web

from embedded_registry import errors
from embedded_registry.notifications import NOTIFIER_KEY
from embedded_registry.routes.common import json_response
from embedded_registry.routes.ext import PREFIX, _check_access

MAX_WAIT = 60.0
MAX_LIMIT = 1000


def _number(request: web.Request, name: str, default: float, top: float) -> float:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise errors.RegistryError(
            "UNSUPPORTED",
            message="invalid events request",
            detail=f"{name} must be a number",
            status=400,
        ) from None
    if value != value or value < 0:
        raise errors.RegistryError(
            "UNSUPPORTED",
            message="invalid events request",
            detail=f"{name} must be >= 0",
            status=400,
        )
    return min(value, top)


async def recent_events(request: web.Request) -> web.Response:
    _check_access(request)
    notifier = request.app[NOTIFIER_KEY]
    since = int(_number(request, "since", 0, float(2**62)))
    wait = _number(request, "wait", 0, MAX_WAIT)
    limit = int(_number(request, "limit", MAX_LIMIT, MAX_LIMIT)) or MAX_LIMIT
    await notifier.wait(since, wait)
    found, cursor = notifier.since(since, limit)
    document = {
        "instance": notifier.instance_id,
        "next": cursor,
        "events": [item for _, item in found],
        "endpoints": notifier.status(),
    }
    return json_response(json.dumps(document, separators=(",", ":")).encode())


def setup_routes(app: web.Application) -> None:
    app.router.add_get(f"{PREFIX}/events", recent_events)
