"""Untag never silently takes sibling tags with it, and concurrent requests share one token
(``httpx.MockTransport``: registries that misbehave in ways a live test server does not)."""

from __future__ import annotations

import asyncio
import hashlib
import json

import httpx
import pytest

from tui.client import (
    AuthError,
    DeleteDisabledError,
    RegistryClient,
    RegistryClientError,
    SiblingTagsLostError,
)
from tui.client.models import OCI_MANIFEST
from tui.imagegen import make_image

BASE = "https://registry.test"


class TagRegistry:
    """One repository ``app`` whose tag DELETE is either right or a manifest DELETE in disguise."""

    def __init__(self, *, tag_delete_removes_manifest: bool) -> None:
        self.removes_manifest = tag_delete_removes_manifest
        first, second = make_image([{"a": b"1"}]), make_image([{"b": b"2"}])
        self.manifests = {image.digest: image.manifest.data for image in (first, second)}
        self.tags = {"v1": first.digest, "latest": first.digest, "stable": first.digest}
        self.tags["other"] = second.digest
        self.first = first.digest

    def _resolve(self, ref: str) -> str | None:
        digest = ref if ref.startswith("sha256:") else self.tags.get(ref)
        return digest if digest in self.manifests else None

    def handler(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/v2/app/tags/list":
            return httpx.Response(200, json={"name": "app", "tags": sorted(self.tags)})
        ref = path.removeprefix("/v2/app/manifests/")
        if request.method == "DELETE":
            removed = self.tags.pop(ref)
            if self.removes_manifest:  # what a broken registry does with a tag DELETE
                del self.manifests[removed]
                self.tags = {t: d for t, d in self.tags.items() if d != removed}
            return httpx.Response(202)
        digest = self._resolve(ref)
        if digest is None:
            return httpx.Response(404, json={"errors": [{"code": "MANIFEST_UNKNOWN"}]})
        raw = self.manifests[digest]
        headers = {"Docker-Content-Digest": digest, "Content-Type": OCI_MANIFEST}
        if request.method == "HEAD":
            headers["Content-Length"] = str(len(raw))
            return httpx.Response(200, headers=headers)
        return httpx.Response(200, content=raw, headers=headers)


@pytest.mark.parametrize("broken", [False, True], ids=["tag-delete", "manifest-delete"])
async def test_untag_checks_that_sibling_tags_survive(broken: bool) -> None:
    registry = TagRegistry(tag_delete_removes_manifest=broken)
    transport = httpx.MockTransport(registry.handler)
    async with RegistryClient(BASE, transport=transport) as client:
        if not broken:
            result = await client.untag("app", "v1")
            assert result.method == "tag-delete"
            assert result.sibling_tags == ("latest", "stable")
            assert sorted(registry.tags) == ["latest", "other", "stable"]
            return
        with pytest.raises(SiblingTagsLostError) as caught:
            await client.untag("app", "v1")
    error = caught.value
    assert error.lost == ("latest", "stable")
    assert (error.repo, error.tag, error.digest) == ("app", "v1", registry.first)
    message = str(error)
    assert "latest, stable" in message and registry.first in message
    assert "deleted the manifest" in message and message.count("\n") == 0
    assert list(registry.tags) == ["other"]  # the damage the error reports is real


async def test_untag_dry_run_deletes_nothing_and_checks_nothing() -> None:
    registry = TagRegistry(tag_delete_removes_manifest=True)
    async with RegistryClient(BASE, transport=httpx.MockTransport(registry.handler)) as client:
        result = await client.untag("app", "v1", dry_run=True)
    assert result.method == "dry-run" and result.sibling_tags == ("latest", "stable")
    assert len(registry.tags) == 4


class RefusingRegistry(TagRegistry):
    """A registry that cannot delete tags and, with ``deletes_disabled``, refuses every DELETE
    (405, as Distribution with delete disabled, or Docker Hub); otherwise it answers a tag
    DELETE with 400 (as Distribution 2.8) and refuses only the manifest DELETE with
    ``manifest_delete_status``, as a registry behind a policy might."""

    def __init__(self, *, deletes_disabled: bool, manifest_delete_status: int = 405) -> None:
        super().__init__(tag_delete_removes_manifest=False)
        self.deletes_disabled = deletes_disabled
        self.manifest_delete_status = manifest_delete_status
        self.puts: list[str] = []
        self.blobs: set[str] = set()

    def handler(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        refused = {"errors": [{"code": "UNSUPPORTED", "message": "The operation is unsupported."}]}
        if request.method == "DELETE":
            ref = path.removeprefix("/v2/app/manifests/")
            if self.deletes_disabled:
                return httpx.Response(405, json=refused)
            if not ref.startswith("sha256:"):
                return httpx.Response(400, json={"errors": [{"code": "DIGEST_INVALID"}]})
            return httpx.Response(self.manifest_delete_status, json=refused)
        if path.startswith("/v2/app/blobs/uploads/"):
            if request.method == "POST":
                return httpx.Response(202, headers={"Location": "/v2/app/blobs/uploads/u1"})
            self.blobs.add(request.url.params["digest"])
            return httpx.Response(201)
        if path.startswith("/v2/app/blobs/"):
            status = 200 if path.removeprefix("/v2/app/blobs/") in self.blobs else 404
            return httpx.Response(status)
        if request.method == "PUT":
            ref = path.removeprefix("/v2/app/manifests/")
            digest = "sha256:" + hashlib.sha256(request.content).hexdigest()
            self.manifests[digest] = request.content
            self.tags[ref] = digest
            self.puts.append(ref)
            return httpx.Response(201, headers={"Docker-Content-Digest": digest})
        return super().handler(request)


async def test_untag_on_a_registry_that_refuses_deletes_touches_nothing() -> None:
    registry = RefusingRegistry(deletes_disabled=True)
    before = dict(registry.tags)
    async with RegistryClient(BASE, transport=httpx.MockTransport(registry.handler)) as client:
        with pytest.raises(DeleteDisabledError):
            await client.untag("app", "v1")
    assert registry.puts == []  # no placeholder was pushed over the tag
    assert registry.tags == before


async def test_untag_puts_the_tag_back_when_the_placeholder_cannot_be_deleted() -> None:
    registry = RefusingRegistry(deletes_disabled=False, manifest_delete_status=403)
    before = dict(registry.tags)
    async with RegistryClient(BASE, transport=httpx.MockTransport(registry.handler)) as client:
        with pytest.raises(RegistryClientError) as caught:
            await client.untag("app", "v1")
    assert "put back" in str(caught.value)
    assert registry.puts == ["v1", "v1"]  # the placeholder, then the original again
    assert registry.tags == before


class TokenRegistry:
    """A Bearer-protected registry whose token service answers only once every one of
    ``expected`` concurrent requests has been challenged: without single flight, each of
    them would have asked for a token by then."""

    def __init__(self, expected: int, *, refuse: bool = False, hold_first: bool = False) -> None:
        self.expected = expected
        self.refuse = refuse
        self.hold_first = hold_first
        """The first token request never gets an answer (its sender is cancelled meanwhile)."""
        self.challenged = 0
        self.all_challenged = asyncio.Event()
        self.token_asked = asyncio.Event()
        self.token_requests: list[str] = []
        raw = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST}).encode()
        self.raw = raw
        self.digest = "sha256:" + hashlib.sha256(raw).hexdigest()

    async def handler(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth.test":
            self.token_requests.append(request.url.params.get("scope", ""))
            self.token_asked.set()
            if self.hold_first and len(self.token_requests) == 1:
                await asyncio.Event().wait()  # cancelled with the request that sent it
            await asyncio.wait_for(self.all_challenged.wait(), timeout=10)
            if self.refuse:
                return httpx.Response(401, json={"details": "no such account"})
            return httpx.Response(200, json={"token": "good", "expires_in": 300})
        if request.headers.get("Authorization") == "Bearer good":
            headers = {
                "Docker-Content-Digest": self.digest,
                "Content-Type": OCI_MANIFEST,
                "Content-Length": str(len(self.raw)),
            }
            return httpx.Response(200, headers=headers)
        if "Authorization" not in request.headers:
            self.challenged += 1
            if self.challenged >= self.expected:
                self.all_challenged.set()
        challenge = 'Bearer realm="https://auth.test/token",service="reg",'
        challenge += 'scope="repository:app:pull"'
        return httpx.Response(
            401,
            headers={"WWW-Authenticate": challenge},
            json={"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
        )


async def test_concurrent_requests_share_one_token_request() -> None:
    registry = TokenRegistry(expected=8)
    transport = httpx.MockTransport(registry.handler)
    async with RegistryClient(BASE, transport=transport, max_concurrency=8) as client:
        heads = await asyncio.gather(*(client.head_manifest("app", f"v{i}") for i in range(8)))
        assert {head.digest for head in heads} == {registry.digest}
        assert registry.token_requests == ["repository:app:pull"]
        assert client.auth.token_requests == 1
        # Warm cache: later requests carry the token at once, no challenge, no token request.
        await client.head_manifest("app", "v9")
        assert registry.challenged == 8 and client.auth.token_requests == 1


async def test_a_refused_token_is_shared_too() -> None:
    registry = TokenRegistry(expected=4, refuse=True)
    transport = httpx.MockTransport(registry.handler)
    async with RegistryClient(BASE, transport=transport, max_concurrency=4) as client:
        outcomes = await asyncio.gather(
            *(client.head_manifest("app", f"v{i}") for i in range(4)), return_exceptions=True
        )
    assert registry.token_requests == ["repository:app:pull"]
    assert all(isinstance(outcome, AuthError) for outcome in outcomes), outcomes
    assert all("no such account" in str(outcome) for outcome in outcomes)


async def test_waiters_fetch_for_themselves_when_the_first_request_is_cancelled() -> None:
    registry = TokenRegistry(expected=2, hold_first=True)
    transport = httpx.MockTransport(registry.handler)
    async with RegistryClient(BASE, transport=transport, max_concurrency=4) as client:
        first = asyncio.create_task(client.head_manifest("app", "v1"))
        await asyncio.wait_for(registry.token_asked.wait(), timeout=10)  # first is fetching
        second = asyncio.create_task(client.head_manifest("app", "v2"))
        await asyncio.wait_for(registry.all_challenged.wait(), timeout=10)
        for _ in range(20):  # let the second one reach its wait for the first one's token
            await asyncio.sleep(0)
        assert not second.done() and "repository:app:pull" in client.auth._inflight
        first.cancel()
        head = await asyncio.wait_for(second, timeout=10)
    assert head.digest == registry.digest
    assert first.cancelled()
    assert len(registry.token_requests) == 2  # the waiter asked again for itself
