"""regtui's registry client: a typed async library on httpx (no Textual, no server code).

::

    from tui.client import RegistryClient

    async with RegistryClient("127.0.0.1:5000") as client:
        repos = await client.catalog()
        result = await client.get_manifest(repos[0], "latest")

Every failure is a :class:`RegistryClientError` whose ``str()`` is one readable sentence.

Against any registry the client's work is bounded (manifests 4 MiB, JSON answers 16 MiB and 256
levels deep, 10,000 pages per list, one deadline of ``timeout`` seconds per request, layers read
in bounded memory): see :mod:`tui.client._limits` and :mod:`tui.client.layers`. Credentials never
leave the registry's origin: see :mod:`tui.client.auth`.
"""

from __future__ import annotations

import importlib

from tui.client import _quiet_httpx

_quiet_httpx.install()  # before any module of the client imports httpx

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy reads both)

if TYPE_CHECKING:
    from typing import Any

    from tui.client._pushtimes import (
        ManifestRevision,
        RepositoryStorage,
        TagPush,
        repository_storage,
        tags_path,
    )
    from tui.client.auth import Challenge, Credentials, RegistryAuth, parse_www_authenticate
    from tui.client.errors import (
        AuthError,
        CatalogUnsupportedError,
        ConnectError,
        DeleteDisabledError,
        DigestMismatchError,
        MalformedResponseError,
        NotFoundError,
        RateLimitedError,
        RefusedError,
        RegistryClientError,
        RegistryTimeoutError,
        ResponseTooLargeError,
        SiblingTagsLostError,
        TagMovedError,
        TLSError,
        UnsupportedError,
    )
    from tui.client.estimate import RepoContent, RepoEstimate, UsageEstimate, estimate_usage
    from tui.client.models import (
        DeletePlan,
        Descriptor,
        HistoryEntry,
        HistoryStep,
        ImageConfig,
        ImageIndex,
        ImageManifest,
        Manifest,
        ManifestResult,
        PingResult,
        Platform,
        Schema1Manifest,
        UntagResult,
        match_history,
    )
    from tui.client.reference import InvalidReferenceError, Reference, parse_reference
    from tui.client.registry import BlobStream, RegistryClient

_ERRORS = (
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
    "TagMovedError",
    "TLSError",
    "UnsupportedError",
)
_MODELS = (
    "DeletePlan",
    "Descriptor",
    "HistoryEntry",
    "HistoryStep",
    "ImageConfig",
    "ImageIndex",
    "ImageManifest",
    "Manifest",
    "ManifestResult",
    "PingResult",
    "Platform",
    "Schema1Manifest",
    "UntagResult",
    "match_history",
)
_PUSH_TIMES = (
    "ManifestRevision",
    "RepositoryStorage",
    "TagPush",
    "repository_storage",
    "tags_path",
)
"""The bundled registry's push times and revisions (``/v2/<name>/_regtui/tags``)."""
_LAZY = {
    **dict.fromkeys(("Challenge", "Credentials", "RegistryAuth", "parse_www_authenticate"), "auth"),
    **dict.fromkeys(_ERRORS, "errors"),
    **dict.fromkeys(("RepoContent", "RepoEstimate", "UsageEstimate", "estimate_usage"), "estimate"),
    **dict.fromkeys(_MODELS, "models"),
    **dict.fromkeys(("InvalidReferenceError", "Reference", "parse_reference"), "reference"),
    **dict.fromkeys(("BlobStream", "RegistryClient"), "registry"),
    **dict.fromkeys(_PUSH_TIMES, "_pushtimes"),
}
"""Every name, imported on first use from ``tui.client.<module>``: importing the package (or a
light module of it, :mod:`tui.client.reference`, :mod:`tui.client.quick`) loads neither httpx
nor asyncio nor the auth code; ``regtui tags`` needs none of them on its quick path."""


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"tui.client.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "AuthError",
    "BlobStream",
    "CatalogUnsupportedError",
    "Challenge",
    "ConnectError",
    "Credentials",
    "DeleteDisabledError",
    "DeletePlan",
    "Descriptor",
    "DigestMismatchError",
    "HistoryEntry",
    "HistoryStep",
    "ImageConfig",
    "ImageIndex",
    "ImageManifest",
    "InvalidReferenceError",
    "MalformedResponseError",
    "Manifest",
    "ManifestResult",
    "ManifestRevision",
    "NotFoundError",
    "PingResult",
    "Platform",
    "RateLimitedError",
    "Reference",
    "RefusedError",
    "RegistryAuth",
    "RegistryClient",
    "RegistryClientError",
    "RegistryTimeoutError",
    "RepoContent",
    "RepoEstimate",
    "RepositoryStorage",
    "ResponseTooLargeError",
    "Schema1Manifest",
    "SiblingTagsLostError",
    "TLSError",
    "TagMovedError",
    "TagPush",
    "UnsupportedError",
    "UntagResult",
    "UsageEstimate",
    "estimate_usage",
    "match_history",
    "parse_reference",
    "parse_www_authenticate",
    "repository_storage",
    "tags_path",
]
