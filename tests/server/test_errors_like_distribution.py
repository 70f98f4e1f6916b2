"""Error answers compared with Debian's ``docker-registry`` (Distribution 2.8), side by side.

Each request goes to both servers; status, code and detail must agree, except where regtui
deliberately says more (a malformed digest is called invalid, see ``names.check_digest``).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.helpers.images import make_image, push_image
from tests.helpers.servers import RunningRegistry
from tui.imagegen import OCI_MANIFEST

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]

BAD_MANIFESTS = [
    b"",
    b"{not json",
    b'{"schemaVersion": 2',
    b"{} trailing",
    b"[1, 2]",
    b'  "a string"',
    b"42",
    b"true",
    '{"é": [}'.encode(),
]


def _answer(response: httpx.Response) -> tuple[int, list[dict[str, Any]] | str]:
    try:
        errors = response.json()["errors"]
    except ValueError:
        return response.status_code, response.text
    return response.status_code, errors


def _both(
    registry: RunningRegistry, distribution: RunningRegistry, method: str, path: str, **kw: Any
) -> tuple[httpx.Response, httpx.Response]:
    with httpx.Client(base_url=registry.url) as ours, httpx.Client(base_url=distribution.url) as d:
        return ours.request(method, path, **kw), d.request(method, path, **kw)


def test_invalid_json_manifests_get_distributions_detail(
    registry: RunningRegistry, distribution: RunningRegistry
) -> None:
    for body in BAD_MANIFESTS:
        ours, theirs = _both(
            registry,
            distribution,
            "PUT",
            "/v2/app/manifests/v1",
            content=body,
            headers={"Content-Type": OCI_MANIFEST},
        )
        assert _answer(ours) == _answer(theirs), body


def test_pagination_parameters_as_distribution_2_8(
    registry: RunningRegistry, distribution: RunningRegistry
) -> None:
    image = make_image([{"a": b"page"}])
    for server in (registry, distribution):
        for tag in ("a", "b", "c"):
            push_image(server.url, "app", tag, image)
    # Distribution 2.8 ignores a malformed or negative n in both places.
    for path in (
        "/v2/_catalog?n=abc",
        "/v2/_catalog?n=-1",
        "/v2/_catalog?n=0",
        "/v2/app/tags/list?n=abc",
        "/v2/app/tags/list?n=-1",
        "/v2/app/tags/list?n=",
    ):
        ours, theirs = _both(registry, distribution, "GET", path)
        assert ours.status_code == theirs.status_code == 200, path
        # Distribution lists tags in directory order, regtui sorted: compare as sorted lists.
        ours_doc = {k: sorted(v) if isinstance(v, list) else v for k, v in ours.json().items()}
        theirs_doc = {k: sorted(v) if isinstance(v, list) else v for k, v in theirs.json().items()}
        assert ours_doc == theirs_doc, path


def test_a_malformed_digest_is_called_invalid(
    registry: RunningRegistry, distribution: RunningRegistry
) -> None:
    for method, path in (
        ("DELETE", "/v2/app/blobs/sha256:zzz"),
        ("DELETE", "/v2/app/manifests/sha256:zzz"),
        ("GET", "/v2/app/blobs/sha256:zzz"),
    ):
        ours, theirs = _both(registry, distribution, method, path)
        assert ours.status_code == theirs.status_code == 400
        assert ours.json()["errors"][0]["code"] == theirs.json()["errors"][0]["code"]
        assert ours.json()["errors"] == [
            {
                "code": "DIGEST_INVALID",
                "message": "invalid digest",
                "detail": {"digest": "sha256:zzz"},
            }
        ]
        assert "did not match" not in ours.text


def test_no_versions_in_the_server_header(registry: RunningRegistry) -> None:
    with httpx.Client(base_url=registry.url) as c:
        for response in (c.get("/v2/"), c.get("/v2/app/blobs/sha256:zzz"), c.get("/v2/nope/x")):
            assert response.headers["Server"] == "regtui"
