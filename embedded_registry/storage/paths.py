"""Paths of CNCF Distribution's filesystem storage layout.

Every module that touches the disk builds its paths here, so the layout is written down once.
The layout (under ``<root>/docker/registry/v2/``) is the one of Distribution's
``registry/storage/paths.go``::

    blobs/sha256/<first two hex>/<hex>/data
    repositories/<name>/_layers/sha256/<hex>/link
    repositories/<name>/_manifests/revisions/sha256/<hex>/link
    repositories/<name>/_manifests/tags/<tag>/current/link
    repositories/<name>/_manifests/tags/<tag>/index/sha256/<hex>/link
    repositories/<name>/_uploads/<uuid>/{data,startedat,hashstates/...}

Callers must validate repository names, tags and digests (``embedded_registry.names``) before
building a path: these functions join what they are given.
"""

from __future__ import annotations

from pathlib import Path

V2_PREFIX = Path("docker") / "registry" / "v2"

COMMIT_MARKER = "regtui-last-commit"
"""``repositories/<name>/_manifests/regtui-last-commit``: rewritten on every manifest or tag
delete. A directory shows a delete in its mtime; an object store keeps no trace of one, and GC
needs the time of a repository's last commit to tell a finished push from one in flight
(:mod:`embedded_registry.gc.activity`). Distribution never reads it."""


def split_digest(digest: str) -> tuple[str, str]:
    """Split ``sha256:<hex>`` into ``("sha256", "<hex>")``."""
    algorithm, _, hex_part = digest.partition(":")
    return algorithm, hex_part


class Layout:
    """Paths of one storage root in Distribution's layout."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.v2 = self.root / V2_PREFIX

    # blobs -------------------------------------------------------------------------------
    @property
    def blobs_dir(self) -> Path:
        return self.v2 / "blobs"

    def blob_dir(self, digest: str) -> Path:
        algorithm, hex_part = split_digest(digest)
        return self.blobs_dir / algorithm / hex_part[:2] / hex_part

    def blob_data(self, digest: str) -> Path:
        return self.blob_dir(digest) / "data"

    # repositories ------------------------------------------------------------------------
    @property
    def repositories_dir(self) -> Path:
        return self.v2 / "repositories"

    def repo_dir(self, name: str) -> Path:
        return self.repositories_dir / name

    def layers_dir(self, name: str) -> Path:
        return self.repo_dir(name) / "_layers"

    def layer_link(self, name: str, digest: str) -> Path:
        algorithm, hex_part = split_digest(digest)
        return self.layers_dir(name) / algorithm / hex_part / "link"

    def manifests_dir(self, name: str) -> Path:
        return self.repo_dir(name) / "_manifests"

    def revisions_dir(self, name: str) -> Path:
        return self.manifests_dir(name) / "revisions"

    def revision_link(self, name: str, digest: str) -> Path:
        algorithm, hex_part = split_digest(digest)
        return self.revisions_dir(name) / algorithm / hex_part / "link"

    def tags_dir(self, name: str) -> Path:
        return self.manifests_dir(name) / "tags"

    def tag_dir(self, name: str, tag: str) -> Path:
        return self.tags_dir(name) / tag

    def tag_current_link(self, name: str, tag: str) -> Path:
        return self.tag_dir(name, tag) / "current" / "link"

    def tag_index_link(self, name: str, tag: str, digest: str) -> Path:
        algorithm, hex_part = split_digest(digest)
        return self.tag_dir(name, tag) / "index" / algorithm / hex_part / "link"

    def uploads_dir(self, name: str) -> Path:
        return self.repo_dir(name) / "_uploads"

    def upload_dir(self, name: str, upload_id: str) -> Path:
        return self.uploads_dir(name) / upload_id

    def upload_data(self, name: str, upload_id: str) -> Path:
        return self.upload_dir(name, upload_id) / "data"

    def upload_startedat(self, name: str, upload_id: str) -> Path:
        return self.upload_dir(name, upload_id) / "startedat"


class KeyLayout:
    """The layout as storage-driver keys, built as plain strings: the same names as
    ``str(Layout("/").…)`` (``/docker/registry/v2/blobs/...``), without pathlib's joins, which
    cost more than the system calls of a blob HEAD on the filesystem driver."""

    v2 = "/" + V2_PREFIX.as_posix()
    blobs_dir = v2 + "/blobs"
    repositories_dir = v2 + "/repositories"

    def blob_dir(self, digest: str) -> str:
        algorithm, _, hex_part = digest.partition(":")
        return f"{self.blobs_dir}/{algorithm}/{hex_part[:2]}/{hex_part}"

    def blob_data(self, digest: str) -> str:
        algorithm, _, hex_part = digest.partition(":")
        return f"{self.blobs_dir}/{algorithm}/{hex_part[:2]}/{hex_part}/data"

    def repo_dir(self, name: str) -> str:
        return f"{self.repositories_dir}/{name}"

    def layers_dir(self, name: str) -> str:
        return f"{self.repositories_dir}/{name}/_layers"

    def layer_link(self, name: str, digest: str) -> str:
        algorithm, _, hex_part = digest.partition(":")
        return f"{self.repositories_dir}/{name}/_layers/{algorithm}/{hex_part}/link"

    def manifests_dir(self, name: str) -> str:
        return f"{self.repositories_dir}/{name}/_manifests"

    def revisions_dir(self, name: str) -> str:
        return f"{self.repositories_dir}/{name}/_manifests/revisions"

    def revision_link(self, name: str, digest: str) -> str:
        algorithm, _, hex_part = digest.partition(":")
        return f"{self.revisions_dir(name)}/{algorithm}/{hex_part}/link"

    def tags_dir(self, name: str) -> str:
        return f"{self.repositories_dir}/{name}/_manifests/tags"

    def tag_dir(self, name: str, tag: str) -> str:
        return f"{self.tags_dir(name)}/{tag}"

    def tag_current_link(self, name: str, tag: str) -> str:
        return f"{self.tags_dir(name)}/{tag}/current/link"

    def tag_index_link(self, name: str, tag: str, digest: str) -> str:
        algorithm, _, hex_part = digest.partition(":")
        return f"{self.tags_dir(name)}/{tag}/index/{algorithm}/{hex_part}/link"

    def uploads_dir(self, name: str) -> str:
        return f"{self.repositories_dir}/{name}/_uploads"

    def upload_dir(self, name: str, upload_id: str) -> str:
        return f"{self.repositories_dir}/{name}/_uploads/{upload_id}"

    def upload_data(self, name: str, upload_id: str) -> str:
        return f"{self.upload_dir(name, upload_id)}/data"

    def upload_startedat(self, name: str, upload_id: str) -> str:
        return f"{self.upload_dir(name, upload_id)}/startedat"
