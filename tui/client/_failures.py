"""Transport failures turned into the client's errors: one sentence with the advice that fixes
it (``--ca-cert FILE``, ``--insecure``, ``http://`` or ``https://``), never the ``ssl`` library's
own text (no ``[SSL: WRONG_VERSION_NUMBER]``).

A certificate that fails verification is named by its real cause, each its own sentence and fix:
no subjectAltName (the how-tos' ``openssl req -subj /CN=...``: Python, like Go since 1.15,
ignores the CN), an unknown CA or a self-signed certificate, expired (on what date), or issued
for other names (which). For the details the certificate is fetched once more, unverified, and
only read (:func:`peer_certificate`); nothing is sent over that connection.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import socket
import ssl
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from tui.client.errors import (
    ConnectError,
    MalformedResponseError,
    RegistryClientError,
    RegistryTimeoutError,
    TLSError,
)
from tui.client.reference import is_loopback_host

__all__ = ["HTTPS_HINT", "is_tls", "transport_error"]

HTTPS_HINT = re.compile(rb"https|\btls\b|\bssl\b", re.IGNORECASE)
"""In a 400 to a plain request: nginx's "The plain HTTP request was sent to HTTPS port", Go's
"Client sent an HTTP request to an HTTPS server"."""


def is_tls(exc: httpx.TransportError) -> bool:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLError):
            return True
        cause = cause.__cause__ or cause.__context__
    text = str(exc).lower()
    return "certificate" in text or "ssl" in text or "tls" in text


# OpenSSL's X509_V_ERR_* codes (``SSLCertVerificationError.verify_code``).
_EXPIRED, _NOT_YET_VALID = 10, 9
_UNKNOWN_CA = frozenset({2, 18, 19, 20, 21})
"""Unable to get the issuer, self-signed (leaf or in the chain), unable to verify the leaf."""
_NAME_MISMATCH = frozenset({62, 64})
"""Host name mismatch, IP address mismatch."""


@dataclass(frozen=True)
class PeerCertificate:
    """What a certificate says, as far as explaining a verification failure needs."""

    common_name: str | None
    names: tuple[str, ...] | None
    """The subjectAltName entries (``DNS:...``/``IP:...`` values); ``None`` when it has none."""
    issuer: str | None
    not_after: str | None
    """``notAfter`` as OpenSSL prints it (``Jan  2 03:04:05 2025 GMT``)."""
    not_before: str | None

    @property
    def self_signed(self) -> bool:
        return self.issuer is not None and self.issuer == self.common_name


def _decode_der(der: bytes) -> dict[str, object] | None:
    """The ``getpeercert()`` dictionary of a DER certificate (CPython's own decoder, which
    ``getpeercert()`` uses; it reads a file); ``None`` where this Python lacks it."""
    decode = getattr(getattr(ssl, "_ssl", None), "_test_decode_cert", None)
    if decode is None:
        return None
    fd, path = tempfile.mkstemp(suffix=".pem")
    try:
        with os.fdopen(fd, "w") as file:
            file.write(ssl.DER_cert_to_PEM_cert(der))
        decoded = decode(path)
    except (OSError, ValueError, ssl.SSLError):
        return None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
    return decoded if isinstance(decoded, dict) else None


def _attribute(name: object, key: str) -> str | None:
    """``commonName`` (...) of a decoded subject or issuer: ``((("commonName", "x"),), ...)``."""
    if not isinstance(name, tuple):
        return None
    for rdn in name:
        for pair in rdn if isinstance(rdn, tuple) else ():
            if isinstance(pair, tuple) and len(pair) == 2 and pair[0] == key:
                return str(pair[1])
    return None


def peer_certificate(hostname: str, port: int, timeout: float = 5.0) -> PeerCertificate | None:
    """The certificate ``hostname:port`` presents, fetched without verification and only read;
    ``None`` when it cannot be had (the server went away, no decoder)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    server_name = None if _is_ip(hostname) else hostname
    try:
        with (
            socket.create_connection((hostname, port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=server_name) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
    except (OSError, ValueError):
        return None
    decoded = _decode_der(der) if der else None
    if decoded is None:
        return None
    alt = decoded.get("subjectAltName")
    names = tuple(str(value) for _, value in alt) if isinstance(alt, tuple) and alt else None
    not_after, not_before = decoded.get("notAfter"), decoded.get("notBefore")
    return PeerCertificate(
        common_name=_attribute(decoded.get("subject"), "commonName"),
        names=names,
        issuer=_attribute(decoded.get("issuer"), "commonName"),
        not_after=str(not_after) if not_after else None,
        not_before=str(not_before) if not_before else None,
    )


def _is_ip(hostname: str) -> bool:
    try:
        ipaddress.ip_address(hostname)
    except ValueError:
        return False
    return True


def _date(openssl_time: str | None) -> str | None:
    """``Jan  2 03:04:05 2025 GMT`` -> ``2025-01-02 03:04:05 UTC``."""
    if not openssl_time:
        return None
    import datetime

    try:
        seconds = ssl.cert_time_to_seconds(openssl_time)
    except ValueError:
        return openssl_time
    when = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return when.strftime("%Y-%m-%d %H:%M:%S UTC")


def _verification_error(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    for cause in _causes(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return cause
    return None


def _causes(exc: BaseException) -> Iterator[BaseException]:
    cause: BaseException | None = exc
    seen: set[int] = set()
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        yield cause
        cause = cause.__cause__ or cause.__context__


def _target(exc: httpx.TransportError, host: str) -> tuple[str, int] | None:
    """The host name and port the failed handshake was with: the request's (a redirect's target
    included), else ``host`` as the client names the registry."""
    try:
        url = exc.request.url
        return url.host, url.port or (443 if url.scheme == "https" else 80)
    except RuntimeError:  # no request attached
        pass
    parts = urlsplit(f"//{host}")
    if parts.hostname is None:
        return None
    return parts.hostname, parts.port or 443


def _san_fix(hostname: str) -> str:
    kind = "IP" if _is_ip(hostname) else "DNS"
    return f'-addext "subjectAltName={kind}:{hostname}"'


def certificate_error(
    exc: httpx.TransportError,
    host: str,
    *,
    peer: PeerCertificate | None = None,
    fetch: bool = True,
) -> TLSError | None:
    """The error for a certificate that failed verification, by its cause (``None`` when the
    failure is no verification failure). ``peer`` is fetched when not given (``fetch``)."""
    failure = _verification_error(exc)
    if failure is None:
        return None
    code = failure.verify_code
    target = _target(exc, host)
    if peer is None and fetch and target is not None:
        peer = peer_certificate(*target)
    hostname = target[0] if target else host
    skip = "or --insecure to skip verification"
    if code in _NAME_MISMATCH:
        if peer is not None and peer.names is None:
            cn = f" (CN={peer.common_name})" if peer.common_name else ""
            return TLSError(
                f"The TLS certificate of {host} has no subjectAltName, only a common name{cn}; "
                "Python (like Go since 1.15) ignores the CN: reissue it with "
                f"{_san_fix(hostname)} (openssl req -addext, one DNS: or IP: entry per name), "
                f"{skip}",
                title="Certificate without subjectAltName",
            )
        issued = (
            f"issued for {', '.join(peer.names)}, not {hostname}"
            if peer is not None and peer.names
            else f"not issued for {hostname}"
        )
        return TLSError(
            f"The TLS certificate of {host} is {issued}: connect by a name it lists, or reissue "
            f"it with {_san_fix(hostname)}, {skip}",
            title="Certificate name mismatch",
        )
    if code == _EXPIRED:
        on = _date(peer.not_after) if peer is not None else None
        when = f" on {on}" if on else ""
        return TLSError(
            f"The TLS certificate of {host} expired{when}: renew it on the server (check this "
            f"machine's clock too), {skip}",
            title="Certificate expired",
        )
    if code == _NOT_YET_VALID:
        start = _date(peer.not_before) if peer is not None else None
        when = f" before {start}" if start else " yet"
        return TLSError(
            f"The TLS certificate of {host} is not valid{when}: check the clocks of this machine "
            f"and the server, {skip}",
            title="Certificate not yet valid",
        )
    if code in _UNKNOWN_CA:
        if peer is not None and peer.self_signed:
            by = f"self-signed ({peer.common_name})" if peer.common_name else "self-signed"
        elif peer is not None and peer.issuer:
            by = f"signed by an unknown CA ({peer.issuer})"
        else:
            by = "signed by an unknown CA (self-signed or a private CA)"
        return TLSError(
            f"The TLS certificate of {host} is not trusted: it is {by}; pass --ca-cert FILE with "
            f"the CA's certificate, {skip}",
            title="Untrusted certificate",
        )
    return None


def _tls_reason(exc: BaseException) -> str:
    """The ``ssl`` library's reason (``WRONG_VERSION_NUMBER``...) of a TLS failure, if any."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"CERTIFICATE:{cause.verify_message or ''}".upper()
        if isinstance(cause, ssl.SSLError) and cause.reason:
            return str(cause.reason).upper()
        cause = cause.__cause__ or cause.__context__
    return str(exc).upper()


def transport_error(
    exc: httpx.TransportError,
    host: str,
    *,
    scheme: str = "https",
    insecure: bool = False,
    timeout: float | None = None,
) -> RegistryClientError:
    """The client error for a transport failure: one sentence with the advice that fixes it,
    never the ``ssl`` library's own text."""
    if is_tls(exc):
        by_cause = certificate_error(exc, host)
        if by_cause is not None:
            return by_cause
        reason = _tls_reason(exc)
        if "WRONG_VERSION_NUMBER" in reason or "RECORD_LAYER" in reason or "HTTP_REQUEST" in reason:
            advice = "name it http://" + host if is_loopback_host(host) else "pass --insecure"
            return TLSError(
                f"{host} speaks plain HTTP, not HTTPS: {advice} to use plain HTTP",
                title="Plain HTTP server",
            )
        if "HOSTNAME" in reason or "IP ADDRESS MISMATCH" in reason or "MISMATCH" in reason:
            return TLSError(
                f"The TLS certificate of {host} is not made out for that name; connect by a "
                "name the certificate lists, or pass --insecure to skip verification",
                title="Certificate name mismatch",
            )
        if "EXPIRED" in reason:
            return TLSError(
                f"The TLS certificate of {host} has expired; pass --insecure to skip verification",
                title="Certificate expired",
            )
        if "CERTIFICATE" in reason or "VERIFY" in reason:
            return TLSError(
                f"The TLS certificate of {host} is not trusted (self-signed or a private CA): "
                "pass --ca-cert FILE with the CA's certificate, or --insecure to skip verification",
                title="Untrusted certificate",
            )
        return TLSError(
            f"The TLS handshake with {host} failed; check that it serves HTTPS on this port "
            "(--ca-cert FILE for a private CA, --insecure to skip verification)"
        )
    if isinstance(exc, httpx.TimeoutException):
        within = f" within {timeout:g} s" if timeout else ""
        return RegistryTimeoutError(
            f"{host} did not answer in time: nothing came{within} (raise --timeout for a slow "
            "registry)",
            host=host,
            timeout=timeout or 0.0,
        )
    if isinstance(exc, httpx.RemoteProtocolError):
        if scheme == "http" and "disconnect" in str(exc).lower():
            return MalformedResponseError(
                f"{host} closed the connection without answering; if it speaks HTTPS, name it "
                f"https://{host}"
            )
        return MalformedResponseError(f"{host} broke the connection mid-answer ({exc})")
    return ConnectError(f"Cannot reach {host}: {exc or type(exc).__name__}")
