"""Helpers shared by the handlers: typed access to app state, URLs, parameters, bodies."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from embedded_registry import errors, names
from embedded_registry.config import Config
from embedded_registry.keys import CONFIG_KEY, STORAGE_KEY
from embedded_registry.storage.api import RegistryStorage

JSON_CONTENT_TYPE = "application/json; charset=utf-8"


def storage(request: web.Request) -> RegistryStorage:
    return request.app[STORAGE_KEY]


def config(request: web.Request) -> Config:
    return request.app[CONFIG_KEY]


def repo_name(request: web.Request) -> str:
    return names.check_name(request.match_info["name"])


def absolute_url(request: web.Request, path: str) -> str:
    """``path`` on this registry as the client reached it (Distribution sends absolute URLs)."""
    scheme = request.headers.get("X-Forwarded-Proto", request.scheme).split(",")[0].strip()
    host = request.headers.get("X-Forwarded-Host", request.host).split(",")[0].strip()
    return f"{scheme}://{host}{path}"


def require_delete(request: web.Request) -> None:
    """DELETE answers 405 UNSUPPORTED unless ``storage.delete.enabled`` (as Distribution)."""
    if not config(request).storage.delete_enabled:
        raise errors.unsupported()


def json_response(
    body: bytes, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    response = web.Response(body=body, status=status, headers=headers or {})
    response.headers["Content-Type"] = JSON_CONTENT_TYPE
    return response


def media_type(header: str | None) -> str:
    """The media type of a Content-Type header, without parameters."""
    return (header or "").split(";", 1)[0].strip().lower()


async def read_limited(request: web.Request, limit: int) -> bytes:
    """The request body, or MANIFEST_INVALID (connection closed) when it exceeds ``limit``."""
    too_large = errors.manifest_invalid("http: request body too large")
    too_large.close_connection = True
    length = request.content_length
    if length is not None and length > limit:
        raise too_large
    body = bytearray()
    async for chunk in request.content.iter_any():
        body += chunk
        if len(body) > limit:
            raise too_large
    return bytes(body)


def page_size(request: web.Request, *, default: int | None) -> int | None:
    """The ``n`` query parameter; ``default`` when it is absent, not a number or negative.

    As Distribution 2.8 (checked against Debian's docker-registry 2.8.2): it ignores a
    malformed ``n`` of ``_catalog`` (100 repositories) and of ``tags/list`` (every tag),
    where Distribution 3 answers 400 PAGINATION_NUMBER_INVALID.
    """
    raw = request.query.get("n")
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        return default
    return value if value >= 0 else default


def next_link(request: web.Request, last: str, count: int) -> str:
    """Distribution's ``Link`` header: ``<path?last=X&n=N>; rel="next"`` (query keys sorted)."""
    query = dict(request.query)
    query["last"] = last
    query["n"] = str(count)
    return f'<{request.path}?{urlencode(sorted(query.items()))}>; rel="next"'


async def json_object_body(
    request: web.Request, bad_request: Callable[[str], errors.RegistryError]
) -> dict[str, Any]:
    """An administrative request's body: a JSON object, or ``{}`` when there is none (bounded
    by aiohttp's ``client_max_size``: 413 beyond it); ``bad_request(detail)`` otherwise."""
    raw = await request.read() if request.body_exists else b""
    try:
        body = json.loads(raw) if raw.strip() else {}
    except ValueError as exc:
        raise bad_request(f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise bad_request("the body must be a JSON object")
    return body
