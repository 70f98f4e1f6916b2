"""A small HTTP/1.1 transport for ``httpx`` on asyncio streams, parsing with h11.

Why: a command that makes two requests (``regtui tags``) should not pay for a transport built
for thousands. httpx's own (httpcore) parses with h11 too, but loads anyio and its asyncio
backend on the way (about 40 ms at start-up) and spends about 0.9 ms of CPU a request; aiohttp
costs about 100 ms to import. This one is asyncio's streams, h11 (the HTTP/1.1 parser httpx's
own transport uses, installed with it) and the keep-alive pool of a few connections a command
needs: about 0.35 ms of CPU a request, as much as through aiohttp's pool within ~10%. Everything
above the transport stays httpx: auth flows, redirects, content decoding, timeouts as
``request.extensions["timeout"]``.

Failures are raised as the ``httpx`` exceptions httpx's own transport raises (with h11's
messages), the original error as the cause: ``ssl.SSLError`` for TLS failures, so
:mod:`tui.client._failures` reads them as it reads the other transports'.

Bounds: h11 refuses a status line and headers over 64 KiB; bodies are bounded by the reader
(:func:`tui.client._limits.read_bounded`); every socket operation has the request's timeout.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import Any

import h11
import httpx

__all__ = ["H11Transport"]

_READ_BYTES = 64 * 1024
_MAX_HEADER_BYTES = 64 * 1024
_DEFAULT_PORTS = {"http": 80, "https": 443}
_IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE"})
"""Methods sent again, once, on a fresh connection when a kept-alive one turns out closed."""

Origin = tuple[str, str, int]


class H11Transport(httpx.AsyncBaseTransport):
    """HTTP/1.1 with keep-alive (at most ``max_idle`` idle connections per origin).

    ``tls_context`` is called for the first HTTPS connection only: a plain-HTTP client never
    builds a TLS context.
    """

    def __init__(self, *, tls_context: Callable[[], ssl.SSLContext], max_idle: int = 8) -> None:
        self._tls_context = tls_context
        self._context: ssl.SSLContext | None = None
        self._max_idle = max_idle
        self._idle: dict[Origin, list[_Connection]] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        scheme = url.scheme
        if scheme not in _DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(f"Request URL has an unsupported protocol '{scheme}'")
        origin = (scheme, url.raw_host.decode("ascii"), url.port or _DEFAULT_PORTS[scheme])
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        body: bytes | AsyncIterable[bytes]
        stream = request.stream
        if (
            isinstance(stream, httpx.AsyncByteStream)
            and not isinstance(stream, httpx.ByteStream)
            and "Content-Length" in request.headers
        ):
            body = stream  # a blob upload of known length: sent chunk by chunk, never whole
        else:
            body = await request.aread()
        connection = self._idle_connection(origin)
        if connection is not None:
            try:
                return await connection.exchange(request, body, timeouts, self)
            except httpx.TimeoutException:
                raise
            except httpx.TransportError:
                if not (connection.unanswered and request.method.encode() in _IDEMPOTENT):
                    raise
                # The server closed the kept-alive connection meanwhile: once more, afresh.
        connection = await self._connect(request, origin, timeouts.get("connect"))
        return await connection.exchange(request, body, timeouts, self)

    def _idle_connection(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        while idle:
            connection = idle.pop()
            if connection.reusable():
                return connection
            connection.close()
        return None

    def release(self, connection: _Connection) -> None:
        """Take back a connection whose exchange ended cleanly (or close it)."""
        idle = self._idle.setdefault(connection.origin, [])
        if len(idle) < self._max_idle and connection.reusable():
            idle.append(connection)
        else:
            connection.close()

    async def _connect(
        self, request: httpx.Request, origin: Origin, within: float | None
    ) -> _Connection:
        scheme, host, port = origin
        context = None
        if scheme == "https":
            if self._context is None:
                self._context = self._tls_context()
            context = self._context
        try:
            async with asyncio.timeout(within):
                reader, writer = await asyncio.open_connection(
                    host,
                    port,
                    ssl=context,
                    server_hostname=host if context is not None else None,
                    limit=_READ_BYTES,
                )
        except TimeoutError as exc:
            raise httpx.ConnectTimeout("connect timed out", request=request) from exc
        except ssl.SSLError as exc:
            raise httpx.ConnectError(f"SSL: {exc}", request=request) from exc
        except OSError as exc:
            raise httpx.ConnectError(str(exc) or type(exc).__name__, request=request) from exc
        return _Connection(origin, reader, writer)

    async def aclose(self) -> None:
        connections = [c for idle in self._idle.values() for c in idle]
        self._idle.clear()
        for connection in connections:
            connection.close()
        if connections:
            await asyncio.sleep(0)  # the sockets close on the loop's next turn


class _Connection:
    def __init__(self, origin: Origin, reader: asyncio.StreamReader, writer: Any) -> None:
        self.origin = origin
        self._reader = reader
        self._writer: asyncio.StreamWriter = writer
        self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=_MAX_HEADER_BYTES)
        self.unanswered = True
        """No byte of an answer came on this connection in the current exchange."""

    def reusable(self) -> bool:
        return (
            self._h11.our_state is h11.IDLE
            and not self._writer.is_closing()
            and not self._reader.at_eof()
        )

    def close(self) -> None:
        self._writer.transport.abort()

    async def exchange(
        self,
        request: httpx.Request,
        body: bytes | AsyncIterable[bytes],
        timeouts: dict[str, float | None],
        pool: H11Transport,
    ) -> httpx.Response:
        """Send ``request`` and read up to its answer's headers; the body streams after."""
        self.unanswered = True
        try:
            await self._send(request, body, timeouts.get("write"))
            while True:
                event = await self._next_event(request, timeouts.get("read"))
                if isinstance(event, h11.Response):
                    break
                if not isinstance(event, h11.InformationalResponse):
                    raise httpx.RemoteProtocolError(
                        f"unexpected {type(event).__name__} before the answer", request=request
                    )
        except BaseException:
            self.close()
            raise
        return httpx.Response(
            event.status_code,
            headers=[(name, value) for name, value in event.headers.raw_items()],
            stream=_Body(self, request, timeouts.get("read"), pool),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": bytes(event.reason)},
        )

    async def _send(
        self, request: httpx.Request, body: bytes | AsyncIterable[bytes], within: float | None
    ) -> None:
        url = request.url
        target = url.raw_path
        try:
            data = self._h11.send(
                h11.Request(method=request.method, target=target, headers=request.headers.raw)
            )
            if isinstance(body, bytes):
                if body:
                    data = (data or b"") + (self._h11.send(h11.Data(data=body)) or b"")
            else:
                await self._write(request, data or b"", within)
                async for chunk in body:
                    await self._write(request, self._h11.send(h11.Data(data=chunk)), within)
                data = b""
            data = (data or b"") + (self._h11.send(h11.EndOfMessage()) or b"")
        except h11.LocalProtocolError as exc:
            raise httpx.LocalProtocolError(str(exc), request=request) from exc
        await self._write(request, data, within)

    async def _write(
        self, request: httpx.Request, data: bytes | None, within: float | None
    ) -> None:
        try:
            async with asyncio.timeout(within):
                self._writer.write(data or b"")
                await self._writer.drain()
        except TimeoutError as exc:
            raise httpx.WriteTimeout("write timed out", request=request) from exc
        except ssl.SSLError as exc:
            raise httpx.WriteError(f"SSL: {exc}", request=request) from exc
        except OSError as exc:
            raise httpx.WriteError(str(exc) or type(exc).__name__, request=request) from exc

    async def _next_event(self, request: httpx.Request, within: float | None) -> Any:
        """The next h11 event; each read of the socket within ``within`` seconds."""
        while True:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as exc:
                raise httpx.RemoteProtocolError(str(exc), request=request) from exc
            if event is not h11.NEED_DATA:
                return event
            try:
                async with asyncio.timeout(within):
                    data = await self._reader.read(_READ_BYTES)
            except TimeoutError as exc:
                raise httpx.ReadTimeout("read timed out", request=request) from exc
            except ssl.SSLError as exc:
                raise httpx.ReadError(f"SSL: {exc}", request=request) from exc
            except OSError as exc:
                raise httpx.ReadError(str(exc) or type(exc).__name__, request=request) from exc
            if not data and self._h11.their_state is h11.SEND_RESPONSE:
                raise httpx.RemoteProtocolError(
                    "Server disconnected without sending a response.", request=request
                )
            if data:
                self.unanswered = False
            self._h11.receive_data(data)

    async def next_chunk(self, request: httpx.Request, within: float | None) -> bytes | None:
        """The next piece of the body, or ``None`` at its end."""
        while True:
            event = await self._next_event(request, within)
            if isinstance(event, h11.Data):
                return bytes(event.data)
            if isinstance(event, h11.EndOfMessage):
                return None
            raise httpx.RemoteProtocolError(
                f"unexpected {type(event).__name__} in a body", request=request
            )

    def finish(self) -> bool:
        """After the whole body: ready the connection for the next exchange, if it can be."""
        if self._h11.our_state is h11.DONE and self._h11.their_state is h11.DONE:
            self._h11.start_next_cycle()
            return True
        return False


class _Body(httpx.AsyncByteStream):
    def __init__(
        self,
        connection: _Connection,
        request: httpx.Request,
        timeout: float | None,
        pool: H11Transport,
    ) -> None:
        self._connection: _Connection | None = connection
        self._request = request
        self._timeout = timeout
        self._pool = pool
        self._complete = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        connection = self._connection
        if connection is None:
            raise httpx.StreamClosed()
        try:
            while (chunk := await connection.next_chunk(self._request, self._timeout)) is not None:
                if chunk:
                    yield chunk
        except BaseException:
            self._complete = False
            raise
        self._complete = True

    async def aclose(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        if self._complete and connection.finish():
            self._pool.release(connection)
        else:
            connection.close()  # abandoned mid-body: the connection cannot be reused
