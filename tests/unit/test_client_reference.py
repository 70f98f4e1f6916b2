"""Image references are parsed as Docker parses them."""

from __future__ import annotations

import pytest

from tui.client.reference import (
    InvalidReferenceError,
    Reference,
    is_loopback_host,
    parse_reference,
    parse_registry,
)

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("alpine", Reference("docker.io", "library/alpine")),
        ("alpine:3.19", Reference("docker.io", "library/alpine", tag="3.19")),
        ("docker.io/alpine", Reference("docker.io", "library/alpine")),
        ("index.docker.io/user/app:v1", Reference("docker.io", "user/app", tag="v1")),
        ("user/app", Reference("docker.io", "user/app")),
        ("ghcr.io/org/app:1.0", Reference("ghcr.io", "org/app", tag="1.0")),
        ("localhost/app", Reference("localhost", "app")),
        ("127.0.0.1:5000/a/b/c:t", Reference("127.0.0.1:5000", "a/b/c", tag="t")),
        (f"127.0.0.1:5000/app@{DIGEST}", Reference("127.0.0.1:5000", "app", digest=DIGEST)),
        (
            f"host.example:443/app:v2@{DIGEST}",
            Reference("host.example:443", "app", tag="v2", digest=DIGEST),
        ),
        ("http://127.0.0.1:5000/app", Reference("127.0.0.1:5000", "app", scheme="http")),
        ("[::1]:5000/app", Reference("[::1]:5000", "app")),
    ],
)
def test_parse_reference(text: str, expected: Reference) -> None:
    assert parse_reference(text) == expected


def test_ref_prefers_digest_then_tag_then_latest() -> None:
    assert parse_reference(f"h.io/a:t@{DIGEST}").ref == DIGEST
    assert parse_reference("h.io/a:t").ref == "t"
    assert parse_reference("h.io/a").ref == "latest"
    assert str(parse_reference(f"h.io/a:t@{DIGEST}")) == f"h.io/a:t@{DIGEST}"


def test_docker_hub_api_host() -> None:
    assert parse_reference("alpine").api_host == "registry-1.docker.io"
    assert parse_reference("ghcr.io/a/b").api_host == "ghcr.io"


@pytest.mark.parametrize(
    "text",
    ["", "UPPER/case", "h.io/app:", "h.io/app@sha256", "h.io/app:bad tag", "ftp://h.io/a", "a//b"],
)
def test_invalid_references(text: str) -> None:
    with pytest.raises(InvalidReferenceError):
        parse_reference(text)


def test_require_host() -> None:
    with pytest.raises(InvalidReferenceError):
        parse_reference("app:1", require_host=True)


def test_parse_registry() -> None:
    assert parse_registry("127.0.0.1:5000") == (None, "127.0.0.1:5000")
    assert parse_registry("https://Reg.Example/") == ("https", "reg.example")
    with pytest.raises(InvalidReferenceError):
        parse_registry("reg.example/app")


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("localhost:5000", True),
        ("127.0.0.1:5000", True),
        ("127.1.2.3", True),
        ("[::1]:5000", True),
        ("10.0.0.1:5000", False),
        ("registry.example", False),
        ("localhost.example", False),
    ],
)
def test_is_loopback_host(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback
