"""Bad input gets the right OCI error and status, and leaves nothing behind on disk."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.helpers.servers import RunningRegistry
from tests.helpers.spec import (
    OCTETS,
    assert_oci_error,
    blob_files,
    digest_of,
    error_codes,
    files_under,
    push_blob_bytes,
    raw_request,
    start_upload,
    upload_files,
    with_query,
)
from tui.imagegen import OCI_MANIFEST, Blob, canonical_json, make_image, push_image

INVALID_NAMES = [
    "Library/Alpine",
    "UPPER",
    "a/%2E%2E/b",
    "a/%2e%2e/%2e%2e/%2e%2e/escape",
    "..",
    "a..b",
    "-leading-dash",
    "trailing_",
    "x" * 256,
]


def test_invalid_repository_names_are_refused(
    client: httpx.Client, registry: RunningRegistry
) -> None:
    before = files_under(registry.root.parent)
    data = b"payload"
    digest = digest_of(data)
    image = make_image([{"n": b"n"}])
    for name in INVALID_NAMES:
        attempts = [
            ("POST", f"/v2/{name}/blobs/uploads/", b""),
            ("POST", f"/v2/{name}/blobs/uploads/?digest={digest}", data),
            ("PUT", f"/v2/{name}/manifests/latest", image.manifest.data),
            ("GET", f"/v2/{name}/manifests/latest", b""),
            ("GET", f"/v2/{name}/tags/list", b""),
            ("GET", f"/v2/{name}/blobs/{digest}", b""),
        ]
        for method, path, body in attempts:
            status, payload = raw_request(
                registry, method, path, body, **{"Content-Type": OCI_MANIFEST}
            )
            assert status in (400, 404), f"{method} {path} -> {status} {payload[:200]!r}"
            if status == 400 or name != "..":
                codes = [error["code"] for error in json.loads(payload)["errors"]]
                assert codes[0] == "NAME_INVALID", f"{method} {path} -> {status} {codes}"
    assert files_under(registry.root.parent) == before


def test_dot_dot_path_segments_never_escape_the_root(
    client: httpx.Client, registry: RunningRegistry
) -> None:
    """Literal ``..`` segments: whatever the router makes of them, nothing is written outside."""
    image = make_image([{"n": b"n"}])
    push_image(client, "inside", "v1", image)
    before = files_under(registry.root.parent)
    for path in (
        "/v2/inside/../../../../tmp/x/manifests/latest",
        "/v2/../inside/manifests/v1",
        "/v2/a/../../blobs/uploads/",
    ):
        for method in ("GET", "PUT", "POST"):
            status, _ = raw_request(registry, method, path, image.manifest.data)
            assert status != 201 and status != 202, f"{method} {path} -> {status}"
    assert files_under(registry.root.parent) == before


def test_invalid_tags_are_refused(client: httpx.Client, registry: RunningRegistry) -> None:
    image = make_image([{"t": b"t"}])
    push_image(client, "tagrepo", "good", image)
    before = files_under(registry.root)
    for tag in ("-bad", ".bad", "x" * 129, "with%20space", "b@d"):
        response = client.put(
            f"/v2/tagrepo/manifests/{tag}",
            content=image.manifest.data,
            headers={"Content-Type": OCI_MANIFEST},
        )
        assert_oci_error(response, (400, 404), "TAG_INVALID", "MANIFEST_INVALID", "DIGEST_INVALID")
    assert files_under(registry.root) == before
    assert client.get("/v2/tagrepo/tags/list").json()["tags"] == ["good"]


def test_wrong_digest_on_monolithic_put(client: httpx.Client, registry: RunningRegistry) -> None:
    before = files_under(registry.root)
    location = start_upload(client, "wrong")
    wrong = digest_of(b"something else")
    response = client.put(
        with_query(location, digest=wrong), content=b"actual bytes", headers=OCTETS
    )
    assert_oci_error(response, 400, "DIGEST_INVALID")
    assert blob_files(registry.root) == set()
    assert upload_files(registry.root) == set(), "a failed upload must be cleaned up"
    assert files_under(registry.root) - before == set()
    assert client.head(f"/v2/wrong/blobs/{wrong}").status_code == 404
    assert client.head(f"/v2/wrong/blobs/{digest_of(b'actual bytes')}").status_code == 404


def test_wrong_digest_on_single_post(client: httpx.Client, registry: RunningRegistry) -> None:
    before = files_under(registry.root)
    wrong = digest_of(b"not this")
    response = client.post(
        f"/v2/wrong/blobs/uploads/?digest={wrong}", content=b"that", headers=OCTETS
    )
    assert_oci_error(response, 400, "DIGEST_INVALID")
    assert files_under(registry.root) - before == set()


def test_wrong_digest_after_chunks(client: httpx.Client, registry: RunningRegistry) -> None:
    location = start_upload(client, "wrong")
    patched = client.patch(
        location, content=b"a" * 1000, headers={**OCTETS, "Content-Range": "0-999"}
    )
    assert patched.status_code == 202
    response = client.put(with_query(patched.headers["Location"], digest=digest_of(b"b" * 1000)))
    assert_oci_error(response, 400, "DIGEST_INVALID")
    assert blob_files(registry.root) == set()
    assert upload_files(registry.root) == set()


@pytest.mark.parametrize("digest", ["sha256:abc", "sha256:" + "G" * 64, "md5:" + "0" * 32, "nope"])
def test_malformed_digest_parameter(
    client: httpx.Client, registry: RunningRegistry, digest: str
) -> None:
    location = start_upload(client, "malformed")
    response = client.put(with_query(location, digest=digest), content=b"bytes", headers=OCTETS)
    assert_oci_error(response, 400, "DIGEST_INVALID", "UNSUPPORTED")
    assert blob_files(registry.root) == set()


def test_put_without_digest_is_refused(client: httpx.Client, registry: RunningRegistry) -> None:
    location = start_upload(client, "nodigest")
    response = client.put(location, content=b"bytes", headers=OCTETS)
    assert_oci_error(response, 400, "DIGEST_INVALID", "BLOB_UPLOAD_INVALID")
    assert blob_files(registry.root) == set()


def test_malformed_content_range_is_416(client: httpx.Client, registry: RunningRegistry) -> None:
    location = start_upload(client, "ranges")
    # ("bytes 0-9/10", HTTP's own syntax with the right numbers, may be accepted leniently)
    for value in ("abc", "5-2", "0-100", "1-10", "bytes 5-14/10"):
        response = client.patch(
            location, content=b"0123456789", headers={**OCTETS, "Content-Range": value}
        )
        assert response.status_code in (400, 416), f"{value}: {response.status_code}"
    assert blob_files(registry.root) == set()
    # the session is still there, at offset zero
    status = client.get(location)
    assert status.status_code == 204


def test_manifest_naming_missing_blob(client: httpx.Client, registry: RunningRegistry) -> None:
    image = make_image([{"l1": b"1"}, {"l2": b"2"}])
    push_blob_bytes(client, "missing", image.config.data)
    push_blob_bytes(client, "missing", image.layers[0].data)
    before = files_under(registry.root)
    response = client.put(
        "/v2/missing/manifests/v1",
        content=image.manifest.data,
        headers={"Content-Type": OCI_MANIFEST},
    )
    body = assert_oci_error(response, 400, "MANIFEST_BLOB_UNKNOWN", "BLOB_UNKNOWN")
    details = json.dumps([error.get("detail") for error in body["errors"]])
    assert image.layers[1].digest in details
    assert files_under(registry.root) == before
    assert client.get("/v2/missing/manifests/v1").status_code == 404


def test_manifest_with_blob_only_in_another_repository(
    client: httpx.Client, registry: RunningRegistry
) -> None:
    image = make_image([{"l1": b"1"}])
    push_image(client, "has/it", "v1", image)
    push_blob_bytes(client, "lacks/it", image.config.data)
    before = files_under(registry.root)
    response = client.put(
        "/v2/lacks/it/manifests/v1",
        content=image.manifest.data,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert_oci_error(response, 400, "MANIFEST_BLOB_UNKNOWN", "BLOB_UNKNOWN")
    assert files_under(registry.root) == before


@pytest.mark.parametrize("body", [b"this is not json", b"{", b"[]", b"", b"\xff\xfe{}"])
def test_garbage_manifest(client: httpx.Client, registry: RunningRegistry, body: bytes) -> None:
    push_blob_bytes(client, "garbage", b"make it exist")
    before = files_under(registry.root)
    response = client.put(
        "/v2/garbage/manifests/v1", content=body, headers={"Content-Type": OCI_MANIFEST}
    )
    assert_oci_error(response, 400, "MANIFEST_INVALID")
    assert files_under(registry.root) == before


@pytest.mark.parametrize(
    "document",
    [
        {"schemaVersion": 2},
        {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": 5, "layers": []},
        {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {"digest": "x"}, "layers": []},
        {"schemaVersion": 3, "mediaType": OCI_MANIFEST, "layers": []},
    ],
)
def test_structurally_invalid_manifest(
    client: httpx.Client, registry: RunningRegistry, document: dict[str, object]
) -> None:
    push_blob_bytes(client, "garbage", b"make it exist")
    before = files_under(registry.root)
    response = client.put(
        "/v2/garbage/manifests/v1",
        content=json.dumps(document).encode(),
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert_oci_error(response, 400, "MANIFEST_INVALID", "DIGEST_INVALID", "MANIFEST_BLOB_UNKNOWN")
    assert files_under(registry.root) == before


def test_manifest_digest_mismatch_with_reference(
    client: httpx.Client, registry: RunningRegistry
) -> None:
    image = make_image([{"d": b"d"}])
    push_image(client, "digests", "v1", image)
    before = files_under(registry.root)
    other = "sha256:" + "3" * 64
    response = client.put(
        f"/v2/digests/manifests/{other}",
        content=image.manifest.data,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert_oci_error(response, 400, "DIGEST_INVALID", "MANIFEST_INVALID")
    assert files_under(registry.root) == before


def test_five_mib_manifest_is_refused(client: httpx.Client, registry: RunningRegistry) -> None:
    image = make_image([{"big": b"big"}])
    push_image(client, "huge", "small", image)
    document = json.loads(image.manifest.data)
    document["annotations"] = {"padding": "x" * (5 * 1024 * 1024)}
    manifest = Blob(canonical_json(document), OCI_MANIFEST)
    before = files_under(registry.root)
    response = client.put(
        "/v2/huge/manifests/big", content=manifest.data, headers={"Content-Type": OCI_MANIFEST}
    )
    assert response.status_code in (413, 400), response.status_code
    if error_codes(response):
        assert error_codes(response)[0] in ("SIZE_INVALID", "MANIFEST_INVALID"), response.text
    assert files_under(registry.root) == before
    assert client.get("/v2/huge/manifests/big").status_code == 404


def test_four_mib_manifest_is_accepted(client: httpx.Client) -> None:
    """The spec says registries SHOULD accept manifests of at least 4 MB."""
    image = make_image([{"big": b"big"}])
    push_image(client, "large", "small", image)
    document = json.loads(image.manifest.data)
    document["annotations"] = {"padding": "x" * (4 * 1000 * 1000 - 2000)}
    manifest = Blob(canonical_json(document), OCI_MANIFEST)
    response = client.put(
        "/v2/large/manifests/big", content=manifest.data, headers={"Content-Type": OCI_MANIFEST}
    )
    assert response.status_code == 201, response.text[:300]


def test_content_type_mismatch_with_manifest_media_type(
    client: httpx.Client, registry: RunningRegistry
) -> None:
    image = make_image([{"m": b"m"}])
    push_image(client, "mismatch", "v1", image)
    before = files_under(registry.root)
    response = client.put(
        "/v2/mismatch/manifests/v2",
        content=image.manifest.data,
        headers={"Content-Type": "application/vnd.oci.image.index.v1+json"},
    )
    assert_oci_error(response, 400, "MANIFEST_INVALID")
    assert files_under(registry.root) == before


def test_unknown_method_and_path(client: httpx.Client) -> None:
    assert client.get("/v2/some/repo/nonsense/path").status_code == 404
    assert client.get("/not-v2").status_code == 404
