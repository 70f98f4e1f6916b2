"""What points at a manifest before it is deleted, found on real registries (bundled and
Distribution 2.8): tags, the indexes that list it, the subject of a referrer; and an index whose
platform manifest was deleted reads as broken."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers.images import make_artifact, make_image, make_index, push_image
from tests.helpers.servers import RunningRegistry
from tui.client import ImageIndex, Platform, RegistryClient
from tui.data.deletion import plan_manifest_delete
from tui.data.details import index_children
from tui.logic.deletion import describe_delete


@pytest.fixture(params=["registry", "distribution"])
def any_registry(request: pytest.FixtureRequest) -> Iterator[RunningRegistry]:
    yield request.getfixturevalue(request.param)


@pytest.fixture
def pushed(any_registry: RunningRegistry) -> dict[str, str]:
    """Two platform images, an index over both (two tags), an untagged index over one, and a
    signature referring to the first image (tagged ``amd64``)."""
    amd64 = make_image([{"bin/app": b"amd64"}], architecture="amd64")
    arm64 = make_image([{"bin/app": b"arm64"}], architecture="arm64", variant="v8")
    both = make_index([amd64, arm64])
    only_amd64 = make_index([amd64], annotations={"purpose": "a second index"})
    url = any_registry.url
    digests = {
        "amd64": push_image(url, "app", "amd64", amd64),
        "arm64": push_image(url, "app", None, arm64),
        "both": push_image(url, "app", "v1", both),
        "only_amd64": push_image(url, "app", None, only_amd64),
        "signature": push_image(url, "app", None, make_artifact(amd64)),
    }
    push_image(url, "app", "v1-alias", both)
    return digests


async def test_a_platform_manifest_names_every_index_and_tag(
    any_registry: RunningRegistry, pushed: dict[str, str]
) -> None:
    async with RegistryClient(any_registry.host, insecure=True) as client:
        context = await plan_manifest_delete(
            client, "app", pushed["amd64"], parent_hint=pushed["only_amd64"]
        )
        parents = {parent.digest: parent for parent in context.parents}
        assert set(parents) == {pushed["both"], pushed["only_amd64"]}
        assert parents[pushed["both"]].tags == ("v1", "v1-alias")
        assert parents[pushed["both"]].platform == Platform("linux", "amd64")
        assert parents[pushed["only_amd64"]].tags == ()  # found through the hint only
        assert context.plan.tags == ("amd64",)
        _, body = describe_delete(context)
        assert "2 indexes list it. Deleting it BREAKS them" in body

        # Without a hint the untagged index cannot be found: only the tagged one is named.
        arm64 = await plan_manifest_delete(client, "app", pushed["arm64"])
        assert [(p.digest, p.platform) for p in arm64.parents] == [
            (pushed["both"], Platform("linux", "arm64", "v8"))
        ]
        assert arm64.plan.tags == ()


async def test_a_referrer_names_its_subject_and_an_index_its_children(
    any_registry: RunningRegistry, pushed: dict[str, str]
) -> None:
    async with RegistryClient(any_registry.host, insecure=True) as client:
        signature = await plan_manifest_delete(client, "app", pushed["signature"])
        assert signature.subject is not None
        assert (signature.subject.digest, signature.subject.tags) == (pushed["amd64"], ("amd64",))
        assert signature.artifact_type == "application/vnd.dev.cosign.simplesigning.v1+json"
        title, _ = describe_delete(signature)
        assert title.startswith("Delete referrer ")

        index = await plan_manifest_delete(client, "app", pushed["both"])
        assert index.plan.tags == ("v1", "v1-alias") and not index.parents
        assert {child.digest for child in index.plan.children} == {
            pushed["amd64"],
            pushed["arm64"],
        }


async def test_an_index_reads_as_broken_once_a_platform_manifest_is_deleted(
    any_registry: RunningRegistry, pushed: dict[str, str]
) -> None:
    async with RegistryClient(any_registry.host, insecure=True) as client:
        index = (await client.get_manifest("app", "v1")).manifest
        assert isinstance(index, ImageIndex)
        await client.delete_manifest("app", pushed["arm64"])
        children = await index_children(client, "app", index)
        state = {child.descriptor.digest: child for child in children}
        assert state[pushed["arm64"]].missing and state[pushed["arm64"]].manifest is None
        assert not state[pushed["amd64"]].missing
        assert state[pushed["amd64"]].image is not None
