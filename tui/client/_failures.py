"""Transport failures turned into the client's errors: one sentence with the advice that fixes
it (``--ca-cert FILE``, ``--insecure``, ``http://`` or ``https://``), never the ``ssl`` library's
own text (no ``[SSL: WRONG_VERSION_NUMBER]``)."""

from __future__ import annotations

import re
import ssl

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
