"""The storage report of a data directory written by Debian's ``docker-registry``.

Every number is checked against what the test itself pushed (the images are built in memory, so
their sizes are known) and against a GC dry run on the same directory.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from embedded_registry.gc import collect_garbage
from embedded_registry.usage import storage_usage
from tests.helpers.images import Image, make_image, make_layer, push_image
from tests.helpers.servers import distribution_registry

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]


def _blobs(*images: Image) -> dict[str, int]:
    return {b.digest: b.size for image in images for b in (image.manifest, *image.blobs())}


@dataclass
class Scenario:
    root: Path
    web1: Image
    web2: Image
    db: Image
    gone: Image


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    root = tmp_path_factory.mktemp("usage") / "root"
    base = make_layer({"base/file": b"shared" * 1000})
    web1 = make_image([base, {"web": b"1" * 300}])
    web2 = make_image([base, {"web": b"2" * 700}])
    db = make_image([base, {"db": b"d" * 2000}], oci=False)
    gone = make_image([{"gone": b"g" * 900}])
    with distribution_registry(root) as dist:
        push_image(dist.url, "web", "v1", web1)
        push_image(dist.url, "web", "v2", web2)
        push_image(dist.url, "web", "v2", web1)  # v2 moves: web2 is now untagged
        push_image(dist.url, "db", "v1", db)
        push_image(dist.url, "db", "tmp", gone)
        response = httpx.delete(f"{dist.url}/v2/db/manifests/{gone.digest}")
        assert response.status_code == 202
        opened = httpx.post(f"{dist.url}/v2/db/blobs/uploads/")
        assert opened.status_code == 202
        patched = httpx.patch(
            httpx.URL(dist.url).join(opened.headers["Location"]),
            content=b"partial upload",
            headers={"Content-Type": "application/octet-stream"},
        )
        assert patched.status_code == 202
    return Scenario(root, web1, web2, db, gone)


def test_every_byte_is_counted_once(scenario: Scenario) -> None:
    root = scenario.root
    web1, web2, db, gone = scenario.web1, scenario.web2, scenario.db, scenario.gone
    every = _blobs(web1, web2, db, gone)

    report = storage_usage(root, grace_period=0)

    assert report.blob_count == len(every)
    assert report.total_bytes == sum(every.values())
    assert sum(report.bytes_by_kind.values()) == report.total_bytes
    assert sum(report.blobs_by_kind.values()) == report.blob_count
    manifests = [i.manifest for i in (web1, web2, db)]
    assert report.bytes_by_kind["manifests"] == sum(m.size for m in manifests)
    configs = [i.config for i in (web1, web2, db)]
    assert report.bytes_by_kind["configs"] == sum(c.size for c in configs)
    assert report.bytes_by_kind["unreferenced"] == sum(_blobs(gone).values())

    repos = {r.name: r for r in report.repositories}
    assert sorted(repos) == ["db", "web"]
    web_blobs = _blobs(web1, web2)
    db_blobs = _blobs(db)
    assert repos["web"].referenced_bytes == sum(web_blobs.values())
    assert repos["db"].referenced_bytes == sum(db_blobs.values())
    shared = set(web_blobs) & set(db_blobs)
    assert len(shared) == 1  # the base layer
    assert repos["web"].exclusive_bytes == sum(v for d, v in web_blobs.items() if d not in shared)
    assert repos["db"].exclusive_bytes == sum(v for d, v in db_blobs.items() if d not in shared)
    assert (repos["web"].manifests, repos["web"].tags) == (2, 2)


def test_reclaimable_bytes_agree_with_a_gc_dry_run(scenario: Scenario) -> None:
    root = scenario.root
    report = storage_usage(root, grace_period=0)
    plain = collect_garbage(root, dry_run=True, grace_period=0)
    untagged = collect_garbage(root, dry_run=True, delete_untagged=True, grace_period=0)

    assert report.reclaimable_bytes == plain.blob_bytes > 0
    assert report.reclaimable_blobs == len(plain.eligible_blobs)
    assert report.reclaimable_bytes_untagged == untagged.blob_bytes > plain.blob_bytes
    web2 = scenario.web2
    only_web2 = {web2.manifest.digest, web2.config.digest, web2.layers[1].digest}
    assert set(untagged.eligible_blobs) - set(plain.eligible_blobs) == only_web2


def test_uploads_are_in_progress_then_stale(scenario: Scenario) -> None:
    root = scenario.root
    uploads = root / "docker/registry/v2/repositories/db/_uploads"
    (upload_dir,) = uploads.iterdir()
    on_disk = sum(f.stat().st_size for f in upload_dir.rglob("*") if f.is_file())
    assert (upload_dir / "data").stat().st_size == 14  # plus startedat and hash states
    fresh = storage_usage(root)  # default grace period: one hour
    assert [(u.repo, u.upload_id, u.bytes, u.stale) for u in fresh.uploads] == [
        ("db", upload_dir.name, on_disk, False)
    ]
    assert fresh.upload_bytes == on_disk and fresh.stale_upload_bytes == 0
    assert fresh.reclaimable_bytes == 0  # everything is younger than the grace period

    later = storage_usage(root, now=time.time() + 7200)
    assert later.stale_upload_bytes == on_disk
    assert later.uploads[0].idle_seconds >= 7200
    assert json.loads(json.dumps(later.to_json()))["stale_upload_bytes"] == on_disk


def test_the_grace_period_alone_keeps_the_young_garbage(scenario: Scenario) -> None:
    """The grace period keeps young garbage only where a push may be in flight: ``db`` has an
    open upload session, so its deleted image stays; ``web`` has none, so its untagged web2 is
    reclaimable at once."""
    root = scenario.root
    fresh = storage_usage(root)  # default grace period: one hour, everything is younger
    bare = storage_usage(root, grace_period=0)
    assert fresh.reclaimable_bytes == 0
    web2 = scenario.web2
    untagged = {b.digest: b.size for b in (web2.manifest, web2.config, web2.layers[1])}
    assert fresh.reclaimable_blobs_untagged == len(untagged)
    assert fresh.reclaimable_bytes_untagged == sum(untagged.values())
    # Kept only by the grace period: the deleted manifest's image, beside the open upload.
    expected = _blobs(scenario.gone)
    assert fresh.protected_young_blobs == len(expected)
    assert fresh.protected_young_bytes == sum(expected.values())
    assert fresh.protected_young_bytes + fresh.reclaimable_bytes_untagged == (
        bare.reclaimable_bytes_untagged
    )
    assert (bare.protected_young_bytes, bare.protected_young_blobs) == (0, 0)
    later = storage_usage(root, now=time.time() + 7200)
    assert (later.protected_young_bytes, later.protected_young_blobs) == (0, 0)
    assert later.reclaimable_bytes_untagged == bare.reclaimable_bytes_untagged
    assert fresh.to_json()["protected_young_bytes"] == fresh.protected_young_bytes
