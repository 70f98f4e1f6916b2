"""An HTTP front for a real registry, on a real loopback socket, that can misbehave.

The pull-through cache's tests put it between the bundled registry and Debian's
docker-registry: it forwards every request (the client's ``Authorization`` too, so the
registry's own htpasswd challenge reaches the cache) and records what it saw. Set its
attributes to make it fail in one way:

- ``status``: answer every request with that status (a 500, say);
- ``hang``: wait this many seconds before answering (an upstream that hangs);
- ``corrupt``: ``"blob"`` flips a byte of every blob body (same length, another digest);
  ``"manifest"`` adds a space to manifest bodies and keeps the announced digest; ``"size"``
  appends bytes to blob bodies (a body longer than its descriptor); ``"short"`` announces 100
  bytes more than it sends, then closes the connection;
- ``hold``: a blob GET sends its first ``hold_after`` bytes, then waits until this
  ``threading.Event`` is set before the rest (an upstream caught mid-blob);
- ``redirect_blobs``: blob GETs answer 307 to this base URL (another front, a "CDN"), which
  fetches the blob with ``fetch_auth``, the credentials of its own.

Each front runs its own event loop in a thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


@dataclass
class Seen:
    method: str
    path: str
    authorization: str | None


@dataclass
class Front:
    target: str
    url: str = ""
    status: int | None = None
    hang: float = 0.0
    corrupt: str | None = None
    redirect_blobs: str | None = None
    hold: threading.Event | None = None
    hold_after: int = 1 << 20
    fetch_auth: tuple[str, str] | None = None
    seen: list[Seen] = field(default_factory=list)

    @property
    def host(self) -> str:
        return self.url.split("://", 1)[1]

    def requests(self, method: str, fragment: str) -> list[Seen]:
        """The requests of ``method`` whose path holds ``fragment``, with credentials (a
        client's first, anonymous request only fetches the upstream's challenge)."""
        return [
            s for s in self.seen if s.method == method and fragment in s.path and s.authorization
        ]


async def _handle(
    front: Front, session: aiohttp.ClientSession, request: web.Request
) -> web.StreamResponse:
    front.seen.append(Seen(request.method, request.path_qs, request.headers.get("Authorization")))
    if front.hang:
        await asyncio.sleep(front.hang)
    if front.status is not None:
        return web.Response(status=front.status, text="upstream trouble\n")
    is_blob = "/blobs/sha256:" in request.path
    if front.redirect_blobs and is_blob and request.method == "GET":
        return web.Response(
            status=307, headers={"Location": front.redirect_blobs + request.path_qs}
        )
    headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
    if front.fetch_auth is not None:
        headers["Authorization"] = aiohttp.encode_basic_auth(*front.fetch_auth)
    body = await request.read()
    async with session.request(
        request.method,
        front.target + request.path_qs,
        headers=headers,
        data=body or None,
        allow_redirects=False,
    ) as upstream:
        content = await upstream.read()
        out = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP}
        if request.method == "GET" and upstream.status == 200:
            if front.corrupt == "blob" and is_blob and content:
                content = bytes([content[0] ^ 0xFF]) + content[1:]
            elif front.corrupt == "size" and is_blob:
                content = content + b"extra bytes"
            elif front.corrupt == "short" and is_blob:  # announces more than it sends
                short = web.StreamResponse(status=200, headers=out)
                short.content_length = len(content) + 100
                await short.prepare(request)
                await short.write(content)
                if request.transport is not None:
                    request.transport.close()
                return short
            elif front.corrupt == "manifest" and "/manifests/" in request.path:
                content = content + b" "
            if front.hold is not None and is_blob:
                held = web.StreamResponse(status=200, headers=out)
                held.content_length = len(content)
                await held.prepare(request)
                await held.write(content[: front.hold_after])
                await asyncio.to_thread(front.hold.wait)
                await held.write(content[front.hold_after :])
                await held.write_eof()
                return held
        response = web.Response(status=upstream.status, body=content, headers=out)
        if request.method == "HEAD":
            response = web.Response(status=upstream.status, headers=out)
            if "Content-Length" in upstream.headers:
                response.headers["Content-Length"] = upstream.headers["Content-Length"]
        return response


@contextmanager
def upstream_front(target: str, **settings: object) -> Iterator[Front]:
    """Serve a front of ``target`` (a base URL) on 127.0.0.1; yields it, URL set."""
    front = Front(target=target.rstrip("/"), **settings)  # type: ignore[arg-type]
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    state: dict[str, object] = {}

    async def start() -> None:
        session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application()

        async def handle(request: web.Request) -> web.StreamResponse:
            return await _handle(front, session, request)

        app.router.add_route("*", "/{tail:.*}", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        front.url = f"http://127.0.0.1:{port}"
        state.update(runner=runner, session=session)
        ready.set()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield front
    finally:

        async def stop() -> None:
            await state["runner"].cleanup()  # type: ignore[attr-defined]
            await state["session"].close()  # type: ignore[attr-defined]

        asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
