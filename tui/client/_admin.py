"""The bundled registry's local admin secret, as a client on the same machine finds and sends it.

The bundled registry writes a fresh secret at every start; the file's location and format are
the whole contract (the server side is ``embedded_registry/admin.py``; neither imports the
other):

* the directory: ``$REGTUI_ADMIN_DIR`` when set, else ``$XDG_RUNTIME_DIR/regtui/admin`` when
  ``XDG_RUNTIME_DIR`` is set, else ``~/.local/state/regtui/admin``;
* the file: ``<directory>/<port>``, the secret on one line, readable by its owner only.

The secret goes in the ``Regtui-Admin-Secret`` header, and only where it cannot leave the
machine: to a loopback address (``localhost``, ``127.0.0.0/8``, ``::1``) that the client reaches
directly: a connection of its own, never through a proxy (``HTTP_PROXY`` is ignored), never to a
redirect's target (redirects are not followed). It is used only when the file belongs to the
current user and no one else may read it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import ssl
import stat
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import httpx

__all__ = [
    "ADMIN_DIR_ENV",
    "SECRET_HEADER",
    "admin_dir",
    "is_loopback_address",
    "local_admin_secret",
    "send_as_local_admin",
    "stream_as_local_admin",
]

ADMIN_DIR_ENV = "REGTUI_ADMIN_DIR"
SECRET_HEADER = "Regtui-Admin-Secret"
MAX_SECRET_FILE = 4096


def admin_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where the bundled registry leaves its local admin secrets."""
    env = os.environ if env is None else env
    explicit = env.get(ADMIN_DIR_ENV)
    if explicit:
        return Path(explicit)
    runtime = env.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isabs(runtime):
        return Path(runtime) / "regtui" / "admin"
    return Path.home() / ".local" / "state" / "regtui" / "admin"


def is_loopback_address(host: str) -> bool:
    """``localhost`` or a loopback IP literal (``127.0.0.0/8``, ``::1``), brackets allowed."""
    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _port(url: httpx.URL) -> int:
    return url.port or (443 if url.scheme == "https" else 80)


def local_admin_secret(base_url: str, env: Mapping[str, str] | None = None) -> str | None:
    """The secret of the bundled registry at ``base_url``, if it is on loopback and left one."""
    url = httpx.URL(base_url)
    if url.scheme not in ("http", "https") or not is_loopback_address(url.host):
        return None
    path = admin_dir(env) / str(_port(url))
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if (
            not stat.S_ISREG(st.st_mode)
            or st.st_uid != os.getuid()
            or stat.S_IMODE(st.st_mode) & 0o077
        ):
            return None
        data = os.read(fd, MAX_SECRET_FILE)
    finally:
        os.close(fd)
    secret = data.decode("ascii", errors="replace").strip()
    return secret if secret and secret.isascii() and secret.isprintable() else None


def _verify(verify: ssl.SSLContext | bool) -> ssl.SSLContext | bool:
    if verify is True:
        return ssl.create_default_context()  # the system store (and SSL_CERT_FILE)
    return verify


def _admin_http(
    base_url: str, verify: ssl.SSLContext | bool, request_timeout: float
) -> httpx.AsyncClient:
    """A client for the local admin secret: no proxy (the secret goes straight to the
    loopback address) and no redirect followed."""
    return httpx.AsyncClient(
        base_url=base_url,
        verify=_verify(verify),
        trust_env=False,
        follow_redirects=False,
        timeout=httpx.Timeout(request_timeout, connect=min(request_timeout, 10.0)),
        headers={"User-Agent": "regtui"},
    )


async def send_as_local_admin(
    base_url: str,
    method: str,
    path: str,
    *,
    verify: ssl.SSLContext | bool = True,
    request_timeout: float = 30.0,
    json: Any = None,
    env: Mapping[str, str] | None = None,
) -> httpx.Response | None:
    """Send ``method path`` to the loopback registry at ``base_url`` with its local admin secret.

    ``None`` when there is no secret to send (not loopback, no file, a file not safely ours);
    otherwise the answer, whatever its status: a redirect is returned, not followed.
    """
    secret = local_admin_secret(base_url, env)
    if secret is None:
        return None
    async with _admin_http(base_url, verify, request_timeout) as http:
        return await http.request(method, path, json=json, headers={SECRET_HEADER: secret})


@contextlib.asynccontextmanager
async def stream_as_local_admin(
    base_url: str,
    method: str,
    path: str,
    *,
    verify: ssl.SSLContext | bool = True,
    request_timeout: float = 30.0,
    json: Any = None,
    env: Mapping[str, str] | None = None,
) -> AsyncIterator[httpx.Response | None]:
    """:func:`send_as_local_admin` for an answer read as it comes (the scrub's progress): the
    response, its body not read yet (closed on exit), or ``None`` when there is no secret."""
    secret = local_admin_secret(base_url, env)
    if secret is None:
        yield None
        return
    async with (
        _admin_http(base_url, verify, request_timeout) as http,
        http.stream(method, path, json=json, headers={SECRET_HEADER: secret}) as response,
    ):
        yield response
