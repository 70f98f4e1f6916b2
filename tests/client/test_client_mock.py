"""What live servers rarely do, with ``httpx.MockTransport``: 429s, Link loops, truncated bodies,
digest mismatches, schema1, token caching, and which requests are (not) retried."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

import httpx
import pytest

from tui.client import (
    AuthError,
    CatalogUnsupportedError,
    DeleteDisabledError,
    DigestMismatchError,
    MalformedResponseError,
    NotFoundError,
    RateLimitedError,
    RegistryClient,
    Schema1Manifest,
)
from tui.client.models import DOCKER_SCHEMA1_SIGNED, OCI_MANIFEST
from tui.client.registry import compute_digest, manifest_digest
from tui.imagegen import make_image

BASE = "https://registry.test"
Handler = Callable[[httpx.Request], httpx.Response]


def client_for(handler: Handler, **kw: object) -> RegistryClient:
    kw.setdefault("backoff", 0.001)
    return RegistryClient(BASE, transport=httpx.MockTransport(handler), **kw)  # type: ignore[arg-type]


def oci_error(status: int, code: str, message: str, **headers: str) -> httpx.Response:
    body = {"errors": [{"code": code, "message": message, "detail": None}]}
    return httpx.Response(status, json=body, headers=headers)


async def test_429_then_success_honours_retry_after() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if len(calls) == 1:
            return oci_error(429, "TOOMANYREQUESTS", "slow down", **{"Retry-After": "0"})
        return httpx.Response(200, json={"name": "app", "tags": ["v1"]})

    async with client_for(handler) as client:
        assert await client.list_tags("app") == ["v1"]
    assert len(calls) == 2


async def test_429_beyond_patience_raises_with_retry_after() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return oci_error(429, "TOOMANYREQUESTS", "pull limit", **{"Retry-After": "3600"})

    async with client_for(handler) as client:
        with pytest.raises(RateLimitedError) as caught:
            await client.list_tags("app")
    assert caught.value.retry_after == 3600
    assert "rate limiting" in str(caught.value)


async def test_post_is_never_retried() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        return httpx.Response(503)

    async with client_for(handler, max_retries=3) as client:
        response = await client.request("POST", "/v2/app/blobs/uploads/")
        assert response.status_code == 503
        await client.request("GET", "/v2/")
    assert calls.count("POST") == 1
    assert calls.count("GET") == 4  # one try and three retries


async def test_transport_errors_are_retried_for_get() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise httpx.ReadError("connection reset", request=request)
        return httpx.Response(200, json={"repositories": ["a"]})

    async with client_for(handler) as client:
        assert await client.catalog() == ["a"]
    assert calls == 3


async def test_link_pagination_and_registry_ignoring_n() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        last = request.url.params.get("last")
        if last is None:
            return httpx.Response(
                200,
                json={"repositories": ["a", "b"]},
                headers={"Link": '</v2/_catalog?last=b&n=2>; rel="next"'},
            )
        if last == "b":
            # This page ignores n and says so by giving everything left, without a Link.
            return httpx.Response(200, json={"repositories": ["c", "d", "e"]})
        return httpx.Response(500)

    async with client_for(handler) as client:
        pages = [page async for page in client.iter_catalog(page_size=2)]
    assert pages == [["a", "b"], ["c", "d", "e"]]


async def test_link_loop_is_detected() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("last") is None:
            return httpx.Response(
                200,
                json={"name": "app", "tags": ["v1", "v2"]},
                headers={"Link": f'<{BASE}/v2/app/tags/list?n=2&last=v2>; rel="next"'},
            )
        # The second page points back at the first: following it would never end.
        return httpx.Response(
            200,
            json={"name": "app", "tags": ["v3"]},
            headers={"Link": '</v2/app/tags/list?n=1000>; rel="next"'},
        )

    async with client_for(handler) as client:
        with pytest.raises(MalformedResponseError, match="loops back"):
            await client.list_tags("app")


async def test_link_ignoring_last_repeats_the_page() -> None:
    counter = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal counter
        counter += 1
        return httpx.Response(
            200,
            json={"name": "app", "tags": ["v1"]},
            headers={"Link": f'</v2/app/tags/list?n=1&last=v1&page={counter}>; rel="next"'},
        )

    async with client_for(handler) as client:
        with pytest.raises(MalformedResponseError, match="repeats"):
            await client.list_tags("app")


def manifest_handler(raw: bytes, media_type: str, **headers: str) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        assert OCI_MANIFEST in request.headers["Accept"]
        assert DOCKER_SCHEMA1_SIGNED in request.headers["Accept"]
        return httpx.Response(200, content=raw, headers={"Content-Type": media_type, **headers})

    return handler


async def test_manifest_digest_checked_against_header() -> None:
    image = make_image([{"a": b"1"}])
    wrong = "sha256:" + "0" * 64
    handler = manifest_handler(
        image.manifest.data, OCI_MANIFEST, **{"Docker-Content-Digest": wrong}
    )
    async with client_for(handler) as client:
        with pytest.raises(DigestMismatchError) as caught:
            await client.get_manifest("app", "v1")
    assert caught.value.expected == wrong
    assert caught.value.actual == image.digest


async def test_manifest_digest_checked_against_requested_digest() -> None:
    image = make_image([{"a": b"1"}])
    other = make_image([{"a": b"2"}])
    async with client_for(manifest_handler(image.manifest.data, OCI_MANIFEST)) as client:
        result = await client.get_manifest("app", image.digest)
        assert result.digest == image.digest
        with pytest.raises(DigestMismatchError):
            await client.get_manifest("app", other.digest)


async def test_truncated_manifest_body() -> None:
    raw = make_image([{"a": b"1"}]).manifest.data

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            content=raw[:50],
            headers={"Content-Type": OCI_MANIFEST, "Content-Length": str(len(raw))},
        )

    async with client_for(handler) as client:
        with pytest.raises(MalformedResponseError, match="cut short"):
            await client.get_manifest("app", "v1")


async def test_truncated_json_without_length() -> None:
    raw = make_image([{"a": b"1"}]).manifest.data[:-10]
    async with client_for(manifest_handler(raw, OCI_MANIFEST)) as client:
        with pytest.raises(MalformedResponseError):
            await client.get_manifest("app", "v1")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def signed_schema1() -> tuple[bytes, str]:
    """A JWS-signed schema1 manifest as Distribution serves it, and its registry digest."""
    payload = json.dumps(
        {
            "schemaVersion": 1,
            "name": "old/app",
            "tag": "v0",
            "architecture": "amd64",
            "fsLayers": [{"blobSum": "sha256:" + "a" * 64}],
            "history": [{"v1Compatibility": '{"id":"1"}'}],
        },
        indent=3,
    ).encode()
    body, tail = payload[:-2], payload[-2:]  # the payload without its closing "\n}"
    protected = _b64url(
        json.dumps({"formatLength": len(body), "formatTail": _b64url(tail)}).encode()
    )
    signature = {"header": {"alg": "ES256"}, "signature": "c2ln", "protected": protected}
    signed = body + b',\n   "signatures": [' + json.dumps(signature).encode() + b"]\n}"
    return signed, compute_digest(payload)


async def test_signed_schema1_digest_is_of_the_payload() -> None:
    raw, digest = signed_schema1()
    assert json.loads(raw)["signatures"]
    assert manifest_digest(raw) == digest != compute_digest(raw)
    handler = manifest_handler(raw, DOCKER_SCHEMA1_SIGNED, **{"Docker-Content-Digest": digest})
    async with client_for(handler) as client:
        result = await client.get_manifest("old/app", "v0")
    assert result.digest == digest
    assert isinstance(result.manifest, Schema1Manifest)
    assert result.manifest.signed and result.manifest.fs_layers == ("sha256:" + "a" * 64,)


async def test_blob_stream_detects_digest_mismatch() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"tampered")

    async with client_for(handler) as client:
        with pytest.raises(DigestMismatchError):
            await client.get_blob("app", compute_digest(b"original"))


async def test_error_tree_and_sentences() -> None:
    responses = {
        "/v2/gone/tags/list": oci_error(404, "NAME_UNKNOWN", "repository name not known"),
        "/v2/locked/tags/list": oci_error(403, "DENIED", "requested access is denied"),
        "/v2/_catalog": oci_error(404, "UNSUPPORTED", "no catalog"),
    }

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "DELETE":
            return oci_error(405, "UNSUPPORTED", "The operation is unsupported.")
        return responses[request.url.path]

    async with client_for(handler) as client:
        with pytest.raises(NotFoundError) as not_found:
            await client.list_tags("gone")
        with pytest.raises(AuthError) as denied:
            await client.list_tags("locked")
        with pytest.raises(CatalogUnsupportedError):
            await client.catalog()
        with pytest.raises(DeleteDisabledError) as disabled:
            await client.delete_manifest("app", "sha256:" + "1" * 64)
    assert not_found.value.code == "NAME_UNKNOWN"
    assert "requested access is denied" in str(denied.value)
    for error in (not_found.value, denied.value, disabled.value):
        text = str(error)
        assert "\n" not in text and text.endswith(".")


async def test_connect_error_is_one_sentence() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Connection refused", request=request)

    from tui.client import ConnectError

    async with client_for(handler, max_retries=0) as client:
        with pytest.raises(ConnectError, match=r"Cannot reach registry\.test"):
            await client.ping()


async def test_bearer_token_cached_per_scope() -> None:
    token_requests: list[httpx.QueryParams] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth.test":
            token_requests.append(request.url.params)
            scope = request.url.params.get("scope", "")
            return httpx.Response(200, json={"token": f"tok:{scope}", "expires_in": 300})
        repo = request.url.path.split("/")[2]
        expected = f"Bearer tok:repository:{repo}:pull"
        if request.headers.get("Authorization") != expected:
            challenge = (
                f'Bearer realm="https://auth.test/token",service="reg",'
                f'scope="repository:{repo}:pull"'
            )
            return oci_error(401, "UNAUTHORIZED", "auth needed", **{"WWW-Authenticate": challenge})
        return httpx.Response(200, json={"name": repo, "tags": ["v1"]})

    async with client_for(handler) as client:
        for _ in range(3):
            assert await client.list_tags("one") == ["v1"]
        assert await client.list_tags("two") == ["v1"]
        assert client.auth.token_requests == 2
    assert [p["scope"] for p in token_requests] == ["repository:one:pull", "repository:two:pull"]
    assert all(p["service"] == "reg" for p in token_requests)


async def test_bearer_token_refused_gives_auth_error_with_registry_message() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth.test":
            return httpx.Response(401, json={"details": "bad credentials"})
        challenge = 'Bearer realm="https://auth.test/token",service="reg"'
        return oci_error(
            401, "UNAUTHORIZED", "authentication required", **{"WWW-Authenticate": challenge}
        )

    async with client_for(handler, username="u", password="wrong-pass") as client:
        with pytest.raises(AuthError) as caught:
            await client.list_tags("app")
    assert "authentication required" in str(caught.value)
    assert "auth.test answered 401: bad credentials" in str(caught.value)
    assert caught.value.response is not None
    assert caught.value.response.url.host == "registry.test"
    assert "wrong-pass" not in str(caught.value)
