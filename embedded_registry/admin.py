"""Who may call the administrative extension endpoints, and the local admin secret.

The extension endpoints (storage report, GC; :mod:`embedded_registry.routes.ext`) are never
anonymous. Two ways in:

* **The local admin secret** (zero setup on the same machine). At every start the server makes a
  fresh random secret (``secrets.token_urlsafe(32)``) and, once it knows its port, writes it to
  ``<admin dir>/<port>``, a file only its user can read. A client on the same machine that
  connects *directly to a loopback address* on that port reads the file and sends the secret in
  the ``Regtui-Admin-Secret`` header; the server compares it in constant time. The secret never
  leaves the machine: it is in no answer and in no log, and a proxy in front of the registry
  cannot know it (a request through nginx on the same host is anonymous, even though nginx
  connects from 127.0.0.1).
* **An administrator's credentials** when ``auth.htpasswd`` is configured: the users named in
  ``regtui.extensions.admins`` (regtui's own config key). Other authenticated users get 403.

The file format and location are the whole contract with the client (``tui/client/_admin.py``
derives the same path; neither side imports the other):

* the directory: ``$REGTUI_ADMIN_DIR`` when set, else ``$XDG_RUNTIME_DIR/regtui/admin`` when
  ``XDG_RUNTIME_DIR`` is set, else ``~/.local/state/regtui/admin``; created with mode 0700;
  the server refuses (one warning line, and serves without a local secret) an existing
  directory owned by someone else, writable by group or others, or a symlink, and never
  changes the mode of an existing one;
* the file: ``<directory>/<port>`` (the port the server listens on, in decimal), mode 0600,
  holding the secret and a newline; written atomically (temporary file, fsync, rename); removed
  on a clean shutdown (only while it still holds this server's secret). One file per port:
  ``localhost``, ``127.0.0.1`` and ``[::1]`` on that port all lead to it; two servers on the same
  port on different loopback addresses overwrite each other's file (the last one started wins).
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import os
import secrets
import stat
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from embedded_registry.storage.fsutil import atomic_write

log = logging.getLogger(__name__)

ADMIN_DIR_ENV = "REGTUI_ADMIN_DIR"
SECRET_HEADER = "Regtui-Admin-Secret"
EXTENSION_PREFIX = "/v2/_regtui/"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_RequestKey: Any = getattr(web, "RequestKey", None)  # aiohttp 3.13+; a str key before


def _request_key(name: str, kind: type) -> Any:
    """A typed request key where aiohttp has them (a str key warns there), else ``name``."""
    return _RequestKey(name, kind) if _RequestKey is not None else name


LOCAL_ADMIN = _request_key("regtui_local_admin", bool)
"""Request key: ``True`` when the request carried this server's local admin secret."""
AUTH_USER = _request_key("regtui_auth_user", str)
"""Request key: the htpasswd user the auth middleware verified."""


def admin_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where the local admin secrets live (see the module docstring)."""
    env = os.environ if env is None else env
    explicit = env.get(ADMIN_DIR_ENV)
    if explicit:
        return Path(explicit)
    runtime = env.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isabs(runtime):
        return Path(runtime) / "regtui" / "admin"
    return Path.home() / ".local" / "state" / "regtui" / "admin"


def secret_path(port: int, env: Mapping[str, str] | None = None) -> Path:
    return admin_dir(env) / str(port)


@dataclass
class AdminAccess:
    """The server's local admin secret and, once written, the file that holds it."""

    secret: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)
    path: Path | None = None
    _secret_bytes: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._secret_bytes = self.secret.encode()

    def matches(self, presented: str | None) -> bool:
        """Whether ``presented`` is this server's secret, compared in constant time: how long
        the comparison takes says nothing of how many leading characters were right
        (``tests/server/test_admin_secret_compare.py`` measures it)."""
        if not presented:
            return False
        return hmac.compare_digest(presented.encode(), self._secret_bytes)


APP_KEY: web.AppKey[AdminAccess] = web.AppKey("admin_access", AdminAccess)


def _private_dir(directory: Path) -> None:
    """Create ``directory`` (0700), or check that an existing one is private to us: a directory
    of another user, or one that others may write to (a shared ``/tmp``), is an OSError. An
    existing directory is never chmodded: it may be shared on purpose."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.mkdir(directory, 0o700)
    st = os.lstat(directory)
    if not stat.S_ISDIR(st.st_mode):
        raise OSError(f"{directory} is not a directory")
    if st.st_uid != os.getuid():
        raise OSError(f"{directory} belongs to another user")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise OSError(
            f"{directory} is writable by group or others (point {ADMIN_DIR_ENV} at a directory "
            "of your own, mode 0700)"
        )


def write_secret(access: AdminAccess, port: int, env: Mapping[str, str] | None = None) -> Path:
    """Write ``access.secret`` to the file of ``port``, atomically, readable by us alone."""
    path = secret_path(port, env)
    _private_dir(path.parent)
    atomic_write(path, (access.secret + "\n").encode())  # mkstemp: 0600, O_EXCL
    access.path = path
    return path


def remove_secret(access: AdminAccess) -> None:
    """Remove the secret file, unless another server on the same port has replaced it since."""
    path = access.path
    if path is None:
        return
    access.path = None
    try:
        if path.read_text().strip() != access.secret:
            return
        path.unlink()
    except OSError:
        return


def local_admin_middleware(access: AdminAccess) -> Callable[[web.Request, Handler], Awaitable]:
    """Mark extension requests that carry this server's secret (checked before auth)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(EXTENSION_PREFIX) and access.matches(
            request.headers.get(SECRET_HEADER)
        ):
            request[LOCAL_ADMIN] = True
        return await handler(request)

    return middleware


@dataclass(frozen=True)
class Caller:
    """Who sent an extension request: ``admin`` when they may administer the registry."""

    admin: bool
    who: str


def caller(request: web.Request, admins: tuple[str, ...]) -> Caller:
    """The caller of an extension request, from the local secret or the verified user."""
    if request.get(LOCAL_ADMIN):
        return Caller(admin=True, who="the local admin secret")
    user = request.get(AUTH_USER)
    if isinstance(user, str):
        return Caller(admin=user in admins, who=f"user {user}")
    return Caller(admin=False, who="anonymous")
