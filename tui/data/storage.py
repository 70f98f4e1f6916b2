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
    """What a GC keeping every manifest would free now: blobs no manifest references (past the
    grace period). ``None`` when it cannot be known (estimates)."""
    upload_count: int = 0
    upload_bytes: int = 0
    notes: tuple[str, ...] = ()
    reclaimable_blobs: int | None = None
    reclaimable_untagged_bytes: int | None = None
    """What a GC that also removes untagged manifests would free (``t`` on the screen)."""
    reclaimable_untagged_blobs: int | None = None


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
    """Every file removed (or to remove): blob data, links, uploads."""
    notes: tuple[str, ...] = ()
    blob_bytes: int | None = None
    """Blob data alone: what the panel's "Reclaimable" lines count."""

    def count(self, kind: str) -> int:
        return sum(1 for item in self.items if item.kind == kind)


class StorageBackend(Protocol):
    label: str
    gc_available: bool
    gc_unavailable_reason: str
    gc_activity: str
    """What the screen says while a collection runs (it cannot report progress)."""

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
    gc_activity: str = "collecting on the storage directory (marking manifests, then sweeping)"
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
    unit: str = "bytes"
    """``bytes`` or ``count``."""
    repository: bool = False
    """A repository's line (the others are the totals)."""

    @property
    def delta(self) -> int:
        return self.after - self.before


TOTAL_LINE = "Total on disk"
BLOBS_LINE = "Blobs"
RECLAIMABLE_LINE = "Reclaimable: unreferenced blobs"
RECLAIMABLE_UNTAGGED_LINE = "Reclaimable: with untagged manifests"
UPLOADS_LINE = "Uploads in progress"


def compare_usage(before: UsageView, after: UsageView) -> list[UsageChange]:
    """Every line of the panel, before and after: totals first, then every repository (by
    name; one that is gone has ``after`` 0). Unknown reclaimable numbers (estimates) are left
    out rather than shown as 0."""
    changes = [
        UsageChange(TOTAL_LINE, before.total_bytes, after.total_bytes),
        UsageChange(BLOBS_LINE, before.blob_count, after.blob_count, unit="count"),
    ]
    if before.reclaimable_bytes is not None and after.reclaimable_bytes is not None:
        changes.append(
            UsageChange(RECLAIMABLE_LINE, before.reclaimable_bytes, after.reclaimable_bytes)
        )
    if (
        before.reclaimable_untagged_bytes is not None
        and after.reclaimable_untagged_bytes is not None
    ):
        changes.append(
            UsageChange(
                RECLAIMABLE_UNTAGGED_LINE,
                before.reclaimable_untagged_bytes,
                after.reclaimable_untagged_bytes,
            )
        )
    changes.append(UsageChange(UPLOADS_LINE, before.upload_bytes, after.upload_bytes))
    old = {repo.name: repo.total_bytes for repo in before.repos}
    new = {repo.name: repo.total_bytes for repo in after.repos}
    for name in sorted(old.keys() | new.keys()):
        changes.append(UsageChange(name, old.get(name, 0), new.get(name, 0), repository=True))
    return changes
