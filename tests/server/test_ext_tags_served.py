"""``ext/tags`` served through the storage driver says what the offline reader says.

The server reads the document through ``DriverStorage.describe_repository`` (file times from
the filesystem driver); ``regtui prune --root`` reads a stopped registry's directory with
``routes.ext_tags.describe_repository``. Both must give one and the same document: tags and
their push times, every revision (tagged or not, indexes and their children), blob sizes.
"""

from __future__ import annotations

import os
import time

import httpx
import pytest

from embedded_registry.routes.ext_tags import describe_repository
from embedded_registry.storage.paths import Layout
from tests.helpers.images import make_image, make_index, push_image
from tests.helpers.servers import RunningRegistry

pytestmark = pytest.mark.timeout(120)


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

        served = client.get("/v2/_regtui/ext/tags/ns/app")
        assert served.status_code == 200, served.text
        offline = describe_repository(layout, "ns/app")
        assert offline is not None
        assert served.json() == offline
        document = served.json()
        assert {t["tag"] for t in document["tags"]} >= {"old", "new", "also-new", "multi"}
        digests = {m["digest"] for m in document["manifests"]}
        assert {old.digest, new.digest, untagged.digest, index.digest, amd.digest} <= digests

        missing = client.get("/v2/_regtui/ext/tags/no/such")
        assert missing.status_code == 404
        assert missing.json()["errors"][0]["code"] == "NAME_UNKNOWN"
