"""The client against the bundled registry: OCI tag DELETE, referrers API, tag pagination, and
``du HOST`` (estimate over the API) agreeing with ``du --root`` (exact, from storage)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.client.test_client_registries import app_image, populate
from tests.helpers.servers import RunningRegistry
from tui.cli import main
from tui.client import NotFoundError, RegistryClient
from tui.imagegen import make_artifact, push_image


async def test_discovery_pagination_and_referrers(registry: RunningRegistry) -> None:
    populate(registry.url)
    subject = app_image(2)
    signature = make_artifact(subject)
    push_image(registry.url, "team/app", None, signature)
    async with RegistryClient(registry.host) as client:
        assert (await client.ping()).authenticated
        assert await client.catalog() == ["team/app", "tools"]
        pages = [page async for page in client.iter_tags("tools", page_size=2)]
        assert pages == [["t0", "t1"], ["t2", "t3"], ["t4"]]
        referrers = await client.get_referrers("team/app", subject.digest)
        assert [r.digest for r in referrers] == [signature.digest]
        assert referrers[0].artifact_type == "application/vnd.dev.cosign.simplesigning.v1+json"
        plan = await client.plan_delete("team/app", subject.digest)
        assert plan.tags == ("v2",) and [r.digest for r in plan.referrers] == [signature.digest]
        assert await client.get_referrers("team/app", subject.digest, "other/type") == []


async def test_untag_uses_oci_tag_delete(registry: RunningRegistry) -> None:
    populate(registry.url)
    async with RegistryClient(registry.host) as client:
        digest = (await client.head_manifest("team/app", "v1")).digest
        result = await client.untag("team/app", "v1")
        assert result.method == "tag-delete" and result.sibling_tags == ("latest", "stable")
        assert sorted(await client.list_tags("team/app")) == ["latest", "multi", "stable", "v2"]
        assert (await client.head_manifest("team/app", "stable")).digest == digest
        await client.delete_manifest("team/app", digest)
        assert sorted(await client.list_tags("team/app")) == ["multi", "v2"]
        with pytest.raises(NotFoundError):
            await client.head_manifest("team/app", digest)


def test_du_estimate_equals_exact_storage_report(
    registry: RunningRegistry,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    populate(registry.url)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "no-docker-config"))
    assert main(["du", registry.host, "--estimate", "--json"]) == 0
    estimate = json.loads(capsys.readouterr().out)
    assert estimate["is_estimate"] is True
    assert main(["du", "--root", str(registry.root), "--json"]) == 0
    exact = json.loads(capsys.readouterr().out)
    # Nothing is garbage here: every blob is reachable from a tag, so the two must agree.
    assert estimate["total_bytes"] == exact["total_bytes"]
    assert estimate["blob_count"] == exact["blob_count"]
    # Without --estimate, the bundled registry reports its storage itself (one request).
    assert main(["du", registry.host, "--json"]) == 0
    reported = json.loads(capsys.readouterr().out)
    assert reported["is_estimate"] is False
    assert reported["total_bytes"] == exact["total_bytes"]
    by_name = {repo["name"]: repo for repo in reported["repositories"]}
    assert by_name["team/app"] == {
        key: value
        for key, value in {r["name"]: r for r in estimate["repositories"]}["team/app"].items()
        if key in by_name["team/app"]
    }


async def test_a_rate_limit_spaces_the_starts_of_requests(registry: RunningRegistry) -> None:
    """``rate_limit=R``: request starts at least ``1/R`` s apart, even when issued at once
    (what ``regtui sync --rate-limit`` relies on for upstreams that throttle)."""
    import asyncio
    import time

    populate(registry.url)
    async with RegistryClient(registry.host, rate_limit=20) as client:
        await client.list_tags("tools")  # the first request settles the scheme
        started = time.monotonic()
        await asyncio.gather(*(client.list_tags("tools") for _ in range(10)))
        took = time.monotonic() - started
    assert took >= 9 / 20 - 0.01  # ten starts spaced 50 ms apart: nine gaps at least
