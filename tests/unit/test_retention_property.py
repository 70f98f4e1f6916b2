"""Property: whatever the tags, dates, digests and rules, no kept tag is ever deleted."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from tui.logic.retention import (
    ActionKind,
    DateSource,
    ManifestState,
    Policy,
    RegistryState,
    RepoState,
    TagState,
    evaluate,
)
from tui.logic.tags import natural_key

NOW = datetime(2025, 6, 1, tzinfo=UTC)
TAG_NAMES = st.one_of(
    st.from_regex(r"[a-z][a-z-]{0,6}", fullmatch=True),  # no digit: never a version
    st.builds(lambda a, b, c: f"v{a}.{b}.{c}", *(st.integers(0, 3) for _ in range(3))),
    st.builds(lambda a, b: f"{a}.{b}", st.integers(0, 3), st.integers(0, 3)),
)
DATES = st.one_of(st.none(), st.integers(0, 400).map(lambda d: NOW - timedelta(days=d)))
DIGESTS = st.sampled_from([f"sha256:{c * 4}" for c in "abcdef"])
BLOBS = st.sampled_from([f"sha256:blob{n}" for n in range(8)])


@st.composite
def repos(draw: st.DrawFn, name: str) -> RepoState:
    names = draw(st.lists(TAG_NAMES, min_size=0, max_size=12, unique=True))
    tags = tuple(TagState(t, draw(DIGESTS), draw(DATES), draw(DATES)) for t in names)
    digests = {t.digest for t in tags} | set(draw(st.lists(DIGESTS, max_size=3)))
    manifests = {}
    for digest in digests:
        blobs = {b: int(b[-1]) * 100 + 1 for b in draw(st.lists(BLOBS, max_size=3))}
        children = tuple(draw(st.lists(DIGESTS, max_size=2)))
        manifests[digest] = ManifestState(
            digest, {digest: 10, **blobs}, children, draw(st.none() | DIGESTS), draw(DATES)
        )
    return RepoState(name, tags, manifests, complete=draw(st.booleans()))


POLICIES = st.builds(
    Policy,
    keep_newest=st.none() | st.integers(0, 5),
    keep_tags=st.lists(st.sampled_from(["v.*", "stable", "[a-c].*", "latest"]), max_size=2).map(
        tuple
    ),
    keep_semver=st.lists(st.sampled_from([">=1.2 <2", "^0.1", "2.x", "<1 || >=3"]), max_size=2).map(
        tuple
    ),
    delete_older_than=st.none() | st.integers(0, 300).map(lambda d: d * 86400.0),
    delete_untagged_older_than=st.none() | st.integers(0, 300).map(lambda d: d * 86400.0),
    by=st.sampled_from(list(DateSource)),
)


def version_of(tag: str) -> tuple[int, int, int] | None:
    """The release triple of the names TAG_NAMES makes (``v1.2.3``, ``1.2``); words: None."""
    parts = tag.removeprefix("v").split(".")
    if not all(p.isdigit() for p in parts):
        return None
    numbers = [int(p) for p in parts] + [0, 0]
    return (numbers[0], numbers[1], numbers[2])


# The ranges POLICIES uses, read by hand from the documented meaning (no parser of ours).
SEMVER_ORACLE = {
    ">=1.2 <2": lambda t: (1, 2, 0) <= t < (2, 0, 0),
    "^0.1": lambda t: (0, 1, 0) <= t < (0, 2, 0),
    "2.x": lambda t: (2, 0, 0) <= t < (3, 0, 0),
    "<1 || >=3": lambda t: t < (1, 0, 0) or t >= (3, 0, 0),
}


def kept_by_rule(policy: Policy, repo: RepoState, tag: TagState) -> bool:
    """A direct reading of the keep rules, written apart from the implementation."""
    if any(re.fullmatch(p, tag.tag) for p in policy.keep_tags):
        return True
    triple = version_of(tag.tag)
    if triple is not None and any(SEMVER_ORACLE[r](triple) for r in policy.keep_semver):
        return True
    if policy.keep_newest is None:
        return False
    date = tag.date(policy.by)
    if date is None:
        return True
    return _rank(policy, repo, tag) < policy.keep_newest


def _rank(policy: Policy, repo: RepoState, tag: TagState) -> int:
    dated = sorted(
        (t for t in repo.tags if t.date(policy.by) is not None),
        key=lambda t: (t.date(policy.by), natural_key(t.tag)),
        reverse=True,
    )
    return dated.index(tag)


@settings(max_examples=300, deadline=None)
@given(policy=POLICIES, first=repos("one"), second=repos("two"))
def test_no_kept_tag_is_ever_deleted(policy: Policy, first: RepoState, second: RepoState) -> None:
    state = RegistryState((first, second), exact=True)
    plan = evaluate(policy, state, NOW)
    for repo, repo_plan in zip((first, second), plan.repos, strict=True):
        going = {d.tag for d in repo_plan.going}
        removed = [t for a in repo_plan.actions for t in a.tags]
        assert sorted(removed) == sorted(going)  # every going tag has exactly one action
        for tag in repo.tags:
            if kept_by_rule(policy, repo, tag):
                assert tag.tag not in going, (tag, repo_plan)
        staying_digests = {d.digest for d in repo_plan.staying}
        for action in repo_plan.actions:
            if action.kind is ActionKind.DELETE_MANIFEST:
                # a deleted digest has no staying sibling ...
                assert action.digest not in staying_digests
                assert not action.kept_siblings
            else:
                assert set(action.kept_siblings) <= {d.tag for d in repo_plan.staying}
        # ... and every digest with a staying sibling is at most untagged
        for digest in staying_digests:
            assert digest not in repo_plan.deleted_digests
        tagged = {t.digest for t in repo.tags}
        for untagged in repo_plan.untagged:
            assert repo.complete and untagged.digest not in tagged
        # nothing that stays loses a platform, and no staying manifest loses its referrers
        # to the untagged rule
        deleted = set(repo_plan.deleted_digests)
        remaining = (set(repo.manifests) | tagged) - deleted
        for digest in remaining & set(repo.manifests):
            assert not set(repo.manifests[digest].children) & deleted, (digest, repo_plan)
        for untagged in repo_plan.untagged:
            assert repo.manifests[untagged.digest].subject not in remaining
    assert plan.bytes_freed <= sum(
        size or 0
        for repo in state.repos
        for m in repo.manifests.values()
        for size in m.blobs.values()
    )
