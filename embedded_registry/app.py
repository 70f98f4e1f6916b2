"""The aiohttp application: routes, error handling, auth, read-only mode, common headers."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from embedded_registry import errors, govern, pulltimes, retention
from embedded_registry.admin import APP_KEY as ADMIN_KEY
from embedded_registry.admin import AdminAccess, local_admin_middleware
from embedded_registry.auth import TOKEN_EXTRA_MISSING, AuthError, Htpasswd, htpasswd_middleware
from embedded_registry.config import Config, ConfigError, HtpasswdConfig, TokenConfig
from embedded_registry.health import APP_KEY as HEALTH_KEY
from embedded_registry.health import HEALTH_PATHS, HealthChecks, build_checks, run_checks
from embedded_registry.keys import COMMIT_LOCK_KEY, CONFIG_KEY, GC_OBSERVER_KEY, STORAGE_KEY
from embedded_registry.notifications import setup as setup_notifications
from embedded_registry.proxy import middleware as mirror_middleware
from embedded_registry.proxy import setup as setup_mirrors
from embedded_registry.routes import (
    base,
    blobs,
    catalog,
    manifests,
    referrers,
    tags,
    uploads,
)
from embedded_registry.storage.api import RegistryStorage
from embedded_registry.storage.driver.base import StorageFull
from embedded_registry.storage.factory import filesystem_storage

if TYPE_CHECKING:
    from embedded_registry.metrics import RegistryMetrics

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
API_VERSION_HEADER = "Docker-Distribution-API-Version"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
EXTENSION_PREFIX = "/v2/_regtui/"
ROOT_SPELLINGS_KEY: web.AppKey[list[bytes]] = web.AppKey("root_spellings", list)
METRICS_KEY: web.AppKey[RegistryMetrics] = web.AppKey("metrics")
METRICS_EXTRA_MISSING = (
    "http.debug.prometheus needs the metrics extra: pip install 'regtui[metrics]'"
)
READ_BUFSIZE = 2 << 20
"""aiohttp's per-connection read buffer (default 256 KiB): the socket is paused once twice
this is buffered. Blob bodies are read in 2 MiB pieces; a small buffer pauses and resumes the
socket several times per piece."""


class AccessLogger(AbstractAccessLogger):
    """aiohttp's default access-log line (``%a %t "%r" %s %b "%{Referer}i" "%{User-Agent}i"``),
    made without its per-request field table and ``extra`` dict (a third of the cost of a
    small request's log line); the time field is formatted once per second."""

    _second = -1
    _stamp = ""

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time_: float) -> None:
        started = time.time() - time_
        second = int(started)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("[%d/%b/%Y:%H:%M:%S %z]", time.localtime(second))
        headers = request.headers
        version = request.version
        self.logger.info(
            '%s %s "%s %s HTTP/%d.%d" %d %d "%s" "%s"',
            request.remote or "-",
            self._stamp,
            request.method,
            request.path_qs,
            version.major,
            version.minor,
            response.status,
            response.body_length,
            headers.get("Referer", "-"),
            headers.get("User-Agent", "-"),
        )


class MeteredAccessLogger(AccessLogger):
    """The access logger of an application with metrics (:func:`metered_access_logger` binds
    them): aiohttp calls it once the answer is sent, so it counts the answer too (a logger
    that is disabled writes no line)."""

    metrics: RegistryMetrics

    def __init__(self, logger: logging.Logger, log_format: str) -> None:
        super().__init__(logger, log_format)
        # Asked once per connection (aiohttp asks a plain logger's ``enabled`` as often).
        self._lines = logger.isEnabledFor(logging.INFO)

    @property
    def enabled(self) -> bool:
        return True

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time_: float) -> None:
        self.metrics.finished(request, response, time_)
        if self._lines:
            AccessLogger.log(self, request, response, time_)


def metered_access_logger(metrics: RegistryMetrics) -> type[AccessLogger]:
    """The access logger class of an application with ``metrics`` (aiohttp makes the logger;
    a class attribute is what reaches it, with no lookup per answer)."""
    return type("MeteredAccessLogger", (MeteredAccessLogger,), {"metrics": metrics})


def root_spellings(root: str) -> list[bytes]:
    """The storage root as it could appear in a JSON body (longest spelling first)."""
    spellings = {root, os.path.abspath(root), os.path.realpath(root)}
    encoded = {json.dumps(s.rstrip(os.sep))[1:-1].encode() for s in spellings if s.strip(os.sep)}
    return sorted(encoded, key=len, reverse=True)


def _root_spellings(request: web.Request) -> list[bytes]:
    """The storage root's spellings, worked out once per application (a ``realpath`` per
    error answer would cost more than the answer)."""
    spellings = request.app.get(ROOT_SPELLINGS_KEY)
    if spellings is None:
        config = request.app.get(CONFIG_KEY)
        return [] if config is None else root_spellings(str(config.storage.root))
    return spellings


def error_response(error: errors.RegistryError, request: web.Request | None = None) -> web.Response:
    """The OCI error JSON of ``error``; the storage root, should a detail name it, redacted."""
    body = error.body()
    for root in _root_spellings(request) if request is not None else ():
        body = body.replace(root, b"<root>")
    response = web.Response(
        status=error.status,
        body=body,
        headers={"Content-Type": "application/json; charset=utf-8", **error.headers},
    )
    if error.close_connection:
        response.force_close()
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """RegistryError -> OCI JSON; unknown routes -> Distribution's plain 404; bugs -> UNKNOWN.

    No answer names a path of the server's machine: an unexpected exception is logged here, and
    the client gets UNKNOWN without its text; a detail that mentions the storage root has it
    replaced by ``<root>``.
    """
    try:
        return await handler(request)
    except errors.RegistryError as error:
        return error_response(error, request)
    except StorageFull:
        return error_response(errors.storage_full(), request)
    except web.HTTPNotFound:
        return web.Response(status=404, text="404 page not found\n")
    except web.HTTPMethodNotAllowed:
        return error_response(errors.unsupported())
    except web.HTTPException:
        raise
    except (ConnectionResetError, asyncio.IncompleteReadError) as exc:
        log.info("%s %s: client went away: %s", request.method, request.path, exc)
        return error_response(errors.blob_upload_invalid("client disconnected"))
    except Exception:
        log.exception("unexpected error in %s %s", request.method, request.path)
        return error_response(errors.unknown())


UNHEALTHY_DETAIL = "health check failed: please see /debug/health"


def health_gate(checks: HealthChecks) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Distribution's health-checked handler: while a check fails, every route but the health
    reports answers 503 UNAVAILABLE, so a load balancer drops the replica. Reads the checks'
    last results only; the checks themselves run in the background."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path not in HEALTH_PATHS and checks.failing():
            raise errors.RegistryError("UNAVAILABLE", detail=UNHEALTHY_DETAIL)
        return await handler(request)

    return middleware


@web.middleware
async def read_only_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Distribution's read-only mode: every write under ``/v2/`` answers 405 UNSUPPORTED."""
    if (
        request.method in WRITE_METHODS
        and request.path.startswith("/v2/")
        and not request.path.startswith(EXTENSION_PREFIX)
    ):
        raise errors.unsupported()
    return await handler(request)


SERVER_HEADER = "regtui"
"""Replaces aiohttp's ``Server: Python/3.x aiohttp/3.y``: no versions advertised
(Distribution sends no Server header at all)."""


async def _add_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers[API_VERSION_HEADER] = "registry/2.0"
    response.headers["Server"] = SERVER_HEADER
    if isinstance(response, blobs.BlobFileResponse):
        # A blob's ETag is its digest, as Distribution's (If-None-Match and If-Range use it).
        response.headers["ETag"] = f'"{response.digest}"'
    for name, values in request.app[CONFIG_KEY].http.headers.items():
        for value in values:
            response.headers.add(name, value)


def _setup_extensions(app: web.Application) -> None:
    if importlib.util.find_spec("embedded_registry.routes.ext") is not None:
        from embedded_registry.routes import ext

        ext.setup_routes(app)
    if app[CONFIG_KEY].extensions.enabled:  # regtui.extensions.enabled: false turns all off
        from embedded_registry.routes import (
            ext_govern,  # the tags regtui.immutable holds: tags/list's access
            ext_retention,  # the retention log: administrators
            ext_tags,  # tags with push times: tags/list's access
        )

        ext_tags.setup_routes(app)
        ext_govern.setup_routes(app)
        ext_retention.setup_routes(app)
        if importlib.util.find_spec("embedded_registry.routes.ext") is not None:
            from embedded_registry.routes import ext_scrub  # the scrub: GC's access and lock

            ext_scrub.setup_routes(app)

        from embedded_registry.routes import ext_events  # the Events extension

        ext_events.setup_routes(app)


async def _upload_purger(app: web.Application) -> AsyncIterator[None]:
    """Remove stale uploads on ``storage.maintenance.uploadpurging``'s schedule."""
    settings = app[CONFIG_KEY].storage
    purging = settings.upload_purging
    task = None
    if purging.enabled and not settings.read_only and purging.interval > 0:
        task = asyncio.create_task(
            _purge_loop(app[STORAGE_KEY], purging.age, purging.interval, purging.dryrun)
        )
    yield
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


FIRST_PURGE_DELAY = 5.0


async def _purge_loop(storage: RegistryStorage, age: float, interval: float, dry_run: bool) -> None:
    await asyncio.sleep(min(FIRST_PURGE_DELAY, interval))
    while True:
        try:
            purged = await storage.purge_uploads(age, dry_run=dry_run)
        except Exception as exc:  # a storage hiccup must not end purging for good
            log.warning("upload purging failed: %s", exc)
        else:
            if purged:
                verb = "would purge" if dry_run else "purged"
                log.info("%s %d stale upload(s)", verb, len(purged))
        await asyncio.sleep(interval)


def auth_middleware(config: Config) -> Callable[..., Awaitable[web.StreamResponse]] | None:
    """The middleware of ``auth.htpasswd`` or ``auth.token``; AuthError when it cannot be
    served (a missing htpasswd file, no token signing key, the token extra not installed)."""
    settings = config.auth
    if isinstance(settings, HtpasswdConfig):
        return htpasswd_middleware(Htpasswd(settings.path, settings.realm))
    if isinstance(settings, TokenConfig):
        try:  # the optional token extra (PyJWT, cryptography)
            from embedded_registry import token_auth
        except ImportError:
            raise AuthError(TOKEN_EXTRA_MISSING) from None
        return token_auth.token_middleware(token_auth.TokenVerifier(settings))
    return None


def _metrics(config: Config) -> RegistryMetrics | None:
    """The app's metrics when ``http.debug.prometheus.enabled``; ConfigError without the
    ``metrics`` extra (prometheus_client)."""
    if not config.http.debug.prometheus_enabled:
        return None
    try:  # the optional metrics extra
        from embedded_registry.metrics import RegistryMetrics
    except ImportError:
        raise ConfigError(METRICS_EXTRA_MISSING) from None
    return RegistryMetrics()


def create_debug_app(config: Config, app: web.Application) -> web.Application:
    """Distribution's ``http.debug`` listener for ``app``: ``/debug/health`` (the same checks)
    and, with ``http.debug.prometheus.enabled``, the metrics on ``prometheus.path``."""
    debug = web.Application(handler_args={"access_log_class": AccessLogger})
    debug[HEALTH_KEY] = app[HEALTH_KEY]
    debug.router.add_get("/debug/health", base.debug_health)
    metrics = app.get(METRICS_KEY)
    if metrics is not None:
        from embedded_registry.metrics import metrics_handler  # loaded by _metrics already

        debug.router.add_get(config.http.debug.prometheus_path, metrics_handler(metrics))
    return debug


def create_app(config: Config, storage: RegistryStorage | None = None) -> web.Application:
    """The registry for ``config``; ``storage`` defaults to the filesystem driver on the
    configured root (``embedded_registry.storage.factory.open_storage`` opens the configured
    driver, s3 too)."""
    admin = AdminAccess()
    storage = storage if storage is not None else filesystem_storage(config)
    checks = build_checks(config.health, storage)
    metrics = _metrics(config)
    middlewares: list[Callable[..., Awaitable[web.StreamResponse]]] = [error_middleware]
    if metrics is not None:  # outermost: it times and counts every answer, errors included
        middlewares.insert(0, metrics.middleware())
    if checks.checks:
        middlewares.append(health_gate(checks))
    middlewares.append(local_admin_middleware(admin))
    authentication = auth_middleware(config)
    if authentication is not None:
        middlewares.append(authentication)
    if config.storage.read_only:
        middlewares.append(read_only_middleware)
    if config.proxies:  # pull-through caches: after auth, before the routes
        middlewares.append(mirror_middleware)
    logger_class = AccessLogger if metrics is None else metered_access_logger(metrics)
    app = web.Application(
        middlewares=middlewares,
        handler_args={"read_bufsize": READ_BUFSIZE, "access_log_class": logger_class},
    )
    app[CONFIG_KEY] = config
    app[ROOT_SPELLINGS_KEY] = root_spellings(str(config.storage.root))
    app[ADMIN_KEY] = admin  # server.py writes its secret where local clients find it
    app[STORAGE_KEY] = storage
    app[HEALTH_KEY] = checks
    if metrics is not None:
        app[METRICS_KEY] = metrics
        app[GC_OBSERVER_KEY] = metrics.gc_finished
        metrics.attach(app, storage)  # driver operations, bytes per repository
    app.cleanup_ctx.append(run_checks)
    app[COMMIT_LOCK_KEY] = asyncio.Lock()
    app.on_response_prepare.append(_add_headers)
    app.cleanup_ctx.append(_upload_purger)
    app.cleanup_ctx.append(pulltimes.pull_time_flusher)  # pull times: batched, flushed at exit
    app.cleanup_ctx.append(retention.scheduled_retention)  # regtui.retention's runs
    setup_notifications(app, config, storage)  # events: webhooks' journal, Events extension
    govern.install(app, config, storage)  # regtui.immutable, regtui.quota
    _setup_extensions(app)
    if config.proxies:
        setup_mirrors(app, config)
    for module in (base, catalog, uploads, blobs, manifests, tags, referrers):
        module.setup_routes(app)
    return app
