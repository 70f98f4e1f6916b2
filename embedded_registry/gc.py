"""Garbage collection of a storage directory in CNCF Distribution's layout.

The algorithm is the one of Distribution's ``registry garbage-collect``
(``registry/storage/garbagecollect.go``), explained the way an operator needs it:

* **Mark.** In every repository, every manifest revision (with ``delete_untagged``: only the
  revisions a tag currently points at) marks itself, its config and its layers. An index marks its
  child manifests and they mark their own blobs, so a tagged multi-platform image keeps every
  platform (Distribution 2.8 drops the children under ``--delete-untagged``: distribution#3004).
  With ``delete_untagged`` a manifest whose ``subject`` is kept (a signature, an SBOM) is kept too.
* **Sweep.** Blobs nothing marked are deleted. With ``delete_untagged`` the revisions nobody keeps
  are deleted, with their tag-history entries.

Where Distribution is unsafe or untidy, regtui differs and says so in the report:

* a manifest that cannot be read (truncated, not JSON) is reported and kept, and every blob its
  repository links is kept with it (Distribution aborts the whole run);
* ``_layers`` links to blobs that are gone and tag-history entries of removed manifests are removed
  (Distribution leaves them behind: distribution#3851); with ``remove_empty_repos`` repositories
  left with nothing go too (distribution#1585);
* nothing younger than the grace period is removed: blobs, blob links, manifest revisions and
  uploads. This is what makes GC safe while a registry keeps accepting pushes (distribution#3045):
  a blob uploaded just before GC whose manifest is not pushed yet survives. The bundled registry
  also holds its commit lock from the start of the mark to the end of the sweep.

Every removal is planned first: a dry run and a real run build the same plan, so a dry run lists
exactly what a real run would remove, with sizes and totals.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from embedded_registry.storage.paths import Layout

DEFAULT_GRACE_PERIOD = 3600.0
"""Seconds during which new blobs, links, revisions and uploads are never swept."""

MAX_MANIFEST_BYTES = 16 * 1024 * 1024
"""A revision bigger than this is not read as a manifest (Distribution refuses 4 MiB on push)."""

_INDEX_TYPES = {
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.index.v1+json",
}


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
    revisions: dict[str, os.stat_result] = field(default_factory=dict)
    unlinked_revisions: set[str] = field(default_factory=set)
    tags: list[str] = field(default_factory=list)
    layer_links: set[str] = field(default_factory=set)
    uploads: list[Upload] = field(default_factory=list)


@dataclass(slots=True)
class Manifest:
    """What garbage collection needs from a manifest: what it references, by role."""

    digest: str
    config: str | None = None
    layers: tuple[str, ...] = ()
    children: tuple[str, ...] = ()
    subject: str | None = None
    error: str | None = None


def _scandir(path: str) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(path) as it:
            return list(it)
    except (FileNotFoundError, NotADirectoryError):
        return []


def _stat_or_none(path: str) -> os.stat_result | None:
    try:
        return os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _read_small(path: str, limit: int) -> bytes:
    """Up to ``limit`` bytes of a file: ``os.open``/``os.read``, without a Python file object
    (GC reads tens of thousands of tiny link files)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, limit)
    finally:
        os.close(fd)


def _read_link(path: str) -> str | None:
    """The digest a link file holds, or None when it is missing or not a digest."""
    try:
        text = _read_small(path, 1024).decode("ascii", "replace").strip()
    except OSError:
        return None
    algorithm, sep, hex_part = text.partition(":")
    if not sep or not algorithm or not hex_part or not hex_part.isalnum():
        return None
    return text


def _digest_dirs(path: str) -> Iterator[tuple[str, str]]:
    """``<algorithm>/<hex>`` directories under ``path`` as (digest, directory path)."""
    for algorithm in _scandir(path):
        if algorithm.is_dir():
            for entry in _scandir(algorithm.path):
                yield f"{algorithm.name}:{entry.name}", entry.path


def scan_blob_dirs(layout: Layout) -> dict[str, str]:
    """Every blob directory ``<algorithm>/<xx>/<hex>``: digest -> its path. Names only: whether
    ``data`` is there is checked when it matters (:meth:`Snapshot.blob_stat`)."""
    blobs: dict[str, str] = {}
    for algorithm in _scandir(str(layout.blobs_dir)):
        if not algorithm.is_dir():
            continue
        prefix_name = algorithm.name + ":"
        for prefix in _scandir(algorithm.path):
            if prefix.is_dir():
                for blob_dir in _scandir(prefix.path):
                    blobs[prefix_name + blob_dir.name] = blob_dir.path
    return blobs


def _scan_uploads(repo: str, path: str) -> list[Upload]:
    uploads = []
    for entry in _scandir(path):
        if not entry.is_dir():
            continue
        size = 0
        last = 0.0
        for dirpath, _dirs, files in os.walk(entry.path):
            # The registry may finish (and remove) the upload while we look at it.
            dir_st = _stat_or_none(dirpath)
            if dir_st is None:
                continue
            last = max(last, dir_st.st_mtime)
            for name in files:
                st = _stat_or_none(os.path.join(dirpath, name))
                if st is not None:
                    size += st.st_size
                    last = max(last, st.st_mtime)
        if last:  # 0: the upload was finished and removed while we looked
            uploads.append(Upload(repo, entry.name, entry.path, size, last))
    return uploads


def _scan_repo(name: str, path: str, entries: dict[str, os.DirEntry[str]]) -> RepoSnapshot:
    repo = RepoSnapshot(name, path)
    if "_manifests" in entries:
        manifests = entries["_manifests"].path
        for digest, rev_dir in _digest_dirs(manifests + "/revisions"):
            st = _stat_or_none(rev_dir + "/link")
            if st is None:
                repo.unlinked_revisions.add(digest)
            else:
                repo.revisions[digest] = st
        repo.tags = [t.name for t in _scandir(manifests + "/tags") if t.is_dir()]
    if "_layers" in entries:
        repo.layer_links = {digest for digest, _ in _digest_dirs(entries["_layers"].path)}
    if "_uploads" in entries:
        repo.uploads = _scan_uploads(name, entries["_uploads"].path)
    return repo


def scan_repositories(layout: Layout) -> list[RepoSnapshot]:
    """Every repository: a directory holding ``_manifests``, ``_layers`` or ``_uploads``.

    Distribution only recognises a repository by its ``_layers`` directory; regtui also takes one
    that only has manifests, so its blobs are never swept for want of being seen.
    """
    repos: list[RepoSnapshot] = []

    def visit(path: str, name: str) -> None:
        entries = {e.name: e for e in _scandir(path) if e.is_dir()}
        if name and any(key in entries for key in ("_manifests", "_layers", "_uploads")):
            repos.append(_scan_repo(name, path, entries))
        for child, entry in sorted(entries.items()):
            if not child.startswith("_"):
                visit(entry.path, f"{name}/{child}" if name else child)

    visit(str(layout.repositories_dir), "")
    return repos


def parse_manifest(digest: str, data: bytes) -> Manifest:
    """The references of a manifest of any kind regtui serves (schema1/2, OCI, indexes)."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        return Manifest(digest, error=f"not JSON ({exc.__class__.__name__}: {exc})")
    if not isinstance(doc, dict):
        return Manifest(digest, error="not a JSON object")
    try:
        subject = doc.get("subject")
        subject_digest = subject["digest"] if isinstance(subject, dict) else None
        media_type = doc.get("mediaType", "")
        if media_type in _INDEX_TYPES or "manifests" in doc:
            children = tuple(d["digest"] for d in doc.get("manifests") or ())
            return Manifest(digest, children=children, subject=subject_digest)
        if "fsLayers" in doc:  # schema1
            layers = tuple(dict.fromkeys(d["blobSum"] for d in doc["fsLayers"]))
            return Manifest(digest, layers=layers)
        if "config" in doc or "layers" in doc or "blobs" in doc:
            config = doc["config"]["digest"] if "config" in doc else None
            layers = tuple(d["digest"] for d in (doc.get("layers") or doc.get("blobs") or ()))
            return Manifest(digest, config=config, layers=layers, subject=subject_digest)
    except (KeyError, TypeError) as exc:
        return Manifest(digest, error=f"malformed manifest ({exc.__class__.__name__}: {exc})")
    return Manifest(digest, error=f"unknown manifest type {media_type!r}")


class Snapshot:
    """A view of one storage root: blob and repository names from one scan; blob stats, tag
    targets and parsed manifests read on demand, once each.

    Paths are only ever built from names found on disk (a digest named inside a manifest is looked
    up in :attr:`blob_dirs`, never joined into a path).
    """

    def __init__(self, root: Path | str) -> None:
        self.layout = Layout(root)
        self.blob_dirs = scan_blob_dirs(self.layout)
        self.repos = scan_repositories(self.layout)
        self._stats: dict[str, os.stat_result | None] = {}
        self._manifests: dict[str, Manifest | None] = {}
        self._tag_targets: dict[str, dict[str, str | None]] = {}

    def blob_stat(self, digest: str) -> os.stat_result | None:
        """The stat of a blob's ``data`` file; None when there is no such blob."""
        try:
            return self._stats[digest]
        except KeyError:
            pass
        path = self.blob_dirs.get(digest)
        st = _stat_or_none(path + "/data") if path is not None else None
        self._stats[digest] = st
        return st

    def blob_stats(self) -> dict[str, os.stat_result]:
        """Every blob that has a ``data`` file: digest -> its stat."""
        result = {}
        for digest in self.blob_dirs:
            st = self.blob_stat(digest)
            if st is not None:
                result[digest] = st
        return result

    def tag_targets(self, repo: RepoSnapshot) -> dict[str, str | None]:
        """What each tag of ``repo`` points at now (None: an unreadable ``current/link``)."""
        targets = self._tag_targets.get(repo.name)
        if targets is None:
            tags_dir = repo.path + "/_manifests/tags/"
            targets = {tag: _read_link(tags_dir + tag + "/current/link") for tag in repo.tags}
            self._tag_targets[repo.name] = targets
        return targets

    def _read_manifest(self, digest: str, fd: int) -> Manifest:
        st = os.fstat(fd)
        self._stats[digest] = st
        if st.st_size > MAX_MANIFEST_BYTES:
            return Manifest(digest, error=f"{st.st_size} bytes: too big for a manifest")
        chunks = []
        left = st.st_size
        while left > 0:
            chunk = os.read(fd, left)
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return parse_manifest(digest, b"".join(chunks))

    def manifest(self, digest: str) -> Manifest | None:
        """The parsed manifest, None when its blob is missing; parsed once per digest."""
        try:
            return self._manifests[digest]
        except KeyError:
            pass
        manifest: Manifest | None = None
        path = self.blob_dirs.get(digest)
        if path is not None:
            try:
                fd = os.open(path + "/data", os.O_RDONLY)
            except FileNotFoundError:
                self._stats[digest] = None
            except OSError as exc:
                manifest = Manifest(digest, error=f"unreadable: {exc.strerror}")
            else:
                try:
                    manifest = self._read_manifest(digest, fd)
                except OSError as exc:
                    manifest = Manifest(digest, error=f"unreadable: {exc.strerror}")
                finally:
                    os.close(fd)
        self._manifests[digest] = manifest
        return manifest


# -- mark -----------------------------------------------------------------------------------

ROLE_MANIFEST, ROLE_CONFIG, ROLE_LAYER = "manifests", "configs", "layers"


@dataclass(slots=True)
class Problem:
    """Something GC could not read; reported, never fatal."""

    repo: str
    digest: str | None
    message: str


@dataclass(slots=True)
class RepoMark:
    """What one repository keeps: its manifests and every blob they reference."""

    kept_manifests: set[str] = field(default_factory=set)
    blobs: set[str] = field(default_factory=set)


@dataclass(slots=True)
class MarkResult:
    repos: dict[str, RepoMark]
    marked: set[str]
    roles: dict[str, str]
    problems: list[Problem]


def _roots(snapshot: Snapshot, repo: RepoSnapshot, delete_untagged: bool, young: float) -> set[str]:
    if not delete_untagged:
        return set(repo.revisions)
    targets = snapshot.tag_targets(repo).values()
    roots = {d for d in targets if d is not None and d in repo.revisions}
    # A manifest pushed moments ago may be a child whose index is not pushed yet.
    roots.update(d for d, st in repo.revisions.items() if st.st_mtime > young)
    return roots


def _mark_repo(
    snapshot: Snapshot,
    repo: RepoSnapshot,
    roots: set[str],
    follow_referrers: bool,
    roles: dict[str, str],
    problems: list[Problem],
) -> RepoMark:
    mark = RepoMark()
    referrers: dict[str, list[str]] = {}
    if follow_referrers:
        for digest in repo.revisions:
            m = snapshot.manifest(digest)
            if m is not None and m.subject is not None:
                referrers.setdefault(m.subject, []).append(digest)
    stack = list(roots)
    unreadable = False
    while stack:
        digest = stack.pop()
        if digest in mark.kept_manifests:
            continue
        mark.kept_manifests.add(digest)
        mark.blobs.add(digest)
        roles[digest] = ROLE_MANIFEST
        stack.extend(referrers.get(digest, ()))
        m = snapshot.manifest(digest)
        if m is None:
            continue  # a dangling revision: nothing on disk to follow (Distribution skips it too)
        if m.error is not None:
            problems.append(Problem(repo.name, digest, m.error))
            unreadable = True
            continue
        if m.config is not None:
            mark.blobs.add(m.config)
            if roles.get(m.config) != ROLE_MANIFEST:
                roles[m.config] = ROLE_CONFIG
        for layer in m.layers:
            mark.blobs.add(layer)
            roles.setdefault(layer, ROLE_LAYER)
        for child in m.children:
            mark.blobs.add(child)
            if child in snapshot.blob_dirs:
                stack.append(child)
    if unreadable:
        # What an unreadable manifest references is unknown: keep everything the repo links.
        mark.blobs.update(repo.layer_links)
    return mark


def mark(snapshot: Snapshot, *, delete_untagged: bool, now: float, grace: float) -> MarkResult:
    """Mark every blob in use; per repository, the manifests it keeps and the blobs they need."""
    repos: dict[str, RepoMark] = {}
    marked: set[str] = set()
    roles: dict[str, str] = {}
    problems: list[Problem] = []
    for repo in snapshot.repos:
        roots = _roots(snapshot, repo, delete_untagged, now - grace)
        repo_mark = _mark_repo(snapshot, repo, roots, delete_untagged, roles, problems)
        repos[repo.name] = repo_mark
        marked |= repo_mark.blobs
    return MarkResult(repos, marked, roles, problems)


# -- the plan and the sweep -----------------------------------------------------------------


@dataclass(slots=True)
class Removal:
    """One thing GC removes (or would remove): kind is blob, manifest, layer_link, tag_index,
    upload or repository."""

    kind: str
    path: str
    size: int
    digest: str | None = None
    repo: str | None = None
    tag: str | None = None
    removed: bool = False


@dataclass(slots=True)
class GcReport:
    """The outcome of a GC run or dry run; ``to_json()`` gives plain JSON types."""

    root: str
    dry_run: bool
    delete_untagged: bool
    remove_empty_repos: bool
    grace_period: float
    marked_blobs: int
    blobs_total: int
    removals: list[Removal]
    problems: list[Problem]
    kept_young_blobs: int = 0
    seconds: float = 0.0

    @property
    def eligible_blobs(self) -> list[str]:
        return sorted(r.digest for r in self.removals if r.kind == "blob" and r.digest)

    @property
    def blob_bytes(self) -> int:
        """Bytes of blob data the plan removes."""
        return sum(r.size for r in self.removals if r.kind == "blob")

    @property
    def bytes_planned(self) -> int:
        """Bytes of every file the plan removes (blob data, links, uploads)."""
        return sum(r.size for r in self.removals)

    @property
    def bytes_freed(self) -> int:
        """Bytes of every file actually removed (0 for a dry run)."""
        return sum(r.size for r in self.removals if r.removed)

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc.update(
            eligible_blobs=len(self.eligible_blobs),
            blob_bytes=self.blob_bytes,
            bytes_planned=self.bytes_planned,
            bytes_freed=self.bytes_freed,
        )
        return doc


def _tag_index_entries(repo: RepoSnapshot) -> Iterator[tuple[str, str, str]]:
    tags_dir = repo.path + "/_manifests/tags/"
    for tag in repo.tags:
        for digest, entry_dir in _digest_dirs(tags_dir + tag + "/index"):
            yield tag, digest, entry_dir


def _link_path(repo: RepoSnapshot, digest: str) -> str:
    algorithm, _, hex_part = digest.partition(":")
    return f"{repo.path}/_layers/{algorithm}/{hex_part}/link"


def sweepable_blobs(snapshot: Snapshot, marked: set[str], young: float) -> tuple[set[str], int]:
    """Blobs nothing marked whose data and links are all older than ``young`` (a timestamp);
    and how many unmarked blobs were too young to go."""
    candidates = {d for d in snapshot.blob_dirs if d not in marked}
    linked_by: dict[str, list[RepoSnapshot]] = {}
    for repo in snapshot.repos:
        for digest in repo.layer_links & candidates:
            linked_by.setdefault(digest, []).append(repo)
    swept: set[str] = set()
    too_young = 0
    for digest in candidates:
        st = snapshot.blob_stat(digest)
        if st is None:
            continue  # a directory without data: not a blob (Distribution ignores it too)
        newest = st.st_mtime
        for repo in linked_by.get(digest, ()):
            link_st = _stat_or_none(_link_path(repo, digest))
            if link_st is not None:
                newest = max(newest, link_st.st_mtime)
        if newest > young:
            too_young += 1
        else:
            swept.add(digest)
    return swept, too_young


def _removed_manifests(
    snapshot: Snapshot, repo: RepoSnapshot, kept: set[str], young: float
) -> list[Removal]:
    removals = []
    for digest in sorted(repo.revisions.keys() - kept):
        st = repo.revisions[digest]
        if st.st_mtime <= young and snapshot.blob_stat(digest) is not None:
            algorithm, _, hex_part = digest.partition(":")
            path = f"{repo.path}/_manifests/revisions/{algorithm}/{hex_part}"
            removals.append(Removal("manifest", path, st.st_size, digest, repo.name))
    return removals


def plan(
    snapshot: Snapshot,
    marks: MarkResult,
    *,
    delete_untagged: bool,
    remove_empty_repos: bool,
    now: float,
    grace: float,
) -> tuple[list[Removal], int]:
    """Everything a sweep removes, in the order it must go; and how many blobs were too young."""
    young = now - grace
    removals: list[Removal] = []
    removed_manifests: dict[str, set[str]] = {}
    if delete_untagged:
        for repo in snapshot.repos:
            kept = marks.repos[repo.name].kept_manifests
            untagged = _removed_manifests(snapshot, repo, kept, young)
            removed_manifests[repo.name] = {r.digest for r in untagged if r.digest}
            removals += untagged

    swept, too_young = sweepable_blobs(snapshot, marks.marked, young)
    for digest in sorted(swept):
        st = snapshot.blob_stat(digest)
        assert st is not None
        removals.append(Removal("blob", snapshot.blob_dirs[digest], st.st_size, digest))

    def gone_after(digest: str) -> bool:
        if digest in swept or digest not in snapshot.blob_dirs:
            return True
        # A marked blob whose directory is there is taken as present without a stat.
        return digest not in marks.marked and snapshot.blob_stat(digest) is None

    emptied: list[RepoSnapshot] = []
    for repo in snapshot.repos:
        gone = removed_manifests.get(repo.name, set())
        links_left = False
        for digest in sorted(repo.layer_links):
            link_st = _stat_or_none(_link_path(repo, digest)) if gone_after(digest) else None
            if link_st is not None and link_st.st_mtime <= young:
                path = os.path.dirname(_link_path(repo, digest))
                removals.append(Removal("layer_link", path, link_st.st_size, digest, repo.name))
            else:
                links_left = True
        live = repo.revisions.keys() - gone
        # Tag history can only name a manifest removed now or one deleted earlier through the
        # API (a revision directory without its link): look into the tags only then.
        if gone or any(gone_after(d) for d in repo.unlinked_revisions):
            for tag, digest, entry_dir in _tag_index_entries(repo):
                if digest in gone or (digest not in live and gone_after(digest)):
                    entry_st = _stat_or_none(entry_dir + "/link")
                    size = entry_st.st_size if entry_st is not None else 0
                    removals.append(Removal("tag_index", entry_dir, size, digest, repo.name, tag))
        uploads_left = False
        for upload in repo.uploads:
            if upload.last_activity <= young:
                removals.append(
                    Removal("upload", upload.path, upload.size, None, repo.name, upload.upload_id)
                )
            else:
                uploads_left = True
        # Links to blobs that stay are no reason to keep a repository without manifests,
        # unless one was written within the grace period (a push in progress).
        if (
            remove_empty_repos
            and not live
            and not repo.tags
            and not uploads_left
            and not (links_left and _has_young_links(repo, young))
        ):
            emptied.append(repo)
    for repo in emptied:
        # What the repository still holds once its own planned removals are done.
        planned = sum(r.size for r in removals if r.repo == repo.name)
        left = _tree_file_bytes(repo.path, skip_nested=True) - planned
        removals.append(Removal("repository", repo.path, max(left, 0), None, repo.name))
    return removals, too_young


def _has_young_links(repo: RepoSnapshot, young: float) -> bool:
    for digest in repo.layer_links:
        st = _stat_or_none(_link_path(repo, digest))
        if st is not None and st.st_mtime > young:
            return True
    return False


def _tree_file_bytes(path: str, *, skip_nested: bool = False) -> int:
    """The bytes of the regular files under ``path`` (of a repository's own ``_`` directories
    only, with ``skip_nested``)."""
    size = 0
    for dirpath, dirs, files in os.walk(path):
        if skip_nested and dirpath == path:
            dirs[:] = [d for d in dirs if d.startswith("_")]
        for name in files:
            st = _stat_or_none(os.path.join(dirpath, name))
            if st is not None:
                size += st.st_size
    return size


SWEEP_ORDER = ("manifest", "blob", "layer_link", "tag_index", "upload", "repository")
"""Manifests go before their blobs (as Distribution does), links after the blobs they name."""

SWEEP_THREADS = 4
"""Removals of one kind run in this many threads: unlink and rmdir are kernel time that
threads overlap, and on overlay or network filesystems they dominate a sweep."""


def execute(snapshot: Snapshot, removals: Iterable[Removal], problems: list[Problem]) -> None:
    """Carry out a plan; a failure is recorded as a problem and the sweep goes on.

    Only the directory of each item goes (``<hex>/`` of a blob or link, the upload): parents are
    left in place, as Distribution does, so a concurrent writer never loses a directory it has
    just created.
    """
    by_kind: dict[str, list[Removal]] = {}
    for removal in removals:
        by_kind.setdefault(removal.kind, []).append(removal)

    def run(batch: list[Removal]) -> None:
        for removal in batch:
            _execute_one(snapshot, removal, problems)

    with ThreadPoolExecutor(SWEEP_THREADS) as pool:
        for kind in SWEEP_ORDER:
            batch = by_kind.get(kind, [])
            if len(batch) < 2 * SWEEP_THREADS or kind == "repository":
                run(batch)
                continue
            step = -(-len(batch) // SWEEP_THREADS)
            futures = [pool.submit(run, batch[i : i + step]) for i in range(0, len(batch), step)]
            for future in futures:
                future.result()


def _blob_data_path(snapshot: Snapshot, digest: str) -> str:
    algorithm, _, hex_part = digest.partition(":")
    return f"{snapshot.layout.blobs_dir}/{algorithm}/{hex_part[:2]}/{hex_part}/data"


def _execute_one(snapshot: Snapshot, removal: Removal, problems: list[Problem]) -> None:
    try:
        # Re-check a link now: its blob may have been pushed again since the scan.
        if (
            removal.kind == "layer_link"
            and removal.digest is not None
            and os.path.exists(_blob_data_path(snapshot, removal.digest))
        ):
            return
        if removal.kind == "upload":
            removal.size = _tree_file_bytes(removal.path)
        elif removal.kind == "repository":
            removal.size = _tree_file_bytes(removal.path, skip_nested=True)
        if removal.kind == "repository":
            _remove_repository(removal.path)
        else:
            _remove_dir(removal.path, _ONLY_FILE.get(removal.kind))
        removal.removed = True
    except FileNotFoundError:
        removal.size = 0
        removal.removed = True
    except OSError as exc:
        problems.append(Problem(removal.repo or "", removal.digest, f"{removal.path}: {exc}"))


_ONLY_FILE = {"blob": "data", "manifest": "link", "layer_link": "link", "tag_index": "link"}


def _remove_dir(path: str, only_file: str | None) -> None:
    """Remove a blob's or a link's directory: its one file and itself (two system calls);
    anything more in it goes through ``shutil.rmtree``."""
    if only_file is not None:
        try:
            os.unlink(os.path.join(path, only_file))
            os.rmdir(path)
            return
        except FileNotFoundError:
            if not os.path.isdir(path):
                raise
        except OSError:
            pass
    shutil.rmtree(path)


def _remove_repository(path: str) -> None:
    """Remove a repository's own directories; the directory itself if nothing else is in it
    (a nested repository such as ``a/b`` under ``a`` stays)."""
    for name in ("_layers", "_manifests", "_uploads"):
        target = os.path.join(path, name)
        if os.path.isdir(target):
            shutil.rmtree(target)
    with contextlib.suppress(OSError):
        os.rmdir(path)


class RegistryActive(RuntimeError):
    """A registry seems to be writing to the storage root: GC offline would be unsafe."""


# -- offline safety ---------------------------------------------------------------------------

SERVING_MARKER = ".regtui-serving"
"""A file at the storage root that a running bundled registry holds: ``{"pid": N, "addr": ...}``.
Distribution writes no such file; for it, only recent writes can be seen."""

ACTIVITY_WINDOW = 60.0
"""Seconds: a write this recent means a registry is probably writing to the root right now."""


def write_serving_marker(root: Path | str, addr: str) -> Path:
    """Mark ``root`` as served by this process (the bundled registry calls this at start)."""
    path = Path(root) / SERVING_MARKER
    path.write_text(json.dumps({"pid": os.getpid(), "addr": addr}))
    return path


def remove_serving_marker(root: Path | str) -> None:
    with contextlib.suppress(FileNotFoundError):
        (Path(root) / SERVING_MARKER).unlink()


def _marker_owner(root: Path) -> str | None:
    try:
        doc = json.loads((root / SERVING_MARKER).read_text())
        pid = int(doc["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None  # a stale marker of a registry that has gone
    except PermissionError:
        pass  # alive, owned by someone else
    return f"a bundled registry (pid {pid}, {doc.get('addr', '?')}) is serving it"


def writer_activity(
    snapshot: Snapshot, *, now: float | None = None, window: float = ACTIVITY_WINDOW
) -> str | None:
    """Why a registry seems to be writing to this root, or None when nothing suggests it.

    Detectable: the bundled registry's serving marker, and writes within ``window`` seconds
    (uploads, blobs, manifest revisions). Not detectable: a registry that runs but is idle.
    """
    owner = _marker_owner(snapshot.layout.root)
    if owner is not None:
        return owner
    now = time.time() if now is None else now
    newest: tuple[float, str] = (0.0, "")
    for repo in snapshot.repos:
        for upload in repo.uploads:
            newest = max(newest, (upload.last_activity, f"an upload in {repo.name}"))
        for digest, st in repo.revisions.items():
            newest = max(newest, (st.st_mtime, f"manifest {digest[:19]} in {repo.name}"))
        # Distribution removes an upload's directory once committed: _uploads itself changes.
        for sub, what in (("_uploads", "an upload"), ("_manifests/tags", "a tag")):
            dir_st = _stat_or_none(f"{repo.path}/{sub}")
            if dir_st is not None:
                newest = max(newest, (dir_st.st_mtime, f"{what} in {repo.name}"))
    # A new blob creates its directory: the mtime of the <xx> prefix directories tells.
    for prefix in {os.path.dirname(p) for p in snapshot.blob_dirs.values()}:
        prefix_st = _stat_or_none(prefix)
        if prefix_st is not None:
            newest = max(newest, (prefix_st.st_mtime, f"a blob under {os.path.basename(prefix)}/"))
    age = now - newest[0]
    if age < window:
        return f"{newest[1]} was written {max(age, 0.0):.0f} s ago"
    return None


def collect_garbage(
    root: Path | str,
    *,
    dry_run: bool = False,
    delete_untagged: bool = False,
    remove_empty_repos: bool = False,
    grace_period: float = DEFAULT_GRACE_PERIOD,
    now: float | None = None,
    refuse_if_active: bool = False,
) -> GcReport:
    """Mark and sweep one storage root; a dry run plans and removes nothing.

    With ``refuse_if_active`` (offline use), raise :class:`RegistryActive` when a registry seems
    to be writing to the root.
    """
    started = time.monotonic()
    now = time.time() if now is None else now
    snapshot = Snapshot(root)
    if refuse_if_active:
        reason = writer_activity(snapshot, now=now)
        if reason is not None:
            raise RegistryActive(reason)
    marks = mark(snapshot, delete_untagged=delete_untagged, now=now, grace=grace_period)
    removals, too_young = plan(
        snapshot,
        marks,
        delete_untagged=delete_untagged,
        remove_empty_repos=remove_empty_repos,
        now=now,
        grace=grace_period,
    )
    problems = list(marks.problems)
    if not dry_run:
        execute(snapshot, removals, problems)
    return GcReport(
        root=str(root),
        dry_run=dry_run,
        delete_untagged=delete_untagged,
        remove_empty_repos=remove_empty_repos,
        grace_period=grace_period,
        marked_blobs=len(marks.marked & snapshot.blob_dirs.keys()),
        blobs_total=len(snapshot.blob_dirs),
        removals=removals,
        problems=problems,
        kept_young_blobs=too_young,
        seconds=time.monotonic() - started,
    )
