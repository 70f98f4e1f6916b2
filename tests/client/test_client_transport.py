"""The client's aiohttp-backed transport on real loopback sockets: connection reuse within the
pool bound, redirects, and failures (cut-off bodies, silence) turned into the client's errors."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web

from tui.client import ConnectError, MalformedResponseError, RegistryClient

Handler = Callable[[web.Request], Coroutine[Any, Any, web.StreamResponse]]

pytestmark = pytest.mark.usefixtures("each_transport")  # each test on both transports


@asynccontextmanager
async def serve(routes: list[web.RouteDef]) -> AsyncIterator[str]:
    """An aiohttp server on 127.0.0.1 with ``routes`` (and ``/v2/``); yields ``host:port``."""

    async def ping(request: web.Request) -> web.Response:
        return web.json_response({})

    app = web.Application()
    app.add_routes([web.get("/v2/", ping), *routes])
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"{host}:{port}"
    finally:
        await runner.cleanup()


async def test_connections_are_reused_within_the_pool_bound() -> None:
    peers: set[tuple[str, int]] = set()
    in_flight = peak = 0

    async def tags(request: web.Request) -> web.Response:
        nonlocal in_flight, peak
        peers.add(request.transport.get_extra_info("peername"))  # type: ignore[union-attr]
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0)  # let the other requests arrive meanwhile
        in_flight -= 1
        return web.json_response({"name": request.match_info["repo"], "tags": ["a", "b"]})

    async with serve([web.get("/v2/{repo}/tags/list", tags)]) as host:
        client = RegistryClient(f"http://{host}", max_concurrency=4)
        async with client:
            lists = await asyncio.gather(*(client.list_tags(f"r{i}") for i in range(60)))
    assert lists == [["a", "b"]] * 60
    assert 1 <= peak <= 4
    assert len(peers) <= 4  # keep-alive: 60 requests (and the probe) over at most 4 sockets


async def test_redirected_blob_is_followed_and_verified() -> None:
    data = b"layer bytes " * 5000
    digest = "sha256:" + hashlib.sha256(data).hexdigest()

    async def blob(request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect(f"/storage/{digest[7:]}?signature=x")

    async def storage(request: web.Request) -> web.Response:
        assert request.query["signature"] == "x"
        return web.Response(body=data, content_type="application/octet-stream")

    routes = [web.get("/v2/app/blobs/{digest}", blob), web.get("/storage/{hex}", storage)]
    async with serve(routes) as host, RegistryClient(f"http://{host}") as client:
        assert await client.get_blob("app", digest) == data


async def test_body_cut_off_mid_answer_is_a_malformed_response() -> None:
    async def cut_off(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n")
        writer.write(b"Content-Type: application/vnd.oci.image.manifest.v1+json\r\n\r\n{")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(cut_off, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server, RegistryClient(f"http://127.0.0.1:{port}", max_retries=0) as client:
        with pytest.raises(MalformedResponseError, match="broke the connection"):
            await client.get_manifest("app", "latest")


async def test_silent_server_times_out_as_one_sentence() -> None:
    accepted = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set()
        try:
            await reader.read()  # never answers; returns when the client gives up
        finally:
            writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = RegistryClient(f"http://127.0.0.1:{port}", timeout=0.3, max_retries=0)
    async with server, client:
        with pytest.raises(ConnectError, match="did not answer in time") as caught:
            await client.ping()
    assert accepted.is_set()
    assert str(caught.value).count("\n") == 0
