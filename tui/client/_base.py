"""The transport layer of the registry client: connections, retries, and errors."""

from __future__ import annotations

import asyncio
import email.utils
import http.cookiejar
import json
import random
import ssl
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

from tui.client._transport import AiohttpTransport
from tui.client.auth import RegistryAuth, resolve_credentials
from tui.client.errors import (
    AuthError,
    ConnectError,
    DeleteDisabledError,
    MalformedResponseError,
    NotFoundError,
    RateLimitedError,
    RegistryClientError,
    TLSError,
    UnsupportedError,
)
from tui.client.reference import (
    InvalidReferenceError,
    api_host,
    is_loopback_host,
    parse_registry,
)

__all__ = ["IDEMPOTENT", "RETRY_STATUSES", "ClientBase", "oci_errors", "transport_error"]

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})
RETRY_STATUSES = frozenset({429, 502, 503, 504})


def oci_errors(response: httpx.Response) -> tuple[str | None, str | None]:
    """The first OCI error ``(code, message)`` of a response body, if it has one."""
    try:
        data = json.loads(response.content)
    except (ValueError, httpx.ResponseNotRead):
        return None, None
    errors = data.get("errors") if isinstance(data, dict) else None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        first = errors[0]
        code, message = first.get("code"), first.get("message")
        return (str(code) if code else None, str(message) if message else None)
    return None, None


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        if parsed is None:
            return None
        return max(0.0, parsed.timestamp() - time.time())


class _NoCookies(http.cookiejar.CookieJar):
    """Registries need no cookies (Docker keeps none); storing them costs ~0.1 ms a request."""

    def extract_cookies(self, response: Any, request: Any) -> None:
        return None


class ClientBase:
    """Transport of :class:`~tui.client.registry.RegistryClient`: TLS, scheme probing, auth,
    bounded concurrency, retries with back-off, and statuses turned into errors."""

    def __init__(
        self,
        registry: str,
        *,
        username: str | None = None,
        password: str | None = None,
        insecure: bool = False,
        ca_cert: str | None = None,
        timeout: float = 30.0,
        max_concurrency: int = 8,
        docker_config: Path | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        max_retries: int = 3,
        max_retry_wait: float = 60.0,
        backoff: float = 0.2,
    ) -> None:
        try:
            scheme, host = parse_registry(registry)
        except InvalidReferenceError as exc:
            raise RegistryClientError(str(exc), title="Invalid registry") from exc
        self.registry = "docker.io" if api_host(host) != host else host
        self.host = api_host(host)
        self.insecure = insecure
        self._explicit_scheme = scheme
        if scheme == "http" and not insecure and not is_loopback_host(self.host):
            raise TLSError(
                f"Refusing plain HTTP to {self.host}: pass --insecure to allow it",
                title="Plain HTTP refused",
            )
        self.base_url = f"{scheme or 'https'}://{self.host}"
        """``scheme://host[:port]``; final once the client is entered (plain-HTTP probing)."""
        self.credentials = resolve_credentials(
            self.registry, username=username, password=password, docker_config=docker_config
        )
        self.auth = RegistryAuth(self.credentials)
        self.max_retries = max_retries
        self.max_retry_wait = max_retry_wait
        self.backoff = backoff
        """First retry delay in seconds; it doubles per retry (with jitter), capped at 8 s."""
        self._semaphore = asyncio.Semaphore(max_concurrency)
        verify: ssl.SSLContext | bool = not insecure
        """``True``: the system trust store (and ``SSL_CERT_FILE``), in aiohttp's own context."""
        if ca_cert and not insecure:
            verify = ssl.create_default_context()
            try:
                verify.load_verify_locations(cafile=ca_cert)
            except (OSError, ssl.SSLError) as exc:
                raise TLSError(f"Cannot load the CA certificate {ca_cert}: {exc}") from exc
        self.verify = verify
        """How TLS peers are verified (for side connections, e.g. ``tui.client.ext``'s)."""
        self.timeout = timeout
        if transport is None:
            # TLS, the pool (one connection per request in flight) and proxies are the
            # transport's business: httpx ignores its own settings for them beside a transport.
            transport = AiohttpTransport(verify=verify, max_connections=max_concurrency)
        self._http = httpx.AsyncClient(
            auth=self.auth,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            transport=transport,
            follow_redirects=True,
            headers={"User-Agent": "regtui"},
            cookies=_NoCookies(),
        )
        self._probed = scheme is not None
        self._probe_lock = asyncio.Lock()

    # ------------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> Self:
        await self._ensure_base_url()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _ensure_base_url(self) -> None:
        """Decide the scheme when the user did not: HTTPS, or plain HTTP where Docker allows it.

        Loopback hosts are probed with plain HTTP first (the common case for a local registry:
        no TLS handshake to fail first); a TLS-only server on loopback is then detected and
        HTTPS used. With ``--insecure`` on other hosts, HTTPS is tried first, as Docker does, and
        plain HTTP only when HTTPS cannot be spoken. Probes never carry credentials.
        """
        if self._probed:
            return
        async with self._probe_lock:
            if self._probed:
                return
            if is_loopback_host(self.host):
                if await self._speaks_plain_http():
                    self.base_url = f"http://{self.host}"
            elif self.insecure:
                try:
                    await self._http.get(f"https://{self.host}/v2/", timeout=5.0, auth=None)
                except (httpx.TransportError, ssl.SSLError):
                    self.base_url = f"http://{self.host}"
            self._probed = True

    async def _speaks_plain_http(self) -> bool:
        try:
            response = await self._http.get(f"http://{self.host}/v2/", timeout=5.0, auth=None)
        except httpx.TransportError:
            return False  # a TLS server drops a plain request, or nothing listens: use HTTPS
        # Go's TLS servers answer a plain request with this 400 instead of dropping it.
        return not (response.status_code == 400 and b"HTTPS server" in response.content)

    # ------------------------------------------------------------------ requests
    def _url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base_url}{path}"

    async def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        """Send an authenticated request; idempotent ones are retried with back-off.

        Transport failures become :class:`ConnectError`/:class:`TLSError`; HTTP statuses are
        returned as they are (use :meth:`raise_for_status`), except that a 429 still there after
        the retries raises :class:`RateLimitedError`. The body is read.
        """
        return await self._send(method, path, stream=False, **kw)

    async def _send(self, method: str, path: str, *, stream: bool, **kw: Any) -> httpx.Response:
        await self._ensure_base_url()
        url = self._url(path)
        retriable = method.upper() in IDEMPOTENT
        attempt = 0
        while True:
            try:
                async with self._semaphore:
                    request = self._http.build_request(method, url, **kw)
                    response = await self._http.send(request, stream=True)
                    if not stream:
                        try:
                            await response.aread()
                        finally:
                            await response.aclose()
            except httpx.TransportError as exc:
                if retriable and attempt < self.max_retries and not _is_tls(exc):
                    attempt += 1
                    await asyncio.sleep(self._backoff(attempt))
                    continue
                raise transport_error(exc, self.host) from exc
            if retriable and response.status_code in RETRY_STATUSES:
                wait = self._backoff(attempt + 1)
                if response.status_code == 429:
                    wait = _retry_after(response) or wait
                if attempt < self.max_retries and wait <= self.max_retry_wait:
                    if stream:
                        await response.aclose()
                    attempt += 1
                    await asyncio.sleep(wait)
                    continue
            if response.status_code == 429:
                if stream:
                    await response.aread()
                    await response.aclose()
                raise self._status_error(response, "request")
            return response

    def _backoff(self, attempt: int) -> float:
        return min(8.0, self.backoff * 2 ** (attempt - 1)) * (0.75 + random.random() / 2)

    def raise_for_status(self, response: httpx.Response, what: str) -> None:
        if response.status_code < 400:
            return
        raise self._status_error(response, what)

    def _status_error(self, response: httpx.Response, what: str) -> RegistryClientError:
        code, message = oci_errors(response)
        said = f": the registry says {message!r}" if message else ""
        status = response.status_code
        method = response.request.method
        if status == 401:
            who = "anonymously" if self.credentials is None else "with the given credentials"
            token = f" ({self.auth.token_error})" if self.auth.token_error else ""
            return AuthError(
                f"Not authorized {who} for {what} on {self.host}{said}{token}",
                response=response,
                code=code,
            )
        if status == 403:
            return AuthError(f"Access to {what} denied by {self.host}{said}", response=response)
        if status == 404:
            return NotFoundError(
                f"{what} not found on {self.host}" + (f" ({code})" if code else ""),
                response=response,
                code=code,
            )
        if status == 405 and method == "DELETE":
            return DeleteDisabledError(
                f"{self.host} does not allow deletion of {what} (deletion is disabled)",
                response=response,
                code=code,
            )
        if status == 429:
            retry_after = _retry_after(response)
            hint = f"; retry in {retry_after:.0f} s" if retry_after is not None else ""
            return RateLimitedError(
                f"{self.host} is rate limiting requests for {what}{hint}",
                retry_after=retry_after,
                response=response,
                code=code,
            )
        if code == "UNSUPPORTED" or status in (405, 501):
            return UnsupportedError(
                f"{self.host} does not support {method} for {what}{said}",
                response=response,
                code=code,
            )
        return RegistryClientError(
            f"{self.host} answered {status} to {method} {what}{said}",
            response=response,
            code=code,
        )

    async def _get_ok(self, path: str, what: str, **kw: Any) -> httpx.Response:
        response = await self.request("GET", path, **kw)
        self.raise_for_status(response, what)
        return response


def _is_tls(exc: httpx.TransportError) -> bool:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLError):
            return True
        cause = cause.__cause__ or cause.__context__
    text = str(exc).lower()
    return "certificate" in text or "ssl" in text or "tls" in text


def transport_error(exc: httpx.TransportError, host: str) -> RegistryClientError:
    if _is_tls(exc):
        return TLSError(
            f"TLS with {host} failed ({exc}); use --ca-cert for a private CA or --insecure"
        )
    if isinstance(exc, httpx.TimeoutException):
        return ConnectError(f"{host} did not answer in time ({type(exc).__name__})")
    if isinstance(exc, httpx.RemoteProtocolError):
        return MalformedResponseError(f"{host} broke the connection mid-answer ({exc})")
    return ConnectError(f"Cannot reach {host}: {exc or type(exc).__name__}")
