"""The usage survey reads each manifest once by digest: HEAD where the bytes are already known
(``httpx.MockTransport`` counting requests by method)."""

from __future__ import annotations

from collections import Counter

import httpx

from tui.client import RegistryClient
from tui.client.survey import estimate_registry
from tui.imagegen import Blob, make_image, make_index

BASE = "https://registry.test"


class Registry:
    """Two repositories holding the same two-platform index under several tags."""

    def __init__(self) -> None:
        amd = make_image([{"a": b"amd"}], architecture="amd64")
        arm = make_image([{"a": b"arm"}], architecture="arm64")
        self.index = make_index([amd, arm])
        self.blobs: dict[str, Blob] = {
            blob.digest: blob for blob in (self.index.manifest, amd.manifest, arm.manifest)
        }
        self.tags = {
            "one": {
                "latest": self.index.digest,
                "v1": self.index.digest,
                "v1.0": self.index.digest,
            },
            "two": {"latest": self.index.digest},
        }
        self.requests: Counter[str] = Counter()
        self.manifest_gets: Counter[str] = Counter()

    def handler(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/v2/_catalog":
            return httpx.Response(200, json={"repositories": sorted(self.tags)})
        repo, _, rest = path.removeprefix("/v2/").partition("/")
        if rest == "tags/list":
            return httpx.Response(200, json={"name": repo, "tags": sorted(self.tags[repo])})
        ref = rest.removeprefix("manifests/")
        self.requests[request.method] += 1
        blob = self.blobs.get(self.tags[repo].get(ref, ref))
        if blob is None:
            return httpx.Response(404, json={"errors": [{"code": "MANIFEST_UNKNOWN"}]})
        headers = {"Docker-Content-Digest": blob.digest, "Content-Type": blob.media_type}
        if request.method == "HEAD":
            headers["Content-Length"] = str(len(blob.data))
            return httpx.Response(200, headers=headers)
        self.manifest_gets[blob.digest] += 1
        return httpx.Response(200, content=blob.data, headers=headers)


async def test_get_per_tag_and_head_for_children_read_in_another_repository() -> None:
    registry = Registry()
    async with RegistryClient(BASE, transport=httpx.MockTransport(registry.handler)) as client:
        estimate = await estimate_registry(client, parallel_repos=1, head_first=False)
    # One GET per tag (4); the two children are read once, then only HEADed in the other repo.
    assert registry.requests == {"GET": 4 + 2, "HEAD": 2}
    assert registry.manifest_gets[registry.index.digest] == 4
    assert estimate.blob_count == 3 + 2 * 2  # three manifests, a config and a layer per child
    assert {(usage.name, usage.tags, usage.manifests) for usage in estimate.repos} == {
        ("one", 3, 3),
        ("two", 1, 3),
    }


async def test_head_first_downloads_each_manifest_once() -> None:
    registry = Registry()
    async with RegistryClient(BASE, transport=httpx.MockTransport(registry.handler)) as client:
        estimate = await estimate_registry(client, parallel_repos=1, head_first=True)
    assert set(registry.manifest_gets.values()) == {1}  # every digest downloaded exactly once
    assert sum(registry.manifest_gets.values()) == 3
    assert registry.requests["HEAD"] == 4 + 2  # each tag, and the children in the second repo
    assert estimate.blob_count == 7
