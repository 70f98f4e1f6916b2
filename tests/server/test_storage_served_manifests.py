"""Manifests, tags, deletion, referrers and the catalog as the server keeps them: the stores
of ``DriverStorage`` on the filesystem driver, in process, checked against Distribution's
layout on disk (the config and layer blobs a manifest needs are laid out beforehand with plain
files, ``tests/helpers/layout.py``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from embedded_registry import errors
from embedded_registry.mediatypes import OCI_MANIFEST
from embedded_registry.storage.driver.filesystem import FilesystemDriver
from embedded_registry.storage.factory import driver_storage
from embedded_registry.storage.paths import Layout
from embedded_registry.storage.store import DriverStorage
from tests.helpers.layout import LayoutWriter, digest_of


def served(root: Path) -> DriverStorage:
    return driver_storage(FilesystemDriver(root), coordinate=True)


async def test_put_writes_distribution_links(tmp_path: Path) -> None:
    body = LayoutWriter(tmp_path).manifest("app", "one")
    storage = served(tmp_path)
    digest, info = await storage.put_manifest("app", "v1", body, OCI_MANIFEST)
    layout = Layout(tmp_path)
    assert layout.blob_data(digest).read_bytes() == body
    assert layout.revision_link("app", digest).read_text() == digest
    assert layout.tag_current_link("app", "v1").read_text() == digest
    assert layout.tag_index_link("app", "v1", digest).read_text() == digest
    assert await storage.get_manifest("app", "v1") == (digest, body, info)
    assert (await storage.get_manifest("app", digest))[1] == body
    assert not [p for p in layout.v2.rglob("*") if p.name.startswith(".tmp-")]


async def test_missing_blobs_are_all_reported_and_nothing_is_written(tmp_path: Path) -> None:
    storage = served(tmp_path)
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "x", "digest": digest_of(b"c"), "size": 1},
        "layers": [{"mediaType": "y", "digest": digest_of(b"l"), "size": 1}],
    }
    with pytest.raises(errors.RegistryError) as caught:
        await storage.put_manifest("app", "v1", json.dumps(document).encode(), OCI_MANIFEST)
    codes = [entry["code"] for entry in caught.value.entries()]
    assert codes == ["MANIFEST_BLOB_UNKNOWN", "MANIFEST_BLOB_UNKNOWN"]
    assert not Layout(tmp_path).repo_dir("app").exists()


async def test_blob_of_another_repository_does_not_count(tmp_path: Path) -> None:
    body = LayoutWriter(tmp_path).manifest("owner", "one")
    with pytest.raises(errors.RegistryError) as caught:
        await served(tmp_path).put_manifest("thief", "v1", body, OCI_MANIFEST)
    assert caught.value.code == "MANIFEST_BLOB_UNKNOWN"


async def test_delete_by_digest_removes_every_tag_pointing_at_it(tmp_path: Path) -> None:
    first = LayoutWriter(tmp_path).manifest("app", "one")
    second = LayoutWriter(tmp_path).manifest("app", "two")
    storage = served(tmp_path)
    digest, _ = await storage.put_manifest("app", "v1", first, OCI_MANIFEST)
    await storage.put_manifest("app", "latest", first, OCI_MANIFEST)
    other, _ = await storage.put_manifest("app", "v2", second, OCI_MANIFEST)
    assert await storage.tags("app") == ["latest", "v1", "v2"]
    assert await storage.delete_manifest("app", digest) == ["latest", "v1"]
    assert await storage.tags("app") == ["v2"]
    assert not await storage.has_revision("app", digest)
    assert Layout(tmp_path).blob_data(digest).exists()  # left for garbage collection
    with pytest.raises(errors.RegistryError):
        await storage.get_manifest("app", digest)
    with pytest.raises(errors.RegistryError):
        await storage.delete_manifest("app", digest)
    assert (await storage.get_manifest("app", "v2"))[0] == other


async def test_delete_tag_leaves_the_manifest_and_sibling_tags(tmp_path: Path) -> None:
    body = LayoutWriter(tmp_path).manifest("app", "one")
    storage = served(tmp_path)
    digest, _ = await storage.put_manifest("app", "v1", body, OCI_MANIFEST)
    await storage.put_manifest("app", "stable", body, OCI_MANIFEST)
    await storage.delete_tag("app", "v1")
    assert await storage.tags("app") == ["stable"]
    assert await storage.has_revision("app", digest)
    assert not Layout(tmp_path).tag_dir("app", "v1").exists()
    with pytest.raises(errors.RegistryError) as caught:
        await storage.delete_tag("app", "v1")
    assert caught.value.code == "MANIFEST_UNKNOWN"


async def test_referrers_follow_subject_and_artifact_type(tmp_path: Path) -> None:
    fixture = LayoutWriter(tmp_path)
    storage = served(tmp_path)
    subject, _ = await storage.put_manifest("app", "v1", fixture.manifest("app", "s"), OCI_MANIFEST)
    descriptor = {"mediaType": OCI_MANIFEST, "digest": subject, "size": 1}
    signature = fixture.manifest(
        "app",
        "sig",
        subject=descriptor,
        artifactType="application/example.sig",
        annotations={"k": "v"},
    )
    sig_digest, info = await storage.put_manifest(
        "app", digest_of(signature), signature, OCI_MANIFEST
    )
    assert info.subject == subject
    assert await storage.referrers("app", subject) == [
        {
            "mediaType": OCI_MANIFEST,
            "digest": sig_digest,
            "size": len(signature),
            "artifactType": "application/example.sig",
            "annotations": {"k": "v"},
        }
    ]
    await storage.delete_manifest("app", sig_digest)
    assert await storage.referrers("app", subject) == []


async def test_catalog_order_and_pages(tmp_path: Path) -> None:
    fixture = LayoutWriter(tmp_path)
    for name in ("a-b", "a", "a/b", "z", "m/n/o"):
        fixture.link(name, digest_of(name.encode()))
    fixture.upload("uploads-only")
    storage = served(tmp_path)
    names = ["a", "a/b", "a-b", "m/n/o", "z"]
    assert await storage.repositories() == names
    assert await storage.catalog_page(None, 2) == (["a", "a/b"], True)
    assert await storage.catalog_page("a/b", 2) == (["a-b", "m/n/o"], True)
    assert await storage.catalog_page("m/n/o", 2) == (["z"], False)
    assert await storage.catalog_page(None, 5) == (names, False)
