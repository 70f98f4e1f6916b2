"""OCI Distribution Spec v1.1, push (end-4a/4b, end-5, end-6, end-7, end-11, end-13)."""

from __future__ import annotations

import threading

import httpx

from tests.helpers.servers import RunningRegistry
from tests.helpers.spec import (
    ACCEPT_ALL,
    OCTETS,
    assert_oci_error,
    blob_files,
    blob_on_disk,
    digest_of,
    push_blob_bytes,
    start_upload,
    upload_files,
    upload_offset,
    with_query,
)
from tui.imagegen import OCI_MANIFEST, make_artifact, make_image, push_image


def test_post_then_put_monolithic(client: httpx.Client, registry: RunningRegistry) -> None:
    data = b"monolithic blob " * 4096
    digest = digest_of(data)
    started = client.post("/v2/mono/blobs/uploads/", headers={"Content-Length": "0"})
    assert started.status_code == 202
    location = started.headers["Location"]
    assert "/v2/mono/blobs/uploads/" in location
    done = client.put(with_query(location, digest=digest), content=data, headers=OCTETS)
    assert done.status_code == 201, done.text
    assert done.headers["Location"].endswith(f"/v2/mono/blobs/{digest}")
    assert done.headers["Docker-Content-Digest"] == digest
    assert client.get(done.headers["Location"]).content == data
    assert blob_on_disk(registry.root, digest).read_bytes() == data
    assert upload_files(registry.root) == set()


def test_single_post_with_digest(client: httpx.Client, registry: RunningRegistry) -> None:
    data = b"single post " * 1000
    digest = digest_of(data)
    response = client.post(
        f"/v2/single/blobs/uploads/?digest={digest}", content=data, headers=OCTETS
    )
    assert response.status_code == 201, response.text
    assert response.headers["Location"].endswith(f"/v2/single/blobs/{digest}")
    assert response.headers["Docker-Content-Digest"] == digest
    assert client.get(f"/v2/single/blobs/{digest}").content == data
    assert upload_files(registry.root) == set()


def test_chunked_upload_with_status_and_final_chunk_in_put(
    client: httpx.Client, registry: RunningRegistry
) -> None:
    data = bytes(range(256)) * 300  # 76,800 bytes
    chunks = [data[:30000], data[30000:60000], data[60000:]]
    location = start_upload(client, "chunked/repo")

    status = client.get(location)
    assert status.status_code == 204
    assert status.headers.get("Location")
    assert upload_offset(status) in (-1, 0)  # "0-0" for an empty upload, as Distribution says

    first = client.patch(
        location, content=chunks[0], headers={**OCTETS, "Content-Range": f"0-{len(chunks[0]) - 1}"}
    )
    assert first.status_code == 202, first.text
    assert upload_offset(first) == len(chunks[0]) - 1
    location = first.headers["Location"]
    assert first.headers.get("Docker-Upload-UUID") or first.headers.get("Blob-Upload-Session-ID")

    status = client.get(location)
    assert status.status_code == 204
    assert upload_offset(status) == len(chunks[0]) - 1

    second = client.patch(
        location, content=chunks[1], headers={**OCTETS, "Content-Range": "30000-59999"}
    )
    assert second.status_code == 202, second.text
    assert upload_offset(second) == 59999
    location = second.headers["Location"]

    digest = digest_of(data)
    done = client.put(
        with_query(location, digest=digest),
        content=chunks[2],
        headers={**OCTETS, "Content-Range": f"60000-{len(data) - 1}"},
    )
    assert done.status_code == 201, done.text
    assert done.headers["Docker-Content-Digest"] == digest
    assert client.get(f"/v2/chunked/repo/blobs/{digest}").content == data
    assert upload_files(registry.root) == set()


def test_patch_without_content_range_streams(client: httpx.Client) -> None:
    data = b"streamed" * 5000
    location = start_upload(client, "streamed")
    for start in range(0, len(data), 16384):
        response = client.patch(location, content=data[start : start + 16384], headers=OCTETS)
        assert response.status_code == 202, response.text
        location = response.headers["Location"]
    assert upload_offset(response) == len(data) - 1
    done = client.put(with_query(location, digest=digest_of(data)))
    assert done.status_code == 201, done.text
    assert client.get(f"/v2/streamed/blobs/{digest_of(data)}").content == data


def test_out_of_order_chunk_is_416_and_upload_stays_resumable(
    client: httpx.Client, registry: RunningRegistry
) -> None:
    data = b"0123456789" * 100
    location = start_upload(client, "gaps")
    ok = client.patch(location, content=data[:100], headers={**OCTETS, "Content-Range": "0-99"})
    assert ok.status_code == 202
    location = ok.headers["Location"]

    gap = client.patch(
        location, content=data[200:300], headers={**OCTETS, "Content-Range": "200-299"}
    )
    assert gap.status_code == 416, gap.text
    assert upload_offset(gap) == 99
    overlap = client.patch(
        location, content=data[50:150], headers={**OCTETS, "Content-Range": "50-149"}
    )
    assert overlap.status_code == 416
    assert blob_files(registry.root) == set()

    status = client.get(location)
    assert status.status_code == 204
    assert upload_offset(status) == 99
    resumed = client.patch(
        location, content=data[100:], headers={**OCTETS, "Content-Range": "100-999"}
    )
    assert resumed.status_code == 202, resumed.text
    done = client.put(with_query(resumed.headers["Location"], digest=digest_of(data)))
    assert done.status_code == 201, done.text
    assert client.get(f"/v2/gaps/blobs/{digest_of(data)}").content == data


def test_cancel_upload(client: httpx.Client, registry: RunningRegistry) -> None:
    location = start_upload(client, "cancel/me")
    response = client.patch(location, content=b"partial" * 100, headers=OCTETS)
    assert response.status_code == 202
    location = response.headers["Location"]
    assert upload_files(registry.root)
    cancelled = client.delete(location)
    assert cancelled.status_code == 204, cancelled.text
    assert upload_files(registry.root) == set()
    assert blob_files(registry.root) == set()
    assert_oci_error(client.get(location), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_oci_error(
        client.patch(location, content=b"x", headers=OCTETS), 404, "BLOB_UPLOAD_UNKNOWN"
    )
    assert_oci_error(
        client.put(with_query(location, digest=digest_of(b"x")), content=b"x"),
        404,
        "BLOB_UPLOAD_UNKNOWN",
    )
    assert_oci_error(client.delete(location), 404, "BLOB_UPLOAD_UNKNOWN")


def test_unknown_upload_session_is_404(client: httpx.Client) -> None:
    push_blob_bytes(client, "known", b"make the repo exist")
    url = "/v2/known/blobs/uploads/00000000-0000-4000-8000-000000000000"
    assert_oci_error(client.get(url), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_oci_error(client.patch(url, content=b"abc", headers=OCTETS), 404, "BLOB_UPLOAD_UNKNOWN")


def test_cross_repository_mount(client: httpx.Client, registry: RunningRegistry) -> None:
    data = b"mount me " * 1000
    digest = push_blob_bytes(client, "source/repo", data)
    files_before = blob_files(registry.root)
    mounted = client.post(
        f"/v2/target/repo/blobs/uploads/?mount={digest}&from=source/repo",
        headers={"Content-Length": "0"},
    )
    assert mounted.status_code == 201, mounted.text
    assert mounted.headers["Location"].endswith(f"/v2/target/repo/blobs/{digest}")
    assert mounted.headers["Docker-Content-Digest"] == digest
    assert client.get(f"/v2/target/repo/blobs/{digest}").content == data
    assert blob_files(registry.root) == files_before  # a link, not a copy
    assert upload_files(registry.root) == set()


def test_mount_of_blob_the_source_lacks_falls_back_to_an_upload(
    client: httpx.Client, registry: RunningRegistry
) -> None:
    push_blob_bytes(client, "source/repo", b"something else")
    elsewhere = push_blob_bytes(client, "private/repo", b"not in source")
    response = client.post(
        f"/v2/target/repo/blobs/uploads/?mount={elsewhere}&from=source/repo",
        headers={"Content-Length": "0"},
    )
    assert response.status_code == 202, response.text
    assert "/v2/target/repo/blobs/uploads/" in response.headers["Location"]
    assert client.head(f"/v2/target/repo/blobs/{elsewhere}").status_code == 404


def test_manifest_put_by_tag_and_by_digest(client: httpx.Client) -> None:
    image = make_image([{"a.txt": b"a"}])
    for blob in image.blobs():
        push_blob_bytes(client, "manifests", blob.data)
    by_tag = client.put(
        "/v2/manifests/manifests/v1",
        content=image.manifest.data,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert by_tag.status_code == 201, by_tag.text
    assert by_tag.headers["Docker-Content-Digest"] == image.digest
    assert "/v2/manifests/manifests/" in by_tag.headers["Location"]

    other = make_image([{"b.txt": b"b"}])
    for blob in other.blobs():
        push_blob_bytes(client, "manifests", blob.data)
    by_digest = client.put(
        f"/v2/manifests/manifests/{other.digest}",
        content=other.manifest.data,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert by_digest.status_code == 201, by_digest.text
    assert by_digest.headers["Docker-Content-Digest"] == other.digest
    assert by_digest.headers["Location"].endswith(f"/v2/manifests/manifests/{other.digest}")
    tags = client.get("/v2/manifests/tags/list").json()["tags"]
    assert tags == ["v1"]  # a push by digest makes no tag
    assert (
        client.get(
            f"/v2/manifests/manifests/{other.digest}", headers={"Accept": ACCEPT_ALL}
        ).content
        == other.manifest.data
    )


def test_retagging_moves_the_tag(client: httpx.Client) -> None:
    first = make_image([{"one": b"1"}])
    second = make_image([{"two": b"2"}])
    push_image(client, "moving", "latest", first)
    push_image(client, "moving", "latest", second)
    response = client.get("/v2/moving/manifests/latest", headers={"Accept": ACCEPT_ALL})
    assert response.headers["Docker-Content-Digest"] == second.digest
    # the old revision is still there by digest
    assert (
        client.get(
            f"/v2/moving/manifests/{first.digest}", headers={"Accept": ACCEPT_ALL}
        ).status_code
        == 200
    )


def test_manifest_with_subject_answers_oci_subject(client: httpx.Client) -> None:
    image = make_image([{"app": b"app"}])
    push_image(client, "signed", "v1", image)
    signature = make_artifact(image)
    for blob in signature.blobs():
        push_blob_bytes(client, "signed", blob.data)
    response = client.put(
        f"/v2/signed/manifests/{signature.digest}",
        content=signature.manifest.data,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert response.status_code == 201, response.text
    assert response.headers.get("OCI-Subject") == image.digest


def test_manifest_with_missing_subject_is_accepted(client: httpx.Client) -> None:
    """v1.1: the subject need not exist yet (signatures can arrive before their image)."""
    absent = make_image([{"not": b"pushed"}])
    signature = make_artifact(absent)
    push_image(client, "early", None, signature)
    listed = client.get(f"/v2/early/referrers/{absent.digest}").json()
    assert [entry["digest"] for entry in listed["manifests"]] == [signature.digest]


def test_same_blob_pushed_concurrently(client: httpx.Client, registry: RunningRegistry) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB
    digest = digest_of(data)
    results: list[int] = []

    def push() -> None:
        with httpx.Client(base_url=registry.url, timeout=60) as own:
            location = start_upload(own, "race")
            for start in range(0, len(data), 65536):
                chunk = data[start : start + 65536]
                end = start + len(chunk) - 1
                patched = own.patch(
                    location, content=chunk, headers={**OCTETS, "Content-Range": f"{start}-{end}"}
                )
                location = patched.headers["Location"]
            results.append(own.put(with_query(location, digest=digest)).status_code)

    threads = [threading.Thread(target=push) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert results == [201] * 6
    assert blob_files(registry.root) == {
        str(blob_on_disk(registry.root, digest).relative_to(registry.root))
    }
    assert blob_on_disk(registry.root, digest).read_bytes() == data
    assert upload_files(registry.root) == set()
