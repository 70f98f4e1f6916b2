"""The pure planning of ``regtui cp``: locations, platforms, the order of writes, archive paths,
the referrers tag schema."""

from __future__ import annotations

import json

import pytest

from tui.client.models import OCI_INDEX, OCI_MANIFEST, Descriptor, Platform
from tui.client.reference import InvalidReferenceError
from tui.logic.copy_plan import (
    ArchiveLocation,
    ManifestNode,
    OciLocation,
    PlatformError,
    RegistryLocation,
    blobs_of,
    choose_platform,
    machine_platform,
    parse_location,
    parse_platform,
    referrers_index,
    referrers_tag,
    safe_member,
    write_order,
)


def test_locations() -> None:
    assert parse_location("oci:/tmp/x:v1") == OciLocation("/tmp/x", "v1")
    assert parse_location("oci:dir") == OciLocation("dir", None)
    assert parse_location("docker-archive:a.tar") == ArchiveLocation("a.tar", None)
    assert parse_location("docker-archive:a.tar:demo/app:1") == ArchiveLocation(
        "a.tar", "demo/app:1"
    )
    registry = parse_location("docker://reg.example:5000/team/app:v2")
    assert isinstance(registry, RegistryLocation)
    assert (registry.ref.registry, registry.ref.repository, registry.ref.tag) == (
        "reg.example:5000",
        "team/app",
        "v2",
    )
    with pytest.raises(InvalidReferenceError):
        parse_location("busybox")  # a registry host is needed: no silent Docker Hub...
    hub = parse_location("docker://busybox:1")  # ...unless asked for, as skopeo takes it
    assert isinstance(hub, RegistryLocation)
    assert (hub.ref.registry, hub.ref.repository) == ("docker.io", "library/busybox")
    with pytest.raises(ValueError, match="not a valid tag"):
        parse_location("oci:dir:bad tag")


def test_platforms() -> None:
    assert parse_platform("linux/arm/v7") == Platform("linux", "arm", "v7")
    assert machine_platform("x86_64") == Platform("linux", "amd64")
    assert machine_platform("aarch64") == Platform("linux", "arm64")
    with pytest.raises(PlatformError):
        parse_platform("linux")
    entries = [
        Descriptor(OCI_MANIFEST, "sha256:a", 1, platform=Platform("linux", "amd64")),
        Descriptor(OCI_MANIFEST, "sha256:b", 1, platform=Platform("linux", "arm", "v6")),
        Descriptor(OCI_MANIFEST, "sha256:c", 1, platform=Platform("linux", "arm", "v7")),
        Descriptor(OCI_MANIFEST, "sha256:d", 1, platform=Platform("linux", "arm64", "v8")),
    ]
    assert choose_platform(entries, Platform("linux", "arm", "v7")).digest == "sha256:c"
    assert choose_platform(entries, Platform("linux", "arm64")).digest == "sha256:d"
    with pytest.raises(PlatformError, match="linux/amd64, linux/arm/v6"):
        choose_platform(entries, Platform("windows", "amd64"))


def _node(name: str, *, blobs: tuple[str, ...] = (), **kw: object) -> ManifestNode:
    return ManifestNode(
        f"sha256:{name}",
        OCI_MANIFEST,
        name.encode(),
        blobs=tuple(Descriptor("x", f"sha256:{b}", 1) for b in blobs),
        **kw,  # type: ignore[arg-type]
    )


def test_the_order_of_writes() -> None:
    """Children before their index; a referrer after its subject; the root (the tags) last,
    or by digest before its referrers when it has some."""
    signature = _node("sig", blobs=("empty", "payload"))
    amd, arm = _node("amd", blobs=("cfg1", "shared")), _node("arm", blobs=("cfg2", "shared"))
    child_sbom = _node("sbom", blobs=("empty", "doc"))
    arm = ManifestNode(
        arm.digest, arm.media_type, arm.raw, blobs=arm.blobs, referrers=(child_sbom,)
    )
    index = ManifestNode("sha256:idx", OCI_INDEX, b"i", children=(amd, arm), referrers=(signature,))
    order = [n.digest[7:] for n in write_order(index)]
    assert order == ["amd", "arm", "sbom", "idx", "sig"]
    plain = ManifestNode("sha256:idx", OCI_INDEX, b"i", children=(amd, arm))
    assert [n.digest[7:] for n in write_order(plain)] == ["amd", "arm", "sbom"]
    digests = [b.digest[7:] for b in blobs_of(index)]
    assert digests == ["cfg1", "shared", "cfg2", "empty", "doc", "payload"]


def test_referrers_tag_schema() -> None:
    assert referrers_tag("sha256:" + "ab" * 32) == "sha256-" + "ab" * 32
    first = Descriptor(OCI_MANIFEST, "sha256:s1", 10, artifact_type="application/x-sig")
    raw = referrers_index(None, [first])
    document = json.loads(raw)
    assert document["mediaType"] == OCI_INDEX
    assert document["manifests"] == [
        {"mediaType": OCI_MANIFEST, "digest": "sha256:s1", "size": 10,
         "artifactType": "application/x-sig"}
    ]  # fmt: skip
    second = Descriptor(OCI_MANIFEST, "sha256:s2", 5)
    merged = json.loads(referrers_index(document, [first, second]))
    assert [m["digest"] for m in merged["manifests"]] == ["sha256:s1", "sha256:s2"]


@pytest.mark.parametrize(
    "name", ["../x", "a/../../x", "/etc/passwd", "a\\..\\b", "a\x00b", "", ".."]
)
def test_archive_paths_outside_are_refused(name: str) -> None:
    with pytest.raises(ValueError):
        safe_member(name)


def test_archive_paths_inside() -> None:
    assert safe_member("./manifest.json") == "manifest.json"
    assert safe_member("../abc/layer.tar", "def") == "abc/layer.tar"
    with pytest.raises(ValueError):
        safe_member("../../x", "def")


def test_the_tags_a_copy_writes() -> None:
    """The destination's own tag, else the source's; by digest only from a digest (a registry
    without any name gets ``latest``); an archive names the image ``HOST/REPO:TAG``."""
    from tui.logic.copy_plan import destination_tags

    def tags(source: str, destination: str) -> list[str]:
        return destination_tags(parse_location(source), parse_location(destination))

    assert tags("r.io/a:1", "s.io/b:2") == ["2"]
    assert tags("r.io/a:1", "s.io/b") == ["1"]
    assert tags(f"r.io/a@sha256:{'a' * 64}", "s.io/b") == []
    assert tags("r.io/a:1", "oci:dir") == ["1"]
    assert tags("r.io/a:1", "docker-archive:x.tar") == ["r.io/a:1"]
    assert tags("docker-archive:x.tar", "s.io/b") == ["latest"]
    assert tags("oci:dir:v3", "s.io/b") == ["v3"]
