"""Keys of CNCF Distribution's storage layout, written once (:data:`KEYS`).

Every module that touches the storage builds its keys here; :class:`Layout` maps the same keys
to files under a local root.
The layout (under ``<root>/docker/registry/v2/``) is the one of Distribution's
``registry/storage/paths.go``::

    blobs/sha256/<first two hex>/<hex>/data
    repositories/<name>/_layers/sha256/<hex>/link
    repositories/<name>/_manifests/revisions/sha256/<hex>/link
    repositories/<name>/_manifests/tags/<tag>/current/link
    repositories/<name>/_manifests/tags/<tag>/index/sha256/<hex>/link
    repositories/<name>/_manifests/regtui-last-commit  (regtui's own: COMMIT_MARKER)
    repositories/<name>/_uploads/<uuid>/{data,startedat,hashstates/...}

Callers must validate repository names, tags and digests (``embedded_registry.names``) before
building a key: these functions join what they are given.
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


class KeyLayout:
    """The layout, written once: every key of Distribution's layout as the storage drivers
    name it, an absolute slash-separated string (``/docker/registry/v2/blobs/...``), the same
    for every driver. Plain string formatting, without pathlib's joins, which cost more than
    the system calls of a blob HEAD on the filesystem driver."""

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

    def commit_marker(self, name: str) -> str:
        return f"{self.repositories_dir}/{name}/_manifests/{COMMIT_MARKER}"

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


KEYS = KeyLayout()
"""The one table of keys: what every store, GC and the drivers read and write."""


class Layout:
    """The keys of :data:`KEYS` as files under one local root (``<root>/docker/registry/v2/
    ...``): for what works on a directory itself (the server's checks of its root, the
    filesystem driver's sweep recovery, tests). It names nothing of its own."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.v2 = self.path(KEYS.v2)

    def path(self, key: str) -> Path:
        """The local file of ``key``."""
        return self.root / key.lstrip("/")

    @property
    def blobs_dir(self) -> Path:
        return self.path(KEYS.blobs_dir)

    def blob_dir(self, digest: str) -> Path:
        return self.path(KEYS.blob_dir(digest))

    def blob_data(self, digest: str) -> Path:
        return self.path(KEYS.blob_data(digest))

    @property
    def repositories_dir(self) -> Path:
        return self.path(KEYS.repositories_dir)

    def repo_dir(self, name: str) -> Path:
        return self.path(KEYS.repo_dir(name))

    def layers_dir(self, name: str) -> Path:
        return self.path(KEYS.layers_dir(name))

    def layer_link(self, name: str, digest: str) -> Path:
        return self.path(KEYS.layer_link(name, digest))

    def manifests_dir(self, name: str) -> Path:
        return self.path(KEYS.manifests_dir(name))

    def revisions_dir(self, name: str) -> Path:
        return self.path(KEYS.revisions_dir(name))

    def revision_link(self, name: str, digest: str) -> Path:
        return self.path(KEYS.revision_link(name, digest))

    def tags_dir(self, name: str) -> Path:
        return self.path(KEYS.tags_dir(name))

    def tag_dir(self, name: str, tag: str) -> Path:
        return self.path(KEYS.tag_dir(name, tag))

    def tag_current_link(self, name: str, tag: str) -> Path:
        return self.path(KEYS.tag_current_link(name, tag))

    def tag_index_link(self, name: str, tag: str, digest: str) -> Path:
        return self.path(KEYS.tag_index_link(name, tag, digest))

    def uploads_dir(self, name: str) -> Path:
        return self.path(KEYS.uploads_dir(name))

    def upload_dir(self, name: str, upload_id: str) -> Path:
        return self.path(KEYS.upload_dir(name, upload_id))

    def upload_data(self, name: str, upload_id: str) -> Path:
        return self.path(KEYS.upload_data(name, upload_id))

    def upload_startedat(self, name: str, upload_id: str) -> Path:
        return self.path(KEYS.upload_startedat(name, upload_id))
