"""A hostile registry for the client's tests: small aiohttp apps on real loopback sockets whose
answers each test sets (links to other hosts, endless pages, huge or deep bodies, bombs,
trickles), a recorder of what reaches a server, and layer bombs made without inflating them.

Run as a module, it is the subprocess the RSS tests measure::

    python -m tests.helpers.hostile_registry manifest HOST
    python -m tests.helpers.hostile_registry layer HOST DIGEST [MAX_EXPANDED_BYTES]

It prints one JSON line: ``{"grown_kib": ..., "error": type name, "message": str(error)}``,
where ``grown_kib`` is how much the process's peak RSS grew during the operation.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tarfile
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web

from tests.helpers.memory import peak_kib

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

USER, PASSWORD = "alice", "s3cret"
BASIC = "Basic YWxpY2U6czNjcmV0"  # alice:s3cret
TOKEN = "hostile-token"


@asynccontextmanager
async def serve(app: web.Application, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Run ``app`` on an ephemeral port of ``host``; yields ``host:port``."""
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"{host}:{port}"
    finally:
        await runner.cleanup()


@dataclass
class Seen:
    method: str
    url: str
    authorization: str | None


@dataclass
class Recorder:
    """Every request that reached a server, with the Authorization it carried."""

    seen: list[Seen] = field(default_factory=list)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.seen.append(
            Seen(request.method, str(request.rel_url), request.headers.get("Authorization"))
        )
        return await handler(request)

    @property
    def authorizations(self) -> list[str]:
        return [s.authorization for s in self.seen if s.authorization is not None]


def basic_guard(open_paths: tuple[str, ...] = ()) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Basic auth (``alice``/``s3cret``) on every path but ``open_paths``."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in open_paths or request.headers.get("Authorization") == BASIC:
            return await handler(request)
        return web.json_response(
            {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
            status=401,
            headers={"WWW-Authenticate": 'Basic realm="hostile"'},
        )

    return guard


def bearer_guard(realm: str | None = None) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Bearer auth: ``Bearer hostile-token`` on every path but ``/token``; the challenge
    names ``realm`` (by default the server's own ``/token``)."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path == "/token" or request.headers.get("Authorization") == f"Bearer {TOKEN}":
            return await handler(request)
        where = realm or f"http://{request.host}/token"
        challenge = f'Bearer realm="{where}",service="hostile",scope="registry:catalog:*"'
        return web.json_response(
            {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
            status=401,
            headers={"WWW-Authenticate": challenge},
        )

    return guard


async def token_endpoint(request: web.Request) -> web.Response:
    """A token service that hands out the token to Basic ``alice`` only."""
    if request.headers.get("Authorization") != BASIC:
        return web.json_response({"details": "unknown account"}, status=401)
    return web.json_response({"token": TOKEN, "expires_in": 300})


def registry_app(
    routes: list[web.RouteDef],
    *,
    recorder: Recorder | None = None,
    guard: Callable[..., Awaitable[web.StreamResponse]] | None = None,
) -> web.Application:
    """An app with ``GET /v2/`` and ``routes``, recording and guarded when asked."""

    async def ping(request: web.Request) -> web.Response:
        return web.json_response({}, headers={"Docker-Distribution-API-Version": "registry/2.0"})

    middlewares = [m for m in (recorder.middleware if recorder else None, guard) if m]
    app = web.Application(middlewares=middlewares)
    app.add_routes([web.get("/v2/", ping), *routes])
    return app


def names_page(key: str, names: list[str], link: str | None = None) -> Handler:
    """A catalog or tags page: ``{key: names}`` with an optional ``Link: <link>; rel="next"``."""

    async def handler(request: web.Request) -> web.Response:
        headers = {"Link": f'<{link}>; rel="next"'} if link else {}
        return web.json_response({"name": "app", key: names}, headers=headers)

    return handler


@dataclass
class Sent:
    """Bytes a streaming handler got into its socket before the client hung up."""

    bytes: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)


def endless_body(sent: Sent, *, total: int, prefix: bytes, content_length: bool) -> Handler:
    """``prefix`` then spaces (valid JSON whitespace) up to ``total`` bytes, chunked (or with a
    ``Content-Length`` of ``total``), counting what was written until the client gave up."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"}
        )
        if content_length:
            response.content_length = total
        else:
            response.enable_chunked_encoding()
        await response.prepare(request)
        piece = b" " * 65536
        try:
            await response.write(prefix)
            sent.bytes += len(prefix)
            while sent.bytes < total:
                await response.write(piece)
                sent.bytes += len(piece)
        except (ConnectionError, RuntimeError):
            pass  # the client hung up: what it did not read stays unsent
        finally:
            sent.done.set()
        return response

    return handler


def close_delimited_server(
    sent: Sent, *, total: int, prefix: bytes
) -> Callable[..., Awaitable[None]]:
    """An ``asyncio`` server callback answering HTTP/1.1 200 with neither ``Content-Length``
    nor chunking (the body ends when the connection closes), and ``/v2/`` with 200."""

    async def serve_one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            if head.startswith(b"GET /v2/ "):
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
                await writer.drain()
                return
            writer.write(
                b"HTTP/1.1 200 OK\r\nConnection: close\r\n"
                b"Content-Type: application/vnd.oci.image.manifest.v1+json\r\n\r\n" + prefix
            )
            sent.bytes += len(prefix)
            piece = b" " * 65536
            while sent.bytes < total:
                writer.write(piece)
                await writer.drain()
                sent.bytes += len(piece)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            sent.done.set()
            writer.close()

    return serve_one


def nested_json(depth: int, *, closed: bool = True, inside: str = "") -> bytes:
    """``depth`` nested arrays (``[[[...]]]``), optionally as the value of ``inside``."""
    body = "[" * depth + ("]" * depth if closed else "")
    return (f'{{"{inside}": {body}}}' if inside else body).encode()


def tar_header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    return info.tobuf(format=tarfile.PAX_FORMAT)


def zstd_bomb(size: int) -> bytes:
    """A zstd frame of a tar holding one file of ``size`` zero bytes, in run-length blocks: four
    bytes per 128 KiB (built without inflating anything)."""
    header = tar_header("bomb", size)
    out = bytearray(b"\x28\xb5\x2f\xfd" + bytes([0x00, (17 - 10) << 3]))  # window 128 KiB
    out += (len(header) << 3).to_bytes(3, "little") + header  # a raw block
    block = 128 * 1024
    full, rest = divmod(size + 1024, block)  # the file, then the end-of-archive blocks
    out += (((block << 3) | (1 << 1)).to_bytes(3, "little") + b"\0") * full
    if rest:
        out += ((rest << 3) | (1 << 1)).to_bytes(3, "little") + b"\0"
    out += (1).to_bytes(3, "little")  # the last block: raw, empty
    return bytes(out)


def gzip_bomb(size: int) -> bytes:
    """A gzip stream of a tar holding one file of ``size`` zero bytes (``size`` a multiple of
    64 MiB): one member of 64 MiB of zeros, compressed once and repeated."""
    piece = 64 * 1024 * 1024
    assert size % piece == 0

    def member(data: bytes) -> bytes:
        compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        return compressor.compress(data) + compressor.flush()

    zeros = member(bytes(piece))
    return member(tar_header("bomb", size)) + zeros * (size // piece) + member(bytes(1024))


# ------------------------------------------------------------------------- RSS probe


async def _probe(argv: list[str]) -> dict[str, object]:
    from tui.client import RegistryClient, RegistryClientError
    from tui.client.layers import LayerFormatError, LayerReader, read_layer

    kind, host = argv[0], argv[1]
    async with RegistryClient(host) as client:
        await client.ping()  # warm: imports, TLS, pool
        before = peak_kib()
        error: BaseException | None = None
        files = None
        try:
            if kind == "manifest":
                await client.get_manifest("big", "latest")
            else:
                limit = int(argv[3]) if len(argv) > 3 else None
                reader = LayerReader(max_expanded_bytes=limit) if limit else LayerReader()
                async with client.stream_blob("app", argv[2]) as blob:
                    root = await read_layer(blob, reader=reader)
                files = root.file_count if root is not None else None
        except (RegistryClientError, LayerFormatError) as exc:
            error = exc
        after = peak_kib()
    return {
        "grown_kib": after - before,
        "error": type(error).__name__ if error else None,
        "message": str(error) if error else None,
        "files": files,
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(_probe(sys.argv[1:]))))
