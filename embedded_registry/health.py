"""Distribution's health checks: periodic probes whose failures take the replica out of a load
balancer.

Each configured check (``health.storagedriver``, ``health.file[]``, ``health.http[]``,
``health.tcp[]``) runs as a background task of the application (``cleanup_ctx``), never in the
request path; the request path only reads :meth:`HealthChecks.failing`. As in Distribution
(``registry/health``):

- a check with a ``threshold`` fails after that many consecutive failures (0 or 1: the first)
  and passes again at its first success, reporting the last error while failing;
- a file check fails while its file exists ("file exists"); an HTTP check sends ``HEAD uri``
  and fails on another status than ``statuscode`` or on no answer; a TCP check fails when the
  connection cannot be opened; the storage driver check fails when the driver says the
  storage is unusable;
- ``/debug/health`` answers 503 with ``{"check name": "error text"}`` while a check fails,
  200 ``{}`` otherwise, and every other route answers 503 ``UNAVAILABLE`` ("health check failed:
  please see /debug/health") so a load balancer drops the replica.

Two differences, on purpose: each check runs once at start (Distribution waits one interval),
and a check without a ``timeout`` gets its interval as one (Distribution waits forever, so a
hung probe would never report).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from embedded_registry.config import FileCheck, HealthConfig, HttpCheck, TcpCheck, parse_addr
from embedded_registry.storage.api import RegistryStorage

log = logging.getLogger(__name__)

Probe = Callable[[], Awaitable[str | None]]
"""One run of a check: ``None`` when it passes, else the error text."""

HEALTH_PATHS = frozenset({"/debug/health", "/health"})
"""Routes that report health themselves: never answered by the unavailable gate."""


@dataclass
class Check:
    """A named periodic probe and its threshold state."""

    name: str
    probe: Probe
    interval: float
    timeout: float
    threshold: int = 0
    failures: int = 0
    error: str | None = None

    @property
    def failing(self) -> bool:
        return self.error is not None and self.failures >= max(self.threshold, 1)

    def update(self, error: str | None) -> None:
        """Distribution's threshold updater: a success resets, a failure counts up."""
        if error is None:
            if self.failing:
                log.info("health check %s passes again", self.name)
            self.failures, self.error = 0, None
            return
        was_failing = self.failing
        self.failures = min(self.failures + 1, max(self.threshold, 1))
        self.error = error
        if self.failing and not was_failing:
            log.warning("health check %s fails: %s", self.name, error)

    async def run_once(self) -> None:
        try:
            error = await asyncio.wait_for(self.probe(), self.timeout)
        except TimeoutError:
            error = f"timed out after {self.timeout:g}s"
        except Exception as exc:  # a probe's bug must not end the check: it fails
            log.exception("health check %s raised", self.name)
            error = f"check raised {type(exc).__name__}"
        self.update(error)

    async def loop(self) -> None:
        while True:
            await self.run_once()
            await asyncio.sleep(self.interval)


class HealthChecks:
    """The application's checks; :meth:`failing` is what the request path reads."""

    def __init__(self, checks: list[Check]) -> None:
        self.checks = checks

    def failing(self) -> dict[str, str]:
        return {check.name: check.error for check in self.checks if check.failing and check.error}


APP_KEY: web.AppKey[HealthChecks] = web.AppKey("health_checks", HealthChecks)


def storage_probe(storage: RegistryStorage) -> Probe:
    async def probe() -> str | None:
        return await storage.health()

    return probe


def file_probe(path: str) -> Probe:
    async def probe() -> str | None:
        exists = await asyncio.to_thread(os.path.exists, path)  # a stat, as Distribution's
        return "file exists" if exists else None

    return probe


def http_probe(check: HttpCheck, timeout: float) -> Probe:
    headers = list(check.headers)

    async def probe() -> str | None:
        limits = aiohttp.ClientTimeout(total=timeout)
        try:
            async with (
                aiohttp.ClientSession(timeout=limits) as session,
                session.head(check.uri, headers=headers, allow_redirects=False) as response,
            ):
                status = response.status
        except (aiohttp.ClientError, OSError, TimeoutError):
            return f"error while checking: {check.uri}"
        if status != check.statuscode:
            return f"downstream service returned unexpected status: {status}"
        return None

    return probe


def tcp_probe(addr: str) -> Probe:
    host, port = parse_addr(addr)

    async def probe() -> str | None:
        try:
            _reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            return f"connection to {addr} failed"
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return None

    return probe


def build_checks(config: HealthConfig, storage: RegistryStorage) -> HealthChecks:
    """The checks ``config`` asks for, named as Distribution names them."""
    checks: list[Check] = []
    if config.storagedriver_enabled:
        interval = config.storagedriver_interval
        checks.append(
            Check(
                f"storagedriver_{storage.kind}",
                storage_probe(storage),
                interval,
                interval,
                config.storagedriver_threshold,
            )
        )
    for file in config.file:
        checks.append(_file_check(file))
    for http in config.http:
        checks.append(_http_check(http))
    for tcp in config.tcp:
        checks.append(_tcp_check(tcp))
    return HealthChecks(checks)


def _file_check(file: FileCheck) -> Check:
    return Check(file.file, file_probe(file.file), file.interval, file.interval)


def _http_check(http: HttpCheck) -> Check:
    timeout = http.timeout or http.interval
    return Check(http.uri, http_probe(http, timeout), http.interval, timeout + 1, http.threshold)


def _tcp_check(tcp: TcpCheck) -> Check:
    timeout = tcp.timeout or tcp.interval
    return Check(tcp.addr, tcp_probe(tcp.addr), tcp.interval, timeout, tcp.threshold)


async def run_checks(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx``: one background task per check while the application runs."""
    tasks = [asyncio.create_task(check.loop()) for check in app[APP_KEY].checks]
    yield
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
