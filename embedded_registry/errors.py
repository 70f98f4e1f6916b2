"""OCI Distribution error codes as one exception type.

``RegistryError`` carries a code, its message, an optional detail and the HTTP status; the error
middleware renders it as ``{"errors": [{"code", "message", "detail"}]}`` with the status and the
message CNCF Distribution uses for that code. Several errors can answer one request (Distribution
lists every blob a manifest misses): ``RegistryError.combine`` joins them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

_UNSET: Any = object()

# code -> (message, HTTP status), as Distribution's registry/api/errcode registers them.
CODES: dict[str, tuple[str, int]] = {
    "UNKNOWN": ("unknown error", 500),
    "UNSUPPORTED": ("The operation is unsupported.", 405),
    "UNAUTHORIZED": ("authentication required", 401),
    "DENIED": ("requested access to the resource is denied", 403),
    "UNAVAILABLE": ("service unavailable", 503),
    "TOOMANYREQUESTS": ("too many requests", 429),
    "DIGEST_INVALID": ("provided digest did not match uploaded content", 400),
    "SIZE_INVALID": ("provided length did not match content length", 400),
    "RANGE_INVALID": ("invalid content range", 416),
    "NAME_INVALID": ("invalid repository name", 400),
    "TAG_INVALID": ("manifest tag did not match URI", 400),
    "NAME_UNKNOWN": ("repository name not known to registry", 404),
    "MANIFEST_UNKNOWN": ("manifest unknown", 404),
    "MANIFEST_INVALID": ("manifest invalid", 400),
    "MANIFEST_UNVERIFIED": ("manifest failed signature verification", 400),
    "MANIFEST_BLOB_UNKNOWN": ("blob unknown to registry", 400),
    "BLOB_UNKNOWN": ("blob unknown to registry", 404),
    "BLOB_UPLOAD_UNKNOWN": ("blob upload unknown to registry", 404),
    "BLOB_UPLOAD_INVALID": ("blob upload invalid", 404),
    "PAGINATION_NUMBER_INVALID": ("invalid number of results requested", 400),
}


class RegistryError(Exception):
    """One OCI error (or several, see ``combine``) with the HTTP status that answers it."""

    def __init__(
        self,
        code: str,
        message: str | None = None,
        detail: Any = _UNSET,
        status: int | None = None,
    ) -> None:
        default_message, default_status = CODES.get(code, CODES["UNKNOWN"])
        self.code = code
        self.message = message if message is not None else default_message
        self.detail = detail
        self.status = status if status is not None else default_status
        self.others: list[RegistryError] = []
        self.headers: dict[str, str] = {}
        # Answer with ``Connection: close`` (an unread oversized body is still arriving).
        self.close_connection = False
        super().__init__(f"{code}: {self.message}")

    @classmethod
    def combine(cls, errors: Sequence[RegistryError]) -> RegistryError:
        """One exception answering with every error of ``errors`` (the first sets the status)."""
        first = errors[0]
        first.others = list(errors[1:])
        return first

    def entries(self) -> list[dict[str, Any]]:
        result = []
        for error in (self, *self.others):
            entry: dict[str, Any] = {"code": error.code, "message": error.message}
            if error.detail is not _UNSET:
                entry["detail"] = error.detail
            result.append(entry)
        return result

    def body(self) -> bytes:
        """The JSON body, with the trailing newline Distribution writes."""
        return (json.dumps({"errors": self.entries()}, separators=(",", ":")) + "\n").encode()


def _error(code: str, detail: Any = _UNSET, message: str | None = None) -> RegistryError:
    return RegistryError(code, message=message, detail=detail)


def blob_unknown(digest: str | None = None) -> RegistryError:
    return _error("BLOB_UNKNOWN", digest if digest is not None else _UNSET)


def blob_upload_invalid(detail: Any = _UNSET) -> RegistryError:
    return _error("BLOB_UPLOAD_INVALID", detail)


def blob_upload_unknown(detail: Any = _UNSET) -> RegistryError:
    return _error("BLOB_UPLOAD_UNKNOWN", detail)


def digest_invalid(detail: Any = _UNSET, message: str | None = None) -> RegistryError:
    return _error("DIGEST_INVALID", detail, message)


def manifest_blob_unknown(digest: str) -> RegistryError:
    return _error("MANIFEST_BLOB_UNKNOWN", digest)


def manifest_invalid(detail: Any = _UNSET) -> RegistryError:
    return _error("MANIFEST_INVALID", detail)


def manifest_unknown(detail: Any = _UNSET, message: str | None = None) -> RegistryError:
    return _error("MANIFEST_UNKNOWN", detail, message)


def name_invalid(name: str) -> RegistryError:
    return _error("NAME_INVALID", {"name": name})


def name_unknown(name: str) -> RegistryError:
    return _error("NAME_UNKNOWN", {"name": name})


def tag_invalid(tag: str) -> RegistryError:
    return _error("TAG_INVALID", {"tag": tag})


def size_invalid(detail: Any = _UNSET) -> RegistryError:
    return _error("SIZE_INVALID", detail)


def range_invalid(detail: Any = _UNSET) -> RegistryError:
    return _error("RANGE_INVALID", detail)


def pagination_number_invalid(value: str) -> RegistryError:
    return _error("PAGINATION_NUMBER_INVALID", {"n": value})


def unauthorized(realm: str) -> RegistryError:
    error = _error("UNAUTHORIZED", None)
    error.headers["WWW-Authenticate"] = f'Basic realm="{realm}"'
    return error


def denied(detail: Any = _UNSET) -> RegistryError:
    return _error("DENIED", detail)


def unsupported(detail: Any = _UNSET) -> RegistryError:
    return _error("UNSUPPORTED", detail)


def too_many_requests(detail: Any = _UNSET) -> RegistryError:
    return _error("TOOMANYREQUESTS", detail)


STORAGE_FULL_DETAIL = (
    "the registry's storage is full: free space on it (or raise its quota) and retry"
)


def storage_full() -> RegistryError:
    """A write failed with ENOSPC or EDQUOT: 507 Insufficient Storage (no OCI code exists for
    it; UNKNOWN with a message and detail that say what happened, and no path)."""
    return RegistryError("UNKNOWN", message="storage full", detail=STORAGE_FULL_DETAIL, status=507)


def unknown(detail: Any = _UNSET) -> RegistryError:
    return _error("UNKNOWN", detail)
