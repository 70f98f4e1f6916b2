"""Manifests named by an invalid reference, and manifests nested to absurd depths.

The OCI conformance suite (distribution-spec v1.1, ``01_pull_test.go``) asks for 404 on a HEAD
and a GET of ``.INVALID_MANIFEST_NAME``, a reference that is neither a tag nor a digest;
Distribution answers 404 too (its router matches no route). A PUT or DELETE still says what is
wrong with the reference (400), as before.
"""

from __future__ import annotations

import json

import httpx
import pytest

from tests.helpers.images import make_image, push_image
from tests.helpers.servers import RunningRegistry
from tests.helpers.spec import assert_oci_error, files_under
from tui.imagegen import OCI_MANIFEST

pytestmark = pytest.mark.timeout(120)

INVALID_TAGS = (".INVALID_MANIFEST_NAME", "-bad", "x" * 129, "b@d", "with%20space")
INVALID_DIGESTS = ("sha256:abc", "sha256:" + "Z" * 64, "md5:" + "a" * 32)


@pytest.mark.parametrize("reference", INVALID_TAGS + INVALID_DIGESTS)
def test_get_and_head_of_an_invalid_reference_answer_404(
    client: httpx.Client, reference: str
) -> None:
    push_image(client, "pulled", "v1", make_image([{"x": b"x"}]))
    got = client.get(f"/v2/pulled/manifests/{reference}", headers={"Accept": OCI_MANIFEST})
    assert_oci_error(got, 404, "MANIFEST_UNKNOWN")
    head = client.head(f"/v2/pulled/manifests/{reference}", headers={"Accept": OCI_MANIFEST})
    assert head.status_code == 404 and head.content == b""
    # The repository is fine: a valid reference still resolves.
    assert (
        client.head("/v2/pulled/manifests/v1", headers={"Accept": OCI_MANIFEST}).status_code == 200
    )


def test_distribution_answers_404_to_the_conformance_reference_too(
    distribution: RunningRegistry,
) -> None:
    with httpx.Client(base_url=distribution.url) as client:
        for reference in INVALID_TAGS[:4]:
            assert client.get(f"/v2/pulled/manifests/{reference}").status_code == 404
            assert client.head(f"/v2/pulled/manifests/{reference}").status_code == 404


def test_put_and_delete_still_name_what_is_wrong(client: httpx.Client) -> None:
    image = make_image([{"x": b"x"}])
    put = client.put(
        "/v2/pushed/manifests/.INVALID_MANIFEST_NAME",
        content=image.manifest.data,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert_oci_error(put, 400, "TAG_INVALID")
    assert_oci_error(client.delete("/v2/pushed/manifests/sha256:abc"), 400, "DIGEST_INVALID")


@pytest.mark.parametrize("depth", [65, 1_000, 100_000])
@pytest.mark.parametrize("shape", ["arrays", "objects"])
def test_a_deeply_nested_manifest_is_invalid_and_the_server_stays_up(
    client: httpx.Client, registry: RunningRegistry, depth: int, shape: str
) -> None:
    image = make_image([{"x": b"x"}])
    push_image(client, "deep", "v1", image)
    before = files_under(registry.root)
    nested = "[" * depth + "]" * depth if shape == "arrays" else '{"a":' * depth + "1" + "}" * depth
    head = f'{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":'
    body = (head + nested + ',"layers":[]}').encode()
    response = client.put(
        "/v2/deep/manifests/nested", content=body, headers={"Content-Type": OCI_MANIFEST}
    )
    assert_oci_error(response, 400, "MANIFEST_INVALID")
    assert files_under(registry.root) == before
    assert client.get("/v2/deep/tags/list").json()["tags"] == ["v1"]
    assert client.get("/v2/").status_code == 200


def test_a_manifest_nested_as_deep_as_real_ones_is_accepted(client: httpx.Client) -> None:
    """The depth limit leaves room: annotations in an index are four levels deep."""
    image = make_image([{"x": b"x"}])
    push_image(client, "ok", "v1", image)
    nested = {"a": [[[[{"b": [1]}]]]]}
    document = json.loads(image.manifest.data)
    document["annotations"] = {"note": json.dumps(nested)}
    document["extra"] = nested
    response = client.put(
        "/v2/ok/manifests/v2",
        content=json.dumps(document).encode(),
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert response.status_code == 201, response.text
