"""Load what the diff and merged-filesystem views show: images resolved, layers streamed.

No Textual: the CLI (``regtui diff``) and the screens call the same functions. Layers are read
one at a time into metadata (:mod:`tui.data.layer_entries`); each distinct layer digest is read
once, however often the manifests list it (a hostile manifest may repeat one layer 10,000 times),
and a layer used by both images of a diff is read once. Cancelling the calling task (Ctrl-C, a
worker cancelled) stops between chunks.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tui.client import (
    Descriptor,
    ImageConfig,
    ImageIndex,
    ImageManifest,
    RegistryClient,
    RegistryClientError,
)
from tui.data.layer_entries import read_layer_changes
from tui.logic.fsmerge import FilesystemMerger, LayerChanges, diff_filesystems
from tui.logic.imagediff import (
    ImageDiff,
    ImageSide,
    compare_configs,
    compare_layers,
    pick_platform,
)
from tui.logic.platforms import PlatformImage

__all__ = [
    "ImageSource",
    "LoadProgress",
    "NotAnImageError",
    "ResolvedImage",
    "diff_images",
    "platform_images",
    "read_layers",
    "resolve_image",
    "uncompressed_sizes",
]


class NotAnImageError(RegistryClientError):
    """The reference names something without a filesystem (an artifact, a schema1 manifest)."""


@dataclass(frozen=True)
class ImageSource:
    """Where an image is: a client, a repository and a tag or digest (and a platform)."""

    client: RegistryClient
    repository: str
    reference: str
    label: str
    """How to name it to the user (``host/repo:tag``)."""
    platform: str | None = None


@dataclass(frozen=True)
class ResolvedImage:
    source: ImageSource
    digest: str
    manifest: ImageManifest
    config: ImageConfig | None
    index_digest: str | None = None


@dataclass(frozen=True)
class LoadProgress:
    """Where a load is: ``step`` of ``steps`` layers, bytes of the current one."""

    label: str
    step: int
    steps: int
    bytes_read: int
    bytes_total: int
    entries: int


ProgressCallback = Callable[[LoadProgress], None]


async def resolve_image(source: ImageSource) -> ResolvedImage:
    """The image manifest (the platform's child for an index) and its config."""
    client = source.client
    result = await client.get_manifest(source.repository, source.reference)
    index_digest = None
    manifest = result.manifest
    digest = result.digest
    if isinstance(manifest, ImageIndex):
        child = pick_platform(manifest, source.platform)
        index_digest = result.digest
        result = await client.get_manifest(source.repository, child.digest)
        manifest = result.manifest
        digest = result.digest
    if not isinstance(manifest, ImageManifest):
        raise NotAnImageError(
            f"{source.label} is a {result.media_type}: only image manifests have files",
            title="Not an image",
        )
    if manifest.is_artifact:
        kind = manifest.artifact_type or manifest.config.media_type
        raise NotAnImageError(
            f"{source.label} is an artifact ({kind}), not an image",
            title="Not an image",
        )
    config = await client.get_config(source.repository, manifest)
    return ResolvedImage(source, digest, manifest, config, index_digest)


def side_of(image: ResolvedImage) -> ImageSide:
    return ImageSide(
        reference=image.source.label,
        digest=image.digest,
        layers=image.manifest.layers,
        config_size=image.manifest.config.size,
        config=image.config,
        index_digest=image.index_digest,
    )


async def read_layers(
    image: ResolvedImage,
    on_progress: ProgressCallback | None = None,
    *,
    cache: dict[str, tuple[LayerChanges, int]] | None = None,
    label: str | None = None,
) -> list[tuple[LayerChanges, int]]:
    """Every layer of ``image`` as changes, with its uncompressed size, bottom to top.

    Each distinct digest is streamed once (a manifest may list one layer many times): the same
    :class:`LayerChanges` stands at each of its positions. Progress counts distinct layers.
    """
    found: list[tuple[LayerChanges, int]] = []
    layers: Sequence[Descriptor] = image.manifest.layers
    read: dict[str, tuple[LayerChanges, int]] = {} if cache is None else cache
    steps = _distinct_steps(layers)
    for layer in layers:
        cached = read.get(layer.digest)
        if cached is None:
            step = steps[layer.digest]
            cached = await _read_one(image, layer, step, len(steps), on_progress, label)
            read[layer.digest] = cached
        found.append(cached)
    return found


def _runs(layers: Sequence[Descriptor]) -> list[tuple[Descriptor, int]]:
    """Consecutive positions of one digest as ``(layer, how many)``."""
    found: list[tuple[Descriptor, int]] = []
    for layer in layers:
        if found and found[-1][0].digest == layer.digest:
            found[-1] = (found[-1][0], found[-1][1] + 1)
        else:
            found.append((layer, 1))
    return found


def _distinct_steps(layers: Sequence[Descriptor]) -> dict[str, int]:
    """Each distinct digest of ``layers`` with its number (1-based, in order of first use)."""
    steps: dict[str, int] = {}
    for layer in layers:
        steps.setdefault(layer.digest, len(steps) + 1)
    return steps


async def _read_one(
    image: ResolvedImage,
    layer: Descriptor,
    step: int,
    steps: int,
    on_progress: ProgressCallback | None,
    label: str | None,
) -> tuple[LayerChanges, int]:
    name = label or image.source.label

    def progress(bytes_read: int, entries: int) -> None:
        if on_progress is not None:
            on_progress(LoadProgress(name, step, steps, bytes_read, layer.size, entries))

    progress(0, 0)
    return await read_layer_changes(
        image.source.client, image.source.repository, layer, on_progress=progress
    )


async def diff_images(
    before: ImageSource,
    after: ImageSource,
    *,
    files: bool = True,
    on_progress: ProgressCallback | None = None,
) -> ImageDiff:
    """Compare two images; with ``files``, stream their layers and compare the filesystems."""
    old = await resolve_image(before)
    new = await resolve_image(after)
    result = ImageDiff(
        before=side_of(old),
        after=side_of(new),
        config=compare_configs(old.config, new.config),
        layers=compare_layers(old.manifest.layers, new.manifest.layers),
    )
    if not files:
        return result
    # Each distinct layer is read once: kept after its first use while a later position (in
    # this image or, on the same registry, the other one) still needs it, dropped after its
    # last. A digest names the bytes, but another registry needs its own credentials to serve
    # them: across registries each image reads its own.
    same_registry = before.client is after.client
    remaining: Counter[str] = Counter()
    if same_registry:
        remaining.update(layer.digest for layer in old.manifest.layers)
        remaining.update(layer.digest for layer in new.manifest.layers)
    cache: dict[str, tuple[LayerChanges, int]] = {}
    merged = []
    for image, side, name in ((old, result.before, "before"), (new, result.after, "after")):
        layers = image.manifest.layers
        if not same_registry:
            cache = {}
            remaining = Counter(layer.digest for layer in layers)
        merger = FilesystemMerger()
        label = f"{name}: {side.reference}"
        steps = _distinct_steps(layers)
        uncompressed = 0
        for layer, times in _runs(layers):
            read = cache.get(layer.digest)
            if read is None:
                step = steps[layer.digest]
                read = await _read_one(image, layer, step, len(steps), on_progress, label)
                cache[layer.digest] = read
            # Big layers: off the event loop. A run of copies costs at most three applications.
            await asyncio.to_thread(merger.apply_repeated, read[0], times)
            uncompressed += read[1] * times
            remaining[layer.digest] -= times
            if remaining[layer.digest] <= 0:
                del cache[layer.digest]
        side.uncompressed_bytes = uncompressed
        merged.append(merger.nodes)
    result.files = await asyncio.to_thread(diff_filesystems, merged[0], merged[1])
    return result


async def platform_images(
    client: RegistryClient, repository: str, reference: str
) -> tuple[str, list[PlatformImage]]:
    """The digest of ``reference`` and each of its platform images (one for a plain image).

    Attestation manifests of an index (platform ``unknown/unknown``) are left out.
    """
    result = await client.get_manifest(repository, reference)
    manifest = result.manifest
    if isinstance(manifest, ImageIndex):
        children = [
            child
            for child in manifest.manifests
            if child.platform is None or child.platform.os not in ("unknown", "")
        ]
        fetched = await asyncio.gather(
            *(client.get_manifest(repository, child.digest) for child in children)
        )
        images = []
        for child, found in zip(children, fetched, strict=True):
            if isinstance(found.manifest, ImageManifest):
                images.append(
                    PlatformImage(
                        child.platform, found.digest, found.manifest.config, found.manifest.layers
                    )
                )
        return result.digest, images
    if not isinstance(manifest, ImageManifest) or manifest.is_artifact:
        raise NotAnImageError(
            f"{repository}:{reference} is a {result.media_type}, not an image",
            title="Not an image",
        )
    config = await client.get_config(repository, manifest)
    return result.digest, [
        PlatformImage(config.platform, result.digest, manifest.config, manifest.layers)
    ]


async def uncompressed_sizes(
    client: RegistryClient,
    repository: str,
    images: Sequence[PlatformImage],
    on_progress: ProgressCallback | None = None,
) -> dict[str, int]:
    """The tar size of every distinct layer of ``images`` (each layer streamed once)."""
    unique: dict[str, Descriptor] = {}
    for image in images:
        for layer in image.layers:
            unique.setdefault(layer.digest, layer)
    sizes: dict[str, int] = {}
    for step, layer in enumerate(unique.values(), 1):

        def progress(
            bytes_read: int, entries: int, step: int = step, layer: Descriptor = layer
        ) -> None:
            if on_progress is not None:
                on_progress(
                    LoadProgress(repository, step, len(unique), bytes_read, layer.size, entries)
                )

        _, sizes[layer.digest] = await read_layer_changes(
            client, repository, layer, on_progress=progress
        )
    return sizes
