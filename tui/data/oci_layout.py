"""An OCI image layout directory (``oci:DIR[:TAG]``) as a source and a destination of a copy.

The layout: ``oci-layout``, ``index.json`` (its entries named by the
``org.opencontainers.image.ref.name`` annotation) and ``blobs/<algorithm>/<hex>``. Writes are
atomic: each blob goes to a temporary file beside its place, is checked, synced and renamed;
``index.json`` is written last, the same way, so a killed copy leaves the layout as it was plus
some blobs (a rerun skips them), never an entry whose blobs are missing.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import tempfile
from collections.abc import AsyncIterable, AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from tui.client.models import OCI_INDEX, Descriptor, parse_descriptor
from tui.client.reference import DIGEST_RE
from tui.data.copy_io import CHUNK, CopyError, Source
from tui.logic.copy_plan import REF_NAME, ManifestNode, descriptor_document

__all__ = ["OciLayoutDestination", "OciLayoutSource"]

MAX_INDEX_BYTES = 16 * 1024 * 1024
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
LAYOUT_FILE = b'{"imageLayoutVersion":"1.0.0"}'


def blob_path(root: Path, digest: str) -> Path:
    """``blobs/<algorithm>/<hex>`` under ``root``; only a well-formed digest names a file."""
    if not DIGEST_RE.match(digest) or "/" in digest or ".." in digest:
        raise CopyError(f"{digest!r} is not a digest")
    algorithm, _, hex_part = digest.partition(":")
    return root / "blobs" / algorithm / hex_part


def _read_bounded(path: Path, limit: int, what: str) -> bytes:
    try:
        with path.open("rb") as file:
            data = file.read(limit + 1)
    except FileNotFoundError:
        raise CopyError(f"{what} is missing ({path})") from None
    except OSError as exc:
        raise CopyError(f"cannot read {what}: {exc}") from exc
    if len(data) > limit:
        raise CopyError(f"{what} is larger than {limit // (1024 * 1024)} MiB")
    return data


def _read_index(root: Path) -> dict[str, Any]:
    raw = _read_bounded(root / "index.json", MAX_INDEX_BYTES, f"the index.json of {root}")
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise CopyError(f"{root}/index.json is not JSON ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("manifests"), list):
        raise CopyError(f"{root}/index.json has no list of manifests")
    return data


class OciLayoutSource:
    def __init__(self, path: str, tag: str | None) -> None:
        self.dir = Path(path)
        self.tag = tag
        self.name = f"oci:{path}" + (f":{tag}" if tag else "")

    async def root_entry(self) -> Descriptor:
        if not (self.dir / "oci-layout").is_file():
            raise CopyError(f"{self.dir} is not an OCI image layout (no oci-layout file)")
        index = await asyncio.to_thread(_read_index, self.dir)
        entries = [parse_descriptor(m, "index.json entry") for m in index["manifests"]]
        if self.tag is not None:
            named = [e for e in entries if e.annotations.get(REF_NAME) == self.tag]
            if not named:
                raise CopyError(f"{self.dir} has no image tagged {self.tag!r}")
            return named[0]
        if len(entries) != 1:
            raise CopyError(f"{self.dir} holds {len(entries)} images: name one, oci:{self.dir}:TAG")
        return entries[0]

    async def root(self) -> tuple[str, str, bytes]:
        entry = await self.root_entry()
        media_type, raw = await self.manifest(entry.digest)
        return entry.digest, media_type or entry.media_type, raw

    async def manifest(self, digest: str) -> tuple[str, bytes]:
        raw = await asyncio.to_thread(
            _read_bounded, blob_path(self.dir, digest), MAX_MANIFEST_BYTES, f"manifest {digest}"
        )
        algorithm = digest.partition(":")[0]
        if f"{algorithm}:{hashlib.new(algorithm, raw).hexdigest()}" != digest:
            raise CopyError(f"{self.name}: manifest {digest} does not hash to its digest")
        try:
            media_type = json.loads(raw).get("mediaType") or ""
        except (ValueError, AttributeError):
            raise CopyError(f"{self.name}: manifest {digest} is not JSON") from None
        return str(media_type), raw

    @asynccontextmanager
    async def blob(self, blob: Descriptor) -> AsyncIterator[AsyncIterable[bytes]]:
        path = blob_path(self.dir, blob.digest)
        try:
            file = await asyncio.to_thread(path.open, "rb")
        except FileNotFoundError:
            raise CopyError(f"{self.name}: blob {blob.digest} is missing") from None
        try:
            yield _file_chunks(file)
        finally:
            file.close()

    async def referrers(self, digest: str) -> list[Descriptor]:
        return []  # a layout has no referrers API; its index lists what it holds

    async def close(self) -> None:
        return None


async def _file_chunks(file: Any, limit: int | None = None) -> AsyncIterator[bytes]:
    left = limit
    while left is None or left > 0:
        size = CHUNK if left is None else min(CHUNK, left)
        chunk = await asyncio.to_thread(file.read, size)
        if not chunk:
            return
        if left is not None:
            left -= len(chunk)
        yield chunk


def atomic_write(path: Path, data: bytes) -> None:
    """``data`` into ``path``: a temporary file beside it, synced, then renamed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class OciLayoutDestination:
    def __init__(self, path: str, tag: str | None) -> None:
        self.root = Path(path)
        self.tag = tag
        self.name = f"oci:{path}" + (f":{tag}" if tag else "")
        self._extra: list[Descriptor] = []

    async def begin(self, root: ManifestNode) -> None:
        def prepare() -> None:
            if self.root.exists() and not self.root.is_dir():
                raise CopyError(f"{self.root} exists and is not a directory")
            (self.root / "blobs").mkdir(parents=True, exist_ok=True)
            if not (self.root / "oci-layout").exists():
                atomic_write(self.root / "oci-layout", LAYOUT_FILE)

        await asyncio.to_thread(prepare)

    async def has_blob(self, blob: Descriptor) -> bool:
        path = blob_path(self.root, blob.digest)
        try:
            return (await asyncio.to_thread(path.stat)).st_size == blob.size
        except FileNotFoundError:
            return False

    async def mount(self, blob: Descriptor, source: Source) -> bool:
        return False

    async def write_blob(self, blob: Descriptor, chunks: AsyncIterable[bytes]) -> None:
        path = blob_path(self.root, blob.digest)
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        file = os.fdopen(fd, "wb")
        try:
            async for chunk in chunks:
                await asyncio.to_thread(file.write, chunk)
            await asyncio.to_thread(_sync_close, file)
            os.replace(temporary, path)
        except BaseException:
            file.close()
            os.unlink(temporary)
            raise

    async def has_manifest(self, node: ManifestNode) -> bool:
        return await self.has_blob(node.descriptor())

    async def write_manifest(self, node: ManifestNode, subject: str | None) -> None:
        await asyncio.to_thread(atomic_write, blob_path(self.root, node.digest), node.raw)
        if subject is not None:
            self._extra.append(node.descriptor())

    async def commit(self, root: ManifestNode, tags: list[str]) -> None:
        await asyncio.to_thread(atomic_write, blob_path(self.root, root.digest), root.raw)
        await asyncio.to_thread(self._write_index, root, tags)

    def _write_index(self, root: ManifestNode, tags: list[str]) -> None:
        index_path = self.root / "index.json"
        if index_path.exists():
            index = _read_index(self.root)
        else:
            index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
        manifests: list[dict[str, Any]] = [m for m in index["manifests"] if isinstance(m, dict)]
        names = set(tags)
        manifests = [
            m for m in manifests if (m.get("annotations") or {}).get(REF_NAME) not in names
        ]
        have = {m.get("digest") for m in manifests if not (m.get("annotations") or {})}
        entries: list[tuple[Descriptor, str | None]] = [(root.descriptor(), t) for t in tags]
        entries = entries or [(root.descriptor(), None)]
        entries += [(d, None) for d in self._extra]
        for entry, tag in entries:
            if tag is None and entry.digest in have:
                continue
            annotations = {REF_NAME: tag} if tag is not None else None
            manifests.append(descriptor_document(entry, annotations))
        index["manifests"] = manifests
        atomic_write(index_path, json.dumps(index, separators=(",", ":")).encode())

    async def close(self) -> None:
        return None


def _sync_close(file: Any) -> None:
    file.flush()
    os.fsync(file.fileno())
    file.close()
