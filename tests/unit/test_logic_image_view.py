"""The image screen's pure logic: sizes of an index, raw headings, pull commands, words."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from tui.client import Descriptor, ImageManifest, ManifestResult, Platform
from tui.client.models import (
    OCI_CONFIG,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
    artifact_kind,
    parse_manifest,
)
from tui.logic.fmt import count_of
from tui.logic.image_view import (
    NO_REFERRERS,
    ChildManifest,
    copy_notice,
    document_heading,
    index_size_text,
    index_total,
    is_artifact,
    kind_of,
    manifest_title,
    overview_text,
    platform_size_cell,
    pull_command_for,
)

LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
HELM_CONFIG = "application/vnd.cncf.helm.config.v1+json"


def digest_of(seed: str) -> str:
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


def descriptor(seed: str, size: int, media_type: str = LAYER, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": digest_of(seed), "size": size, **extra}


def result_of(document: dict[str, Any]) -> ManifestResult:
    raw = json.dumps(document).encode()
    media_type, manifest = parse_manifest(raw)
    return ManifestResult("sha256:" + hashlib.sha256(raw).hexdigest(), media_type, raw, manifest)


def image(config_seed: str, config_size: int, *layers: tuple[str, int]) -> dict[str, Any]:
    return {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(config_seed, config_size, OCI_CONFIG),
        "layers": [descriptor(seed, size) for seed, size in layers],
    }


def child(seed: str, document: dict[str, Any] | None, **platform: str) -> ChildManifest:
    entry = Descriptor(
        OCI_MANIFEST,
        digest_of(seed),
        100,
        platform=Platform(platform.get("os", "linux"), platform.get("arch", "amd64")),
    )
    if document is None:
        return ChildManifest(entry, error="manifest not found", missing=True)
    return ChildManifest(entry, result_of(document).manifest)


def test_plural_says_one_layer_and_two_layers() -> None:
    assert count_of(1, "layer") == "1 layer"
    assert count_of(0, "layer") == "0 layers"
    assert count_of(2, "index") == "2 indexes"
    assert count_of(1234, "byte") == "1,234 bytes"


def test_index_total_counts_shared_layers_once_and_says_so() -> None:
    amd64 = child("amd64", image("cfg-amd64", 1000, ("base", 50_000), ("app-amd64", 7_000)))
    arm64 = child(
        "arm64", image("cfg-arm64", 900, ("base", 50_000), ("app-arm64", 6_000)), arch="arm64"
    )
    total = index_total([amd64, arm64])
    assert total.platforms == 2
    assert total.summed_bytes == (1000 + 50_000 + 7_000) + (900 + 50_000 + 6_000)
    assert total.unique_bytes == 1000 + 900 + 50_000 + 7_000 + 6_000
    assert total.shared_bytes == 50_000
    text = index_size_text(total)
    assert text.startswith("63.4 KiB for 2 platforms")
    assert "shared layers counted once" in text
    assert "112.2 KiB if counted per platform" in text


def test_index_total_leaves_out_attestations_and_missing_platforms() -> None:
    amd64 = child("amd64", image("cfg", 10, ("layer", 90)))
    gone = child("gone", None, arch="arm64")
    attestation = child("att", image("att-cfg", 5, ("intoto", 500)), os="unknown", arch="unknown")
    total = index_total([amd64, gone, attestation])
    assert (total.platforms, total.unreadable, total.others) == (1, 1, 1)
    assert total.unique_bytes == total.summed_bytes == 100
    text = index_size_text(total)
    assert "1 platform:" in text
    assert "1 platform manifest unreadable, not counted" in text
    assert "1 other entry not counted" in text
    assert "if counted per platform" not in text  # nothing shared


def test_index_total_says_when_entries_were_not_read() -> None:
    amd64 = child("amd64", image("cfg", 10, ("layer", 90)))
    total = index_total([amd64], listed=300)
    assert total.unread == 299
    assert "299 entries past the first ones not read" in index_size_text(total)
    assert index_total([amd64]).unread == 0


def test_platform_row_shows_the_image_size_not_the_manifest_size() -> None:
    amd64 = child("amd64", image("cfg", 1_000, ("a", 2_000_000), ("b", 500_000)))
    assert amd64.descriptor.size == 100  # the manifest document
    assert platform_size_cell(amd64) == "2.4 MiB"  # 1,000 + 2,000,000 + 500,000 bytes
    assert platform_size_cell(None) == "…"
    assert platform_size_cell(child("gone", None)) == "missing"


def test_artifacts_offer_no_pull_command() -> None:
    picture = result_of(image("cfg", 10, ("layer", 90)))
    assert pull_command_for("reg.example", "r", "v1", picture) == "docker pull reg.example/r:v1"
    assert pull_command_for("reg.example", "r", "v1", None) is None  # not loaded yet

    signature = image("sig-cfg", 2, ("sig", 40))
    signature["config"]["mediaType"] = OCI_EMPTY
    signature["artifactType"] = "application/vnd.dev.cosign.simplesigning.v1+json"
    assert pull_command_for("reg.example", "r", digest_of("x"), result_of(signature)) is None

    helm = image("chart-cfg", 2, ("chart", 40))
    helm["config"]["mediaType"] = HELM_CONFIG  # and no artifactType
    assert is_artifact(result_of(helm).manifest)
    assert artifact_kind(result_of(helm).manifest) == HELM_CONFIG
    assert artifact_kind(result_of(signature).manifest) == signature["artifactType"]
    assert artifact_kind(picture.manifest) is None
    assert pull_command_for("reg.example", "r", "v1", result_of(helm)) is None

    artifact_index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "artifactType": "application/spdx+json",
        "manifests": [],
    }
    assert pull_command_for("reg.example", "r", "v1", result_of(artifact_index)) is None

    overview = overview_text("reg.example", "r", "v1", result_of(signature), None).plain
    assert "docker pull" not in overview and "clipboard" not in overview
    assert "not an image" in overview


def test_copy_notice_says_sent_and_shows_the_text() -> None:
    notice = copy_notice("docker pull reg.example/r:v1")
    assert "Sent to the terminal's clipboard" in notice
    assert notice.endswith("docker pull reg.example/r:v1")
    assert "Copied" not in notice


def test_raw_headings_name_each_document() -> None:
    amd64 = Platform("linux", "amd64")
    index = result_of({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []})
    one = result_of(image("cfg", 10, ("layer", 90)))
    assert manifest_title(index.manifest, None) == "Index"
    assert manifest_title(one.manifest, amd64) == "Manifest for linux/amd64"
    assert manifest_title(one.manifest, None) == "Image manifest"
    heading = document_heading("Index", index.digest, index.media_type, index.size).plain
    assert heading.splitlines() == [
        f" Index   {count_of(index.size, 'byte')}",
        f"  {index.digest}",
        f"  {OCI_INDEX}",
    ]


def test_kind_uses_plurals() -> None:
    assert kind_of(result_of(image("cfg", 10, ("layer", 90)))) == "image, 1 layer"
    assert kind_of(result_of(image("cfg", 10, ("a", 1), ("b", 2)))) == "image, 2 layers"
    one_platform = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            descriptor("m", 10, OCI_MANIFEST, platform={"os": "linux", "architecture": "amd64"})
        ],
    }
    assert kind_of(result_of(one_platform)) == "index of 1 platform manifest"


def test_empty_referrers_sentence() -> None:
    assert NO_REFERRERS == (
        "No referrers: nothing (signatures, SBOMs, attestations) refers to this manifest."
    )


@pytest.mark.parametrize("size", [0, 1, 2])
def test_image_size_is_config_plus_layers(size: int) -> None:
    manifest = result_of(image("cfg", 7, *[(f"l{i}", 100 + i) for i in range(size)])).manifest
    assert isinstance(manifest, ImageManifest)
    expected = 7 + sum(100 + i for i in range(size))
    cell = platform_size_cell(ChildManifest(Descriptor(OCI_MANIFEST, digest_of("x"), 1), manifest))
    assert cell == f"{expected} B"
