"""Push times from storage: the bundled registry's ``_regtui/tags`` endpoint and its client.

The push time of a tag is the mtime of its ``current/link``; the endpoint answers with the
access of ``tags/list`` (credentials when auth is on; anyone otherwise), 404 NAME_UNKNOWN for a
repository that does not exist, and a registry without it (Distribution) gives ``None``.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path

import bcrypt
import httpx
import pytest

from tests.helpers.images import make_image, make_index, push_image
from tests.helpers.servers import RunningRegistry, bundled_registry
from tui.client import AuthError, RegistryClient, repository_storage, tags_path
from tui.data.retention import read_state

pytestmark = pytest.mark.timeout(120)

LINK = "docker/registry/v2/repositories/{repo}/_manifests/tags/{tag}/current/link"


async def test_push_times_are_the_mtimes_of_the_tag_links(registry: RunningRegistry) -> None:
    old = make_image([{"a": b"old"}], created="2020-01-01T00:00:00Z")
    new = make_image([{"a": b"new"}])
    push_image(registry.url, "ns/app", "old", old)
    push_image(registry.url, "ns/app", "new", new)
    push_image(registry.url, "ns/app", "also-new", new)
    amd = make_image([{"a": b"amd"}], architecture="amd64", created="2021-05-05T00:00:00Z")
    index = make_index([amd])
    push_image(registry.url, "ns/app", "multi", index)
    a_year_ago = time.time() - 365 * 86400
    os.utime(registry.root / LINK.format(repo="ns/app", tag="old"), (a_year_ago, a_year_ago))
    async with RegistryClient(registry.url) as client:
        report = await repository_storage(client, "ns/app")
        assert report is not None
        pushed = {t.tag: t.pushed for t in report.tags}
        old_pushed, new_pushed = pushed["old"], pushed["new"]
        assert old_pushed is not None and new_pushed is not None
        assert abs(old_pushed.timestamp() - a_year_ago) < 1
        assert abs(new_pushed.timestamp() - time.time()) < 300
        revisions = {m.digest: m for m in report.manifests}
        assert set(revisions) == {old.digest, new.digest, index.digest, amd.digest}
        assert revisions[index.digest].children == (amd.digest,)
        assert revisions[new.digest].blobs == {
            new.digest: new.manifest.size,
            new.config.digest: new.config.size,
            new.layers[0].digest: new.layers[0].size,
        }
        state = await read_state(client)
    (repo,) = state.repos
    assert state.exact and repo.complete
    created = {t.tag: t.created for t in repo.tags}
    assert created["old"] == datetime(2020, 1, 1, tzinfo=UTC)
    assert created["multi"] == datetime(2021, 5, 5, tzinfo=UTC)  # an index: its newest child
    async with httpx.AsyncClient(base_url=registry.url) as plain:
        missing = await plain.get(tags_path("no/such"))
        assert missing.status_code == 404
        assert missing.json()["errors"][0]["code"] == "NAME_UNKNOWN"
        invalid = await plain.get(tags_path("UPPER"))
        assert invalid.json()["errors"][0]["code"] == "NAME_INVALID"


async def test_access_is_that_of_tags_list(tmp_path: Path) -> None:
    htpasswd = tmp_path / "htpasswd"
    hashed = bcrypt.hashpw(b"wonderland", bcrypt.gensalt(rounds=5)).decode()
    htpasswd.write_text(f"alice:{hashed}\n")
    config = {"auth": {"htpasswd": {"realm": "regtui", "path": str(htpasswd)}}}
    with bundled_registry(tmp_path / "root", config=config) as secured:
        push_image(
            secured.url, "app", "v1", make_image([{"a": b"1"}]), auth=("alice", "wonderland")
        )
        async with httpx.AsyncClient(base_url=secured.url) as anonymous:
            assert (await anonymous.get(tags_path("app"))).status_code == 401
            assert (await anonymous.get("/v2/app/tags/list")).status_code == 401
        async with RegistryClient(secured.url) as client:
            with pytest.raises(AuthError):
                await repository_storage(client, "app")
        async with RegistryClient(secured.url, username="alice", password="wonderland") as client:
            report = await repository_storage(client, "app")
            assert report is not None and [t.tag for t in report.tags] == ["v1"]


@pytest.mark.interop
async def test_other_registries_have_no_push_times(distribution: RunningRegistry) -> None:
    push_image(distribution.url, "app", "v1", make_image([{"a": b"1"}]))
    async with RegistryClient(distribution.url) as client:
        assert await repository_storage(client, "app") is None
        state = await read_state(client)
    (repo,) = state.repos
    assert not state.exact and not repo.complete
    assert [(t.tag, t.pushed) for t in repo.tags] == [("v1", None)]
    assert repo.tags[0].created is not None
