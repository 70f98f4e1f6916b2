"""The sync file: each mistake refused with where it is; tag filters chosen as documented."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tui.client.models import Platform
from tui.logic.sync_spec import SyncSpecError, TagFilter, parse_spec, target_repository

GOOD = """
version: 1
defaults: {platform: linux/arm64/v8, parallel: 8, rate_limit: 2.5}
registries:
  ghcr.io: {username: bot, password_env: GHCR_TOKEN}
  127.0.0.1:5000: {insecure: true}
sync:
  - source: ghcr.io/acme/app
    target: 127.0.0.1:5000/mirror/app
    tags: {include: ["v*"], exclude: ["*-rc*"], semver: ">=1.2 <2", newest: 2}
  - source: 127.0.0.1:5001
    target: 127.0.0.1:5000/backup
    repositories: team/*
    platform: all
    referrers: true
  - source: 127.0.0.1:5001/tools:1.0
    target: 127.0.0.1:5000/tools
"""


def test_a_good_file_is_read_whole() -> None:
    spec = parse_spec(yaml.safe_load(GOOD))
    assert spec.parallel == 8 and spec.rate_limit == 2.5
    assert spec.registries["ghcr.io"].password_env == "GHCR_TOKEN"
    repo, registry, image = spec.entries
    assert (repo.kind, repo.source_registry, repo.target_prefix) == (
        "repository",
        "ghcr.io",
        "mirror/app",
    )
    assert repo.platform == Platform("linux", "arm64", "v8")
    assert registry.kind == "registry" and registry.repositories == ("team/*",)
    assert registry.platform is None and registry.referrers
    assert target_repository(registry, "team/app") == "backup/team/app"
    assert image.kind == "image" and image.source is not None and image.source.tag == "1.0"


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"version": 2}, "version"),
        ({"sync": []}, "sync"),
        ({"surprise": 1}, "unknown key 'surprise'"),
        ({"defaults": {"parallel": 0}}, "defaults.parallel"),
        ({"defaults": {"rate_limit": -1}}, "defaults.rate_limit"),
        ({"defaults": {"platfrom": "all"}}, "unknown key 'platfrom'"),
        ({"registries": {"ghcr.io": {"password": "hunter2"}}}, "never in the file"),
        ({"registries": {"ghcr.io/x": {}}}, "not a registry"),
        ({"sync": [{"source": "a.io/x"}]}, "sync[0]: target is missing"),
        ({"sync": [{"source": "a.io/x", "target": "b.io/y", "tags": {"regex": "(?!v)"}}]}, "RE2"),
        (
            {"sync": [{"source": "a.io/x", "target": "b.io/y", "tags": {"semver": ">=x.y"}}]},
            "sync[0].tags.semver",
        ),
        ({"sync": [{"source": "a.io/x", "target": "b.io/y", "tags": {"newest": 0}}]}, "newest"),
        ({"sync": [{"source": "a.io/x", "target": "b.io"}]}, "name the target repository"),
        ({"sync": [{"source": "a.io/x", "target": "b.io/y:v1"}]}, "no tag"),
        ({"sync": [{"source": "a.io/x", "target": "b.io/y", "type": "registry"}]}, "type"),
        ({"sync": [{"source": "a.io/x", "target": "b.io/y", "repositories": "*"}]}, "whole"),
        ({"sync": [{"source": "a.io/x:1", "target": "b.io/y", "tags": {}}]}, "one image"),
        ({"sync": [{"source": "a.io/x", "target": "b.io/y", "platform": "linux"}]}, "OS/ARCH"),
        ({"sync": [{"source": "a.io/x", "target": "b.io/y", "referrers": "yes"}]}, "true or"),
        ({"sync": "a.io/x"}, "list of entries"),
    ],
)
def test_each_mistake_is_refused_with_its_place(change: dict[str, Any], where: str) -> None:
    document: dict[str, Any] = {"version": 1, "sync": [{"source": "a.io/x", "target": "b.io/y"}]}
    document.update(change)
    with pytest.raises(SyncSpecError) as caught:
        parse_spec(document)
    assert where in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_non_mapping_document_is_refused() -> None:
    documents: list[Any] = [None, [], "sync"]
    for document in documents:
        with pytest.raises(SyncSpecError, match="expected a mapping"):
            parse_spec(document)


TAGS = ["latest", "v1.0.0", "v1.2.0", "v1.2.1-rc.1", "v1.3.0", "v1.10.0", "v2.0.0", "main-abc"]


def test_filters_all_hold_then_newest_takes_the_highest_versions() -> None:
    spec = parse_spec(
        {
            "sync": [
                {
                    "source": "a.io/x",
                    "target": "b.io/y",
                    "tags": {
                        "include": ["v1.*"],
                        "exclude": ["*-rc*"],
                        "semver": ">=1.2",
                        "newest": 2,
                    },
                }
            ]
        }
    )
    assert spec.entries[0].tags.select(TAGS) == ["v1.10.0", "v1.3.0"]


def test_without_filters_every_tag_goes_versions_first() -> None:
    chosen = TagFilter().select(TAGS)
    assert sorted(chosen) == sorted(TAGS)
    assert chosen[0] == "v2.0.0" and set(chosen[-2:]) == {"latest", "main-abc"}


def test_a_regex_holds_for_the_whole_tag() -> None:
    spec = parse_spec(
        {"sync": [{"source": "a.io/x", "target": "b.io/y", "tags": {"regex": r"v\d+\.\d+\.0"}}]}
    )
    assert set(spec.entries[0].tags.select(TAGS)) == {
        "v1.0.0",
        "v1.2.0",
        "v1.3.0",
        "v1.10.0",
        "v2.0.0",
    }
