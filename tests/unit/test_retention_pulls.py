"""Retention rules on pull times: ``pulled_within`` and ``keep_newest_pulled`` (pure), and the
pull times' batched store on a real directory (two writers merge with max())."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from embedded_registry.retention import plan_record
from embedded_registry.storage.driver.filesystem import FilesystemDriver
from embedded_registry.storage.pulls import PullTimes, pulls_key
from regtui_retention.document import repo_state_from_document
from regtui_retention.plan import ManifestState, RegistryState, RepoState, TagState, evaluate
from regtui_retention.policy import Policy, PolicyError, policy_from_mapping

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def ago(**kw: float) -> datetime:
    return NOW - timedelta(**kw)


def repo(*tags: TagState) -> RegistryState:
    manifests = {
        t.digest: ManifestState(t.digest, {t.digest: 100, f"layer-{t.digest}": 1000}) for t in tags
    }
    return RegistryState((RepoState("app", tags, manifests, complete=True),), exact=True)


STATE = repo(
    TagState("fresh-pull", "sha256:a", pushed=ago(days=90), pulled=ago(hours=1)),
    TagState("old-pull", "sha256:b", pushed=ago(days=90), pulled=ago(days=40)),
    TagState("never", "sha256:c", pushed=ago(days=90)),
    TagState("mid-pull", "sha256:d", pushed=ago(days=90), pulled=ago(days=2)),
)


def decisions(policy: Policy) -> dict[str, tuple[bool, tuple[str, ...]]]:
    plan = evaluate(policy, STATE, NOW)
    return {d.tag: (d.goes, d.reasons) for d in plan.repos[0].decisions}


def test_pulled_within_keeps_what_was_pulled_recently() -> None:
    got = decisions(policy_from_mapping({"pulled_within": "3d"}))
    assert got["fresh-pull"] == (False, ("pulled_within 3d",))
    assert got["mid-pull"] == (False, ("pulled_within 3d",))
    assert got["old-pull"] == (True, ("no keep rule matched (last pulled 40d ago)",))
    assert got["never"] == (True, ("no keep rule matched (never pulled)",))
    plan = evaluate(policy_from_mapping({"pulled_within": "3d"}), STATE, NOW)
    assert plan.bytes_freed == 2 * 1100
    going = {t["tag"]: t["pulled"] for t in plan.to_json()["repositories"][0]["tags_going"]}
    assert going == {"never": None, "old-pull": "2026-04-22T00:00:00Z"}


def test_keep_newest_pulled_keeps_the_most_recently_pulled() -> None:
    got = decisions(policy_from_mapping({"keep_newest_pulled": 2}))
    assert {tag for tag, (goes, _) in got.items() if not goes} == {"fresh-pull", "mid-pull"}
    assert got["fresh-pull"][1] == ("keep_newest_pulled 2",)
    # Never-pulled tags are not among "the newest pulled", whatever N.
    everything = decisions(policy_from_mapping({"keep_newest_pulled": 10}))
    assert everything["never"][0] is True
    assert [tag for tag, (goes, _) in everything.items() if goes] == ["never"]


def test_pull_rules_with_an_age_limit_spare_fresh_pushes() -> None:
    """harbor #18479: a fresh push nobody pulled yet must not be the first to go."""
    state = repo(
        TagState("just-pushed", "sha256:x", pushed=ago(minutes=5)),
        TagState("stale", "sha256:y", pushed=ago(days=30), pulled=ago(days=20)),
    )
    policy = policy_from_mapping({"pulled_within": "3d", "delete_older_than": "1d", "by": "pushed"})
    plan = evaluate(policy, state, NOW)
    got = {d.tag: (d.goes, d.reasons) for d in plan.repos[0].decisions}
    assert got["just-pushed"] == (False, ("younger than 1d",))
    assert got["stale"] == (True, ("older than 1d (by pushed) (last pulled 20d ago)",))


@pytest.mark.parametrize(
    ("doc", "words"),
    [
        ({"keep_newest_pulled": -1}, "zero or more"),
        ({"keep_newest_pulled": "2"}, "whole number"),
        ({"pulled_within": "soon"}, "not a duration"),
    ],
)
def test_bad_pull_rules_are_refused(doc: dict[str, object], words: str) -> None:
    with pytest.raises(PolicyError, match=words):
        policy_from_mapping(doc)


def test_the_document_carries_pull_times_into_the_state() -> None:
    state = repo_state_from_document(
        {
            "name": "app",
            "tags": [
                {
                    "tag": "v1",
                    "digest": "sha256:a",
                    "pushed": "2026-01-01T00:00:00Z",
                    "pulled": "2026-05-01T10:00:00.123456789Z",
                },
                {
                    "tag": "v2",
                    "digest": "sha256:b",
                    "pushed": "2026-01-02T00:00:00Z",
                    "pulled": None,
                },
            ],
            "manifests": [],
        }
    )
    pulled = {t.tag: t.pulled for t in state.tags}
    assert pulled == {"v1": datetime(2026, 5, 1, 10, 0, 0, 123456, tzinfo=UTC), "v2": None}


async def test_pull_times_are_batched_and_merge_with_max_across_writers(tmp_path: Path) -> None:
    one, two = PullTimes(FilesystemDriver(tmp_path)), PullTimes(FilesystemDriver(tmp_path))
    one.record("team/app", "sha256:a", 100.0)
    one.record("team/app", "sha256:b", 500.0)
    two.record("team/app", "sha256:a", 300.0)
    two.record("team/app", "sha256:b", 200.0)
    document = tmp_path / pulls_key("team/app").lstrip("/")
    assert not document.exists()  # recording writes nothing
    assert await one.times("team/app") == {"sha256:a": 100.0, "sha256:b": 500.0}
    await asyncio.gather(one.flush(), two.flush())  # concurrent writers: conditional writes
    assert json.loads(document.read_text()) == {"sha256:a": 300.0, "sha256:b": 500.0}
    assert one.pending == two.pending == 0
    one.record("team/app", "sha256:a", 50.0)  # an older time never replaces a newer one
    await one.flush()
    assert await two.times("team/app") == {"sha256:a": 300.0, "sha256:b": 500.0}
    two.forget("team/app", {"sha256:b"})  # a deleted manifest's time goes at the next flush
    await two.flush()
    assert await one.times("team/app") == {"sha256:a": 300.0}


def test_a_run_record_lists_what_went_and_counts_many_staying_tags() -> None:
    many = repo(
        *(TagState(f"keep-{n}", f"sha256:k{n}", pushed=ago(days=1)) for n in range(1001)),
        TagState("old", "sha256:old", pushed=ago(days=90)),
    )
    plan = evaluate(policy_from_mapping({"keep_tags": "^keep-.*"}), many, NOW)
    record = plan_record(plan)["repositories"][0]
    assert [t["tag"] for t in record["tags_going"]] == ["old"]
    assert record["tags_staying"] == [] and record["tags_staying_omitted"] == 1001
    few = plan_record(evaluate(policy_from_mapping({"keep_tags": "^keep-.*"}), STATE, NOW))
    assert "tags_staying_omitted" not in few["repositories"][0]
