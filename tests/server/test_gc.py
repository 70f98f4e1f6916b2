"""Garbage collection where regtui must be safer than Distribution.

Data directories are written by Debian's ``docker-registry`` (a real server on loopback), then
collected offline by :func:`embedded_registry.gc.collect_garbage`, then served again.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml

from embedded_registry.gc import UPLOAD_MAX_IDLE, collect_garbage
from embedded_registry.storage.paths import Layout
from tests.helpers.images import make_artifact, make_image, make_index, push_image
from tests.helpers.servers import distribution_config, distribution_registry, require_tool
from tui.imagegen import OCI_INDEX, OCI_MANIFEST

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]

ACCEPT = f"{OCI_MANIFEST}, {OCI_INDEX}"
LATER = 10 * 3600.0  # "now" for runs that must see everything as older than the grace period


def _multi_platform(root: Path) -> tuple[str, list[str], str]:
    """A tagged two-platform index, a signature of it, and an untagged stray image."""
    amd = make_image([{"arch": b"amd64"}], architecture="amd64")
    arm = make_image([{"arch": b"arm64"}], architecture="arm64", variant="v8")
    index = make_index([amd, arm])
    signature = make_artifact(index)
    stray = make_image([{"stray": b"untagged" * 50}])
    with distribution_registry(root) as dist:
        push_image(dist.url, "multi", "v1", index)
        push_image(dist.url, "multi", None, signature)
        push_image(dist.url, "multi", None, stray)
    return index.digest, [amd.digest, arm.digest, signature.digest], stray.digest


def test_tagged_index_keeps_both_platforms_under_delete_untagged(tmp_path: Path) -> None:
    root = tmp_path / "root"
    index, kept, stray = _multi_platform(root)

    report = collect_garbage(root, delete_untagged=True, grace_period=0)

    removed_manifests = {r.digest for r in report.removals if r.kind == "manifest"}
    assert removed_manifests == {stray}
    assert stray in report.eligible_blobs
    assert not set(report.eligible_blobs) & {index, *kept}
    layout = Layout(root)
    for digest in [index, *kept]:
        assert layout.revision_link("multi", digest).exists()
    assert not layout.revision_link("multi", stray).exists()
    with distribution_registry(root) as dist, httpx.Client(base_url=dist.url, timeout=30) as c:
        doc = c.get("/v2/multi/manifests/v1", headers={"Accept": ACCEPT}).json()
        for child in doc["manifests"]:
            manifest = c.get(f"/v2/multi/manifests/{child['digest']}", headers={"Accept": ACCEPT})
            assert manifest.status_code == 200
            for layer in manifest.json()["layers"]:
                assert c.get(f"/v2/multi/blobs/{layer['digest']}").status_code == 200
        # The signature (an untagged referrer of the kept index) survived with its payload.
        signature = c.get(f"/v2/multi/manifests/{kept[2]}", headers={"Accept": ACCEPT})
        assert signature.status_code == 200
        payload = signature.json()["layers"][0]["digest"]
        assert c.get(f"/v2/multi/blobs/{payload}").status_code == 200


def test_distribution_would_drop_the_platforms_regtui_keeps(tmp_path: Path) -> None:
    """The reason for the difference: Distribution 2.8 names the children (distribution#3004)."""
    binary = require_tool("docker-registry")
    root = tmp_path / "root"
    _index, kept, _stray = _multi_platform(root)
    config = tmp_path / "gc.yml"
    config.write_text(yaml.safe_dump(distribution_config(root, 5000)))
    out = subprocess.run(
        [binary, "garbage-collect", "--dry-run", "--delete-untagged", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    theirs = set(re.findall(r"manifest eligible for deletion: (sha256:\w+)", out))
    assert set(kept[:2]) <= theirs


def test_truncated_manifest_and_dangling_links_do_not_abort(tmp_path: Path) -> None:
    root = tmp_path / "root"
    broken = make_image([{"broken": b"will be truncated"}])
    fine = make_image([{"fine": b"ok"}])
    deleted = make_image([{"deleted": b"x" * 4000}])
    with distribution_registry(root) as dist:
        push_image(dist.url, "broken", "v1", broken)
        push_image(dist.url, "fine", "v1", fine)
        push_image(dist.url, "fine", "old", deleted)
        response = httpx.delete(f"{dist.url}/v2/fine/manifests/{deleted.digest}")
        assert response.status_code == 202
    layout = Layout(root)
    data = layout.blob_data(broken.digest)
    data.write_bytes(data.read_bytes()[:40])
    missing = "sha256:" + "ab" * 32
    for link in (layout.layer_link("fine", missing), layout.revision_link("fine", missing)):
        link.parent.mkdir(parents=True)
        link.write_text(missing)

    dry = collect_garbage(root, dry_run=True, grace_period=0)
    report = collect_garbage(root, grace_period=0)

    assert [(p.repo, p.digest) for p in report.problems] == [("broken", broken.digest)]
    assert "not JSON" in report.problems[0].message
    # The broken repository keeps every blob it links; the deleted image's blobs go.
    assert set(report.eligible_blobs) == {
        deleted.manifest.digest,
        *(b.digest for b in deleted.blobs()),
    }
    assert dry.eligible_blobs == report.eligible_blobs
    for blob in broken.blobs():
        assert layout.blob_data(blob.digest).exists()
    assert not layout.layer_link("fine", missing).parent.exists()
    assert [r.digest for r in report.removals if r.kind == "layer_link"].count(missing) == 1


def test_nothing_younger_than_the_grace_period_goes(tmp_path: Path) -> None:
    root = tmp_path / "root"
    image = make_image([{"old": b"tagged"}])
    unreferenced = make_image([{"young": b"blob without manifest yet"}])
    with distribution_registry(root) as dist:
        push_image(dist.url, "app", "v1", image)
        untagged = push_image(dist.url, "app", None, make_image([{"untagged": b"u"}]))
        with httpx.Client(base_url=dist.url) as client:
            for blob in unreferenced.blobs():  # uploaded, manifest not pushed yet
                start = client.post("/v2/app/blobs/uploads/")
                done = client.put(
                    start.headers["Location"] + f"&digest={blob.digest}", content=blob.data
                )
                assert done.status_code == 201
            assert client.post("/v2/app/blobs/uploads/").status_code == 202  # left open

    young = collect_garbage(root, dry_run=True, delete_untagged=True)  # default grace: 1 h
    assert young.removals == []
    assert young.kept_young_blobs == len(unreferenced.blobs())
    assert Layout(root).revision_link("app", untagged).exists()  # may be a child in flight

    later = collect_garbage(root, delete_untagged=True, now=time.time() + LATER)
    assert sorted({r.kind for r in later.removals}) == ["blob", "layer_link", "manifest"]
    assert [r.digest for r in later.removals if r.kind == "manifest"] == [untagged]
    assert {b.digest for b in unreferenced.blobs()} <= set(later.eligible_blobs)
    # An upload session is a push that may resume: only an abandoned one (idle for upload
    # purging's age, 168 h) goes.
    assert len(list(Layout(root).uploads_dir("app").iterdir())) == 1
    abandoned = collect_garbage(root, now=time.time() + UPLOAD_MAX_IDLE + LATER)
    assert [r.kind for r in abandoned.removals] == ["upload"]
    assert not any(Layout(root).uploads_dir("app").iterdir())


def test_report_is_json(tmp_path: Path) -> None:
    root = tmp_path / "root"
    with distribution_registry(root) as dist:
        push_image(dist.url, "app", "v1", make_image([{"a": b"1"}]))
        push_image(dist.url, "app", "v1", make_image([{"a": b"2"}]))
    report = collect_garbage(root, dry_run=True, grace_period=0)
    doc = json.loads(json.dumps(report.to_json()))
    assert doc["dry_run"] is True
    assert doc["eligible_blobs"] == 0  # the moved tag's old revision still marks its blobs
    untagged = collect_garbage(root, dry_run=True, delete_untagged=True, grace_period=0).to_json()
    assert untagged["eligible_blobs"] == 3
    assert untagged["blob_bytes"] == sum(
        r["size"] for r in untagged["removals"] if r["kind"] == "blob"
    )
    assert os.path.isdir(root)
