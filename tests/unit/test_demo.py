"""The demo content lands in a real registry with every feature the app shows."""

from __future__ import annotations

import httpx

from tests.helpers.servers import RunningRegistry
from tui.demo import is_empty, populate


def test_demo_populates_a_registry(distribution: RunningRegistry) -> None:
    assert is_empty(distribution.url)
    summary = populate(distribution.url)
    assert not is_empty(distribution.url)
    catalog = httpx.get(f"{distribution.url}/v2/_catalog").json()["repositories"]
    assert summary.repositories == len(catalog)
    assert {"library/python-demo", "acme/web", "acme/tools/cli"} <= set(catalog)
    tags = httpx.get(f"{distribution.url}/v2/acme/web/tags/list").json()["tags"]
    assert {"latest", "stable", "1.3.3"} <= set(tags)
    index = httpx.get(
        f"{distribution.url}/v2/library/python-demo/manifests/latest",
        headers={"Accept": "application/vnd.oci.image.index.v1+json"},
    ).json()
    assert [m["platform"]["architecture"] for m in index["manifests"]] == ["amd64", "arm64"]
