"""Manifest media types and the parsing that manifest PUT and GET need.

``parse_manifest`` checks a manifest body against its declared media type and lists what it
references: blobs (config and layers) that must be linked in the repository, child manifests (of
an index) that must exist in it, and the ``subject`` that makes it a referrer. ``describe_stored``
names the media type of a manifest already on disk (schema1 included) for GET.
``parse_stored_manifest`` reads what a stored manifest references, by its media type only, for
garbage collection and the ``ext/tags`` document (never an exception: an unreadable body is a
:class:`StoredManifest` with an ``error``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from embedded_registry import errors, names

DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
DOCKER_SCHEMA2 = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"

IMAGE_MANIFESTS = frozenset({DOCKER_SCHEMA2, OCI_MANIFEST})
INDEXES = frozenset({DOCKER_LIST, OCI_INDEX})
PUSHABLE = IMAGE_MANIFESTS | INDEXES
SCHEMA1 = frozenset({DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED})
OCI_ARTIFACT_DRAFT = "application/vnd.oci.artifact.manifest.v1+json"
"""OCI 1.1's draft artifact manifest (``blobs``), which some registries stored."""

# Distribution's limit on a manifest body (registry/handlers/manifests.go, maxManifestBodySize).
MAX_MANIFEST_SIZE = 4 << 20

MAX_JSON_DEPTH = 64
"""Arrays and objects nested deeper than this are refused before parsing: a manifest needs 4
levels (an index's annotations), and Python's parser recurses once per level."""

_BRACKETS_AND_STRINGS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


def nesting_depth(text: str) -> int:
    """The deepest nesting of arrays and objects in a JSON text (strings skipped), without
    recursion; malformed text gets some number, and the parser then says what is wrong."""
    depth = deepest = 0
    for match in _BRACKETS_AND_STRINGS.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
        elif token in "]}":
            depth -= 1
    return deepest


@dataclass(frozen=True)
class ManifestInfo:
    """What the registry needs to know about one manifest."""

    media_type: str
    size: int
    blobs: tuple[str, ...] = ()
    children: tuple[str, ...] = ()
    subject: str | None = None
    artifact_type: str | None = None
    annotations: dict[str, str] | None = field(default=None, hash=False, compare=False)

    def referrer_descriptor(self, digest: str) -> dict[str, Any]:
        descriptor: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": digest,
            "size": self.size,
        }
        if self.artifact_type:
            descriptor["artifactType"] = self.artifact_type
        if self.annotations:
            descriptor["annotations"] = self.annotations
        return descriptor


def _descriptor_digest(descriptor: Any, where: str) -> str:
    if not isinstance(descriptor, dict):
        raise errors.manifest_invalid(f"{where}: descriptor must be an object")
    digest = descriptor.get("digest")
    if not isinstance(digest, str) or not names.is_valid_digest(digest):
        raise errors.manifest_invalid(f"{where}: invalid digest {digest!r}")
    size = descriptor.get("size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise errors.manifest_invalid(f"{where}: invalid size {size!r}")
    return digest


def _annotations(document: dict[str, Any]) -> dict[str, str] | None:
    annotations = document.get("annotations")
    if isinstance(annotations, dict) and annotations:
        return {str(key): str(value) for key, value in annotations.items()}
    return None


def load_json(body: bytes) -> dict[str, Any]:
    """The manifest as a JSON object, or MANIFEST_INVALID with the detail Distribution gives:
    Go's ``json.SyntaxError`` (``{"Offset": N}``, the bytes read when the error was found) or
    ``json.UnmarshalTypeError`` (``{"Value": "array", ..., "Offset": N}``) rendered as JSON."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise errors.manifest_invalid({"Offset": exc.start + 1}) from None
    if nesting_depth(text) > MAX_JSON_DEPTH:
        raise errors.manifest_invalid(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        read = len(text[: exc.pos].encode()) + 1  # Go counts the offending byte as read
        raise errors.manifest_invalid({"Offset": min(read, len(body))}) from None
    except RecursionError:  # a last guard: nesting_depth already refused what recurses
        raise errors.manifest_invalid("JSON nested too deeply") from None
    if not isinstance(document, dict):
        raise errors.manifest_invalid(_type_error(text, document))
    return document


def _type_error(text: str, document: object) -> dict[str, Any]:
    """Go's UnmarshalTypeError for a top-level value that is not an object."""
    stripped = text.strip()
    start = len(text) - len(text.lstrip())
    if isinstance(document, list):
        value, end = "array", start + 1  # Go stops after the opening bracket...
    else:
        if isinstance(document, bool):
            value = "bool"
        elif isinstance(document, str):
            value = "string"
        elif document is None:
            value = "null"
        else:
            value = "number"
        end = start + len(stripped)  # ... and after a literal
    offset = len(text[:end].encode())
    return {"Value": value, "Type": {}, "Offset": offset, "Struct": "", "Field": ""}


IMAGE_ONLY_FIELDS = ("config", "layers")
INDEX_ONLY_FIELDS = ("manifests",)
SCHEMA1_FIELDS = ("fsLayers",)


def _foreign_fields(document: dict[str, Any], content_type: str) -> list[str]:
    """The fields (not null) of ``document`` that belong to another kind of manifest than
    ``content_type``: ``manifests`` in an image manifest, ``config`` or ``layers`` in an index,
    schema1's ``fsLayers`` in either."""
    others = INDEX_ONLY_FIELDS if content_type in IMAGE_MANIFESTS else IMAGE_ONLY_FIELDS
    return [name for name in (*others, *SCHEMA1_FIELDS) if document.get(name) is not None]


def parse_manifest(body: bytes, content_type: str) -> ManifestInfo:
    """Validate a pushed manifest of ``content_type`` (parameters already stripped)."""
    document = load_json(body)
    schema_version = document.get("schemaVersion")
    if schema_version == 1 or content_type in SCHEMA1:
        raise errors.manifest_invalid("schema1 manifests are not supported")
    if content_type not in PUSHABLE:
        raise errors.manifest_invalid(f"unsupported manifest media type {content_type!r}")
    if schema_version != 2:
        raise errors.manifest_invalid(f"unsupported schemaVersion {schema_version!r}")
    declared = document.get("mediaType")
    if declared is not None and declared != content_type:
        raise errors.manifest_invalid(
            f"mediaType in manifest should be {content_type!r} not {declared!r}"
        )
    if content_type in (DOCKER_SCHEMA2, DOCKER_LIST) and declared is None:
        raise errors.manifest_invalid("mediaType is required in Docker manifests")
    foreign = _foreign_fields(document, content_type)
    if foreign:
        # Distribution's answer to a body that reads as another kind of manifest
        # (GHSA-qq97-vm5h-rrhg): a reader that went by its fields would see other references.
        kind = "index" if content_type in INDEXES else "manifest"
        raise errors.manifest_invalid(
            f"{content_type}: expected {kind} but found {', '.join(foreign)}"
        )

    blobs: list[str] = []
    children: list[str] = []
    artifact_type = document.get("artifactType")
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise errors.manifest_invalid("artifactType must be a string")
    if content_type in IMAGE_MANIFESTS:
        config = document.get("config")
        blobs.append(_descriptor_digest(config, "config"))
        assert isinstance(config, dict)  # _descriptor_digest refused anything else
        layers = document.get("layers", [])
        if not isinstance(layers, list):
            raise errors.manifest_invalid("layers must be a list")
        for position, layer in enumerate(layers):
            digest = _descriptor_digest(layer, f"layers[{position}]")
            # Foreign (non-distributable) layers live elsewhere: their blobs are not required.
            if not layer.get("urls"):
                blobs.append(digest)
        if artifact_type is None and content_type == OCI_MANIFEST:
            artifact_type = config.get("mediaType")
    else:
        manifests = document.get("manifests")
        if not isinstance(manifests, list):
            raise errors.manifest_invalid("manifests must be a list")
        for position, child in enumerate(manifests):
            children.append(_descriptor_digest(child, f"manifests[{position}]"))
    subject = None
    if "subject" in document and document["subject"] is not None:
        subject = _descriptor_digest(document["subject"], "subject")
    return ManifestInfo(
        media_type=content_type,
        size=len(body),
        blobs=tuple(dict.fromkeys(blobs)),
        children=tuple(dict.fromkeys(children)),
        subject=subject,
        artifact_type=artifact_type,
        annotations=_annotations(document),
    )


def describe_stored(body: bytes) -> ManifestInfo:
    """The media type (and references) of a manifest already stored, whatever its schema."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return ManifestInfo(media_type=DOCKER_SCHEMA1_SIGNED, size=len(body))
    if not isinstance(document, dict):
        return ManifestInfo(media_type=OCI_MANIFEST, size=len(body))
    media_type = document.get("mediaType")
    if document.get("schemaVersion") == 1:
        signed = "signatures" in document
        return ManifestInfo(
            media_type=DOCKER_SCHEMA1_SIGNED if signed else DOCKER_SCHEMA1, size=len(body)
        )
    if not isinstance(media_type, str) or not media_type:
        media_type = OCI_INDEX if "manifests" in document else OCI_MANIFEST
    try:
        return parse_manifest(body, media_type)
    except errors.RegistryError:
        return ManifestInfo(media_type=media_type, size=len(body))


@dataclass(slots=True)
class StoredManifest:
    """What garbage collection needs from a manifest: what it references, by role."""

    digest: str
    config: str | None = None
    layers: tuple[str, ...] = ()
    children: tuple[str, ...] = ()
    subject: str | None = None
    error: str | None = None


def parse_stored_manifest(digest: str, data: bytes) -> StoredManifest:
    """The references of a manifest of any kind regtui serves (schema1/2, OCI, indexes), read
    by its media type only, never by which fields its body carries (an image manifest with an
    extra ``"manifests": []`` is still an image manifest: GHSA-qq97-vm5h-rrhg).

    The media type is the body's ``schemaVersion`` 1 (schema1) or its declared ``mediaType``
    (the layout stores no other). An OCI manifest or index may leave it out; such a body is
    read both ways, so that whatever it was pushed as, nothing it references is swept."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        return StoredManifest(digest, error=f"not JSON ({exc.__class__.__name__}: {exc})")
    except RecursionError:
        return StoredManifest(digest, error="not a manifest: JSON nested too deeply")
    return parse_stored_document(digest, doc)


def parse_stored_document(digest: str, doc: object) -> StoredManifest:
    """:func:`parse_stored_manifest` of a body already parsed as JSON (``doc``)."""
    if not isinstance(doc, dict):
        return StoredManifest(digest, error="not a JSON object")
    media_type = doc.get("mediaType")
    try:
        subject = doc.get("subject")
        subject_digest = subject["digest"] if isinstance(subject, dict) else None
        if doc.get("schemaVersion") == 1:
            layers = tuple(dict.fromkeys(d["blobSum"] for d in doc["fsLayers"]))
            return StoredManifest(digest, layers=layers)
        if media_type in INDEXES:
            return StoredManifest(
                digest, children=_digests(doc, "manifests"), subject=subject_digest
            )
        if media_type in IMAGE_MANIFESTS:
            config = doc["config"]["digest"]
            return StoredManifest(
                digest, config=config, layers=_digests(doc, "layers"), subject=subject_digest
            )
        if media_type == OCI_ARTIFACT_DRAFT:
            return StoredManifest(digest, layers=_digests(doc, "blobs"), subject=subject_digest)
        if media_type is None:
            config = doc.get("config")
            return StoredManifest(
                digest,
                config=config["digest"] if config is not None else None,
                layers=_digests(doc, "layers"),
                children=_digests(doc, "manifests"),
                subject=subject_digest,
            )
    except (KeyError, TypeError) as exc:
        return StoredManifest(digest, error=f"malformed manifest ({exc.__class__.__name__}: {exc})")
    return StoredManifest(digest, error=f"unknown manifest type {media_type!r}")


def _digests(doc: dict[str, object], field_name: str) -> tuple[str, ...]:
    """The digests of the descriptors in ``doc[field_name]`` (none when absent or null);
    KeyError or TypeError when one is malformed."""
    descriptors = doc.get(field_name) or ()
    if not isinstance(descriptors, list):
        raise TypeError(f"{field_name} is not a list")
    return tuple(d["digest"] for d in descriptors)
