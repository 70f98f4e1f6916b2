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

from tui.client._dockerconfig import may_have_credentials
from tui.client.reference import api_host, is_loopback_host, parse_registry

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy reads both)
if TYPE_CHECKING:
    import ssl

__all__ = ["MAX_QUICK_BYTES", "plain_origin", "quick_names"]

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
    origin = plain_origin(registry, insecure=insecure, ca_cert=ca_cert, username=username)
    if origin is None:
        return None
    scheme, host = origin
    target = f"{path}?n={PAGE_SIZE}"
    try:
        body = _get(scheme, host, target, insecure, time.monotonic() + timeout)
    except TimeoutError:
        from tui.client.errors import RegistryTimeoutError

        raise RegistryTimeoutError.late(host, f"GET {scheme}://{host}{target}", timeout) from None
    except (OSError, ValueError):
        return None  # refused, reset, TLS, not HTTP: the client says which
    return None if body is None else _names(body, key)


def plain_origin(
    registry: str,
    *,
    insecure: bool = False,
    ca_cert: str | None = None,
    username: str | None = None,
) -> tuple[str, str] | None:
    """``(scheme, HOST[:PORT])`` the client would speak to ``registry`` first when this is the
    plain case (see the module: no credentials anywhere, no proxy, no ``--ca-cert``, not Docker
    Hub, a scheme the client allows), else ``None``."""
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
    return scheme, host


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


def _connect(
    scheme: str,
    host: str,
    insecure: bool,
    deadline: float,
    context: ssl.SSLContext | None = None,
) -> socket.socket:
    name, _, port = host.rpartition(":") if host.rpartition(":")[2].isdigit() else (host, "", "")
    name = name.strip("[]")  # an IPv6 literal
    port_number = int(port or (443 if scheme == "https" else 80))
    # An ASCII name goes as bytes: a str is encoded with the idna codec first, whose import
    # (unicodedata, stringprep) costs more than the rest of resolving a loopback address.
    address = name.encode("ascii") if name.isascii() else name
    sock = socket.create_connection((address, port_number), _left(deadline))  # type: ignore[arg-type]
    if scheme == "http":
        return sock
    import ssl

    if context is not None:
        return context.wrap_socket(sock, server_hostname=name)
    context = ssl.create_default_context()
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context.wrap_socket(sock, server_hostname=name)


class _Reader:
    """Bytes of one socket, each read within the deadline."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline
        self.buffer = bytearray()
        self.closed = False

    def _fill(self) -> None:
        self.sock.settimeout(_left(self.deadline))
        data = self.sock.recv(65536)
        if not data:
            self.closed = True
        self.buffer += data

    def until(self, mark: bytes, limit: int) -> bytes | None:
        """Up to and without ``mark`` (consumed too); ``None`` past ``limit`` bytes or at EOF."""
        while True:
            at = self.buffer.find(mark)
            if at >= 0:
                found = bytes(self.buffer[:at])
                del self.buffer[: at + len(mark)]
                return found
            if len(self.buffer) > limit or self.closed:
                return None
            self._fill()

    def exactly(self, count: int) -> bytes | None:
        while len(self.buffer) < count:
            if self.closed:
                return None
            self._fill()
        found = bytes(self.buffer[:count])
        del self.buffer[:count]
        return found

    def rest(self, limit: int) -> bytes | None:
        while not self.closed:
            if len(self.buffer) > limit:
                return None
            self._fill()
        return bytes(self.buffer) if len(self.buffer) <= limit else None


_MAX_HEAD = 64 * 1024
_ONCE = frozenset(
    {
        b"connection",
        b"content-encoding",
        b"content-length",
        b"content-type",
        b"docker-content-digest",
        b"link",
        b"transfer-encoding",
    }
)
"""Headers the readers go by: given twice with different values, the answer is not plain."""
_TOKEN = frozenset(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _head(reader: _Reader) -> tuple[int, dict[bytes, bytes]] | None:
    """The status and headers (names lower-cased) of the next answer; ``None`` for anything
    but a plain, well-formed HTTP/1.x head (the client then asks, and says what is wrong)."""
    block = reader.until(b"\r\n\r\n", _MAX_HEAD)
    if block is None:
        return None
    status_line, *lines = block.split(b"\r\n")
    parts = status_line.split(b" ", 2)
    if len(parts) < 2 or parts[0] not in (b"HTTP/1.1", b"HTTP/1.0") or not parts[1].isdigit():
        return None
    headers: dict[bytes, bytes] = {}
    for line in lines:
        name, colon, value = line.partition(b":")
        if not colon or not name or not set(name) <= _TOKEN:
            return None  # also an obs-folded line (it starts with a space)
        key, value = name.lower(), value.strip(b" \t")
        if key in headers and headers[key] != value:
            if key in _ONCE:
                return None  # two Content-Lengths that differ, two encodings...
            continue  # a proxy's Date beside the registry's: the first is kept
        headers[key] = value
    return int(parts[1]), headers


def _chunked(reader: _Reader) -> bytes | None:
    body = bytearray()
    while True:
        line = reader.until(b"\r\n", 1024)
        if line is None:
            return None
        size_text = line.split(b";", 1)[0].strip()
        if not size_text or not all(c in b"0123456789abcdefABCDEF" for c in size_text):
            return None
        size = int(size_text, 16)
        if size == 0:
            while (trailer := reader.until(b"\r\n", 8192)) is not None and trailer:
                pass  # trailers: read and dropped
            return bytes(body) if trailer is not None else None
        if len(body) + size > MAX_QUICK_BYTES:
            return None
        chunk = reader.exactly(size + 2)
        if chunk is None or not chunk.endswith(b"\r\n"):
            return None
        body += chunk[:-2]


def _body(reader: _Reader, headers: dict[bytes, bytes]) -> bytes | None:
    encoding = headers.get(b"transfer-encoding")
    length = headers.get(b"content-length")
    if encoding is not None:
        if encoding.lower() != b"chunked" or length is not None:
            return None
        return _chunked(reader)
    if length is not None:
        if not length.isdigit() or int(length) > MAX_QUICK_BYTES:
            return None
        return reader.exactly(int(length))
    return reader.rest(MAX_QUICK_BYTES)  # until the server closes (Connection: close)


def _get(scheme: str, host: str, target: str, insecure: bool, deadline: float) -> bytes | None:
    """The body of a ``200`` to ``GET target`` without ``Link`` nor encoding, else ``None``;
    ``TimeoutError`` past ``deadline`` (``time.monotonic()``), a trickling answer included.

    HTTP/1.1 is spoken here in a few lines rather than with h11 (the client's light transport):
    h11 and the :mod:`dataclasses` it loads are a sixth of ``regtui tags``. The reading is
    strict: anything but a plain answer (a malformed head, two lengths, an encoding, a ``Link``)
    is ``None``, and the client asks again with h11 or aiohttp."""
    request = (
        f"GET {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: regtui\r\nAccept: */*\r\n"
        "Connection: close\r\n\r\n"
    ).encode("ascii")
    with _connect(scheme, host, insecure, deadline) as sock:
        sock.settimeout(_left(deadline))
        sock.sendall(request)
        reader = _Reader(sock, deadline)
        while True:
            head = _head(reader)
            if head is None:
                return None
            status, headers = head
            if 100 <= status < 200 and status != 101:
                continue  # an informational answer: the real one follows
            break
        if (
            status != 200
            or b"link" in headers
            or headers.get(b"content-encoding", b"identity").lower() != b"identity"
        ):
            return None
        return _body(reader, headers)
