"""Pure planning of ``regtui cp`` and ``regtui tag``: where an image comes from and goes to, which
platform, and the order of writes.

No I/O here. The engine (:mod:`tui.data.copy`) reads manifests into :class:`ManifestNode` trees,
then writes in the order :func:`write_order` gives: every blob first, then each child manifest
by digest, the referrers after their subject, and the tags last, so an interrupted copy never
leaves a tag on a manifest whose blobs are missing.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tui.client.models import OCI_INDEX, Descriptor, Platform
from tui.client.reference import TAG_RE, Reference, parse_reference

__all__ = [
    "REF_NAME",
    "ArchiveLocation",
    "Location",
    "ManifestNode",
    "OciLocation",
    "PlatformError",
    "RegistryLocation",
    "blobs_of",
    "choose_platform",
    "destination_tags",
    "machine_platform",
    "parse_location",
    "parse_platform",
    "referrers_index",
    "referrers_tag",
    "safe_member",
    "write_order",
]

REF_NAME = "org.opencontainers.image.ref.name"
"""The annotation of an OCI layout's ``index.json`` entry that names it (its tag)."""


class PlatformError(ValueError):
    """A platform that is not ``os/arch[/variant]``, or not in the image: a usage error."""


@dataclass(frozen=True)
class RegistryLocation:
    ref: Reference

    def __str__(self) -> str:
        return str(self.ref)


@dataclass(frozen=True)
class OciLocation:
    """``oci:DIR[:TAG]``: an OCI image layout directory."""

    path: str
    tag: str | None = None

    def __str__(self) -> str:
        return f"oci:{self.path}" + (f":{self.tag}" if self.tag else "")


@dataclass(frozen=True)
class ArchiveLocation:
    """``docker-archive:FILE[:NAME:TAG]``: a ``docker save`` tar."""

    path: str
    name: str | None = None
    """The image's ``RepoTags`` entry (``name:tag``), to pick it or to write it."""

    def __str__(self) -> str:
        return f"docker-archive:{self.path}" + (f":{self.name}" if self.name else "")


Location = RegistryLocation | OciLocation | ArchiveLocation


def parse_location(text: str) -> Location:
    """``oci:DIR[:TAG]``, ``docker-archive:FILE[:NAME:TAG]``, ``HOST/REPO[:TAG|@DIGEST]`` (or
    ``docker://NAME``: Docker Hub's short names too).

    As skopeo splits them: the path ends at its first ``:``. Raises ``ValueError``
    (:class:`~tui.client.reference.InvalidReferenceError` for a bad reference)."""
    if text.startswith("oci:"):
        path, _, tag = text[4:].partition(":")
        if not path:
            raise ValueError(f"{text!r}: oci: needs a directory")
        if tag and not TAG_RE.match(tag):
            raise ValueError(f"{text!r}: {tag!r} is not a valid tag")
        return OciLocation(path, tag or None)
    if text.startswith("docker-archive:"):
        path, _, name = text[len("docker-archive:") :].partition(":")
        if not path:
            raise ValueError(f"{text!r}: docker-archive: needs a file")
        if name:
            parse_reference(name)  # a valid image name (raises otherwise)
        return ArchiveLocation(path, name or None)
    if text.startswith("docker://"):  # as skopeo: Docker Hub's short names allowed
        return RegistryLocation(parse_reference(text.removeprefix("docker://")))
    return RegistryLocation(parse_reference(text, require_host=True))


_MACHINES = {
    "x86_64": ("amd64", None),
    "amd64": ("amd64", None),
    "aarch64": ("arm64", None),
    "arm64": ("arm64", None),
    "armv7l": ("arm", "v7"),
    "armv6l": ("arm", "v6"),
    "i686": ("386", None),
    "i386": ("386", None),
    "ppc64le": ("ppc64le", None),
    "s390x": ("s390x", None),
    "riscv64": ("riscv64", None),
}


def machine_platform(machine: str) -> Platform:
    """The platform of this machine (``platform.machine()``), Linux as skopeo assumes it."""
    architecture, variant = _MACHINES.get(machine.lower(), (machine.lower(), None))
    return Platform("linux", architecture, variant)


def parse_platform(text: str) -> Platform:
    """``os/arch[/variant]`` -> a :class:`Platform`."""
    parts = text.strip().split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise PlatformError(f"{text!r} is not a platform: give os/arch[/variant] (linux/arm64)")
    return Platform(parts[0], parts[1], parts[2] if len(parts) == 3 else None)


def destination_tags(source: Location, destination: Location) -> list[str]:
    """The destination's tag: its own, else the source's (none when the source was named by
    digest: the copy is by digest only)."""
    if isinstance(destination, RegistryLocation) and destination.ref.tag:
        return [destination.ref.tag]
    if isinstance(destination, OciLocation) and destination.tag:
        return [destination.tag]
    if isinstance(destination, ArchiveLocation) and destination.name:
        return [destination.name]
    if isinstance(source, RegistryLocation):
        if isinstance(destination, ArchiveLocation):
            return [f"{source.ref.registry}/{source.ref.repository}:{source.ref.tag or 'latest'}"]
        return [source.ref.tag] if source.ref.tag else []
    if isinstance(source, OciLocation) and source.tag:
        return [source.tag]
    if isinstance(source, ArchiveLocation) and source.name and ":" in source.name:
        return [source.name.rsplit(":", 1)[1]]
    return ["latest"] if isinstance(destination, RegistryLocation) else []


def _variant(platform: Platform) -> str | None:
    # arm64 images are v8 unless they say otherwise (containerd's normalisation)
    if platform.architecture == "arm64" and platform.variant in (None, "v8"):
        return None
    return platform.variant


def choose_platform(manifests: Sequence[Descriptor], wanted: Platform) -> Descriptor:
    """The entry of an index for ``wanted``: same os and architecture, the same variant when
    one is asked (else the first with none, else the first); raises :class:`PlatformError`."""
    same = [
        d
        for d in manifests
        if d.platform is not None
        and d.platform.os == wanted.os
        and d.platform.architecture == wanted.architecture
    ]
    want_variant = _variant(wanted)
    if want_variant is not None:
        same = [d for d in same if d.platform and _variant(d.platform) == want_variant]
    else:
        same.sort(key=lambda d: d.platform is not None and _variant(d.platform) is not None)
    if not same:
        have = ", ".join(sorted({str(d.platform) for d in manifests if d.platform})) or "none"
        raise PlatformError(f"the image has no {wanted} (it has: {have}); use --platform or --all")
    return same[0]


def referrers_tag(digest: str) -> str:
    """The tag of the referrers tag schema: ``sha256:<hex>`` -> ``sha256-<hex>``."""
    algorithm, _, hex_part = digest.partition(":")
    return f"{algorithm}-{hex_part}"[:128]


def descriptor_document(
    entry: Descriptor, annotations: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The JSON object of an index's entry: media type, digest, size, and the artifact type
    and ``annotations`` when there are any."""
    item: dict[str, Any] = {
        "mediaType": entry.media_type,
        "digest": entry.digest,
        "size": entry.size,
    }
    if entry.artifact_type:
        item["artifactType"] = entry.artifact_type
    if annotations:
        item["annotations"] = dict(annotations)
    return item


def referrers_index(existing: Mapping[str, Any] | None, entries: Sequence[Descriptor]) -> bytes:
    """The referrers index of the tag schema with ``entries`` added to ``existing`` (an
    already parsed index, or ``None``); entries already there are kept once."""
    manifests: list[dict[str, Any]] = []
    if existing is not None and isinstance(existing.get("manifests"), list):
        manifests = [m for m in existing["manifests"] if isinstance(m, dict)]
    have = {m.get("digest") for m in manifests}
    for entry in entries:
        if entry.digest in have:
            continue
        have.add(entry.digest)
        manifests.append(descriptor_document(entry, entry.annotations))
    document = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}
    return json.dumps(document, separators=(",", ":")).encode()


@dataclass(frozen=True)
class ManifestNode:
    """A manifest to copy, read and verified: its children (an index's, the ones kept), its
    blobs (an image's config and layers) and the referrers to copy with it."""

    digest: str
    media_type: str
    raw: bytes
    blobs: tuple[Descriptor, ...] = ()
    children: tuple[ManifestNode, ...] = ()
    referrers: tuple[ManifestNode, ...] = ()
    platform: Platform | None = None
    artifact_type: str | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.raw)

    def descriptor(self) -> Descriptor:
        return Descriptor(
            self.media_type,
            self.digest,
            self.size,
            platform=self.platform,
            artifact_type=self.artifact_type,
            annotations=self.annotations,
        )

    def walk(self) -> Iterator[ManifestNode]:
        """This node and every node under it, children and referrers, depth first."""
        yield self
        for node in (*self.children, *self.referrers):
            yield from node.walk()


def blobs_of(root: ManifestNode) -> list[Descriptor]:
    """Every blob the copy writes, each digest once, in the order met."""
    seen: set[str] = set()
    found: list[Descriptor] = []
    for node in root.walk():
        for blob in node.blobs:
            if blob.digest not in seen:
                seen.add(blob.digest)
                found.append(blob)
    return found


def write_order(root: ManifestNode) -> list[ManifestNode]:
    """The manifests to write by digest, each after what it lists: an index's children before
    it; a referrer after its subject. The root comes last, or before its referrers when it has
    some (it is then written by digest and the tags come after the referrers)."""
    order: list[ManifestNode] = []
    seen: set[str] = set()

    def visit(node: ManifestNode, is_root: bool) -> None:
        if node.digest in seen:
            return
        for child in node.children:
            visit(child, False)
        seen.add(node.digest)
        if not is_root or node.referrers:
            order.append(node)
        for referrer in node.referrers:
            visit(referrer, False)

    visit(root, True)
    return order


_UNSAFE = re.compile(r"(^|/)\.\.(/|$)")


def safe_member(name: str, base: str = "") -> str:
    """``name`` (a path inside an archive, relative to the directory ``base`` of the member
    that names it) as a clean archive path; ``ValueError`` when it leaves the archive."""
    if not name or name.startswith("/") or "\\" in name or "\x00" in name:
        raise ValueError(f"{name!r} is not a path inside the archive")
    joined = posixpath.normpath(posixpath.join(base, name))
    if (
        joined.startswith("../")
        or joined == ".."
        or joined.startswith("/")
        or _UNSAFE.search(joined)
    ):
        raise ValueError(f"{name!r} points outside the archive")
    return joined
