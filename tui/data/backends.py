"""Pick and build the storage backend for a registry (see ``tui.data.storage``).

Converters here read reports by attribute (duck typing), so the same code turns the bundled
registry's extension reports (``tui.client.ext``) and the server's own usage/GC reports (passed
in by ``regtui connect --storage``) into the Storage screen's view models.
"""

from __future__ import annotations

import importlib
from typing import Any

from tui.client import RefusedError, RegistryClient, RegistryClientError
from tui.client.estimate import ESTIMATE_NOTE
from tui.client.survey import estimate_registry
from tui.data.storage import (
    CallableBackend,
    GcItem,
    GcView,
    QuotaUsage,
    RepoUsageView,
    StorageBackend,
    UsageView,
)

ESTIMATE_GC_REASON = (
    "this registry offers no garbage-collection API (the OCI spec has none). Run its own "
    "tool (for registry:2: `registry garbage-collect`), or point regtui at the storage "
    "directory with `regtui connect --storage DIR` or `regtui gc --root DIR`."
)

GC_ITEM_KINDS = {"blob", "manifest", "upload", "repository"}


def _get(report: Any, *names: str, default: Any = None) -> Any:
    for name in names:
        if isinstance(report, dict) and name in report:
            return report[name]
        if hasattr(report, name):
            return getattr(report, name)
    return default


def usage_view_from_report(report: Any, *, source: str) -> UsageView:
    """A server usage report (``embedded_registry.usage.UsageReport`` or its JSON) as a view."""
    repos = tuple(
        RepoUsageView(
            name=str(_get(repo, "name")),
            total_bytes=int(_get(repo, "referenced_bytes", "bytes", default=0)),
            exclusive_bytes=int(_get(repo, "exclusive_bytes", default=0)),
        )
        for repo in _get(report, "repositories", "repos", default=[])
    )
    repos = tuple(sorted(repos, key=lambda repo: (-repo.total_bytes, repo.name)))
    uploads = list(_get(report, "uploads", default=[]) or [])
    return UsageView(
        source=source,
        estimate=False,
        total_bytes=int(_get(report, "total_bytes", default=0)),
        blob_count=int(_get(report, "blob_count", default=0)),
        repos=repos,
        reclaimable_bytes=int(_get(report, "reclaimable_bytes", default=0)),
        upload_count=len(uploads),
        upload_bytes=int(_get(report, "upload_bytes", default=0)),
        reclaimable_blobs=_optional_int(_get(report, "reclaimable_blobs")),
        reclaimable_untagged_bytes=_optional_int(_get(report, "reclaimable_bytes_untagged")),
        reclaimable_untagged_blobs=_optional_int(_get(report, "reclaimable_blobs_untagged")),
        grace_period=_optional_float(_get(report, "grace_period")),
        protected_young_bytes=_optional_int(_get(report, "protected_young_bytes")) or 0,
        protected_young_blobs=_optional_int(_get(report, "protected_young_blobs")) or 0,
        quotas=tuple(
            QuotaUsage(
                scope=str(_get(q, "scope", default="")),
                name=str(_get(q, "name", default="")),
                limit=int(_get(q, "limit_bytes", "limit", default=0)),
                used=int(_get(q, "used_bytes", "used", default=0)),
            )
            for q in _get(report, "quotas", default=[]) or []
        ),
    )


def _optional_float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _optional_int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def gc_view_from_report(report: Any) -> GcView:
    """A server GC report (``embedded_registry.gc.GcReport`` or its JSON) as a view."""
    dry_run = bool(_get(report, "dry_run", default=True))
    items: list[GcItem] = []
    blob_bytes = 0
    for removal in _get(report, "removals", default=[]) or []:
        kind = str(_get(removal, "kind"))
        if kind == "blob" and (dry_run or _get(removal, "removed", default=False)):
            blob_bytes += int(_get(removal, "size", default=0))
        if kind not in GC_ITEM_KINDS:
            continue  # links and tag index entries: bookkeeping, not what operators look at
        name = _get(removal, "digest") or _get(removal, "path") or ""
        items.append(
            GcItem(
                kind=kind,
                name=str(name),
                size=int(_get(removal, "size", default=0)),
                repo=_get(removal, "repo"),
            )
        )
    freed_key = "bytes_planned" if dry_run else "bytes_freed"
    freed = _get(report, freed_key)
    if freed is None:
        freed = sum(item.size for item in items)
    notes = tuple(str(_get(p, "message", default=p)) for p in _get(report, "problems", default=[]))
    return GcView(
        dry_run=dry_run,
        items=tuple(items),
        freed_bytes=int(freed),
        notes=notes,
        blob_bytes=blob_bytes,
    )


class EstimateBackend:
    """Any registry: usage estimated from manifests; GC explained as unavailable."""

    gc_available = False
    gc_unavailable_reason = ESTIMATE_GC_REASON
    gc_activity = ""
    grace_selectable = False

    def __init__(self, client: RegistryClient, *, max_repositories: int = 2000) -> None:
        self.client = client
        self.max_repositories = max_repositories
        self.label = f"estimate from manifests of {client.host}"

    async def usage(self) -> UsageView:
        names = await self.client.catalog()
        notes = [ESTIMATE_NOTE]
        if len(names) > self.max_repositories:
            notes.append(f"Only the first {self.max_repositories} of {len(names)} repositories.")
            names = names[: self.max_repositories]
        estimate = await estimate_registry(self.client, names)
        return UsageView(
            source=self.label,
            estimate=True,
            total_bytes=estimate.total_bytes,
            blob_count=estimate.blob_count,
            repos=tuple(
                RepoUsageView(repo.name, repo.bytes, repo.exclusive_bytes)
                for repo in estimate.repos
            ),
            reclaimable_bytes=None,
            notes=tuple(notes),
        )

    async def collect_garbage(
        self, *, dry_run: bool, delete_untagged: bool = False, grace_period: float | None = None
    ) -> GcView:
        raise RegistryClientError(ESTIMATE_GC_REASON, title="GC unavailable")


def refused_reason(refused: RefusedError) -> str:
    """Why GC is unavailable when the registry has the endpoints but refuses them (403): its
    own reason, then what to do; never "no garbage-collection API"."""
    said = f' It says: "{refused.reason.rstrip(".")}".' if refused.reason else ""
    return (
        "the registry has a garbage-collection API but refuses it to this connection "
        f"({refused.status_code or 403}{f' {refused.code}' if refused.code else ''}).{said} "
        "To collect: log in as an administrator (regtui connect -u NAME), run regtui on the "
        "registry's own machine over loopback, or offline on its storage (`regtui connect "
        "--storage DIR`, `regtui gc --root DIR` or `--config FILE`)."
    )


class RefusedBackend(EstimateBackend):
    """The bundled registry behind a proxy, or for a user who is not an administrator: usage
    estimated from manifests; GC unavailable with the registry's reason and what to do."""

    def __init__(
        self, client: RegistryClient, refused: RefusedError, *, max_repositories: int = 2000
    ) -> None:
        super().__init__(client, max_repositories=max_repositories)
        self.refused = refused
        self.gc_unavailable_reason = refused_reason(refused)
        self.label = f"estimate from manifests of {client.host} (its exact report was refused)"

    async def collect_garbage(
        self, *, dry_run: bool, delete_untagged: bool = False, grace_period: float | None = None
    ) -> GcView:
        raise RegistryClientError(self.gc_unavailable_reason, title="GC refused")


class ExtensionBackend:
    """The bundled registry: exact usage and GC through its ``/v2/_regtui/ext`` endpoints."""

    gc_available = True
    gc_unavailable_reason = ""
    grace_selectable = True
    gc_activity = (
        "collecting on the registry: marking what every manifest references, then sweeping "
        "(the registry holds new manifest commits while it marks; pushes of blobs go on)"
    )

    def __init__(self, client: RegistryClient, ext: Any) -> None:
        self.client = client
        self.ext = ext
        self.label = f"bundled registry at {client.host} (exact, from its storage)"

    async def usage(self) -> UsageView:
        report = await self.ext.storage_usage(self.client)
        return usage_view_from_report(report, source=self.label)

    async def collect_garbage(
        self, *, dry_run: bool, delete_untagged: bool = False, grace_period: float | None = None
    ) -> GcView:
        report = await self.ext.collect_garbage(
            self.client,
            dry_run=dry_run,
            delete_untagged=delete_untagged,
            grace_period=grace_period,
        )
        return gc_view_from_report(report)


def _ext_module() -> Any | None:
    try:
        return importlib.import_module("tui.client.ext")
    except ImportError:
        return None


async def detect_backend(client: RegistryClient) -> StorageBackend:
    """The bundled registry's extension when it answers, the estimate otherwise; when it
    refuses (403), the estimate with the registry's reason for GC."""
    ext = _ext_module()
    if ext is not None and hasattr(ext, "supports_extension"):
        try:
            if await ext.supports_extension(client):
                return ExtensionBackend(client, ext)
        except RefusedError as refused:
            return RefusedBackend(client, refused)
        except RegistryClientError:
            pass
    return EstimateBackend(client)


__all__ = [
    "CallableBackend",
    "EstimateBackend",
    "ExtensionBackend",
    "RefusedBackend",
    "detect_backend",
    "gc_view_from_report",
    "usage_view_from_report",
]
