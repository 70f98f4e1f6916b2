"""OCI Distribution Spec v1.1, content management (end-9, end-10), delete switch, read-only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.servers import RunningRegistry, bundled_registry
from tests.helpers.spec import (
    ACCEPT_ALL,
    V2,
    assert_oci_error,
    blob_on_disk,
    client_for,
    digest_of,
    files_under,
    push_blob_bytes,
    start_upload,
)
from tui.imagegen import OCI_MANIFEST, make_image, push_image

DELETE_ON: dict[str, Any] = {"version": "0.1", "storage": {"delete": {"enabled": True}}}
DELETE_OFF: dict[str, Any] = {"version": "0.1", "storage": {"delete": {"enabled": False}}}


@pytest.fixture
def deletable(tmp_path: Path) -> Iterator[RunningRegistry]:
    with bundled_registry(tmp_path / "root", config=DELETE_ON) as running:
        yield running


@pytest.fixture
def client(deletable: RunningRegistry) -> Iterator[httpx.Client]:
    with client_for(deletable) as client:
        yield client


def test_delete_manifest_by_digest(client: httpx.Client, deletable: RunningRegistry) -> None:
    image = make_image([{"gone": b"soon"}])
    keep = make_image([{"stays": b"here"}])
    push_image(client, "del", "v1", image)
    push_image(client, "del", "v1-alias", image)
    push_image(client, "del", "keep", keep)
    response = client.delete(f"/v2/del/manifests/{image.digest}")
    assert response.status_code == 202, response.text
    assert_oci_error(
        client.get(f"/v2/del/manifests/{image.digest}", headers={"Accept": ACCEPT_ALL}),
        404,
        "MANIFEST_UNKNOWN",
    )
    # Like Distribution: every tag pointing at the deleted manifest goes with it.
    assert client.get("/v2/del/manifests/v1").status_code == 404
    assert client.get("/v2/del/tags/list").json()["tags"] == ["keep"]
    revision = deletable.root / V2 / "repositories/del/_manifests/revisions/sha256"
    assert not (revision / image.digest.split(":")[1] / "link").exists()
    # blobs stay until garbage collection
    assert blob_on_disk(deletable.root, image.layers[0].digest).exists()
    assert_oci_error(client.delete(f"/v2/del/manifests/{image.digest}"), 404, "MANIFEST_UNKNOWN")


def test_delete_tag_leaves_manifest_and_sibling_tags(client: httpx.Client) -> None:
    image = make_image([{"x": b"x"}])
    push_image(client, "tags", "a", image)
    push_image(client, "tags", "b", image)
    response = client.delete("/v2/tags/manifests/a")
    assert response.status_code == 202, response.text
    assert client.get("/v2/tags/tags/list").json()["tags"] == ["b"]
    assert client.get("/v2/tags/manifests/a").status_code == 404
    by_digest = client.get(f"/v2/tags/manifests/{image.digest}", headers={"Accept": ACCEPT_ALL})
    assert by_digest.status_code == 200
    assert client.get("/v2/tags/manifests/b", headers={"Accept": ACCEPT_ALL}).status_code == 200
    assert_oci_error(client.delete("/v2/tags/manifests/a"), 404, "MANIFEST_UNKNOWN")


def test_delete_blob(client: httpx.Client, deletable: RunningRegistry) -> None:
    digest = push_blob_bytes(client, "blobdel", b"delete this blob")
    response = client.delete(f"/v2/blobdel/blobs/{digest}")
    assert response.status_code == 202, response.text
    assert_oci_error(client.get(f"/v2/blobdel/blobs/{digest}"), 404, "BLOB_UNKNOWN")
    assert client.head(f"/v2/blobdel/blobs/{digest}").status_code == 404
    link = deletable.root / V2 / "repositories/blobdel/_layers/sha256" / digest[7:] / "link"
    assert not link.exists()
    assert_oci_error(client.delete(f"/v2/blobdel/blobs/{digest}"), 404, "BLOB_UNKNOWN")


def test_delete_in_unknown_repository_is_404(client: httpx.Client) -> None:
    missing = "sha256:" + "2" * 64
    assert_oci_error(
        client.delete(f"/v2/nowhere/manifests/{missing}"), 404, "MANIFEST_UNKNOWN", "NAME_UNKNOWN"
    )
    assert_oci_error(
        client.delete(f"/v2/nowhere/blobs/{missing}"), 404, "BLOB_UNKNOWN", "NAME_UNKNOWN"
    )


def test_delete_disabled_is_405_unsupported(tmp_path: Path) -> None:
    root = tmp_path / "root"
    with bundled_registry(root, config=DELETE_OFF) as running, client_for(running) as client:
        image = make_image([{"x": b"x"}])
        push_image(client, "locked", "v1", image)
        before = files_under(root)
        for url in (
            f"/v2/locked/manifests/{image.digest}",
            "/v2/locked/manifests/v1",
            f"/v2/locked/blobs/{image.layers[0].digest}",
        ):
            assert_oci_error(client.delete(url), 405, "UNSUPPORTED")
        assert files_under(root) == before
        assert (
            client.get("/v2/locked/manifests/v1", headers={"Accept": ACCEPT_ALL}).status_code == 200
        )


@pytest.mark.parametrize("how", ["flag", "config"])
def test_read_only_mode_refuses_writes_with_405(tmp_path: Path, how: str) -> None:
    root = tmp_path / "root"
    image = make_image([{"ro": b"data"}])
    with bundled_registry(root, config=DELETE_ON) as running:
        push_image(running.url, "ro", "v1", image)
        with client_for(running) as client:
            pending = start_upload(client, "ro")
            pending = pending.split("://", 1)[-1]
            pending = pending[pending.index("/v2/") :]
    config: dict[str, Any] = {
        "version": "0.1",
        "storage": {"delete": {"enabled": True}},
    }
    args: tuple[str, ...] = ()
    if how == "flag":
        args = ("--read-only",)
    else:
        config["storage"]["maintenance"] = {"readonly": {"enabled": True}}
    before = files_under(root)
    with bundled_registry(root, config=config, args=args) as running, client_for(running) as client:
        data = b"new blob"
        digest = digest_of(data)
        attempts = [
            client.post("/v2/ro/blobs/uploads/", headers={"Content-Length": "0"}),
            client.post(f"/v2/ro/blobs/uploads/?digest={digest}", content=data),
            client.post(f"/v2/other/blobs/uploads/?mount={image.config.digest}&from=ro"),
            client.patch(pending, content=data),
            client.put(f"{pending}?digest={digest}", content=data),
            client.delete(pending),
            client.put(
                "/v2/ro/manifests/v2",
                content=image.manifest.data,
                headers={"Content-Type": OCI_MANIFEST},
            ),
            client.delete("/v2/ro/manifests/v1"),
            client.delete(f"/v2/ro/manifests/{image.digest}"),
            client.delete(f"/v2/ro/blobs/{image.config.digest}"),
        ]
        for response in attempts:
            assert_oci_error(response, 405, "UNSUPPORTED")
        assert files_under(root) == before
        # reads still work
        served = client.get("/v2/ro/manifests/v1", headers={"Accept": ACCEPT_ALL})
        assert served.status_code == 200
        assert served.content == image.manifest.data
        assert client.get(f"/v2/ro/blobs/{image.layers[0].digest}").content == image.layers[0].data
        assert client.get("/v2/ro/tags/list").json()["tags"] == ["v1"]
        assert client.get("/v2/_catalog").json()["repositories"] == ["ro"]
