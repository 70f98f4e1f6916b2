"""Pull-through caches (``proxy`` and ``regtui.proxy`` in config.yml) in front of the routes.

:func:`middleware` sits after authentication: for a repository a cache covers (every one with
Distribution's ``proxy``, those under ``<namespace>/`` with ``regtui.proxy``) it makes a pulled
manifest or blob present in the storage (:mod:`embedded_registry.proxy.cache`), then lets the
ordinary handler serve it, so GC, ``du`` and the storage panels see cached repositories as any
other; the first GET of a blob is streamed to its client while it is written and verified
(:mod:`embedded_registry.proxy.stream`: the stream is cut short when the digest is wrong).
Writes to such a repository answer 405 UNSUPPORTED, as registry:2 in proxy mode does;
``tags/list`` is the upstream's while it answers, the cached tags otherwise.
``/v2/<name>/_regtui/cache`` (:func:`cache_report`) says what is cached and when it expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

from aiohttp import web

from embedded_registry import errors, names
from embedded_registry.config import Config
from embedded_registry.keys import COMMIT_LOCK_KEY, CONFIG_KEY, STORAGE_KEY
from embedded_registry.proxy.cache import Mirror, expire
from embedded_registry.proxy.schedule import MANIFEST, Schedule

__all__ = ["Mirrors", "middleware", "setup"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
EXTENSION_PREFIX = "/v2/_regtui/"
_MANIFEST = re.compile(r"/v2/(?P<name>.+)/manifests/(?P<reference>[^/]+)")
_UPLOAD = re.compile(r"/v2/(?P<name>.+)/blobs/uploads(?:/[^/]*)?")
_BLOB = re.compile(r"/v2/(?P<name>.+)/blobs/(?P<digest>[^/]+)")
_TAGS = re.compile(r"/v2/(?P<name>.+)/tags/list")


class Mirrors:
    """The configured caches, found by repository name (the longest namespace wins; an empty
    one, Distribution's ``proxy``, covers every repository)."""

    def __init__(self, mirrors: list[Mirror], schedule: Schedule) -> None:
        self.schedule = schedule
        self.mirrors = sorted(mirrors, key=lambda m: len(m.settings.namespace), reverse=True)

    def find(self, name: str) -> Mirror | None:
        for mirror in self.mirrors:
            namespace = mirror.settings.namespace
            if not namespace or name.startswith(namespace + "/"):
                return mirror
        return None

    async def close(self) -> None:
        for mirror in self.mirrors:
            await mirror.close()


MIRRORS_KEY: web.AppKey[Mirrors] = web.AppKey("mirrors", Mirrors)


def _write_target(path: str) -> str | None:
    for pattern in (_UPLOAD, _MANIFEST, _BLOB):
        match = pattern.fullmatch(path)
        if match is not None:
            return match.group("name")
    return None


@web.middleware
async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    mirrors = request.app.get(MIRRORS_KEY)
    path = request.path
    if mirrors is None or not path.startswith("/v2/") or path.startswith(EXTENSION_PREFIX):
        return await handler(request)
    if request.method in WRITE_METHODS:
        name = _write_target(path)
        if name is not None and mirrors.find(name) is not None:
            raise errors.unsupported("this repository is a pull-through cache: it is read-only")
        return await handler(request)
    if request.method not in ("GET", "HEAD"):
        return await handler(request)
    match = _MANIFEST.fullmatch(path)
    if match is not None:
        mirror = _mirror(mirrors, match.group("name"))
        reference = match.group("reference")
        valid = names.is_valid_digest(reference) or names.is_valid_tag(reference)
        if mirror is not None and valid:
            await mirror.ensure_manifest(match.group("name"), reference)
        return await handler(request)
    match = _BLOB.fullmatch(path)
    if match is not None:
        return await _blob(request, handler, mirrors, match.group("name"), match.group("digest"))
    match = _TAGS.fullmatch(path)
    if match is not None and request.method == "GET":
        mirror = _mirror(mirrors, match.group("name"))
        if mirror is not None:
            page = await mirror.tags_page(match.group("name"), request.query_string)
            if page is not None:
                body, link = page
                headers = {"Content-Type": "application/json; charset=utf-8"}
                if link:
                    headers["Link"] = link
                return web.Response(body=body, headers=headers)
    return await handler(request)


def _mirror(mirrors: Mirrors, name: str) -> Mirror | None:
    return mirrors.find(name) if names.is_valid_name(name) else None


async def _blob(
    request: web.Request, handler: Handler, mirrors: Mirrors, name: str, digest: str
) -> web.StreamResponse:
    mirror = _mirror(mirrors, name)
    if mirror is None or not names.is_valid_digest(digest):
        return await handler(request)
    grace = request.app[CONFIG_KEY].storage.gc_grace_period
    if request.method == "HEAD":
        if await request.app[STORAGE_KEY].served_blob(name, digest, grace) is not None:
            return await handler(request)
        size = await mirror.blob_size(name, digest)
        headers = {
            "Content-Type": "application/octet-stream",
            "Docker-Content-Digest": digest,
            "ETag": f'"{digest}"',
            "Content-Length": str(size),
        }
        return web.Response(status=200, headers=headers)
    if "Range" not in request.headers and "If-None-Match" not in request.headers:
        streamed = await mirror.stream_blob(request, name, digest, grace)
        if streamed is not None:
            return streamed
        return await handler(request)
    await mirror.ensure_blob(name, digest, grace)
    return await handler(request)


async def _run(app: web.Application) -> AsyncIterator[None]:
    """Load the expiry schedule and expire cached content as its time comes."""
    mirrors = app[MIRRORS_KEY]
    storage, lock = app[STORAGE_KEY], app[COMMIT_LOCK_KEY]
    await mirrors.schedule.load()
    task = asyncio.create_task(mirrors.schedule.run(functools.partial(expire, storage, lock)))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    with contextlib.suppress(Exception):
        await mirrors.schedule.close()
    await mirrors.close()


CACHE_PATH = "/v2/{name:.+}/_regtui/cache"


def _rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def cache_report(request: web.Request) -> web.Response:
    """``GET /v2/<name>/_regtui/cache``: what of a cached repository is cached and when it
    expires (the repository's pull access, as ``tags/list``): its upstream (URL and name, no
    credentials), the ttl, each cached tag with its digest and expiry, and every scheduled
    manifest and blob. NAME_UNKNOWN for a repository no cache covers."""
    name = names.check_name(request.match_info["name"])
    mirrors = request.app[MIRRORS_KEY]
    mirror = mirrors.find(name)
    if mirror is None:
        raise errors.name_unknown(name)
    storage = request.app[STORAGE_KEY]
    schedule = mirrors.schedule

    def expires(digest: str) -> str | None:
        when = schedule.expiry(name, digest)
        return None if when is None else _rfc3339(when)

    tags = []
    for tag in await storage.tags(name) or []:
        try:
            digest, _, _ = await storage.get_manifest(name, tag)
        except errors.RegistryError:
            continue
        tags.append({"tag": tag, "digest": digest, "expires": expires(digest)})
    entries = [
        {
            "digest": entry.key.rpartition("@")[2],
            "kind": "manifest" if entry.kind == MANIFEST else "blob",
            "expires": _rfc3339(entry.expiry),
        }
        for key, entry in sorted(schedule.entries.items())
        if key.rpartition("@")[0] == name
    ]
    document = {
        "name": name,
        "upstream": {
            "url": mirror.settings.remoteurl,
            "name": mirror.upstream.remote_name(name),
            "namespace": mirror.settings.namespace,
        },
        "ttl_seconds": mirror.settings.ttl,
        "tags": tags,
        "scheduled": entries,
    }
    return web.json_response(document, dumps=lambda d: json.dumps(d, separators=(",", ":")))


def setup(app: web.Application, config: Config) -> None:
    """Serve ``config``'s caches on ``app`` (whose storage and commit lock are set), and,
    unless ``regtui.extensions.enabled`` is false, the cache report of a repository."""
    storage, lock = app[STORAGE_KEY], app[COMMIT_LOCK_KEY]
    schedule = Schedule(storage.read_state, storage.write_state)
    mirrors = [Mirror(settings, storage, lock, schedule) for settings in config.proxies]
    app[MIRRORS_KEY] = Mirrors(mirrors, schedule)
    app.cleanup_ctx.append(_run)
    if config.extensions.enabled:
        app.router.add_get(CACHE_PATH, cache_report)
