"""Run the registry: bind, announce ``listening on URL`` on stdout, serve until a signal.

Once the port is known, the server writes its fresh local admin secret where clients on the same
machine find it (:mod:`embedded_registry.admin`) and removes it on a clean shutdown. The secret
itself is never logged; where it lives is.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import ssl
import sys
import time
from typing import TextIO

from aiohttp import web

from embedded_registry import admin, heap
from embedded_registry.app import create_app, create_debug_app
from embedded_registry.auth import AuthError
from embedded_registry.config import Config, ConfigError
from embedded_registry.gc import (
    recover_interrupted_sweep,
    remove_serving_marker,
    write_serving_marker,
)
from embedded_registry.storage.api import RegistryStorage
from embedded_registry.storage.driver.filesystem import FilesystemDriver
from embedded_registry.storage.factory import (
    StorageUnavailable,
    filesystem_storage,
    open_storage,
)
from embedded_registry.storage.paths import Layout
from embedded_registry.storage.store import DriverStorage

log = logging.getLogger(__name__)

_LEVELS = {
    "error": logging.ERROR,
    "warn": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
}


class StartupError(Exception):
    """The registry cannot start; the message is one line for the user."""


class _LogFormatter(logging.Formatter):
    """logging's default time stamp, made with ``strftime`` once a second instead of once a
    line (an access-log line per request)."""

    _second = -1
    _stamp = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        second = int(record.created)
        if second != self._second:
            self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", self.converter(second))
            self._second = second
        return f"{self._stamp},{int(record.msecs):03d}"


def configure_logging(level: str, stream: TextIO | None = None) -> None:
    # What no line shows is not gathered for each record (the logging HOWTO's "Optimization"):
    # the caller's frame, the thread, the process.
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(_LogFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=_LEVELS.get(level, logging.INFO), handlers=[handler], force=True)


def check_root(config: Config) -> DriverStorage:
    """Create (unless read-only) and check the storage root; StartupError when unusable.
    The storage served is the filesystem driver's on that root."""
    storage = filesystem_storage(config)
    root = config.storage.root
    if config.storage.read_only:
        if not root.is_dir() or not os.access(root, os.R_OK | os.X_OK):
            raise StartupError(f"storage root {root} is not a readable directory")
        return storage
    layout = Layout(root)
    try:
        layout.blobs_dir.mkdir(parents=True, exist_ok=True)
        layout.repositories_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StartupError(f"cannot create storage root {root}: {exc.strerror or exc}") from None
    for directory in (root, layout.blobs_dir, layout.repositories_dir):
        if not os.access(directory, os.R_OK | os.W_OK | os.X_OK):
            raise StartupError(f"storage root {root} is not writable ({directory})")
    return storage


def ssl_context(config: Config) -> ssl.SSLContext | None:
    tls = config.http.tls
    if tls is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(str(tls.certificate), str(tls.key))
    except (OSError, ssl.SSLError) as exc:
        raise StartupError(f"cannot load TLS certificate/key: {exc}") from None
    return context


def _display_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


async def serve(config: Config, announce: TextIO | None = None) -> None:
    """Serve until SIGTERM or SIGINT; raise StartupError when the server cannot start."""
    context = ssl_context(config)
    if config.storage.s3 is None:
        check_root(config)
    try:
        storage = await open_storage(config)  # the filesystem or the s3 driver
    except StorageUnavailable as exc:
        raise StartupError(str(exc)) from None
    try:
        await _serve(config, storage, context, announce)
    finally:
        await storage.close()


def _access_log(config: Config) -> logging.Logger | None:
    """The access log's logger; with metrics on and the access log off, a silent one (aiohttp
    calls the access logger after each answer, which is where the metrics count it)."""
    if not config.log.accesslog_disabled:
        return logging.getLogger("registry.access")
    if not config.http.debug.prometheus_enabled:
        return None
    quiet = logging.getLogger("registry.access.disabled")
    quiet.disabled = True  # isEnabledFor is then false: no line is formatted
    return quiet


def _where(config: Config) -> str:
    s3 = config.storage.s3
    if s3 is None:
        return str(config.storage.root)
    root = s3.rootdirectory.strip("/")
    return f"s3 bucket {s3.bucket}" + (f" under {root}/" if root else "")


async def _serve(
    config: Config,
    storage: RegistryStorage,
    context: ssl.SSLContext | None,
    announce: TextIO | None,
) -> None:
    local = config.storage.s3 is None
    try:
        app = create_app(config, storage)
    except (AuthError, ConfigError) as exc:
        raise StartupError(str(exc)) from None
    runner = web.AppRunner(app, access_log=_access_log(config), handle_signals=False)
    await runner.setup()
    host = config.http.host
    site = web.TCPSite(runner, host, config.http.port, ssl_context=context, reuse_address=True)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        if exc.errno == errno.EADDRINUSE:
            raise StartupError(f"address {host}:{config.http.port} is already in use") from None
        raise StartupError(f"cannot listen on {host}:{config.http.port}: {exc.strerror}") from None
    try:
        debug_runner = await _start_debug(config, app)
    except StartupError:
        await runner.cleanup()
        raise
    # The bound address gives the real port when port 0 was asked for.
    addresses = runner.addresses
    port = int(addresses[0][1]) if addresses else config.http.port
    url = f"{config.scheme}://{_display_host(host)}:{port}"
    out = announce or sys.stdout
    print(f"listening on {url}", file=out, flush=True)
    marker = None
    if local and not config.storage.read_only:
        with contextlib.suppress(OSError):
            marker = write_serving_marker(config.storage.root, url)
        for restored in await recover_interrupted_sweep(FilesystemDriver(config.storage.root)):
            log.warning("restored %s, left aside by an interrupted garbage collection", restored)
    access = app[admin.APP_KEY]
    if config.extensions.enabled:
        try:
            secret_file = admin.write_secret(access, port)
        except OSError as exc:
            log.warning(
                "cannot write the local admin secret (%s): the extension endpoints answer "
                "administrators with credentials only",
                exc.strerror or exc,
            )
        else:
            log.info("local admin secret for port %d in %s", port, secret_file)
    for warning in config.warnings:
        log.warning("config: %s", warning)
    log.info("serving %s from %s", url, _where(config))

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        log.info("shutting down")
        admin.remove_secret(access)
        if marker is not None:
            remove_serving_marker(config.storage.root)
        if debug_runner is not None:
            await debug_runner.cleanup()
        await runner.cleanup()


async def _start_debug(config: Config, app: web.Application) -> web.AppRunner | None:
    """Distribution's debug listener on ``http.debug.addr`` (plain HTTP, as Distribution's),
    or ``None`` when not configured; StartupError when it cannot bind."""
    addr = config.http.debug.addr
    if addr is None:
        return None
    host, port = addr
    runner = web.AppRunner(create_debug_app(config, app), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, reuse_address=True).start()
    except OSError as exc:
        await runner.cleanup()
        if exc.errno == errno.EADDRINUSE:
            raise StartupError(f"http.debug.addr {host}:{port} is already in use") from None
        raise StartupError(
            f"cannot listen on http.debug.addr {host}:{port}: {exc.strerror}"
        ) from None
    bound = runner.addresses
    shown = int(bound[0][1]) if bound else port
    log.info("debug listener on http://%s:%d", _display_host(host), shown)
    return runner


def run(config: Config, *, prog: str = "registry") -> int:
    """Serve ``config``; print a one-line error and return 1 when the server cannot start."""
    configure_logging(config.log.level)
    heap.tune()
    try:
        asyncio.run(serve(config))
    except StartupError as exc:
        message = " ".join(str(exc).split())  # one line, whatever a library put in it
        print(f"{prog}: error: {message}", file=sys.stderr)
        return 1
    return 0
