"""The copy engine of ``regtui cp`` and ``regtui tag`` (and of the app's "Copy to…" and sync to
come): an image from a :class:`~tui.data.copy_io.Source` to a
:class:`~tui.data.copy_io.Destination`, no Textual.

::

    result = await copy_image(source, destination, tags=["v1"], platform=Platform("linux", "amd64"))

The order of writes (:func:`tui.logic.copy_plan.write_order`): every blob (``jobs`` at a time,
streamed in chunks and checked while they pass), then the manifests by digest (an index's
children before it, referrers after their subject), then the tags: a copy killed at any instant
leaves no tag on a manifest whose blobs are missing, and a rerun skips what landed (a ``HEAD``
per blob and manifest).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tui.client.models import (
    INDEX_MEDIA_TYPES,
    SCHEMA1_MEDIA_TYPES,
    Descriptor,
    ImageIndex,
    ImageManifest,
    Platform,
    parse_manifest,
)
from tui.data.copy_io import (
    CopyError,
    Destination,
    RegistryDestination,
    RegistrySource,
    Source,
    verified_chunks,
)
from tui.data.docker_archive import ArchiveDestination, ArchiveSource
from tui.data.oci_layout import OciLayoutDestination, OciLayoutSource
from tui.logic.copy_plan import (
    Location,
    ManifestNode,
    OciLocation,
    RegistryLocation,
    blobs_of,
    choose_platform,
    write_order,
)

if TYPE_CHECKING:
    from tui.client import RegistryClient

__all__ = [
    "CopyProgress",
    "CopyResult",
    "copy_image",
    "open_destination",
    "open_source",
    "read_tree",
]


async def open_source(at: Location, client: RegistryClient | None = None) -> Source:
    """The source ``at`` names; a registry's needs ``client`` (for its registry)."""
    if isinstance(at, RegistryLocation):
        if client is None:
            raise CopyError(f"{at}: a registry source needs a client")
        return RegistrySource(client, at.ref.repository, at.ref.ref, name=str(at.ref))
    if isinstance(at, OciLocation):
        return OciLayoutSource(at.path, at.tag)
    return await ArchiveSource.open(at.path, at.name)


def open_destination(at: Location, client: RegistryClient | None = None) -> Destination:
    """The destination ``at`` names; a registry's needs ``client`` (for its registry)."""
    if isinstance(at, RegistryLocation):
        if client is None:
            raise CopyError(f"{at}: a registry destination needs a client")
        return RegistryDestination(client, at.ref.repository, name=str(at.ref))
    if isinstance(at, OciLocation):
        return OciLayoutDestination(at.path, at.tag)
    return ArchiveDestination(at.path, at.name)


MAX_DEPTH = 4
"""How deep indexes nest and referrers refer to referrers, at most."""
MAX_REFERRERS = 1000
"""Referrers read per manifest, at most."""


@dataclass
class CopyProgress:
    """Where a copy stands; the same object is handed to ``progress`` at each step."""

    stage: str = "reading"
    """``reading`` (manifests), ``blobs``, ``manifests``, ``done``."""
    blobs_total: int = 0
    blobs_done: int = 0
    bytes_total: int = 0
    bytes_done: int = 0
    skipped: int = 0
    mounted: int = 0
    active: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Blobs on their way: digest -> (bytes passed, size)."""


@dataclass(frozen=True)
class CopyResult:
    source: str
    destination: str
    digest: str
    media_type: str
    size: int
    tags: tuple[str, ...]
    platforms: tuple[Platform | None, ...]
    """The platforms copied (one per image manifest; ``None`` for one without)."""
    blobs_copied: int
    blobs_skipped: int
    blobs_mounted: int
    bytes_copied: int
    manifests_written: int
    manifests_skipped: int
    referrers: int


async def read_tree(
    source: Source,
    *,
    platform: Platform | None = None,
    all_platforms: bool = False,
    referrers: bool = False,
) -> ManifestNode:
    """Read what to copy: the root manifest, with ``all_platforms`` every child of an index,
    else the one child for ``platform`` (which becomes the root: the tag names it); with
    ``referrers``, the referrers of each manifest copied."""
    digest, media_type, raw = await source.root()
    node = await _node(source, digest, media_type, raw, platform, all_platforms, 0)
    if referrers:
        seen: set[str] = set()
        node = await _with_referrers(source, node, seen, 0)
    return node


async def _node(
    source: Source,
    digest: str,
    media_type: str,
    raw: bytes,
    platform: Platform | None,
    all_platforms: bool,
    depth: int,
    descriptor: Descriptor | None = None,
) -> ManifestNode:
    media_type, manifest = parse_manifest(raw, media_type or None)
    if media_type in SCHEMA1_MEDIA_TYPES:
        raise CopyError(
            f"{source.name}: {digest} is a schema1 manifest, which regtui does not copy"
        )
    platform_of = descriptor.platform if descriptor else None
    annotations = descriptor.annotations if descriptor else {}
    artifact_type = (descriptor.artifact_type if descriptor else None) or getattr(
        manifest, "artifact_type", None
    )
    if isinstance(manifest, ImageManifest):
        return ManifestNode(
            digest,
            media_type,
            raw,
            blobs=(manifest.config, *manifest.layers),
            platform=platform_of,
            artifact_type=artifact_type,
            annotations=annotations,
        )
    assert isinstance(manifest, ImageIndex)
    if depth >= MAX_DEPTH:
        raise CopyError(f"{source.name}: indexes nest more than {MAX_DEPTH} levels deep")
    if not all_platforms:
        chosen = choose_platform(manifest.manifests, platform or Platform("linux", "amd64"))
        child_type, child_raw = await source.manifest(chosen.digest)
        return await _node(
            source, chosen.digest, child_type or chosen.media_type, child_raw,
            platform, all_platforms, depth + 1, chosen,
        )  # fmt: skip

    async def child(entry: Descriptor) -> ManifestNode:
        child_type, child_raw = await source.manifest(entry.digest)
        return await _node(
            source, entry.digest, child_type or entry.media_type, child_raw,
            platform, True, depth + 1, entry,
        )  # fmt: skip

    children = await asyncio.gather(*(child(entry) for entry in manifest.manifests))
    return ManifestNode(
        digest,
        media_type,
        raw,
        children=tuple(children),
        platform=platform_of,
        artifact_type=artifact_type,
        annotations=annotations,
    )


async def _with_referrers(
    source: Source, node: ManifestNode, seen: set[str], depth: int
) -> ManifestNode:
    seen.add(node.digest)
    children = tuple(
        [await _with_referrers(source, child, seen, depth + 1) for child in node.children]
    )
    found: list[ManifestNode] = []
    if depth < MAX_DEPTH:
        for entry in (await source.referrers(node.digest))[:MAX_REFERRERS]:
            if entry.digest in seen:
                continue
            media_type, raw = await source.manifest(entry.digest)
            referrer = await _node(
                source, entry.digest, media_type or entry.media_type, raw, None, True, 0, entry
            )
            found.append(await _with_referrers(source, referrer, seen, depth + 1))
    return ManifestNode(
        node.digest,
        node.media_type,
        node.raw,
        blobs=node.blobs,
        children=children,
        referrers=tuple(found),
        platform=node.platform,
        artifact_type=node.artifact_type,
        annotations=node.annotations,
    )


def _subjects(root: ManifestNode) -> dict[str, str]:
    """Referrer digest -> the digest of its subject."""
    subjects: dict[str, str] = {}
    for node in root.walk():
        for referrer in node.referrers:
            subjects.setdefault(referrer.digest, node.digest)
    return subjects


def _first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    for error in group.exceptions:
        if isinstance(error, BaseExceptionGroup):
            return _first_error(error)
        if not isinstance(error, asyncio.CancelledError):
            return error
    return group.exceptions[0]


async def copy_image(
    source: Source,
    destination: Destination,
    *,
    tags: list[str],
    platform: Platform | None = None,
    all_platforms: bool = False,
    referrers: bool = False,
    jobs: int = 4,
    progress: Callable[[CopyProgress], None] | None = None,
) -> CopyResult:
    """Copy the image ``source`` names to ``destination`` under ``tags`` (by digest only when
    there are none). See the module's docstring for the order of writes."""
    state = CopyProgress()

    def report() -> None:
        if progress is not None:
            progress(state)

    report()
    root = await read_tree(
        source, platform=platform, all_platforms=all_platforms, referrers=referrers
    )
    if root.media_type in INDEX_MEDIA_TYPES and not root.children:
        raise CopyError(f"{source.name}: the index lists no manifest")
    await destination.begin(root)
    blobs = blobs_of(root)
    state.stage, state.blobs_total = "blobs", len(blobs)
    state.bytes_total = sum(blob.size for blob in blobs)
    report()
    copied = 0
    limit = getattr(destination, "max_jobs", None)  # an archive is written in order
    gate = asyncio.Semaphore(max(1, min(jobs, limit or jobs)))

    async def one(blob: Descriptor) -> None:
        nonlocal copied
        async with gate:
            if await destination.has_blob(blob):
                state.skipped += 1
            elif await destination.mount(blob, source):
                state.mounted += 1
            else:
                state.active[blob.digest] = (0, blob.size)

                def moved(count: int) -> None:
                    done, size = state.active.get(blob.digest, (0, blob.size))
                    state.active[blob.digest] = (done + count, size)
                    state.bytes_done += count
                    report()

                async with source.blob(blob) as chunks:
                    checked = verified_chunks(chunks, blob, moved, source.name)
                    await destination.write_blob(blob, checked)
                state.active.pop(blob.digest, None)
                copied += 1
            state.blobs_done += 1
            report()

    try:
        async with asyncio.TaskGroup() as group:
            for blob in blobs:
                group.create_task(one(blob))
    except BaseExceptionGroup as failures:
        raise _first_error(failures) from None
    state.stage, state.active = "manifests", {}
    report()
    subjects = _subjects(root)
    order = write_order(root)
    if not tags and root not in order:
        order.append(root)
    written = skipped = 0
    for node in order:
        if await destination.has_manifest(node):
            skipped += 1
            continue
        await destination.write_manifest(node, subjects.get(node.digest))
        written += 1
    await destination.commit(root, list(tags))
    state.stage = "done"
    report()
    images = [n for n in root.walk() if n.blobs and n.digest not in subjects]
    return CopyResult(
        source=source.name,
        destination=destination.name,
        digest=root.digest,
        media_type=root.media_type,
        size=root.size,
        tags=tuple(tags),
        platforms=tuple(n.platform for n in images),
        blobs_copied=copied,
        blobs_skipped=state.skipped,
        blobs_mounted=state.mounted,
        bytes_copied=state.bytes_done,
        manifests_written=written + (1 if tags else 0),
        manifests_skipped=skipped,
        referrers=len(subjects),
    )
