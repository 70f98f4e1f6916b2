"""``/v2/_regtui/ext/retention``: the log of the scheduled retention (``regtui.retention``).

* ``GET`` (``?n=20``, at most 200): ``{"configured": {...} | null, "runs": [...]}``, the newest
  runs first, every replica's (the records are in the storage: see
  :mod:`embedded_registry.retention`). A run says when it started and finished, whether it was
  a dry run, what the plan counted (``planned``: tags going, manifests deleted, bytes), the
  plan itself, what was applied (``applied``), what GC freed (``gc.bytes_freed``), and
  ``skipped`` (another replica was running) or ``error``.
* ``POST`` with ``{"dry_run": bool}`` (optional; the configured mode by default): one run now,
  answered with its record (while another replica runs retention, the record says
  ``skipped``).

Administrators only, as the other extension endpoints (:mod:`embedded_registry.admin`).
"""

from __future__ import annotations

import json

from aiohttp import web

from embedded_registry import errors
from embedded_registry.admin import caller
from embedded_registry.keys import COMMIT_LOCK_KEY
from embedded_registry.retention import (
    KEEP_RUNS,
    describe_settings,
    read_runs,
    run_retention,
)
from embedded_registry.routes.common import config, json_object_body, json_response, storage
from embedded_registry.routes.ext import DENIED_DETAIL, PREFIX
from embedded_registry.storage.store import DriverStorage

PATH = f"{PREFIX}/retention"


def _bad_request(detail: str) -> errors.RegistryError:
    return errors.RegistryError(
        "UNSUPPORTED", message="invalid retention request", detail=detail, status=400
    )


def _check_access(request: web.Request) -> None:
    if not caller(request, config(request).extensions.admins).admin:
        raise errors.denied(DENIED_DETAIL)


def _storage(request: web.Request) -> DriverStorage:
    store = storage(request)
    if not isinstance(store, DriverStorage):
        raise errors.unsupported(f"no retention on the {store.kind} storage")
    return store


async def retention_log(request: web.Request) -> web.Response:
    """``GET /v2/_regtui/ext/retention``: the settings and the newest runs."""
    _check_access(request)
    text = request.query.get("n", "20")
    if not text.isdigit() or not 0 < int(text) <= KEEP_RUNS:
        raise _bad_request(f"n must be a whole number from 1 to {KEEP_RUNS}")
    runs = await read_runs(_storage(request), int(text))
    document = {"configured": describe_settings(config(request).retention), "runs": runs}
    return json_response(json.dumps(document, separators=(",", ":")).encode())


async def run_now(request: web.Request) -> web.Response:
    """``POST /v2/_regtui/ext/retention``: one run now (see the module docstring)."""
    _check_access(request)
    settings = config(request).retention
    if settings is None:
        raise errors.unsupported("regtui.retention is not configured on this registry")
    body = await json_object_body(request, _bad_request)
    dry_run = body.get("dry_run", settings.dry_run)
    if not isinstance(dry_run, bool):
        raise _bad_request("dry_run must be true or false")
    if not dry_run and settings.dry_run:
        raise errors.denied(
            "regtui.retention.dryrun is true: only a dry run may be asked for (change the "
            "configuration to delete)"
        )
    record = await run_retention(
        _storage(request),
        config(request),
        commit_lock=request.app[COMMIT_LOCK_KEY],
        dry_run=dry_run,
        trigger="request",
    )
    return json_response(json.dumps(record, separators=(",", ":")).encode())


def setup_routes(app: web.Application) -> None:
    app.router.add_get(PATH, retention_log)
    app.router.add_post(PATH, run_now)
