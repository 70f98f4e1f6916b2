"""htpasswd Basic authentication, as Distribution's ``auth.htpasswd`` (``auth.token``, bearer
tokens from a token server, is :mod:`embedded_registry.token_auth`).

Every ``/v2/`` request (``/v2/`` itself included) needs valid credentials; without them the
answer is 401 UNAUTHORIZED with ``WWW-Authenticate: Basic realm="<realm>"``. Only bcrypt entries
are accepted (as Distribution). The file is re-read when its modification time changes, and a
verified password is remembered (as a SHA-256 of it, in memory) until then, so bcrypt's cost is
paid once per user and file version, in a worker thread.

The verified user name is left on the request (``request[AUTH_USER]``) for the extension
endpoints, which serve administrators only (``regtui.extensions.admins``). An extension request
that carries the server's local admin secret (:mod:`embedded_registry.admin`, checked by the
middleware before this one) needs no credentials.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import bcrypt
from aiohttp import web

from embedded_registry import errors
from embedded_registry.admin import AUTH_USER, LOCAL_ADMIN

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class AuthError(Exception):
    """The configured authentication cannot be served; the message is one line."""


class HtpasswdError(AuthError):
    """The htpasswd file cannot be used; the message is one line."""


TOKEN_EXTRA_MISSING = "auth.token needs the token extra: pip install 'regtui[token]'"


def parse_htpasswd(text: str) -> dict[str, bytes]:
    """``user:hash`` lines (bcrypt hashes only); blank lines and ``#`` comments skipped."""
    users: dict[str, bytes] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, hashed = line.partition(":")
        if sep and hashed.startswith(("$2a$", "$2b$", "$2y$")):
            users[user] = hashed.encode()
        else:
            log.warning("htpasswd: skipping an entry for %r that is not bcrypt", user)
    return users


class Htpasswd:
    def __init__(self, path: Path, realm: str) -> None:
        self.path = path
        self.realm = realm
        self._mtime: int | None = None
        self._users: dict[str, bytes] = {}
        self._verified: set[tuple[str, bytes]] = set()
        self.reload_if_changed()

    def reload_if_changed(self) -> None:
        try:
            mtime = os.stat(self.path).st_mtime_ns
        except OSError as exc:
            if self._mtime is None:
                raise HtpasswdError(
                    f"cannot read htpasswd file {self.path}: {exc.strerror or exc}"
                ) from None
            return  # keep the last good users while the file is being replaced
        if mtime == self._mtime:
            return
        try:
            text = self.path.read_text()
        except OSError as exc:
            if self._mtime is None:
                raise HtpasswdError(
                    f"cannot read htpasswd file {self.path}: {exc.strerror or exc}"
                ) from None
            return
        self._users = parse_htpasswd(text)
        self._verified.clear()
        self._mtime = mtime
        log.info("htpasswd: loaded %d user(s) from %s", len(self._users), self.path)

    async def check(self, user: str, password: str) -> bool:
        self.reload_if_changed()
        hashed = self._users.get(user)
        if hashed is None:
            return False
        key = (user, hashlib.sha256(password.encode()).digest())
        if key in self._verified:
            return True
        ok = await asyncio.to_thread(_checkpw, password.encode(), hashed)
        if ok and self._users.get(user) == hashed:
            self._verified.add(key)
        return ok


def _checkpw(password: bytes, hashed: bytes) -> bool:
    try:
        return bcrypt.checkpw(password, hashed)
    except ValueError:
        return False


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def htpasswd_middleware(htpasswd: Htpasswd) -> Callable[[web.Request, Handler], Awaitable]:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/v2") and not request.get(LOCAL_ADMIN):
            credentials = basic_credentials(request.headers.get("Authorization"))
            if credentials is None or not await htpasswd.check(*credentials):
                error = errors.unauthorized(htpasswd.realm)
                error.close_connection = request.body_exists
                raise error
            request[AUTH_USER] = credentials[0]
        return await handler(request)

    return middleware
