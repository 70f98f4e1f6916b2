"""The bundled registry's ``/v2/_regtui/ext/storage`` and ``/gc`` endpoints, through the client.

Real servers on loopback; images built in memory and pushed over HTTP; the client calls of
``tui.client.ext`` on the other side, as the local administrator (the server's admin secret, in
the per-test directory ``tests/conftest.py`` sets up). Who else may call them:
``tests/server/test_ext_access.py``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time
from pathlib import Path

import bcrypt
import httpx
import pytest

from embedded_registry.usage import storage_usage
from tests.helpers.images import Image, make_image, push_image
from tests.helpers.servers import RunningRegistry, bundled_registry
from tui.client import AuthError, RegistryClient, ext
from tui.imagegen import OCI_MANIFEST

pytestmark = pytest.mark.timeout(120)


def _age(root: Path, seconds: float) -> None:
    then = time.time() - seconds
    for dirpath, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            os.utime(os.path.join(dirpath, name), (then, then))


def _pulls_back(client: httpx.Client, repo: str, tag: str, image: Image) -> None:
    """The image is served with the same manifest, and every blob hashes to its digest."""
    response = client.get(f"/v2/{repo}/manifests/{tag}", headers={"Accept": OCI_MANIFEST})
    assert response.status_code == 200, (repo, tag, response.text)
    assert response.content == image.manifest.data
    for blob in image.blobs():
        got = client.get(f"/v2/{repo}/blobs/{blob.digest}")
        assert got.status_code == 200, (repo, tag, blob.digest)
        assert "sha256:" + hashlib.sha256(got.content).hexdigest() == blob.digest


async def test_storage_report_is_the_server_side_report(registry: RunningRegistry) -> None:
    push_image(registry.url, "app", "v1", make_image([{"a": b"1" * 500}]))
    async with RegistryClient(registry.url) as client:
        assert await ext.supports_extension(client)
        report = await ext.storage_usage(client)
    local = await asyncio.to_thread(storage_usage, registry.root)
    assert report.total_bytes == local.total_bytes > 0
    assert report.blob_count == local.blob_count == 3  # manifest, config, layer
    assert [r.name for r in report.repositories] == ["app"]
    assert report.repositories[0].referenced_bytes == local.total_bytes


async def test_other_registries_have_no_extension(distribution: RunningRegistry) -> None:
    async with RegistryClient(distribution.url) as client:
        assert not await ext.supports_extension(client)


async def test_gc_dry_run_then_real_run(registry: RunningRegistry) -> None:
    kept = make_image([{"kept": b"k" * 700}])
    gone = make_image([{"gone": b"g" * 900}])
    push_image(registry.url, "app", "kept", kept)
    push_image(registry.url, "app", "gone", gone)
    async with httpx.AsyncClient(base_url=registry.url) as c:
        assert (await c.delete(f"/v2/app/manifests/{gone.digest}")).status_code == 202
    garbage = {gone.manifest.digest, gone.config.digest, gone.layers[0].digest}

    async with RegistryClient(registry.url) as client:
        young = await ext.collect_garbage(client, dry_run=True)  # server default grace: 1 h
        dry = await ext.collect_garbage(client, dry_run=True, grace_period=0)
        real = await ext.collect_garbage(client, dry_run=False, grace_period=0)
        again = await ext.collect_garbage(client, dry_run=False, grace_period=0)

    # No push in flight: the grace period keeps nothing of the deleted image.
    assert set(young.eligible_blobs) == garbage and young.kept_young_blobs == 0
    assert set(dry.eligible_blobs) == garbage and dry.bytes_freed == 0
    assert dry.after == dry.before and dry.before.reclaimable_bytes == dry.blob_bytes
    assert set(real.eligible_blobs) == garbage
    assert all(r.removed for r in real.removals)
    assert real.bytes_freed == dry.bytes_planned
    assert real.after.total_bytes == real.before.total_bytes - real.blob_bytes
    assert real.after.blob_count == real.before.blob_count - 3
    assert again.removals == ()
    with httpx.Client(base_url=registry.url) as c:
        _pulls_back(c, "app", "kept", kept)
        assert c.get(f"/v2/app/blobs/{gone.layers[0].digest}").status_code == 404


def test_gc_request_is_checked(registry: RunningRegistry) -> None:
    with httpx.Client(base_url=registry.url, headers=registry.admin_headers()) as c:
        for body in (b"[1]", b"{not json", b'{"dry_run": "yes"}', b'{"grace_period": -1}'):
            response = c.post("/v2/_regtui/ext/gc", content=body)
            assert response.status_code == 400, body
            assert response.json()["errors"][0]["code"] == "UNSUPPORTED"
        assert c.post("/v2/_regtui/ext/gc").json()["dry_run"] is True  # no body: a dry run


async def test_with_auth_the_endpoints_need_an_admin_or_the_local_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    htpasswd = tmp_path / "htpasswd"
    hashed = bcrypt.hashpw(b"wonderland", bcrypt.gensalt(rounds=5)).decode()
    htpasswd.write_text(f"alice:{hashed}\n")
    config = {
        "auth": {"htpasswd": {"realm": "regtui", "path": str(htpasswd)}},
        "regtui": {"extensions": {"admins": ["alice"]}},
    }
    with bundled_registry(tmp_path / "root", config=config) as secured:
        async with httpx.AsyncClient(base_url=secured.url) as anonymous:
            assert (await anonymous.get(ext.STORAGE_PATH)).status_code == 401
            assert (await anonymous.post(ext.GC_PATH)).status_code == 401
        async with RegistryClient(secured.url) as client:  # the local secret: zero setup
            assert await ext.supports_extension(client)
        async with RegistryClient(secured.url, username="alice", password="wonderland") as client:
            assert await ext.supports_extension(client)
            result = await ext.collect_garbage(client, dry_run=True)
            assert result.dry_run and result.removals == ()
        monkeypatch.setenv("REGTUI_ADMIN_DIR", str(tmp_path / "elsewhere"))  # no secret here
        async with RegistryClient(secured.url) as client:
            with pytest.raises(AuthError):
                await ext.supports_extension(client)
        async with RegistryClient(secured.url, username="alice", password="wonderland") as client:
            assert (await ext.storage_usage(client)).blob_count == 0


@pytest.mark.slow
def test_gc_during_concurrent_pushes_loses_nothing(registry: RunningRegistry) -> None:
    """Four clients push for ~12 s while images are deleted and GC runs again and again."""
    grace = 3.0  # longer than any push here takes from its first blob to its manifest
    deadline = time.monotonic() + 12.0
    pushed: list[tuple[str, str, Image]] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def pusher(worker: int) -> None:
        try:
            with httpx.Client(base_url=registry.url, timeout=60) as client:
                n = 0
                while time.monotonic() < deadline:
                    image = make_image([{f"w{worker}/n{n}": f"{worker}-{n}".encode() * 200}])
                    repo = f"push/w{worker}"
                    push_image(client, repo, f"v{n}", image)
                    with lock:
                        pushed.append((repo, f"v{n}", image))
                    n += 1
        except BaseException as exc:  # reported below: a failed push fails the test
            failures.append(exc)

    # Garbage made beforehand, old enough for the grace period when GC runs.
    doomed = [make_image([{f"doomed/{i}": str(i).encode() * 300}]) for i in range(5)]
    for i, image in enumerate(doomed):
        push_image(registry.url, "doomed", f"v{i}", image)
        assert httpx.delete(f"{registry.url}/v2/doomed/manifests/{image.digest}").status_code == 202
    _age(registry.root, 3600)  # the doomed content is old; everything pushed from now on is new

    threads = [threading.Thread(target=pusher, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    removed: set[str] = set()
    runs = 0
    with httpx.Client(
        base_url=registry.url, timeout=60, headers=registry.admin_headers()
    ) as client:
        while time.monotonic() < deadline:
            response = client.post(
                ext.GC_PATH,
                json={"dry_run": False, "delete_untagged": True, "grace_period": grace},
            )
            assert response.status_code == 200, response.text
            runs += 1
            result = ext.GcResult.from_json(response.json())
            assert result.problems == ()
            removed.update(result.eligible_blobs)
    for thread in threads:
        thread.join(timeout=60)
    assert not failures, failures
    assert runs >= 3 and len(pushed) >= 20
    doomed_blobs = {b.digest for image in doomed for b in (image.manifest, *image.blobs())}
    assert doomed_blobs <= removed  # GC did sweep real garbage meanwhile
    with httpx.Client(base_url=registry.url, timeout=60) as client:
        for repo, tag, image in pushed:
            _pulls_back(client, repo, tag, image)


def test_a_read_only_registry_allows_only_a_dry_run(tmp_path: Path) -> None:
    root = tmp_path / "registry"
    with bundled_registry(root) as running:
        push_image(running.url, "app", "v1", make_image([{"f": b"read-only"}]))
    before = sorted(p for p in root.rglob("*"))
    with bundled_registry(root, args=("--read-only",)) as running:
        admin = running.admin_headers()
        dry = httpx.post(f"{running.url}/v2/_regtui/ext/gc", json={"dry_run": True}, headers=admin)
        assert dry.status_code == 200, dry.text
        real = httpx.post(
            f"{running.url}/v2/_regtui/ext/gc", json={"dry_run": False}, headers=admin
        )
        assert real.status_code == 405
        assert real.json()["errors"][0]["code"] == "UNSUPPORTED"
    assert sorted(p for p in root.rglob("*")) == before
