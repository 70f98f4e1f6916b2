"""Storage usage and garbage collection as the Storage screen sees them, whatever the source.

Three sources, one protocol (``StorageBackend``):

- the bundled registry, through its ``/v2/_regtui/ext/storage`` and ``/gc`` endpoints;
- a registry:2 storage directory given with ``--storage DIR`` (the CLI passes callables that
  wrap the server's own usage/GC code: the app never imports it);
- any other registry: an *estimate* from manifests, and GC explained as unavailable.

The view models here are plain dataclasses; ``compare_usage`` computes the before/after deltas.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from tui.logic.escape import visible
from tui.logic.fmt import human_size


@dataclass(frozen=True)
class RepoUsageView:
    """One repository's row in the storage panels, from an estimate or an exact report."""

    name: str
    total_bytes: int
    """Bytes of every blob the repository references."""
    exclusive_bytes: int
    """Bytes only this repository references: what deleting it would free."""

    @property
    def shared_bytes(self) -> int:
        return self.total_bytes - self.exclusive_bytes


@dataclass(frozen=True)
class QuotaUsage:
    """A quota of the registry (``regtui.quota``) and what is used of it."""

    scope: str
    """``repository`` or ``namespace``."""
    name: str
    limit: int
    used: int

    @property
    def fraction(self) -> float:
        return self.used / self.limit if self.limit else (1.0 if self.used else 0.0)

    @property
    def line(self) -> str:
        """``12.0 MiB of 100 MiB (12%)``."""
        return f"{human_size(self.used)} of {human_size(self.limit)} ({self.fraction:.0%})"


def quota_sentence(quota: Mapping[str, Any]) -> str:
    """``quota repository team/app: 1.2 MiB of 10.0 MiB (12%)``, from a quota of a storage
    report (``scope``, ``name``, ``limit``, ``used``): one line of ``regtui du``."""
    usage = QuotaUsage(
        str(quota["scope"]), str(quota["name"]), quota["limit_bytes"], quota["used_bytes"]
    )
    return f"quota {usage.scope} {visible(usage.name)}: {usage.line}"


@dataclass(frozen=True)
class UsageView:
    source: str
    """Where the numbers come from, shown in the panel title."""
    estimate: bool
    total_bytes: int
    blob_count: int
    repos: tuple[RepoUsageView, ...]
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
    grace_period: float | None = None
    """The GC grace period of the source, in seconds (``None`` when unknown)."""
    protected_young_bytes: int = 0
    """Unreferenced bytes that only the grace period keeps (written within it)."""
    protected_young_blobs: int = 0
    quotas: tuple[QuotaUsage, ...] = ()
    """The registry's quotas and their use (the bundled registry's ``regtui.quota``)."""


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
    grace_selectable: bool
    """Whether ``collect_garbage`` takes a ``grace_period`` of the operator's choosing."""

    async def usage(self) -> UsageView: ...

    async def collect_garbage(
        self, *, dry_run: bool, delete_untagged: bool = False, grace_period: float | None = None
    ) -> GcView:
        """A dry run lists what would go; otherwise it goes. ``grace_period`` (seconds)
        overrides the source's where ``grace_selectable``."""
        ...


class StorageSourceError(Exception):
    """The storage source cannot answer (a bucket out of reach, a collector already running,
    a registry writing): the message is one sentence for the operator."""


@dataclass
class CallableBackend:
    """A backend made of two coroutines (used for ``--storage DIR`` and in tests)."""

    label: str
    usage_fn: Callable[[], Awaitable[UsageView]]
    gc_fn: Callable[[bool, bool], Awaitable[GcView]] | None = None
    """Called as ``gc_fn(dry_run, delete_untagged)``."""
    gc_unavailable_reason: str = ""
    gc_activity: str = "collecting on the storage directory (marking manifests, then sweeping)"
    gc_grace_fn: Callable[[bool, bool, float | None], Awaitable[GcView]] | None = None
    """Instead of ``gc_fn``: called as ``gc_grace_fn(dry_run, delete_untagged, grace_period)``
    (the grace period is then the operator's to choose)."""
    gc_available: bool = field(init=False)
    grace_selectable: bool = field(init=False)

    def __post_init__(self) -> None:
        self.gc_available = self.gc_fn is not None or self.gc_grace_fn is not None
        self.grace_selectable = self.gc_grace_fn is not None

    async def usage(self) -> UsageView:
        return await self.usage_fn()

    async def collect_garbage(
        self, *, dry_run: bool, delete_untagged: bool = False, grace_period: float | None = None
    ) -> GcView:
        if self.gc_grace_fn is not None:
            return await self.gc_grace_fn(dry_run, delete_untagged, grace_period)
        if self.gc_fn is None:
            raise RuntimeError(self.gc_unavailable_reason or "garbage collection is unavailable")
        if grace_period is not None:
            raise RuntimeError("this storage source does not take a grace period")
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
GRACE_LINE = "Kept by the grace period"
"""The key of the grace-period line in ``compare_usage`` (the panel shows the duration too)."""


def human_duration(seconds: float) -> str:
    """A grace period as an operator writes it: ``0 s``, ``90 s``, ``10 min``, ``1 h``,
    ``1 h 30 min``, ``2 d``."""
    whole = max(0, round(seconds))
    if whole == 0 or whole % 60:
        return f"{whole} s"
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    parts = [f"{days} d"] if days else []
    parts += [f"{hours} h"] if hours else []
    parts += [f"{rest // 60} min"] if rest else []
    return " ".join(parts)


def grace_label(grace_period: float | None) -> str:
    """``Kept by the 1 h grace period`` (or without the duration when it is unknown)."""
    if grace_period is None:
        return "Kept by the grace period"
    return f"Kept by the {human_duration(grace_period)} grace period"


def grace_note(grace_period: float | None) -> str:
    """Why those bytes stay: ``written in the last hour; GC sweeps them later``."""
    if grace_period is None:
        recent = "recently"
    elif round(grace_period) == 3600:
        recent = "in the last hour"
    else:
        recent = f"in the last {human_duration(grace_period)}"
    return f"written {recent}; GC sweeps them later"


def grace_sentence(
    protected_bytes: int, protected_blobs: int, grace_period: float | None
) -> str | None:
    """The whole sentence about what the grace period keeps, or ``None`` when it keeps
    nothing: ``Kept by the 1 h grace period: 202.1 KiB · 4 blobs (written in the last hour; GC
    sweeps them later)``."""
    if not protected_bytes and not protected_blobs:
        return None
    return (
        f"{grace_label(grace_period)}: {human_size(protected_bytes)} · "
        f"{protected_blobs:,} blob{'s' if protected_blobs != 1 else ''} "
        f"({grace_note(grace_period)})"
    )


def grace_line(view: UsageView) -> str | None:
    """:func:`grace_sentence` of a usage view."""
    return grace_sentence(view.protected_young_bytes, view.protected_young_blobs, view.grace_period)


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
    if before.protected_young_bytes or after.protected_young_bytes:
        changes.append(
            UsageChange(GRACE_LINE, before.protected_young_bytes, after.protected_young_bytes)
        )
    changes.append(UsageChange(UPLOADS_LINE, before.upload_bytes, after.upload_bytes))
    old = {repo.name: repo.total_bytes for repo in before.repos}
    new = {repo.name: repo.total_bytes for repo in after.repos}
    for name in sorted(old.keys() | new.keys()):
        changes.append(UsageChange(name, old.get(name, 0), new.get(name, 0), repository=True))
    return changes
