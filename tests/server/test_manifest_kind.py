"""A manifest is what its media type says, whatever fields its body carries (GHSA-qq97-vm5h-rrhg).

An image manifest with an extra ``"manifests": []`` reads as an empty index to anyone who goes by
its fields: GC then marked nothing, and swept the config and layers of a tagged image. The
registry refuses such a body at PUT (MANIFEST_INVALID), as Distribution does for the OCI types;
GC reads a stored manifest by its media type only, so one already stored (by an older registry,
or by Distribution, which accepts it under the Docker types) keeps its blobs.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml

from embedded_registry.gc import collect_garbage
from embedded_registry.mediatypes import DOCKER_LIST, DOCKER_SCHEMA2, OCI_INDEX, OCI_MANIFEST
from embedded_registry.storage.paths import Layout
from tests.helpers.layout import LayoutWriter
from tests.helpers.servers import (
    bundled_registry,
    distribution_config,
    distribution_registry,
    require_tool,
)
from tui.imagegen import make_image, push_blob

IMAGE = make_image([{"etc/kind": b"read by its media type\n"}])
BASE = json.loads(IMAGE.manifest.data)
DOCKER_BASE = {**BASE, "mediaType": DOCKER_SCHEMA2}
INDEX_BASE = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}

# (content type, body, whether Distribution 2.8 refuses it too)
CONTRADICTIONS = {
    "oci-manifest-with-manifests": (OCI_MANIFEST, {**BASE, "manifests": []}, True),
    "oci-manifest-with-fsLayers": (OCI_MANIFEST, {**BASE, "fsLayers": []}, False),
    "docker-manifest-with-manifests": (DOCKER_SCHEMA2, {**DOCKER_BASE, "manifests": []}, False),
    "docker-manifest-with-fsLayers": (DOCKER_SCHEMA2, {**DOCKER_BASE, "fsLayers": []}, False),
    "oci-index-with-layers": (OCI_INDEX, {**INDEX_BASE, "layers": []}, True),
    "oci-index-with-config": (OCI_INDEX, {**INDEX_BASE, "config": BASE["config"]}, True),
    "docker-list-with-layers": (
        DOCKER_LIST,
        {**INDEX_BASE, "mediaType": DOCKER_LIST, "layers": []},
        False,
    ),
}


def _put(
    client: httpx.Client, tag: str, content_type: str, body: dict[str, object]
) -> httpx.Response:
    return client.put(
        f"/v2/app/manifests/{tag}",
        content=json.dumps(body).encode(),
        headers={"Content-Type": content_type},
    )


@pytest.mark.interop
def test_put_refuses_a_body_that_contradicts_its_media_type(tmp_path: Path) -> None:
    """Every contradiction is MANIFEST_INVALID from the bundled registry; Distribution 2.8
    refuses the OCI ones too (and accepts the rest, which regtui refuses on purpose)."""
    with (
        bundled_registry(tmp_path / "bundled") as bundled,
        distribution_registry(tmp_path / "distribution") as distribution,
        httpx.Client(base_url=bundled.url, timeout=30) as ours,
        httpx.Client(base_url=distribution.url, timeout=30) as theirs,
    ):
        for client in (ours, theirs):
            for blob in IMAGE.blobs():
                push_blob(client, "app", blob)
        for tag, (content_type, body, distribution_refuses) in CONTRADICTIONS.items():
            answer = _put(ours, tag, content_type, body)
            assert answer.status_code == 400, (tag, answer.text)
            errors = answer.json()["errors"]
            assert [e["code"] for e in errors] == ["MANIFEST_INVALID"], errors
            kind = "index" if content_type in (OCI_INDEX, DOCKER_LIST) else "manifest"
            assert f"expected {kind} but found" in errors[0]["detail"], errors
            reference = _put(theirs, tag, content_type, body)
            assert (reference.status_code == 400) == distribution_refuses, (tag, reference.text)
            if distribution_refuses:
                assert reference.json()["errors"][0]["code"] == "MANIFEST_INVALID"
        # Nothing was stored, and the plain manifest (a null field is no field) still goes in.
        assert ours.get("/v2/app/tags/list").json().get("tags") in (None, [])
        plain = _put(ours, "plain", OCI_MANIFEST, {**BASE, "manifests": None})
        assert plain.status_code == 201, plain.text


@pytest.mark.parametrize(
    ("media_type", "extra"),
    [
        (OCI_MANIFEST, {"manifests": []}),
        (OCI_MANIFEST, {"fsLayers": []}),
        (DOCKER_SCHEMA2, {"manifests": []}),
        (DOCKER_SCHEMA2, {"fsLayers": [], "manifests": []}),
    ],
)
def test_gc_keeps_the_blobs_of_a_stored_manifest_with_foreign_fields(
    tmp_path: Path, media_type: str, extra: dict[str, object]
) -> None:
    root = tmp_path / "root"
    writer = LayoutWriter(root)
    writer.ensure()
    document = json.loads(writer.manifest("app", "tagged", **extra))
    document["mediaType"] = media_type
    digest = writer.put("app", json.dumps(document).encode(), tag="v1")
    kept = {digest, document["config"]["digest"], *(d["digest"] for d in document["layers"])}
    garbage = writer.blob(b"unreferenced\n")

    report = collect_garbage(root, grace_period=0)

    assert report.eligible_blobs == [garbage]
    assert not report.problems
    layout = Layout(root)
    for blob in kept:
        assert layout.blob_data(blob).exists(), blob


def test_gc_reads_a_manifest_without_media_type_every_way_it_may_have_been_pushed(
    tmp_path: Path,
) -> None:
    """An OCI manifest may leave ``mediaType`` out; the layout keeps no content type. A body
    with both an image's fields and an index's is kept whole (both readings are marked)."""
    root = tmp_path / "root"
    writer = LayoutWriter(root)
    writer.ensure()
    child = writer.put("app", writer.manifest("app", "child"))
    document = json.loads(writer.manifest("app", "ambiguous"))
    del document["mediaType"]
    document["manifests"] = [writer.descriptor(child)]
    writer.put("app", json.dumps(document).encode(), tag="v1")

    report = collect_garbage(root, grace_period=0, delete_untagged=True)

    assert report.eligible_blobs == []
    assert not report.problems


def test_distribution_gc_agrees_on_a_docker_manifest_with_foreign_fields(tmp_path: Path) -> None:
    """Distribution 2.8 accepts a Docker image manifest with ``"manifests": []`` and reads it by
    its media type when it collects: it names nothing of it for deletion, as regtui."""
    binary = require_tool("docker-registry")
    root = tmp_path / "root"
    writer = LayoutWriter(root)
    writer.ensure()
    document = json.loads(writer.manifest("app", "docker", manifests=[], fsLayers=[]))
    document["mediaType"] = DOCKER_SCHEMA2
    writer.put("app", json.dumps(document).encode(), tag="v1")
    garbage = writer.blob(b"unreferenced\n")
    config = tmp_path / "gc.yml"
    config.write_text(yaml.safe_dump(distribution_config(root, 5000)))
    done = subprocess.run(
        [binary, "garbage-collect", "--dry-run", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    named = set(re.findall(r"blob eligible for deletion: (sha256:[0-9a-f]{64})", done.stdout))
    assert named == {garbage}
    assert collect_garbage(root, grace_period=0, dry_run=True).eligible_blobs == [garbage]
