"""The scan: what a storage root holds, read once by name and on demand by content."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

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


def stat_or_none(path: str) -> os.stat_result | None:
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


def read_link(path: str) -> str | None:
    """The digest a link file holds, or None when it is missing or not a digest."""
    try:
        text = _read_small(path, 1024).decode("ascii", "replace").strip()
    except OSError:
        return None
    algorithm, sep, hex_part = text.partition(":")
    if not sep or not algorithm or not hex_part or not hex_part.isalnum():
        return None
    return text


def digest_dirs(path: str) -> Iterator[tuple[str, str]]:
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
            dir_st = stat_or_none(dirpath)
            if dir_st is None:
                continue
            last = max(last, dir_st.st_mtime)
            for name in files:
                st = stat_or_none(os.path.join(dirpath, name))
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
        for digest, rev_dir in digest_dirs(manifests + "/revisions"):
            st = stat_or_none(rev_dir + "/link")
            if st is None:
                repo.unlinked_revisions.add(digest)
            else:
                repo.revisions[digest] = st
        repo.tags = [t.name for t in _scandir(manifests + "/tags") if t.is_dir()]
    if "_layers" in entries:
        repo.layer_links = {digest for digest, _ in digest_dirs(entries["_layers"].path)}
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


def tree_file_bytes(path: str, *, skip_nested: bool = False) -> int:
    """The bytes of the regular files under ``path`` (of a repository's own ``_`` directories
    only, with ``skip_nested``)."""
    size = 0
    for dirpath, dirs, files in os.walk(path):
        if skip_nested and dirpath == path:
            dirs[:] = [d for d in dirs if d.startswith("_")]
        for name in files:
            st = stat_or_none(os.path.join(dirpath, name))
            if st is not None:
                size += st.st_size
    return size


def parse_manifest(digest: str, data: bytes) -> Manifest:
    """The references of a manifest of any kind regtui serves (schema1/2, OCI, indexes)."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        return Manifest(digest, error=f"not JSON ({exc.__class__.__name__}: {exc})")
    except RecursionError:
        return Manifest(digest, error="not a manifest: JSON nested too deeply")
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

    # -- what plan and activity read besides names: asked of the snapshot, never of the OS ----
    def stat(self, path: str) -> os.stat_result | None:
        """The stat of a file or directory of the snapshot (None: not there)."""
        return stat_or_none(path)

    def tag_index_entries(self, repo: RepoSnapshot, tag: str) -> Iterator[tuple[str, str]]:
        """``tags/<tag>/index/<alg>/<hex>`` directories: (digest, directory path)."""
        return digest_dirs(f"{repo.path}/_manifests/tags/{tag}/index")

    def own_bytes(self, repo: RepoSnapshot) -> int:
        """The bytes of the files in ``repo``'s own ``_`` directories."""
        return tree_file_bytes(repo.path, skip_nested=True)

    def commit_events(self, repo: RepoSnapshot) -> tuple[float, float]:
        """Times of manifest events the directory tree does not show by itself:
        ``(any commit or delete, a tag written or removed)``; object storage records them
        (:mod:`embedded_registry.gc.driven`), a directory needs none."""
        return 0.0, 0.0

    def blob_stat(self, digest: str) -> os.stat_result | None:
        """The stat of a blob's ``data`` file; None when there is no such blob."""
        try:
            return self._stats[digest]
        except KeyError:
            pass
        path = self.blob_dirs.get(digest)
        st = stat_or_none(path + "/data") if path is not None else None
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
            targets = {tag: read_link(tags_dir + tag + "/current/link") for tag in repo.tags}
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
