"""Manifest, index, schema1 and config parsing; history matched to layers."""

from __future__ import annotations

import json

import pytest

from tui.client.errors import MalformedResponseError
from tui.client.models import (
    DOCKER_MANIFEST_LIST,
    DOCKER_SCHEMA1_SIGNED,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    HistoryEntry,
    ImageConfig,
    ImageIndex,
    ImageManifest,
    Schema1Manifest,
    match_history,
    parse_config,
    parse_manifest,
)
from tui.imagegen import make_artifact, make_image, make_index


def test_oci_image_manifest() -> None:
    image = make_image([{"a": b"1"}, {"b": b"2"}])
    media_type, manifest = parse_manifest(image.manifest.data)
    assert media_type == OCI_MANIFEST
    assert isinstance(manifest, ImageManifest)
    assert [layer.digest for layer in manifest.layers] == [b.digest for b in image.layers]
    assert manifest.config.digest == image.config.digest
    assert manifest.total_size == image.config.size + sum(b.size for b in image.layers)
    assert not manifest.is_artifact


def test_docker_manifest_list_with_platforms() -> None:
    index = make_index(
        [
            make_image([{"a": b"1"}], oci=False),
            make_image([{"a": b"2"}], oci=False, architecture="arm64", variant="v8"),
        ],
        oci=False,
    )
    media_type, manifest = parse_manifest(index.manifest.data)
    assert media_type == DOCKER_MANIFEST_LIST
    assert isinstance(manifest, ImageIndex)
    assert [str(d.platform) for d in manifest.manifests] == ["linux/amd64", "linux/arm64/v8"]


def test_artifact_with_subject() -> None:
    image = make_image([{"a": b"1"}])
    artifact = make_artifact(image)
    _, manifest = parse_manifest(artifact.manifest.data)
    assert isinstance(manifest, ImageManifest)
    assert manifest.is_artifact
    assert manifest.subject is not None and manifest.subject.digest == image.digest


def test_media_type_absent_decided_by_shape() -> None:
    raw = json.dumps({"schemaVersion": 2, "manifests": []}).encode()
    assert parse_manifest(raw)[0] == OCI_INDEX
    assert parse_manifest(raw, "application/json")[0] == OCI_INDEX


def test_schema1_signed() -> None:
    raw = json.dumps(
        {
            "schemaVersion": 1,
            "name": "lib/app",
            "tag": "old",
            "architecture": "amd64",
            "fsLayers": [{"blobSum": "sha256:" + "1" * 64}, {"blobSum": "sha256:" + "2" * 64}],
            "history": [{"v1Compatibility": json.dumps({"id": "x", "created": "2015"})}, {}],
            "signatures": [{"protected": "e30"}],
        }
    ).encode()
    media_type, manifest = parse_manifest(raw)
    assert media_type == DOCKER_SCHEMA1_SIGNED
    assert isinstance(manifest, Schema1Manifest)
    assert manifest.signed and manifest.name == "lib/app"
    assert manifest.fs_layers[0].endswith("1" * 64)
    assert manifest.history[0]["created"] == "2015"


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[]",
        b'{"schemaVersion": 2, "mediaType": "' + OCI_MANIFEST.encode() + b'"}',
        b'{"schemaVersion":2,"config":{"digest":"sha256:x","size":-1},"layers":[]}',
        b'{"schemaVersion":2,"config":{"digest":"nodigest","size":1},"layers":[]}',
        b'{"schemaVersion":2,"mediaType":"' + OCI_INDEX.encode() + b'","manifests":{}}',
        b'{"schemaVersion": 2, "config": {"digest": "sha256:ab", "size": 2',  # truncated
    ],
)
def test_malformed_manifests(raw: bytes) -> None:
    with pytest.raises(MalformedResponseError):
        parse_manifest(raw)


def test_parse_config() -> None:
    image = make_image(
        [{"a": b"1"}],
        entrypoint=["/entry"],
        cmd=["run"],
        labels={"org.opencontainers.image.title": "demo"},
        architecture="arm64",
        variant="v8",
    )
    config = parse_config(image.config.data)
    assert config.entrypoint == ("/entry",)
    assert config.cmd == ("run",)
    assert config.labels == {"org.opencontainers.image.title": "demo"}
    assert str(config.platform) == "linux/arm64/v8"
    assert config.history[-1].empty_layer
    assert len(config.diff_ids) == 1


def test_parse_config_rejects_garbage() -> None:
    with pytest.raises(MalformedResponseError):
        parse_config(b"{")


def _layer(n: int) -> Descriptor:
    return Descriptor("application/vnd.oci.image.layer.v1.tar+gzip", f"sha256:{n:064x}", n * 10)


def test_match_history_honours_empty_layer() -> None:
    config = ImageConfig(
        history=(
            HistoryEntry(created_by="ADD rootfs"),
            HistoryEntry(created_by="ENV A=1", empty_layer=True),
            HistoryEntry(created_by="RUN make"),
            HistoryEntry(created_by='CMD ["sh"]', empty_layer=True),
        )
    )
    steps = match_history(config, [_layer(1), _layer(2)])
    assert [(s.entry.created_by, s.layer_index) for s in steps] == [
        ("ADD rootfs", 0),
        ("ENV A=1", None),
        ("RUN make", 1),
        ('CMD ["sh"]', None),
    ]


def test_match_history_never_hides_a_layer() -> None:
    config = ImageConfig(history=(HistoryEntry(created_by="ADD rootfs"),))
    steps = match_history(config, [_layer(1), _layer(2), _layer(3)])
    assert [s.layer_index for s in steps] == [0, 1, 2]
    assert steps[2].entry.comment == "(no history)"


def test_match_history_more_entries_than_layers() -> None:
    config = ImageConfig(history=(HistoryEntry(created_by="a"), HistoryEntry(created_by="b")))
    steps = match_history(config, [_layer(1)])
    assert [s.layer_index for s in steps] == [0, None]
