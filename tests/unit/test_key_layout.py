"""The storage keys the stores build as strings name exactly what the layout names."""

from __future__ import annotations

import pytest

from embedded_registry.storage.driver.base import KEYS as PATH_KEYS
from embedded_registry.storage.paths import KeyLayout

DIGESTS = ["sha256:" + "ab" * 32, "sha512:" + "0f" * 64]
NAMES = ["app", "team/app", "a-b/c_d.e"]


@pytest.mark.parametrize("digest", DIGESTS)
@pytest.mark.parametrize("name", NAMES)
def test_string_keys_match_the_layout(name: str, digest: str) -> None:
    keys = KeyLayout()
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
