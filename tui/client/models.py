"""Typed, immutable models of what a registry returns, and pure parsers that build them.

Nothing here does I/O: the parsers take bytes or decoded JSON and either return a model or raise
:class:`~tui.client.errors.MalformedResponseError` (JSON nested over 256 levels too: checked
before parsing, never a RecursionError).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from tui.client._limits import loads_json
from tui.client.errors import MalformedResponseError

__all__ = [
    "DOCKER_CONFIG",
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "DOCKER_SCHEMA1",
    "DOCKER_SCHEMA1_SIGNED",
    "INDEX_MEDIA_TYPES",
    "MANIFEST_ACCEPT",
    "OCI_CONFIG",
    "OCI_EMPTY",
    "OCI_INDEX",
    "OCI_MANIFEST",
    "DeletePlan",
    "Descriptor",
    "HistoryEntry",
    "HistoryStep",
    "ImageConfig",
    "ImageIndex",
    "ImageManifest",
    "Manifest",
    "ManifestResult",
    "PingResult",
    "Platform",
    "Schema1Manifest",
    "UntagResult",
    "match_history",
    "parse_config",
    "parse_descriptor",
    "parse_manifest",
]

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"

INDEX_MEDIA_TYPES = frozenset({DOCKER_MANIFEST_LIST, OCI_INDEX})
IMAGE_MEDIA_TYPES = frozenset({DOCKER_MANIFEST, OCI_MANIFEST})
SCHEMA1_MEDIA_TYPES = frozenset({DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED})

MANIFEST_ACCEPT = ", ".join(
    [
        OCI_INDEX,
        OCI_MANIFEST,
        DOCKER_MANIFEST_LIST,
        DOCKER_MANIFEST,
        DOCKER_SCHEMA1_SIGNED,
        DOCKER_SCHEMA1,
    ]
)
"""The ``Accept`` header of every manifest request: every format regtui can read."""


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None
    os_version: str | None = None

    def __str__(self) -> str:
        parts = [self.os, self.architecture] + ([self.variant] if self.variant else [])
        return "/".join(parts)


@dataclass(frozen=True)
class Descriptor:
    """A pointer to content: media type, digest, size (and optional platform, annotations)."""

    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)
    artifact_type: str | None = None
    urls: tuple[str, ...] = ()

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_MEDIA_TYPES


@dataclass(frozen=True)
class ImageManifest:
    """Docker schema2 or OCI image manifest (also an OCI artifact manifest)."""

    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    subject: Descriptor | None = None
    artifact_type: str | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def layers_size(self) -> int:
        return sum(layer.size for layer in self.layers)

    @property
    def total_size(self) -> int:
        """Config plus layers, compressed: what a pull downloads (not counting the manifest)."""
        return self.config.size + self.layers_size

    @property
    def is_artifact(self) -> bool:
        return self.artifact_type is not None or self.config.media_type not in (
            DOCKER_CONFIG,
            OCI_CONFIG,
        )


@dataclass(frozen=True)
class ImageIndex:
    """OCI image index or Docker manifest list: one child manifest per platform."""

    media_type: str
    manifests: tuple[Descriptor, ...]
    subject: Descriptor | None = None
    artifact_type: str | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Schema1Manifest:
    """Docker image manifest schema 1 (legacy, read-only). Layers have no sizes."""

    media_type: str
    name: str
    tag: str
    architecture: str
    fs_layers: tuple[str, ...]
    """Layer digests, in schema1's order: the newest layer first."""
    history: tuple[Mapping[str, Any], ...]
    """The decoded ``v1Compatibility`` objects, newest first."""
    signed: bool


Manifest = ImageManifest | ImageIndex | Schema1Manifest


def artifact_kind(manifest: Manifest) -> str | None:
    """What kind of artifact this is (its artifact type, else its config media type), or
    ``None`` for an image ``docker pull`` can run."""
    if isinstance(manifest, ImageManifest) and manifest.is_artifact:
        return manifest.artifact_type or manifest.config.media_type
    if isinstance(manifest, ImageIndex):
        return manifest.artifact_type
    return None


@dataclass(frozen=True)
class ManifestResult:
    """A manifest as fetched: its digest (computed locally), media type, raw bytes, parsed model."""

    digest: str
    media_type: str
    raw: bytes
    manifest: Manifest

    @property
    def size(self) -> int:
        return len(self.raw)


@dataclass(frozen=True)
class HistoryEntry:
    created: str | None = None
    created_by: str | None = None
    comment: str | None = None
    author: str | None = None
    empty_layer: bool = False


@dataclass(frozen=True)
class HistoryStep:
    """One history entry with the layer it produced (``None`` for ``empty_layer`` steps)."""

    entry: HistoryEntry
    layer: Descriptor | None
    layer_index: int | None


@dataclass(frozen=True)
class ImageConfig:
    """The parts of an image configuration that an operator looks at."""

    created: str | None = None
    os: str | None = None
    architecture: str | None = None
    variant: str | None = None
    author: str | None = None
    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    env: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    working_dir: str | None = None
    user: str | None = None
    exposed_ports: tuple[str, ...] = ()
    history: tuple[HistoryEntry, ...] = ()
    diff_ids: tuple[str, ...] = ()

    @property
    def platform(self) -> Platform | None:
        if not self.os or not self.architecture:
            return None
        return Platform(self.os, self.architecture, self.variant)


@dataclass(frozen=True)
class PingResult:
    """The answer of ``GET /v2/``."""

    base_url: str
    status_code: int
    api_version: str | None
    auth_scheme: str | None
    """``"basic"``/``"bearer"`` when the registry asked for credentials, else ``None``."""
    authenticated: bool
    """True when ``/v2/`` finally answered 200 (anonymously or with our credentials)."""


@dataclass(frozen=True)
class DeletePlan:
    """Exactly what deleting ``digest`` from ``repo`` removes, computed before anything is done."""

    repo: str
    digest: str
    media_type: str
    size: int
    tags: tuple[str, ...]
    """Every tag of ``repo`` that points at ``digest``: all of them disappear."""
    children: tuple[Descriptor, ...] = ()
    """For an index: its per-platform manifests (they stay, untagged, until GC)."""
    referrers: tuple[Descriptor, ...] = ()
    """Manifests whose ``subject`` is ``digest`` (signatures, SBOMs): left dangling."""


@dataclass(frozen=True)
class UntagResult:
    repo: str
    tag: str
    digest: str
    """The digest the tag pointed at before."""
    method: Literal["tag-delete", "placeholder", "dry-run"]
    sibling_tags: tuple[str, ...] = ()
    """Other tags on the same digest: they survive."""
    placeholder_digest: str | None = None
    """With the fallback: the tiny manifest that carried the tag and was then deleted."""


# --------------------------------------------------------------------------- parsers


def _obj(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise MalformedResponseError(f"The {what} is not a JSON object")
    return value


def _str_map(value: Any) -> Mapping[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): str(v) for k, v in value.items()}


def _str_tuple(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Sequence):
        return tuple(str(item) for item in value)
    return None


def parse_platform(value: Any) -> Platform | None:
    if not isinstance(value, Mapping):
        return None
    return Platform(
        os=str(value.get("os", "")),
        architecture=str(value.get("architecture", "")),
        variant=value.get("variant") or None,
        os_version=value.get("os.version") or None,
    )


def parse_descriptor(value: Any, what: str = "descriptor") -> Descriptor:
    data = _obj(value, what)
    digest = data.get("digest")
    size = data.get("size")
    media_type = data.get("mediaType")
    if not isinstance(digest, str) or ":" not in digest:
        raise MalformedResponseError(f"The {what} has no valid digest")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise MalformedResponseError(f"The {what} {digest} has no valid size")
    return Descriptor(
        media_type=str(media_type or ""),
        digest=digest,
        size=size,
        platform=parse_platform(data.get("platform")),
        annotations=_str_map(data.get("annotations")),
        artifact_type=data.get("artifactType") or None,
        urls=_str_tuple(data.get("urls")) or (),
    )


def _detect_media_type(data: Mapping[str, Any], declared: str | None) -> str:
    media_type = data.get("mediaType")
    if isinstance(media_type, str) and media_type:
        return media_type
    if data.get("schemaVersion") == 1:
        return DOCKER_SCHEMA1_SIGNED if "signatures" in data else DOCKER_SCHEMA1
    if declared and declared not in ("application/json", "text/plain"):
        return declared
    # OCI allows mediaType to be absent: decide by shape.
    return OCI_INDEX if "manifests" in data else OCI_MANIFEST


def parse_manifest(raw: bytes, content_type: str | None = None) -> tuple[str, Manifest]:
    """Parse manifest bytes into ``(media_type, model)``; ``content_type`` is the header's hint."""
    data = _obj(loads_json(raw, "manifest"), "manifest")
    declared = (content_type or "").split(";")[0].strip() or None
    media_type = _detect_media_type(data, declared)
    subject = parse_descriptor(data["subject"], "manifest subject") if data.get("subject") else None
    annotations = _str_map(data.get("annotations"))
    artifact_type = data.get("artifactType") or None
    if media_type in INDEX_MEDIA_TYPES:
        manifests = data.get("manifests")
        if not isinstance(manifests, list):
            raise MalformedResponseError("The index has no list of manifests")
        return media_type, ImageIndex(
            media_type=media_type,
            manifests=tuple(parse_descriptor(m, "index entry") for m in manifests),
            subject=subject,
            artifact_type=artifact_type,
            annotations=annotations,
        )
    if media_type in SCHEMA1_MEDIA_TYPES:
        return media_type, _parse_schema1(data, media_type)
    if "config" not in data:
        raise MalformedResponseError(f"The manifest ({media_type}) has no config")
    layers = data.get("layers", [])
    if not isinstance(layers, list):
        raise MalformedResponseError("The manifest's layers are not a list")
    return media_type, ImageManifest(
        media_type=media_type,
        config=parse_descriptor(data["config"], "manifest config"),
        layers=tuple(parse_descriptor(layer, "layer") for layer in layers),
        subject=subject,
        artifact_type=artifact_type,
        annotations=annotations,
    )


def _parse_schema1(data: Mapping[str, Any], media_type: str) -> Schema1Manifest:
    fs_layers = data.get("fsLayers", [])
    history = data.get("history", [])
    if not isinstance(fs_layers, list) or not isinstance(history, list):
        raise MalformedResponseError("The schema1 manifest has no fsLayers/history lists")
    decoded: list[Mapping[str, Any]] = []
    for item in history:
        compat = item.get("v1Compatibility") if isinstance(item, Mapping) else None
        if compat and not isinstance(compat, str):
            raise MalformedResponseError("A schema1 v1Compatibility is not a string")
        decoded.append(
            _obj(loads_json(compat, "schema1 v1Compatibility"), "v1Compatibility") if compat else {}
        )
    return Schema1Manifest(
        media_type=media_type,
        name=str(data.get("name", "")),
        tag=str(data.get("tag", "")),
        architecture=str(data.get("architecture", "")),
        fs_layers=tuple(str(_obj(f, "fsLayer").get("blobSum", "")) for f in fs_layers),
        history=tuple(decoded),
        signed="signatures" in data,
    )


def parse_config(raw: bytes) -> ImageConfig:
    """Parse an image configuration blob (Docker or OCI)."""
    data = _obj(loads_json(raw, "image config"), "image config")
    runtime = data.get("config") or {}
    if not isinstance(runtime, Mapping):
        runtime = {}
    rootfs = data.get("rootfs") or {}
    history_raw = data.get("history") or []
    history = tuple(
        HistoryEntry(
            created=h.get("created"),
            created_by=h.get("created_by"),
            comment=h.get("comment"),
            author=h.get("author"),
            empty_layer=bool(h.get("empty_layer", False)),
        )
        for h in history_raw
        if isinstance(h, Mapping)
    )
    return ImageConfig(
        created=data.get("created"),
        os=data.get("os"),
        architecture=data.get("architecture"),
        variant=data.get("variant"),
        author=data.get("author"),
        entrypoint=_str_tuple(runtime.get("Entrypoint")),
        cmd=_str_tuple(runtime.get("Cmd")),
        env=_str_tuple(runtime.get("Env")) or (),
        labels=_str_map(runtime.get("Labels")),
        working_dir=runtime.get("WorkingDir") or None,
        user=runtime.get("User") or None,
        exposed_ports=tuple(sorted(runtime.get("ExposedPorts") or {})),
        history=history,
        diff_ids=_str_tuple(rootfs.get("diff_ids") if isinstance(rootfs, Mapping) else None) or (),
    )


def match_history(config: ImageConfig, layers: Sequence[Descriptor]) -> list[HistoryStep]:
    """Pair each history entry with the layer it produced.

    Entries with ``empty_layer`` produced no layer; every other entry consumes the next layer in
    order. When history and layers disagree (more non-empty entries than layers, as squashed or
    hand-made images have), the surplus entries get no layer; layers left over after the history
    is exhausted get a synthetic entry so that no layer is ever hidden.
    """
    steps: list[HistoryStep] = []
    index = 0
    for entry in config.history:
        if entry.empty_layer or index >= len(layers):
            steps.append(HistoryStep(entry, None, None))
            continue
        steps.append(HistoryStep(entry, layers[index], index))
        index += 1
    for extra in range(index, len(layers)):
        steps.append(HistoryStep(HistoryEntry(comment="(no history)"), layers[extra], extra))
    return steps
