"""A webhook receiver for the notification tests: a real aiohttp server on loopback.

It runs in a thread of its own (the registries under test are child processes) and records
every POST it accepts: headers and body. What it answers is the test's to choose, per path
and at any time: 200, a status (500), a hang (no answer until the client gives up), a redirect,
or a closed port (:meth:`Sink.stop` and :meth:`Sink.start` again, on the same port).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from tests.helpers.servers import free_port


@dataclass
class Received:
    path: str
    headers: CIMultiDict[str]
    body: bytes

    @property
    def events(self) -> list[dict[str, Any]]:
        document = json.loads(self.body)
        return list(document["events"])


@dataclass
class Behaviour:
    status: int = 200
    hang: bool = False
    location: str | None = None


@dataclass
class Sink:
    port: int
    received: list[Received] = field(default_factory=list)
    behaviour: dict[str, Behaviour] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)
    _loop: asyncio.AbstractEventLoop | None = None
    _runner: web.AppRunner | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def answer(self, path: str, behaviour: Behaviour) -> None:
        self.behaviour[path] = behaviour

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        path = request.path
        with self._lock:
            self.attempts[path] = self.attempts.get(path, 0) + 1
        behaviour = self.behaviour.get(path, Behaviour())
        if behaviour.hang:
            await asyncio.sleep(3600)
        if behaviour.location is not None:
            return web.Response(status=behaviour.status, headers={"Location": behaviour.location})
        if 200 <= behaviour.status < 300:
            with self._lock:
                self.received.append(Received(path, CIMultiDict(request.headers), body))
        return web.Response(status=behaviour.status)

    def start(self) -> None:
        ready = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", self._handle)
            self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
            loop.run_until_complete(site.start())
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the sink did not start")

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = None

    def events(self, path: str) -> list[dict[str, Any]]:
        with self._lock:
            return [item for got in self.received if got.path == path for item in got.events]

    def wait_for(
        self, path: str, done: Callable[[list[dict[str, Any]]], bool], timeout: float = 20.0
    ) -> list[dict[str, Any]]:
        """The events received on ``path`` once ``done`` holds for them (AssertionError after
        ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            events = self.events(path)
            if done(events):
                return events
            time.sleep(0.05)
        raise AssertionError(f"the sink got on {path} only: {self.events(path)}")


@contextmanager
def webhook_sink(port: int | None = None) -> Iterator[Sink]:
    sink = Sink(port or free_port())
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()
