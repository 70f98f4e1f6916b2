"""Text of the image screen's panels, built from client models (pure, unit-testable)."""

from __future__ import annotations

import json

from rich.text import Text

from tui.client import (
    Descriptor,
    ImageConfig,
    ImageIndex,
    ImageManifest,
    ManifestResult,
    Schema1Manifest,
)
from tui.logic.fmt import human_size


def pull_command(host: str, repository: str, reference: str) -> str:
    """``docker pull host/repo:tag``, or ``host/repo@sha256:…`` for a digest."""
    separator = "@" if reference.startswith(("sha256:", "sha512:")) else ":"
    return f"docker pull {host}/{repository}{separator}{reference}"


def manifest_size(result: ManifestResult) -> int | None:
    manifest = result.manifest
    if isinstance(manifest, ImageManifest):
        return manifest.total_size
    return None


def kind_of(result: ManifestResult) -> str:
    manifest = result.manifest
    if isinstance(manifest, ImageIndex):
        return f"index of {len(manifest.manifests)} manifests"
    if isinstance(manifest, Schema1Manifest):
        return "Docker schema 1 manifest (legacy)"
    if manifest.is_artifact:
        return f"artifact ({manifest.artifact_type or manifest.config.media_type})"
    return f"image, {len(manifest.layers)} layers"


def overview_text(
    host: str, repository: str, reference: str, result: ManifestResult, config: ImageConfig | None
) -> Text:
    text = Text()

    def field(name: str, value: str, style: str = "") -> None:
        text.append(f"{name:<12}", style="bold")
        text.append(f"{value}\n", style=style)

    field("Reference", pull_command(host, repository, reference).removeprefix("docker pull "))
    field("Digest", result.digest, "cyan")
    field("Media type", result.media_type)
    field("Kind", kind_of(result))
    size = manifest_size(result)
    field("Size", f"{human_size(size)} compressed ({size:,} bytes)" if size is not None else "—")
    if config is not None:
        if config.platform:
            field("Platform", str(config.platform))
        if config.created:
            field("Created", config.created)
    manifest = result.manifest
    if isinstance(manifest, ImageManifest | ImageIndex) and manifest.subject is not None:
        field("Subject", manifest.subject.digest, "magenta")
    text.append("\n")
    field("Pull", pull_command(host, repository, reference), "green")
    text.append("            (c copies it)", style="dim")
    return text


def config_text(config: ImageConfig | None, result: ManifestResult) -> Text:
    text = Text()
    if config is None:
        if isinstance(result.manifest, ImageIndex):
            text.append("An index has no configuration: open a platform (Overview tab).")
        else:
            text.append("No image configuration (an artifact, or schema 1).")
        return text

    def section(title: str) -> None:
        text.append(f"{title}\n", style="bold underline")

    section("Entrypoint / Cmd")
    text.append(f"  entrypoint  {json.dumps(list(config.entrypoint or ()))}\n")
    text.append(f"  cmd         {json.dumps(list(config.cmd or ()))}\n")
    if config.working_dir:
        text.append(f"  workdir     {config.working_dir}\n")
    if config.user:
        text.append(f"  user        {config.user}\n")
    if config.exposed_ports:
        text.append(f"  ports       {', '.join(config.exposed_ports)}\n")
    text.append("\n")
    section(f"Environment ({len(config.env)})")
    for entry in config.env:
        name, _, value = entry.partition("=")
        text.append(f"  {name}", style="cyan")
        text.append(f"={value}\n")
    text.append("\n")
    section(f"Labels ({len(config.labels)})")
    for name, value in sorted(config.labels.items()):
        text.append(f"  {name}", style="cyan")
        text.append(f" = {value}\n")
    return text


def raw_json(data: bytes) -> str:
    """Pretty JSON when the bytes are JSON, else the text as it is."""
    try:
        return json.dumps(json.loads(data), indent=2, ensure_ascii=False)
    except (ValueError, UnicodeDecodeError):
        return data.decode("utf-8", "replace")


def referrer_label(descriptor: Descriptor) -> str:
    return descriptor.artifact_type or descriptor.media_type
