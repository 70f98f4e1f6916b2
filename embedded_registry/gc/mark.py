"""The mark: which manifests each repository keeps and which blobs they need."""

from __future__ import annotations

from dataclasses import dataclass, field

from embedded_registry.gc.activity import PushActivity
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
    repos: dict[str, RepoMark]
    marked: set[str]
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
    activity = PushActivity(snapshot, now - grace)
    for repo in snapshot.repos:
        roots = _roots(snapshot, repo, delete_untagged, activity)
        repo_mark = _mark_repo(snapshot, repo, roots, delete_untagged, roles, problems)
        repos[repo.name] = repo_mark
        marked |= repo_mark.blobs
    return MarkResult(repos, marked, roles, problems)
