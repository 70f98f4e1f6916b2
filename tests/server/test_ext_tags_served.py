"""``/v2/<name>/_regtui/tags`` served through the storage driver says what the directory says.

The server (and ``regtui prune --root``, offline) reads the document through
``DriverStorage.describe_repository`` on the filesystem driver: tags and their push times (the
times of their ``current/link``), every revision (tagged or not, indexes and their children,
the times of their revision links), blob sizes.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

import httpx
import pytest

from embedded_registry.storage.paths import Layout
from tests.helpers.images import make_image, make_index, push_image
from tests.helpers.servers import RunningRegistry

pytestmark = pytest.mark.timeout(120)


def _rfc3339(mtime: float) -> str:
    return datetime.fromtimestamp(mtime, UTC).isoformat().replace("+00:00", "Z")


def test_the_served_document_is_the_offline_one(registry: RunningRegistry) -> None:
    old = make_image([{"a": b"old"}], created="2020-01-01T00:00:00Z")
    new = make_image([{"a": b"new"}, {"b": b"second layer"}])
    untagged = make_image([{"a": b"untagged later"}])
    amd = make_image([{"a": b"amd"}], architecture="amd64", created="2021-05-05T00:00:00Z")
    index = make_index([amd])
    push_image(registry.url, "ns/app", "old", old)
    push_image(registry.url, "ns/app", "new", new)
    push_image(registry.url, "ns/app", "also-new", new)
    push_image(registry.url, "ns/app", "multi", index)
    push_image(registry.url, "ns/app", "gone", untagged)
    with httpx.Client(base_url=registry.url) as client:
        assert client.delete("/v2/ns/app/manifests/gone").status_code in (202, 405)
        layout = Layout(registry.root)
        a_year_ago = time.time() - 365 * 86400
        os.utime(layout.tag_current_link("ns/app", "old"), (a_year_ago, a_year_ago))

        served = client.get("/v2/ns/app/_regtui/tags")
        assert served.status_code == 200, served.text
        document = served.json()
        assert {t["tag"] for t in document["tags"]} >= {"old", "new", "also-new", "multi"}
        for tag in document["tags"]:
            link = layout.tag_current_link("ns/app", tag["tag"])
            assert tag["digest"] == link.read_text()
            assert tag["pushed"] == _rfc3339(link.stat().st_mtime)
        assert next(t for t in document["tags"] if t["tag"] == "old")["pushed"].startswith(
            _rfc3339(a_year_ago)[:10]
        )
        by_digest = {m["digest"]: m for m in document["manifests"]}
        images = {i.digest: i for i in (old, new, untagged, amd)}
        assert {*images, index.digest} <= by_digest.keys()
        for digest, manifest in by_digest.items():
            link = layout.revision_link("ns/app", digest)
            assert manifest["pushed"] == _rfc3339(link.stat().st_mtime)
            if digest in images:
                sizes = {b.digest: len(b.data) for b in images[digest].blobs()}
                sizes[digest] = len(images[digest].manifest.data)  # the manifest itself
                assert {b["digest"]: b["size"] for b in manifest["blobs"]} == sizes
        assert by_digest[index.digest]["children"] == [amd.digest]
        assert by_digest[old.digest]["created"] == "2020-01-01T00:00:00Z"

        # The registry-wide path of old, which a proxy's rule for the repository did not cover,
        # is no route any more.
        assert client.get("/v2/_regtui/ext/tags/ns/app").status_code == 404

        missing = client.get("/v2/no/such/_regtui/tags")
        assert missing.status_code == 404
        assert missing.json()["errors"][0]["code"] == "NAME_UNKNOWN"


def test_the_push_times_path_is_no_other_route(registry: RunningRegistry) -> None:
    """``_regtui`` is no valid name component, and ``/v2/<name>/_regtui/tags`` is no other
    route for a valid name: not even for a repository named like a route's own word."""
    image = make_image([{"a": b"route words"}])
    push_image(registry.url, "team/manifests", "v1", image)
    push_image(registry.url, "blobs/tags", "list", image)
    with httpx.Client(base_url=registry.url) as client:
        for name, tag in (("team/manifests", "v1"), ("blobs/tags", "list")):
            served = client.get(f"/v2/{name}/_regtui/tags")
            assert served.status_code == 200, served.text
            assert served.json()["name"] == name
            assert [t["tag"] for t in served.json()["tags"]] == [tag]
        # A name with a "_regtui" component is refused wherever a name goes.
        refused = client.post("/v2/team/_regtui/blobs/uploads/")
        assert refused.json()["errors"][0]["code"] == "NAME_INVALID"
        assert client.get("/v2/team/_regtui/tags/list").json()["errors"][0]["code"] == (
            "NAME_INVALID"
        )
