"""The client's transports on real loopback sockets (``tui/client/_transport.py``, ``_h11.py``):
the light transport's keep-alive and its one retry of a request whose kept-alive connection was
closed, chunked answers and HEAD, bounded headers; the switch to aiohttp's pool after
``fast_after`` requests; TLS built only for HTTPS, with the trust the user chose, also for a
plain-HTTP registry's redirect to an HTTPS URL."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web

from tests.helpers.hostile_registry import serve
from tests.helpers.tls import self_signed
from tui.client import MalformedResponseError, RegistryClient, TLSError
from tui.client._h11 import H11Transport
from tui.client._transport import ClientTransport
from tui.client.models import OCI_CONFIG, OCI_MANIFEST

LIGHT = 10**9  # fast_after: the light transport for the whole test
TAGS = b'{"name": "app", "tags": ["v1"]}'


def transport_of(client: RegistryClient) -> ClientTransport:
    transport = client._http._transport
    assert isinstance(transport, ClientTransport)
    return transport


@asynccontextmanager
async def closes_kept_alive_connections() -> AsyncIterator[tuple[str, list[int]]]:
    """A server that answers the first request of each connection (keeping it open, as HTTP/1.1
    does) and drops the connection, unanswered, when a second request comes on it. Yields
    ``host:port`` and the number of connections it accepted (a one-item list)."""
    accepted = [0]

    async def serve_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted[0] += 1
        try:
            for answered in (False, True):
                head = await reader.readuntil(b"\r\n\r\n")
                length = re.search(rb"(?i)content-length: *(\d+)", head)
                if length:
                    await reader.readexactly(int(length[1]))
                if answered:
                    break  # the second request on this connection: dropped, no answer
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(TAGS), TAGS)
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve_connection, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"127.0.0.1:{port}", accepted


async def test_a_get_on_a_connection_the_server_closed_is_sent_again_afresh() -> None:
    async with closes_kept_alive_connections() as (host, accepted):
        client = RegistryClient(f"http://{host}", max_retries=0, fast_after=LIGHT)
        async with client:
            assert await client.list_tags("app") == ["v1"]
            assert await client.list_tags("app") == ["v1"]  # the kept connection: dropped
    assert accepted[0] == 2  # retried once on a new connection (the client has no retries)


async def test_a_post_on_a_connection_the_server_closed_is_not_sent_again() -> None:
    async with closes_kept_alive_connections() as (host, accepted):
        client = RegistryClient(f"http://{host}", max_retries=0, fast_after=LIGHT)
        async with client:
            assert await client.list_tags("app") == ["v1"]
            with pytest.raises(MalformedResponseError, match="closed the connection"):
                await client.request("POST", "/v2/app/blobs/uploads/", content=b"x")
    assert accepted[0] == 1  # a POST may have been acted on: never sent twice


async def test_chunked_answers_and_head_keep_one_connection() -> None:
    config = b"{}"
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": OCI_CONFIG,
                "digest": "sha256:" + hashlib.sha256(config).hexdigest(),
                "size": len(config),
            },
            "layers": [],
        }
    ).encode()
    digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    peers: set[object] = set()

    async def manifest_route(request: web.Request) -> web.StreamResponse:
        peers.add(request.transport.get_extra_info("peername"))  # type: ignore[union-attr]
        headers = {"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": digest}
        if request.method == "HEAD":
            return web.Response(headers={**headers, "Content-Length": str(len(manifest))})
        response = web.StreamResponse(headers=headers)
        response.enable_chunked_encoding()
        await response.prepare(request)
        for start in range(0, len(manifest), 7):  # many small chunks
            await response.write(manifest[start : start + 7])
        await response.write_eof()
        return response

    async def tags(request: web.Request) -> web.Response:
        peers.add(request.transport.get_extra_info("peername"))  # type: ignore[union-attr]
        return web.Response(body=TAGS, content_type="application/json")

    app = web.Application()
    app.add_routes(
        [
            web.get("/v2/app/manifests/v1", manifest_route),  # GET and HEAD
            web.get("/v2/app/tags/list", tags),
        ]
    )
    async with serve(app) as host:
        client = RegistryClient(f"http://{host}", max_concurrency=1, fast_after=LIGHT)
        async with client:
            head = await client.head_manifest("app", "v1")
            result = await client.get_manifest("app", "v1")
            assert await client.list_tags("app") == ["v1"]
            head_again = await client.head_manifest("app", "v1")
    assert head.digest == result.digest == head_again.digest == digest
    assert len(peers) == 1  # HEAD (no body) and the chunked body left the connection reusable


@pytest.mark.parametrize("fast_after", [LIGHT, 0])
async def test_a_header_flood_is_a_clear_error(fast_after: int) -> None:
    async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\n")
            for _ in range(4096):  # 4 MiB of headers, never ending them
                writer.write(b"X-Junk: " + b"a" * 1016 + b"\r\n")
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(flood, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = RegistryClient(f"http://127.0.0.1:{port}", max_retries=0, fast_after=fast_after)
    async with server, client:
        with pytest.raises(MalformedResponseError) as caught:
            await client.list_tags("app")
    assert "\n" not in str(caught.value)


async def test_the_client_moves_to_aiohttp_after_fast_after_requests() -> None:
    async def tags(request: web.Request) -> web.Response:
        await asyncio.sleep(0)
        return web.json_response({"name": request.match_info["repo"], "tags": ["a", "b"]})

    app = web.Application()
    app.add_routes([web.get("/v2/{repo}/tags/list", tags)])
    async with serve(app) as host:
        walker = RegistryClient(f"http://{host}", max_concurrency=4, fast_after=5)
        async with walker:
            lists = await asyncio.gather(*(walker.list_tags(f"r{i}") for i in range(20)))
            assert transport_of(walker).fast
            assert transport_of(walker).requests == 20
        assert lists == [["a", "b"]] * 20  # requests in flight at the switch finished too
        one_shot = RegistryClient(f"http://{host}", fast_after=100)
        async with one_shot:
            assert await one_shot.list_tags("r0") == ["a", "b"]
            assert not transport_of(one_shot).fast


def test_a_proxy_in_the_environment_means_aiohttp_from_the_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "registry.example")
    assert ClientTransport(fast_after=50).fast_after == 50
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    assert ClientTransport(fast_after=50).fast_after == 0  # aiohttp honours the proxy


@asynccontextmanager
async def plain_registry_redirecting_to_tls(
    tmp_path: Path, blob: bytes
) -> AsyncIterator[tuple[str, str, Path]]:
    """A plain-HTTP registry whose blob GET redirects to an HTTPS server with a self-signed
    certificate (a presigned URL); yields the registry's ``host:port``, the blob's digest and
    the certificate."""
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    cert, key = self_signed(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)

    async def storage(request: web.Request) -> web.Response:
        return web.Response(body=blob, content_type="application/octet-stream")

    storage_app = web.Application()
    storage_app.add_routes([web.get("/bucket/blob", storage)])
    runner = web.AppRunner(storage_app, handle_signals=False, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context)
    await site.start()
    storage_port = runner.addresses[0][1]

    async def ping(request: web.Request) -> web.Response:
        return web.json_response({})

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect(f"https://127.0.0.1:{storage_port}/bucket/blob?sig=x")

    registry = web.Application()
    registry.add_routes(
        [
            web.get("/v2/", ping),
            web.get("/v2/app/blobs/{digest}", redirect),
        ]
    )
    try:
        async with serve(registry) as host:
            yield host, digest, cert
    finally:
        await runner.cleanup()


async def test_plain_http_loads_no_trust_and_an_https_redirect_is_verified(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The light transport builds a TLS context only for its first HTTPS connection, and
    verifies it as the user chose: the system store (``SSL_CERT_FILE``), or ``--insecure``."""
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    blob = b"layer bytes " * 1000
    async with plain_registry_redirecting_to_tls(tmp_path, blob) as (host, digest, cert):
        async with RegistryClient(host, max_retries=0, fast_after=LIGHT) as client:
            await client.ping()
            light = transport_of(client)._light
            assert isinstance(light, H11Transport)
            assert light._context is None  # plain HTTP: no trust store loaded
            with pytest.raises(TLSError, match="not trusted"):
                await client.get_blob("app", digest)  # a self-signed presigned URL
            assert light._context is not None

        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the system store now trusts it
        async with RegistryClient(host, max_retries=0, fast_after=LIGHT) as client:
            assert await client.get_blob("app", digest) == blob

        monkeypatch.delenv("SSL_CERT_FILE")
        async with RegistryClient(host, max_retries=0, insecure=True, fast_after=LIGHT) as client:
            assert await client.get_blob("app", digest) == blob


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback on this machine")
async def test_an_ipv6_loopback_registry_is_reached_without_a_scheme() -> None:
    async def tags(request: web.Request) -> web.Response:
        return web.Response(body=TAGS, content_type="application/json")

    app = web.Application()
    app.add_routes([web.get("/v2/", tags), web.get("/v2/app/tags/list", tags)])
    async with serve(app, host="::1") as host:
        port = host.rsplit(":", 1)[1]
        async with RegistryClient(f"[::1]:{port}", fast_after=LIGHT) as client:
            assert await client.list_tags("app") == ["v1"]
            assert client.base_url == f"http://[::1]:{port}"  # the plain-HTTP probe answered
