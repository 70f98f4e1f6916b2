"""A ``docker save`` archive (``docker-archive:FILE[:NAME:TAG]``) as a source and a destination.

The format: a tar holding ``manifest.json`` (a list of ``{"Config", "RepoTags", "Layers"}``,
paths inside the archive), ``repositories``, the image config (JSON) and one tar per layer,
uncompressed as Docker writes them (Docker 25 and later name them ``blobs/sha256/<hex>``;
older versions ``<id>/layer.tar``, with symbolic links for repeated layers).

Reading: every path ``manifest.json`` names must stay inside the archive (symbolic links too)
and be there; ``manifest.json`` is read up to 4 MiB, a config up to 16 MiB, at most 100,000
members. The image comes out as an OCI manifest whose layers are the archive's layer tars as
they are (their digests the config's ``diff_ids``; a compressed one is hashed first), each
checked against its digest while it streams.

Writing: layers are decompressed on their way (gzip, zstd; ``diff_ids`` checked) into a
temporary file beside the target, which is renamed into place only when the whole image is
in: a killed copy leaves no half-written archive under the name.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import re
import tarfile
import tempfile
import zlib
from collections.abc import AsyncIterable, AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

from tui.client.models import (
    OCI_CONFIG,
    OCI_MANIFEST,
    Descriptor,
    ImageManifest,
    parse_manifest,
)
from tui.data.copy_io import CHUNK, CopyError, Source
from tui.logic.copy_plan import ManifestNode, safe_member

__all__ = ["ArchiveDestination", "ArchiveSource"]

MAX_MANIFEST_JSON = 4 * 1024 * 1024
MAX_CONFIG = 16 * 1024 * 1024
MAX_MEMBERS = 100_000
MAX_LINK_HOPS = 8
MAX_EXPANDED = 1 << 40
"""Bytes a layer may expand to when decompressed on its way into an archive (1 TiB)."""

OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
_GZIP, _ZSTD = b"\x1f\x8b", b"\x28\xb5\x2f\xfd"
_BLOB_PATH = re.compile(r"^blobs/(sha256|sha512)/([a-f0-9]{64,128})$")


def _normal_name(name: str) -> str:
    """``docker.io/library/x:1`` and ``x:1`` are the same image name."""
    for prefix in ("docker.io/library/", "docker.io/", "index.docker.io/library/"):
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


class ArchiveSource:
    """An image read from a ``docker save`` tar (see the module's docstring)."""

    def __init__(self, path: str, name: str | None) -> None:
        self.path = Path(path)
        self.name = f"docker-archive:{path}" + (f":{name}" if name else "")
        self._wanted = name
        self._members: dict[str, tarfile.TarInfo] = {}
        self._config = b""
        self._manifest = b""
        self._digest = ""
        self._layers: dict[str, tarfile.TarInfo] = {}

    @classmethod
    async def open(cls, path: str, name: str | None) -> ArchiveSource:
        source = cls(path, name)
        await asyncio.to_thread(source._load)
        return source

    # -- reading the archive (in a worker thread)
    def _load(self) -> None:
        try:
            with self.path.open("rb") as file:
                magic = file.read(4)
                if magic[:2] == _GZIP or magic == _ZSTD:
                    raise CopyError(f"{self.path} is compressed: decompress it first")
                file.seek(0)
                with tarfile.open(fileobj=file, mode="r:") as tar:
                    for count, member in enumerate(tar, 1):
                        if count > MAX_MEMBERS:
                            raise CopyError(f"{self.path} holds over {MAX_MEMBERS:,} members")
                        try:
                            key = safe_member(member.name)
                        except ValueError as exc:
                            raise CopyError(f"{self.path}: {exc}") from None
                        self._members[key] = member
                entry = self._entry(file)
                self._read_image(file, entry)
        except FileNotFoundError:
            raise CopyError(f"{self.path} does not exist") from None
        except (tarfile.TarError, OSError) as exc:
            raise CopyError(f"{self.path} is not a readable tar archive ({exc})") from None

    def _member(self, name: str, base: str = "") -> tarfile.TarInfo:
        """The regular file ``name`` stands for, links followed, never outside the archive."""
        try:
            key = safe_member(name, base)
        except ValueError as exc:
            raise CopyError(f"{self.path}: {exc}") from None
        for _ in range(MAX_LINK_HOPS):
            member = self._members.get(key)
            if member is None:
                raise CopyError(f"{self.path} has no {key!r}, which manifest.json names")
            if member.isfile():
                return member
            if member.issym() or member.islnk():
                base_dir = os.path.dirname(key) if member.issym() else ""
                try:
                    key = safe_member(member.linkname, base_dir)
                except ValueError as exc:
                    raise CopyError(f"{self.path}: the link {key!r}: {exc}") from None
                continue
            raise CopyError(f"{self.path}: {key!r} is not a file")
        raise CopyError(f"{self.path}: {name!r} is a chain of links too long")

    def _read(self, file: BinaryIO, member: tarfile.TarInfo, limit: int, what: str) -> bytes:
        if member.size > limit:
            raise CopyError(f"{self.path}: {what} is larger than {limit // (1 << 20)} MiB")
        file.seek(member.offset_data)
        data = file.read(member.size)
        if len(data) != member.size:
            raise CopyError(f"{self.path} is cut short inside {member.name!r}")
        return data

    def _entry(self, file: BinaryIO) -> dict[str, Any]:
        raw = self._read(file, self._member("manifest.json"), MAX_MANIFEST_JSON, "manifest.json")
        try:
            entries = json.loads(raw)
        except ValueError as exc:
            raise CopyError(f"{self.path}: manifest.json is not JSON ({exc})") from None
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise CopyError(f"{self.path}: manifest.json is not a list of images")
        if self._wanted is not None:
            wanted = _normal_name(self._wanted)
            named = [
                e
                for e in entries
                if any(_normal_name(str(t)) == wanted for t in e.get("RepoTags") or [])
            ]
            if not named:
                raise CopyError(f"{self.path} holds no image named {self._wanted!r}")
            return dict(named[0])
        if len(entries) != 1:
            raise CopyError(
                f"{self.path} holds {len(entries)} images: name one, "
                f"docker-archive:{self.path}:NAME:TAG"
            )
        return dict(entries[0])

    def _read_image(self, file: BinaryIO, entry: dict[str, Any]) -> None:
        config_path, layer_paths = entry.get("Config"), entry.get("Layers")
        if not isinstance(config_path, str) or not isinstance(layer_paths, list):
            raise CopyError(f"{self.path}: manifest.json has no Config and Layers")
        self._config = self._read(file, self._member(config_path), MAX_CONFIG, "the config")
        try:
            config = json.loads(self._config)
            diff_ids = list(config["rootfs"]["diff_ids"])
        except (ValueError, KeyError, TypeError):
            raise CopyError(f"{self.path}: the config has no rootfs.diff_ids") from None
        if len(diff_ids) != len(layer_paths):
            raise CopyError(
                f"{self.path}: {len(layer_paths)} layers but {len(diff_ids)} diff_ids in the config"
            )
        layers: list[dict[str, Any]] = []
        for path, diff_id in zip(layer_paths, diff_ids, strict=True):
            if not isinstance(path, str):
                raise CopyError(f"{self.path}: a layer path in manifest.json is not a string")
            member = self._member(path)
            file.seek(member.offset_data)
            head = file.read(4)
            media_type = OCI_LAYER
            if head[:2] == _GZIP:
                media_type += "+gzip"
            elif head == _ZSTD:
                media_type += "+zstd"
            named = _BLOB_PATH.match(member.name)
            if named:
                digest = f"{named.group(1)}:{named.group(2)}"
            elif media_type == OCI_LAYER:
                digest = str(diff_id)
            else:
                digest = self._hash(file, member)
            self._layers[digest] = member
            layers.append({"mediaType": media_type, "digest": digest, "size": member.size})
        config_digest = "sha256:" + hashlib.sha256(self._config).hexdigest()
        document = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(self._config)},
            "layers": layers,
        }
        self._manifest = json.dumps(document, separators=(",", ":")).encode()
        self._digest = "sha256:" + hashlib.sha256(self._manifest).hexdigest()

    def _hash(self, file: BinaryIO, member: tarfile.TarInfo) -> str:
        file.seek(member.offset_data)
        hasher, left = hashlib.sha256(), member.size
        while left:
            chunk = file.read(min(CHUNK, left))
            if not chunk:
                raise CopyError(f"{self.path} is cut short inside {member.name!r}")
            hasher.update(chunk)
            left -= len(chunk)
        return f"sha256:{hasher.hexdigest()}"

    # -- the Source face
    async def root(self) -> tuple[str, str, bytes]:
        return self._digest, OCI_MANIFEST, self._manifest

    async def manifest(self, digest: str) -> tuple[str, bytes]:
        if digest != self._digest:
            raise CopyError(f"{self.name} has no manifest {digest}")
        return OCI_MANIFEST, self._manifest

    @asynccontextmanager
    async def blob(self, blob: Descriptor) -> AsyncIterator[AsyncIterable[bytes]]:
        if blob.digest == "sha256:" + hashlib.sha256(self._config).hexdigest():
            yield _once(self._config)
            return
        member = self._layers.get(blob.digest)
        if member is None:
            raise CopyError(f"{self.name} has no blob {blob.digest}")
        file = await asyncio.to_thread(self.path.open, "rb")
        try:
            await asyncio.to_thread(file.seek, member.offset_data)
            yield _file_chunks(file, member.size)
        finally:
            file.close()

    async def referrers(self, digest: str) -> list[Descriptor]:
        return []

    async def close(self) -> None:
        return None


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _file_chunks(file: BinaryIO, size: int) -> AsyncIterator[bytes]:
    left = size
    while left > 0:
        chunk = await asyncio.to_thread(file.read, min(CHUNK, left))
        if not chunk:
            return  # cut short: the size check of the stream says so
        left -= len(chunk)
        yield chunk


# ---------------------------------------------------------------------- writing


class _Expander:
    """gzip (several members too), zstd (several frames too) or nothing: each chunk fed is
    expanded into ``sink`` in pieces of at most ``CHUNK`` bytes (a small chunk of a highly
    compressed layer never becomes a large buffer). Runs in a worker thread."""

    def __init__(self, media_type: str, sink: Callable[[bytes], None]) -> None:
        self.kind = (
            "gzip" if media_type.endswith("gzip") else "zstd" if "zstd" in media_type else ""
        )
        self._sink = sink
        self._gzip = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._zstd: Any = None
        if self.kind == "zstd":
            import zstandard

            class _Sink(io.RawIOBase):
                def writable(self) -> bool:
                    return True

                def write(self, piece: Any) -> int:
                    sink(bytes(piece))
                    return len(piece)

            self._zstd = zstandard.ZstdDecompressor().stream_writer(
                cast(IO[bytes], _Sink()), write_size=CHUNK, write_return_read=True
            )

    def feed(self, data: bytes) -> None:
        if self.kind == "zstd":
            self._zstd.write(data)
            self._zstd.flush()
            return
        if not self.kind:
            self._sink(data)
            return
        while data:
            self._sink(self._gzip.decompress(data, CHUNK))
            data = self._gzip.unconsumed_tail
            if self._gzip.eof:
                data = self._gzip.unused_data + data
                self._gzip = zlib.decompressobj(16 + zlib.MAX_WBITS)


def _header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, 0
    header = info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape")
    assert len(header) == tarfile.BLOCKSIZE  # short names: one block, the size fits in it
    return header


class ArchiveDestination:
    """One image written as ``docker save`` writes it (see the module's docstring)."""

    max_jobs = 1
    """A tar is written in order: one blob at a time."""

    def __init__(self, path: str, name: str | None) -> None:
        self.path = Path(path)
        self.repo_tag = name
        self.name = f"docker-archive:{path}" + (f":{name}" if name else "")
        self._file: BinaryIO | None = None
        self._temporary = ""
        self._config_digest = ""
        self._diff_ids: dict[str, str] = {}
        self._layer_order: list[str] = []
        self._config: bytes | None = None

    async def begin(self, root: ManifestNode) -> None:
        if root.children:
            raise CopyError(
                "a docker-archive holds one platform: choose it with --platform, not --all"
            )
        if root.referrers:
            raise CopyError("a docker-archive cannot hold referrers: drop --referrers")
        _, manifest = parse_manifest(root.raw, root.media_type)
        if not isinstance(manifest, ImageManifest) or manifest.is_artifact:
            raise CopyError("a docker-archive holds container images only")
        self._config_digest = manifest.config.digest
        self._layer_order = [layer.digest for layer in manifest.layers]
        directory = self.path.parent
        fd, self._temporary = tempfile.mkstemp(
            prefix=f".{self.path.name}.", suffix=".tmp", dir=directory
        )
        self._file = os.fdopen(fd, "w+b")

    async def has_blob(self, blob: Descriptor) -> bool:
        return False

    async def mount(self, blob: Descriptor, source: Source) -> bool:
        return False

    async def write_blob(self, blob: Descriptor, chunks: AsyncIterable[bytes]) -> None:
        assert self._file is not None
        if blob.digest == self._config_digest:
            data = bytearray()
            async for chunk in chunks:
                data += chunk
                if len(data) > MAX_CONFIG:
                    raise CopyError(f"the config {blob.digest} is larger than 16 MiB")
            self._config = bytes(data)
            try:
                diff_ids = json.loads(self._config)["rootfs"]["diff_ids"]
            except (ValueError, KeyError, TypeError):
                raise CopyError(f"the config {blob.digest} has no rootfs.diff_ids") from None
            if len(diff_ids) != len(self._layer_order):
                raise CopyError("the config's diff_ids do not match the manifest's layers")
            self._diff_ids = dict(zip(self._layer_order, map(str, diff_ids), strict=True))
            await asyncio.to_thread(self._add, f"{_hex(blob.digest)}.json", self._config)
            return
        diff_id = self._diff_ids.get(blob.digest)
        if diff_id is None:
            raise CopyError(f"blob {blob.digest} is no layer of the image")
        file = self._file
        start = await asyncio.to_thread(file.tell)
        await asyncio.to_thread(file.write, b"\0" * tarfile.BLOCKSIZE)
        hasher = hashlib.sha256()
        size = 0

        def sink(piece: bytes) -> None:
            nonlocal size
            size += len(piece)
            if size > MAX_EXPANDED:
                raise CopyError(f"layer {blob.digest} expands past 1 TiB")
            hasher.update(piece)
            file.write(piece)

        expand = _Expander(blob.media_type, sink)
        try:
            async for chunk in chunks:
                await asyncio.to_thread(expand.feed, chunk)
        except zlib.error as exc:
            raise CopyError(f"layer {blob.digest} is not valid gzip ({exc})") from None
        actual = f"sha256:{hasher.hexdigest()}"
        if actual != diff_id:
            raise CopyError(
                f"layer {blob.digest} unpacks to {actual}, not the config's diff_id {diff_id}"
            )
        await asyncio.to_thread(self._seal, start, f"{_hex(diff_id)}.tar", size)

    def _add(self, name: str, data: bytes) -> None:
        assert self._file is not None
        self._file.write(_header(name, len(data)))
        self._file.write(data)
        self._file.write(b"\0" * (-len(data) % tarfile.BLOCKSIZE))

    def _seal(self, start: int, name: str, size: int) -> None:
        """Pad the entry begun at ``start`` and write its header now that its size is known."""
        assert self._file is not None
        self._file.write(b"\0" * (-size % tarfile.BLOCKSIZE))
        end = self._file.tell()
        self._file.seek(start)
        self._file.write(_header(name, size))
        self._file.seek(end)

    async def has_manifest(self, node: ManifestNode) -> bool:
        return False

    async def write_manifest(self, node: ManifestNode, subject: str | None) -> None:
        return None  # the archive's manifest.json is written at commit

    async def commit(self, root: ManifestNode, tags: list[str]) -> None:
        await asyncio.to_thread(self._finish, tags)

    def _finish(self, tags: list[str]) -> None:
        assert self._file is not None
        layers = [f"{_hex(self._diff_ids[d])}.tar" for d in self._layer_order]
        repo_tags = [_normal_name(t) if ":" in t else f"{t}:latest" for t in tags]
        entry = {
            "Config": f"{_hex(self._config_digest)}.json",
            "RepoTags": repo_tags,
            "Layers": layers,
        }
        self._add("manifest.json", json.dumps([entry], separators=(",", ":")).encode())
        repositories: dict[str, dict[str, str]] = {}
        top = _hex(self._diff_ids[self._layer_order[-1]]) if self._layer_order else ""
        for repo_tag in repo_tags:
            repo, _, tag = repo_tag.rpartition(":")
            repositories.setdefault(repo, {})[tag] = top
        self._add("repositories", json.dumps(repositories).encode())
        self._file.write(b"\0" * (2 * tarfile.BLOCKSIZE))
        self._file.write(b"\0" * (-self._file.tell() % tarfile.RECORDSIZE))
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None
        os.replace(self._temporary, self.path)
        self._temporary = ""

    async def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._temporary:
            Path(self._temporary).unlink(missing_ok=True)  # noqa: ASYNC240 (one unlink)
            self._temporary = ""


def _hex(digest: str) -> str:
    return digest.partition(":")[2]
