"""One exception tree for everything the registry client can fail with.

::

    RegistryClientError(title, message)      # base: catch this to catch them all
     ├── ConnectError                          # host unreachable, DNS, refused
     │    └── RegistryTimeoutError             # no answer (or a trickle) within the timeout
     ├── TLSError                              # certificate or handshake failure
     ├── AuthError                             # 401 / 403, with the registry's own message
     │    └── RefusedError                     # 403 from an administrative endpoint (not absent)
     ├── NotFoundError                         # 404: NAME_UNKNOWN, MANIFEST_UNKNOWN, BLOB_UNKNOWN
     ├── DeleteDisabledError                   # 405 on DELETE: deletion disabled on the registry
     ├── RateLimitedError                      # 429, with ``retry_after`` seconds when given
     ├── MalformedResponseError                # a body or header that is not what the spec says
     │    ├── DigestMismatchError              # content does not hash to the announced digest
     │    └── ResponseTooLargeError            # a body over its limit (manifest 4 MiB, ...)
     ├── CatalogUnsupportedError               # no ``/v2/_catalog`` (Docker Hub, GHCR, ...)
     ├── UnsupportedError                      # the registry refused an operation (400/405/...)
     └── SiblingTagsLostError                  # an untag took other tags with it (``lost``)

Every error has a short ``title`` (for a dialog) and a ``message``; ``str(error)`` is one
readable sentence. ``response`` carries the ``httpx.Response`` when there was one.
"""

from __future__ import annotations

import httpx

__all__ = [
    "AuthError",
    "CatalogUnsupportedError",
    "ConnectError",
    "DeleteDisabledError",
    "DigestMismatchError",
    "MalformedResponseError",
    "NotFoundError",
    "RateLimitedError",
    "RefusedError",
    "RegistryClientError",
    "RegistryTimeoutError",
    "ResponseTooLargeError",
    "SiblingTagsLostError",
    "TLSError",
    "TagMovedError",
    "UnsupportedError",
]


class RegistryClientError(Exception):
    """Base of every error the client raises."""

    default_title = "Registry error"

    def __init__(
        self,
        message: str,
        *,
        title: str | None = None,
        response: httpx.Response | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.title = title or self.default_title
        self.message = message
        self.response = response
        self.code = code
        """The OCI error code (``MANIFEST_UNKNOWN``...) when the registry gave one."""

    @property
    def status_code(self) -> int | None:
        return self.response.status_code if self.response is not None else None

    def __str__(self) -> str:
        text = self.message.strip()
        return text if text.endswith((".", "!", "?")) else f"{text}."


class ConnectError(RegistryClientError):
    default_title = "Cannot reach the registry"


class RegistryTimeoutError(ConnectError):
    """The registry did not answer (or finish answering) within ``timeout`` seconds.

    ``str()`` names the host and the timeout; ``host`` and ``timeout`` carry them.
    """

    default_title = "Timed out"

    def __init__(self, message: str, *, host: str, timeout: float) -> None:
        super().__init__(message)
        self.host = host
        self.timeout = timeout

    @classmethod
    def late(cls, host: str, what: str, seconds: float) -> RegistryTimeoutError:
        """``what`` (``GET URL``) took longer than ``seconds``: the one sentence of a timeout."""
        return cls(
            f"{host} did not answer in time: {what} took longer than {seconds:g} s "
            "(raise --timeout for a slow registry)",
            host=host,
            timeout=seconds,
        )


class TLSError(RegistryClientError):
    default_title = "TLS failure"


class AuthError(RegistryClientError):
    default_title = "Not authorized"


class RefusedError(AuthError):
    """An administrative endpoint (the bundled registry's storage report or GC) answered 403:
    it is there, but not for this caller. Not an absence (that is a 404).

    ``reason`` is the registry's own message (``None`` when it gave none); ``advice`` says what
    to do instead (log in as an administrator, run on the registry's machine, or offline)."""

    default_title = "Refused"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None,
        advice: str,
        response: httpx.Response | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message, response=response, code=code)
        self.reason = reason
        self.advice = advice


class NotFoundError(RegistryClientError):
    default_title = "Not found"


class DeleteDisabledError(RegistryClientError):
    default_title = "Deletion disabled"


class RateLimitedError(RegistryClientError):
    default_title = "Rate limited"

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        title: str | None = None,
        response: httpx.Response | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message, title=title, response=response, code=code)
        self.retry_after = retry_after


class MalformedResponseError(RegistryClientError):
    default_title = "Unexpected answer"


class DigestMismatchError(MalformedResponseError):
    default_title = "Digest mismatch"

    def __init__(
        self,
        message: str,
        *,
        expected: str,
        actual: str,
        response: httpx.Response | None = None,
    ) -> None:
        super().__init__(message, response=response)
        self.expected = expected
        self.actual = actual


class ResponseTooLargeError(MalformedResponseError):
    """A body longer than regtui accepts for it; reading stopped at ``limit`` bytes."""

    default_title = "Answer too large"

    def __init__(self, message: str, *, limit: int, response: httpx.Response | None = None) -> None:
        super().__init__(message, response=response)
        self.limit = limit


class CatalogUnsupportedError(RegistryClientError):
    default_title = "No catalog"


class UnsupportedError(RegistryClientError):
    default_title = "Not supported"


class SiblingTagsLostError(RegistryClientError):
    """After a tag DELETE, other tags of the same manifest no longer resolve.

    The registry deleted the manifest rather than the tag. ``lost`` names the tags to push again
    (with the image whose manifest was ``digest``).
    """

    default_title = "Other tags were removed too"

    def __init__(
        self,
        message: str,
        *,
        repo: str,
        tag: str,
        digest: str,
        lost: tuple[str, ...],
        response: httpx.Response | None = None,
    ) -> None:
        super().__init__(message, response=response)
        self.repo = repo
        self.tag = tag
        self.digest = digest
        self.lost = lost


class TagMovedError(RegistryClientError):
    """A tag no longer points at the digest the caller planned for: nothing was removed.

    Someone pushed the tag again (or moved it) since the plan; removing it now would remove
    their image's tag, not the one the plan meant.
    """

    default_title = "Tag moved"

    def __init__(self, message: str, *, repo: str, tag: str, expected: str, actual: str) -> None:
        super().__init__(message)
        self.repo = repo
        self.tag = tag
        self.expected = expected
        self.actual = actual
