"""Distribution's directory layout written and read with plain files, for tests.

A test that needs a registry directory on disk before a server (or ``DriverStorage``) opens it
writes it here, file by file, the way Distribution leaves it (``bench/bench_gc.py`` does the same
for its trees). Nothing is validated: a test that needs the registry's checks goes through the
served store (``DriverStorage(FilesystemDriver(root))``). The walks at the end are the slow,
obvious answers the in-memory indexes are compared with.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path

from embedded_registry import names
from embedded_registry.mediatypes import OCI_MANIFEST
from embedded_registry.storage.paths import Layout


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


class LayoutWriter:
    """Writes blobs, links, tags and uploads under ``root`` as Distribution does."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.layout = Layout(root)

    def ensure(self) -> None:
        """``docker/registry/v2/{blobs,repositories}``, as a registry creates them at start."""
        self.layout.blobs_dir.mkdir(parents=True, exist_ok=True)
        self.layout.repositories_dir.mkdir(parents=True, exist_ok=True)

    def blob(self, data: bytes) -> str:
        """Store ``data`` as a blob; its digest."""
        digest = digest_of(data)
        _write(self.layout.blob_data(digest), data)
        return digest

    def link(self, name: str, digest: str) -> None:
        """``name``'s ``_layers`` link to the blob (what makes ``name`` a repository)."""
        _write(self.layout.layer_link(name, digest), digest.encode())

    def revision(self, name: str, digest: str) -> None:
        _write(self.layout.revision_link(name, digest), digest.encode())

    def tag(self, name: str, tag: str, digest: str) -> None:
        """The tag's index link, then its current link (Distribution's order)."""
        _write(self.layout.tag_index_link(name, tag, digest), digest.encode())
        _write(self.layout.tag_current_link(name, tag), digest.encode())

    def upload(self, name: str, startedat: str = "2020-01-01T00:00:00Z") -> str:
        """An upload session with no bytes yet; its id."""
        upload_id = str(uuid.uuid4())
        _write(self.layout.upload_data(name, upload_id), b"")
        _write(self.layout.upload_startedat(name, upload_id), startedat.encode())
        return upload_id

    def add_blob(self, name: str, data: bytes) -> dict[str, object]:
        """A blob stored and linked into ``name``; its descriptor."""
        digest = self.blob(data)
        self.link(name, digest)
        return {"mediaType": "application/octet-stream", "digest": digest, "size": len(data)}

    def manifest(self, name: str, label: str, **extra: object) -> bytes:
        """An OCI image manifest whose config and layer are stored and linked into ``name``
        (the manifest itself is not stored: push it, or :meth:`put` it)."""
        config = self.add_blob(name, json.dumps({"label": label}).encode())
        config["mediaType"] = "application/vnd.oci.image.config.v1+json"
        layer = self.add_blob(name, label.encode() * 10)
        document = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config,
            "layers": [layer],
            **extra,
        }
        return json.dumps(document).encode()

    def put(self, name: str, body: bytes, tag: str | None = None) -> str:
        """A manifest stored as a revision of ``name`` (and tagged); its digest."""
        digest = self.blob(body)
        self.revision(name, digest)
        if tag is not None:
            self.tag(name, tag, digest)
        return digest

    def read_blob(self, digest: str) -> bytes:
        return self.layout.blob_data(digest).read_bytes()

    def descriptor(self, digest: str) -> dict[str, object]:
        """The descriptor of a stored manifest (as a ``subject``)."""
        data = self.read_blob(digest)
        return {"mediaType": json.loads(data)["mediaType"], "digest": digest, "size": len(data)}


# -- plain walks: the answers the indexes must give ---------------------------------------------


def _link(path: Path) -> str | None:
    try:
        text = path.read_text()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    return text if names.is_valid_digest(text) else None


def walk_repositories(repositories_dir: Path) -> list[str]:
    """Every repository under ``repositories_dir`` (a directory holding ``_layers`` or
    ``_manifests``, below no ``_`` directory), in Distribution's component-wise order."""
    found = set()
    for directory, subdirs, _files in os.walk(repositories_dir):
        here = Path(directory)
        if here != repositories_dir and {"_layers", "_manifests"} & set(subdirs):
            found.add(here.relative_to(repositories_dir).as_posix())
        subdirs[:] = [d for d in subdirs if not d.startswith("_")]
    valid = [name for name in found if names.is_valid_name(name)]
    return sorted(valid, key=lambda name: tuple(name.split("/")))


def walk_tags(layout: Layout, name: str) -> list[str] | None:
    """The tags whose current link holds a digest; ``None`` without a tags directory."""
    base = layout.tags_dir(name)
    if not base.is_dir():
        return None
    return sorted(
        entry.name for entry in os.scandir(base) if _link(layout.tag_current_link(name, entry.name))
    )


def walk_revisions(layout: Layout, name: str) -> list[str]:
    """The digests of ``name``'s manifest revisions whose link file names them."""
    found = []
    for algorithm in ("sha256", "sha512"):
        base = layout.revisions_dir(name) / algorithm
        if not base.is_dir():
            continue
        for entry in os.scandir(base):
            digest = f"{algorithm}:{entry.name}"
            if _link(layout.revision_link(name, digest)) == digest:
                found.append(digest)
    return sorted(found)


def walk_uploads(layout: Layout) -> list[tuple[str, str]]:
    """Every ``(repository, upload id)`` directory on disk."""
    found = []
    root = layout.repositories_dir
    for directory, subdirs, _files in os.walk(root):
        here = Path(directory)
        if here.name == "_uploads":
            name = here.parent.relative_to(root).as_posix()
            found += [(name, upload_id) for upload_id in sorted(subdirs)]
            subdirs.clear()
        else:
            subdirs[:] = sorted(d for d in subdirs if d == "_uploads" or not d.startswith("_"))
    return found
