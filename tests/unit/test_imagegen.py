"""The image builders make valid, deterministic images that a real registry accepts."""

from __future__ import annotations

import gzip
import io
import json
import tarfile

import httpx

from tests.helpers.servers import RunningRegistry
from tui.imagegen import (
    OCI_INDEX,
    make_artifact,
    make_image,
    make_index,
    make_layer,
    push_image,
    sha256_digest,
)


def test_layers_are_deterministic_tars_with_parent_directories() -> None:
    first = make_layer({"etc/app/config.ini": b"x=1\n"})
    second = make_layer({"etc/app/config.ini": b"x=1\n"})
    assert first.digest == second.digest
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(first.data))) as tar:
        assert tar.getnames() == ["etc", "etc/app", "etc/app/config.ini"]


def test_config_diff_ids_are_digests_of_uncompressed_layers() -> None:
    image = make_image([{"a": b"1"}, {"b": b"2"}], compression="zstd")
    config = json.loads(image.config.data)
    assert len(config["rootfs"]["diff_ids"]) == 2
    assert config["rootfs"]["diff_ids"][0] != image.layers[0].digest
    assert [h.get("empty_layer", False) for h in config["history"]] == [False, False, True]
    manifest = json.loads(image.manifest.data)
    assert manifest["config"]["digest"] == sha256_digest(image.config.data)


def test_index_names_each_platform_child() -> None:
    amd = make_image([{"a": b"1"}], architecture="amd64")
    arm = make_image([{"a": b"1"}], architecture="arm64", variant="v8")
    index = make_index([amd, arm])
    document = json.loads(index.manifest.data)
    assert document["mediaType"] == OCI_INDEX
    assert [m["platform"]["architecture"] for m in document["manifests"]] == ["amd64", "arm64"]
    assert document["manifests"][1]["platform"]["variant"] == "v8"


def test_push_to_distribution_round_trips(distribution: RunningRegistry) -> None:
    image = make_image([{"bin/hello": b"#!/bin/sh\necho hi\n"}], oci=False)
    index = make_index([image, make_image([{"x": b"y"}], architecture="arm64")])
    signature = make_artifact(index)
    assert push_image(distribution.url, "demo/app", "v1", image) == image.digest
    assert push_image(distribution.url, "demo/app", "multi", index) == index.digest
    assert push_image(distribution.url, "demo/app", None, signature) == signature.digest
    fetched = httpx.get(
        f"{distribution.url}/v2/demo/app/manifests/v1",
        headers={"Accept": image.manifest.media_type},
    )
    assert fetched.status_code == 200
    assert fetched.content == image.manifest.data
    layer = httpx.get(f"{distribution.url}/v2/demo/app/blobs/{image.layers[0].digest}")
    assert layer.content == image.layers[0].data
