"""Text of the image screen's panels, built from client models (pure, unit-testable)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from rich.text import Text

from tui.client import (
    Descriptor,
    ImageConfig,
    ImageIndex,
    ImageManifest,
    Manifest,
    ManifestResult,
    Platform,
    Schema1Manifest,
)
from tui.client.layers import FileNode
from tui.logic.escape import visible, visible_lines
from tui.logic.fmt import count_of, human_size, short_digest

NO_REFERRERS = "No referrers: nothing (signatures, SBOMs, attestations) refers to this manifest."
"""What the Referrers tab says when the registry lists none."""

ATTESTATION_REFERENCE_TYPE = "vnd.docker.reference.type"


def pull_command(host: str, repository: str, reference: str) -> str:
    """``docker pull host/repo:tag``, or ``host/repo@sha256:…`` for a digest."""
    separator = "@" if reference.startswith(("sha256:", "sha512:")) else ":"
    return f"docker pull {host}/{repository}{separator}{reference}"


def is_artifact(manifest: Manifest) -> bool:
    """True for what ``docker pull`` cannot run: an artifact type, or a non-image config."""
    if isinstance(manifest, ImageManifest):
        return manifest.is_artifact
    if isinstance(manifest, ImageIndex):
        return manifest.artifact_type is not None
    return False


def pull_command_for(
    host: str, repository: str, reference: str, result: ManifestResult | None
) -> str | None:
    """The pull command to offer, or ``None``: not loaded yet, or an artifact (not pullable)."""
    if result is None or is_artifact(result.manifest):
        return None
    return pull_command(host, repository, reference)


def copy_notice(command: str) -> str:
    """The ``c`` notification: a copy by OSC 52 may be dropped silently, so show the text."""
    return (
        "Sent to the terminal's clipboard (some terminals ignore that request). "
        f"To copy it by hand:\n{command}"
    )


def is_attestation(descriptor: Descriptor) -> bool:
    """A build attestation listed in an index (BuildKit's ``unknown/unknown`` entries)."""
    if descriptor.annotations.get(ATTESTATION_REFERENCE_TYPE) == "attestation-manifest":
        return True
    return descriptor.platform is not None and descriptor.platform.os == "unknown"


def manifest_size(result: ManifestResult) -> int | None:
    manifest = result.manifest
    if isinstance(manifest, ImageManifest):
        return manifest.total_size
    return None


def kind_of(result: ManifestResult) -> str:
    manifest = result.manifest
    if isinstance(manifest, ImageIndex):
        platforms = [child for child in manifest.manifests if not is_attestation(child)]
        text = f"index of {count_of(len(platforms), 'platform manifest')}"
        others = len(manifest.manifests) - len(platforms)
        if others:
            text += f" and {count_of(others, 'attestation')}"
        if manifest.artifact_type:
            text = f"artifact index ({manifest.artifact_type}), {text}"
        return text
    if isinstance(manifest, Schema1Manifest):
        return "Docker schema 1 manifest (legacy)"
    if manifest.is_artifact:
        return f"artifact ({manifest.artifact_type or manifest.config.media_type})"
    return f"image, {count_of(len(manifest.layers), 'layer')}"


# --------------------------------------------------------------------------- index sizes


@dataclass(frozen=True)
class ChildManifest:
    """One entry of an index with the manifest it points at, once read."""

    descriptor: Descriptor
    manifest: Manifest | None = None
    error: str | None = None
    """Why it could not be read (a deleted platform manifest leaves the index broken)."""
    missing: bool = False
    """The registry answered 404: the index lists a manifest that is not there."""

    @property
    def image(self) -> ImageManifest | None:
        """The platform image (config + layers), or ``None`` for anything else."""
        manifest = self.manifest
        if isinstance(manifest, ImageManifest) and not manifest.is_artifact:
            return manifest
        return None

    @property
    def counts_as_platform(self) -> bool:
        """A platform image of the index (not an attestation, a nested index, an artifact)."""
        if is_attestation(self.descriptor):
            return False
        if self.manifest is None:
            return not self.descriptor.is_index
        return self.image is not None


def image_size(manifest: ImageManifest) -> int:
    """What pulling one platform downloads: its config plus its layers (compressed)."""
    return manifest.total_size


def platform_size_cell(child: ChildManifest | None) -> str:
    """The Size cell of a platform row: the image's size, never the manifest document's."""
    if child is None:
        return "…"
    if child.missing:
        return "missing"
    if child.error is not None:
        return "unreadable"
    image = child.image
    if image is not None:
        return human_size(image_size(image))
    if isinstance(child.manifest, ImageIndex):
        return "index"
    if isinstance(child.manifest, Schema1Manifest):
        return "unknown"
    return "artifact"


@dataclass(frozen=True)
class IndexTotal:
    """The size of an index: its platform images, with what was and was not counted."""

    unique_bytes: int
    """Configs and layers of every platform image, each blob counted once."""
    summed_bytes: int
    """The platform images' sizes added up (a layer shared by two platforms counted twice)."""
    platforms: int
    """Platform images counted."""
    unreadable: int = 0
    """Platform manifests that could not be read (missing or refused): not counted."""
    others: int = 0
    """Entries that are not platform images (attestations, nested indexes): not counted."""
    unread: int = 0
    """Entries past the number the screen reads (a huge index): not counted."""

    @property
    def shared_bytes(self) -> int:
        return self.summed_bytes - self.unique_bytes


def index_total(children: Sequence[ChildManifest], *, listed: int | None = None) -> IndexTotal:
    """Add up the platform images of an index; a blob shared by platforms counts once.

    ``listed`` is how many entries the index has, when only the first ones were read.
    """
    blobs: dict[str, int] = {}
    summed = platforms = unreadable = others = 0
    for child in children:
        if not child.counts_as_platform:
            others += 1
            continue
        image = child.image
        if image is None:
            unreadable += 1
            continue
        platforms += 1
        summed += image_size(image)
        for blob in (image.config, *image.layers):
            blobs[blob.digest] = blob.size
    return IndexTotal(
        unique_bytes=sum(blobs.values()),
        summed_bytes=summed,
        platforms=platforms,
        unreadable=unreadable,
        others=others,
        unread=max(0, (listed or 0) - len(children)),
    )


def index_size_text(total: IndexTotal | None) -> str:
    """The Size line of an index, saying exactly what was added up."""
    if total is None:
        return "… (reading the platform manifests)"
    text = (
        f"{human_size(total.unique_bytes)} for {count_of(total.platforms, 'platform')}: "
        "config + layers of each, shared layers counted once"
    )
    if total.shared_bytes:
        text += f" ({human_size(total.summed_bytes)} if counted per platform)"
    if total.unreadable:
        text += f"; {count_of(total.unreadable, 'platform manifest')} unreadable, not counted"
    if total.others:
        text += f"; {count_of(total.others, 'other entry')} not counted"
    if total.unread:
        text += f"; {count_of(total.unread, 'entry')} past the first ones not read"
    return text


# --------------------------------------------------------------------------- overview


def overview_text(
    host: str,
    repository: str,
    reference: str,
    result: ManifestResult,
    config: ImageConfig | None,
    *,
    index_total: IndexTotal | None = None,
    platform: Platform | None = None,
    parent_index: str | None = None,
) -> Text:
    text = Text()

    def field(name: str, value: str, style: str = "") -> None:
        text.append(f"{name:<12}", style="bold")
        text.append(f"{visible(value)}\n", style=style)

    field("Reference", pull_command(host, repository, reference).removeprefix("docker pull "))
    field("Digest", result.digest, "cyan")
    field("Media type", result.media_type)
    field("Kind", kind_of(result))
    manifest = result.manifest
    size = manifest_size(result)
    if isinstance(manifest, ImageIndex):
        field("Size", index_size_text(index_total))
    elif size is not None:
        what = "config + layers" if not is_artifact(manifest) else "config + blobs"
        field("Size", f"{human_size(size)} compressed ({size:,} bytes: {what})")
    else:
        field("Size", "unknown (schema 1 manifests do not record layer sizes)")
    shown_platform = (config.platform if config is not None else None) or platform
    if shown_platform is not None:
        field("Platform", str(shown_platform))
    if config is not None and config.created:
        field("Created", config.created)
    if parent_index is not None:
        field("In index", parent_index, "cyan")
    if isinstance(manifest, ImageManifest | ImageIndex) and manifest.subject is not None:
        field("Subject", manifest.subject.digest, "magenta")
    text.append("\n")
    command = pull_command_for(host, repository, reference, result)
    if command is not None:
        field("Pull", command, "green")
        text.append("            (c sends it to the clipboard)", style="dim")
    else:
        field(
            "Pull",
            "not an image: docker cannot pull this artifact "
            "(tools such as oras or cosign read it).",
            "dim",
        )
    return text


def config_text(config: ImageConfig | None, result: ManifestResult) -> Text:
    text = Text()
    if config is None:
        if isinstance(result.manifest, ImageIndex):
            text.append("An index has no configuration: open a platform (Overview tab).")
        elif isinstance(result.manifest, Schema1Manifest):
            text.append("A schema 1 manifest carries no image configuration.")
        else:
            text.append("An artifact has no image configuration.")
        return text

    def section(title: str) -> None:
        text.append(f"{title}\n", style="bold underline")

    section("Entrypoint / Cmd")
    # Every value comes from the image: shown with its control characters escaped (visible).
    text.append(f"  entrypoint  {visible(json.dumps(list(config.entrypoint or ())))}\n")
    text.append(f"  cmd         {visible(json.dumps(list(config.cmd or ())))}\n")
    if config.working_dir:
        text.append(f"  workdir     {visible(config.working_dir)}\n")
    if config.user:
        text.append(f"  user        {visible(config.user)}\n")
    if config.exposed_ports:
        text.append(f"  ports       {visible(', '.join(config.exposed_ports))}\n")
    text.append("\n")
    section(f"Environment ({count_of(len(config.env), 'variable')})")
    for entry in config.env:
        name, _, value = entry.partition("=")
        text.append(f"  {visible(name)}", style="cyan")
        text.append(f"={visible(value)}\n")
    text.append("\n")
    section(f"Labels ({count_of(len(config.labels), 'label')})")
    for name, value in sorted(config.labels.items()):
        text.append(f"  {visible(name)}", style="cyan")
        text.append(f" = {visible(value)}\n")
    return text


# --------------------------------------------------------------------------- raw documents


def raw_json(data: bytes) -> str:
    """Pretty JSON when the bytes are JSON, else the text as it is; either way with control
    characters (C1 and bidi overrides survive ``ensure_ascii=False``) shown escaped."""
    try:
        return visible_lines(json.dumps(json.loads(data), indent=2, ensure_ascii=False))
    except (ValueError, UnicodeDecodeError):
        return visible_lines(data.decode("utf-8", "replace"))


def manifest_title(manifest: Manifest, platform: Platform | None) -> str:
    """Which document this is: ``Index``, ``Manifest for linux/amd64``, ``Artifact manifest``…"""
    if isinstance(manifest, ImageIndex):
        return "Artifact index" if manifest.artifact_type else "Index"
    if isinstance(manifest, Schema1Manifest):
        return f"Schema 1 manifest for linux/{manifest.architecture}"
    if manifest.is_artifact:
        return f"Artifact manifest ({manifest.artifact_type or manifest.config.media_type})"
    return f"Manifest for {platform}" if platform is not None else "Image manifest"


def config_title(platform: Platform | None) -> str:
    return f"Config of {platform}" if platform is not None else "Config"


def document_heading(title: str, digest: str, media_type: str, size: int) -> Text:
    """The lines above one raw document: what it is and its size, its digest, its media type."""
    text = Text()
    text.append(f" {visible(title)} ", style="bold reverse")
    text.append(f"  {count_of(size, 'byte')}\n", style="dim")
    text.append(f"  {visible(digest)}\n", style="cyan")
    text.append(f"  {visible(media_type or '(media type not declared)')}")
    return text


def referrer_label(descriptor: Descriptor) -> str:
    return descriptor.artifact_type or descriptor.media_type


def referrer_rows(referrers: Sequence[Descriptor]) -> list[tuple[str, str, str, str]]:
    """Cells of the Referrers table: digest, artifact type, size, annotations."""
    return [
        (
            short_digest(ref.digest),
            referrer_label(ref),
            human_size(ref.size),
            ", ".join(f"{k}={v}" for k, v in sorted(ref.annotations.items())),
        )
        for ref in referrers
    ]


# ---------------------------------------------------------------------- a layer's files


def filter_files(root: FileNode, query: str) -> tuple[FileNode, int]:
    """The part of a layer's tree whose paths contain ``query`` (case-insensitive), with the
    directories that lead to them, and the number of entries that matched.

    A directory that matches keeps everything below it. The nodes are copies (the tree read
    from the layer is not changed); sizes and counts stay those of the whole layer.
    """
    needle = query.strip().lower()
    if not needle:
        return root, 0
    kept = replace(root, children={})
    matched = 0
    # Depth first, iteratively (any depth): (path, node, copy of its parent).
    stack: list[tuple[str, FileNode, FileNode]] = [
        (child.name, child, kept) for child in reversed(root.sorted_children())
    ]
    parents: dict[int, tuple[FileNode, FileNode]] = {}
    while stack:
        path, node, parent_copy = stack.pop()
        if needle in path.lower():
            matched += 1
            _attach(parent_copy, node, parents)
            continue  # the whole subtree comes with it
        if node.is_dir and node.children:
            copy = replace(node, children={})
            parents[id(copy)] = (parent_copy, copy)
            stack.extend(
                (f"{path}/{child.name}", child, copy) for child in reversed(node.sorted_children())
            )
    return kept, matched


def _attach(
    parent_copy: FileNode,
    node: FileNode,
    parents: dict[int, tuple[FileNode, FileNode]],
) -> None:
    """Put ``node`` under ``parent_copy`` and link the copies above it up to the root."""
    parent_copy.children[node.name] = node
    child = parent_copy
    while id(child) in parents:
        above, copy = parents[id(child)]
        if copy.name in above.children:
            return
        above.children[copy.name] = copy
        child = above


def tree_children(paths: Iterable[str]) -> dict[str, list[str]]:
    """Parent path -> its children's paths (the root is ``""``), for every path of ``paths``
    and the directories that lead to it, in the order first seen (the caller sorts)."""
    children: dict[str, list[str]] = {}
    seen = {""}
    for path in paths:
        child = path
        while child not in seen:
            seen.add(child)
            parent = child.rpartition("/")[0]
            children.setdefault(parent, []).append(child)
            child = parent
    return children
