"""The scan: what a storage holds, from one listing through its driver.

The scan is one listing of ``docker/registry/v2/`` (keys, sizes, times; on the filesystem the
directories too, whose times record deletes), then the manifests of every revision and the
``current/link`` of every tag, read concurrently. :func:`mark`, :func:`plan` and
:func:`embedded_registry.usage.storage_usage` run on the snapshot, whatever the driver.

What differs on an object store (no directories, no cheap ``utime``):

* the times are the objects' LastModified: a blob's is when it was last pushed (a re-push moves
  it again, which is a refresh); a HEAD, GET or mount does not refresh a blob on S3;
* a delete leaves no directory time behind: the bundled registry's commit marker records it;
* ``_layers`` links and tag-history entries of removed blobs are left in place (Distribution
  leaves them too); they name nothing and cost a few bytes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection, Iterable, Iterator, MutableMapping
from dataclasses import dataclass, field

from embedded_registry import names
from embedded_registry.gc.digests import BlobIndex, DigestList, raw_sha256
from embedded_registry.mediatypes import StoredManifest, parse_stored_manifest
from embedded_registry.storage.driver.base import FileInfo, StorageDriver
from embedded_registry.storage.driver.capabilities import (
    DirectoryTimes,
    LocalRoot,
    MultipartUploads,
    NameListing,
    get_many,
    list_files,
)
from embedded_registry.storage.fsutil import STALE_TEMP_AGE, TEMP_PREFIX
from embedded_registry.storage.paths import COMMIT_MARKER, KEYS

Progress = Callable[[str], None]

DEFAULT_GRACE_PERIOD = 3600.0
"""Seconds during which new blobs, links, revisions and uploads are never swept."""

MAX_MANIFEST_BYTES = 16 * 1024 * 1024
"""A revision bigger than this is not read as a manifest (Distribution refuses 4 MiB on push)."""

# -- the scan: what is on disk --------------------------------------------------------------


@dataclass(slots=True)
class Upload:
    """One upload session under ``_uploads``: its size and when it was last written."""

    repo: str
    upload_id: str
    path: str
    size: int
    last_activity: float


@dataclass(slots=True)
class RepoSnapshot:
    """One repository as found on disk; ``revisions`` maps each manifest whose revision link
    exists to the link's stat; ``unlinked_revisions`` are revision directories whose link is gone
    (Distribution's API delete leaves them)."""

    name: str
    path: str
    revisions: dict[str, FileInfo] = field(default_factory=dict)
    unlinked_revisions: set[str] = field(default_factory=set)
    tags: list[str] = field(default_factory=list)
    layer_links: Collection[str] = field(default_factory=list)
    """The digests of its ``_layers`` links, each once: a :class:`DigestList` once listed
    (positions in the packed blob directories, 4 bytes a link), GC only walks them."""
    uploads: list[Upload] = field(default_factory=list)


LINK_BYTES = 1024


def storage_prefix(driver: StorageDriver) -> str:
    """How reports name the storage: its local root (a driver of files under one local
    directory), or ``<driver>:`` (``s3:/docker/registry/v2/...``)."""
    if isinstance(driver, LocalRoot):
        return str(driver.root).rstrip("/")
    return f"{driver.name}:"


class BlobDirs(BlobIndex, MutableMapping[str, str]):
    """Blob directories by digest. Where the layout puts one (``<base>/<alg>/<hex[:2]>/<hex>``),
    its path is computed when asked for, not kept, and a ``sha256`` digest listed in order is
    32 bytes of one packed buffer (:mod:`embedded_registry.gc.digests`), not a string: a store
    of millions of blobs holds no string per blob here. Any other is kept as a string."""

    __slots__ = ("_base", "_elsewhere")

    def __init__(self, base: str) -> None:
        super().__init__()
        self._base = base
        self._elsewhere: dict[str, str] = {}
        """Digests not packed: their directory (where the layout puts it, or not)."""

    def _where(self, digest: str) -> str:
        algorithm, _, hex_part = digest.partition(":")
        return f"{self._base}/{algorithm}/{hex_part[:2]}/{hex_part}"

    def __getitem__(self, digest: str) -> str:
        path = self._elsewhere.get(digest)
        if path is not None:
            return path
        if self.index(digest) >= 0:
            return self._where(digest)
        raise KeyError(digest)

    def __setitem__(self, digest: str, path: str) -> None:
        if digest in self._elsewhere or self.index(digest) < 0:
            raw = raw_sha256(digest) if path == self._where(digest) else None
            if raw is not None and digest not in self._elsewhere and self._packed.append(raw):
                return
            self._elsewhere[digest] = path
        elif path != self._where(digest):
            self._removed.add(self.index(digest))
            self._elsewhere[digest] = path

    def __delitem__(self, digest: str) -> None:
        if self._elsewhere.pop(digest, None) is not None:
            return
        index = self.index(digest)
        if index < 0:
            raise KeyError(digest)
        self._removed.add(index)

    def __contains__(self, digest: object) -> bool:
        if not isinstance(digest, str):
            return False
        return digest in self._elsewhere or self.index(digest) >= 0

    def __iter__(self) -> Iterator[str]:
        digest = self.packed_digest
        for index in self.packed_present():
            yield digest(index)
        yield from self._elsewhere

    def __len__(self) -> int:
        return len(self._packed) - len(self._removed) + len(self._elsewhere)

    def add_in_place(self, digest: str) -> None:
        """Add a blob whose directory is where the layout puts it."""
        raw = raw_sha256(digest)
        if raw is None or digest in self._elsewhere or not self._packed.append(raw):
            self[digest] = self._where(digest)

    def unpacked(self) -> Iterator[str]:
        """The digests kept as strings (not packed)."""
        return iter(self._elsewhere)


class Snapshot:
    """What a storage holds, from one listing of its driver (built by :func:`scan`): blob and
    repository names with the sizes and times of their files, every manifest and tag target.

    Its paths are the driver's keys behind a prefix: the root directory on the filesystem
    (reports name local paths), ``<driver>:`` elsewhere (``s3:/docker/registry/v2/...``).
    Plan and push activity read links and directories here, never from the OS.
    """

    def __init__(self, driver: StorageDriver, names: NameListing | None = None) -> None:
        self.driver = driver
        self._names = names
        """Where the driver lists by name (:class:`NameListing`), the scan reads names only
        and the stats a decision needs are taken here when first asked for, once each (from
        the worker thread that marks and plans)."""
        self._looked: dict[str, FileInfo | None] = {}
        # Paths in reports: local paths on the filesystem, "<driver>:<key>" elsewhere.
        self.prefix = storage_prefix(driver)
        self.blob_dirs = BlobDirs(self.prefix + KEYS.blobs_dir)
        self.repos: list[RepoSnapshot] = []
        self._stats: dict[str, FileInfo | None] = {}
        self._manifests: dict[str, StoredManifest | None] = {}
        self._manifests_forgotten = False
        self._tag_targets: dict[str, dict[str, str | None]] = {}
        self._valid_names: dict[str, bool] = {}
        self.stale_temporaries: list[str] = []
        """Keys of temporary files of atomic writes older than ``STALE_TEMP_AGE`` (a killed
        writer's): a real run removes them."""
        self.events: dict[str, tuple[float, float]] = {}
        self.newest_tag: dict[str, float] = {}
        """Per repository listed by name: the time of its newest tag link (the scan stats
        each one and keeps only this)."""
        """Per repository: (the commit marker's LastModified, the newest tag link's)."""
        self.entries: dict[str, FileInfo] = {}
        """Every file (and directory, where the driver lists them) under ``repositories``,
        by snapshot path: what plan and activity read of links and directories."""
        self.tag_index: dict[tuple[str, str], list[tuple[str, str]]] = {}
        self.repo_bytes: dict[str, int] = {}

    def stat(self, path: str, *, remember: bool = True) -> FileInfo | None:
        """The stat of a file (or directory, where the driver lists them) under
        ``repositories`` (None: not there). Where the driver lists by name, a stat taken here
        is kept for the next ask unless ``remember`` is false (the ``_layers`` links of the
        plan: one each of hundreds of thousands, its path and stat more than the stat
        costs)."""
        found = self.entries.get(path)
        if found is not None or self._names is None:
            return found
        try:
            return self._looked[path]
        except KeyError:
            pass
        info = _bare_or_none(self._names.stat_now(self.key(path)))
        if remember:
            self._looked[path] = info
        return info

    def tag_index_entries(self, repo: RepoSnapshot, tag: str) -> Iterator[tuple[str, str]]:
        """``tags/<tag>/index/<alg>/<hex>`` entries: (digest, entry path)."""
        key = (repo.name, tag)
        if self._names is not None and key not in self.tag_index:
            index = f"{self.key(repo.path)}/_manifests/tags/{tag}/index"
            self.tag_index[key] = [
                (digest, self.prefix + path) for digest, path in _digest_dirs(self._names, index)
            ]
        return iter(self.tag_index.get(key, ()))

    def own_bytes(self, repo: RepoSnapshot) -> int:
        """The bytes of the files in ``repo``'s own ``_`` directories."""
        if self._names is not None and repo.name not in self.repo_bytes:
            names, total = self._names, 0
            top = self.key(repo.path)
            pending = [f"{top}/{n}" for n, d in names.entries(top) or () if n[:1] == "_" and d]
            while pending:
                directory = pending.pop()
                for name, is_dir in names.entries(directory) or ():
                    if is_dir:
                        pending.append(f"{directory}/{name}")
                    elif (info := names.stat_now(f"{directory}/{name}")) is not None:
                        total += info.size
            self.repo_bytes[repo.name] = total
        return self.repo_bytes.get(repo.name, 0)

    def commit_events(self, repo: RepoSnapshot) -> tuple[float, float]:
        """Times of manifest events the names alone do not show: ``(the commit marker's
        LastModified, the newest tag link's)`` (:mod:`embedded_registry.gc.activity`)."""
        if self._names is not None and repo.name not in self.events:
            marker = self.stat(f"{repo.path}/_manifests/{COMMIT_MARKER}")
            tagged = self.newest_tag.get(repo.name, 0.0)
            self.events[repo.name] = (marker.mtime if marker is not None else 0.0, tagged)
        return self.events.get(repo.name, (0.0, 0.0))

    def key(self, path: str) -> str:
        """The driver key of a snapshot path."""
        return path.removeprefix(self.prefix)

    def blob_stat(self, digest: str) -> FileInfo | None:
        """The stat of a blob's ``data``; None when there is no such blob."""
        try:
            return self._stats[digest]
        except KeyError:
            pass
        if self._names is None:
            return None
        directory = self.blob_dirs.get(digest)
        info = None
        if directory is not None:
            info = _bare_or_none(self._names.stat_now(f"{directory[len(self.prefix) :]}/data"))
        self._stats[digest] = info
        return info

    def blob_stats(self) -> dict[str, FileInfo]:
        """Every blob that has a ``data`` file: digest -> its stat."""
        if self._names is not None:
            for digest in self.blob_dirs:
                self.blob_stat(digest)
        return {d: st for d, st in self._stats.items() if st is not None}

    def tag_targets(self, repo: RepoSnapshot) -> dict[str, str | None]:
        """What each tag of ``repo`` points at (None: its ``current/link`` names nothing)."""
        if self._names is not None and repo.name not in self._tag_targets:
            names, top = self._names, self.key(repo.path)
            self._tag_targets[repo.name] = {
                tag: _link_target(
                    names.read_now(f"{top}/_manifests/tags/{tag}/current/link", LINK_BYTES)
                )
                for tag in repo.tags
            }
        return self._tag_targets.get(repo.name, {})

    def manifest(self, digest: str) -> StoredManifest | None:
        if self._manifests_forgotten:
            raise RuntimeError("the manifests of this snapshot were freed after its mark")
        return self._manifests.get(digest)

    def forget_manifests(self) -> None:
        """Free the manifests read by the scan (only the mark reads them): GC does it between
        its mark and its plan. Asking for one afterwards is a bug, and raises."""
        self._manifests = {}
        self._manifests_forgotten = True


def _repo(repos: dict[str, RepoSnapshot], name: str, prefix: str, base: str) -> RepoSnapshot:
    repo = repos.get(name)
    if repo is None:
        repo = repos[name] = RepoSnapshot(name, f"{prefix}{base}/{name}")
    return repo


def _add_repository_key(
    snapshot: Snapshot,
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
        valid = snapshot._valid_names.get(name)
        if valid is None:
            valid = snapshot._valid_names[name] = bool(name) and names.is_valid_name(name)
        if not valid:
            return
        snapshot.entries[prefix + info.path] = info
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
                _repo(repos, name, prefix, base).revisions[digest] = info
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
                links = _repo(repos, name, prefix, base).layer_links
                if isinstance(links, list):  # a list while listing, a DigestList after
                    links.append(digest)
        elif part == "_uploads" and rest:
            _repo(repos, name, prefix, base)
            uploads.setdefault((name, rest[0]), []).append(info)
        return


_BLOBS = KEYS.blobs_dir + "/"


def layout_leaf(key: str) -> str | None:
    """The one file a write-once directory of the layout holds: ``data`` in a blob's, ``link``
    in a layer link's (``_layers/<alg>/<hex>``) and a tag history entry's
    (``index/<alg>/<hex>``); None for any other directory. Directories whose file is written
    again (a revision link on every push of its manifest, a tag's ``current``) are listed, so
    that the temporary file of a rewrite a killed writer left there is seen."""
    if key.startswith(_BLOBS):
        return "data" if key.count("/", len(_BLOBS)) == 2 else None
    parts = key.rsplit("/", 6)
    if len(parts) < 4:
        return None
    if parts[-3] == "_layers":
        return "link"
    if len(parts) == 7 and parts[-3] == "index" and parts[-6:-4] == ["_manifests", "tags"]:
        return "link"
    return None


def _bare(info: FileInfo) -> FileInfo:
    """A stat without its key (the snapshot knows where the file is): one string less for
    each of the hundreds of thousands of files a large store's GC keeps a stat of."""
    return FileInfo("", info.size, info.mtime, info.is_dir)


def _bare_or_none(info: FileInfo | None) -> FileInfo | None:
    return None if info is None else _bare(info)


def _link_target(raw: bytes | Exception | None) -> str | None:
    text = raw.decode("ascii", "replace").strip() if isinstance(raw, bytes) else ""
    return text if names.is_valid_digest(text) else None


def _digest_dirs(listing: NameListing, key: str) -> list[tuple[str, str]]:
    """The ``<alg>/<hex>`` directories under ``key``: (digest, key of the directory)."""
    found = []
    for algorithm, is_dir in listing.entries(key) or ():
        if is_dir:
            top = f"{key}/{algorithm}"
            for hex_part, inner in listing.entries(top) or ():
                digest = f"{algorithm}:{hex_part}"
                if inner and names.is_valid_digest(digest):
                    found.append((digest, f"{top}/{hex_part}"))
    return found


def _list_by_name(snapshot: Snapshot, listing: NameListing, temporaries: bool) -> None:
    """The layout read level by level by name (a blocking call of a worker thread): blob
    directories, repositories with their layer links, revisions (one ``stat`` of each link),
    tags (one ``stat`` of each ``current/link``) and uploads (every file: their sizes and
    times). Nothing else is looked at here; the stats a decision needs are taken by
    :class:`Snapshot` when asked. With ``temporaries`` (a real run), the directories whose
    link is rewritten (a revision, a tag's ``current``) are listed too, for the temporary files
    of a killed writer."""
    prefix = snapshot.prefix
    stale = time.time() - STALE_TEMP_AGE
    entries, stat = listing.entries, listing.stat_now

    def files(key: str, found: list[tuple[str, bool]] | None) -> None:
        """Note the stale temporary files among the entries of ``key``."""
        for name, is_dir in found or ():
            if not is_dir and name.startswith(TEMP_PREFIX):
                info = stat(f"{key}/{name}")
                if info is not None and info.mtime < stale:
                    snapshot.stale_temporaries.append(f"{key}/{name}")

    files(KEYS.v2, entries(KEYS.v2))
    blobs = KEYS.blobs_dir
    blob_dirs = snapshot.blob_dirs
    is_valid_digest = names.is_valid_digest
    top = entries(blobs)
    files(blobs, top)
    for algorithm, is_dir in top or ():
        if not is_dir:
            continue
        algorithm_key = f"{blobs}/{algorithm}"
        # In digest order: the blob directories are then packed as they come.
        for two, inner in sorted(entries(algorithm_key) or ()):
            if not inner:
                continue
            two_key = f"{algorithm_key}/{two}"
            for hex_part, is_blob_dir in sorted(entries(two_key) or ()):
                digest = f"{algorithm}:{hex_part}"
                if is_blob_dir and is_valid_digest(digest):
                    blob_dirs.add_in_place(digest)

    repositories = KEYS.repositories_dir
    repos: dict[str, RepoSnapshot] = {}
    pending = [("", repositories)]
    while pending:
        name, key = pending.pop()
        found = entries(key)
        files(key, found)
        parts = []
        for child, is_dir in found or ():
            if not is_dir:
                continue
            if child.startswith("_"):
                parts.append(child)
            else:
                pending.append((f"{name}/{child}" if name else child, f"{key}/{child}"))
        if not parts or not name or not names.is_valid_name(name):
            continue
        repo = repos[name] = RepoSnapshot(name, prefix + key)
        for part in parts:
            if part == "_layers":
                layers = _digest_dirs(listing, f"{key}/_layers")
                repo.layer_links = DigestList(blob_dirs, (digest for digest, _ in layers))
            elif part == "_manifests":
                _list_manifests(snapshot, listing, repo, f"{key}/_manifests", temporaries, files)
            elif part == "_uploads":
                repo.uploads = _list_uploads(listing, name, f"{key}/_uploads", prefix)
    snapshot.repos = [repos[name] for name in sorted(repos)]


def _list_manifests(
    snapshot: Snapshot,
    listing: NameListing,
    repo: RepoSnapshot,
    key: str,
    temporaries: bool,
    files: Callable[[str, list[tuple[str, bool]] | None], None],
) -> None:
    entries, stat = listing.entries, listing.stat_now
    top = entries(key)
    files(key, top)
    kinds = {name for name, is_dir in top or () if is_dir}
    if "revisions" in kinds:
        revisions = _digest_dirs(listing, f"{key}/revisions")
        for digest, revision in revisions:
            if temporaries:
                found = entries(revision)
                files(revision, found)
                if not any(name == "link" for name, _ in found or ()):
                    repo.unlinked_revisions.add(digest)
                    continue
            info = stat(f"{revision}/link")
            if info is None or info.is_dir:
                repo.unlinked_revisions.add(digest)
            else:
                repo.revisions[digest] = _bare(info)
    if "tags" in kinds:
        tags = f"{key}/tags"
        for tag, is_dir in entries(tags) or ():
            if not is_dir:
                continue
            current = f"{tags}/{tag}/current"
            if temporaries:
                files(current, entries(current))
            info = stat(f"{current}/link")
            if info is not None and not info.is_dir:
                repo.tags.append(tag)
                # Push activity reads only the newest of a repository's tag links.
                newest = snapshot.newest_tag.get(repo.name, 0.0)
                snapshot.newest_tag[repo.name] = max(newest, info.mtime)
        repo.tags.sort()


def _list_uploads(listing: NameListing, name: str, key: str, prefix: str) -> list[Upload]:
    """Every upload session: the sizes of its files, the newest time of its files and
    directories."""
    sessions = []
    for upload_id, is_dir in listing.entries(key) or ():
        path = f"{key}/{upload_id}"
        size, last = 0, 0.0
        pending = [(path, is_dir)]
        while pending:
            item, directory = pending.pop()
            info = listing.stat_now(item)
            if info is None:
                continue  # finished (and removed) while we looked
            last = max(last, info.mtime)
            if directory:
                pending.extend((f"{item}/{n}", d) for n, d in listing.entries(item) or ())
            else:
                size += info.size
        if last:
            sessions.append(Upload(name, upload_id, prefix + path, size, last))
    return sessions


async def scan(
    driver: StorageDriver, progress: Progress | None = None, *, temporaries: bool = False
) -> Snapshot:
    """One listing of the storage, then every manifest and tag link it names. Where the
    driver lists by name (:class:`NameListing`), names only, and stats when asked for; with
    ``temporaries`` (a real GC run, which removes them), the directories whose link is
    rewritten are listed too, for the temporary files a killed writer left there."""
    if isinstance(driver, NameListing):
        snapshot = Snapshot(driver, driver)
        by_name: NameListing = driver

        def list_and_read() -> None:
            _list_by_name(snapshot, by_name, temporaries)
            if progress is not None:
                blobs, repos = len(snapshot.blob_dirs), len(snapshot.repos)
                progress(f"listed {blobs} blobs in {repos} repositories; reading manifests")
            _read_manifests_now(snapshot, by_name)

        # One worker thread lists and reads: hops between threads cost more than the calls.
        await asyncio.to_thread(list_and_read)
        return snapshot
    snapshot = Snapshot(driver)
    prefix = snapshot.prefix
    blobs_base = KEYS.blobs_dir
    repos_base = KEYS.repositories_dir
    repos: dict[str, RepoSnapshot] = {}
    uploads: dict[tuple[str, str], list[FileInfo]] = {}
    listed = 0
    listing = (
        driver.list_files(KEYS.v2, directories=True, leaf=layout_leaf)
        if isinstance(driver, DirectoryTimes)
        else list_files(driver, KEYS.v2)
    )
    stale = time.time() - STALE_TEMP_AGE
    async for info in listing:
        listed += 1
        if not info.is_dir and info.path.rpartition("/")[2].startswith(TEMP_PREFIX):
            # A temporary file of an atomic write; one this old was left by a killed writer.
            if info.mtime < stale:
                snapshot.stale_temporaries.append(info.path)
            continue
        if progress is not None and listed % 10_000 == 0:
            progress(f"listed {listed} objects")
        if info.path.startswith(blobs_base + "/"):
            parts = info.path[len(blobs_base) + 1 :].split("/")
            if len(parts) == 4 and parts[3] == "data":
                digest = f"{parts[0]}:{parts[2]}"
                if names.is_valid_digest(digest):
                    snapshot.blob_dirs[digest] = prefix + info.path.rsplit("/", 1)[0]
                    snapshot._stats[digest] = info
        elif info.path.startswith(repos_base + "/"):
            _add_repository_key(snapshot, repos, uploads, info, repos_base)
    # Uploads that are only a multipart upload (nothing listed yet) count as sessions too.
    if isinstance(driver, MultipartUploads):
        for path, _upload_id, initiated in await driver.multipart_uploads(repos_base):
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
        repo.layer_links = DigestList(snapshot.blob_dirs, repo.layer_links)
    await _read_references(snapshot, progress)
    return snapshot


def _read_manifests_now(snapshot: Snapshot, listing: NameListing) -> None:
    """Every manifest of a revision (and every child of an index that is only a blob), read
    by name without a ``stat`` first: one too big for a manifest is reported with its size.
    Tag links are read when asked for (a mark that keeps tagged manifests only)."""
    blob_dirs, manifests = snapshot.blob_dirs, snapshot._manifests
    prefix = len(snapshot.prefix)

    def read(digests: Iterable[str]) -> None:
        for digest in digests:
            if digest not in blob_dirs:
                manifests[digest] = None
                continue
            body = listing.read_now(f"{blob_dirs[digest][prefix:]}/data", MAX_MANIFEST_BYTES + 1)
            if body is None:
                snapshot._stats[digest] = None
                manifests[digest] = None
            elif not isinstance(body, bytes):
                manifests[digest] = StoredManifest(digest, error=str(body))
            elif len(body) > MAX_MANIFEST_BYTES:
                st = snapshot.blob_stat(digest)
                size = st.size if st is not None else len(body)
                error = f"{size} bytes: too big for a manifest"
                manifests[digest] = StoredManifest(digest, error=error)
            else:
                manifests[digest] = parse_stored_manifest(digest, body)

    digests = sorted({d for repo in snapshot.repos for d in repo.revisions})
    read(digests)
    # Children of indexes are revisions of their repository too: read above; a child that is
    # only a blob is read here.
    children = {
        c
        for d in digests
        for c in ((manifests.get(d) or StoredManifest(d)).children)
        if c not in manifests
    }
    read(sorted(children))


async def _read_references(snapshot: Snapshot, progress: Progress | None) -> None:
    driver = snapshot.driver

    async def read_manifests(digests: list[str]) -> None:
        readable = []
        for digest in digests:
            st = snapshot.blob_stat(digest)
            if st is None:
                snapshot._manifests[digest] = None
            elif st.size > MAX_MANIFEST_BYTES:
                error = f"{st.size} bytes: too big for a manifest"
                snapshot._manifests[digest] = StoredManifest(digest, error=error)
            else:
                readable.append(digest)
        paths = [KEYS.blob_data(d) for d in readable]
        bodies = await get_many(driver, paths, limit=MAX_MANIFEST_BYTES)
        for digest, body in zip(readable, bodies, strict=True):
            if body is None or isinstance(body, bytes):
                parsed = None if body is None else parse_stored_manifest(digest, body)
                snapshot._manifests[digest] = parsed
            else:
                snapshot._manifests[digest] = StoredManifest(digest, error=str(body))

    digests = sorted({d for repo in snapshot.repos for d in repo.revisions})
    if progress is not None:
        progress(f"reading {len(digests)} manifests")
    await read_manifests(digests)
    # Children of indexes are revisions of their repository too: read above; a child that is
    # only a blob is read here.
    children = {
        c
        for d in digests
        for c in ((snapshot._manifests.get(d) or StoredManifest(d)).children)
        if c not in snapshot._manifests
    }
    await read_manifests(sorted(children))
    tags = [(repo, tag) for repo in snapshot.repos for tag in repo.tags]
    links = await get_many(
        driver,
        [KEYS.tag_current_link(repo.name, tag) for repo, tag in tags],
        limit=LINK_BYTES,
    )
    for (repo, tag), raw in zip(tags, links, strict=True):
        text = raw.decode("ascii", "replace").strip() if isinstance(raw, bytes) else ""
        targets = snapshot._tag_targets.setdefault(repo.name, {})
        targets[tag] = text if names.is_valid_digest(text) else None
