"""Retention plans: which tags and manifests a :class:`~regtui_retention.policy.Policy` deletes
from a registry's state, and the bytes that frees (pure: no I/O).

The one planner of ``regtui prune`` (over the API and offline), the app's Retention screen and
the bundled registry's scheduled retention (``regtui.retention``): this package imports neither
``tui`` nor ``embedded_registry``, so both import it.

Deleting a manifest by digest removes *every* tag pointing at it, so marking is per tag but
the plan is per digest: when all tags of a digest are marked the manifest is deleted; when only
some are, just those tags are removed and the siblings keep the image alive.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from regtui_retention.patterns import TagRegex
from regtui_retention.policy import DateSource, Policy, format_duration
from regtui_retention.semver import parse_range
from regtui_retention.words import join_and, natural_key

__all__ = [
    "EVALUATION_ORDER",
    "ActionKind",
    "BulkAction",
    "ManifestState",
    "PrunePlan",
    "RegistryState",
    "RepoPlan",
    "RepoState",
    "TagDecision",
    "TagState",
    "UntaggedDeletion",
    "evaluate",
    "freed_bytes",
    "plan_bulk_delete",
    "why_untag_only",
]


class TaggedRow(Protocol):
    """A tag and the digest it points at (``None``: not known yet), as a screen's row has them."""

    @property
    def tag(self) -> str: ...

    @property
    def digest(self) -> str | None: ...


class ActionKind(enum.StrEnum):
    DELETE_MANIFEST = "delete manifest"
    UNTAG = "untag"


@dataclass(frozen=True)
class BulkAction:
    kind: ActionKind
    digest: str
    tags: tuple[str, ...]
    """For DELETE_MANIFEST: every tag that disappears; for UNTAG: the tags removed."""
    kept_siblings: tuple[str, ...] = ()
    """For UNTAG: tags on the same digest that stay."""


def plan_bulk_delete(marked: Collection[str], rows: Iterable[TaggedRow]) -> list[BulkAction]:
    """Turn marked tags into per-digest actions (see the module docstring).

    Marked tags whose digest is still unknown cannot be planned: they raise ``ValueError``
    so the screen can tell the user to wait for the details.
    """
    by_digest: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        if row.digest:
            by_digest[row.digest].append(row.tag)
        elif row.tag in marked:
            raise ValueError(f"the digest of {row.tag!r} is not known yet")
    actions: list[BulkAction] = []
    for digest, tags in by_digest.items():
        chosen = sorted((tag for tag in tags if tag in marked), key=natural_key)
        if not chosen:
            continue
        others = sorted((tag for tag in tags if tag not in marked), key=natural_key)
        if others:
            actions.append(BulkAction(ActionKind.UNTAG, digest, tuple(chosen), tuple(others)))
        else:
            actions.append(BulkAction(ActionKind.DELETE_MANIFEST, digest, tuple(chosen)))
    actions.sort(key=lambda action: natural_key(action.tags[0]))
    return actions


# ====================================================================== retention policies
#
# A policy (regtui_retention.policy) decides per tag, then per digest, what a prune run does.
# The registry's state comes in as a RegistryState (read by tui.data.retention over the API, or
# by embedded_registry.retention from the storage), the plan goes out as a PrunePlan.

# ---------------------------------------------------------------------- the registry's state


def why_untag_only(kept_siblings: Sequence[str]) -> str:
    """Why a planned tag goes but its image stays, as a sentence: ``only the tag goes: 3.19,
    3.20 and latest keep the image`` (or an index that names it)."""
    if not kept_siblings:
        return "only the tag goes: an index names the image"
    verb = "keeps" if len(kept_siblings) == 1 else "keep"
    return f"only the tag goes: {join_and(list(kept_siblings))} {verb} the image"


@dataclass(frozen=True)
class TagState:
    tag: str
    digest: str
    created: datetime | None = None
    pushed: datetime | None = None
    pulled: datetime | None = None
    """When its image was last pulled (a GET of the manifest; the bundled registry only)."""
    immutable: str | None = None
    """The bundled registry's ``regtui.immutable`` rule that holds the tag (it never goes)."""

    def date(self, by: DateSource) -> datetime | None:
        return self.created if by is DateSource.CREATED else self.pushed


@dataclass(frozen=True)
class ManifestState:
    """One manifest revision of a repository and what it keeps alive in storage."""

    digest: str
    blobs: Mapping[str, int | None]
    """Digest -> size of the manifest itself, its config and its layers (not index children:
    they are revisions of their own). ``None``: size unknown (schema1 layers)."""
    children: tuple[str, ...] = ()
    subject: str | None = None
    pushed: datetime | None = None


@dataclass(frozen=True)
class RepoState:
    name: str
    tags: tuple[TagState, ...]
    manifests: Mapping[str, ManifestState]
    """Every revision when ``complete``; else only what the tags reach."""
    complete: bool = False
    """Whether untagged revisions are listed too (storage); the API shows only tagged ones."""


@dataclass(frozen=True)
class RegistryState:
    repos: tuple[RepoState, ...]
    exact: bool
    """Blob sizes from storage (exact) or from manifest descriptors (an estimate)."""
    source: str = "api"


# ---------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class TagDecision:
    tag: str
    digest: str
    goes: bool
    reasons: tuple[str, ...]
    """Why it goes (the delete rule) or stays (every keep rule that matched, or why no delete
    rule chose it)."""
    siblings: tuple[str, ...] = ()
    """Other tags on the same digest in this repository."""
    created: datetime | None = None
    pushed: datetime | None = None
    pulled: datetime | None = None


@dataclass(frozen=True)
class UntaggedDeletion:
    digest: str
    pushed: datetime | None


@dataclass(frozen=True)
class RepoPlan:
    name: str
    decisions: tuple[TagDecision, ...]
    actions: tuple[BulkAction, ...]
    untagged: tuple[UntaggedDeletion, ...] = ()
    bytes_freed: int = 0
    notes: tuple[str, ...] = ()

    @property
    def going(self) -> tuple[TagDecision, ...]:
        return tuple(d for d in self.decisions if d.goes)

    @property
    def staying(self) -> tuple[TagDecision, ...]:
        return tuple(d for d in self.decisions if not d.goes)

    @property
    def deleted_digests(self) -> tuple[str, ...]:
        manifests = [a.digest for a in self.actions if a.kind is ActionKind.DELETE_MANIFEST]
        return (*manifests, *(u.digest for u in self.untagged))

    @property
    def is_empty(self) -> bool:
        return not self.actions and not self.untagged


@dataclass(frozen=True)
class PrunePlan:
    policy: Policy
    repos: tuple[RepoPlan, ...]
    bytes_freed: int
    exact: bool
    unknown_sizes: int = 0
    """Freed blobs whose size is unknown (counted as 0)."""
    skipped: tuple[str, ...] = ()
    """Repositories the include/exclude patterns leave alone."""

    @property
    def is_empty(self) -> bool:
        return all(repo.is_empty for repo in self.repos)

    def to_json(self) -> dict[str, Any]:
        return {
            "policy": self.policy.to_json(),
            "bytes_freed": self.bytes_freed,
            "bytes_exact": self.exact,
            "unknown_sizes": self.unknown_sizes,
            "skipped_repositories": list(self.skipped),
            "repositories": [_repo_json(repo) for repo in self.repos],
        }


def _time(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _repo_json(repo: RepoPlan) -> dict[str, Any]:
    def tag_json(d: TagDecision) -> dict[str, Any]:
        return {
            "tag": d.tag,
            "digest": d.digest,
            "reasons": list(d.reasons),
            "siblings": list(d.siblings),
            "created": _time(d.created),
            "pushed": _time(d.pushed),
            "pulled": _time(d.pulled),
        }

    return {
        "repository": repo.name,
        "bytes_freed": repo.bytes_freed,
        "tags_going": [tag_json(d) for d in repo.going],
        "tags_staying": [tag_json(d) for d in repo.staying],
        "digests": [
            {
                "digest": a.digest,
                "action": "delete" if a.kind is ActionKind.DELETE_MANIFEST else "untag",
                "tags_removed": list(a.tags),
                "tags_kept": list(a.kept_siblings),
            }
            for a in repo.actions
        ],
        "untagged_deleted": [
            {"digest": u.digest, "pushed": _time(u.pushed)} for u in repo.untagged
        ],
        "notes": list(repo.notes),
    }


# ---------------------------------------------------------------------- evaluation

EVALUATION_ORDER = """\
1. scope: a repository runs through the policy only if it matches an `include` pattern (when
   there are any) and no `exclude` pattern; other repositories are left alone (and their
   manifests keep their blobs);
2. keep rules: keep_newest (by the `by` date; tags without that date are kept, never guessed),
   keep_tags (regex on RE2, whole tag), keep_semver (range), pulled_within (the image was pulled
   that recently), keep_newest_pulled (the N most recently pulled; never-pulled tags are not
   among them); each tag records every keep rule that matched it (pull times: the bundled
   registry records a GET of a manifest, by tag or digest; a HEAD is no pull);
3. delete rules choose candidates: with delete_older_than, the tags whose `by` date is older
   (a tag without that date is never a candidate); without it but with a keep rule, every tag
   (the keep rules name what stays); with neither, no tag;
4. a candidate goes unless a keep rule matched it: a kept tag is never deleted;
5. per digest: when every tag on it goes the manifest is deleted; when a sibling stays, or a
   staying index names it as a platform, only the going tags are removed (untag) and the
   manifest stays;
6. delete_untagged_older_than: manifests that no tag reached before this run (not an index's
   child, not a referrer of a reached manifest), pushed longer ago than the limit, are deleted,
   except the platforms and referrers of manifests that stay; only where storage lists them
   (bundled registry, a directory);
7. bytes freed: blobs referenced only by manifests that go, every other manifest of the whole
   registry (other repositories and scopes included) counting as a keeper."""


def _last_pull(pulled: datetime | None, now: datetime) -> str:
    """``never pulled`` or ``last pulled 3d ago`` (whole seconds, the largest exact unit)."""
    if pulled is None:
        return "never pulled"
    return f"last pulled {format_duration(max(0, round((now - pulled).total_seconds())))} ago"


def _pull_reasons(
    policy: Policy, tags: Sequence[TagState], now: datetime, reasons: dict[str, list[str]]
) -> None:
    """The keep rules on pull times: ``pulled_within`` and ``keep_newest_pulled``."""
    if policy.pulled_within is not None:
        limit = format_duration(policy.pulled_within)
        for t in tags:
            if t.pulled is not None and (now - t.pulled).total_seconds() <= policy.pulled_within:
                reasons[t.tag].append(f"pulled_within {limit}")
    if policy.keep_newest_pulled is not None:
        pulled = sorted(
            (t for t in tags if t.pulled is not None),
            key=lambda t: (t.pulled, natural_key(t.tag)),
            reverse=True,
        )
        for t in pulled[: policy.keep_newest_pulled]:
            reasons[t.tag].append(f"keep_newest_pulled {policy.keep_newest_pulled}")


def _keep_reasons(policy: Policy, tags: Sequence[TagState], now: datetime) -> dict[str, list[str]]:
    reasons: dict[str, list[str]] = {t.tag: [] for t in tags}
    if policy.keep_newest is not None:
        dated = sorted(
            (t for t in tags if t.date(policy.by) is not None),
            key=lambda t: (t.date(policy.by), natural_key(t.tag)),
            reverse=True,
        )
        for t in dated[: policy.keep_newest]:
            reasons[t.tag].append(f"keep_newest {policy.keep_newest} (by {policy.by.value})")
        for t in tags:
            if t.date(policy.by) is None:
                reasons[t.tag].append(f"keep_newest: no {policy.by.value} date known")
    for pattern in policy.keep_tags:
        compiled = TagRegex(pattern)  # linear time: a tag cannot make it spin
        for t in tags:
            if compiled.fullmatch(t.tag):
                reasons[t.tag].append(f"keep_tags {pattern}")
    for text in policy.keep_semver:
        matcher = parse_range(text)
        for t in tags:
            if matcher.matches(t.tag):
                reasons[t.tag].append(f"keep_semver {text}")
    _pull_reasons(policy, tags, now, reasons)
    for t in tags:  # the registry refuses to delete it: the plan says so instead of trying
        if t.immutable is not None:
            reasons[t.tag].append(f"immutable: {t.immutable}")
    return reasons


def _decide(
    policy: Policy, repo: RepoState, now: datetime
) -> tuple[list[TagDecision], list[BulkAction]]:
    keep = _keep_reasons(policy, repo.tags, now)
    by_digest: dict[str, list[str]] = defaultdict(list)
    for t in repo.tags:
        by_digest[t.digest].append(t.tag)
    decisions: list[TagDecision] = []
    for t in repo.tags:
        date = t.date(policy.by)
        if policy.delete_older_than is not None:
            limit = format_duration(policy.delete_older_than)
            if date is None:
                candidate, why = False, f"no {policy.by.value} date known"
            elif (now - date).total_seconds() > policy.delete_older_than:
                candidate, why = True, f"older than {limit} (by {policy.by.value})"
            else:
                candidate, why = False, f"younger than {limit}"
        elif policy.has_keep_rule:
            candidate, why = True, "no keep rule matched"
        else:
            candidate, why = False, "no delete rule"
        goes = candidate and not keep[t.tag]
        if goes and policy.uses_pull_times:
            why += f" ({_last_pull(t.pulled, now)})"
        reasons = (why,) if goes or not keep[t.tag] else tuple(keep[t.tag])
        siblings = tuple(sorted((s for s in by_digest[t.digest] if s != t.tag), key=natural_key))
        decisions.append(
            TagDecision(t.tag, t.digest, goes, reasons, siblings, t.created, t.pushed, t.pulled)
        )
    decisions.sort(key=lambda d: natural_key(d.tag))
    going = {d.tag for d in decisions if d.goes}
    actions = plan_bulk_delete(going, repo.tags)
    # A platform manifest that an index which stays names (tagged or not: untagged manifests
    # are only deleted later, by their own rule) must stay even when its own tags go: deleting
    # it would break the index. Only its tags are removed.
    deleting = {a.digest for a in actions if a.kind is ActionKind.DELETE_MANIFEST}
    staying = ({d.digest for d in decisions} | set(repo.manifests)) - deleting
    needed = _children_of(repo, staying)
    return decisions, [
        BulkAction(ActionKind.UNTAG, a.digest, a.tags, a.kept_siblings)
        if a.kind is ActionKind.DELETE_MANIFEST and a.digest in needed
        else a
        for a in actions
    ]


def _children_of(repo: RepoState, roots: Iterable[str]) -> set[str]:
    """Manifests that the indexes among ``roots`` name, at any depth (``roots`` excluded)."""
    found: set[str] = set()
    pending = [child for root in roots for child in _children(repo, root)]
    while pending:
        digest = pending.pop()
        if digest not in found:
            found.add(digest)
            pending.extend(_children(repo, digest))
    return found


def _children(repo: RepoState, digest: str) -> tuple[str, ...]:
    manifest = repo.manifests.get(digest)
    return manifest.children if manifest is not None else ()


def _reached(repo: RepoState, roots: Iterable[str]) -> set[str]:
    """Manifests reachable from ``roots`` through index children, plus referrers of those."""
    reached: set[str] = set()
    pending = [d for d in roots if d]
    while True:
        while pending:
            digest = pending.pop()
            if digest in reached:
                continue
            reached.add(digest)
            manifest = repo.manifests.get(digest)
            if manifest is not None:
                pending.extend(manifest.children)
        referrers = [
            m.digest
            for m in repo.manifests.values()
            if m.subject in reached and m.digest not in reached
        ]
        if not referrers:
            return reached
        pending.extend(referrers)


def _untagged(policy: Policy, repo: RepoState, now: datetime) -> list[UntaggedDeletion]:
    limit = policy.delete_untagged_older_than
    if limit is None or not repo.complete:
        return []
    reached = _reached(repo, (t.digest for t in repo.tags))
    doomed = {
        m.digest
        for m in repo.manifests.values()
        if m.digest not in reached
        and m.pushed is not None
        and (now - m.pushed).total_seconds() > limit
    }
    # What stays keeps what it needs: the platforms of a staying index, and the referrers of a
    # staying manifest (as GC's delete-untagged keeps them). Repeat until nothing changes.
    changed = True
    while changed:
        staying = set(repo.manifests) - doomed
        spared = _children_of(repo, staying) | {
            d for d in doomed if (s := repo.manifests[d].subject) and s in staying
        }
        changed = bool(spared & doomed)
        doomed -= spared
    return sorted(
        (UntaggedDeletion(d, repo.manifests[d].pushed) for d in doomed), key=lambda u: u.digest
    )


def freed_bytes(
    state: RegistryState, gone: Mapping[str, Collection[str]]
) -> tuple[int, dict[str, int], int]:
    """Bytes of blobs that only manifests in ``gone`` (repository -> digests) reference.

    Returns the total (each blob once), the figure per repository (a blob freed by manifests
    of two repositories counts in both) and the number of freed blobs of unknown size.
    """
    keepers: set[str] = set()
    freed_by: dict[str, set[str]] = defaultdict(set)
    sizes: dict[str, int | None] = {}
    for repo in state.repos:
        going = gone.get(repo.name, ())
        for digest, manifest in repo.manifests.items():
            for blob, size in manifest.blobs.items():
                if sizes.get(blob) is None:
                    sizes[blob] = size
            if digest in going:
                freed_by[repo.name].update(manifest.blobs)
            else:
                keepers.update(manifest.blobs)
    all_freed = set().union(*freed_by.values()) - keepers if freed_by else set()
    per_repo = {
        name: sum(sizes.get(b) or 0 for b in blobs - keepers) for name, blobs in freed_by.items()
    }
    unknown = sum(1 for b in all_freed if sizes.get(b) is None)
    return sum(sizes.get(b) or 0 for b in all_freed), per_repo, unknown


def evaluate(policy: Policy, state: RegistryState, now: datetime) -> PrunePlan:
    """The plan ``policy`` makes of ``state`` at ``now`` (see :data:`EVALUATION_ORDER`).

    Invariant: no tag that a keep rule matches goes, and a digest is deleted only when every
    tag on it goes (a digest with a staying sibling is only untagged).
    """
    plans: list[tuple[RepoState, list[TagDecision], list[BulkAction], list[UntaggedDeletion]]] = []
    skipped: list[str] = []
    for repo in sorted(state.repos, key=lambda r: r.name):
        if not policy.selects(repo.name):
            skipped.append(repo.name)
            continue
        decisions, actions = _decide(policy, repo, now)
        plans.append((repo, decisions, actions, _untagged(policy, repo, now)))
    gone = {
        repo.name: {a.digest for a in actions if a.kind is ActionKind.DELETE_MANIFEST}
        | {u.digest for u in untagged}
        for repo, _, actions, untagged in plans
    }
    total, per_repo, unknown = freed_bytes(state, gone)
    repo_plans = []
    for repo, decisions, actions, untagged in plans:
        notes: list[str] = []
        if policy.delete_untagged_older_than is not None and not repo.complete:
            notes.append("untagged manifests cannot be listed through the API: rule skipped")
        repo_plans.append(
            RepoPlan(
                name=repo.name,
                decisions=tuple(decisions),
                actions=tuple(actions),
                untagged=tuple(untagged),
                bytes_freed=per_repo.get(repo.name, 0),
                notes=tuple(notes),
            )
        )
    return PrunePlan(
        policy=policy,
        repos=tuple(repo_plans),
        bytes_freed=total,
        exact=state.exact,
        unknown_sizes=unknown,
        skipped=tuple(skipped),
    )
