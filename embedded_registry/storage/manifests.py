"""Manifest digests, and how many parsed manifests a store keeps (shared by the served store,
:mod:`embedded_registry.storage.driven`)."""

from __future__ import annotations

import hashlib

# Parsed manifests by digest (content is immutable, so entries never go stale).
INFO_CACHE_SIZE = 4096


def compute_digest(body: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, body).hexdigest()}"
