"""What GC reads from each kind of manifest (pure: no server, no disk)."""

from __future__ import annotations

import json

import pytest

from embedded_registry.mediatypes import parse_stored_manifest
from tests.helpers.images import make_artifact, make_image, make_index

D = "sha256:" + "0" * 64


def test_image_manifest_references_config_and_layers() -> None:
    for oci in (True, False):
        image = make_image([{"a": b"1"}, {"b": b"2"}], oci=oci)
        m = parse_stored_manifest(image.digest, image.manifest.data)
        assert m.error is None
        assert m.config == image.config.digest
        assert m.layers == tuple(layer.digest for layer in image.layers)
        assert (m.children, m.subject) == ((), None)


def test_index_references_children_and_artifact_its_subject() -> None:
    amd = make_image([{"x": b"amd"}], architecture="amd64")
    arm = make_image([{"x": b"arm"}], architecture="arm64")
    for oci in (True, False):
        index = make_index([amd, arm], oci=oci)
        m = parse_stored_manifest(index.digest, index.manifest.data)
        assert m.children == (amd.digest, arm.digest)
        assert (m.config, m.layers) == (None, ())
    signature = make_artifact(amd)
    m = parse_stored_manifest(signature.digest, signature.manifest.data)
    assert m.subject == amd.digest
    assert m.layers == (signature.layers[0].digest,)


def test_schema1_references_its_fs_layers_once() -> None:
    doc = {"schemaVersion": 1, "fsLayers": [{"blobSum": D}, {"blobSum": D}], "history": []}
    m = parse_stored_manifest(D, json.dumps(doc).encode())
    assert m.layers == (D,) and m.error is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'{"schemaVersion": 2, "config": {"dig', "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"schemaVersion": 2, "layers": [{"size": 1}]}', "malformed"),
        (b'{"schemaVersion": 2, "mediaType": "text/plain"}', "unknown manifest type"),
        (b"\xff\xfe", "not JSON"),
    ],
)
def test_unreadable_manifests_are_errors_not_exceptions(data: bytes, message: str) -> None:
    m = parse_stored_manifest(D, data)
    assert m.error is not None and message in m.error
