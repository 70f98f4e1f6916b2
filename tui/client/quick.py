"""Quick answers: one small list of names read synchronously, for ``regtui tags`` and ``regtui
ls``, without loading asyncio, httpx or the auth code (together about two thirds of such a
command's time, start-up included).

:func:`quick_names` answers only the plain case and returns ``None`` for anything else; the
caller then asks :class:`tui.client.RegistryClient`, which asks again and says in its own words
what is wrong (an error, a challenge, a redirect, a TLS problem). The plain case:

* no credentials anywhere: none given, none in the environment, none that Docker's config could
  give (:func:`tui.client._dockerconfig.may_have_credentials`): with credentials the client
  could be shown more than an anonymous caller;
* no proxy in the environment, no ``--ca-cert``, not Docker Hub;
* the scheme the client would speak first: plain HTTP on a loopback host named without a scheme
  or with ``http://`` (``http://`` elsewhere with ``--insecure``), else HTTPS (verified, or not
  with ``--insecure``);
* an answer ``200`` with one page (no ``Link``) of at most :data:`MAX_QUICK_BYTES` bytes, not
  encoded, holding a JSON object whose list holds only strings (the client's own checks).

The whole exchange has ``timeout`` seconds, as one request of the client has: a registry that
does not answer within it is reported (:class:`~tui.client.errors.RegistryTimeoutError`, the
client's sentence), not asked again. Nothing is sent but ``GET`` with a ``User-Agent``: never
credentials.
"""

from __future__ import annotations

import json
import os
import socket
import time

import h11

from tui.client._dockerconfig import may_have_credentials
from tui.client.reference import api_host, is_loopback_host, parse_registry

__all__ = ["MAX_QUICK_BYTES", "quick_names"]

MAX_QUICK_BYTES = 1 << 20
"""A longer answer is left to the client (which reads up to 16 MiB, parsing off the loop)."""
PAGE_SIZE = 1000
"""``n`` of the request: the client's first page asks for the same."""
_MAX_BRACKETS = 16
"""A list of names nests two levels; more brackets than this (names hold none) go to the
client, whose parser bounds the depth."""
_PROXIES = ("http_proxy", "https_proxy", "all_proxy")


def quick_names(
    registry: str,
    path: str,
    key: str,
    *,
    insecure: bool = False,
    ca_cert: str | None = None,
    username: str | None = None,
    timeout: float = 30.0,
) -> list[str] | None:
    """The names under ``key`` of ``GET path?n=1000`` on ``registry`` (``HOST[:PORT]``, with or
    without a scheme), or ``None`` when this is not the plain case (see the module).
    Raises :class:`~tui.client.errors.RegistryTimeoutError` past ``timeout`` seconds."""
    try:
        scheme, host = parse_registry(registry)
    except ValueError:
        return None
    if username is not None or ca_cert or api_host(host) != host or _proxied():
        return None
    if may_have_credentials(host):
        return None
    loopback = is_loopback_host(host)
    if scheme == "http" and not (loopback or insecure):
        return None  # the client refuses it, and says why
    if scheme is None:
        if insecure and not loopback:
            return None  # HTTPS first, plain HTTP when it cannot be spoken: the client's probe
        scheme = "http" if loopback else "https"
    target = f"{path}?n={PAGE_SIZE}"
    try:
        body = _get(scheme, host, target, insecure, time.monotonic() + timeout)
    except TimeoutError:
        from tui.client.errors import RegistryTimeoutError

        raise RegistryTimeoutError.late(host, f"GET {scheme}://{host}{target}", timeout) from None
    except (OSError, h11.ProtocolError, ValueError):
        return None  # refused, reset, TLS, not HTTP: the client says which
    return None if body is None else _names(body, key)


def _proxied() -> bool:
    return any(os.environ.get(name) or os.environ.get(name.upper()) for name in _PROXIES)


def _names(body: bytes, key: str) -> list[str] | None:
    if body.count(b"[") + body.count(b"{") > _MAX_BRACKETS:
        return None
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    items = data.get(key) or []
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        return None
    return items


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError
    return left


def _connect(scheme: str, host: str, insecure: bool, deadline: float) -> socket.socket:
    name, _, port = host.rpartition(":") if host.rpartition(":")[2].isdigit() else (host, "", "")
    name = name.strip("[]")  # an IPv6 literal
    port_number = int(port or (443 if scheme == "https" else 80))
    sock = socket.create_connection((name, port_number), _left(deadline))
    if scheme == "http":
        return sock
    import ssl

    context = ssl.create_default_context()
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context.wrap_socket(sock, server_hostname=name)


def _get(scheme: str, host: str, target: str, insecure: bool, deadline: float) -> bytes | None:
    """The body of a ``200`` to ``GET target`` without ``Link`` nor encoding, else ``None``;
    ``TimeoutError`` past ``deadline`` (``time.monotonic()``), a trickling answer included."""
    connection = h11.Connection(h11.CLIENT)
    with _connect(scheme, host, insecure, deadline) as sock:
        sock.settimeout(_left(deadline))
        request = h11.Request(
            method="GET",
            target=target,
            headers=[
                ("Host", host),
                ("User-Agent", "regtui"),
                ("Accept", "*/*"),
                ("Connection", "close"),
            ],
        )
        sock.sendall(connection.send(request) + connection.send(h11.EndOfMessage()))
        response: h11.Response | None = None
        body = bytearray()
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                sock.settimeout(_left(deadline))
                connection.receive_data(sock.recv(65536))
                continue
            if isinstance(event, h11.Response):
                response = event
                headers = {name.lower(): value for name, value in event.headers}
                if (
                    event.status_code != 200
                    or b"link" in headers
                    or headers.get(b"content-encoding", b"identity") != b"identity"
                ):
                    return None
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > MAX_QUICK_BYTES:
                    return None
            elif isinstance(event, h11.EndOfMessage):
                return bytes(body) if response is not None else None
            elif isinstance(event, h11.ConnectionClosed):
                return None
            # (an informational 1xx answer: the real one follows)
