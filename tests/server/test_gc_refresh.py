"""GC's online safety gap closed: a blob a client was just told about is not swept.

A client HEADs a blob that nothing references, sees 200 and skips its upload; the manifest it
pushes next names that blob. The registry refreshes a served blob's mtime (throttled to once per
tenth of the grace period) and the sweep checks each blob's mtime again right before removing it.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import httpx
import pytest

from embedded_registry.gc import execute, mark, plan, scan_root
from embedded_registry.gc.sweep import REFRESHED, SWEEPING_SUFFIX
from embedded_registry.storage.paths import Layout
from tests.helpers.images import Image, make_image, push_image
from tests.helpers.servers import RunningRegistry, bundled_registry

pytestmark = pytest.mark.timeout(120)

HOURS = 3600.0


def _age(root: Path, seconds: float) -> None:
    then = time.time() - seconds
    for dirpath, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            os.utime(os.path.join(dirpath, name), (then, then))


def _orphan(registry: RunningRegistry, repo: str, image: Image) -> None:
    """Push ``image`` and delete its manifest: its blobs stay linked, referenced by nothing."""
    push_image(registry.url, repo, "t", image)
    with httpx.Client(base_url=registry.url) as c:
        assert c.delete(f"/v2/{repo}/manifests/{image.digest}").status_code == 202


def _gc(registry: RunningRegistry, **options: object) -> dict[str, object]:
    with httpx.Client(base_url=registry.url, timeout=60, headers=registry.admin_headers()) as c:
        response = c.post("/v2/_regtui/ext/gc", json=options)
    assert response.status_code == 200, response.text
    document: dict[str, object] = response.json()
    return document


def _blob_removals(report: dict[str, object]) -> set[str]:
    removed = report["removed"]
    assert isinstance(removed, list)
    return {r["digest"] for r in removed if r["kind"] == "blob"}


def test_a_head_between_dry_run_and_real_run_saves_the_blob(registry: RunningRegistry) -> None:
    image = make_image([{"layer": b"L" * 4000}])
    _orphan(registry, "app", image)
    _age(registry.root / "docker", 2 * HOURS)
    layer = image.layers[0].digest

    dry = _gc(registry, dry_run=True)  # the server's grace period: 1 h
    assert layer in _blob_removals(dry)

    with httpx.Client(base_url=registry.url) as c:
        assert c.head(f"/v2/app/blobs/{layer}").status_code == 200
    real = _gc(registry, dry_run=False)

    assert layer not in _blob_removals(real)
    assert image.config.digest in _blob_removals(real)  # not asked for: swept
    assert real["kept_young_blobs"] == 1
    with httpx.Client(base_url=registry.url) as c:
        got = c.get(f"/v2/app/blobs/{layer}")
        assert got.status_code == 200
        assert got.content == image.layers[0].data
        # The client's next step, the manifest PUT naming the blob, now succeeds.
        push_image(registry.url, "app", "again", image)
        assert c.get("/v2/app/manifests/again").status_code == 200


def test_with_grace_zero_a_head_deliberately_protects_nothing(registry: RunningRegistry) -> None:
    image = make_image([{"layer": b"Z" * 3000}])
    _orphan(registry, "app", image)
    _age(registry.root / "docker", 2 * HOURS)
    layer = image.layers[0].digest
    with httpx.Client(base_url=registry.url) as c:
        assert c.head(f"/v2/app/blobs/{layer}").status_code == 200

    real = _gc(registry, dry_run=False, grace_period=0)

    assert layer in _blob_removals(real)
    with httpx.Client(base_url=registry.url) as c:
        assert c.head(f"/v2/app/blobs/{layer}").status_code == 404


def test_refresh_is_throttled_to_once_a_second(tmp_path: Path) -> None:
    """A tenth of the grace period, at most one second: a HEAD a moment after a delete must
    move the blob's mtime past the repository's last commit (GC's push-activity rule)."""
    config = {"storage": {"maintenance": {"gc": {"graceperiod": "5s"}}}}
    with bundled_registry(tmp_path / "r", config=config) as registry:
        image = make_image([{"layer": b"T" * 2000}])
        push_image(registry.url, "app", "v1", image)
        layer = image.layers[0].digest
        data = Layout(registry.root).blob_data(layer)
        with httpx.Client(base_url=registry.url) as c:
            recent = time.time() - 0.3  # < 0.5 s, a tenth of the grace period: left alone
            os.utime(data, (recent, recent))
            assert c.head(f"/v2/app/blobs/{layer}").status_code == 200
            assert c.get(f"/v2/app/blobs/{layer}").status_code == 200
            assert data.stat().st_mtime == pytest.approx(recent, abs=1e-3)

            stale = time.time() - 2
            os.utime(data, (stale, stale))
            assert c.get(f"/v2/app/blobs/{layer}").content == image.layers[0].data
            assert data.stat().st_mtime > time.time() - 1.5
    with bundled_registry(tmp_path / "hour") as registry:  # default grace: one hour
        push_image(registry.url, "app", "v1", image)
        data = Layout(registry.root).blob_data(layer)
        stale = time.time() - 2  # older than one second: refreshed although 2 s << 360 s
        os.utime(data, (stale, stale))
        assert httpx.head(f"{registry.url}/v2/app/blobs/{layer}").status_code == 200
        assert data.stat().st_mtime > stale + 1


def test_a_mount_refreshes_the_blob(registry: RunningRegistry) -> None:
    image = make_image([{"layer": b"M" * 2000}])
    push_image(registry.url, "src", "v1", image)
    layer = image.layers[0].digest
    data = Layout(registry.root).blob_data(layer)
    stale = time.time() - 2 * HOURS
    os.utime(data, (stale, stale))
    with httpx.Client(base_url=registry.url) as c:
        response = c.post(f"/v2/dst/blobs/uploads/?mount={layer}&from=src")
    assert response.status_code == 201
    assert data.stat().st_mtime > time.time() - 60


def test_sweep_rechecks_each_blob_right_before_removing_it(tmp_path: Path) -> None:
    """A blob refreshed after the plan was made (between scan and sweep) is kept and reported,
    and so is the repository that links it; the rest of the plan is carried out."""
    root = tmp_path / "root"
    kept = make_image([{"kept": b"k" * 1500}])
    gone = make_image([{"gone": b"g" * 1500}])
    with bundled_registry(root) as registry:
        _orphan(registry, "only", kept)
        _orphan(registry, "other", gone)
    _age(root / "docker", 2 * HOURS)
    now = time.time()
    snapshot = scan_root(root)
    marks = mark(snapshot, delete_untagged=False, now=now, grace=HOURS)
    removals, _ = plan(
        snapshot, marks, delete_untagged=False, remove_empty_repos=True, now=now, grace=HOURS
    )
    layer = kept.layers[0].digest
    planned = {r.digest: r for r in removals if r.kind == "blob"}
    assert layer in planned and gone.layers[0].digest in planned

    os.utime(Layout(root).blob_data(layer))  # what a HEAD does meanwhile
    problems: list = []
    asyncio.run(execute(snapshot, removals, problems, now - HOURS))

    assert not problems
    assert planned[layer].skipped == REFRESHED and not planned[layer].removed
    assert planned[gone.layers[0].digest].removed
    layout = Layout(root)
    assert layout.blob_data(layer).read_bytes() == kept.layers[0].data
    assert not list(layout.blob_data(layer).parent.glob("*" + SWEEPING_SUFFIX))
    assert not layout.blob_data(gone.layers[0].digest).parent.exists()
    repositories = {r.repo: r for r in removals if r.kind == "repository"}
    assert repositories["only"].skipped == REFRESHED
    assert layout.layer_link("only", layer).exists()
    assert repositories["other"].removed


def test_an_interrupted_sweep_is_repaired_by_the_next_gc_and_by_a_server_start(
    tmp_path: Path,
) -> None:
    """A sweep killed between renaming a blob aside and putting it back leaves a journal; the
    next real GC, and a server start, put the blob back."""
    from embedded_registry.gc import collect_garbage
    from embedded_registry.gc.sweep import SWEEP_JOURNAL

    root = tmp_path / "registry"
    image = make_image([{"kept": b"K" * 3000}])
    with bundled_registry(root) as registry:
        push_image(registry.url, "app", "v1", image)
    layout = Layout(root)

    def interrupt() -> Path:
        data = layout.blob_data(image.layers[0].digest)
        data.rename(data.with_name("data" + SWEEPING_SUFFIX))
        (layout.v2 / SWEEP_JOURNAL).write_text("4242\n")
        return data

    data = interrupt()
    collect_garbage(root, grace_period=0)
    assert data.read_bytes() == image.layers[0].data
    assert not (layout.v2 / SWEEP_JOURNAL).exists()

    data = interrupt()
    with bundled_registry(root) as registry:
        pulled = httpx.get(f"{registry.url}/v2/app/blobs/{image.layers[0].digest}")
        assert pulled.content == image.layers[0].data
    assert not (layout.v2 / SWEEP_JOURNAL).exists()

    # A dry run writes nothing, repairs included.
    data = interrupt()
    collect_garbage(root, grace_period=0, dry_run=True)
    assert not data.exists()
