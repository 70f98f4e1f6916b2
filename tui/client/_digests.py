"""Digests: of blobs, and of manifests as registries compute them (schema1 too)."""

from __future__ import annotations

import base64
import hashlib

from tui.client._limits import loads_json
from tui.client.errors import (
    MalformedResponseError,
)
from tui.client.reference import (
    DIGEST_RE,
)

__all__ = ["compute_digest", "digest_algorithm", "is_digest", "manifest_digest"]


def compute_digest(data: bytes, algorithm: str = "sha256") -> str:
    if algorithm not in ("sha256", "sha512"):
        raise MalformedResponseError(f"Unsupported digest algorithm {algorithm}")
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def manifest_digest(raw: bytes, algorithm: str = "sha256") -> str:
    """The digest a registry gives ``raw``: for signed schema1, of the unsigned payload."""
    if b'"signatures"' in raw:
        try:
            data = loads_json(raw, "manifest")
            protected = loads_json(_b64url(data["signatures"][0]["protected"]), "signature")
            length, tail = int(protected["formatLength"]), _b64url(protected["formatTail"])
            return compute_digest(raw[:length] + tail, algorithm)
        except (ValueError, KeyError, IndexError, TypeError, MalformedResponseError):
            pass  # not a JWS-signed schema1 manifest after all: hash the bytes as they are
    return compute_digest(raw, algorithm)


def digest_algorithm(digest: str) -> str:
    return digest.split(":", 1)[0]


def is_digest(ref: str) -> bool:
    return bool(DIGEST_RE.match(ref))
