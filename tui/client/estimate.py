"""Logical storage of a registry, estimated from its manifests (pure: no I/O).

A registry stores every blob once however many manifests and repositories use it; this module
counts each blob (layer, config, manifest) once in the total, once per repository in that
repository's figure, and tells which bytes only one repository references. It is an *estimate*:
blobs that no manifest references (left by deletions until GC runs), upload leftovers and
schema1 layers (their sizes are not in the manifest) are not counted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from tui.client.models import ImageIndex, ImageManifest, ManifestResult, Schema1Manifest

__all__ = ["RepoContent", "RepoEstimate", "UsageEstimate", "blobs_of", "estimate_usage"]

ESTIMATE_NOTE = (
    "Estimate from manifests: each blob counted once; blobs no manifest references "
    "(garbage before GC) and unfinished uploads are not included."
)


@dataclass(frozen=True)
class RepoContent:
    """What was read from one repository: tag -> digest, and every manifest reachable."""

    name: str
    tags: Mapping[str, str]
    manifests: Mapping[str, ManifestResult]
    """By digest; include the children of every index."""


@dataclass(frozen=True)
class RepoEstimate:
    """One repository's usage as estimated from its manifests over the API (the server's exact
    figures are ``embedded_registry.usage.RepoUsage``)."""

    name: str
    tags: int
    manifests: int
    blobs: int
    bytes: int
    """Distinct blobs this repository references (what it would weigh alone)."""
    exclusive_bytes: int
    """Bytes of blobs no other repository references (freed if this one went, after GC)."""
    unknown_sizes: int = 0
    """Blobs of unknown size (schema1 layers)."""


@dataclass(frozen=True)
class UsageEstimate:
    repos: tuple[RepoEstimate, ...]
    total_bytes: int
    blob_count: int
    sum_of_repos: int
    """Sum of the per-repository figures: more than ``total_bytes`` by what sharing saves."""
    unknown_sizes: int = 0
    note: str = ESTIMATE_NOTE
    is_estimate: bool = field(default=True)

    @property
    def shared_savings(self) -> int:
        return self.sum_of_repos - self.total_bytes


def blobs_of(digest: str, result: ManifestResult) -> dict[str, int | None]:
    """Digest -> size (``None`` when unknown) of the manifest itself and what it references.

    An index's children are manifests of their own and counted through their own entries.
    """
    blobs: dict[str, int | None] = {digest: result.size}
    manifest = result.manifest
    if isinstance(manifest, ImageManifest):
        blobs[manifest.config.digest] = manifest.config.size
        for layer in manifest.layers:
            if not layer.urls:  # foreign layers live elsewhere
                blobs[layer.digest] = layer.size
    elif isinstance(manifest, Schema1Manifest):
        for layer_digest in manifest.fs_layers:
            blobs.setdefault(layer_digest, None)
    elif isinstance(manifest, ImageIndex):
        pass
    return blobs


def estimate_usage(repos: Iterable[RepoContent]) -> UsageEstimate:
    per_repo: list[tuple[RepoContent, dict[str, int | None]]] = []
    owners: dict[str, int] = {}
    sizes: dict[str, int | None] = {}
    for repo in repos:
        blobs: dict[str, int | None] = {}
        for digest, result in repo.manifests.items():
            for blob, size in blobs_of(digest, result).items():
                if blobs.get(blob) is None:
                    blobs[blob] = size
        per_repo.append((repo, blobs))
        for blob, size in blobs.items():
            owners[blob] = owners.get(blob, 0) + 1
            if sizes.get(blob) is None:
                sizes[blob] = size
    usages: list[RepoEstimate] = []
    for repo, blobs in per_repo:
        usages.append(
            RepoEstimate(
                name=repo.name,
                tags=len(repo.tags),
                manifests=len(repo.manifests),
                blobs=len(blobs),
                bytes=sum(size or 0 for size in blobs.values()),
                exclusive_bytes=sum(size or 0 for blob, size in blobs.items() if owners[blob] == 1),
                unknown_sizes=sum(1 for size in blobs.values() if size is None),
            )
        )
    usages.sort(key=lambda usage: (-usage.bytes, usage.name))
    return UsageEstimate(
        repos=tuple(usages),
        total_bytes=sum(size or 0 for size in sizes.values()),
        blob_count=len(sizes),
        sum_of_repos=sum(usage.bytes for usage in usages),
        unknown_sizes=sum(1 for size in sizes.values() if size is None),
    )
