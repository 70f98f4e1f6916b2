"""Extension endpoints under ``/v2/_regtui/ext/`` (the spec's extension namespace).

* ``GET /v2/_regtui/ext/storage``: the storage report (:mod:`embedded_registry.usage`).
* ``POST /v2/_regtui/ext/gc`` with ``{"dry_run": bool, "delete_untagged": bool}`` (and optionally
  ``"remove_empty_repos": bool``, ``"grace_period": seconds``): a garbage collection while the
  registry keeps serving. The answer is the GC report plus ``before`` and ``after`` storage
  reports, ``removed`` (what went, or would go) and ``bytes_freed``.

Access (:mod:`embedded_registry.admin`): administrators only, never anonymous, whatever the
client's address (nginx on the same host makes every request come from 127.0.0.1):

* a request carrying the server's local admin secret (same machine, zero setup);
* with ``auth.htpasswd``: a user named in ``regtui.extensions.admins``; any other user gets 403
  DENIED;
* anyone else: 403 DENIED (401 first when auth is on and no credentials came).

``regtui.extensions.enabled: false`` does not register the routes: 404, as any unknown route.
Only an administrator may ask for a ``grace_period`` below the configured one (checked here too,
though only administrators get in today). A real GC with ``delete_untagged`` deletes manifests, so
it answers 405 UNSUPPORTED where ``storage.delete.enabled`` is false, like every other delete; a
dry run, and a GC of unreferenced blobs only, are still allowed (as Distribution's offline
``garbage-collect``).

No answer names a path of the server's machine: the storage root is left out of the reports, the
paths of GC removals are relative to it (``docker/registry/v2/...``), and any message that
mentions the root (a problem GC met) has it replaced by ``<root>``.

Online safety: GC holds ``COMMIT_LOCK_KEY`` from the start of its mark to the end of its sweep,
so no manifest is committed (or deleted) meanwhile; blob uploads go on, and whatever they write
is younger than the grace period, which GC never sweeps. The file work runs in a thread.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

from aiohttp import web

from embedded_registry import errors, govern
from embedded_registry.admin import Caller, caller
from embedded_registry.gc import GcReport
from embedded_registry.gc.collect import collect_garbage_on
from embedded_registry.gc.scan import storage_prefix
from embedded_registry.keys import COMMIT_LOCK_KEY, CONFIG_KEY, GC_OBSERVER_KEY
from embedded_registry.routes.common import config, json_object_body, json_response, storage
from embedded_registry.storage.driver.base import StorageDriver
from embedded_registry.storage.lease import GcBusy
from embedded_registry.storage.store import DriverStorage
from embedded_registry.usage import UsageReport, usage_on

PREFIX = "/v2/_regtui/ext"
GC_RUN_LOCK_KEY: web.AppKey[asyncio.Lock] = web.AppKey("gc_run_lock", asyncio.Lock)
"""One GC at a time (a second request waits for the first to finish)."""


DENIED_DETAIL = (
    "the regtui extension endpoints are administrative: call them on the registry's own machine "
    "over loopback (the client sends the local admin secret), or as a user named in "
    "regtui.extensions.admins"
)


def _check_access(request: web.Request) -> Caller:
    """The caller, when an administrator; 403 DENIED otherwise."""
    who = caller(request, config(request).extensions.admins)
    if not who.admin:
        raise errors.denied(DENIED_DETAIL)
    return who


def _scrub(value: Any, roots: tuple[str, ...]) -> Any:
    """``value`` with every mention of the storage root replaced (no machine path goes out)."""
    if isinstance(value, str):
        for root in roots:
            if root in value:
                value = value.replace(root + os.sep, "").replace(root, "<root>")
        return value
    if isinstance(value, dict):
        return {key: _scrub(item, roots) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(item, roots) for item in value]
    return value


def _public(document: dict[str, Any], root: Path) -> dict[str, Any]:
    """A report as a remote client may see it: no ``root``, paths relative to the root."""
    document = {key: value for key, value in document.items() if key != "root"}
    spellings = {str(root), os.path.abspath(root), os.path.realpath(root)}
    # The longest first, so that a spelling that contains another one is replaced whole.
    roots = tuple(sorted((s.rstrip(os.sep) for s in spellings if s.rstrip(os.sep)), key=len))
    return _scrub(document, roots[::-1])


def _driver(request: web.Request) -> StorageDriver:
    store = storage(request)
    if not isinstance(store, DriverStorage):
        raise errors.unsupported(f"no GC on the {store.kind} storage")
    return store.driver


def _where(driver: StorageDriver) -> str:
    """How reports name the storage: its local root, or ``<driver>:``."""
    return storage_prefix(driver)


async def _usage(request: web.Request, grace: float) -> UsageReport:
    driver = _driver(request)
    report: UsageReport = await usage_on(driver, grace_period=grace, where=_where(driver))
    return report


async def _collect(request: web.Request, options: dict[str, Any]) -> GcReport:
    driver = _driver(request)
    try:
        return await collect_garbage_on(
            driver, where=_where(driver), observe=request.app.get(GC_OBSERVER_KEY), **options
        )
    except GcBusy as exc:
        raise errors.too_many_requests(str(exc)) from None


def _public_report(request: web.Request, document: dict[str, Any]) -> dict[str, Any]:
    where = _where(_driver(request))
    if not where.endswith(":"):  # the local root the reports name
        return _public(document, Path(where))
    # Driver paths are "<driver>:/docker/registry/v2/...": relative to the storage, as above.
    document = {key: value for key, value in document.items() if key != "root"}
    return _scrub(document, (where,))  # type: ignore[no-any-return]


def _json(document: Any) -> web.Response:
    return json_response(json.dumps(document, separators=(",", ":")).encode())


async def storage_report(request: web.Request) -> web.Response:
    """``GET /v2/_regtui/ext/storage``: the usage report of the storage root."""
    _check_access(request)
    grace = config(request).storage.gc_grace_period
    report = await _usage(request, grace)
    return _json(govern.with_quotas(request, _public_report(request, report.to_json())))


def _flag(body: dict[str, Any], name: str, default: bool) -> bool:
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise _bad_request(f"{name} must be true or false")
    return value


def _bad_request(detail: str) -> errors.RegistryError:
    return errors.RegistryError(
        "UNSUPPORTED", message="invalid gc request", detail=detail, status=400
    )


async def _gc_options(request: web.Request, who: Caller) -> dict[str, Any]:
    body = await json_object_body(request, _bad_request)
    configured = config(request).storage.gc_grace_period
    grace = body.get("grace_period", configured)
    if isinstance(grace, bool) or not isinstance(grace, int | float) or grace < 0:
        raise _bad_request("grace_period must be a number of seconds >= 0")
    if grace < configured and not who.admin:
        raise errors.denied(
            f"only an administrator may ask for a grace period below the configured "
            f"{configured:g} s"
        )
    return {
        "dry_run": _flag(body, "dry_run", True),
        "delete_untagged": _flag(body, "delete_untagged", False),
        "remove_empty_repos": _flag(body, "remove_empty_repos", False),
        "grace_period": float(grace),
    }


async def run_gc(request: web.Request) -> web.Response:
    """``POST /v2/_regtui/ext/gc``: a dry run (the default) or a real garbage collection."""
    who = _check_access(request)
    options = await _gc_options(request, who)
    settings = config(request).storage
    if not options["dry_run"] and settings.read_only:
        # Read-only storage may well be mounted read-only; a dry run is still useful.
        raise errors.unsupported("the registry is read-only: only a dry run is possible")
    if not options["dry_run"] and options["delete_untagged"] and not settings.delete_enabled:
        raise errors.unsupported(
            "storage.delete.enabled is false: a GC that deletes untagged manifests is refused "
            "like every other delete (a dry run, or a GC of unreferenced blobs only, is allowed)"
        )
    grace = options["grace_period"]
    async with request.app[GC_RUN_LOCK_KEY]:
        before = await _usage(request, grace)
        async with request.app[COMMIT_LOCK_KEY]:
            report = await _collect(request, options)
        after = before if options["dry_run"] else await _usage(request, grace)
    document = report.to_json()
    document.update(
        before=before.to_json(),
        after=after.to_json(),
        removed=[r for r in document["removals"] if r["removed"] or options["dry_run"]],
        bytes_freed=report.bytes_freed,
    )
    return _json(_public_report(request, document))


def setup_routes(app: web.Application) -> None:
    """Register the extension routes on ``app`` unless ``regtui.extensions.enabled`` is false."""
    app[GC_RUN_LOCK_KEY] = asyncio.Lock()
    if not app[CONFIG_KEY].extensions.enabled:
        return
    app.router.add_get(f"{PREFIX}/storage", storage_report)
    app.router.add_post(f"{PREFIX}/gc", run_gc)
