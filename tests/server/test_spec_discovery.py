"""OCI Distribution Spec v1.1, content discovery: tags list, _catalog, referrers (end-8, end-12)."""

from __future__ import annotations

import httpx

from tests.helpers.spec import (
    assert_oci_error,
    push_blob_bytes,
    push_manifest_blob,
)
from tui.imagegen import (
    OCI_INDEX,
    OCI_MANIFEST,
    Blob,
    canonical_json,
    make_artifact,
    make_image,
    push_image,
)

TAGS = ["1.0", "1.1", "10", "2", "a_b", "latest", "v1", "v1.2.3-rc.1"]
SBOM = "application/spdx+json"
SIGNATURE = "application/vnd.dev.cosign.simplesigning.v1+json"


def _walk(client: httpx.Client, first: str, key: str) -> list[list[str]]:
    """Follow ``Link: <...>; rel="next"`` from ``first``; returns every page's list."""
    pages: list[list[str]] = []
    url: str | None = first
    while url is not None:
        response = client.get(url)
        assert response.status_code == 200, response.text
        pages.append(response.json()[key])
        link = response.headers.get("Link")
        if link is None:
            url = None
            continue
        assert 'rel="next"' in link, link
        url = link.split(";", 1)[0].strip().removeprefix("<").removesuffix(">")
        assert len(pages) < 50, "pagination does not end"
    return pages


def test_tags_list_is_sorted(client: httpx.Client) -> None:
    image = make_image([{"x": b"x"}])
    for tag in reversed(TAGS):
        push_image(client, "tagged/repo", tag, image)
    response = client.get("/v2/tagged/repo/tags/list")
    assert response.status_code == 200
    assert response.json() == {"name": "tagged/repo", "tags": sorted(TAGS)}
    assert "Link" not in response.headers


def test_tags_list_pagination_with_n_last_and_link(client: httpx.Client) -> None:
    image = make_image([{"x": b"x"}])
    for tag in TAGS:
        push_image(client, "paged", tag, image)
    pages = _walk(client, "/v2/paged/tags/list?n=3", "tags")
    assert pages == [sorted(TAGS)[i : i + 3] for i in range(0, len(TAGS), 3)]

    after = client.get("/v2/paged/tags/list?n=2&last=2")
    assert after.json()["tags"] == ["a_b", "latest"]
    assert 'rel="next"' in after.headers["Link"]
    only_last = client.get("/v2/paged/tags/list?last=latest")
    assert only_last.json()["tags"] == ["v1", "v1.2.3-rc.1"]
    zero = client.get("/v2/paged/tags/list?n=0")
    assert zero.status_code == 200
    assert zero.json()["tags"] in ([], None)
    assert "Link" not in zero.headers
    exact = client.get(f"/v2/paged/tags/list?n={len(TAGS)}")
    assert exact.json()["tags"] == sorted(TAGS)


def test_tags_list_of_repository_without_tags(client: httpx.Client) -> None:
    image = make_image([{"x": b"x"}])
    push_image(client, "untagged", None, image)
    response = client.get("/v2/untagged/tags/list")
    # Distribution answers 200 with an empty list; a 404 NAME_UNKNOWN would also be honest.
    if response.status_code == 200:
        assert response.json()["tags"] in ([], None)
    else:
        assert_oci_error(response, 404, "NAME_UNKNOWN")


def test_catalog_lists_repositories_sorted_and_paginates(client: httpx.Client) -> None:
    image = make_image([{"x": b"x"}])
    repositories = ["zeta", "alpha/one", "alpha/two", "beta", "alpha/one/deeper", "m-n_o.p"]
    for repo in repositories:
        push_image(client, repo, "latest", image)
    full = client.get("/v2/_catalog")
    assert full.status_code == 200
    assert full.json()["repositories"] == sorted(repositories)
    pages = _walk(client, "/v2/_catalog?n=4", "repositories")
    assert pages == [sorted(repositories)[:4], sorted(repositories)[4:]]
    after = client.get("/v2/_catalog?n=2&last=alpha/two")
    assert after.json()["repositories"] == ["beta", "m-n_o.p"]


def test_referrers_lists_artifacts_and_filters_by_type(client: httpx.Client) -> None:
    image = make_image([{"app": b"app"}])
    push_image(client, "refs", "v1", image)
    signature = make_artifact(image, artifact_type=SIGNATURE, annotations={"kind": "sig"})
    sbom = make_artifact(image, artifact_type=SBOM, payload=b'{"spdxVersion":"SPDX-2.3"}')
    push_image(client, "refs", None, signature)
    push_image(client, "refs", None, sbom)
    unrelated = make_artifact(make_image([{"other": b"other"}]), artifact_type=SBOM)
    push_image(client, "refs", None, unrelated)

    response = client.get(f"/v2/refs/referrers/{image.digest}")
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith(OCI_INDEX)
    index = response.json()
    assert index["schemaVersion"] == 2
    assert index["mediaType"] == OCI_INDEX
    by_digest = {entry["digest"]: entry for entry in index["manifests"]}
    assert set(by_digest) == {signature.digest, sbom.digest}
    assert by_digest[signature.digest]["artifactType"] == SIGNATURE
    assert by_digest[signature.digest]["size"] == signature.manifest.size
    assert by_digest[signature.digest]["mediaType"] == signature.manifest.media_type
    assert by_digest[signature.digest]["annotations"] == {"kind": "sig"}
    assert by_digest[sbom.digest]["artifactType"] == SBOM
    assert "OCI-Filters-Applied" not in response.headers

    filtered = client.get(f"/v2/refs/referrers/{image.digest}", params={"artifactType": SBOM})
    assert filtered.status_code == 200
    assert filtered.headers.get("OCI-Filters-Applied") == "artifactType"
    assert [entry["digest"] for entry in filtered.json()["manifests"]] == [sbom.digest]

    nothing = client.get(f"/v2/refs/referrers/{image.digest}", params={"artifactType": "x/none"})
    assert nothing.status_code == 200
    assert nothing.json()["manifests"] == []


def test_referrers_artifact_type_falls_back_to_config_media_type(client: httpx.Client) -> None:
    """An image manifest with a subject but no artifactType is listed under its config type."""
    image = make_image([{"app": b"app"}])
    push_image(client, "fallback", "v1", image)
    config = Blob(b'{"tool":"regtui"}', "application/vnd.example.config.v1+json")
    push_blob_bytes(client, "fallback", config.data)
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": [],
        "subject": image.manifest.descriptor(),
    }
    manifest = Blob(canonical_json(document), OCI_MANIFEST)
    push_manifest_blob(client, "fallback", manifest.digest, manifest)
    listed = client.get(f"/v2/fallback/referrers/{image.digest}").json()["manifests"]
    assert [(e["digest"], e["artifactType"]) for e in listed] == [
        (manifest.digest, "application/vnd.example.config.v1+json")
    ]


def test_referrers_of_unknown_digest_is_an_empty_index(client: httpx.Client) -> None:
    push_image(client, "lonely", "v1", make_image([{"x": b"x"}]))
    response = client.get("/v2/lonely/referrers/sha256:" + "1" * 64)
    assert response.status_code == 200
    assert response.json()["manifests"] == []
    assert response.headers["Content-Type"].startswith(OCI_INDEX)


def test_referrers_with_invalid_digest_is_400(client: httpx.Client) -> None:
    push_image(client, "lonely", "v1", make_image([{"x": b"x"}]))
    response = client.get("/v2/lonely/referrers/sha256:nothex")
    assert_oci_error(response, (400, 404), "DIGEST_INVALID", "MANIFEST_INVALID")


def test_deleted_referrer_disappears_from_the_list(client: httpx.Client) -> None:
    image = make_image([{"app": b"app"}])
    push_image(client, "refs", "v1", image)
    signature = make_artifact(image)
    push_image(client, "refs", None, signature)
    assert len(client.get(f"/v2/refs/referrers/{image.digest}").json()["manifests"]) == 1
    assert client.delete(f"/v2/refs/manifests/{signature.digest}").status_code == 202
    assert client.get(f"/v2/refs/referrers/{image.digest}").json()["manifests"] == []
