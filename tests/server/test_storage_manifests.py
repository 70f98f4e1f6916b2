"""Manifests, tags, deletion and the catalog, in Distribution's layout."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from embedded_registry import errors
from embedded_registry.mediatypes import OCI_MANIFEST
from embedded_registry.storage import Storage
from embedded_registry.storage.catalog import list_repositories, page


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def add_blob(storage: Storage, name: str, data: bytes) -> dict[str, object]:
    digest = digest_of(data)
    storage.blobs.put_bytes(digest, data)
    storage.blobs.link(name, digest)
    return {"mediaType": "application/octet-stream", "digest": digest, "size": len(data)}


def manifest(storage: Storage, name: str, label: str, **extra: object) -> bytes:
    config = add_blob(storage, name, json.dumps({"label": label}).encode())
    config["mediaType"] = "application/vnd.oci.image.config.v1+json"
    layer = add_blob(storage, name, label.encode() * 10)
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config,
        "layers": [layer],
        **extra,
    }
    return json.dumps(document).encode()


def test_put_writes_distribution_links(tmp_path: Path) -> None:
    storage = Storage(tmp_path)
    body = manifest(storage, "app", "one")
    digest, info = storage.manifests.put("app", "v1", body, OCI_MANIFEST)
    layout = storage.layout
    assert layout.blob_data(digest).read_bytes() == body
    assert layout.revision_link("app", digest).read_text() == digest
    assert layout.tag_current_link("app", "v1").read_text() == digest
    assert layout.tag_index_link("app", "v1", digest).read_text() == digest
    assert storage.manifests.get("app", "v1") == (digest, body, info)
    assert storage.manifests.get("app", digest)[1] == body


def test_missing_blobs_are_all_reported_and_nothing_is_written(tmp_path: Path) -> None:
    storage = Storage(tmp_path)
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "x", "digest": digest_of(b"c"), "size": 1},
        "layers": [{"mediaType": "y", "digest": digest_of(b"l"), "size": 1}],
    }
    with pytest.raises(errors.RegistryError) as caught:
        storage.manifests.put("app", "v1", json.dumps(document).encode(), OCI_MANIFEST)
    codes = [entry["code"] for entry in caught.value.entries()]
    assert codes == ["MANIFEST_BLOB_UNKNOWN", "MANIFEST_BLOB_UNKNOWN"]
    assert not storage.layout.repo_dir("app").exists()


def test_blob_of_another_repository_does_not_count(tmp_path: Path) -> None:
    storage = Storage(tmp_path)
    body = manifest(storage, "owner", "one")
    with pytest.raises(errors.RegistryError) as caught:
        storage.manifests.put("thief", "v1", body, OCI_MANIFEST)
    assert caught.value.code == "MANIFEST_BLOB_UNKNOWN"


def test_delete_by_digest_removes_every_tag_pointing_at_it(tmp_path: Path) -> None:
    storage = Storage(tmp_path)
    first = manifest(storage, "app", "one")
    second = manifest(storage, "app", "two")
    digest, _ = storage.manifests.put("app", "v1", first, OCI_MANIFEST)
    storage.manifests.put("app", "latest", first, OCI_MANIFEST)
    other, _ = storage.manifests.put("app", "v2", second, OCI_MANIFEST)
    assert storage.manifests.delete("app", digest) == ["latest", "v1"]
    assert storage.manifests.tags("app") == ["v2"]
    assert not storage.manifests.has_revision("app", digest)
    assert storage.layout.blob_data(digest).exists()  # left for garbage collection
    with pytest.raises(errors.RegistryError):
        storage.manifests.get("app", digest)
    with pytest.raises(errors.RegistryError):
        storage.manifests.delete("app", digest)
    assert storage.manifests.get("app", "v2")[0] == other


def test_delete_tag_leaves_the_manifest_and_sibling_tags(tmp_path: Path) -> None:
    storage = Storage(tmp_path)
    body = manifest(storage, "app", "one")
    digest, _ = storage.manifests.put("app", "v1", body, OCI_MANIFEST)
    storage.manifests.put("app", "stable", body, OCI_MANIFEST)
    storage.manifests.delete_tag("app", "v1")
    assert storage.manifests.tags("app") == ["stable"]
    assert storage.manifests.has_revision("app", digest)
    with pytest.raises(errors.RegistryError) as caught:
        storage.manifests.delete_tag("app", "v1")
    assert caught.value.code == "MANIFEST_UNKNOWN"


def test_referrers_follow_subject_and_artifact_type(tmp_path: Path) -> None:
    storage = Storage(tmp_path)
    subject, _ = storage.manifests.put("app", "v1", manifest(storage, "app", "s"), OCI_MANIFEST)
    descriptor = {"mediaType": OCI_MANIFEST, "digest": subject, "size": 1}
    signature = manifest(
        storage,
        "app",
        "sig",
        subject=descriptor,
        artifactType="application/example.sig",
        annotations={"k": "v"},
    )
    sig_digest, info = storage.manifests.put("app", digest_of(signature), signature, OCI_MANIFEST)
    assert info.subject == subject
    assert storage.manifests.referrers("app", subject) == [
        {
            "mediaType": OCI_MANIFEST,
            "digest": sig_digest,
            "size": len(signature),
            "artifactType": "application/example.sig",
            "annotations": {"k": "v"},
        }
    ]
    storage.manifests.delete("app", sig_digest)
    assert storage.manifests.referrers("app", subject) == []


def test_catalog_order_and_pages(tmp_path: Path) -> None:
    storage = Storage(tmp_path)
    for name in ("a-b", "a", "a/b", "z", "m/n/o"):
        storage.blobs.link(name, digest_of(name.encode()))
    storage.uploads.create("uploads-only")
    names = list_repositories(storage.layout.repositories_dir)
    assert names == ["a", "a/b", "a-b", "m/n/o", "z"]
    assert page(names, None, 2) == (["a", "a/b"], True)
    assert page(names, "a/b", 2) == (["a-b", "m/n/o"], True)
    assert page(names, "m/n/o", 2) == (["z"], False)
    assert page(names, None, 5) == (names, False)
