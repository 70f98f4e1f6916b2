"""The ``_regtui/tags`` document is one document whichever way the storage is read (issue 22).

On the filesystem the document is read with the driver's shortcuts (a walk that stats each
tag's ``current/link`` and each revision's ``link`` without listing their directories, batched
reads); on a driver with the core operations only (as on S3, where nothing else is offered)
with a generic walk and one read per file. Both must give exactly the same document, on a tree
with what makes it hard: digests shared by tags and repositories, an index and its children, a
tag's history of pushes, a blob and a config that are gone, a tag naming a manifest that is not
there, a tag directory without its ``current/link``, an untagged revision whose blob is gone,
pull times.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from embedded_registry.mediatypes import OCI_INDEX
from embedded_registry.storage.driver.base import FileInfo, FileWriter, StorageDriver
from embedded_registry.storage.driver.filesystem import FilesystemDriver
from embedded_registry.storage.factory import driver_storage
from embedded_registry.storage.paths import Layout
from tests.helpers.layout import LayoutWriter


class CoreOnly(StorageDriver):
    """A filesystem driver seen through the core operations only: no capability (no timed
    listing, no batched reads, no directory times), as a driver that offers nothing else."""

    name = "core-only"

    def __init__(self, inner: FilesystemDriver) -> None:
        self.inner = inner

    async def get_content(self, path: str, *, limit: int | None = None) -> bytes:
        return await self.inner.get_content(path, limit=limit)

    async def put_content(self, path: str, data: bytes) -> None:
        await self.inner.put_content(path, data)

    def reader(self, path: str, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        return self.inner.reader(path, offset, length)

    async def writer(self, path: str, *, append: bool = False) -> FileWriter:
        return await self.inner.writer(path, append=append)

    async def stat(self, path: str) -> FileInfo:
        return await self.inner.stat(path)

    async def list(self, path: str) -> list[str]:
        return await self.inner.list(path)

    async def move(self, source: str, dest: str) -> None:
        await self.inner.move(source, dest)

    async def delete(self, path: str) -> None:
        await self.inner.delete(path)


def _config(writer: LayoutWriter, name: str, **fields: object) -> dict[str, object]:
    descriptor = writer.add_blob(name, json.dumps(fields).encode())
    descriptor["mediaType"] = "application/vnd.oci.image.config.v1+json"
    return descriptor


def _image(writer: LayoutWriter, name: str, label: str, *layers: bytes) -> bytes:
    config = _config(
        writer, name, architecture="arm64", os="linux", variant="v8", created=f"2024-{label}"
    )
    document = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config,
        "layers": [writer.add_blob(name, layer) for layer in layers],
    }
    return json.dumps(document).encode()


def _hard_tree(root: Path) -> None:
    """Two repositories over shared blobs; every case the module docstring lists."""
    writer = LayoutWriter(root)
    writer.ensure()
    layout = Layout(root)
    shared_layer = b"a layer both repositories hold" * 10
    one = writer.put("team/app", _image(writer, "team/app", "one", shared_layer), tag="one")
    writer.tag("team/app", "also-one", one)  # two tags, one digest
    two_body = _image(writer, "team/app", "two", shared_layer, b"second layer")
    two = writer.put("team/app", two_body, tag="two")
    # A tag pushed three times: its history holds three index links, its current the last.
    for label in ("h1", "h2"):
        old = writer.put("team/app", _image(writer, "team/app", label, label.encode()))
        writer.tag("team/app", "moving", old)
    writer.tag("team/app", "moving", two)
    # An index of both images (a platform each), tagged.
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {**writer.descriptor(one), "platform": {"os": "linux", "architecture": "arm64"}},
            {**writer.descriptor(two), "platform": {"os": "unknown", "architecture": "unknown"}},
        ],
    }
    writer.put("team/app", json.dumps(index).encode(), tag="multi")
    # An artifact with a subject; an image whose layer blob is gone; one whose config is gone.
    artifact = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.example.sbom",
        "config": {
            "mediaType": "application/vnd.oci.empty.v1+json",
            "digest": writer.blob(b"{}"),
            "size": 2,
        },
        "layers": [writer.add_blob("team/app", b"sbom")],
        "subject": writer.descriptor(one),
    }
    writer.put("team/app", json.dumps(artifact).encode(), tag="sbom")
    lost_layer = b"a layer GC took"
    no_layer = writer.put("team/app", _image(writer, "team/app", "nl", lost_layer), tag="no-layer")
    layout.blob_data(writer.blob(lost_layer)).unlink()
    no_config_body = _image(writer, "team/app", "nc", b"its layer")
    writer.put("team/app", no_config_body, tag="no-config")
    layout.blob_data(json.loads(no_config_body)["config"]["digest"]).unlink()
    # A tag naming a manifest that is nowhere (no blob, no revision link).
    writer.tag("team/app", "dangling", "sha256:" + "d" * 64)
    # A tag directory whose current/link a killed push never wrote (its history only).
    ghost = layout.tag_index_link("team/app", "ghost", one)
    ghost.parent.mkdir(parents=True)
    ghost.write_text(one)
    # An untagged revision whose manifest blob is gone; an untagged one that is there.
    gone = writer.put("team/app", _image(writer, "team/app", "gone", b"gone layer"))
    layout.blob_data(gone).unlink()
    writer.put("team/app", _image(writer, "team/app", "untagged", b"untagged layer"))
    # Not a digest in a link: no tag.
    writer.tag("team/app", "garbage", one)
    layout.tag_current_link("team/app", "garbage").write_text("not a digest")
    # The second repository shares the first's blobs and manifest.
    writer.link("other/app", writer.blob(shared_layer))
    writer.put("other/app", one_body := writer.read_blob(one), tag="latest")
    assert writer.put("other/app", one_body) == one
    writer.put("other/app", writer.read_blob(no_layer), tag="broken")
    # Distinct times, so that a time taken from the wrong file shows.
    for number, path in enumerate(sorted((root / "docker").rglob("link"))):
        when = 1_600_000_000 + number * 3600
        os.utime(path, (when, when))


async def _documents(root: Path) -> list[dict[str, Any] | None]:
    fast = driver_storage(FilesystemDriver(root))
    core = driver_storage(CoreOnly(FilesystemDriver(root)))
    try:
        for store in (fast, core):
            store.pulls.record("team/app", "sha256:" + "d" * 64, 1_700_000_000.0)
        pulled = (await fast.resolve("team/app", "two"), 1_700_000_100.0)
        for store in (fast, core):
            store.pulls.record("team/app", *pulled)
        return [
            await store.describe_repository(name)
            for name in ("team/app", "other/app", "no/such")
            for store in (fast, core)
        ]
    finally:
        await fast.close()
        await core.close()


def test_the_filesystems_shortcuts_read_the_same_document_as_the_core_operations(
    tmp_path: Path,
) -> None:
    _hard_tree(tmp_path)
    app_fast, app_core, other_fast, other_core, none_fast, none_core = asyncio.run(
        _documents(tmp_path)
    )
    assert app_fast == app_core
    assert other_fast == other_core
    assert none_fast is None and none_core is None
    # What the tree holds is in it (the comparison is not between two empty documents).
    assert app_fast is not None and other_fast is not None
    tags = {t["tag"]: t for t in app_fast["tags"]}
    assert sorted(tags) == [
        "also-one",
        "dangling",
        "moving",
        "multi",
        "no-config",
        "no-layer",
        "one",
        "sbom",
        "two",
    ]
    assert tags["moving"]["digest"] == tags["two"]["digest"]
    assert tags["two"]["pulled"] is not None
    by_digest = {m["digest"]: m for m in app_fast["manifests"]}
    assert tags["dangling"]["digest"] not in by_digest
    # one, two, h1, h2, multi, sbom, nl, nc, untagged; not the revision whose blob is gone
    assert len(by_digest) == 9
    sizes = [b["size"] for m in by_digest.values() for b in m["blobs"]]
    assert sizes.count(None) >= 2  # the layer and the config that are gone
    assert [t["tag"] for t in other_fast["tags"]] == ["broken", "latest"]


def test_a_repository_with_a_tags_directory_only_is_one(tmp_path: Path) -> None:
    """A repository whose only tag lost its ``current/link`` (a killed push) is still one:
    an empty document, not NAME_UNKNOWN, whichever way it is read."""
    writer = LayoutWriter(tmp_path)
    writer.ensure()
    ghost = Layout(tmp_path).tag_index_link("lone/app", "ghost", "sha256:" + "e" * 64)
    ghost.parent.mkdir(parents=True)
    ghost.write_text("sha256:" + "e" * 64)
    fast, core = asyncio.run(_one(tmp_path, "lone/app"))
    assert fast == core == {"name": "lone/app", "tags": [], "manifests": []}
    shutil.rmtree(tmp_path / "docker" / "registry" / "v2" / "repositories" / "lone")
    assert asyncio.run(_one(tmp_path, "lone/app")) == [None, None]


async def _one(root: Path, name: str) -> list[dict[str, Any] | None]:
    stores = [
        driver_storage(FilesystemDriver(root)),
        driver_storage(CoreOnly(FilesystemDriver(root))),
    ]
    try:
        return [await store.describe_repository(name) for store in stores]
    finally:
        for store in stores:
            await store.close()


def test_the_document_reads_no_tags_history(tmp_path: Path, monkeypatch: Any) -> None:
    """A tag pushed a hundred times has a hundred history directories (``index/<alg>/<hex>``):
    the document needs none of them, and the filesystem's walk opens none (it opened three per
    push: 10,000 tags took seconds more)."""
    writer = LayoutWriter(tmp_path)
    writer.ensure()
    for number in range(100):
        digest = writer.put("team/app", _image(writer, "team/app", f"p{number}", b"layer"))
        writer.tag("team/app", "latest", digest)
    opened: list[str] = []
    scandir = os.scandir

    def counted(path: Any) -> Any:
        opened.append(os.fspath(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", counted)
    fast, core = asyncio.run(_one(tmp_path, "team/app"))
    monkeypatch.undo()
    assert fast == core
    assert fast is not None and [t["tag"] for t in fast["tags"]] == ["latest"]
    assert len(fast["manifests"]) == 100
    assert opened, "the walk went through os.scandir"
    assert [path for path in opened if "/index" in path] == []
