"""The client's transport: a light one for a few requests, aiohttp's pool for many.

Two costs pull apart. :mod:`tui.client._h11` (asyncio streams and h11) loads in a few
milliseconds; aiohttp (:mod:`tui.client._aiohttp`) costs about 100 ms to import (it builds two
TLS contexts from the system trust store at import). Per small request, measured through the
whole client on loopback, both spend about 0.35 ms of CPU, aiohttp's up to ~0.04 ms less (and
~15% less on a streamed blob); httpx's own transport (httpcore) spends 0.94 ms and adds anyio's
~40 ms of import, so it is not used. ``regtui tags`` makes two requests; ``du --estimate`` tens
of thousands. So :class:`ClientTransport` serves the first ``fast_after`` requests with the
light transport and every later one through aiohttp, imported only then (the rent-or-buy rule:
switch once the extra CPU spent is about what the switch costs). Callers that know they walk a
registry or stream layers (the app and the bulk commands) pass ``fast_after=0``. Requests
already in flight finish on the transport that took them.

TLS is built only for what is used: a plain-HTTP registry never loads a trust store. HTTPS gets
its context on its first connection (a plain registry redirecting a blob to an HTTPS presigned
URL included), from the trust the user chose: ``verify`` is ``True`` (the system store, as
aiohttp's default context has it, ``SSL_CERT_FILE`` honoured), a context (``--ca-cert``: the
system store and that CA), or ``False`` (``--insecure``).

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

FAST_AFTER = 2000
"""Requests served by the light transport before aiohttp's takes over (about where the CPU saved
per request has paid for importing aiohttp: a walk, never a command that reads a few manifests)."""
_PROXIED = frozenset({"http", "https", "all"})
"""Proxy settings (``HTTP_PROXY``...) that send requests through a proxy (``NO_PROXY`` alone
does not)."""


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
        if _PROXIED.intersection(urllib.request.getproxies()):
            fast_after = 0  # aiohttp reads the proxy settings; the light transport has none
        self.fast_after = fast_after
        self.requests = 0
        """Requests handled so far."""
        self._light: httpx.AsyncBaseTransport | None = None
        self._fast: httpx.AsyncBaseTransport | None = None

    @property
    def fast(self) -> bool:
        """Whether requests now go through aiohttp's pool."""
        return self._fast is not None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._transport().handle_async_request(request)

    def _transport(self) -> httpx.AsyncBaseTransport:
        self.requests += 1
        if self._fast is None and self.requests > self.fast_after:
            from tui.client._aiohttp import AiohttpTransport

            self._fast = AiohttpTransport(
                verify=self._verify, max_connections=self._max_connections
            )
        if self._fast is not None:
            return self._fast
        if self._light is None:
            from tui.client._h11 import H11Transport

            self._light = H11Transport(
                tls_context=self._tls_context, max_idle=self._max_connections
            )
        return self._light

    def _tls_context(self) -> ssl.SSLContext:
        """The context of the first HTTPS connection, from the trust the user chose."""
        import ssl

        if isinstance(self._verify, ssl.SSLContext):
            return self._verify  # --ca-cert
        if self._verify:
            return ssl.create_default_context()  # the system store (and SSL_CERT_FILE)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # --insecure: no verification
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context

    async def aclose(self) -> None:
        transports = [t for t in (self._light, self._fast) if t is not None]
        self._light = self._fast = None
        failure: BaseException | None = None
        for transport in transports:
            try:
                await transport.aclose()
            except Exception as exc:  # close the others all the same, then say so
                failure = failure or exc
        if failure is not None:
            raise failure
