"""``POST /v2/_regtui/ext/scrub``: the scrub (:mod:`embedded_registry.gc.scrub`) run by the
server on its own storage, its progress streamed.

The body (optional) is ``{"repair": bool, "restart": bool}``. The answer is
``application/x-ndjson``: a ``{"type": "progress", ...}`` line at once, then at least every
second while the scrub runs (counts, phase, the share of the blobs done), then one
``{"type": "report", ...}`` line (the report of ``regtui scrub --json``) or one
``{"type": "error", "message": ...}``.

Access is the GC endpoints' (:func:`embedded_registry.routes.ext._check_access`:
administrators, or the local app with the server's admin secret), and so is the lock: one GC
or scrub at a time, a second answered 429 while one runs. A repair on a read-only registry is
refused (405 UNSUPPORTED). A client that goes away stops the scrub, whose progress is kept in
the storage: the next request resumes it. No answer names a path of the server's machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from aiohttp import web

from embedded_registry import errors
from embedded_registry.gc.scrub import Scrubber
from embedded_registry.routes.common import config, json_object_body
from embedded_registry.routes.ext import (
    GC_RUN_LOCK_KEY,
    PREFIX,
    _bad_request,
    _check_access,
    _driver,
    _flag,
    _public_report,
)
from embedded_registry.storage.driver.base import StorageDriverError

HEARTBEAT = 1.0
"""Seconds between progress lines (a client's read timeout is far longer)."""


def _line(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode() + b"\n"


async def _options(request: web.Request) -> tuple[bool, bool]:
    body = await json_object_body(request, _bad_request)
    return _flag(body, "repair", False), _flag(body, "restart", False)


async def run_scrub(request: web.Request) -> web.StreamResponse:
    """``POST /v2/_regtui/ext/scrub``: see the module docstring."""
    _check_access(request)
    repair, restart = await _options(request)
    if repair and config(request).storage.read_only:
        raise errors.unsupported("the registry is read-only: only a scrub without repair")
    driver = _driver(request)
    lock = request.app[GC_RUN_LOCK_KEY]
    if lock.locked():
        raise errors.too_many_requests("a garbage collection or a scrub is running: retry later")
    async with lock:
        response = web.StreamResponse(
            headers={"Content-Type": "application/x-ndjson", "Cache-Control": "no-store"}
        )
        await response.prepare(request)
        scrubber = Scrubber(driver, repair=repair, restart=restart)
        task = asyncio.ensure_future(scrubber.run())
        try:
            while not task.done():
                # Every second, whatever moved: a huge blob hashing for minutes is no silence
                # a client's read timeout takes for a dead server.
                progress = scrubber.state.progress.to_json()
                await response.write(_line({"type": "progress", **progress}))
                await asyncio.wait({task}, timeout=HEARTBEAT)
            try:
                report = task.result()
            except StorageDriverError as exc:
                message = _public_report(request, {"message": str(exc)})["message"]
                await response.write(_line({"type": "error", "message": message}))
            else:
                document = {"type": "report", **report.to_json(), "warning": scrubber.warning}
                await response.write(_line(_public_report(request, document)))
            await response.write_eof()
        finally:
            if not task.done():
                # The client went away: the scrub stops; its saved progress lets the next resume.
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    return response


def setup_routes(app: web.Application) -> None:
    """Register ``POST /v2/_regtui/ext/scrub`` (the app calls it when extensions are on)."""
    app.router.add_post(f"{PREFIX}/scrub", run_scrub)
