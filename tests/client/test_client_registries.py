"""The client against real registries on loopback: Debian's docker-registry (Distribution 2.8),
anonymous, with htpasswd Basic auth and with ``auth: token`` (the Bearer flow), and the bundled
registry."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.servers import RunningRegistry, distribution_registry, require_tool
from tests.helpers.tokens import distribution_token_service
from tui.client import (
    AuthError,
    Credentials,
    DeleteDisabledError,
    ImageIndex,
    ImageManifest,
    NotFoundError,
    RegistryAuth,
    RegistryClient,
    match_history,
)
from tui.client.registry import compute_digest
from tui.imagegen import Image, make_image, make_index, push_image

pytestmark = pytest.mark.interop

BASE = make_image([{"etc/os-release": b"ID=regtui\n" * 50}], commands=["ADD rootfs /"])


def app_image(n: int) -> Image:
    from tui.imagegen import make_layer

    base_layer = make_layer({"etc/os-release": b"ID=regtui\n" * 50})
    return make_image(
        [base_layer, {f"app/{n}.txt": f"build {n}".encode()}],
        commands=["ADD rootfs /", f"COPY app{n} /app"],
        entrypoint=["/app/run"],
        labels={"build": str(n)},
    )


def populate(url: str, auth: RegistryAuth | tuple[str, str] | None = None) -> dict[str, str]:
    """Two repositories: ``team/app`` with sibling tags and an index, ``tools`` with one tag."""
    digests = {}
    one, two = app_image(1), app_image(2)
    for tag, image in (("v1", one), ("stable", one), ("latest", one), ("v2", two)):
        digests[tag] = push_image(url, "team/app", tag, image, auth=auth)
    multi = make_index(
        [
            make_image([{"a": b"amd"}]),
            make_image([{"a": b"arm"}], architecture="arm64", variant="v8"),
        ]
    )
    digests["multi"] = push_image(url, "team/app", "multi", multi, auth=auth)
    for n in range(5):
        push_image(url, "tools", f"t{n}", make_image([{"t": str(n).encode()}]), auth=auth)
    return digests


@pytest.fixture
def dist(tmp_path: Path) -> Iterator[RunningRegistry]:
    with distribution_registry(tmp_path / "dist") as running:
        populate(running.url)
        yield running


async def test_discovery_and_manifests(dist: RunningRegistry) -> None:
    async with RegistryClient(dist.host) as client:
        assert client.base_url == dist.url  # loopback: plain HTTP without --insecure
        ping = await client.ping()
        assert ping.authenticated and ping.api_version == "registry/2.0"
        assert await client.catalog() == ["team/app", "tools"]
        # Distribution 2.8 pages the catalog (n, last, Link) but ignores n for tags.
        pages = [page async for page in client.iter_catalog(page_size=1)]
        assert pages == [["team/app"], ["tools"]]
        tag_pages = [page async for page in client.iter_tags("tools", page_size=2)]
        assert len(tag_pages) == 1 and sorted(tag_pages[0]) == [f"t{n}" for n in range(5)]
        assert sorted(await client.list_tags("team/app")) == [
            "latest",
            "multi",
            "stable",
            "v1",
            "v2",
        ]
        head = await client.head_manifest("team/app", "v1")
        result = await client.get_manifest("team/app", "v1")
        assert head.digest == result.digest == app_image(1).digest
        assert isinstance(result.manifest, ImageManifest)
        config = await client.get_config("team/app", result.manifest)
        assert config.entrypoint == ("/app/run",) and config.labels == {"build": "1"}
        steps = match_history(config, result.manifest.layers)
        assert [s.entry.created_by for s in steps if s.layer] == ["ADD rootfs /", "COPY app1 /app"]
        layer = result.manifest.layers[1]
        async with client.stream_blob("team/app", layer.digest) as blob:
            data = await blob.read()
        assert blob.size == layer.size and compute_digest(data) == layer.digest
        index = await client.get_manifest("team/app", "multi")
        assert isinstance(index.manifest, ImageIndex)
        child = index.manifest.manifests[1]
        assert str(child.platform) == "linux/arm64/v8"
        assert (await client.get_manifest("team/app", child.digest)).digest == child.digest


async def test_not_found(dist: RunningRegistry) -> None:
    async with RegistryClient(dist.host) as client:
        with pytest.raises(NotFoundError) as caught:
            await client.get_manifest("team/app", "nope")
        assert caught.value.code == "MANIFEST_UNKNOWN"
        with pytest.raises(NotFoundError):
            await client.head_manifest("team/app", "nope")
        with pytest.raises(NotFoundError):
            await client.list_tags("absent/repo")


async def test_untag_fallback_keeps_sibling_tags(dist: RunningRegistry) -> None:
    async with RegistryClient(dist.host) as client:
        digest = (await client.head_manifest("team/app", "v1")).digest
        dry = await client.untag("team/app", "v1", dry_run=True)
        assert dry.method == "dry-run" and dry.sibling_tags == ("latest", "stable")
        assert "v1" in await client.list_tags("team/app")
        result = await client.untag("team/app", "v1")
        # Distribution 2.8 cannot delete a tag: the placeholder fallback must have run.
        assert result.method == "placeholder" and result.digest == digest
        tags = await client.list_tags("team/app")
        assert "v1" not in tags and {"latest", "stable", "v2", "multi"} <= set(tags)
        for sibling in ("latest", "stable"):
            assert (await client.head_manifest("team/app", sibling)).digest == digest
        assert (await client.get_manifest("team/app", digest)).digest == digest
        assert result.placeholder_digest is not None
        with pytest.raises(NotFoundError):
            await client.head_manifest("team/app", result.placeholder_digest)


async def test_delete_by_digest_takes_every_tag_on_it(dist: RunningRegistry) -> None:
    async with RegistryClient(dist.host) as client:
        digest = (await client.head_manifest("team/app", "stable")).digest
        plan = await client.plan_delete("team/app", digest)
        assert plan.tags == ("latest", "stable", "v1")
        multi = await client.plan_delete(
            "team/app", (await client.head_manifest("team/app", "multi")).digest
        )
        assert len(multi.children) == 2 and multi.tags == ("multi",)
        await client.delete_manifest("team/app", digest)
        assert sorted(await client.list_tags("team/app")) == ["multi", "v2"]
        with pytest.raises(NotFoundError):
            await client.get_manifest("team/app", digest)


async def test_delete_disabled(tmp_path: Path) -> None:
    config = {"storage": {"delete": {"enabled": False}}}
    with distribution_registry(tmp_path / "nodelete", config=config) as running:
        digest = push_image(running.url, "app", "v1", BASE)
        async with RegistryClient(running.host) as client:
            with pytest.raises(DeleteDisabledError) as caught:
                await client.delete_manifest("app", digest)
            # Untag must not fall back to the placeholder here: it could be pushed over the
            # tag but never deleted. The tag stays where it was.
            with pytest.raises(DeleteDisabledError):
                await client.untag("app", "v1")
            assert (await client.head_manifest("app", "v1")).digest == digest
    assert "deletion" in str(caught.value)


def _htpasswd(path: Path, user: str, password: str) -> Path:
    binary = require_tool("htpasswd")
    line = subprocess.run(
        [binary, "-Bbn", user, password], capture_output=True, check=True, text=True
    ).stdout.strip()
    path.write_text(line + "\n")
    return path


async def test_htpasswd_basic_auth(tmp_path: Path) -> None:
    htpasswd = _htpasswd(tmp_path / "htpasswd", "alice", "wonder-pass")
    config = {"auth": {"htpasswd": {"realm": "regtui-test", "path": str(htpasswd)}}}
    with distribution_registry(tmp_path / "basic", config=config) as running:
        populate(running.url, auth=("alice", "wonder-pass"))
        empty = tmp_path / "no-docker-config.json"
        async with RegistryClient(running.host, docker_config=empty) as anonymous:
            ping = await anonymous.ping()
            assert not ping.authenticated and ping.auth_scheme == "basic"
            with pytest.raises(AuthError, match="anonymously"):
                await anonymous.list_tags("tools")
        async with RegistryClient(running.host, username="alice", password="wonder-pass") as client:
            assert (await client.ping()).authenticated
            assert await client.catalog() == ["team/app", "tools"]
            result = await client.untag("team/app", "v1")
            assert result.method == "placeholder"
            assert "stable" in await client.list_tags("team/app")
        async with RegistryClient(running.host, username="alice", password="bad") as wrong:
            with pytest.raises(AuthError) as caught:
                await wrong.catalog()
    assert "bad" not in str(caught.value).replace("basic", "")


async def test_token_auth_bearer_flow(tmp_path: Path) -> None:
    grants = {
        "bob": {"repository:*": ["*"], "registry:catalog": ["*"]},
        "": {"repository:*": ["pull"]},  # anonymous pulls, nothing else
    }
    with distribution_token_service(tmp_path, grants) as (issuer, auth):
        config = {"auth": {"token": auth}}
        with distribution_registry(tmp_path / "token", config=config) as running:
            pusher = RegistryAuth(Credentials("bob", "builder-pass"))
            populate(running.url, auth=pusher)
            assert pusher.scheme == "bearer"
            async with RegistryClient(
                running.host, username="bob", password="builder-pass"
            ) as client:
                ping = await client.ping()
                assert ping.authenticated and ping.auth_scheme == "bearer"
                assert await client.catalog() == ["team/app", "tools"]
                before = client.auth.token_requests
                for _ in range(3):
                    assert len(await client.list_tags("tools")) == 5
                assert client.auth.token_requests == before + 1  # cached per scope
                result = await client.untag("team/app", "v1")
                assert result.method == "placeholder"
                assert "stable" in await client.list_tags("team/app")
            scopes = [request["scopes"] for request in issuer.requests]
            assert ["repository:tools:pull"] in scopes
            assert ["registry:catalog:*"] in scopes

            empty = tmp_path / "no-docker-config.json"
            async with RegistryClient(running.host, docker_config=empty) as anonymous:
                # The issuer grants anonymous pulls: tags are readable, deletion is not.
                assert len(await anonymous.list_tags("tools")) == 5
                with pytest.raises(AuthError):
                    await anonymous.delete_manifest("tools", BASE.digest)
            async with RegistryClient(running.host, username="bob", password="wrong-pass") as wrong:
                with pytest.raises(AuthError) as caught:
                    await wrong.list_tags("tools")
            assert "wrong credentials" in str(caught.value)
            assert "wrong-pass" not in str(caught.value)
