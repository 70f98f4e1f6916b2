"""Find everything that points at a manifest before it is deleted (no Textual).

One pass over the repository's tags (a HEAD each, through the client's bounded concurrency)
gives the tags on the manifest, the tags on its subject, and the indexes to read for whether
they list it.
"""

from __future__ import annotations

import asyncio

from tui.client import (
    DeletePlan,
    Descriptor,
    ImageIndex,
    ImageManifest,
    NotFoundError,
    RegistryClient,
)
from tui.client.models import INDEX_MEDIA_TYPES, artifact_kind
from tui.logic.deletion import DeleteContext, ParentIndex, SubjectRef

MAX_INDEXES_READ = 200
"""At most this many distinct indexes are read to find the ones listing a manifest."""


async def tag_heads(client: RegistryClient, repo: str) -> dict[str, Descriptor]:
    """What every tag of ``repo`` points at now (a tag deleted meanwhile is left out)."""
    tags = await client.list_tags(repo)

    async def head(tag: str) -> Descriptor | None:
        try:
            return await client.head_manifest(repo, tag)
        except NotFoundError:
            return None

    found = await asyncio.gather(*(head(tag) for tag in tags))
    return {tag: desc for tag, desc in zip(tags, found, strict=True) if desc is not None}


def tags_on(heads: dict[str, Descriptor], digest: str) -> tuple[str, ...]:
    return tuple(sorted(tag for tag, desc in heads.items() if desc.digest == digest))


async def _parents(
    client: RegistryClient, repo: str, digest: str, candidates: list[str]
) -> list[tuple[str, Descriptor]]:
    """``(index digest, entry)`` for each index among ``candidates`` that lists ``digest``."""

    async def listing(index_digest: str) -> tuple[str, Descriptor] | None:
        try:
            result = await client.get_manifest(repo, index_digest)
        except NotFoundError:
            return None
        if not isinstance(result.manifest, ImageIndex):
            return None
        entry = next((m for m in result.manifest.manifests if m.digest == digest), None)
        return (index_digest, entry) if entry is not None else None

    found = await asyncio.gather(*(listing(candidate) for candidate in candidates))
    return [item for item in found if item is not None]


async def plan_manifest_delete(
    client: RegistryClient, repo: str, digest: str, *, parent_hint: str | None = None
) -> DeleteContext:
    """What deleting ``repo@digest`` removes, and what else points at it (nothing is changed).

    ``parent_hint`` is an index known to list the manifest (the one the user came from): it is
    read even when no tag points at it.
    """
    result = await client.get_manifest(repo, digest)
    heads, referrers = await asyncio.gather(
        tag_heads(client, repo), client.get_referrers(repo, digest)
    )
    candidates = sorted(
        {
            desc.digest
            for desc in heads.values()
            if desc.media_type in INDEX_MEDIA_TYPES and desc.digest != digest
        }
    )
    if parent_hint is not None and parent_hint != digest:
        candidates = [parent_hint] + [c for c in candidates if c != parent_hint]
    truncated = len(candidates) > MAX_INDEXES_READ
    parents = [
        ParentIndex(index_digest, tags_on(heads, index_digest), entry.platform)
        for index_digest, entry in await _parents(
            client, repo, digest, candidates[:MAX_INDEXES_READ]
        )
    ]
    manifest = result.manifest
    subject = None
    if isinstance(manifest, ImageManifest | ImageIndex) and manifest.subject is not None:
        subject = SubjectRef(
            manifest.subject.digest,
            manifest.subject.media_type,
            tags_on(heads, manifest.subject.digest),
        )
    plan = DeletePlan(
        repo=repo,
        digest=digest,
        media_type=result.media_type,
        size=result.size,
        tags=tags_on(heads, digest),
        children=manifest.manifests if isinstance(manifest, ImageIndex) else (),
        referrers=tuple(referrers),
    )
    return DeleteContext(
        plan,
        parents=tuple(parents),
        subject=subject,
        artifact_type=artifact_kind(manifest),
        indexes_checked=True,
        indexes_truncated=truncated,
    )
