"""The spec's grammar for names, tags and digests, checked before any path is built."""

from __future__ import annotations

import pytest

from embedded_registry import errors, names

GOOD_NAMES = [
    "a",
    "library/alpine",
    "a/b/c/d",
    "my-repo",
    "my--repo",
    "my_repo",
    "my__repo",
    "my.repo",
    "0abc/9xyz",
    "a" * 255,
]
BAD_NAMES = [
    "",
    "Foo",
    "foo/Bar",
    "..",
    "foo/../bar",
    "../etc",
    "/foo",
    "foo/",
    "foo//bar",
    "_uploads",
    "foo/_manifests",
    "foo___bar",
    "foo.-bar",
    "-foo",
    "foo-",
    "foo.",
    "foo bar",
    "foo%2fbar",
    "a" * 256,
]


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_valid_names(name: str) -> None:
    assert names.is_valid_name(name)
    assert names.check_name(name) == name


@pytest.mark.parametrize("name", BAD_NAMES)
def test_invalid_names_raise_name_invalid(name: str) -> None:
    assert not names.is_valid_name(name)
    with pytest.raises(errors.RegistryError) as caught:
        names.check_name(name)
    assert caught.value.code == "NAME_INVALID"
    assert caught.value.status == 400


@pytest.mark.parametrize("tag", ["latest", "v1.2.3", "_private", "A-b_c.d", "x" * 128])
def test_valid_tags(tag: str) -> None:
    assert names.is_valid_tag(tag)


@pytest.mark.parametrize("tag", ["", "-dash", ".dot", "x" * 129, "a/b", "a:b", "..", "tag with"])
def test_invalid_tags(tag: str) -> None:
    assert not names.is_valid_tag(tag)
    with pytest.raises(errors.RegistryError) as caught:
        names.check_reference(tag)
    assert caught.value.code in {"TAG_INVALID", "DIGEST_INVALID"}


def test_digests() -> None:
    assert names.is_valid_digest("sha256:" + "a" * 64)
    assert names.is_valid_digest("sha512:" + "0" * 128)
    for bad in (
        "sha256:" + "A" * 64,
        "sha256:" + "a" * 63,
        "sha256:" + "a" * 65,
        "sha512:" + "a" * 64,
        "md5:" + "a" * 32,
        "sha256:../../etc",
        "sha256",
    ):
        assert not names.is_valid_digest(bad), bad
        with pytest.raises(errors.RegistryError) as caught:
            names.check_digest(bad)
        assert caught.value.code == "DIGEST_INVALID"


def test_reference_is_a_digest_when_it_has_an_algorithm() -> None:
    digest = "sha256:" + "b" * 64
    assert names.check_reference(digest) == digest
    assert names.check_reference("v1") == "v1"


def test_upload_ids_are_uuids() -> None:
    assert names.is_valid_upload_id("3b6a1c0e-5d4e-4b8a-9b0a-2f1f3d1e2c3a")
    assert not names.is_valid_upload_id("../../blobs")
    assert not names.is_valid_upload_id("3B6A1C0E-5D4E-4B8A-9B0A-2F1F3D1E2C3A")


def test_error_body_renders_like_distribution() -> None:
    error = errors.blob_unknown("sha256:" + "c" * 64)
    assert error.status == 404
    assert error.body() == (
        b'{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry",'
        b'"detail":"sha256:' + b"c" * 64 + b'"}]}\n'
    )
    combined = errors.RegistryError.combine(
        [errors.manifest_blob_unknown("sha256:1"), errors.manifest_blob_unknown("sha256:2")]
    )
    assert [entry["detail"] for entry in combined.entries()] == ["sha256:1", "sha256:2"]
    assert errors.unauthorized("r").headers == {"WWW-Authenticate": 'Basic realm="r"'}
    assert errors.range_invalid().status == 416
    assert errors.unsupported().status == 405
