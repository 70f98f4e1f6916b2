"""Manifests, tags and referrers of one repository, in Distribution's ``_manifests`` layout."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from collections import OrderedDict
from pathlib import Path

from embedded_registry import errors, names
from embedded_registry.mediatypes import ManifestInfo, describe_stored, parse_manifest
from embedded_registry.storage.blobs import BlobStore
from embedded_registry.storage.fsutil import read_link, write_link
from embedded_registry.storage.paths import Layout
from embedded_registry.storage.tagindex import TagIndex

# Parsed manifests by digest (content is immutable, so entries never go stale).
INFO_CACHE_SIZE = 4096


def compute_digest(body: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, body).hexdigest()}"


class ManifestStore:
    def __init__(self, layout: Layout, blobs: BlobStore) -> None:
        self.layout = layout
        self.blobs = blobs
        self._info: OrderedDict[str, ManifestInfo] = OrderedDict()
        self.tag_index = TagIndex()
        self._repositories = os.fspath(layout.repositories_dir)

    # --- reading ---------------------------------------------------------------------------
    # Paths as strings on the paths of every manifest GET and HEAD: pathlib's joins cost more
    # than the reads they name.
    def has_revision(self, name: str, digest: str) -> bool:
        algorithm, _, hex_part = digest.partition(":")
        path = f"{self._repositories}/{name}/_manifests/revisions/{algorithm}/{hex_part}/link"
        return read_link(path) == digest

    def tag_digest(self, name: str, tag: str) -> str | None:
        return read_link(f"{self._repositories}/{name}/_manifests/tags/{tag}/current/link")

    def resolve(self, name: str, reference: str) -> str:
        """The digest ``reference`` (tag or digest) names in ``name``, or MANIFEST_UNKNOWN."""
        if names.looks_like_digest(reference):
            if not self.has_revision(name, reference):
                raise errors.manifest_unknown({"Name": name, "Revision": reference})
            return reference
        digest = self.tag_digest(name, reference)
        if digest is None or not self.has_revision(name, digest):
            raise errors.manifest_unknown({"Tag": reference})
        return digest

    def info(self, digest: str, body: bytes | None = None) -> ManifestInfo | None:
        cached = self._info.get(digest)
        if cached is not None:
            self._info.move_to_end(digest)
            return cached
        if body is None:
            body = self.blobs.read(digest)
            if body is None:
                return None
        info = describe_stored(body)
        self._remember(digest, info)
        return info

    def _remember(self, digest: str, info: ManifestInfo) -> None:
        self._info[digest] = info
        if len(self._info) > INFO_CACHE_SIZE:
            self._info.popitem(last=False)

    def get(self, name: str, reference: str) -> tuple[str, bytes, ManifestInfo]:
        digest = self.resolve(name, reference)
        body = self.blobs.read(digest)
        if body is None:
            raise errors.manifest_unknown({"Name": name, "Revision": digest})
        info = self.info(digest, body)
        assert info is not None
        return digest, body, info

    # --- writing ---------------------------------------------------------------------------
    def put(
        self, name: str, reference: str, body: bytes, content_type: str
    ) -> tuple[str, ManifestInfo]:
        """Validate and store a manifest; tag it when ``reference`` is a tag."""
        algorithm = reference.split(":", 1)[0] if names.looks_like_digest(reference) else "sha256"
        digest = compute_digest(body, algorithm)
        if names.looks_like_digest(reference) and digest != reference:
            raise errors.digest_invalid()
        info = parse_manifest(body, content_type)
        missing = [
            errors.manifest_blob_unknown(blob)
            for blob in info.blobs
            if self.blobs.linked_size(name, blob) is None
        ]
        missing += [
            errors.manifest_blob_unknown(child)
            for child in info.children
            if not self.has_revision(name, child) or self.blobs.size(child) is None
        ]
        if missing:
            raise errors.RegistryError.combine(missing)
        self.blobs.put_bytes(digest, body)
        revision = self.layout.revision_link(name, digest)
        new_revision = read_link(revision) != digest
        if new_revision:
            write_link(revision, digest)
        else:
            # A re-push is a manifest commit too: GC tells finished pushes from pushes in
            # flight by the time of each repository's last commit (embedded_registry.gc).
            with contextlib.suppress(OSError):
                os.utime(revision)
        self._remember(digest, info)
        if not names.looks_like_digest(reference):
            try:
                self.tag(name, reference, digest)
            except errors.RegistryError:
                # The disk filled up while tagging: the PUT fails, so leave no new revision
                # a client could find by digest (a tag directory without its current link is
                # never listed).
                if new_revision:
                    with contextlib.suppress(OSError):
                        revision.unlink()
                raise
        return digest, info

    def tag(self, name: str, tag: str, digest: str) -> None:
        index = self.layout.tag_index_link(name, tag, digest)
        if read_link(index) != digest:
            write_link(index, digest)
        current = self.layout.tag_current_link(name, tag)
        if read_link(current) != digest:
            write_link(current, digest)

    def delete_tag(self, name: str, tag: str) -> None:
        """Remove a tag (its current and index links); MANIFEST_UNKNOWN when absent."""
        directory = self.layout.tag_dir(name, tag)
        if self.tag_digest(name, tag) is None:
            raise errors.manifest_unknown({"Tag": tag})
        shutil.rmtree(directory, ignore_errors=True)

    def delete(self, name: str, digest: str) -> list[str]:
        """Delete a revision and every tag whose current link points at it (as Distribution).

        The revision's link file goes; the blob stays for garbage collection. Returns the tags
        removed.
        """
        link = self.layout.revision_link(name, digest)
        if read_link(link) != digest:
            raise errors.manifest_unknown()
        removed = [tag for tag in self.tags(name) or [] if self.tag_digest(name, tag) == digest]
        for tag in removed:
            shutil.rmtree(self.layout.tag_dir(name, tag), ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            link.unlink()
        return removed

    # --- listing ---------------------------------------------------------------------------
    def tags(self, name: str) -> list[str] | None:
        """Sorted tags of ``name``; ``None`` when the repository has no tags directory.

        Only tags whose ``current/link`` can hold a digest are listed: a registry killed while
        it wrote a tag leaves its directory without one (or, Distribution writing in place, a
        short one), and a listed tag must resolve. Kept in memory and checked with a ``stat``
        of the tags directory (:mod:`embedded_registry.storage.tagindex`): this answers every
        ``tags/list``.
        """
        return self.tag_index.tags(f"{self._repositories}/{name}/_manifests/tags")

    def revisions(self, name: str) -> list[str]:
        """Digests of the repository's manifest revisions (those whose link file exists)."""
        found = []
        base = self.layout.revisions_dir(name)
        for algorithm in ("sha256", "sha512"):
            try:
                entries = os.listdir(base / algorithm)
            except (FileNotFoundError, NotADirectoryError):
                continue
            for entry in entries:
                digest = f"{algorithm}:{entry}"
                if names.is_valid_digest(digest) and self.has_revision(name, digest):
                    found.append(digest)
        return sorted(found)

    def referrers(self, name: str, subject: str) -> list[dict[str, object]]:
        """Descriptors of the repository's manifests whose ``subject`` is ``subject``."""
        result = []
        for digest in self.revisions(name):
            info = self.info(digest)
            if info is not None and info.subject == subject:
                result.append(info.referrer_descriptor(digest))
        return result

    def repo_exists(self, name: str) -> bool:
        directory: Path = self.layout.repo_dir(name)
        return (directory / "_manifests").is_dir() or (directory / "_layers").is_dir()
