"""A layer's tar entries as metadata (path, type, mode, owner, size, link), for stacking.

:class:`EntryReader` is :class:`tui.client.layers.LayerReader` with another sink: instead of a
tree it collects one :class:`~tui.logic.fsmerge.Entry` per tar entry, whiteout names kept as they
are (``fsmerge`` interprets them), plus the owner (uid/gid from the header or PAX records) that the
tree does not keep, and the SHA-256 of each regular file's content, hashed as it streams past
(so that a file rewritten with the same size is still seen as modified). Decompression, the tar
state machine and their limits stay the layer reader's: nothing of a file's content is kept.

The subclass leans on the reader's internals (``_header``, ``_add``, ``_consume``, ``_skip``,
``_buffer``): an entry hook in ``tui.client.layers`` would let this module be a plain sink.

:func:`read_layer_changes` streams a blob from a registry into it and parses off the event loop
(each chunk is fed in a worker thread), so a screen stays responsive and a task can be cancelled
between chunks.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from dataclasses import replace

from tui.client import Descriptor, RegistryClient
from tui.client.layers import (
    BLOCK,
    LayerFormatError,
    LayerReader,
    LayerTooLargeError,
    NodeKind,
    clean_layer_path,
    tar_number,
)
from tui.logic.fsmerge import Entry, EntryType, LayerChanges

__all__ = [
    "MAX_LAYER_ENTRIES",
    "MAX_LAYER_PATH_BYTES",
    "EntryReader",
    "LayerProgress",
    "read_layer_changes",
]

MAX_LAYER_ENTRIES = 2_000_000
"""Entries kept for one layer (about 200 bytes each): a layer with more is refused."""
MAX_LAYER_PATH_BYTES = 256 * 1024**2
"""Bytes of (cleaned) paths and link targets kept for one layer. Each entry keeps its whole
path: a few megabytes of gzip can name 50,000 nested directories one by one, 2.5 GB of paths;
a real layer of a million files takes about 100 MB."""

_TYPES = {
    NodeKind.FILE: EntryType.FILE,
    NodeKind.DIRECTORY: EntryType.DIRECTORY,
    NodeKind.SYMLINK: EntryType.SYMLINK,
    NodeKind.HARDLINK: EntryType.HARDLINK,
    NodeKind.DEVICE: EntryType.DEVICE,
    NodeKind.FIFO: EntryType.FIFO,
}


def _number(pax_value: str | None, field: bytes) -> int:
    """A numeric header field (octal, or GNU base-256), overridden by a PAX record."""
    if pax_value is not None:
        try:
            return int(pax_value)
        except ValueError:
            return 0
    try:
        return tar_number(field)
    except LayerFormatError:
        return 0


class EntryReader(LayerReader):
    """Feed a layer blob chunk by chunk; ``entries`` holds its tar entries, in archive order."""

    def __init__(
        self,
        max_entries: int = MAX_LAYER_ENTRIES,
        *,
        digests: bool = True,
        max_path_bytes: int = MAX_LAYER_PATH_BYTES,
    ) -> None:
        super().__init__()
        self.collected: list[Entry] = []
        self.max_entries = max_entries
        self.max_path_bytes = max_path_bytes
        self.path_bytes = 0
        self.digests = digests
        self._owner = (0, 0)
        self._hasher: hashlib._Hash | None = None
        self._content_left = 0
        self._hashed_index = -1

    def _consume(self, data: bytes) -> None:
        """Hand the reader one header block at a time, and hash file contents on the way."""
        if not self.digests:
            super()._consume(data)
            return
        view = memoryview(data)
        while view:
            if self._skip:
                step = min(self._skip, len(view))
                if self._hasher is not None:
                    take = min(step, self._content_left)
                    self._hasher.update(view[:take])
                    self._content_left -= take
                    if self._content_left == 0:
                        self._finish_digest()
                super()._consume(bytes(view[:step]))
                view = view[step:]
                continue
            # Up to the end of the current block: a header is parsed before its content comes.
            step = min(len(view), BLOCK - len(self._buffer) % BLOCK)
            super()._consume(bytes(view[:step]))
            view = view[step:]

    def _finish_digest(self) -> None:
        assert self._hasher is not None
        entry = self.collected[self._hashed_index]
        self.collected[self._hashed_index] = replace(
            entry, digest=f"sha256:{self._hasher.hexdigest()}"
        )
        self._hasher = None

    def _header(self, block: bytes) -> None:
        pax = {**self._global_pax, **self._pax}
        self._owner = (
            _number(pax.get("uid"), block[108:116]),
            _number(pax.get("gid"), block[116:124]),
        )
        super()._header(block)

    def _add(self, path: str, kind: NodeKind, size: int, mode: int, link: str) -> None:
        if len(self.collected) >= self.max_entries:
            raise LayerFormatError(f"the layer has more than {self.max_entries:,} entries")
        uid, gid = self._owner
        entry_type = _TYPES.get(kind, EntryType.FILE)
        clean = clean_layer_path(path)
        if not clean:
            return  # the root itself: runtimes skip it
        if entry_type is EntryType.HARDLINK:
            link = clean_layer_path(link)
        self.path_bytes += len(clean) + len(link)
        if self.path_bytes > self.max_path_bytes:
            raise LayerTooLargeError(
                f"the layer's paths take more than {self.max_path_bytes // 1024**2} MiB "
                "(deeply nested names); regtui stopped reading it"
            )
        digest = None
        if self.digests and entry_type is EntryType.FILE:
            if size:
                self._hasher, self._content_left = hashlib.sha256(), size
                self._hashed_index = len(self.collected)
            else:
                digest = _EMPTY_DIGEST
        entry = Entry(clean, entry_type, mode & 0o7777, uid, gid, size, link, digest)
        self.collected.append(entry)


_EMPTY_DIGEST = f"sha256:{hashlib.sha256(b'').hexdigest()}"

LayerProgress = Callable[[int, int], None]
"""Called with (compressed bytes read, entries so far) as a layer streams."""


async def read_layer_changes(
    client: RegistryClient,
    repository: str,
    layer: Descriptor,
    on_progress: LayerProgress | None = None,
) -> tuple[LayerChanges, int]:
    """Stream ``layer`` and return what it changes, with its uncompressed size in bytes.

    Cancelling the calling task stops the download between two chunks.
    """
    reader = EntryReader()
    async with client.stream_blob(repository, layer.digest) as blob:
        async for chunk in blob:
            await asyncio.to_thread(reader.feed, chunk)
            if on_progress is not None:
                on_progress(reader.bytes_in, len(reader.collected))
    await asyncio.to_thread(reader.finish)
    changes = await asyncio.to_thread(LayerChanges.from_entries, reader.collected)
    return changes, reader.bytes_out
