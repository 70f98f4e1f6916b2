"""Garbage collection and usage on a storage driver (s3): the same mark and plan as on a
directory, from one flat listing of the bucket.

The scan is one paginated listing of ``docker/registry/v2/`` (keys, sizes, LastModified), then
the manifests of every revision and the ``current/link`` of every tag, read concurrently. The
snapshot duck-types :class:`embedded_registry.gc.scan.Snapshot`, so :func:`mark`, :func:`plan`
and :func:`embedded_registry.usage.storage_usage` run on it unchanged; its paths are keys prefixed
with the driver's name (``s3:/docker/registry/v2/...``), never local paths.

What differs from a directory (an object store has no directories and no cheap ``utime``):

* the times are the objects' LastModified: a blob's is when it was last pushed (a re-push moves
  it again, which is a refresh); a HEAD, GET or mount does not refresh a blob on S3;
* ``_layers`` links and tag-history entries of removed blobs are left in place (Distribution
  leaves them too); they name nothing and cost a few bytes;
* the sweep re-reads each blob's LastModified right before deleting it and keeps one written
  since the scan (pushed again meanwhile).

Several replicas: see :mod:`embedded_registry.gc.lease` for how GC coordinates with the others.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from embedded_registry import names
from embedded_registry.config import Config
from embedded_registry.gc.plan import UPLOAD_MAX_IDLE, GcReport, decide
from embedded_registry.gc.scan import (
    DEFAULT_GRACE_PERIOD,
    MAX_MANIFEST_BYTES,
    Manifest,
    RepoSnapshot,
    Snapshot,
    Upload,
    parse_manifest,
)
from embedded_registry.gc.sweep import sweep
from embedded_registry.storage.driven import COMMIT_MARKER, list_files
from embedded_registry.storage.driver.base import (
    KEYS,
    FileInfo,
    PathNotFoundError,
    StorageDriver,
)
from embedded_registry.storage.driver.filesystem import FilesystemDriver
from embedded_registry.storage.lease import COMMIT_WINDOW, GcBusy, Lease, acquire
from embedded_registry.storage.paths import Layout

READ_CONCURRENCY = 32
Progress = Callable[[str], None]


def _stat(size: int, mtime: float, is_dir: bool = False) -> os.stat_result:
    """A stat result carrying an object's size and LastModified (what GC reads of a file)."""
    mode = 0o040755 if is_dir else 0o100644
    return os.stat_result((mode, 0, 0, 1, 0, 0, size, mtime, mtime, mtime))


class DriverSnapshot(Snapshot):
    """A :class:`Snapshot` of a driver's keys (built by :func:`scan`)."""

    def __init__(self, driver: StorageDriver) -> None:  # no directory scan
        self.driver = driver
        # Paths in reports: local paths on the filesystem, "<driver>:<key>" elsewhere.
        local = driver.local_path("/")
        self.prefix = local.rstrip("/") if local is not None else f"{driver.name}:"
        self.layout = Layout("/")
        self.blob_dirs: dict[str, str] = {}
        self.repos: list[RepoSnapshot] = []
        self._stats: dict[str, os.stat_result | None] = {}
        self._manifests: dict[str, Manifest | None] = {}
        self._tag_targets: dict[str, dict[str, str | None]] = {}
        self.events: dict[str, tuple[float, float]] = {}
        """Per repository: (the commit marker's LastModified, the newest tag link's)."""
        self.entries: dict[str, os.stat_result] = {}
        """Every file (and directory, where the driver lists them) under ``repositories``,
        by snapshot path: what plan and activity read of links and directories."""
        self.tag_index: dict[tuple[str, str], list[tuple[str, str]]] = {}
        self.repo_bytes: dict[str, int] = {}

    def stat(self, path: str) -> os.stat_result | None:
        return self.entries.get(path)

    def tag_index_entries(self, repo: RepoSnapshot, tag: str) -> Iterator[tuple[str, str]]:
        return iter(self.tag_index.get((repo.name, tag), ()))

    def own_bytes(self, repo: RepoSnapshot) -> int:
        return self.repo_bytes.get(repo.name, 0)

    def commit_events(self, repo: RepoSnapshot) -> tuple[float, float]:
        return self.events.get(repo.name, (0.0, 0.0))

    def key(self, path: str) -> str:
        """The driver key of a snapshot path."""
        return path.removeprefix(self.prefix)

    def blob_stat(self, digest: str) -> os.stat_result | None:
        return self._stats.get(digest)

    def tag_targets(self, repo: RepoSnapshot) -> dict[str, str | None]:
        return self._tag_targets.get(repo.name, {})

    def manifest(self, digest: str) -> Manifest | None:
        return self._manifests.get(digest)


def _repo(repos: dict[str, RepoSnapshot], name: str, prefix: str, base: str) -> RepoSnapshot:
    repo = repos.get(name)
    if repo is None:
        repo = repos[name] = RepoSnapshot(name, f"{prefix}{base}/{name}")
    return repo


def _add_repository_key(
    snapshot: DriverSnapshot,
    repos: dict[str, RepoSnapshot],
    uploads: dict[tuple[str, str], list[FileInfo]],
    info: FileInfo,
    base: str,
) -> None:
    prefix = snapshot.prefix
    parts = info.path[len(base) + 1 :].split("/")
    for index, part in enumerate(parts):
        if not part.startswith("_"):
            continue
        name, rest = "/".join(parts[:index]), parts[index + 1 :]
        if not name or not names.is_valid_name(name):
            return
        snapshot.entries[prefix + info.path] = _stat(info.size, info.mtime, info.is_dir)
        if info.is_dir:
            _repo(repos, name, prefix, base)
            if part == "_uploads" and rest:
                uploads.setdefault((name, rest[0]), []).append(info)
            if part == "_manifests" and len(rest) == 3 and rest[0] == "revisions":
                digest = f"{rest[1]}:{rest[2]}"
                if names.is_valid_digest(digest):
                    _repo(repos, name, prefix, base).unlinked_revisions.add(digest)
            elif (
                part == "_manifests"
                and len(rest) == 5
                and rest[0] == "tags"
                and rest[2] == "index"
                and names.is_valid_digest(f"{rest[3]}:{rest[4]}")
            ):
                snapshot.tag_index.setdefault((name, rest[1]), []).append(
                    (f"{rest[3]}:{rest[4]}", prefix + info.path)
                )
            return
        snapshot.repo_bytes[name] = snapshot.repo_bytes.get(name, 0) + info.size
        if part == "_manifests" and len(rest) == 6 and rest[0] == "tags" and rest[5] == "link":
            # A tag's history on a driver without directories: the entry is its link's parent.
            digest = f"{rest[3]}:{rest[4]}"
            entry = prefix + info.path.rsplit("/", 1)[0]
            entries = snapshot.tag_index.setdefault((name, rest[1]), [])
            if (
                rest[2] == "index"
                and names.is_valid_digest(digest)
                and (digest, entry) not in entries
            ):
                entries.append((digest, entry))
        if part == "_manifests" and len(rest) == 4 and rest[0] == "revisions" and rest[3] == "link":
            digest = f"{rest[1]}:{rest[2]}"
            if names.is_valid_digest(digest):
                _repo(repos, name, prefix, base).revisions[digest] = _stat(info.size, info.mtime)
        elif (
            part == "_manifests"
            and len(rest) == 4
            and rest[0] == "tags"
            and rest[2:]
            == [
                "current",
                "link",
            ]
        ):
            repo = _repo(repos, name, prefix, base)
            if rest[1] not in repo.tags:
                repo.tags.append(rest[1])
            marker, tagged = snapshot.events.get(name, (0.0, 0.0))
            snapshot.events[name] = (marker, max(tagged, info.mtime))
        elif part == "_manifests" and rest == [COMMIT_MARKER]:
            _repo(repos, name, prefix, base)
            marker, tagged = snapshot.events.get(name, (0.0, 0.0))
            snapshot.events[name] = (max(marker, info.mtime), tagged)
        elif part == "_manifests":
            _repo(repos, name, prefix, base)
        elif part == "_layers" and len(rest) == 3 and rest[2] == "link":
            digest = f"{rest[0]}:{rest[1]}"
            if names.is_valid_digest(digest):
                _repo(repos, name, prefix, base).layer_links.add(digest)
        elif part == "_uploads" and rest:
            _repo(repos, name, prefix, base)
            uploads.setdefault((name, rest[0]), []).append(info)
        return


async def scan(driver: StorageDriver, progress: Progress | None = None) -> DriverSnapshot:
    """One listing of the storage, then every manifest and tag link it names."""
    snapshot = DriverSnapshot(driver)
    prefix = snapshot.prefix
    blobs_base = str(KEYS.blobs_dir)
    repos_base = str(KEYS.repositories_dir)
    repos: dict[str, RepoSnapshot] = {}
    uploads: dict[tuple[str, str], list[FileInfo]] = {}
    listed = 0
    listing = (
        driver.list_files(str(KEYS.v2), directories=True)  # type: ignore[attr-defined]
        if getattr(driver, "lists_directories", False)
        else list_files(driver, str(KEYS.v2))
    )
    async for info in listing:
        listed += 1
        if progress is not None and listed % 10_000 == 0:
            progress(f"listed {listed} objects")
        if info.path.startswith(blobs_base + "/"):
            parts = info.path[len(blobs_base) + 1 :].split("/")
            if len(parts) == 4 and parts[3] == "data":
                digest = f"{parts[0]}:{parts[2]}"
                if names.is_valid_digest(digest):
                    snapshot.blob_dirs[digest] = prefix + info.path.rsplit("/", 1)[0]
                    snapshot._stats[digest] = _stat(info.size, info.mtime)
        elif info.path.startswith(repos_base + "/"):
            _add_repository_key(snapshot, repos, uploads, info, repos_base)
    # Uploads that are only a multipart upload (nothing listed yet) count as sessions too.
    lister = getattr(driver, "multipart_uploads", None)
    if lister is not None:
        for path, _upload_id, initiated in await lister(repos_base):
            head, sep, tail = path.rpartition("/_uploads/")
            name = head[len(repos_base) + 1 :]
            if sep and names.is_valid_name(name):
                _repo(repos, name, prefix, repos_base)
                uploads.setdefault((name, tail.partition("/")[0]), []).append(
                    FileInfo(path, 0, initiated, False)
                )
    for repo in repos.values():
        repo.unlinked_revisions -= repo.revisions.keys()
    for (name, upload_id), files in uploads.items():
        repo = repos[name]
        path = f"{repo.path}/_uploads/{upload_id}"
        last = max(f.mtime for f in files)
        repo.uploads.append(Upload(name, upload_id, path, sum(f.size for f in files), last))
    snapshot.repos = [repos[name] for name in sorted(repos)]
    for repo in snapshot.repos:
        repo.tags.sort()
    await _read_references(snapshot, progress)
    return snapshot


async def _read_references(snapshot: DriverSnapshot, progress: Progress | None) -> None:
    driver = snapshot.driver
    limit = asyncio.Semaphore(READ_CONCURRENCY)

    async def read_manifest(digest: str) -> None:
        st = snapshot.blob_stat(digest)
        if st is None:
            snapshot._manifests[digest] = None
            return
        if st.st_size > MAX_MANIFEST_BYTES:
            snapshot._manifests[digest] = Manifest(
                digest, error=f"{st.st_size} bytes: too big for a manifest"
            )
            return
        async with limit:
            try:
                body = await driver.get_content(str(KEYS.blob_data(digest)))
            except PathNotFoundError:
                snapshot._manifests[digest] = None
                return
        snapshot._manifests[digest] = parse_manifest(digest, body)

    async def read_tag(repo: RepoSnapshot, tag: str, into: dict[str, str | None]) -> None:
        async with limit:
            try:
                raw = await driver.get_content(
                    str(KEYS.tag_current_link(repo.name, tag)), limit=1024
                )
            except PathNotFoundError:
                into[tag] = None
                return
        text = raw.decode("ascii", "replace").strip()
        into[tag] = text if names.is_valid_digest(text) else None

    digests = {d for repo in snapshot.repos for d in repo.revisions}
    if progress is not None:
        progress(f"reading {len(digests)} manifests")
    await asyncio.gather(*(read_manifest(d) for d in digests))
    # Children of indexes are revisions of their repository too: read above; a child that is
    # only a blob is read on demand by nobody (mark follows revisions and children in blobs).
    children = {
        c
        for d in digests
        for c in ((snapshot._manifests.get(d) or Manifest(d)).children)
        if c not in snapshot._manifests
    }
    await asyncio.gather(*(read_manifest(c) for c in children))
    tasks = []
    for repo in snapshot.repos:
        targets: dict[str, str | None] = {}
        snapshot._tag_targets[repo.name] = targets
        tasks += [read_tag(repo, tag, targets) for tag in repo.tags]
    await asyncio.gather(*tasks)


async def collect_garbage_on(
    driver: StorageDriver,
    *,
    dry_run: bool = False,
    delete_untagged: bool = False,
    remove_empty_repos: bool = False,
    grace_period: float = DEFAULT_GRACE_PERIOD,
    now: float | None = None,
    upload_max_idle: float = UPLOAD_MAX_IDLE,
    progress: Progress | None = None,
    where: str = "",
    commit_window: float | None = None,
    check: Callable[[Snapshot], None] | None = None,
) -> GcReport:
    """Mark and sweep the storage of ``driver`` (a dry run removes nothing).

    A real run holds the GC lease of :mod:`embedded_registry.storage.lease` from before its
    scan to the end of its sweep (GcBusy when another collector holds it), and waits
    ``commit_window`` seconds after taking it so that every commit begun before is seen: by
    default ``COMMIT_WINDOW`` on storage that other processes share (a bucket), none on a
    filesystem root, whose one registry holds its own commits back while its GC runs.
    ``check`` sees the snapshot before anything is planned (``regtui gc`` refuses there while a
    registry is writing). A real run first lets the driver repair what a killed sweep or writer
    left (:meth:`StorageDriver.before_gc`).
    """
    if commit_window is None:
        commit_window = COMMIT_WINDOW if driver.shared else 0.0
    if dry_run:
        return await _collect(
            driver,
            dry_run,
            delete_untagged,
            remove_empty_repos,
            grace_period,
            now,
            upload_max_idle,
            progress,
            where,
            check,
        )
    lease = await acquire(driver)
    try:
        async with lease.keep():
            if progress is not None:
                progress(f"took the GC lease; waiting {commit_window:g} s for commits in flight")
            await asyncio.sleep(commit_window)
            await driver.before_gc()
            report = await _collect(
                driver,
                dry_run,
                delete_untagged,
                remove_empty_repos,
                grace_period,
                now,
                upload_max_idle,
                progress,
                where,
                check,
                lease,
            )
    finally:
        await lease.release()
    return report


async def _collect(
    driver: StorageDriver,
    dry_run: bool,
    delete_untagged: bool,
    remove_empty_repos: bool,
    grace_period: float,
    now: float | None,
    upload_max_idle: float,
    progress: Progress | None,
    where: str,
    check: Callable[[Snapshot], None] | None,
    lease: Lease | None = None,
) -> GcReport:
    started = time.monotonic()
    now = time.time() if now is None else now
    snapshot = await scan(driver, progress)
    if check is not None:
        check(snapshot)
    decided = await asyncio.to_thread(
        decide,
        snapshot,
        delete_untagged=delete_untagged,
        remove_empty_repos=remove_empty_repos,
        now=now,
        grace=grace_period,
        upload_max_idle=upload_max_idle,
    )
    if not dry_run:
        if lease is not None and lease.lost:
            raise GcBusy("the GC lease was lost before the sweep; nothing was removed")
        await sweep(snapshot, decided.removals, decided.problems, now - grace_period, progress)
    return decided.report(root=where or driver.name, dry_run=dry_run, started=started)


async def usage_on(
    driver: StorageDriver,
    *,
    grace_period: float = DEFAULT_GRACE_PERIOD,
    now: float | None = None,
    where: str = "",
) -> Any:
    """The usage report (:func:`embedded_registry.usage.storage_usage`) of a driver's storage."""
    from embedded_registry.usage import storage_usage

    snapshot = await scan(driver)
    # The marks are CPU work: in a thread, so that a registry serving meanwhile stays live.
    return await asyncio.to_thread(
        storage_usage, where or driver.name, grace_period=grace_period, now=now, snapshot=snapshot
    )


def storage_location(config: Config) -> str:
    """Where ``config``'s storage is, for reports: the root, or ``s3://bucket/rootdirectory``."""
    s3 = config.storage.s3
    if s3 is None:
        return str(config.storage.root)
    root = s3.rootdirectory.strip("/")
    return f"s3://{s3.bucket}/{root}" if root else f"s3://{s3.bucket}"


async def _with_driver(config: Config, work: Callable[[StorageDriver], Any]) -> Any:
    from embedded_registry.storage.driven import DriverStorage
    from embedded_registry.storage.factory import StorageUnavailable, open_storage

    if config.storage.s3 is None:
        return await work(FilesystemDriver(config.storage.root))
    storage = await open_storage(config)
    try:
        if not isinstance(storage, DriverStorage):
            raise StorageUnavailable("the configuration names no storage driver")
        return await work(storage.driver)
    finally:
        await storage.close()


def collect_garbage_configured(
    config: Config,
    *,
    refuse_if_active: bool = False,
    progress: Progress | None = None,
    **options: Any,
) -> GcReport:
    """GC of the storage driver ``config`` names (``regtui gc --config FILE`` on s3).

    Raises :class:`embedded_registry.storage.factory.StorageUnavailable` (one line) when the
    bucket cannot be used, :class:`RegistryActive` when ``refuse_if_active`` and an upload
    session was written within the last minute (a registry is taking pushes).
    """
    from embedded_registry.gc.offline import RegistryActive, writer_activity

    def refuse(snapshot: Snapshot) -> None:
        reason = writer_activity(
            snapshot, root=config.storage.root if config.storage.s3 is None else None
        )
        if reason is not None:
            raise RegistryActive(reason)

    async def work(driver: StorageDriver) -> GcReport:
        check = refuse if refuse_if_active and not options.get("dry_run") else None
        return await collect_garbage_on(
            driver, progress=progress, where=storage_location(config), check=check, **options
        )

    report: GcReport = asyncio.run(_with_driver(config, work))
    return report


def usage_configured(config: Config, *, grace_period: float = DEFAULT_GRACE_PERIOD) -> Any:
    """The usage report of the storage driver ``config`` names (``regtui du --config FILE``)."""

    async def work(driver: StorageDriver) -> Any:
        return await usage_on(driver, grace_period=grace_period, where=storage_location(config))

    return asyncio.run(_with_driver(config, work))
