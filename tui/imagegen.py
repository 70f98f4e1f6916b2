"""Build real container images in memory and push them over the Registry HTTP API.

Used by ``regtui serve --local --demo`` and by the tests. Everything here is deterministic: the
same arguments give the same bytes, so the same digests (tar entries and gzip headers carry a
fixed time), which keeps snapshot tests and comparisons stable.

Nothing here knows about Textual or the bundled registry: images are blobs plus a manifest, and
``push_image`` talks plain HTTP to any v2 registry.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
import zstandard

# Media types ------------------------------------------------------------------------------------
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"

Compression = Literal["gzip", "zstd", "none"]
# A file tree: path -> content; ``None`` makes a directory. A name ``dir/.wh.file`` is a whiteout.
FileTree = Mapping[str, bytes | None]

FIXED_MTIME = 1_700_000_000  # 2023-11-14T22:13:20Z, for every tar entry
DEFAULT_CREATED = "2024-01-15T10:00:00Z"


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(document: Mapping[str, Any]) -> bytes:
    """Serialize a manifest or config the way it is pushed: compact, keys in insertion order."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class Blob:
    """Content-addressed bytes with the media type under which a manifest names them."""

    data: bytes
    media_type: str

    @property
    def digest(self) -> str:
        return sha256_digest(self.data)

    @property
    def size(self) -> int:
        return len(self.data)

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        """The OCI descriptor of this blob; ``extra`` adds fields such as ``platform``."""
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size, **extra}


@dataclass(frozen=True)
class Image:
    """One image (or artifact): a manifest, its config and its layers."""

    manifest: Blob
    config: Blob
    layers: tuple[Blob, ...]
    platform: Mapping[str, str] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        return self.manifest.digest

    def blobs(self) -> list[Blob]:
        """Config and layers: what must be uploaded before the manifest."""
        return [self.config, *self.layers]


@dataclass(frozen=True)
class Index:
    """A multi-platform image: an index (or Docker manifest list) and its child images."""

    manifest: Blob
    images: tuple[Image, ...]

    @property
    def digest(self) -> str:
        return self.manifest.digest

    def blobs(self) -> list[Blob]:
        return [blob for image in self.images for blob in image.blobs()]


Pushable = Image | Index


def tar_bytes(files: FileTree) -> bytes:
    """A POSIX tar of ``files``; parent directories are added, entries sorted, times fixed."""
    entries: dict[str, bytes | None] = {}
    for path, content in files.items():
        parts = path.strip("/").split("/")
        for depth in range(1, len(parts)):
            entries.setdefault("/".join(parts[:depth]), None)
        entries["/".join(parts)] = content
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(entries):
            content = entries[name]
            info = tarfile.TarInfo(name)
            info.mtime = FIXED_MTIME
            info.uname = info.gname = "root"
            if content is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            else:
                info.size = len(content)
                info.mode = 0o755 if name.startswith(("bin/", "usr/bin/")) else 0o644
                tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def compress(data: bytes, compression: Compression) -> bytes:
    if compression == "gzip":
        return gzip.compress(data, compresslevel=6, mtime=0)
    if compression == "zstd":
        return zstandard.ZstdCompressor(level=3).compress(data)
    return data


def layer_media_type(compression: Compression, *, oci: bool) -> str:
    if not oci:
        if compression != "gzip":
            raise ValueError("Docker schema2 layers are gzip-compressed; use oci=True for others")
        return DOCKER_LAYER_GZIP
    return {"gzip": OCI_LAYER_GZIP, "zstd": OCI_LAYER_ZSTD, "none": OCI_LAYER_TAR}[compression]


def make_layer(files: FileTree, *, compression: Compression = "gzip", oci: bool = True) -> Blob:
    """A layer blob holding ``files``."""
    return Blob(compress(tar_bytes(files), compression), layer_media_type(compression, oci=oci))


def _diff_id(layer: Blob) -> str:
    if layer.media_type.endswith("gzip"):
        return sha256_digest(gzip.decompress(layer.data))
    if layer.media_type.endswith("zstd"):
        return sha256_digest(zstandard.ZstdDecompressor().decompressobj().decompress(layer.data))
    return layer.digest


def make_image(
    layers: Sequence[FileTree | Blob],
    *,
    oci: bool = True,
    os: str = "linux",
    architecture: str = "amd64",
    variant: str | None = None,
    created: str = DEFAULT_CREATED,
    commands: Sequence[str] | None = None,
    entrypoint: Sequence[str] | None = None,
    cmd: Sequence[str] | None = ("/bin/sh",),
    env: Sequence[str] = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",),
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    compression: Compression = "gzip",
    empty_layer_commands: Sequence[str] = ('CMD ["/bin/sh"]',),
) -> Image:
    """A runnable-looking image: config with history, layers, manifest.

    ``commands`` are the ``created_by`` of each layer (default: ``COPY layer-N /``);
    ``empty_layer_commands`` are appended as history entries with ``empty_layer: true``, as
    ``docker build`` writes for ``CMD``/``ENV``.
    """
    layer_blobs = tuple(
        item if isinstance(item, Blob) else make_layer(item, compression=compression, oci=oci)
        for item in layers
    )
    commands = list(commands or [f"COPY layer-{n} / # buildkit" for n in range(len(layer_blobs))])
    if len(commands) != len(layer_blobs):
        raise ValueError("one command per layer")
    history: list[dict[str, Any]] = [
        {"created": created, "created_by": command} for command in commands
    ]
    history += [
        {"created": created, "created_by": command, "empty_layer": True}
        for command in empty_layer_commands
    ]
    platform = {"os": os, "architecture": architecture}
    if variant:
        platform["variant"] = variant
    container_config: dict[str, Any] = {"Env": list(env)}
    if entrypoint:
        container_config["Entrypoint"] = list(entrypoint)
    if cmd:
        container_config["Cmd"] = list(cmd)
    if labels:
        container_config["Labels"] = dict(labels)
    config_document: dict[str, Any] = {
        "architecture": architecture,
        "os": os,
        **({"variant": variant} if variant else {}),
        "created": created,
        "config": container_config,
        "rootfs": {"type": "layers", "diff_ids": [_diff_id(layer) for layer in layer_blobs]},
        "history": history,
    }
    config = Blob(canonical_json(config_document), OCI_CONFIG if oci else DOCKER_CONFIG)
    manifest_document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST if oci else DOCKER_MANIFEST,
        "config": config.descriptor(),
        "layers": [layer.descriptor() for layer in layer_blobs],
    }
    if annotations:
        manifest_document["annotations"] = dict(annotations)
    manifest = Blob(canonical_json(manifest_document), manifest_document["mediaType"])
    return Image(manifest=manifest, config=config, layers=layer_blobs, platform=platform)


def make_index(
    images: Sequence[Image], *, oci: bool = True, annotations: Mapping[str, str] | None = None
) -> Index:
    """A multi-platform index over ``images`` (each must carry its platform)."""
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX if oci else DOCKER_MANIFEST_LIST,
        "manifests": [image.manifest.descriptor(platform=dict(image.platform)) for image in images],
    }
    if annotations:
        document["annotations"] = dict(annotations)
    return Index(Blob(canonical_json(document), document["mediaType"]), tuple(images))


def make_artifact(
    subject: Pushable,
    *,
    artifact_type: str = "application/vnd.dev.cosign.simplesigning.v1+json",
    payload: bytes = b'{"critical":{"type":"regtui demo signature"}}',
    payload_media_type: str | None = None,
    annotations: Mapping[str, str] | None = None,
) -> Image:
    """An OCI 1.1 artifact (a signature, an SBOM) whose ``subject`` is ``subject``'s manifest."""
    config = Blob(b"{}", OCI_EMPTY)
    layer = Blob(payload, payload_media_type or artifact_type)
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": config.descriptor(),
        "layers": [layer.descriptor()],
        "subject": subject.manifest.descriptor(),
        "annotations": dict(annotations or {"org.opencontainers.image.created": DEFAULT_CREATED}),
    }
    return Image(Blob(canonical_json(document), OCI_MANIFEST), config, (layer,))


# Pushing ----------------------------------------------------------------------------------------


class PushError(RuntimeError):
    """The registry refused part of a push; the message carries its answer."""


def _check(response: httpx.Response, *expected: int) -> httpx.Response:
    if response.status_code not in expected:
        raise PushError(
            f"{response.request.method} {response.request.url.path} answered "
            f"{response.status_code}: {response.text[:300]}"
        )
    return response


def push_blob(client: httpx.Client, repo: str, blob: Blob) -> None:
    """Upload ``blob`` into ``repo`` unless it is there already (POST, then PUT with digest)."""
    if client.head(f"/v2/{repo}/blobs/{blob.digest}").status_code == 200:
        return
    started = _check(client.post(f"/v2/{repo}/blobs/uploads/"), 202)
    location = started.headers["Location"]
    separator = "&" if "?" in location else "?"
    _check(
        client.put(
            f"{location}{separator}digest={blob.digest}",
            content=blob.data,
            headers={"Content-Type": "application/octet-stream"},
        ),
        201,
    )


def push_manifest(client: httpx.Client, repo: str, reference: str, manifest: Blob) -> str:
    response = _check(
        client.put(
            f"/v2/{repo}/manifests/{reference}",
            content=manifest.data,
            headers={"Content-Type": manifest.media_type},
        ),
        201,
    )
    return response.headers.get("Docker-Content-Digest", manifest.digest)


def push_image(
    base_url: str | httpx.Client,
    repo: str,
    reference: str | None,
    item: Pushable,
    *,
    auth: httpx.Auth | tuple[str, str] | None = None,
) -> str:
    """Push ``item`` (an image, an index with its children, or an artifact) and return its digest.

    ``reference`` is a tag, or ``None`` to push by digest only (an untagged manifest).
    """
    if isinstance(base_url, httpx.Client):
        return _push(base_url, repo, reference, item)
    with httpx.Client(base_url=base_url, auth=auth, timeout=60.0) as client:
        return _push(client, repo, reference, item)


def _push(client: httpx.Client, repo: str, reference: str | None, item: Pushable) -> str:
    children: Iterable[Image] = item.images if isinstance(item, Index) else ()
    for child in children:
        _push(client, repo, None, child)
    if isinstance(item, Image):
        for blob in item.blobs():
            push_blob(client, repo, blob)
    return push_manifest(client, repo, reference or item.digest, item.manifest)


def write_oci_layout(directory: Path, item: Pushable, *, tag: str = "latest") -> Path:
    """Write ``item`` as an OCI image layout (for ``skopeo copy oci:DIR:TAG``)."""
    blobs_dir = directory / "blobs" / "sha256"
    blobs_dir.mkdir(parents=True, exist_ok=True)
    images = item.images if isinstance(item, Index) else (item,)
    every_blob = [item.manifest] + [b for image in images for b in (image.manifest, *image.blobs())]
    for blob in every_blob:
        (blobs_dir / blob.digest.split(":", 1)[1]).write_bytes(blob.data)
    (directory / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            item.manifest.descriptor(annotations={"org.opencontainers.image.ref.name": tag})
        ],
    }
    (directory / "index.json").write_text(json.dumps(index))
    return directory
