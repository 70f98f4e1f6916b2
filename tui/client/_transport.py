"""The client's transport: httpx's own for a few requests, aiohttp's pool for many.

Two costs pull apart. httpx's default transport (httpcore, h11, anyio: pure Python) imports in
about 15 ms but spends about 0.5 ms of CPU a request. aiohttp's (:mod:`tui.client._aiohttp`)
spends about a third of that, but importing aiohttp costs about 100 ms (it builds two TLS
contexts from the system trust store at import). ``regtui tags`` makes two requests; ``du
--estimate`` tens of thousands. So :class:`ClientTransport` serves the first ``fast_after``
requests with httpx's own transport and every later one through aiohttp, imported only then (the
rent-or-buy rule: switch once the extra CPU spent equals what the switch costs). Callers that
know they walk a registry (the bulk commands) pass ``fast_after=0``. Requests already in flight
finish on the transport that took them.

TLS is built only for what is used: a plain-HTTP registry never loads a trust store. HTTPS gets
its context on its first request (a plain registry redirecting a blob to an HTTPS presigned URL
included), from the trust the user chose: ``verify`` is ``True`` (the system store, as aiohttp's
default context has it, ``SSL_CERT_FILE`` honoured), a context (``--ca-cert``), or ``False``
(``--insecure``). The plain-HTTP pool gets a context that trusts nothing, so it could not speak
TLS unverified even if an HTTPS URL reached it.

With an HTTP(S) proxy in the environment every request goes through aiohttp, which honours
``HTTP_PROXY``/``HTTPS_PROXY``/``NO_PROXY`` the way httpx does.
"""

from __future__ import annotations

import urllib.request
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    import ssl

__all__ = ["FAST_AFTER", "ClientTransport"]

FAST_AFTER = 256
"""Requests served by httpx's own transport before aiohttp's takes over (about when the CPU
saved per request, ~0.3 ms, has paid for importing aiohttp)."""


class ClientTransport(httpx.AsyncBaseTransport):
    """Routes each request to a transport made on first use (see the module's docstring)."""

    def __init__(
        self,
        *,
        verify: ssl.SSLContext | bool = True,
        max_connections: int = 8,
        fast_after: int | None = None,
    ) -> None:
        self._verify = verify
        self._max_connections = max_connections
        if fast_after is None:
            fast_after = FAST_AFTER
        if urllib.request.getproxies():
            fast_after = 0  # aiohttp reads the proxy settings; httpx's own beside us would not
        self.fast_after = fast_after
        self.requests = 0
        """Requests handled so far."""
        self._light: dict[str, httpx.AsyncBaseTransport] = {}
        self._fast: httpx.AsyncBaseTransport | None = None

    @property
    def fast(self) -> bool:
        """Whether requests now go through aiohttp's pool."""
        return self._fast is not None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._transport_for(request.url.scheme).handle_async_request(request)

    def _transport_for(self, scheme: str) -> httpx.AsyncBaseTransport:
        self.requests += 1
        if self._fast is None and self.requests > self.fast_after:
            from tui.client._aiohttp import AiohttpTransport

            self._fast = AiohttpTransport(
                verify=self._verify, max_connections=self._max_connections
            )
        if self._fast is not None:
            return self._fast
        tls = scheme == "https"
        light = self._light.get("https" if tls else "http")
        if light is None:
            light = self._light["https" if tls else "http"] = httpx.AsyncHTTPTransport(
                verify=self._tls_context() if tls else _trusts_nothing(),
                limits=httpx.Limits(
                    max_connections=self._max_connections,
                    max_keepalive_connections=self._max_connections,
                ),
            )
        return light

    def _tls_context(self) -> ssl.SSLContext | bool:
        if self._verify is True:
            import ssl

            return ssl.create_default_context()  # the system store (and SSL_CERT_FILE)
        return self._verify

    async def aclose(self) -> None:
        transports = [*self._light.values(), *([self._fast] if self._fast else [])]
        self._light.clear()
        self._fast = None
        failure: BaseException | None = None
        for transport in transports:
            try:
                await transport.aclose()
            except Exception as exc:  # close the others all the same, then say so
                failure = failure or exc
        if failure is not None:
            raise failure


def _trusts_nothing() -> ssl.SSLContext:
    """A client context with no trust anchors: any TLS handshake through it fails."""
    import ssl

    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies certificates and host names
