"""OCI Distribution Spec v1.1, pull (end-1, end-2, end-3): the bundled registry, black-box."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.helpers.servers import RunningRegistry
from tests.helpers.spec import (
    ACCEPT_ALL,
    assert_oci_error,
    push_blob_bytes,
)
from tui.imagegen import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
    Image,
    Index,
    make_image,
    make_index,
    push_image,
)


def _image(tag: str, *, oci: bool = True, architecture: str = "amd64") -> Image:
    return make_image(
        [{f"etc/{tag}.conf": tag.encode() * 100}, {"bin/app": b"\x7fELF" + bytes(range(256))}],
        oci=oci,
        architecture=architecture,
    )


def test_base_endpoint_answers_200_with_the_api_version_header(client: httpx.Client) -> None:
    response = client.get("/v2/")
    assert response.status_code == 200
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    assert client.head("/v2/").status_code == 200


@pytest.mark.parametrize("oci", [True, False], ids=["oci", "docker-schema2"])
def test_manifest_get_and_head_by_tag_and_by_digest(client: httpx.Client, oci: bool) -> None:
    image = _image("pull", oci=oci)
    push_image(client, "library/app", "1.0", image)
    for reference in ("1.0", image.digest):
        response = client.get(
            f"/v2/library/app/manifests/{reference}", headers={"Accept": ACCEPT_ALL}
        )
        assert response.status_code == 200, response.text
        assert response.content == image.manifest.data
        assert response.headers["Content-Type"] == image.manifest.media_type
        assert response.headers["Docker-Content-Digest"] == image.digest
        assert int(response.headers["Content-Length"]) == image.manifest.size

        head = client.head(f"/v2/library/app/manifests/{reference}", headers={"Accept": ACCEPT_ALL})
        assert head.status_code == 200
        assert head.content == b""
        assert head.headers["Docker-Content-Digest"] == image.digest
        assert int(head.headers["Content-Length"]) == image.manifest.size
        assert head.headers["Content-Type"] == image.manifest.media_type


@pytest.mark.parametrize("oci", [True, False], ids=["oci-index", "docker-manifest-list"])
def test_index_is_served_with_its_own_media_type(client: httpx.Client, oci: bool) -> None:
    index: Index = make_index(
        [
            _image("amd", oci=oci, architecture="amd64"),
            _image("arm", oci=oci, architecture="arm64"),
        ],
        oci=oci,
    )
    push_image(client, "multi", "latest", index)
    response = client.get("/v2/multi/manifests/latest", headers={"Accept": ACCEPT_ALL})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == (OCI_INDEX if oci else DOCKER_MANIFEST_LIST)
    assert response.content == index.manifest.data
    for child in index.images:
        by_digest = client.get(
            f"/v2/multi/manifests/{child.digest}", headers={"Accept": ACCEPT_ALL}
        )
        assert by_digest.status_code == 200
        assert by_digest.content == child.manifest.data
        assert by_digest.headers["Content-Type"] == (OCI_MANIFEST if oci else DOCKER_MANIFEST)


def test_blob_get_and_head(client: httpx.Client) -> None:
    image = _image("blob")
    push_image(client, "blobs/here", "v1", image)
    for blob in image.blobs():
        response = client.get(f"/v2/blobs/here/blobs/{blob.digest}")
        assert response.status_code == 200
        assert response.content == blob.data
        assert response.headers["Docker-Content-Digest"] == blob.digest
        head = client.head(f"/v2/blobs/here/blobs/{blob.digest}")
        assert head.status_code == 200
        assert head.content == b""
        assert int(head.headers["Content-Length"]) == blob.size
        assert head.headers["Docker-Content-Digest"] == blob.digest


def test_blob_range_requests(client: httpx.Client) -> None:
    data = bytes(range(256)) * 40
    digest = push_blob_bytes(client, "ranges", data)
    url = f"/v2/ranges/blobs/{digest}"
    part = client.get(url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.content == data[100:200]
    assert part.headers["Content-Range"] == f"bytes 100-199/{len(data)}"
    tail = client.get(url, headers={"Range": "bytes=10000-"})
    assert tail.status_code == 206
    assert tail.content == data[10000:]
    suffix = client.get(url, headers={"Range": "bytes=-16"})
    assert suffix.status_code == 206
    assert suffix.content == data[-16:]
    outside = client.get(url, headers={"Range": f"bytes={len(data) + 10}-"})
    assert outside.status_code == 416


def test_blob_etag_and_conditional_get(client: httpx.Client) -> None:
    digest = push_blob_bytes(client, "etags", b"cache me" * 1000)
    response = client.get(f"/v2/etags/blobs/{digest}")
    etag = response.headers.get("ETag")
    assert etag, response.headers
    again = client.get(f"/v2/etags/blobs/{digest}", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""


def test_manifest_etag_and_conditional_get(client: httpx.Client) -> None:
    image = _image("etag")
    push_image(client, "etags", "v1", image)
    response = client.get("/v2/etags/manifests/v1", headers={"Accept": ACCEPT_ALL})
    etag = response.headers.get("ETag")
    assert etag and image.digest in etag, response.headers
    again = client.get(
        "/v2/etags/manifests/v1", headers={"Accept": ACCEPT_ALL, "If-None-Match": etag}
    )
    assert again.status_code == 304


def test_unknown_things_are_404_with_oci_codes(client: httpx.Client) -> None:
    image = _image("known")
    push_image(client, "known", "v1", image)
    missing = "sha256:" + "0" * 64
    assert_oci_error(client.get("/v2/known/manifests/nope"), 404, "MANIFEST_UNKNOWN")
    assert_oci_error(client.get(f"/v2/known/manifests/{missing}"), 404, "MANIFEST_UNKNOWN")
    assert client.head("/v2/known/manifests/nope").status_code == 404
    assert_oci_error(client.get(f"/v2/known/blobs/{missing}"), 404, "BLOB_UNKNOWN")
    assert client.head(f"/v2/known/blobs/{missing}").status_code == 404
    assert_oci_error(
        client.get("/v2/never/pushed/manifests/v1"), 404, "MANIFEST_UNKNOWN", "NAME_UNKNOWN"
    )
    assert_oci_error(client.get("/v2/never/pushed/tags/list"), 404, "NAME_UNKNOWN")


def test_content_is_scoped_to_its_repository(client: httpx.Client) -> None:
    """A blob or manifest pushed into one repository is not served from another."""
    image = _image("scoped")
    push_image(client, "owner/one", "v1", image)
    push_image(client, "owner/two", "other", _image("other"))
    layer = image.layers[0].digest
    assert_oci_error(client.get(f"/v2/owner/two/blobs/{layer}"), 404, "BLOB_UNKNOWN")
    assert client.head(f"/v2/owner/two/blobs/{layer}").status_code == 404
    assert_oci_error(
        client.get(f"/v2/owner/two/manifests/{image.digest}", headers={"Accept": ACCEPT_ALL}),
        404,
        "MANIFEST_UNKNOWN",
    )
    assert_oci_error(client.get("/v2/owner/two/manifests/v1"), 404, "MANIFEST_UNKNOWN")


def test_manifest_bytes_are_served_exactly_as_pushed(client: httpx.Client) -> None:
    """Whitespace and key order are part of the digest: the registry must not re-encode."""
    image = _image("bytes")
    push_image(client, "exact", "v1", image)
    document = json.loads(image.manifest.data)
    pretty = json.dumps(document, indent=3).encode()
    response = client.put(
        "/v2/exact/manifests/pretty", content=pretty, headers={"Content-Type": OCI_MANIFEST}
    )
    assert response.status_code == 201, response.text
    served = client.get("/v2/exact/manifests/pretty", headers={"Accept": ACCEPT_ALL})
    assert served.content == pretty


def test_blob_if_range_is_compared_with_the_digest_etag_as_distribution_does(
    client: httpx.Client, distribution: RunningRegistry
) -> None:
    """``If-Range`` names the ETag (the digest): the range when it matches, the whole blob
    when it does not; Distribution (Go's ``http.ServeContent``) answers the same."""
    data = bytes(range(256)) * 40
    with httpx.Client(base_url=distribution.url, timeout=30) as theirs:
        answers = []
        for server in (client, theirs):
            digest = push_blob_bytes(server, "ifrange", data)
            url = f"/v2/ifrange/blobs/{digest}"
            same = server.get(url, headers={"Range": "bytes=10-19", "If-Range": f'"{digest}"'})
            other = server.get(url, headers={"Range": "bytes=10-19", "If-Range": '"sha256:00"'})
            answers.append((same.status_code, same.content, other.status_code, other.content))
    assert answers[0] == answers[1]
    assert answers[0] == (206, data[10:20], 200, data)
