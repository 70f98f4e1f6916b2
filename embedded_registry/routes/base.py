"""``/v2/`` (API version check), ``/debug/health`` (Distribution's) and ``/health``."""

from __future__ import annotations

import json

from aiohttp import web

from embedded_registry.health import APP_KEY as HEALTH_KEY
from embedded_registry.routes.common import JSON_CONTENT_TYPE, json_response, storage


async def version_check(request: web.Request) -> web.Response:
    """``GET /v2/``: 200 ``{}`` (auth, when configured, has already been checked)."""
    return json_response(b"{}")


def _status(failing: dict[str, str]) -> web.Response:
    if not failing:
        return json_response(b"{}")
    return web.Response(
        status=503, body=json.dumps(failing).encode(), headers={"Content-Type": JSON_CONTENT_TYPE}
    )


async def debug_health(request: web.Request) -> web.Response:
    """Distribution's ``/debug/health``: 200 ``{}`` while every configured check passes;
    503 ``{"check name": "error text"}`` naming the failing ones otherwise."""
    checks = request.app.get(HEALTH_KEY)
    return _status(checks.failing() if checks is not None else {})


async def health(request: web.Request) -> web.Response:
    """regtui's ``/health``: the configured checks, and the storage asked now (no waiting for
    the next periodic check)."""
    checks = request.app.get(HEALTH_KEY)
    failing = checks.failing() if checks is not None else {}
    store = storage(request)
    problem = await store.health()
    if problem is not None:
        failing[f"storagedriver_{store.kind}"] = problem
    return _status(failing)


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/v2/", version_check)
    app.router.add_get("/v2", version_check)
    app.router.add_route("OPTIONS", "/v2/", version_check)
    app.router.add_get("/health", health)
    app.router.add_get("/debug/health", debug_health)
