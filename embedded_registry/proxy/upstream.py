"""The pull-through cache's client of one upstream registry (aiohttp).

Authentication as a registry client does it: a 401 with a ``Bearer`` challenge gets a token
from the realm it names (with the configured credentials, for ``repository:<name>:pull``), a
``Basic`` challenge the configured credentials. Credentials (the Basic header and the bearer
token alike) go to the upstream's origin only: redirects are followed by hand, and a hop to
another origin (a blob's CDN, a bucket) is made without ``Authorization``. The token realm the
upstream names gets the username and password over HTTPS, or on the upstream's own host.

Every failure is an :class:`UpstreamError` whose text is one sentence naming the upstream; the
cache turns it into an OCI error (or serves what it has).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from urllib.parse import urlencode, urljoin, urlsplit

import aiohttp

from embedded_registry.config import ProxyConfig

MAX_REDIRECTS = 5
READ_BUFSIZE = 4 << 20
"""aiohttp's client buffer (default 64 KiB, which pauses the socket many times per 2 MiB piece
the cache writes and hashes)."""
MAX_TOKEN_BODY = 1 << 20
TOKEN_LEEWAY = 10.0
DEFAULT_TOKEN_LIFETIME = 60.0
DOCKER_HUB_HOSTS = frozenset(
    {"registry-1.docker.io", "index.docker.io", "docker.io", "registry.hub.docker.com"}
)
_CHALLENGE_PARAM = re.compile(r'([a-zA-Z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


class UpstreamError(Exception):
    """The upstream could not answer (unreachable, timed out, 5xx, refused credentials)."""

    status = 502
    """The status the cache answers with when it has nothing to serve instead."""


class UpstreamTimeout(UpstreamError):
    status = 504


def origin(url: str) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of ``url``, the port made explicit."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, (parts.hostname or "").lower(), port


@dataclass(frozen=True)
class Challenge:
    scheme: str
    params: Mapping[str, str]


def parse_challenge(header: str) -> Challenge | None:
    """The first challenge of a ``WWW-Authenticate`` header (``Bearer realm=...``)."""
    scheme, _, rest = header.strip().partition(" ")
    if not scheme:
        return None
    params = {
        m.group(1).lower(): m.group(2) or m.group(3) or "" for m in _CHALLENGE_PARAM.finditer(rest)
    }
    return Challenge(scheme.lower(), params)


def _why(exc: aiohttp.ClientError) -> str:
    """A connection failure in a few words (``connection refused``), not a class name."""
    os_error = getattr(exc, "os_error", None)
    reason = getattr(os_error, "strerror", None)
    return str(reason).lower() if reason else exc.__class__.__name__


class Upstream:
    """One upstream registry: its base URL, credentials and a session (opened lazily)."""

    def __init__(self, settings: ProxyConfig) -> None:
        self.settings = settings
        self.base = settings.remoteurl.rstrip("/")
        self.origin = origin(self.base)
        self.docker_hub = self.origin[1] in DOCKER_HUB_HOSTS
        self._session: aiohttp.ClientSession | None = None
        self._challenge: Challenge | None = None
        self._tokens: dict[str, tuple[str, float]] = {}
        self._token_locks: dict[str, asyncio.Lock] = {}

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            timeout = self.settings.timeout
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(
                    total=None, connect=timeout, sock_connect=timeout, sock_read=timeout
                ),
                auto_decompress=False,
                connector=aiohttp.TCPConnector(limit=64),
                read_bufsize=READ_BUFSIZE,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def remote_name(self, local: str) -> str:
        """The upstream's name of the local repository ``local`` (its namespace removed);
        on Docker Hub a one-part name is an official image (``library/``), as docker does."""
        namespace = self.settings.namespace
        name = local[len(namespace) + 1 :] if namespace else local
        if namespace and self.docker_hub and "/" not in name:
            name = f"library/{name}"
        return name

    def describe(self) -> str:
        return f"upstream {self.base}"

    # -- authentication ---------------------------------------------------------------------
    def _basic(self) -> str | None:
        user, password = self.settings.username, self.settings.password
        if not user or password is None:
            return None
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    async def _authorization(self, scope: str) -> str | None:
        challenge = self._challenge
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            return self._basic()
        if challenge.scheme != "bearer":
            return None
        cached = self._tokens.get(scope)
        if cached is not None and cached[1] > time.monotonic():
            return f"Bearer {cached[0]}"
        lock = self._token_locks.setdefault(scope, asyncio.Lock())
        async with lock:
            cached = self._tokens.get(scope)
            if cached is not None and cached[1] > time.monotonic():
                return f"Bearer {cached[0]}"
            token, lifetime = await self._fetch_token(challenge, scope)
            self._tokens[scope] = (token, time.monotonic() + max(lifetime - TOKEN_LEEWAY, 1.0))
            return f"Bearer {token}"

    async def _fetch_token(self, challenge: Challenge, scope: str) -> tuple[str, float]:
        realm = challenge.params.get("realm", "")
        if urlsplit(realm).scheme not in ("http", "https"):
            raise UpstreamError(f"{self.describe()} names no usable token realm ({realm!r})")
        query = {"scope": scope}
        if challenge.params.get("service"):
            query["service"] = challenge.params["service"]
        headers = {}
        basic = self._basic()
        # The password goes to the realm the upstream names over TLS, or in clear to the
        # upstream's own host only (a token server beside a plain-HTTP registry).
        if basic is not None and (
            realm.startswith("https://") or origin(realm)[1] == self.origin[1]
        ):
            headers["Authorization"] = basic
        separator = "&" if "?" in realm else "?"
        try:
            async with self.session.get(
                f"{realm}{separator}{urlencode(query)}", headers=headers, allow_redirects=False
            ) as response:
                body = await response.content.read(MAX_TOKEN_BODY)
                status = response.status
        except TimeoutError:
            raise UpstreamTimeout(f"{self.describe()}: its token server timed out") from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(
                f"{self.describe()}: its token server is unreachable ({_why(exc)})"
            ) from None
        if status != 200:
            raise UpstreamError(
                f"{self.describe()}: its token server refused the credentials (HTTP {status}); "
                "check the proxy's username and password"
            )
        try:
            document = json.loads(body)
            token = document.get("token") or document.get("access_token")
            lifetime = float(document.get("expires_in") or DEFAULT_TOKEN_LIFETIME)
        except (ValueError, AttributeError, TypeError):
            token = None
            lifetime = DEFAULT_TOKEN_LIFETIME
        if not isinstance(token, str) or not token:
            raise UpstreamError(f"{self.describe()}: its token server sent no token")
        return token, lifetime

    # -- requests ---------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def request(
        self, method: str, path: str, *, name: str, headers: Mapping[str, str] | None = None
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """``method`` on ``path`` (``/v2/...``) of the upstream, authenticated for pulls of
        ``name`` (the upstream's name), redirects followed (credentials kept to the upstream's
        origin). Yields the final response (any status); UpstreamError when none came."""
        scope = f"repository:{name}:pull"
        url = self.base + path
        sent = dict(headers or {})
        response = await self._send(method, url, sent, scope)
        if response.status == 401:
            challenge = parse_challenge(response.headers.get("WWW-Authenticate", ""))
            response.release()
            if challenge is not None and challenge.scheme in ("basic", "bearer"):
                if challenge.scheme == "bearer" or self._challenge != challenge:
                    self._tokens.pop(scope, None)
                self._challenge = challenge
                response = await self._send(method, url, sent, scope)
        try:
            yield response
        finally:
            response.release()

    async def _send(
        self, method: str, url: str, headers: dict[str, str], scope: str
    ) -> aiohttp.ClientResponse:
        authorization = await self._authorization(scope)
        for _ in range(MAX_REDIRECTS + 1):
            sent = dict(headers)
            if authorization is not None and origin(url) == self.origin:
                sent["Authorization"] = authorization
            try:
                response = await self.session.request(
                    method, url, headers=sent, allow_redirects=False
                )
            except TimeoutError:
                raise UpstreamTimeout(f"{self.describe()} timed out") from None
            except aiohttp.ClientError as exc:
                raise UpstreamError(f"{self.describe()} is unreachable ({_why(exc)})") from None
            location = response.headers.get("Location")
            if response.status in (301, 302, 303, 307, 308) and location:
                response.release()
                url = urljoin(url, location)
                if urlsplit(url).scheme not in ("http", "https"):
                    raise UpstreamError(f"{self.describe()} redirected to a non-HTTP URL")
                if response.status == 303:
                    method = "GET"
                continue
            return response
        raise UpstreamError(f"{self.describe()} redirected more than {MAX_REDIRECTS} times")
