"""The transport layer of the registry client: connections, retries, and errors.

Scheme: a registry named with ``http://`` or ``https://`` is spoken to that way. Without a
scheme, HTTPS, except on loopback where plain HTTP is tried first and HTTPS is used as soon as the
server shows it speaks TLS (a dropped connection or a TLS handshake, nginx's 400 "The plain HTTP
request was sent to HTTPS port", Go's "Client sent an HTTP request to an HTTPS server", or any
non-registry answer that HTTPS then improves on); the result is kept for the client's life.
``ca_cert`` implies HTTPS. A mismatch (HTTPS spoken to a plain server, plain HTTP to a TLS one,
an unknown CA) is reported in one sentence with the option that fixes it.

Deadlines and bounds: see :mod:`tui.client._limits`. Every request has one deadline of
``timeout`` seconds for its whole exchange (auth round trips and body included); a timeout is
reported as :class:`~tui.client.errors.RegistryTimeoutError` and not retried, so a registry that
trickles bytes cannot hold a command past it.

Credentials never leave the registry's origin (scheme, host and port), see
:mod:`tui.client.auth`; redirects drop ``Authorization`` (httpx does: a blob GET redirected to a
CDN or S3 is followed without it).
"""

from __future__ import annotations

import asyncio
import email.utils
import http.cookiejar
import random
import re
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import httpx

from tui.client._failures import HTTPS_HINT, is_tls, transport_error
from tui.client._limits import (
    MAX_JSON_BYTES,
    MAX_PAGES,
    MAX_SMALL_BODY_BYTES,
    check_json_depth,
    loads_json,
    read_bounded,
)
from tui.client._transport import ClientTransport
from tui.client.auth import RegistryAuth, resolve_credentials
from tui.client.errors import (
    AuthError,
    DeleteDisabledError,
    MalformedResponseError,
    NotFoundError,
    RateLimitedError,
    RegistryClientError,
    RegistryTimeoutError,
    TLSError,
    UnsupportedError,
)
from tui.client.reference import (
    InvalidReferenceError,
    api_host,
    is_loopback_host,
    parse_registry,
)

if TYPE_CHECKING:
    import ssl

__all__ = ["IDEMPOTENT", "RETRY_STATUSES", "ClientBase", "oci_errors", "transport_error"]

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})
UPLOAD_RATE = 1024 * 1024
"""Bytes a second a request body is given on top of the deadline (a PUT of 8 MiB: 8 s more)."""
RETRY_STATUSES = frozenset({429, 502, 503, 504})


def oci_errors(response: httpx.Response) -> tuple[str | None, str | None]:
    """The first OCI error ``(code, message)`` of a response body, if it has one."""
    try:
        data = loads_json(response.content, "error answer")
    except (MalformedResponseError, httpx.ResponseNotRead):
        return None, None
    errors = data.get("errors") if isinstance(data, dict) else None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        first = errors[0]
        code, message = first.get("code"), first.get("message")
        return (str(code) if code else None, str(message) if message else None)
    return None, None


def _ca_context(ca_cert: str) -> ssl.SSLContext:
    """The system trust store and the CA certificates of the file ``ca_cert``."""
    import ssl

    context = ssl.create_default_context()
    try:
        context.load_verify_locations(cafile=ca_cert)
    except (OSError, ssl.SSLError) as exc:
        raise TLSError(f"Cannot load the CA certificate {ca_cert}: {exc}") from exc
    return context


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
    bounded concurrency, retries with back-off, and statuses turned into errors.

    ``fast_after``: how many requests go through a light transport (quick to import) before
    aiohttp's pool (quick per request) takes over; ``0`` for a client that will walk a registry,
    ``None`` for the default (:data:`tui.client._transport.FAST_AFTER`). Ignored with
    ``transport``.
    """

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
        fast_after: int | None = None,
        max_retries: int = 3,
        max_retry_wait: float = 60.0,
        backoff: float = 0.2,
        max_pages: int = MAX_PAGES,
        rate_limit: float | None = None,
    ) -> None:
        try:
            scheme, host = parse_registry(registry)
        except InvalidReferenceError as exc:
            raise RegistryClientError(str(exc), title="Invalid registry") from exc
        self.registry = "docker.io" if api_host(host) != host else host
        self.host = api_host(host)
        self.insecure = insecure
        self.timeout = timeout
        """Seconds for a whole request (see :mod:`tui.client._limits`)."""
        self.max_pages = max_pages
        """Pagination stops with an error after this many pages of one list."""
        if ca_cert and scheme == "http":
            raise TLSError(
                f"--ca-cert is for HTTPS, but the registry was named http://{self.host}: "
                f"name it https://{self.host} or without a scheme",
                title="Conflicting options",
            )
        if ca_cert and not insecure:
            scheme = "https"  # a CA file means TLS: no plain-HTTP probe
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
        self.auth = RegistryAuth(self.credentials, insecure=insecure)
        self.auth.origin = _origin(self.base_url)
        self.max_retries = max_retries
        self.max_retry_wait = max_retry_wait
        self.backoff = backoff
        """First retry delay in seconds; it doubles per retry (with jitter), capped at 8 s."""
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._interval = 1.0 / rate_limit if rate_limit else 0.0
        """``rate_limit`` requests per second at most (retries count): seconds between starts."""
        self._next_start = 0.0
        verify: ssl.SSLContext | bool = not insecure
        """``True``: the system trust store (and ``SSL_CERT_FILE``), loaded when HTTPS is first
        spoken (see :mod:`tui.client._transport`)."""
        if ca_cert and not insecure:
            verify = _ca_context(ca_cert)
        self.verify = verify
        """How TLS peers are verified (for side connections, e.g. ``tui.client.ext``'s)."""
        self.timeout = timeout
        self.own_transport = transport is None
        """Whether requests go through the client's own transport (not one given: a test's,
        a proxy's); :mod:`tui.client.bulk` pipelines only then."""
        if transport is None:
            # TLS, the pool (one connection per request in flight) and proxies are the
            # transport's business: httpx ignores its own settings for them beside a transport.
            # A few requests go through a light transport, many through aiohttp's pool.
            transport = ClientTransport(
                verify=verify, max_connections=max_concurrency, fast_after=fast_after
            )
        self._http = httpx.AsyncClient(
            auth=self.auth,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            transport=transport,
            follow_redirects=True,
            headers={"User-Agent": "regtui"},
            cookies=_NoCookies(),
            event_hooks={"response": [_bound_redirect_body]},
        )
        self._probed = scheme is not None
        self._probe_lock = asyncio.Lock()

    # ------------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> Self:
        try:
            await self._ensure_base_url()
        except BaseException:
            await self.aclose()  # no __aexit__ follows a failed __aenter__
            raise
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
        no TLS handshake to fail first); a TLS server on loopback (the registry itself, or nginx
        in front of it) is then detected and HTTPS used. With ``--insecure`` on other hosts,
        HTTPS is tried first, as Docker does, and plain HTTP only when HTTPS cannot be spoken.
        Probes never carry credentials and read at most 1 MiB; a probe that gets no answer
        within ``timeout`` raises :class:`RegistryTimeoutError` at once.
        """
        if self._probed:
            return
        async with self._probe_lock:
            if self._probed:
                return
            if is_loopback_host(self.host):
                plain = await self._probe("http")
                if plain == "registry" or (
                    plain == "other" and await self._probe("https") != "registry"
                ):
                    self.base_url = f"http://{self.host}"
                # else HTTPS: a TLS server answered the plain probe (or dropped it, or nothing
                # answered: the error of the first request then says why)
            elif self.insecure and await self._probe("https") == "failed":
                self.base_url = f"http://{self.host}"
            self.auth.origin = _origin(self.base_url)
            self._probed = True

    async def _probe(self, scheme: str) -> str:
        """``registry`` (a v2 answer), ``tls`` (a plain request met a TLS server), ``other``
        (an HTTP answer, not a registry's) or ``failed`` (no HTTP spoken at all)."""
        url = f"{scheme}://{self.host}/v2/"
        try:
            async with asyncio.timeout(self.timeout):
                request = self._http.build_request("GET", url)
                response = await self._http.send(request, stream=True, auth=None)
                body = await read_bounded(response, MAX_SMALL_BODY_BYTES, "/v2/")
        except (TimeoutError, httpx.TimeoutException) as exc:
            # Silence is no answer about the scheme either: say it now, not after a 2nd wait.
            raise self._timeout_error(f"GET {url}") from exc
        except (httpx.TransportError, RegistryClientError):
            return "failed"  # a TLS server drops a plain request; nothing listens
        if response.status_code == 400 and HTTPS_HINT.search(body[:4096]):
            return "tls"
        if response.status_code in (200, 401) or "Docker-Distribution-API-Version" in (
            response.headers
        ):
            return "registry"
        return "other"

    # ------------------------------------------------------------------ requests
    def _url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base_url}{path}"

    async def request(
        self,
        method: str,
        path: str,
        *,
        max_bytes: int = MAX_JSON_BYTES,
        deadline: float | None = None,
        check_depth: bool = True,
        **kw: Any,
    ) -> httpx.Response:
        """Send an authenticated request; idempotent ones are retried with back-off.

        Transport failures become :class:`ConnectError`/:class:`TLSError`, a request not done
        within ``timeout`` seconds :class:`RegistryTimeoutError`, a body over ``max_bytes``
        :class:`~tui.client.errors.ResponseTooLargeError` (reading stops there), a JSON body
        nested deeper than 256 levels :class:`MalformedResponseError`. HTTP statuses are
        returned as they are (use :meth:`raise_for_status`), except that a 429 still there after
        the retries raises :class:`RateLimitedError`. The body is read. ``deadline``: seconds
        for this request instead of ``timeout`` (an answer the server needs long to make).
        ``check_depth=False``: the caller parses the body where deep nesting is caught (a
        parse off the event loop: the check scans the whole body on the loop, 0.2 s and more
        for megabytes).
        """
        return await self._send(
            method,
            path,
            stream=False,
            max_bytes=max_bytes,
            deadline=deadline,
            check_depth=check_depth,
            **kw,
        )

    async def _send(
        self,
        method: str,
        path: str,
        *,
        stream: bool,
        max_bytes: int = MAX_JSON_BYTES,
        what: str | None = None,
        deadline: float | None = None,
        check_depth: bool = True,
        **kw: Any,
    ) -> httpx.Response:
        """One request with retries. The deadline covers the exchange up to the end of the body,
        or up to the headers for a ``stream`` (the stream's reader then watches for stalls)."""
        await self._ensure_base_url()
        url = self._url(path)
        what = what or f"{method.upper()} {_path_of(url)}"
        retriable = method.upper() in IDEMPOTENT
        content = kw.get("content")
        if deadline is not None:
            kw["timeout"] = httpx.Timeout(deadline, connect=min(self.timeout, 10.0))
        deadline = deadline or self.timeout
        if isinstance(content, bytes | bytearray):
            deadline += len(content) / UPLOAD_RATE  # a body to send gets time for it too
        attempt = 0
        while True:
            if self._interval:
                await self._wait_for_rate()
            try:
                async with self._semaphore, asyncio.timeout(deadline):
                    request = self._http.build_request(method, url, **kw)
                    response = await self._http.send(request, stream=True)
                    if not stream:
                        body = await read_bounded(response, max_bytes, what)
                        if check_depth and _LOOKS_JSON.match(body):
                            check_json_depth(body, f"answer to {what}")
            except TimeoutError as exc:
                raise self._timeout_error(what, deadline) from exc
            except httpx.TransportError as exc:
                if isinstance(exc, httpx.TimeoutException):
                    raise self._timeout_error(what, deadline) from exc
                if retriable and attempt < self.max_retries and not is_tls(exc):
                    attempt += 1
                    await asyncio.sleep(self._backoff(attempt))
                    continue
                raise self._transport_error(exc) from exc
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
                    await self.read_error_body(response)
                raise self._status_error(response, "request")
            return response

    async def _wait_for_rate(self) -> None:
        """Space request starts ``1 / rate_limit`` seconds apart (for registries that throttle:
        fewer 429s than retrying after them)."""
        now = asyncio.get_running_loop().time()
        start = max(now, self._next_start)
        self._next_start = start + self._interval
        if start > now:
            await asyncio.sleep(start - now)

    async def read_error_body(self, response: httpx.Response) -> None:
        """Read (at most 1 MiB of) a streamed error answer, for its OCI error message."""
        try:
            async with asyncio.timeout(self.timeout):
                await read_bounded(response, MAX_SMALL_BODY_BYTES, "an error answer")
        except (TimeoutError, httpx.TransportError, RegistryClientError):
            await response.aclose()
            response._content = b""  # the status alone says what went wrong

    def _timeout_error(self, what: str, seconds: float | None = None) -> RegistryTimeoutError:
        return RegistryTimeoutError.late(
            self.host, what, self.timeout if seconds is None else seconds
        )

    def _transport_error(self, exc: httpx.TransportError) -> RegistryClientError:
        return transport_error(
            exc,
            self.host,
            scheme=httpx.URL(self.base_url).scheme,
            insecure=self.insecure,
            timeout=self.timeout,
        )

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
        if (
            status == 400
            and response.request.url.scheme == "http"
            and HTTPS_HINT.search(_peek(response))
        ):
            return TLSError(
                f"{self.host} speaks HTTPS, not plain HTTP: name it https://{self.host} "
                "(or without a scheme), not http://",
                title="HTTPS expected",
                response=response,
            )
        if status in (401, 403) and not self.auth.same_origin(response.request.url):
            elsewhere = response.request.url.netloc.decode()
            return AuthError(
                f"{elsewhere}, another origin that {self.host} sent regtui to for {what}, "
                f"answered {status}; regtui sends no credentials there",
                response=response,
                code=code,
            )
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

    def check_followable(self, url: httpx.URL, what: str) -> None:
        """Refuse a URL the registry points to (``Link``, ``Location``) that would downgrade to
        plain HTTP on a remote host without ``--insecure``; other origins are followed without
        credentials (see :mod:`tui.client.auth`)."""
        if url.scheme == "http" and not self.insecure and not is_loopback_host(url.host):
            raise TLSError(
                f"{self.host} sent regtui to plain HTTP at {url.netloc.decode()} for {what}; "
                "regtui does not follow it without --insecure",
                title="Plain HTTP refused",
            )
        if url.scheme not in ("http", "https"):
            raise MalformedResponseError(f"{self.host} sent regtui to {url} for {what}")

    async def _get_ok(self, path: str, what: str, **kw: Any) -> httpx.Response:
        response = await self.request("GET", path, **kw)
        self.raise_for_status(response, what)
        return response


_LOOKS_JSON = re.compile(rb"\s*[\[{]")


def _peek(response: httpx.Response) -> bytes:
    try:
        return response.content[:4096]
    except httpx.ResponseNotRead:
        return b""


def _path_of(url: str) -> str:
    """The path of an absolute URL, cheaply (no URL parsing on every request)."""
    rest = url.split("://", 1)[-1]
    slash = rest.find("/")
    return rest[slash:].split("?", 1)[0] if slash >= 0 else "/"


def _origin(url: str) -> tuple[str, str, int]:
    parsed = httpx.URL(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return parsed.scheme, parsed.host, port


async def _bound_redirect_body(response: httpx.Response) -> None:
    """httpx reads a redirect's body whole before following it: read it here, bounded."""
    if response.has_redirect_location:
        await read_bounded(response, MAX_SMALL_BODY_BYTES, "a redirect")
