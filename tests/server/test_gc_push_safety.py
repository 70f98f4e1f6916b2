"""GC never breaks a push in flight, and frees a deleted image at once when nothing is pushed.

The bundled registry runs as a child process on loopback (real sockets, real files). Where a
race must be forced at one exact instant, a hook in this process drives the real storage and
sweep code (no sleeps, no timing).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from embedded_registry.gc import collect_garbage, execute, mark, plan, scan_root
from embedded_registry.gc import removal as gc_removal
from embedded_registry.gc.sweep import REFRESHED
from embedded_registry.storage.driver import filesystem as filesystem_driver
from embedded_registry.storage.driver.filesystem import FilesystemDriver
from embedded_registry.storage.paths import KEYS, Layout
from tests.helpers.images import make_image, push_image
from tests.helpers.servers import RunningRegistry, bundled_registry
from tests.helpers.spec import blob_on_disk, upload_files

pytestmark = pytest.mark.timeout(120)

HOURS = 3600.0
OCTETS = {"Content-Type": "application/octet-stream"}


def _age(root: Path, seconds: float) -> None:
    then = time.time() - seconds
    for dirpath, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            os.utime(os.path.join(dirpath, name), (then, then))


def _gc(registry: RunningRegistry, **options: Any) -> dict[str, Any]:
    response = httpx.post(
        f"{registry.url}/v2/_regtui/ext/gc",
        json=options,
        headers=registry.admin_headers(),
        timeout=60,
    )
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


def _removed_blobs(report: dict[str, Any]) -> set[str]:
    return {r["digest"] for r in report["removed"] if r["kind"] == "blob"}


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _start_chunked(client: httpx.Client, repo: str, first: bytes) -> str:
    """POST an upload and PATCH its first chunk; the Location to go on with."""
    started = client.post(f"/v2/{repo}/blobs/uploads/")
    assert started.status_code == 202, started.text
    patched = client.patch(
        started.headers["Location"],
        content=first,
        headers={**OCTETS, "Content-Range": f"0-{len(first) - 1}"},
    )
    assert patched.status_code == 202, patched.text
    return str(patched.headers["Location"])


def _finish_chunked(
    client: httpx.Client, location: str, offset: int, rest: bytes, digest: str
) -> None:
    patched = client.patch(
        location,
        content=rest,
        headers={**OCTETS, "Content-Range": f"{offset}-{offset + len(rest) - 1}"},
    )
    assert patched.status_code == 202, patched.text
    separator = "&" if "?" in patched.headers["Location"] else "?"
    done = client.put(f"{patched.headers['Location']}{separator}digest={digest}")
    assert done.status_code == 201, done.text


def test_an_open_upload_survives_gc_with_grace_zero(registry: RunningRegistry) -> None:
    """Grace 0 and an upload session idle for two hours: still a push that may resume."""
    data = os.urandom(300_000)
    with httpx.Client(base_url=registry.url, timeout=30) as client:
        location = _start_chunked(client, "slow", data[:100_000])
        _age(registry.root / "docker", 2 * HOURS)
        report = _gc(registry, dry_run=False, grace_period=0)
        assert not [r for r in report["removals"] if r["kind"] == "upload"]
        assert upload_files(registry.root), "the upload session was swept"
        _finish_chunked(client, location, 100_000, data[100_000:], _sha256(data))
        assert client.get(f"/v2/slow/blobs/{_sha256(data)}").content == data


def test_delete_then_gc_frees_at_once_while_a_chunked_push_goes_on(
    registry: RunningRegistry,
) -> None:
    """The seeds' flow with the default configuration (grace 1 h): delete an image, collect,
    and its blobs are gone from the disk at once; a push in flight in another repository (its
    config uploaded, its layer half way through a chunked upload) survives and completes."""
    deleted = make_image([{"deleted/file": b"freed at once" * 2000}])
    push_image(registry.url, "seeds", "old", deleted)
    incoming = make_image([{"incoming/file": os.urandom(200_000)}])
    layer = incoming.layers[0]
    with httpx.Client(base_url=registry.url, timeout=30) as client:
        assert client.delete(f"/v2/seeds/manifests/{deleted.digest}").status_code == 202
        # The push in flight: its config is uploaded, its layer is half way.
        start = client.post(
            f"/v2/incoming/blobs/uploads/?digest={incoming.config.digest}",
            content=incoming.config.data,
            headers=OCTETS,
        )
        assert start.status_code == 201, start.text
        half = len(layer.data) // 2
        location = _start_chunked(client, "incoming", layer.data[:half])

        report = _gc(registry, dry_run=False)  # the server's default grace period

        assert report["grace_period"] == 3600.0
        assert _removed_blobs(report) == {deleted.digest, *(b.digest for b in deleted.blobs())}
        for blob in [deleted.manifest, *deleted.blobs()]:
            assert not blob_on_disk(registry.root, blob.digest).exists()
        assert blob_on_disk(registry.root, incoming.config.digest).exists()

        _finish_chunked(client, location, half, layer.data[half:], layer.digest)
        push_image(client, "incoming", "v1", incoming)  # blobs there: only the manifest goes
        for blob in incoming.blobs():
            got = client.get(f"/v2/incoming/blobs/{blob.digest}")
            assert got.status_code == 200 and _sha256(got.content) == blob.digest
        assert client.get("/v2/incoming/manifests/v1").status_code == 200


def test_a_push_in_flight_in_the_same_repository_keeps_its_young_blobs(
    registry: RunningRegistry,
) -> None:
    """An upload session in a repository: its young unreferenced blobs stay (they may be the
    push's), until the grace period is over or an operator asks for grace 0."""
    deleted = make_image([{"deleted": b"d" * 5000}])
    push_image(registry.url, "app", "old", deleted)
    with httpx.Client(base_url=registry.url, timeout=30) as client:
        assert client.delete(f"/v2/app/manifests/{deleted.digest}").status_code == 202
        _start_chunked(client, "app", b"a push going on")
        kept = _gc(registry, dry_run=False)
        assert _removed_blobs(kept) == set() and kept["kept_young_blobs"] == 3
        zero = _gc(registry, dry_run=False, grace_period=0)
        assert _removed_blobs(zero) == {deleted.digest, *(b.digest for b in deleted.blobs())}
        assert upload_files(registry.root), "grace 0 never sweeps an upload session"


def test_a_blob_uploaded_after_the_last_commit_is_kept(registry: RunningRegistry) -> None:
    """No session open, but a blob finished after its repository's last commit: the manifest
    naming it may come next. A blob of a deleted image, uploaded before the delete, goes."""
    deleted = make_image([{"deleted": b"x" * 4000}])
    push_image(registry.url, "app", "old", deleted)
    with httpx.Client(base_url=registry.url, timeout=30) as client:
        assert client.delete(f"/v2/app/manifests/{deleted.digest}").status_code == 202
        pending = b"uploaded, manifest not pushed yet" * 100
        response = client.post(
            f"/v2/app/blobs/uploads/?digest={_sha256(pending)}", content=pending, headers=OCTETS
        )
        assert response.status_code == 201
        report = _gc(registry, dry_run=False)
        assert _sha256(pending) not in _removed_blobs(report)
        assert deleted.layers[0].digest in _removed_blobs(report)
        assert client.get(f"/v2/app/blobs/{_sha256(pending)}").content == pending


def test_the_sweep_keeps_a_blob_pushed_again_between_its_check_and_its_removal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last check of a blob renames its data aside; an upload that commits the same blob
    right then puts a fresh ``data`` in the directory, which the removal must leave alone."""
    root = tmp_path / "root"
    image = make_image([{"layer": b"pushed again" * 500}])
    with bundled_registry(root) as registry:
        push_image(registry.url, "app", "v1", image)
        assert httpx.delete(f"{registry.url}/v2/app/manifests/{image.digest}").status_code == 202
    _age(root / "docker", 2 * HOURS)
    layer = image.layers[0]
    now = time.time()
    snapshot = scan_root(root)
    marks = mark(snapshot, delete_untagged=False, now=now, grace=HOURS)
    removals, _ = plan(
        snapshot, marks, delete_untagged=False, remove_empty_repos=False, now=now, grace=HOURS
    )
    assert layer.digest in {r.digest for r in removals if r.kind == "blob"}
    real_remove = gc_removal._remove_only
    data = Layout(root).blob_data(layer.digest)

    def then_pushed_again(driver: Any, aside: str, live: str) -> bool:
        if live == KEYS.blob_data(layer.digest):
            # The data was renamed aside and checked: an upload of the same bytes commits
            # now, renaming its file into place as the registry does.
            source = tmp_path / "upload-data"
            source.write_bytes(layer.data)
            os.replace(source, data)
        return real_remove(driver, aside, live)

    monkeypatch.setattr(gc_removal, "_remove_only", then_pushed_again)
    problems: list[Any] = []
    asyncio.run(execute(snapshot, removals, problems, now - HOURS))

    assert not problems
    assert data.read_bytes() == layer.data
    planned = next(r for r in removals if r.digest == layer.digest and r.kind == "blob")
    assert planned.skipped == REFRESHED and not planned.removed
    assert Layout(root).blob_data(image.config.digest).exists() is False


def test_a_blob_commit_recreates_the_directory_gc_just_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GC removes a blob's emptied directory between the upload's mkdir and its rename: the
    upload makes it again and succeeds (a PUT never answers 500 because GC ran)."""
    driver = FilesystemDriver(tmp_path / "root")
    data = b"committed while GC sweeps"
    digest = _sha256(data)
    target = Layout(tmp_path / "root").blob_data(digest)
    target.parent.mkdir(parents=True)
    real_replace = os.replace
    calls: list[str] = []

    def gc_removes_the_directory_first(source: Any, destination: Any) -> None:
        if str(destination) == str(target) and not calls:
            calls.append("gc")
            os.rmdir(target.parent)  # what the sweep does to an emptied blob directory
        real_replace(source, destination)

    monkeypatch.setattr(filesystem_driver.os, "replace", gc_removes_the_directory_first)
    upload = "/docker/registry/v2/repositories/app/_uploads/u1/data"
    asyncio.run(driver.put_content(upload, data))
    asyncio.run(driver.move(upload, KEYS.blob_data(digest)))
    assert calls == ["gc"]
    assert target.read_bytes() == data


def test_gc_with_grace_zero_leaves_the_upload_and_cleans_stale_temp_files(tmp_path: Path) -> None:
    """Temporary files of killed atomic writes go once old; a fresh one (a write in flight)
    stays."""
    root = tmp_path / "root"
    image = make_image([{"t": b"t"}])
    with bundled_registry(root) as registry:
        push_image(registry.url, "app", "v1", image)
    layout = Layout(root)
    current = layout.tag_current_link("app", "v1").parent
    stale = current / ".tmp-killed"
    stale.write_bytes(b"sha256:")
    fresh = layout.blob_data(image.config.digest).parent / ".tmp-inflight"
    fresh.write_bytes(b"{")
    then = time.time() - 2 * HOURS
    os.utime(stale, (then, then))
    collect_garbage(root, grace_period=0)
    assert not stale.exists()
    assert fresh.exists()


def test_a_link_rewritten_by_an_upload_during_the_sweep_stays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ``_layers`` link whose blob is gone is planned for removal; an upload of that blob
    commits and links it right after the sweep's last look for the blob. The link must
    survive (the blob is served in its repository afterwards)."""
    root = tmp_path / "root"
    image = make_image([{"layer": b"linked again" * 300}])
    with bundled_registry(root) as registry:
        push_image(registry.url, "app", "v1", image)
        assert httpx.delete(f"{registry.url}/v2/app/manifests/{image.digest}").status_code == 202
    layer = image.layers[0]
    layout = Layout(root)
    for blob in image.blobs():  # the blobs went in an earlier GC; their links stayed
        gone = layout.blob_data(blob.digest)
        gone.unlink()
        gone.parent.rmdir()
    _age(root / "docker", 2 * HOURS)
    now = time.time()
    snapshot = scan_root(root)
    marks = mark(snapshot, delete_untagged=False, now=now, grace=HOURS)
    removals, _ = plan(
        snapshot, marks, delete_untagged=False, remove_empty_repos=False, now=now, grace=HOURS
    )
    assert layer.digest in {r.digest for r in removals if r.kind == "layer_link"}
    real_stat = FilesystemDriver.stat_now
    layer_data = KEYS.blob_data(layer.digest)
    link = layout.layer_link("app", layer.digest)

    def upload_right_after_the_check(driver: FilesystemDriver, path: str) -> Any:
        found = real_stat(driver, path)
        if path == layer_data and found is None:
            # The sweep has just seen no blob: the upload commits and links it now.
            layout.blob_data(layer.digest).parent.mkdir(parents=True)
            layout.blob_data(layer.digest).write_bytes(layer.data)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.write_text(layer.digest)
        return found

    monkeypatch.setattr(FilesystemDriver, "stat_now", upload_right_after_the_check)
    problems: list[Any] = []
    asyncio.run(execute(snapshot, removals, problems, now - HOURS))
    monkeypatch.undo()

    assert not problems
    assert link.read_text() == layer.digest
    assert layout.blob_data(layer.digest).read_bytes() == layer.data
    assert not layout.layer_link("app", image.config.digest).exists()
