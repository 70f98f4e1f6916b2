"""The mark: which manifests each repository keeps and which blobs they need."""

from __future__ import annotations

from dataclasses import dataclass, field

from embedded_registry.gc.activity import PushActivity
from embedded_registry.gc.digests import DigestMarks
from embedded_registry.gc.scan import RepoSnapshot, Snapshot

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
    """Every blob in use (``marked``: a byte per blob, :class:`DigestMarks`); per repository
    its kept manifests, and with ``detail`` (:func:`mark`) the blobs each one needs and the role
    of each blob."""

    repos: dict[str, RepoMark]
    marked: DigestMarks
    roles: dict[str, str]
    problems: list[Problem]


def _roots(
    snapshot: Snapshot, repo: RepoSnapshot, delete_untagged: bool, activity: PushActivity
) -> set[str]:
    if not delete_untagged:
        return set(repo.revisions)
    targets = snapshot.tag_targets(repo).values()
    roots = {d for d in targets if d is not None and d in repo.revisions}
    # A manifest pushed moments ago may be a child whose index is not pushed yet: kept while
    # a push is in flight in its repository (embedded_registry.gc.activity).
    young = activity.young
    if any(st.mtime > young for st in repo.revisions.values()) and (
        activity.untagged_push_in_flight(repo)
    ):
        roots.update(d for d, st in repo.revisions.items() if st.mtime > young)
    return roots


def _mark_repo(
    snapshot: Snapshot,
    repo: RepoSnapshot,
    roots: set[str],
    follow_referrers: bool,
    roles: dict[str, str] | None,
    problems: list[Problem],
    marked: DigestMarks | None = None,
) -> RepoMark:
    """What ``repo`` keeps from ``roots``. Without ``roles`` (a GC, which needs neither roles
    nor per-repository blobs), the blobs go straight into ``marked`` and the mark keeps only
    the manifests."""
    mark = RepoMark()
    blobs: set[str] | DigestMarks = mark.blobs if marked is None else marked
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
        blobs.add(digest)
        if roles is not None:
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
            blobs.add(m.config)
            if roles is not None and roles.get(m.config) != ROLE_MANIFEST:
                roles[m.config] = ROLE_CONFIG
        blobs.update(m.layers)
        if roles is not None:
            for layer in m.layers:
                roles.setdefault(layer, ROLE_LAYER)
        for child in m.children:
            blobs.add(child)
            if child in snapshot.blob_dirs:
                stack.append(child)
    if unreadable:
        # What an unreadable manifest references is unknown: keep everything the repo links.
        blobs.update(repo.layer_links)
    return mark


def mark(
    snapshot: Snapshot,
    *,
    delete_untagged: bool,
    now: float,
    grace: float,
    detail: bool = True,
) -> MarkResult:
    """Mark every blob in use; per repository, the manifests it keeps and (with ``detail``:
    ``regtui du``) the blobs they need, and the role of each blob. GC marks without ``detail``:
    one set of blobs, no per-repository copy of it (less memory at scale)."""
    repos: dict[str, RepoMark] = {}
    marked = DigestMarks(snapshot.blob_dirs)
    roles: dict[str, str] = {}
    problems: list[Problem] = []
    activity = PushActivity(snapshot, now - grace)
    for repo in snapshot.repos:
        roots = _roots(snapshot, repo, delete_untagged, activity)
        if detail:
            repo_mark = _mark_repo(snapshot, repo, roots, delete_untagged, roles, problems)
            marked.update(repo_mark.blobs)
        else:
            repo_mark = _mark_repo(snapshot, repo, roots, delete_untagged, None, problems, marked)
        repos[repo.name] = repo_mark
    return MarkResult(repos, marked, roles, problems)
