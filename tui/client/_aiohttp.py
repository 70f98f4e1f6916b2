"""An ``httpx`` transport that sends requests through aiohttp's connection pool.

Why: on a registry walk (``du --estimate``: tens of thousands of small manifest GETs) httpx's
default transport (httpcore + anyio + h11, all pure Python) costs about 0.5 ms of CPU per request,
twice what the bundled registry spends answering it. aiohttp's client parses HTTP in C and pools
connections in O(1), for about a third of that. Everything above the transport stays httpx:
requests, auth flows, redirects (httpx follows them; this transport never does), content
decoding (done by httpx: aiohttp is told not to), ``httpx.MockTransport`` in tests.

Importing aiohttp costs about 100 ms, so this module is imported only when a client moves to it:
see :mod:`tui.client._transport` (a command making a few requests never loads it).

aiohttp's failures are raised as the ``httpx`` exceptions the rest of the client expects, with
the original error (``ssl.SSLError`` for TLS failures) as the cause.
"""

from __future__ import annotations

import ssl
import urllib.request
from collections.abc import AsyncIterator, Mapping

import aiohttp
import httpx
import yarl

__all__ = ["AiohttpTransport"]

_CHUNK = 1024 * 1024
"""A response body is read in pieces of what arrived, up to this much (a blob's 1 MiB reads:
one join of what the socket gave, not sixteen 64 KiB reads)."""
_HOP_BY_HOP = frozenset({"host", "content-length", "transfer-encoding", "connection"})
"""Headers aiohttp computes itself from the URL and the body."""


class AiohttpTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 with keep-alive over aiohttp; the session is opened on the first request."""

    def __init__(self, *, verify: ssl.SSLContext | bool = True, max_connections: int = 8) -> None:
        # True: aiohttp's default context (the system trust store), made once at its import.
        self._ssl: ssl.SSLContext | bool = verify
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple[float | None, float | None], aiohttp.ClientTimeout] = {}

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections, limit_per_host=0, ssl=self._ssl
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,  # httpx decodes Content-Encoding itself
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
                # HTTP(S)_PROXY / NO_PROXY as httpx honours them; only when set, since aiohttp
                # then looks them up in a worker thread on every request.
                trust_env=bool(urllib.request.getproxies()),
                cookie_jar=aiohttp.DummyCookieJar(),  # none, as Docker keeps none
            )
        return self._session

    def _timeout(self, timeouts: Mapping[str, float | None]) -> aiohttp.ClientTimeout:
        key = (timeouts.get("connect"), timeouts.get("read"))
        timeout = self._timeouts.get(key)
        if timeout is None:
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=key[0], sock_read=key[1])
            self._timeouts[key] = timeout
        return timeout

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._open()
        body: bytes | AsyncIterator[bytes]
        streamed = _streamed_body(request)
        if streamed is not None:
            # A blob upload with Content-Length: sent chunk by chunk as the caller makes them,
            # never held whole (aiohttp keeps the given Content-Length: no chunked encoding).
            body, drop = streamed, _HOP_BY_HOP - {"content-length"}
        else:
            body, drop = await request.aread(), _HOP_BY_HOP
        headers = [
            (key, value) for key, value in request.headers.multi_items() if key.lower() not in drop
        ]
        try:
            response = await session.request(
                request.method,
                yarl.URL(str(request.url), encoded=True),  # httpx has encoded it already
                headers=headers,
                data=body or None,
                allow_redirects=False,
                timeout=self._timeout(request.extensions.get("timeout", {})),
            )
        except (TimeoutError, aiohttp.ClientError) as exc:
            error = _as_httpx_error(exc, request)
            raise error from error.__cause__
        return httpx.Response(
            response.status,
            headers=list(response.raw_headers),
            stream=_ResponseStream(response, request),
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _streamed_body(request: httpx.Request) -> AsyncIterator[bytes] | None:
    """The body of ``request`` as an iterator of chunks when it is an unread stream of known
    length (a streamed blob upload), else ``None``."""
    stream = request.stream
    if isinstance(stream, httpx.ByteStream) or "Content-Length" not in request.headers:
        return None
    if not isinstance(stream, httpx.AsyncByteStream):
        return None

    async def chunks() -> AsyncIterator[bytes]:
        async for chunk in stream:
            yield chunk

    return chunks()


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_chunked(_CHUNK):
                yield chunk
        except (TimeoutError, aiohttp.ClientError) as exc:
            error = _as_httpx_error(exc, self._request)
            raise error from error.__cause__

    async def aclose(self) -> None:
        if self._response.content.at_eof():
            self._response.release()  # the connection goes back to the pool
        else:
            self._response.close()  # abandoned mid-body: the connection cannot be reused


def _as_httpx_error(exc: BaseException, request: httpx.Request) -> httpx.TransportError:
    """The ``httpx`` exception for an aiohttp failure, caused by it (TLS: by the ``ssl`` error)."""
    error = _translate(exc, request)
    if error.__cause__ is None:
        error.__cause__ = exc
    return error


def _translate(exc: BaseException, request: httpx.Request) -> httpx.TransportError:
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(str(exc) or "connect timeout", request=request)
    if isinstance(exc, TimeoutError):
        return httpx.ReadTimeout(str(exc) or "read timeout", request=request)
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        error = httpx.ConnectError(f"certificate verify failed: {exc}", request=request)
        error.__cause__ = exc.certificate_error
        return error
    if isinstance(exc, aiohttp.ClientSSLError):
        error = httpx.ConnectError(f"SSL: {exc}", request=request)
        error.__cause__ = exc.os_error
        return error
    if isinstance(exc, aiohttp.ClientConnectorError):
        # Not str(exc): it says "ssl:default" even for plain HTTP, which reads as a TLS failure.
        return httpx.ConnectError(str(exc.os_error), request=request)
    if isinstance(exc, aiohttp.ClientOSError) and isinstance(exc.__cause__ or exc, ssl.SSLError):
        return httpx.ConnectError(f"SSL: {exc}", request=request)
    if isinstance(
        exc,
        aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError | aiohttp.ClientResponseError,
    ):
        return httpx.RemoteProtocolError(str(exc) or type(exc).__name__, request=request)
    return httpx.NetworkError(str(exc) or type(exc).__name__, request=request)
