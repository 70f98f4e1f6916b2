"""Registry authentication: challenges, credentials, and one ``httpx.Auth`` for Basic and Bearer.

The Bearer flow is the one of Docker Hub, Distribution and Harbor: a request answered ``401`` with
``WWW-Authenticate: Bearer realm=...,service=...,scope=...`` is retried once with a token fetched
from the realm for that scope (anonymously, or with the credentials as Basic). Tokens are cached
per scope, and the scope a request needs is remembered so later requests send the token at once.

Where credentials go (never anywhere else):

- Basic credentials and Bearer tokens are sent only to the registry's own origin (its scheme,
  host and port, as decided when the client connects). A request to another origin (a ``Link``
  of the catalog, tags or referrers, an upload ``Location``) is sent *without* them, and a 401
  from there is not answered: regtui follows such links, anonymously.
- Basic credentials (or a refresh token) go to a token service (the challenge's ``realm``) only
  over HTTPS, over plain HTTP on loopback, or with ``--insecure``; otherwise the token is asked
  for anonymously and ``token_error`` says why the credentials were withheld.
- Redirects drop ``Authorization`` when they leave the origin (httpx does; a blob GET redirected
  to S3 or a CDN is followed without it).

Token answers and 401 bodies are read up to 1 MiB, parsed with bounded nesting.

Credentials come from, in order: explicit arguments, the environment (``REGTUI_USERNAME`` /
``REGTUI_PASSWORD``), and Docker's ``config.json`` (``credHelpers``, ``credsStore``, ``auths``).
A password never appears in a ``repr`` or an error message.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import AsyncGenerator, Generator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import httpx

from tui.client._dockerconfig import (
    ENV_PASSWORD,
    ENV_USERNAME,
    config_keys,
    default_docker_config,
)
from tui.client._limits import MAX_SMALL_BODY_BYTES, loads_json, read_bounded
from tui.client.errors import MalformedResponseError
from tui.client.reference import is_loopback_host

__all__ = [
    "Challenge",
    "Credentials",
    "RegistryAuth",
    "credentials_from_docker_config",
    "parse_www_authenticate",
    "resolve_credentials",
    "scope_for_request",
]

_HELPER_TIMEOUT = 20.0

_PARAM_RE = re.compile(r'\s*([a-zA-Z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*(,|$)')


@dataclass(frozen=True)
class Challenge:
    scheme: str
    """Lower case: ``basic`` or ``bearer`` (or whatever the server said)."""
    params: Mapping[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str | None:
        return self.params.get("realm")

    @property
    def service(self) -> str | None:
        return self.params.get("service")

    @property
    def scope(self) -> str | None:
        return self.params.get("scope")


def parse_www_authenticate(header: str) -> list[Challenge]:
    """Parse a ``WWW-Authenticate`` value into its challenges (RFC 7235, quoted strings too)."""
    challenges: list[Challenge] = []
    rest = header.strip()
    while rest:
        match = re.match(r"([A-Za-z][A-Za-z0-9_-]*)\s*", rest)
        if not match:
            break
        scheme = match.group(1).lower()
        rest = rest[match.end() :]
        params: dict[str, str] = {}
        while rest:
            param = _PARAM_RE.match(rest)
            if not param:
                break
            value = param.group(2)
            value = re.sub(r"\\(.)", r"\1", value) if value is not None else param.group(3)
            params[param.group(1).lower()] = value
            rest = rest[param.end() :]
        challenges.append(Challenge(scheme, params))
        rest = rest.lstrip(", ")
    return challenges


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)
    identity_token: str | None = field(default=None, repr=False)
    """A refresh token from ``docker login`` (username ``<token>``): used with OAuth2 POST."""
    source: str = "arguments"
    """Where they came from, for messages: arguments, environment, config.json, a helper."""

    def basic_header(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()


def _run_helper(helper: str, server: str) -> Credentials | None:
    program = shutil.which(f"docker-credential-{helper}")
    if program is None:
        return None
    try:
        done = subprocess.run(
            [program, "get"],
            input=server.encode(),
            capture_output=True,
            timeout=_HELPER_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None  # "credentials not found in native keychain" and the like
    try:
        data = json.loads(done.stdout)
    except ValueError:
        return None
    username, secret = str(data.get("Username", "")), str(data.get("Secret", ""))
    if not secret:
        return None
    source = f"docker-credential-{helper}"
    if username == "<token>":
        return Credentials("", "", identity_token=secret, source=source)
    return Credentials(username, secret, source=source)


def credentials_from_docker_config(registry: str, config_path: Path) -> Credentials | None:
    """Look ``registry`` up in a Docker ``config.json``: helpers first, then ``auths``."""
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict):
        return None
    keys = config_keys(registry)
    helpers = config.get("credHelpers") or {}
    for key in keys:
        if isinstance(helpers, dict) and key in helpers:
            return _run_helper(str(helpers[key]), key)
    auths = config.get("auths") or {}
    entry: Mapping[str, object] | None = None
    for key in keys:
        if isinstance(auths, dict) and isinstance(auths.get(key), dict):
            entry = auths[key]
            break
    store = config.get("credsStore")
    if store:
        found = _run_helper(str(store), keys[0])
        if found is not None:
            return found
    if entry is None:
        return None
    identity = entry.get("identitytoken")
    encoded = entry.get("auth")
    if isinstance(encoded, str) and encoded:
        try:
            username, _, password = base64.b64decode(encoded).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        if identity:
            return Credentials(
                username, password, identity_token=str(identity), source=str(config_path)
            )
        return Credentials(username, password, source=str(config_path))
    if identity:
        return Credentials("", "", identity_token=str(identity), source=str(config_path))
    return None


def resolve_credentials(
    registry: str,
    *,
    username: str | None = None,
    password: str | None = None,
    docker_config: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Credentials | None:
    """Credentials for ``registry``: arguments, then environment, then Docker's config."""
    if username is not None and password is not None:
        return Credentials(username, password, source="arguments")
    env = os.environ if environ is None else environ
    env_user, env_password = env.get(ENV_USERNAME), env.get(ENV_PASSWORD)
    if username is None and env_user is not None and env_password is not None:
        return Credentials(env_user, env_password, source="environment")
    if username is not None and env_password is not None:
        return Credentials(username, env_password, source="environment")
    return credentials_from_docker_config(registry, docker_config or default_docker_config())


_TOKEN_VALUE_RE = re.compile(r"[\x21-\x7e]{1,65536}")
"""A token as a header carries it: visible ASCII, no space, bounded."""
_REPO_PATH_RE = re.compile(r"^/v2/(.+?)/(manifests|blobs|tags|referrers|_regtui)(/|$)")


def scope_for_request(request: httpx.Request) -> str | None:
    """The token scope that a request needs, guessed from its path and method."""
    path = request.url.path
    if path.rstrip("/") == "/v2/_catalog":
        return "registry:catalog:*"
    match = _REPO_PATH_RE.match(path)
    if not match:
        return None
    name = match.group(1)
    if request.method in ("GET", "HEAD"):
        return f"repository:{name}:pull"
    if request.method == "DELETE":
        return f"repository:{name}:delete"
    return f"repository:{name}:pull,push"


@dataclass
class _Token:
    value: str
    expires_at: float


class RegistryAuth(httpx.Auth):
    """Basic or Bearer, decided by the registry's challenge; one retry after a 401."""

    def __init__(self, credentials: Credentials | None = None, *, insecure: bool = False) -> None:
        self.credentials = credentials
        self.insecure = insecure
        """With ``--insecure``, credentials may go to a token service over plain HTTP."""
        self.origin: tuple[str, str, int] | None = None
        """``(scheme, host, port)`` of the registry: credentials and tokens go there only
        (``None``: anywhere, for a bare ``RegistryAuth`` outside a client)."""
        self.scheme: str | None = None
        """The scheme the registry asked for (``basic``/``bearer``), once known."""
        self._bearer: Challenge | None = None
        self._tokens: dict[str, _Token] = {}
        self._scope_of: dict[str, str] = {}
        self._inflight: dict[str, asyncio.Future[_Token | None]] = {}
        """Scope -> the answer of the token request under way for it (single flight)."""
        self.token_requests = 0
        """How many tokens were fetched (tests check the cache with it)."""
        self.token_error: str | None = None
        """Why the last token request failed (for the error message), else ``None``."""
        self.withheld_from: str | None = None
        """The token service host the last token request withheld the credentials from."""

    # -- the flow as a plain generator: it yields requests and receives responses
    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        guessed = scope_for_request(request)
        self._apply_known(request, guessed)
        response = yield request
        if response.status_code != 401 or not self.same_origin(request.url):
            return
        bearer, basic = self._challenges(response)
        if bearer is not None:
            self.scheme, self._bearer = "bearer", bearer
            scope = bearer.scope or guessed or ""
            token_response = yield self._token_request(bearer, scope)
            token = self._read_token(token_response)
            if token is None:
                # Send the request once more without a token, so that the caller gets the
                # registry's own 401 (not the token service's answer) to report.
                self.token_error = _describe_token_failure(token_response)
                yield request
                return
            self.token_error = None
            self._tokens[scope] = token
            if guessed is not None:
                self._scope_of[guessed] = scope
            request.headers["Authorization"] = f"Bearer {token.value}"
            yield request
        elif basic is not None:
            self.scheme = "basic"
            if self.credentials is None or "Authorization" in request.headers:
                return
            request.headers["Authorization"] = self.credentials.basic_header()
            yield request

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """The same flow as :meth:`auth_flow`, with one token request per scope in flight.

        When many requests for one scope meet a cold cache (a concurrent walk of a repository),
        the first one to be challenged fetches the token and the others wait for its answer
        instead of each asking the token service. Bodies are read only where the flow needs
        them (token answers, 401s): never a blob stream.
        """
        guessed = scope_for_request(request)
        self._apply_known(request, guessed)
        response = yield request
        if response.status_code != 401 or not self.same_origin(request.url):
            return
        await read_bounded(response, MAX_SMALL_BODY_BYTES, "a 401 answer")
        bearer, basic = self._challenges(response)
        if bearer is None:
            if basic is not None:
                self.scheme = "basic"
                if self.credentials is not None and "Authorization" not in request.headers:
                    request.headers["Authorization"] = self.credentials.basic_header()
                    yield request
            return
        self.scheme, self._bearer = "bearer", bearer
        scope = bearer.scope or guessed or ""
        must_fetch, token = await self._shared_token(scope, request.headers.get("Authorization"))
        if must_fetch:
            future: asyncio.Future[_Token | None] = asyncio.get_running_loop().create_future()
            self._inflight[scope] = future
            try:
                token_response = yield self._token_request(bearer, scope)
                await read_bounded(token_response, MAX_SMALL_BODY_BYTES, "a token answer")
                token = self._read_token(token_response)
                if token is None:
                    self.token_error = _describe_token_failure(token_response)
                    if self.withheld_from is not None:
                        self.token_error += (
                            f"; regtui did not send your credentials to {self.withheld_from} "
                            "over plain HTTP (pass --insecure to allow it)"
                        )
                else:
                    self.token_error = None
                    self._tokens[scope] = token
                future.set_result(token)
            finally:
                if not future.done():
                    future.cancel()  # the sender went away: the waiters ask for themselves
                del self._inflight[scope]
        if token is None:
            # Send the request once more without a token, so that the caller gets the
            # registry's own 401 (not the token service's answer) to report.
            yield request
            return
        if guessed is not None:
            self._scope_of[guessed] = scope
        request.headers["Authorization"] = f"Bearer {token.value}"
        yield request

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        flow = self.auth_flow(request)
        outgoing = next(flow)
        while True:
            response = yield outgoing
            if response.status_code == 401 or outgoing.extensions.get("regtui_token"):
                response.read()
            try:
                outgoing = flow.send(response)
            except StopIteration:
                break

    async def _shared_token(self, scope: str, rejected: str | None) -> tuple[bool, _Token | None]:
        """``(True, None)``: fetch a token for ``scope``; else ``(False, token)`` where another
        request fetched one (``None``: the token service refused it). ``rejected`` is the
        Authorization the registry just refused: that token is not reused."""
        while True:
            token = self._tokens.get(scope)
            fresh = token is not None and token.expires_at > time.monotonic()
            if token is not None and fresh and f"Bearer {token.value}" != rejected:
                return False, token
            pending = self._inflight.get(scope)
            if pending is None:
                return True, None
            try:
                return False, await asyncio.shield(pending)
            except asyncio.CancelledError:
                if not pending.cancelled():
                    raise  # we are cancelled ourselves
                # the fetching request was abandoned: look again (and maybe fetch)

    @staticmethod
    def _challenges(response: httpx.Response) -> tuple[Challenge | None, Challenge | None]:
        """The Bearer (with a realm) and the Basic challenge of a 401, where given."""
        challenges = parse_www_authenticate(response.headers.get("WWW-Authenticate", ""))
        bearer = next((c for c in challenges if c.scheme == "bearer" and c.realm), None)
        basic = next((c for c in challenges if c.scheme == "basic"), None)
        return bearer, basic

    def same_origin(self, url: httpx.URL) -> bool:
        """Whether ``url`` is the registry's origin (where credentials may go)."""
        if self.origin is None:
            return True
        port = url.port or (443 if url.scheme == "https" else 80)
        return (url.scheme, url.host, port) == self.origin

    def realm_may_get_credentials(self, realm: httpx.URL) -> bool:
        """HTTPS, plain HTTP on loopback, or anything with ``--insecure``."""
        if realm.scheme == "https" or self.insecure:
            return True
        return realm.scheme == "http" and is_loopback_host(realm.host)

    def known_authorization(self, scope: str) -> str | None:
        """The ``Authorization`` a request to the registry's origin that needs ``scope`` would
        carry now, without a challenge (``None``: none known yet, or the token expired); for
        the pipelined reads of :mod:`tui.client.bulk`, which send it to that origin only."""
        if self.scheme == "basic" and self.credentials is not None:
            return self.credentials.basic_header()
        if self.scheme == "bearer":
            token = self._tokens.get(self._scope_of.get(scope, scope))
            if token is not None and token.expires_at > time.monotonic():
                return f"Bearer {token.value}"
        return None

    def _apply_known(self, request: httpx.Request, guessed: str | None) -> None:
        if "Authorization" in request.headers or not self.same_origin(request.url):
            return
        if self.scheme == "basic" and self.credentials is not None:
            request.headers["Authorization"] = self.credentials.basic_header()
        elif self.scheme == "bearer":
            scope = self._scope_of.get(guessed or "", guessed or "")
            token = self._tokens.get(scope)
            if token is not None and token.expires_at > time.monotonic():
                request.headers["Authorization"] = f"Bearer {token.value}"

    def _token_request(self, challenge: Challenge, scope: str) -> httpx.Request:
        assert challenge.realm is not None
        creds = self.credentials
        self.withheld_from = None
        if creds is not None and not self.realm_may_get_credentials(httpx.URL(challenge.realm)):
            self.withheld_from = httpx.URL(challenge.realm).host
            creds = None  # ask anonymously: the credentials stay home
        params: list[tuple[str, str]] = []
        if challenge.service:
            params.append(("service", challenge.service))
        scopes = [s for s in scope.split(" ") if s]
        if creds is not None and creds.identity_token:
            form = [
                ("grant_type", "refresh_token"),
                ("refresh_token", creds.identity_token),
                ("client_id", "regtui"),
                *params,
                *(("scope", s) for s in scopes),
            ]
            request = httpx.Request(
                "POST",
                challenge.realm,
                content=urlencode(form).encode(),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
        else:
            params.extend(("scope", s) for s in scopes)
            url = httpx.URL(challenge.realm)
            query = urlencode(params)
            if query:
                joined = f"{url.query.decode()}&{query}" if url.query else query
                url = url.copy_with(query=joined.encode())
            headers = {}
            if creds is not None and creds.username:
                headers["Authorization"] = creds.basic_header()
            request = httpx.Request("GET", url, headers=headers)
        request.extensions["regtui_token"] = True
        self.token_requests += 1
        return request

    @staticmethod
    def _read_token(response: httpx.Response) -> _Token | None:
        if response.status_code != 200:
            return None
        try:
            data = loads_json(response.content, "token answer")
        except (MalformedResponseError, httpx.ResponseNotRead):
            return None
        if not isinstance(data, dict):
            return None
        value = data.get("token") or data.get("access_token")
        if not isinstance(value, str) or not _TOKEN_VALUE_RE.fullmatch(value):
            # Empty, or not a header value's visible ASCII: a CR or LF in it would write
            # header lines of the token service's choosing into requests to the registry
            # (the pipelined reads build their request heads themselves).
            return None
        expires_in = data.get("expires_in")
        lifetime = float(expires_in) if isinstance(expires_in, int | float) else 60.0
        # Renew a little early so that a token never expires in flight.
        return _Token(value, time.monotonic() + max(lifetime - 10.0, lifetime / 2))


def _describe_token_failure(response: httpx.Response) -> str:
    host = response.request.url.host
    detail = ""
    try:
        data = loads_json(response.content, "token answer")
    except (MalformedResponseError, httpx.ResponseNotRead):
        data = None
    if isinstance(data, dict):
        for key in ("details", "error_description", "message", "error"):
            if isinstance(data.get(key), str):
                detail = f": {data[key]}"
                break
    return f"the token service {host} answered {response.status_code}{detail}"
