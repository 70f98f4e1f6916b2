"""Storage usage and garbage collection as the Storage screen sees them, whatever the source.

Three sources, one protocol (``StorageBackend``):

- the bundled registry, through its ``/v2/_regtui/ext/storage`` and ``/gc`` endpoints;
- a registry:2 storage directory given with ``--storage DIR`` (the CLI passes callables that
  wrap the server's own usage/GC code: the app never imports it);
- any other registry: an *estimate* from manifests, and GC explained as unavailable.

The view models here are plain dataclasses; ``compare_usage`` computes the before/after deltas.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class RepoUsage:
    name: str
    total_bytes: int
    """Bytes of every blob the repository references."""
    exclusive_bytes: int
    """Bytes only this repository references: what deleting it would free."""

    @property
    def shared_bytes(self) -> int:
        return self.total_bytes - self.exclusive_bytes


@dataclass(frozen=True)
class UsageView:
    source: str
    """Where the numbers come from, shown in the panel title."""
    estimate: bool
    total_bytes: int
    blob_count: int
    repos: tuple[RepoUsage, ...]
    reclaimable_bytes: int | None
    """What a GC would free now; ``None`` when it cannot be known (estimates)."""
    upload_count: int = 0
    upload_bytes: int = 0
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class GcItem:
    kind: str
    """``blob``, ``manifest`` or ``upload``."""
    name: str
    size: int
    repo: str | None = None


@dataclass(frozen=True)
class GcView:
    dry_run: bool
    items: tuple[GcItem, ...]
    freed_bytes: int
    notes: tuple[str, ...] = ()

    def count(self, kind: str) -> int:
        return sum(1 for item in self.items if item.kind == kind)


class StorageBackend(Protocol):
    label: str
    gc_available: bool
    gc_unavailable_reason: str

    async def usage(self) -> UsageView: ...

    async def collect_garbage(self, *, dry_run: bool, delete_untagged: bool = False) -> GcView:
        """A dry run lists what would go; otherwise it goes."""
        ...


@dataclass
class CallableBackend:
    """A backend made of two coroutines (used for ``--storage DIR`` and in tests)."""

    label: str
    usage_fn: Callable[[], Awaitable[UsageView]]
    gc_fn: Callable[[bool, bool], Awaitable[GcView]] | None = None
    """Called as ``gc_fn(dry_run, delete_untagged)``."""
    gc_unavailable_reason: str = ""
    gc_available: bool = field(init=False)

    def __post_init__(self) -> None:
        self.gc_available = self.gc_fn is not None

    async def usage(self) -> UsageView:
        return await self.usage_fn()

    async def collect_garbage(self, *, dry_run: bool, delete_untagged: bool = False) -> GcView:
        if self.gc_fn is None:
            raise RuntimeError(self.gc_unavailable_reason or "garbage collection is unavailable")
        return await self.gc_fn(dry_run, delete_untagged)


@dataclass(frozen=True)
class UsageChange:
    name: str
    before: int
    after: int

    @property
    def delta(self) -> int:
        return self.after - self.before


def compare_usage(before: UsageView, after: UsageView) -> list[UsageChange]:
    """Totals first (``total``, ``reclaimable``, ``uploads``), then every repository."""
    changes = [
        UsageChange("total", before.total_bytes, after.total_bytes),
        UsageChange("blobs (count)", before.blob_count, after.blob_count),
        UsageChange("reclaimable", before.reclaimable_bytes or 0, after.reclaimable_bytes or 0),
        UsageChange("uploads", before.upload_bytes, after.upload_bytes),
    ]
    old = {repo.name: repo.total_bytes for repo in before.repos}
    new = {repo.name: repo.total_bytes for repo in after.repos}
    for name in sorted(old.keys() | new.keys()):
        changes.append(UsageChange(name, old.get(name, 0), new.get(name, 0)))
    return changes
