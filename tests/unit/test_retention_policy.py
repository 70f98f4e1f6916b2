"""Retention policies: parsing, the evaluation order, the plan per digest and the bytes freed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tui.logic.retention import (
    ActionKind,
    DateSource,
    ManifestState,
    Policy,
    PolicyError,
    RegistryState,
    RepoState,
    TagState,
    evaluate,
    freed_bytes,
    parse_duration,
    policy_from_mapping,
)

NOW = datetime(2025, 6, 1, tzinfo=UTC)


def days_ago(n: int) -> datetime:
    return NOW - timedelta(days=n)


def manifest(
    digest: str,
    *blobs: tuple[str, int],
    children: tuple[str, ...] = (),
    subject: str | None = None,
    pushed: datetime | None = None,
) -> ManifestState:
    return ManifestState(digest, {digest: 100, **dict(blobs)}, children, subject, pushed)


# app: v1.0 (a, 40 days), v1.1 + stable (b, 30 days), v2.0 (c, 10 days), dev-1 (d, 60 days),
# dev-2 (e, 2 days, pushed 2 days ago but created 90 days ago); an untagged manifest f (50 days)
APP = RepoState(
    "team/app",
    (
        TagState("v1.0", "sha256:a", days_ago(40), days_ago(40)),
        TagState("v1.1", "sha256:b", days_ago(30), days_ago(30)),
        TagState("stable", "sha256:b", days_ago(30), days_ago(5)),
        TagState("v2.0", "sha256:c", days_ago(10), days_ago(10)),
        TagState("dev-1", "sha256:d", days_ago(60), days_ago(60)),
        TagState("dev-2", "sha256:e", days_ago(90), days_ago(2)),
    ),
    {
        "sha256:a": manifest("sha256:a", ("sha256:base", 1000), ("sha256:la", 10)),
        "sha256:b": manifest("sha256:b", ("sha256:base", 1000), ("sha256:lb", 20)),
        "sha256:c": manifest("sha256:c", ("sha256:base", 1000), ("sha256:lc", 30)),
        "sha256:d": manifest("sha256:d", ("sha256:ld", 40), ("sha256:shared", 500)),
        "sha256:e": manifest("sha256:e", ("sha256:le", 50)),
        "sha256:f": manifest("sha256:f", ("sha256:lf", 60), pushed=days_ago(50)),
    },
    complete=True,
)
OTHER = RepoState(
    "other/tool",
    (TagState("latest", "sha256:o", days_ago(100)),),
    {"sha256:o": manifest("sha256:o", ("sha256:shared", 500))},
    complete=True,
)
STATE = RegistryState((APP, OTHER), exact=True, source="storage")


def test_durations() -> None:
    assert parse_duration("30d") == 30 * 86400
    assert parse_duration("2w") == 14 * 86400
    assert parse_duration(90) == 90
    with pytest.raises(PolicyError):
        parse_duration("soon")


def test_policy_file_keys_are_checked() -> None:
    policy = policy_from_mapping(
        {
            "keep_newest": 2,
            "keep_tags": "stable",
            "keep_semver": [">=1.1 <2"],
            "delete_older_than": "14d",
            "include": ["team/*"],
            "by": "pushed",
        }
    )
    assert policy.keep_tags == ("stable",)
    assert policy.delete_older_than == 14 * 86400
    assert policy.by is DateSource.PUSHED
    with pytest.raises(PolicyError, match="unknown policy key"):
        policy_from_mapping({"keep_last": 3})
    with pytest.raises(PolicyError, match="regular expression"):
        policy_from_mapping({"keep_tags": ["("]})
    with pytest.raises(PolicyError, match="keep_semver"):
        policy_from_mapping({"keep_semver": ">=banana"})
    with pytest.raises(PolicyError, match="whole number"):
        policy_from_mapping({"keep_newest": "3"})
    with pytest.raises(PolicyError, match="by must be"):
        policy_from_mapping({"by": "moon"})


def test_keep_newest_alone_deletes_the_rest_and_untags_shared_digests() -> None:
    plan = evaluate(Policy(keep_newest=2), STATE, NOW)
    app = plan.repos[1]
    assert app.name == "team/app"
    assert {d.tag for d in app.staying} == {"v2.0", "v1.1"}
    assert {d.tag for d in app.going} == {"v1.0", "stable", "dev-1", "dev-2"}
    stable = next(d for d in app.decisions if d.tag == "stable")
    assert stable.siblings == ("v1.1",)
    actions = {a.digest: (a.kind, a.tags, a.kept_siblings) for a in app.actions}
    assert actions["sha256:b"] == (ActionKind.UNTAG, ("stable",), ("v1.1",))
    assert actions["sha256:a"] == (ActionKind.DELETE_MANIFEST, ("v1.0",), ())
    # a, d, e go: la, ld, le and the three manifests; base stays (b, c), shared stays (other)
    assert app.bytes_freed == 10 + 40 + 50 + 3 * 100
    assert plan.bytes_freed == app.bytes_freed and plan.exact
    assert plan.repos[0].name == "other/tool" and plan.repos[0].is_empty


def test_age_limit_with_keep_rules_and_push_time() -> None:
    by_created = evaluate(
        Policy(delete_older_than=35 * 86400, keep_tags=("dev-.*",)), STATE, NOW
    ).repos[1]
    assert {d.tag for d in by_created.going} == {"v1.0"}
    dev = next(d for d in by_created.decisions if d.tag == "dev-2")
    assert dev.reasons == ("keep_tags dev-.*",)
    young = next(d for d in by_created.decisions if d.tag == "v2.0")
    assert young.reasons == ("younger than 5w",)
    by_pushed = evaluate(
        Policy(delete_older_than=20 * 86400, by=DateSource.PUSHED), STATE, NOW
    ).repos[1]
    # stable was pushed 5 days ago: it stays and keeps b alive, so v1.1 is only untagged
    assert {d.tag for d in by_pushed.going} == {"v1.0", "v1.1", "dev-1"}
    kinds = {a.digest: a.kind for a in by_pushed.actions}
    assert kinds["sha256:b"] is ActionKind.UNTAG


def test_semver_keep_and_scope() -> None:
    plan = evaluate(
        Policy(keep_semver=(">=1.1 <2",), keep_tags=("stable",), include=("team/*",)), STATE, NOW
    )
    assert plan.skipped == ("other/tool",)
    (app,) = plan.repos
    assert {d.tag for d in app.staying} == {"v1.1", "stable"}
    v11 = next(d for d in app.decisions if d.tag == "v1.1")
    assert v11.reasons == ("keep_semver >=1.1 <2",)
    assert evaluate(Policy(exclude=("team/*",), keep_newest=0), STATE, NOW).skipped == ("team/app",)


def test_no_rule_deletes_nothing() -> None:
    plan = evaluate(Policy(), STATE, NOW)
    assert plan.is_empty and plan.bytes_freed == 0


def test_untagged_rule_spares_index_children_and_referrers() -> None:
    repo = RepoState(
        "multi",
        (TagState("latest", "sha256:idx", days_ago(1)),),
        {
            "sha256:idx": manifest("sha256:idx", children=("sha256:amd", "sha256:arm")),
            "sha256:amd": manifest("sha256:amd", ("sha256:l1", 7), pushed=days_ago(99)),
            "sha256:arm": manifest("sha256:arm", ("sha256:l2", 9), pushed=days_ago(99)),
            "sha256:sig": manifest("sha256:sig", subject="sha256:idx", pushed=days_ago(99)),
            "sha256:old": manifest("sha256:old", ("sha256:l1", 7), pushed=days_ago(99)),
            "sha256:new": manifest("sha256:new", ("sha256:l3", 3), pushed=days_ago(1)),
        },
        complete=True,
    )
    state = RegistryState((repo,), exact=True)
    (plan,) = evaluate(Policy(delete_untagged_older_than=30 * 86400), state, NOW).repos
    assert [u.digest for u in plan.untagged] == ["sha256:old"]
    assert plan.bytes_freed == 100  # l1 is still the amd64 child's
    api = RegistryState((RepoState("multi", repo.tags, repo.manifests),), exact=False)
    (skipped,) = evaluate(Policy(delete_untagged_older_than=30 * 86400), api, NOW).repos
    assert skipped.untagged == () and "cannot be listed" in skipped.notes[0]


def test_a_platform_a_staying_index_names_is_only_untagged() -> None:
    repo = RepoState(
        "multi",
        (
            TagState("latest", "sha256:idx", days_ago(1)),
            TagState("amd64", "sha256:amd", days_ago(50)),
        ),
        {
            "sha256:idx": manifest("sha256:idx", children=("sha256:amd",)),
            "sha256:amd": manifest("sha256:amd", ("sha256:l1", 7)),
        },
    )
    (plan,) = evaluate(Policy(keep_tags=("latest",)), RegistryState((repo,), False), NOW).repos
    assert [(a.kind, a.digest) for a in plan.actions] == [(ActionKind.UNTAG, "sha256:amd")]
    assert plan.bytes_freed == 0


def test_freed_bytes_counts_blobs_once_and_unknown_sizes() -> None:
    a = RepoState(
        "a",
        (),
        {
            "sha256:m1": ManifestState(
                "sha256:m1", {"sha256:m1": 5, "sha256:x": None, "sha256:y": 10}
            )
        },
    )
    b = RepoState(
        "b", (), {"sha256:m2": ManifestState("sha256:m2", {"sha256:m2": 6, "sha256:y": 10})}
    )
    state = RegistryState((a, b), exact=False)
    total, per_repo, unknown = freed_bytes(state, {"a": {"sha256:m1"}, "b": {"sha256:m2"}})
    assert (total, unknown) == (21, 1)
    assert per_repo == {"a": 15, "b": 16}  # y counts in both rows, once in the total
    assert freed_bytes(state, {"a": {"sha256:m1"}})[0] == 5


def test_plan_json_follows_the_convention() -> None:
    data = evaluate(Policy(keep_newest=2), STATE, NOW).to_json()
    app = data["repositories"][1]
    assert data["bytes_exact"] is True and isinstance(data["bytes_freed"], int)
    going = {t["tag"]: t for t in app["tags_going"]}
    assert going["stable"]["siblings"] == ["v1.1"]
    assert going["stable"]["pushed"] == "2025-05-27T00:00:00Z"
    assert {d["digest"]: d["action"] for d in app["digests"]}["sha256:b"] == "untag"


def test_untagged_rule_spares_what_a_staying_untagged_manifest_needs() -> None:
    repo = RepoState(
        "loose",
        (),
        {
            # a young untagged index whose platform is old: the platform stays with it
            "sha256:young-idx": manifest(
                "sha256:young-idx", children=("sha256:old-amd",), pushed=days_ago(1)
            ),
            "sha256:old-amd": manifest("sha256:old-amd", pushed=days_ago(90)),
            # a young manifest with an old signature: the signature stays with it
            "sha256:young": manifest("sha256:young", pushed=days_ago(1)),
            "sha256:old-sig": manifest(
                "sha256:old-sig", subject="sha256:young", pushed=days_ago(90)
            ),
            # an old index and its old platform: both go
            "sha256:old-idx": manifest(
                "sha256:old-idx", children=("sha256:old-arm",), pushed=days_ago(90)
            ),
            "sha256:old-arm": manifest("sha256:old-arm", pushed=days_ago(90)),
            # an unknown push time: never guessed, it stays
            "sha256:undated": manifest("sha256:undated"),
        },
        complete=True,
    )
    state = RegistryState((repo,), exact=True)
    (plan,) = evaluate(Policy(delete_untagged_older_than=30 * 86400), state, NOW).repos
    assert [u.digest for u in plan.untagged] == ["sha256:old-arm", "sha256:old-idx"]
