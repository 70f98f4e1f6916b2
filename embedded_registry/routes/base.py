"""``/v2/`` (API version check) and ``/health``."""

from __future__ import annotations

from aiohttp import web

from embedded_registry.routes.common import JSON_CONTENT_TYPE, json_response, storage


async def version_check(request: web.Request) -> web.Response:
    """``GET /v2/``: 200 ``{}`` (auth, when configured, has already been checked)."""
    return json_response(b"{}")


async def health(request: web.Request) -> web.Response:
    """200 ``{}`` while the storage is usable; 503 naming the failing check otherwise."""
    store = storage(request)
    problem = await store.health()
    if problem is None:
        return json_response(b"{}")
    return web.json_response(
        {f"storagedriver_{store.kind}": problem},
        status=503,
        content_type=JSON_CONTENT_TYPE.split(";")[0],
    )


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/v2/", version_check)
    app.router.add_get("/v2", version_check)
    app.router.add_route("OPTIONS", "/v2/", version_check)
    app.router.add_get("/health", health)
    app.router.add_get("/debug/health", health)
