"""The plan: every removal a sweep makes, with sizes, and the report built from it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from embedded_registry.gc.activity import PushActivity
from embedded_registry.gc.digests import DigestList, DigestMarks
from embedded_registry.gc.mark import MarkResult, Problem, mark
from embedded_registry.gc.scan import RepoSnapshot, Snapshot

UPLOAD_MAX_IDLE = 7 * 86400.0
"""Seconds an upload session must be idle before GC removes it: Distribution's default upload
purging age (168 h). A session younger than that may still be resumed; GC never breaks it."""


@dataclass(slots=True)
class Removal:
    """One thing GC removes (or would remove): kind is blob, manifest, layer_link, tag_index,
    upload or repository."""

    kind: str
    where: str
    """Its :attr:`path`; or, with ``under``, the directory its path is in, named there by its
    digest's hex (a blob, a layer link): one string shared by every removal in it, not a path
    each (a GC of 200,000 images plans hundreds of thousands)."""
    size: int
    digest: str | None = None
    repo: str | None = None
    tag: str | None = None
    removed: bool = False
    skipped: str | None = None
    """Why a real run left it in place after all (a blob used since the scan)."""
    under: bool = False

    @property
    def path(self) -> str:
        """What it removes: a file or directory, in the snapshot's paths."""
        if self.under and self.digest is not None:
            return f"{self.where}/{self.digest.partition(':')[2]}"
        return self.where

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "path": self.path,
            "size": self.size,
            "digest": self.digest,
            "repo": self.repo,
            "tag": self.tag,
            "removed": self.removed,
            "skipped": self.skipped,
        }


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

    @property
    def refreshed_blobs(self) -> list[str]:
        """Blobs planned for removal that a client used before the sweep reached them: kept."""
        return sorted(
            r.digest for r in self.removals if r.kind == "blob" and r.skipped and r.digest
        )

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["removals"] = [r.to_json() for r in self.removals]
        doc.update(
            eligible_blobs=len(self.eligible_blobs),
            blob_bytes=self.blob_bytes,
            bytes_planned=self.bytes_planned,
            bytes_freed=self.bytes_freed,
            refreshed_blobs=self.refreshed_blobs,
        )
        return doc


def _tag_index_entries(snapshot: Snapshot, repo: RepoSnapshot) -> Iterator[tuple[str, str, str]]:
    for tag in repo.tags:
        for digest, entry_dir in snapshot.tag_index_entries(repo, tag):
            yield tag, digest, entry_dir


def layer_link_path(repo: RepoSnapshot, digest: str) -> str:
    algorithm, _, hex_part = digest.partition(":")
    return f"{repo.path}/_layers/{algorithm}/{hex_part}/link"


def sweepable_blobs(
    snapshot: Snapshot, marked: DigestMarks, young: float, activity: PushActivity | None = None
) -> tuple[set[str], int]:
    """Blobs nothing marked that no push in flight may need: older than ``young`` (the grace
    cutoff, a timestamp) in their data and links, or younger with no push activity where they
    belong (:mod:`embedded_registry.gc.activity`); and how many unmarked blobs were kept."""
    if activity is None:
        activity = PushActivity(snapshot, young)
    candidates = set(marked.unmarked_packed())
    candidates.update(d for d in snapshot.blob_dirs.unpacked() if d not in marked)
    # The newest time of each candidate's ``_layers`` links (only the newest is needed).
    linked: dict[str, float] = {}
    for repo in snapshot.repos:
        for digest in repo.layer_links:
            if digest in candidates:
                link_st = snapshot.stat(layer_link_path(repo, digest), remember=False)
                if link_st is not None and link_st.mtime > linked.get(digest, 0.0):
                    linked[digest] = link_st.mtime
    swept: set[str] = set()
    too_young = 0
    for digest in candidates:
        st = snapshot.blob_stat(digest)
        if st is None:
            continue  # a directory without data: not a blob (Distribution ignores it too)
        newest = max(st.mtime, linked.get(digest, st.mtime))
        if activity.protects_blob(digest, newest):
            too_young += 1
        else:
            swept.add(digest)
    return swept, too_young


def _removed_manifests(snapshot: Snapshot, repo: RepoSnapshot, kept: set[str]) -> list[Removal]:
    """The revisions of ``repo`` the mark did not keep (it keeps the young ones of a push in
    flight)."""
    removals = []
    for digest in sorted(repo.revisions.keys() - kept):
        st = repo.revisions[digest]
        if snapshot.blob_stat(digest) is not None:
            algorithm, _, hex_part = digest.partition(":")
            path = f"{repo.path}/_manifests/revisions/{algorithm}/{hex_part}"
            removals.append(Removal("manifest", path, st.size, digest, repo.name))
    return removals


def plan(
    snapshot: Snapshot,
    marks: MarkResult,
    *,
    delete_untagged: bool,
    remove_empty_repos: bool,
    now: float,
    grace: float,
    upload_max_idle: float = UPLOAD_MAX_IDLE,
) -> tuple[list[Removal], int]:
    """Everything a sweep removes, in the order it must go; and how many blobs were too young.

    Upload sessions go only once idle for ``upload_max_idle`` seconds (and the grace period).
    """
    young = now - grace
    activity = PushActivity(snapshot, young)
    removals: list[Removal] = []
    removed_manifests: dict[str, set[str]] = {}
    if delete_untagged:
        for repo in snapshot.repos:
            kept = marks.repos[repo.name].kept_manifests
            untagged = _removed_manifests(snapshot, repo, kept)
            removed_manifests[repo.name] = {r.digest for r in untagged if r.digest}
            removals += untagged

    swept, too_young = sweepable_blobs(snapshot, marks.marked, young, activity)
    # One string per digest and per directory, shared by the removals that name them.
    shared = {d: d for d in swept}
    directories: dict[str, str] = {}
    for digest in sorted(swept):
        st = snapshot.blob_stat(digest)
        assert st is not None
        directory = snapshot.blob_dirs[digest]
        if directory.endswith(digest.partition(":")[2]):
            parent = directory.rpartition("/")[0]
            parent = directories.setdefault(parent, parent)
            removals.append(Removal("blob", parent, st.size, digest, under=True))
        else:
            removals.append(Removal("blob", directory, st.size, digest))

    def gone_after(digest: str) -> bool:
        if digest in swept or digest not in snapshot.blob_dirs:
            return True
        # A marked blob whose directory is there is taken as present without a stat.
        return digest not in marks.marked and snapshot.blob_stat(digest) is None

    emptied: list[RepoSnapshot] = []
    for repo in snapshot.repos:
        gone = removed_manifests.get(repo.name, set())
        unmarked, links_left = _unmarked_links(repo, marks.marked)
        for digest in unmarked:
            if not gone_after(digest):
                links_left = True
                continue
            link_path = layer_link_path(repo, digest)
            link_st = snapshot.stat(link_path, remember=False)
            if link_st is not None and not activity.protects_repo_link(repo, link_st.mtime):
                parent = link_path.rsplit("/", 2)[0]
                layers = directories.setdefault(parent, parent)
                digest = shared.get(digest, digest)
                removals.append(
                    Removal("layer_link", layers, link_st.size, digest, repo.name, under=True)
                )
            else:
                links_left = True
        live = repo.revisions.keys() - gone
        # Tag history can only name a manifest removed now or one deleted earlier through the
        # API (a revision directory without its link): look into the tags only then.
        if gone or any(gone_after(d) for d in repo.unlinked_revisions):
            for tag, digest, entry_dir in _tag_index_entries(snapshot, repo):
                if digest in gone or (digest not in live and gone_after(digest)):
                    entry_st = snapshot.stat(entry_dir + "/link")
                    size = entry_st.size if entry_st is not None else 0
                    removals.append(Removal("tag_index", entry_dir, size, digest, repo.name, tag))
        uploads_left = False
        for upload in repo.uploads:
            # An upload session is a push in flight whatever the grace period: only one
            # abandoned for longer than upload purging's age goes (as the purger would).
            if upload.last_activity <= now - max(upload_max_idle, grace):
                removals.append(
                    Removal("upload", upload.path, upload.size, None, repo.name, upload.upload_id)
                )
            else:
                uploads_left = True
        # Links to blobs that stay are no reason to keep a repository without manifests,
        # unless a push is in flight there.
        if (
            remove_empty_repos
            and not live
            and not repo.tags
            and not uploads_left
            and not (links_left and _has_protected_links(repo, activity))
        ):
            emptied.append(repo)
    for repo in emptied:
        # What the repository still holds once its own planned removals are done.
        planned = sum(r.size for r in removals if r.repo == repo.name)
        left = snapshot.own_bytes(repo) - planned
        removals.append(Removal("repository", repo.path, max(left, 0), None, repo.name))
    return removals, too_young


def _unmarked_links(repo: RepoSnapshot, marked: DigestMarks) -> tuple[list[str], bool]:
    """``repo``'s layer links in digest order, but those to a marked blob that is there (each
    a byte looked at, not a digest string made and looked up: a GC of 200,000 images walks
    620,000 links); and whether any was left out (a link that stays: a marked blob is not
    swept)."""
    links = repo.layer_links
    if isinstance(links, DigestList) and links.packed_only():
        return links.unmarked(marked)
    return sorted(links), False


def _has_protected_links(repo: RepoSnapshot, activity: PushActivity) -> bool:
    for digest in repo.layer_links:
        st = activity.snapshot.stat(layer_link_path(repo, digest), remember=False)
        if st is not None and activity.protects_repo_link(repo, st.mtime):
            return True
    return False


@dataclass
class GcPlan:
    """What one GC run decided: its marks, the removals in sweep order, and the problems found
    so far (a sweep adds its own). Both the filesystem and the driver GC build it with
    :func:`decide` and report it with :meth:`report`."""

    snapshot: Snapshot
    marks: MarkResult
    removals: list[Removal]
    too_young: int
    delete_untagged: bool
    remove_empty_repos: bool
    grace: float
    problems: list[Problem] = field(default_factory=list)

    def report(self, *, root: str, dry_run: bool, started: float) -> GcReport:
        """The :class:`GcReport` of this plan; ``started`` is a ``time.monotonic()``."""
        return GcReport(
            root=root,
            dry_run=dry_run,
            delete_untagged=self.delete_untagged,
            remove_empty_repos=self.remove_empty_repos,
            grace_period=self.grace,
            marked_blobs=self.marks.marked.packed_marked()
            + sum(d in self.snapshot.blob_dirs for d in self.marks.marked.others()),
            blobs_total=len(self.snapshot.blob_dirs),
            removals=self.removals,
            problems=self.problems,
            kept_young_blobs=self.too_young,
            seconds=time.monotonic() - started,
        )


def decide(
    snapshot: Snapshot,
    *,
    delete_untagged: bool,
    remove_empty_repos: bool,
    now: float,
    grace: float,
    upload_max_idle: float = UPLOAD_MAX_IDLE,
) -> GcPlan:
    """Mark, then plan: everything a GC of ``snapshot`` would remove. The mark keeps no
    per-repository blobs or roles, and the manifests it read are freed before the plan: a GC
    of hundreds of thousands of images holds only what the sweep needs."""
    marks = mark(snapshot, delete_untagged=delete_untagged, now=now, grace=grace, detail=False)
    snapshot.forget_manifests()
    removals, too_young = plan(
        snapshot,
        marks,
        delete_untagged=delete_untagged,
        remove_empty_repos=remove_empty_repos,
        now=now,
        grace=grace,
        upload_max_idle=upload_max_idle,
    )
    return GcPlan(
        snapshot,
        marks,
        removals,
        too_young,
        delete_untagged,
        remove_empty_repos,
        grace,
        list(marks.problems),
    )
