"""Storage usage of a data directory in Distribution's layout: the numbers behind ``regtui du``.

Sizes come from the files themselves (``data`` of each blob, files of each upload), and each blob
is counted once however many repositories or manifests reference it. What garbage collection
would reclaim is computed with the same mark as :mod:`embedded_registry.gc`, so the report and a
GC dry run always agree.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from embedded_registry.gc import (
    DEFAULT_GRACE_PERIOD,
    ROLE_CONFIG,
    ROLE_LAYER,
    ROLE_MANIFEST,
    MarkResult,
    Snapshot,
    mark,
    scan_root,
    sweepable_blobs,
)
from embedded_registry.gc.collect import storage_location, with_configured_driver
from embedded_registry.gc.scan import scan
from embedded_registry.storage.driver.base import StorageDriver

if TYPE_CHECKING:  # read for --config only
    from embedded_registry.config import Config

UNREFERENCED = "unreferenced"


@dataclass(slots=True)
class RepoUsage:
    """One repository: what its manifests reference, and the part no other repository shares."""

    name: str
    manifests: int
    tags: int
    referenced_bytes: int
    exclusive_bytes: int
    blobs: int


@dataclass(slots=True)
class UploadUsage:
    """An upload session; ``stale`` when idle for longer than the grace period."""

    repo: str
    upload_id: str
    bytes: int
    idle_seconds: float
    stale: bool


@dataclass(slots=True)
class UsageReport:
    """Storage usage of one root; ``to_json()`` gives plain JSON types."""

    root: str
    total_bytes: int
    blob_count: int
    bytes_by_kind: dict[str, int]
    blobs_by_kind: dict[str, int]
    repositories: list[RepoUsage]
    uploads: list[UploadUsage]
    upload_bytes: int
    stale_upload_bytes: int
    reclaimable_bytes: int
    reclaimable_blobs: int
    reclaimable_bytes_untagged: int
    reclaimable_blobs_untagged: int
    grace_period: float
    problems: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    protected_young_bytes: int = 0
    """Unreferenced bytes that only the grace period keeps (written within it): what a GC that
    also removes untagged manifests would free with grace 0 on top of its reclaimable bytes."""
    protected_young_blobs: int = 0

    def to_json(self, *, include_root: bool = False) -> dict[str, Any]:
        """Plain JSON types; without ``root`` (an absolute path of the server's machine) unless
        asked for: this is what the storage extension endpoint sends to remote clients."""
        document = asdict(self)
        if not include_root:
            del document["root"]
        return document


def _size(snapshot: Snapshot, digest: str) -> int:
    st = snapshot.blob_stat(digest)
    return st.size if st is not None else 0


def _reclaimable(snapshot: Snapshot, marks: MarkResult, young: float) -> set[str]:
    """The blobs a sweep after this mark would remove."""
    swept, _too_young = sweepable_blobs(snapshot, marks.marked, young)
    return swept


def _bytes(snapshot: Snapshot, digests: set[str]) -> int:
    return sum(_size(snapshot, d) for d in digests)


def storage_usage(
    root: Path | str,
    *,
    grace_period: float = DEFAULT_GRACE_PERIOD,
    now: float | None = None,
    snapshot: Snapshot | None = None,
) -> UsageReport:
    """Scan ``root`` once through the filesystem driver (or take ``snapshot``, of any storage
    driver) and account for every byte in it."""
    started = time.monotonic()
    now = time.time() if now is None else now
    young = now - grace_period
    if snapshot is None:
        snapshot = scan_root(root)
    every = mark(snapshot, delete_untagged=False, now=now, grace=grace_period)
    # Only what the marks below keep in all is read of them: no per-repository detail.
    tagged = mark(snapshot, delete_untagged=True, now=now, grace=grace_period, detail=False)

    blobs = snapshot.blob_stats()
    total = sum(st.size for st in blobs.values())
    bytes_by_kind = dict.fromkeys((ROLE_LAYER, ROLE_CONFIG, ROLE_MANIFEST, UNREFERENCED), 0)
    blobs_by_kind = dict.fromkeys(bytes_by_kind, 0)
    for digest, st in blobs.items():
        kind = every.roles.get(digest, UNREFERENCED) if digest in every.marked else UNREFERENCED
        bytes_by_kind[kind] += st.size
        blobs_by_kind[kind] += 1

    owners: dict[str, int] = {}
    for repo_mark in every.repos.values():
        for digest in repo_mark.blobs:
            if digest in blobs:
                owners[digest] = owners.get(digest, 0) + 1
    repositories = []
    for repo in snapshot.repos:
        present = [d for d in every.repos[repo.name].blobs if d in blobs]
        repositories.append(
            RepoUsage(
                name=repo.name,
                manifests=len(repo.revisions),
                tags=len(repo.tags),
                referenced_bytes=sum(blobs[d].size for d in present),
                exclusive_bytes=sum(blobs[d].size for d in present if owners[d] == 1),
                blobs=len(present),
            )
        )

    uploads = [
        UploadUsage(
            repo=u.repo,
            upload_id=u.upload_id,
            bytes=u.size,
            idle_seconds=max(0.0, now - u.last_activity),
            stale=u.last_activity <= young,
        )
        for repo in snapshot.repos
        for u in repo.uploads
    ]
    reclaimable = _reclaimable(snapshot, every, young)
    untagged = _reclaimable(snapshot, tagged, young)
    # What the grace period alone protects, for the larger (delete-untagged) mark: a young
    # untagged manifest is a root of that mark (it may be a child of an index still being
    # pushed), so its blobs only become unreferenced in a mark without grace.
    if grace_period > 0:
        bare = mark(snapshot, delete_untagged=True, now=now, grace=0.0, detail=False)
        protected = _reclaimable(snapshot, bare, now) - untagged
    else:
        protected = set()
    problems = {(p.repo, p.digest, p.message) for p in every.problems + tagged.problems}
    return UsageReport(
        root=str(root),
        total_bytes=total,
        blob_count=len(blobs),
        bytes_by_kind=bytes_by_kind,
        blobs_by_kind=blobs_by_kind,
        repositories=repositories,
        uploads=uploads,
        upload_bytes=sum(u.bytes for u in uploads),
        stale_upload_bytes=sum(u.bytes for u in uploads if u.stale),
        reclaimable_bytes=_bytes(snapshot, reclaimable),
        reclaimable_blobs=len(reclaimable),
        reclaimable_bytes_untagged=_bytes(snapshot, untagged),
        reclaimable_blobs_untagged=len(untagged),
        grace_period=grace_period,
        problems=[
            {"repo": repo, "digest": digest, "message": message}
            for repo, digest, message in sorted(problems, key=str)
        ],
        seconds=time.monotonic() - started,
        protected_young_bytes=_bytes(snapshot, protected),
        protected_young_blobs=len(protected),
    )


async def usage_on(
    driver: StorageDriver,
    *,
    grace_period: float = DEFAULT_GRACE_PERIOD,
    now: float | None = None,
    where: str = "",
) -> UsageReport:
    """The usage report (:func:`storage_usage`) of a driver's storage."""
    snapshot = await scan(driver)
    # The marks are CPU work: in a thread, so that a registry serving meanwhile stays live.
    return await asyncio.to_thread(
        storage_usage, where or driver.name, grace_period=grace_period, now=now, snapshot=snapshot
    )


def usage_configured(config: Config, *, grace_period: float = DEFAULT_GRACE_PERIOD) -> UsageReport:
    """The usage report of the storage driver ``config`` names (``regtui du --config FILE``)."""

    async def work(driver: StorageDriver) -> UsageReport:
        return await usage_on(driver, grace_period=grace_period, where=storage_location(config))

    report: UsageReport = asyncio.run(with_configured_driver(config, work))
    return report
