"""The one table of keys names Distribution's paths.go layout, and the local layout maps the
same keys to files."""

from __future__ import annotations

from pathlib import Path

import pytest

from embedded_registry.storage.paths import KEYS, Layout

PATH_KEYS = Layout("/")

DIGESTS = ["sha256:" + "ab" * 32, "sha512:" + "0f" * 64]
NAMES = ["app", "team/app", "a-b/c_d.e"]


@pytest.mark.parametrize("digest", DIGESTS)
@pytest.mark.parametrize("name", NAMES)
def test_string_keys_match_the_layout(name: str, digest: str) -> None:
    keys = KEYS
    assert keys.v2 == str(PATH_KEYS.v2)
    assert keys.blobs_dir == str(PATH_KEYS.blobs_dir)
    assert keys.repositories_dir == str(PATH_KEYS.repositories_dir)
    assert keys.blob_dir(digest) == str(PATH_KEYS.blob_dir(digest))
    assert keys.blob_data(digest) == str(PATH_KEYS.blob_data(digest))
    for method in ("repo_dir", "layers_dir", "manifests_dir", "revisions_dir", "tags_dir"):
        assert getattr(keys, method)(name) == str(getattr(PATH_KEYS, method)(name)), method
    assert keys.uploads_dir(name) == str(PATH_KEYS.uploads_dir(name))
    assert keys.layer_link(name, digest) == str(PATH_KEYS.layer_link(name, digest))
    assert keys.revision_link(name, digest) == str(PATH_KEYS.revision_link(name, digest))
    assert keys.tag_dir(name, "v1") == str(PATH_KEYS.tag_dir(name, "v1"))
    assert keys.tag_current_link(name, "v1") == str(PATH_KEYS.tag_current_link(name, "v1"))
    assert keys.tag_index_link(name, "v1", digest) == str(
        PATH_KEYS.tag_index_link(name, "v1", digest)
    )
    upload = "0b1c2d3e-aaaa-bbbb-cccc-000000000000"
    assert keys.upload_dir(name, upload) == str(PATH_KEYS.upload_dir(name, upload))
    assert keys.upload_data(name, upload) == str(PATH_KEYS.upload_data(name, upload))
    assert keys.upload_startedat(name, upload) == str(PATH_KEYS.upload_startedat(name, upload))


def test_keys_are_distributions_paths() -> None:
    digest = "sha256:" + "ab" * 32
    v2 = "/docker/registry/v2"
    assert KEYS.blob_data(digest) == f"{v2}/blobs/sha256/ab/{'ab' * 32}/data"
    assert KEYS.layer_link("team/app", digest) == (
        f"{v2}/repositories/team/app/_layers/sha256/{'ab' * 32}/link"
    )
    assert KEYS.revision_link("app", digest) == (
        f"{v2}/repositories/app/_manifests/revisions/sha256/{'ab' * 32}/link"
    )
    assert KEYS.tag_current_link("app", "v1") == (
        f"{v2}/repositories/app/_manifests/tags/v1/current/link"
    )
    assert KEYS.tag_index_link("app", "v1", digest) == (
        f"{v2}/repositories/app/_manifests/tags/v1/index/sha256/{'ab' * 32}/link"
    )
    assert KEYS.upload_startedat("app", "u") == f"{v2}/repositories/app/_uploads/u/startedat"
    assert KEYS.commit_marker("app") == f"{v2}/repositories/app/_manifests/regtui-last-commit"


def test_a_local_layout_puts_every_key_under_its_root(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    digest = "sha256:" + "ab" * 32
    assert layout.v2 == tmp_path / "docker" / "registry" / "v2"
    assert layout.blob_data(digest) == tmp_path / KEYS.blob_data(digest).lstrip("/")
    assert layout.tag_current_link("a/b", "v1") == (
        tmp_path / KEYS.tag_current_link("a/b", "v1").lstrip("/")
    )
