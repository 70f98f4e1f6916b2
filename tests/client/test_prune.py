"""``regtui prune`` for real: the bundled registry, Debian's docker-registry, a directory.

Many tags, digests shared by several tags and across repositories; the policy is applied for
real and the result is checked through the API: every kept tag still resolves to its digest,
every deleted tag is gone. On the bundled registry and on a directory the bytes the plan
announced are compared with what garbage collection then frees.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.images import Image, make_image, make_index, push_image
from tests.helpers.servers import RunningRegistry, distribution_registry
from tui.cli import main

pytestmark = pytest.mark.timeout(240)

BASE = {"base/lib.so": os.urandom(40_000)}
POLICY = ["--keep-newest", "2", "--keep-semver", ">=1.2 <2"]


@dataclass
class Fixture:
    images: list[Image]
    tags: dict[str, dict[str, str]]  # repo -> tag -> digest

    def digest(self, repo: str, tag: str) -> str:
        return self.tags[repo][tag]


def build() -> tuple[list[Image], dict[str, dict[str, int]]]:
    images = [
        make_image(
            [BASE, {f"app/{n}.bin": os.urandom(5_000 + 1_000 * n)}],
            created=f"2024-01-0{n + 1}T00:00:00Z",
        )
        for n in range(6)
    ]
    layout = {
        # image 0 under two tags, 4 under two tags, image 1 in another repository too
        "team/app": {
            "v1.0": 0,
            "old": 0,
            "v1.1": 1,
            "v1.2": 2,
            "v2.0": 3,
            "v2.1": 4,
            "latest": 4,
            "dev": 5,
        },
        "team/other": {"keep": 1},
    }
    return images, layout


def push_all(url: str) -> Fixture:
    images, layout = build()
    tags: dict[str, dict[str, str]] = {}
    with httpx.Client(base_url=url, timeout=60) as client:
        for repo, wanted in layout.items():
            tags[repo] = {}
            for tag, n in wanted.items():
                tags[repo][tag] = push_image(client, repo, tag, images[n])
    return Fixture(images, tags)


# keep_newest 2 by created: dev (image 5), v2.1 (image 4; "v2.1" sorts after "latest");
# keep_semver >=1.2 <2: v1.2. Everything else goes.
GOING = {"v1.0", "old", "v1.1", "v2.0", "latest"}
STAYING = {"dev", "v2.1", "v1.2"}


def run(*argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    data = json.loads(out) if out.strip().startswith("{") else {"text": out}
    return code, {**data, "stderr": err}


def check_through_api(url: str, fixture: Fixture) -> None:
    with httpx.Client(base_url=url, timeout=30) as client:
        listed = client.get("/v2/team/app/tags/list").json()["tags"] or []
        assert set(listed) == STAYING
        accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
        for tag in STAYING:
            head = client.head(f"/v2/team/app/manifests/{tag}", headers=accept)
            assert head.status_code == 200
            assert head.headers["Docker-Content-Digest"] == fixture.digest("team/app", tag)
        for tag in GOING:
            assert client.head(f"/v2/team/app/manifests/{tag}", headers=accept).status_code == 404
        # the digest "latest" shared with v2.1 stays; v2.0's manifest itself is gone
        assert (
            client.head(
                f"/v2/team/app/manifests/{fixture.digest('team/app', 'v2.0')}", headers=accept
            ).status_code
            == 404
        )
        kept = client.head("/v2/team/other/manifests/keep", headers=accept)
        assert kept.headers["Docker-Content-Digest"] == fixture.digest("team/other", "keep")


def expected_freed(fixture: Fixture) -> int:
    """Images 0 and 3 lose every tag: their manifest, config and own layer (the base stays)."""
    total = 0
    for n in (0, 3):
        image = fixture.images[n]
        total += image.manifest.size + image.config.size + image.layers[1].size
    return total


def test_prune_on_the_bundled_registry_frees_what_it_announced(
    registry: RunningRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    fixture = push_all(registry.url)
    code, dry = run("prune", registry.host, *POLICY, "--dry-run", "--json", capsys=capsys)
    assert code == 0
    assert dry["plan"]["bytes_exact"] is True
    assert dry["plan"]["bytes_freed"] == expected_freed(fixture)
    app = next(r for r in dry["plan"]["repositories"] if r["repository"] == "team/app")
    assert {t["tag"] for t in app["tags_going"]} == GOING
    staying = {t["tag"]: t for t in app["tags_staying"]}
    assert staying["v1.2"]["reasons"] == ["keep_semver >=1.2 <2"]
    assert staying["v2.1"]["siblings"] == ["latest"]
    assert staying["v2.1"]["pushed"] is not None  # push times from storage
    actions = {d["digest"]: d for d in app["digests"]}
    assert actions[fixture.digest("team/app", "latest")]["action"] == "untag"
    assert actions[fixture.digest("team/app", "latest")]["tags_kept"] == ["v2.1"]
    assert actions[fixture.digest("team/app", "old")]["action"] == "delete"
    assert sorted(actions[fixture.digest("team/app", "old")]["tags_removed"]) == ["old", "v1.0"]
    assert code == 0 and main(["prune", registry.host, *POLICY, "--check"]) == 3
    capsys.readouterr()

    code, done = run(
        "prune", registry.host, *POLICY, "--yes", "--gc", "--gc-grace", "0", "--json", capsys=capsys
    )
    assert code == 0, done
    assert not [a for a in done["applied"] if a["error"]]
    check_through_api(registry.url, fixture)
    gc = done["gc"]
    assert gc["before_bytes"] - gc["after_bytes"] == done["plan"]["bytes_freed"]
    assert gc["before_bytes"] - gc["after_bytes"] == expected_freed(fixture)
    # applied again: nothing left to do
    assert main(["prune", registry.host, *POLICY, "--check"]) == 0


@pytest.fixture
def distribution_root(tmp_path: Path) -> Iterator[tuple[RunningRegistry, Path]]:
    root = tmp_path / "distribution"
    with distribution_registry(root) as running:
        yield running, root


@pytest.mark.interop
def test_prune_on_distribution_untags_through_the_api(
    distribution_root: tuple[RunningRegistry, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    running, _ = distribution_root
    fixture = push_all(running.url)
    code, dry = run("prune", running.host, *POLICY, "--dry-run", "--json", capsys=capsys)
    assert code == 0
    assert dry["plan"]["bytes_exact"] is False  # from manifest descriptors: an estimate
    assert dry["plan"]["bytes_freed"] == expected_freed(fixture)
    code, done = run("prune", running.host, *POLICY, "--yes", "--gc", "--json", capsys=capsys)
    assert code == 0, done
    assert done["gc"] is None  # Distribution has no GC over the API: said on stderr
    assert "registry garbage-collect" in done["stderr"]
    check_through_api(running.url, fixture)


@pytest.mark.interop
def test_offline_prune_of_a_registry2_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "distribution"
    with distribution_registry(root) as running:
        fixture = push_all(running.url)
        amd = make_image([{"a": os.urandom(3000)}], architecture="amd64")
        arm = make_image([{"a": os.urandom(3000)}], architecture="arm64")
        with httpx.Client(base_url=running.url, timeout=60) as client:
            push_image(client, "team/multi", "latest", make_index([amd, arm]))
            loose = make_image([BASE, {"loose.bin": os.urandom(7000)}])
            push_image(client, "team/app", None, loose)  # pushed by digest: untagged
    # stopped: the directory as Distribution left it
    code, dry = run(
        "prune",
        "--root",
        str(root),
        *POLICY,
        "--untagged-older-than",
        "0",
        "--dry-run",
        "--json",
        capsys=capsys,
    )
    assert code == 0, dry
    assert dry["plan"]["bytes_exact"] is True
    multi = next(r for r in dry["plan"]["repositories"] if r["repository"] == "team/multi")
    assert multi["untagged_deleted"] == []  # the platforms of a tagged index are not untagged
    app = next(r for r in dry["plan"]["repositories"] if r["repository"] == "team/app")
    assert [u["digest"] for u in app["untagged_deleted"]] == [loose.digest]
    loose_bytes = loose.manifest.size + loose.config.size + loose.layers[1].size
    assert dry["plan"]["bytes_freed"] == expected_freed(fixture) + loose_bytes
    config = tmp_path / "config.yml"
    config.write_text(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {root}\n")
    code, by_config = run(
        "prune",
        "--config",
        str(config),
        *POLICY,
        "--untagged-older-than",
        "0",
        "--dry-run",
        "--json",
        capsys=capsys,
    )
    assert code == 0 and by_config["plan"] == dry["plan"]
    code, done = run(
        "prune",
        "--root",
        str(root),
        *POLICY,
        "--untagged-older-than",
        "0",
        "--yes",
        "--force",
        "--gc",
        "--gc-grace",
        "0",
        "--json",
        capsys=capsys,
    )
    assert code == 0, done
    gc = done["gc"]
    assert gc["before_bytes"] - gc["after_bytes"] == expected_freed(fixture) + loose_bytes
    with distribution_registry(root) as again:  # Distribution serves what is left
        check_through_api(again.url, fixture)
        with httpx.Client(base_url=again.url) as client:
            index = client.get(
                "/v2/team/multi/manifests/latest",
                headers={"Accept": "application/vnd.oci.image.index.v1+json"},
            )
            assert index.status_code == 200


def test_usage_errors_are_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["prune", "127.0.0.1:1", "--dry-run"]) == 2
    assert "no rule would delete anything" in capsys.readouterr().err
    policy = tmp_path / "policy.yml"
    policy.write_text("keep_newest: 3\nkeep_last: 2\n")
    assert main(["prune", "127.0.0.1:1", "--policy", str(policy), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "unknown policy key: keep_last" in err and len(err.strip().splitlines()) == 1
    assert main(["prune", "--root", str(tmp_path), "--keep-newest", "1", "--dry-run"]) == 2
    assert "not a registry storage root" in capsys.readouterr().err
    assert main(["prune", "127.0.0.1:1", "--keep-newest", "1", "--json"]) == 2
    assert "needs --yes" in capsys.readouterr().err


def test_a_policy_file_by_push_time(
    registry: RunningRegistry, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Cron's way: a YAML policy, push times from storage, the human plan, then for real."""
    fixture = push_all(registry.url)
    link = "docker/registry/v2/repositories/team/app/_manifests/tags/{}/current/link"
    long_ago = time.time() - 90 * 86400
    for tag in ("v1.0", "old", "v1.1", "v2.0"):  # pushed 90 days ago; the rest just now
        os.utime(registry.root / link.format(tag), (long_ago, long_ago))
    policy = tmp_path / "retention.yml"
    policy.write_text(
        "by: pushed\ndelete_older_than: 30d\nkeep_tags: ['v1\\.1']\ninclude: ['team/*']\n"
    )
    code, text = run("prune", registry.host, "--policy", str(policy), "--dry-run", capsys=capsys)
    assert code == 0
    lines = text["text"].splitlines()
    assert any(
        line.startswith("  go   old ") and "older than 30d (by pushed)" in line and "v1.0" in line
        for line in lines
    )
    assert any(line.startswith("  stay v1.1 ") and "keep_tags v1\\.1" in line for line in lines)
    assert any(line.startswith("  stay dev ") and "younger than 30d" in line for line in lines)
    assert "(exact, from storage)" in lines[-1]
    # a flag overrides the file: keep v2.0 as well
    code, done = run(
        "prune",
        registry.host,
        "--policy",
        str(policy),
        "--keep-tag",
        "v2\\.0",
        "--yes",
        "--json",
        capsys=capsys,
    )
    assert code == 0, done
    with httpx.Client(base_url=registry.url) as client:
        listed = set(client.get("/v2/team/app/tags/list").json()["tags"])
    assert listed == set(fixture.tags["team/app"]) - {"v1.0", "old", "v1.1"}


def test_a_registry_that_refuses_deletes_gets_one_line_each_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.helpers.servers import bundled_registry

    config = {"version": 0.1, "storage": {"delete": {"enabled": False}}}
    with bundled_registry(tmp_path / "root", config=config) as locked:
        push_all(locked.url)
        code, done = run("prune", locked.host, *POLICY, "--yes", "--json", capsys=capsys)
        assert code == 1
        failed = [a for a in done["applied"] if a["error"]]
        assert failed and all(not a["error"].count("\n") for a in failed)
        errors = done["stderr"].strip().splitlines()
        assert len(errors) == len(failed)
        assert all(line.startswith("regtui: error: team/app@") for line in errors)
        with httpx.Client(base_url=locked.url) as client:
            listed = set(client.get("/v2/team/app/tags/list").json()["tags"])
        assert listed == GOING | STAYING  # nothing was removed
