"""Extension endpoints under ``/v2/_regtui/ext/`` (the spec's extension namespace).

* ``GET /v2/_regtui/ext/storage``: the storage report (:mod:`embedded_registry.usage`).
* ``POST /v2/_regtui/ext/gc`` with ``{"dry_run": bool, "delete_untagged": bool}`` (and optionally
  ``"remove_empty_repos": bool``, ``"grace_period": seconds``): a garbage collection while the
  registry keeps serving. The answer is the GC report plus ``before`` and ``after`` storage
  reports, ``removed`` (what went, or would go) and ``bytes_freed``.

Access: when auth is configured, the auth middleware has already checked the credentials (it
covers ``/v2/``); without auth, only loopback clients may call them (403 DENIED otherwise): a
registry opened to the network without auth must not let anyone sweep it.

Online safety: GC holds ``COMMIT_LOCK_KEY`` from the start of its mark to the end of its sweep,
so no manifest is committed (or deleted) meanwhile; blob uploads go on, and whatever they write
is younger than the grace period, which GC never sweeps. The file work runs in a thread.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
from typing import Any

from aiohttp import web

from embedded_registry import errors
from embedded_registry.gc import GcReport, collect_garbage
from embedded_registry.keys import COMMIT_LOCK_KEY
from embedded_registry.routes.common import config, json_response, storage
from embedded_registry.usage import storage_usage

PREFIX = "/v2/_regtui/ext"
GC_RUN_LOCK_KEY: web.AppKey[asyncio.Lock] = web.AppKey("gc_run_lock", asyncio.Lock)
"""One GC at a time (a second request waits for the first to finish)."""


def _is_loopback(remote: str | None) -> bool:
    if not remote:
        return False
    try:
        address = ipaddress.ip_address(remote.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1 on a dual-stack socket
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


def _check_access(request: web.Request) -> None:
    if config(request).auth is None and not _is_loopback(request.remote):
        raise errors.denied(
            "the regtui extension endpoints answer loopback clients only when auth is off"
        )


def _json(document: Any) -> web.Response:
    return json_response(json.dumps(document, separators=(",", ":")).encode())


async def storage_report(request: web.Request) -> web.Response:
    """``GET /v2/_regtui/ext/storage``: the usage report of the storage root."""
    _check_access(request)
    root = storage(request).layout.root
    grace = config(request).storage.gc_grace_period
    report = await asyncio.to_thread(storage_usage, root, grace_period=grace)
    return _json(report.to_json())


def _flag(body: dict[str, Any], name: str, default: bool) -> bool:
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise _bad_request(f"{name} must be true or false")
    return value


def _bad_request(detail: str) -> errors.RegistryError:
    return errors.RegistryError(
        "UNSUPPORTED", message="invalid gc request", detail=detail, status=400
    )


async def _gc_options(request: web.Request) -> dict[str, Any]:
    raw = await request.read() if request.body_exists else b""
    try:
        body = json.loads(raw) if raw.strip() else {}
    except ValueError as exc:
        raise _bad_request(f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise _bad_request("the body must be a JSON object")
    grace = body.get("grace_period", config(request).storage.gc_grace_period)
    if isinstance(grace, bool) or not isinstance(grace, int | float) or grace < 0:
        raise _bad_request("grace_period must be a number of seconds >= 0")
    return {
        "dry_run": _flag(body, "dry_run", True),
        "delete_untagged": _flag(body, "delete_untagged", False),
        "remove_empty_repos": _flag(body, "remove_empty_repos", False),
        "grace_period": float(grace),
    }


async def run_gc(request: web.Request) -> web.Response:
    """``POST /v2/_regtui/ext/gc``: a dry run (the default) or a real garbage collection."""
    _check_access(request)
    options = await _gc_options(request)
    if not options["dry_run"] and config(request).storage.read_only:
        # Read-only storage may well be mounted read-only; a dry run is still useful.
        raise errors.unsupported("the registry is read-only: only a dry run is possible")
    root = storage(request).layout.root
    grace = options["grace_period"]
    async with request.app[GC_RUN_LOCK_KEY]:
        before = await asyncio.to_thread(storage_usage, root, grace_period=grace)
        async with request.app[COMMIT_LOCK_KEY]:
            report: GcReport = await asyncio.to_thread(collect_garbage, root, **options)
        after = (
            before
            if options["dry_run"]
            else await asyncio.to_thread(storage_usage, root, grace_period=grace)
        )
    document = report.to_json()
    document.update(
        before=before.to_json(),
        after=after.to_json(),
        removed=[r for r in document["removals"] if r["removed"] or options["dry_run"]],
        bytes_freed=report.bytes_freed,
    )
    return _json(document)


def setup_routes(app: web.Application) -> None:
    """Register the extension routes on ``app`` (``server.py`` writes the serving marker)."""
    app[GC_RUN_LOCK_KEY] = asyncio.Lock()
    app.router.add_get(f"{PREFIX}/storage", storage_report)
    app.router.add_post(f"{PREFIX}/gc", run_gc)
