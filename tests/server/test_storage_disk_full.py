"""A full disk, for real: the registry's storage root on a 4 MiB tmpfs.

Every write that meets ENOSPC answers 507 with an OCI error whose detail says the registry's
storage is full (and no path of the server's machine); the server stays up; nothing partial is
left visible (no blob, no tag, no temporary file), and the space a failed request took is given
back. The tmpfs needs root (``mount``); elsewhere the test skips, and fails under CI.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers.images import make_image, push_image
from tests.helpers.servers import RunningRegistry, bundled_registry, in_ci
from tests.helpers.spec import assert_oci_error, blob_files, files_under, upload_files
from tui.imagegen import OCI_MANIFEST

pytestmark = pytest.mark.timeout(120)

DISK_BYTES = 4 << 20
OCTETS = {"Content-Type": "application/octet-stream"}


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs mounted under ``tmp_path`` (unmounted afterwards)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mount = shutil.which("mount")
    result = (
        subprocess.run(
            [mount, "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs", str(mount_point)],
            capture_output=True,
            text=True,
            check=False,
        )
        if mount is not None
        else None
    )
    if result is None or result.returncode != 0:
        reason = (
            f"cannot mount a small tmpfs here: {result.stderr.strip() if result else 'no mount'}"
        )
        if in_ci():
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


@pytest.fixture
def full_disk_registry(small_disk: Path) -> Iterator[RunningRegistry]:
    with bundled_registry(small_disk / "registry") as running:
        yield running


def _free(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _assert_storage_full(response: httpx.Response, registry: RunningRegistry) -> None:
    document = assert_oci_error(response, 507, "UNKNOWN")
    detail = document["errors"][0]["detail"]
    assert "storage is full" in detail
    assert str(registry.root) not in response.text and "/tmp" not in response.text
    assert not any(c in response.text for c in ("Errno", "Traceback", "No space left"))


def _no_temp_files(root: Path) -> None:
    assert not [path for path in files_under(root) if "/.tmp-" in f"/{path}"]


def test_a_blob_bigger_than_the_disk(full_disk_registry: RunningRegistry) -> None:
    registry = full_disk_registry
    free_before = _free(registry.root)
    data = os.urandom(DISK_BYTES + (1 << 20))
    with httpx.Client(base_url=registry.url, timeout=60) as client:
        monolithic = client.post(
            f"/v2/full/blobs/uploads/?digest={_digest(data)}", content=data, headers=OCTETS
        )
        _assert_storage_full(monolithic, registry)
        assert client.head(f"/v2/full/blobs/{_digest(data)}").status_code == 404
        assert blob_files(registry.root) == set() and upload_files(registry.root) == set()
        _no_temp_files(registry.root)
        assert _free(registry.root) >= free_before - (64 << 10)

        # Chunked: the chunk that does not fit fails; the session keeps what it had.
        started = client.post("/v2/full/blobs/uploads/")
        first = data[: 1 << 20]
        patched = client.patch(
            started.headers["Location"],
            content=first,
            headers={**OCTETS, "Content-Range": f"0-{len(first) - 1}"},
        )
        assert patched.status_code == 202
        location = patched.headers["Location"]
        rest = data[len(first) :]
        too_much = client.patch(
            location,
            content=rest,
            headers={**OCTETS, "Content-Range": f"{len(first)}-{len(data) - 1}"},
        )
        _assert_storage_full(too_much, registry)
        status = client.get(location)
        assert status.status_code == 204 and status.headers["Range"] == f"0-{len(first) - 1}"
        assert _free(registry.root) >= free_before - len(first) - (64 << 10)
        assert client.delete(location).status_code == 204

        # The server is up and takes what fits.
        assert client.get("/v2/").status_code == 200
        small = make_image([{"fits": b"a small layer"}])
        push_image(client, "full", "small", small)
        assert client.get("/v2/full/tags/list").json()["tags"] == ["small"]


def test_a_manifest_on_a_full_disk_leaves_no_tag(full_disk_registry: RunningRegistry) -> None:
    registry = full_disk_registry
    image = make_image([{"layer": b"pushed before the disk filled up"}])
    tagged = make_image([{"other": b"tagged earlier"}])
    with httpx.Client(base_url=registry.url, timeout=60) as client:
        push_image(client, "app", "earlier", tagged)
        for blob in image.blobs():
            response = client.post(
                f"/v2/app/blobs/uploads/?digest={blob.digest}", content=blob.data, headers=OCTETS
            )
            assert response.status_code == 201
        filler = registry.root.parent / "filler"
        with filler.open("wb") as handle, contextlib.suppress(OSError):
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
        try:
            put = client.put(
                "/v2/app/manifests/v1",
                content=image.manifest.data,
                headers={"Content-Type": OCI_MANIFEST},
            )
            _assert_storage_full(put, registry)
            assert client.get("/v2/app/tags/list").json()["tags"] == ["earlier"]
            assert client.get("/v2/app/manifests/v1").status_code == 404
            assert client.get(f"/v2/app/manifests/{image.digest}").status_code == 404
            _no_temp_files(registry.root)
            started = client.post("/v2/app/blobs/uploads/")
            _assert_storage_full(started, registry)
            assert upload_files(registry.root) == set()
        finally:
            filler.unlink()
        assert client.get("/v2/").status_code == 200
        push_image(client, "app", "v1", image)
        assert client.get("/v2/app/tags/list").json()["tags"] == ["earlier", "v1"]
