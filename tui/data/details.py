"""Fetch what the tag table and the image screen show: tag details, an index's manifests."""

from __future__ import annotations

import asyncio
from datetime import datetime

from tui.client import (
    Descriptor,
    ImageIndex,
    ImageManifest,
    NotFoundError,
    RegistryClient,
    RegistryClientError,
    Schema1Manifest,
)
from tui.logic.fmt import parse_created
from tui.logic.image_view import ChildManifest
from tui.logic.tags import TagRow


async def tag_details(client: RegistryClient, repo: str, row: TagRow) -> TagRow:
    """``row`` with its details filled in; a failure is recorded on the row, not raised."""
    try:
        result = await client.get_manifest(repo, row.tag)
        manifest = result.manifest
        if isinstance(manifest, ImageManifest):
            created = None
            platforms: tuple[str, ...] = ()
            if manifest.is_artifact:
                platforms = (manifest.artifact_type or manifest.config.media_type,)
            else:
                config = await client.get_config(repo, manifest)
                created = parse_created(config.created)
                platforms = (str(config.platform),) if config.platform else ()
            return row.with_details(
                digest=result.digest,
                media_type=result.media_type,
                size=manifest.total_size,
                created=created,
                platforms=platforms,
            )
        if isinstance(manifest, ImageIndex):
            return await _index_details(client, repo, row, result.digest, manifest)
        if isinstance(manifest, Schema1Manifest):
            created = None
            if manifest.history:
                created = parse_created(str(manifest.history[0].get("created", "")))
            return row.with_details(
                digest=result.digest,
                media_type=result.media_type,
                created=created,
                platforms=(f"linux/{manifest.architecture}",),
            )
        raise AssertionError(f"unexpected manifest model {type(manifest).__name__}")
    except RegistryClientError as error:
        return row.with_details(error=error.title)


async def _index_details(
    client: RegistryClient, repo: str, row: TagRow, digest: str, index: ImageIndex
) -> TagRow:
    """An index: its platforms, the largest child's size and the newest child's date."""
    children = [
        child
        for child in index.manifests
        if not (child.platform and child.platform.os == "unknown")  # attestations
    ]
    platforms = tuple(str(child.platform) for child in children if child.platform)

    async def child_info(digest: str) -> tuple[int | None, str | None]:
        result = await client.get_manifest(repo, digest)
        if not isinstance(result.manifest, ImageManifest):
            return None, None
        config = await client.get_config(repo, result.manifest)
        return result.manifest.total_size, config.created

    infos = await asyncio.gather(*(child_info(child.digest) for child in children[:8]))
    sizes = [size for size, _ in infos if size is not None]
    dates = [parse_created(created) for _, created in infos]
    known_dates = [date for date in dates if date is not None]
    return row.with_details(
        digest=digest,
        media_type=index.media_type,
        size=max(sizes) if sizes else None,
        created=max(known_dates) if known_dates else None,
        platforms=platforms,
    )


MAX_INDEX_CHILDREN = 256
"""An index lists at most this many manifests that the image screen reads (the rest: unread)."""


async def index_children(
    client: RegistryClient, repo: str, index: ImageIndex, *, limit: int = MAX_INDEX_CHILDREN
) -> list[ChildManifest]:
    """Every manifest ``index`` lists (the first ``limit``), read; a failure is kept per child.

    The client bounds how many requests run at once. A child the registry no longer has is
    ``missing``: the index is broken (someone deleted a platform manifest).
    """

    async def read(descriptor: Descriptor) -> ChildManifest:
        try:
            result = await client.get_manifest(repo, descriptor.digest)
        except NotFoundError as error:
            return ChildManifest(descriptor, error=str(error), missing=True)
        except RegistryClientError as error:
            return ChildManifest(descriptor, error=str(error))
        return ChildManifest(descriptor, result.manifest)

    return list(await asyncio.gather(*(read(child) for child in index.manifests[:limit])))


async def push_times(client: RegistryClient, repository: str) -> dict[str, datetime]:
    """When each tag of ``repository`` was pushed: the bundled registry knows (from its
    storage); any other registry, or one that refuses, gives ``{}``."""
    from tui.client._pushtimes import repository_storage

    try:
        report = await repository_storage(client, repository)
    except RegistryClientError:
        return {}
    if report is None:
        return {}
    return {push.tag: push.pushed for push in report.tags if push.pushed is not None}
