"""Read the files inside a layer blob while it streams: gzip, zstd or plain tar.

A layer is fed chunk by chunk (``LayerReader.feed``), so a caller can show progress and stop at
any point; nothing is written to disk and file contents are skipped, never kept. The result is a
``FileNode`` tree with the size of every directory (the sum of the regular files below it).

Whiteouts (the OCI/AUFS convention for deletions in a layer) are kept as nodes of kind
``WHITEOUT`` named after the path they delete; an opaque directory marker (``.wh..wh..opq``)
sets ``opaque`` on its directory: everything the lower layers had there is hidden.

Names are cleaned as container runtimes clean them (:func:`clean_layer_path`, the one place
regtui normalises a layer's paths: this tree, the merged filesystem and ``diff`` all use it):
``usr/bin/../../etc/x`` is ``etc/x``, ``..`` above the root stays at the root, absolute names,
``./``, repeated and trailing slashes are taken from the root; hardlink targets likewise.

No Textual, no network: ``read_layer`` takes any async iterable of chunks.

Bounded whatever the blob holds (a gzip or zstd bomb, a tar of a million tiny entries):

- memory: decompressed bytes are produced and walked at most 1 MiB at a time (zlib with
  ``max_length``, zstandard's streaming decompressor with a window of at most 128 MiB, the
  default limit of ``zstd -d``), never the whole layer;
- expansion: a layer whose tar stream grows past ``max_expanded_bytes`` (32 GiB by default)
  stops with :class:`LayerTooLargeError`; so does one with more than ``max_entries`` (1,000,000)
  entries, or more than 64 MiB of names; an extended (PAX/GNU) header is at most 1 MiB;
- depth: nothing recurses over the tree (a path of 1,200 components is fine);
- the event loop: ``read_layer``, ``LayerReader.feed_async`` and ``finish_async`` do the
  decompression and the tar walk in a worker thread.
"""

from __future__ import annotations

import asyncio
import enum
import zlib
from collections.abc import AsyncIterable, Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, cast

import zstandard

__all__ = [
    "BLOCK",
    "MAX_ENTRIES",
    "MAX_EXPANDED_BYTES",
    "MAX_NAME_BYTES",
    "Compression",
    "FileNode",
    "LayerFormatError",
    "LayerReader",
    "LayerTooLargeError",
    "NodeKind",
    "clean_layer_path",
    "detect_compression",
    "is_whiteout_target",
    "read_layer",
]

BLOCK = 512
WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"

_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

MAX_EXPANDED_BYTES = 32 * 1024**3
"""Decompressed (tar) bytes a layer may expand to before reading stops."""
MAX_ENTRIES = 1_000_000
"""Tar entries (and directories they imply) a layer may hold before reading stops."""
MAX_NAME_BYTES = 64 * 1024**2
"""Bytes of names kept in the tree before reading stops."""
MAX_EXTENDED_HEADER = 1024**2
ZSTD_MAX_WINDOW = 1 << 27
_OUT_PIECE = 1024**2
"""Decompressed bytes produced (and walked) at a time."""


class LayerFormatError(ValueError):
    """The blob is not a tar archive (compressed or not) that can be listed."""


class LayerTooLargeError(LayerFormatError):
    """The layer expands past a limit (bytes, entries or names); reading stopped there."""


class Compression(enum.StrEnum):
    GZIP = "gzip"
    ZSTD = "zstd"
    NONE = "none"


class NodeKind(enum.StrEnum):
    FILE = "file"
    DIRECTORY = "dir"
    SYMLINK = "symlink"
    HARDLINK = "hardlink"
    DEVICE = "device"
    FIFO = "fifo"
    WHITEOUT = "whiteout"


def detect_compression(head: bytes) -> Compression:
    """The compression of a blob from its first bytes (magic numbers); plain tar otherwise."""
    if head.startswith(_GZIP_MAGIC):
        return Compression.GZIP
    if head.startswith(_ZSTD_MAGIC):
        return Compression.ZSTD
    return Compression.NONE


@dataclass(eq=False)
class FileNode:
    """One entry of a layer. Directories hold ``children`` and know the size below them."""

    name: str
    kind: NodeKind = NodeKind.DIRECTORY
    size: int = 0
    mode: int = 0
    link_target: str = ""
    opaque: bool = False
    children: dict[str, FileNode] = field(default_factory=dict, repr=False)
    total_size: int = 0
    """Regular-file bytes in this directory and below (equal to ``size`` for a file)."""
    file_count: int = 0
    """Regular files in this directory and below."""

    @property
    def is_dir(self) -> bool:
        return self.kind is NodeKind.DIRECTORY

    @property
    def is_deletion(self) -> bool:
        return self.kind is NodeKind.WHITEOUT

    def sorted_children(self) -> list[FileNode]:
        """Directories first, then by name."""
        return sorted(self.children.values(), key=lambda node: (not node.is_dir, node.name))

    def walk(self, prefix: str = "") -> Iterator[tuple[str, FileNode]]:
        """Every node below this one with its path (depth first, sorted; iterative, so any
        depth works)."""
        stack: list[tuple[str, FileNode]] = [
            (f"{prefix}/{child.name}" if prefix else child.name, child)
            for child in reversed(self.sorted_children())
        ]
        while stack:
            path, node = stack.pop()
            yield path, node
            if node.is_dir:
                stack.extend((f"{path}/{c.name}", c) for c in reversed(node.sorted_children()))

    def find(self, path: str) -> FileNode | None:
        node: FileNode | None = self
        for part in _split(path):
            if node is None:
                return None
            node = node.children.get(part)
        return node

    def deletions(self) -> list[str]:
        """Paths this layer deletes (whiteouts) and directories it makes opaque (``dir/*``)."""
        found: list[str] = []
        if self.opaque:
            found.append("*")
        for path, node in self.walk():
            if node.is_deletion:
                found.append(path)
            elif node.opaque:
                found.append(f"{path}/*")
        return found


def clean_layer_path(name: str) -> str:
    """A tar entry's name (or a hardlink's target) as a container runtime resolves it.

    containerd's ``archive.Apply`` cleans the name lexically and joins it to the root so that
    ``..`` cannot climb above the root (``fs.RootPath``); moby's ``pkg/archive`` does the same
    through ``filepath.Clean``/``Join``. The result here is that path relative to the root:
    ``..`` removes the component before it and stays at the root when there is none, ``.``,
    empty components (repeated, leading or trailing slashes) disappear, an absolute name is
    taken from the root. ``usr/bin/../../etc/x`` and ``/../etc/x`` are both ``etc/x``; ``""``
    is the root itself (runtimes skip such an entry). Symlinks in the tree are not followed
    (the runtimes resolve them against the files unpacked so far: a listing shows names).

    Time and memory are linear in the name (one pass, no recursion).
    """
    parts: list[str] = []
    for part in name.split("/"):
        if part == "..":
            if parts:
                parts.pop()
        elif part and part != ".":
            parts.append(part)
    return "/".join(parts)


def is_whiteout_target(name: str) -> bool:
    """Whether ``.wh.NAME`` names something to delete: not empty, ``.`` or ``..`` (containerd
    refuses a whiteout whose target is not inside its directory; regtui ignores it)."""
    return name not in ("", ".", "..")


def _split(path: str) -> list[str]:
    cleaned = clean_layer_path(path)
    return cleaned.split("/") if cleaned else []


class _Decompressor:
    """Feeds compressed chunks and hands plain tar bytes to ``sink``, at most 1 MiB at a time
    (whatever the compression ratio); picks the codec from the first bytes."""

    def __init__(self, sink: Callable[[bytes], None]) -> None:
        self.compression: Compression | None = None
        self._sink = sink
        self._pending = b""
        self._gzip: zlib._Decompress | None = None
        self._zstd: zstandard.ZstdDecompressionWriter | None = None

    def feed(self, chunk: bytes) -> None:
        if self.compression is None:
            self._pending += chunk
            if len(self._pending) < len(_ZSTD_MAGIC):
                return
            self.compression = detect_compression(self._pending)
            chunk, self._pending = self._pending, b""
        try:
            if self.compression is Compression.GZIP:
                self._feed_gzip(chunk)
            elif self.compression is Compression.ZSTD:
                self._feed_zstd(chunk)
            else:
                view = memoryview(chunk)
                for start in range(0, len(view), _OUT_PIECE):
                    self._sink(view[start : start + _OUT_PIECE].tobytes())
        except (zlib.error, zstandard.ZstdError) as error:
            raise LayerFormatError(f"corrupt {self.compression} stream: {error}") from error

    def _feed_zstd(self, chunk: bytes) -> None:
        if self._zstd is None:
            decompressor = zstandard.ZstdDecompressor(max_window_size=ZSTD_MAX_WINDOW)
            self._zstd = decompressor.stream_writer(
                cast("IO[bytes]", _Sink(self._sink)), write_size=_OUT_PIECE, closefd=False
            )
        self._zstd.write(chunk)

    def _feed_gzip(self, chunk: bytes) -> None:
        data = chunk
        while True:
            if self._gzip is None:
                if not data:
                    return
                self._gzip = zlib.decompressobj(16 + zlib.MAX_WBITS)
            out = self._gzip.decompress(data, _OUT_PIECE)
            if out:
                self._sink(out)
            if self._gzip.eof:
                # A gzip stream may hold several members: start over on what follows.
                data = self._gzip.unused_data
                self._gzip = None
                continue
            data = self._gzip.unconsumed_tail
            if not data and len(out) < _OUT_PIECE:
                return  # all input used and no output held back: wait for the next chunk

    def finish(self) -> None:
        if self.compression is None and self._pending:
            pending, self._pending = self._pending, b""
            self.compression = detect_compression(pending)
            self.feed(pending)


class _Sink:
    """The file-like object zstandard's stream writer writes decompressed pieces to."""

    def __init__(self, sink: Callable[[bytes], None]) -> None:
        self._sink = sink

    def write(self, data: bytes) -> int:
        self._sink(bytes(data))
        return len(data)


def tar_number(field_bytes: bytes) -> int:
    """A numeric tar header field: octal text, or GNU base-256 (sizes over 8 GiB)."""
    if field_bytes and field_bytes[0] & 0x80:
        # GNU base-256 for sizes over 8 GiB
        value = field_bytes[0] & 0x7F
        for byte in field_bytes[1:]:
            value = (value << 8) | byte
        return value
    text = field_bytes.split(b"\0", 1)[0].strip(b" \0")
    try:
        return int(text, 8) if text else 0
    except ValueError as error:
        raise LayerFormatError(f"not a tar header (bad number {text!r})") from error


def _text(field_bytes: bytes) -> str:
    return field_bytes.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _parse_pax(data: bytes) -> dict[str, str]:
    records: dict[str, str] = {}
    position = 0
    while position < len(data):
        space = data.find(b" ", position)
        if space < 0:
            break
        try:
            length = int(data[position:space])
        except ValueError:
            break
        if length <= 0:
            break
        record = data[space + 1 : position + length - 1]
        key, _, value = record.partition(b"=")
        records[key.decode("utf-8", "replace")] = value.decode("utf-8", "surrogateescape")
        position += length
    return records


_TYPES: dict[bytes, NodeKind] = {
    b"0": NodeKind.FILE,
    b"\0": NodeKind.FILE,
    b"7": NodeKind.FILE,
    b"1": NodeKind.HARDLINK,
    b"2": NodeKind.SYMLINK,
    b"3": NodeKind.DEVICE,
    b"4": NodeKind.DEVICE,
    b"5": NodeKind.DIRECTORY,
    b"6": NodeKind.FIFO,
}


class LayerReader:
    """Incremental tar reader: ``feed`` chunks of the blob, then ``finish`` for the tree.

    Keeps only the current header in memory; file contents are counted and skipped. ``feed``
    and ``finish`` run on the caller's thread; ``feed_async``/``finish_async`` run them in a
    worker thread (use those from an event loop: a chunk of a bomb can expand for a while).
    Limits: see the module docstring; passing one raises :class:`LayerTooLargeError`.
    """

    def __init__(
        self,
        *,
        max_expanded_bytes: int = MAX_EXPANDED_BYTES,
        max_entries: int = MAX_ENTRIES,
        max_name_bytes: int = MAX_NAME_BYTES,
    ) -> None:
        self.root = FileNode("")
        self.bytes_in = 0
        """Compressed bytes fed so far (for a progress bar against the blob size)."""
        self.bytes_out = 0
        self.entries = 0
        self.max_expanded_bytes = max_expanded_bytes
        self.max_entries = max_entries
        self.max_name_bytes = max_name_bytes
        self._nodes = 0
        self._name_bytes = 0
        self._decompressor = _Decompressor(self._consume)
        self._buffer = bytearray()
        self._skip = 0
        self._collect: tuple[str, int, int] | None = None  # (kind, size, padded size)
        self._long_name: str | None = None
        self._long_link: str | None = None
        self._pax: dict[str, str] = {}
        self._global_pax: dict[str, str] = {}
        self._ended = False

    @property
    def compression(self) -> Compression | None:
        return self._decompressor.compression

    def feed(self, chunk: bytes) -> None:
        self.bytes_in += len(chunk)
        self._decompressor.feed(chunk)

    async def feed_async(self, chunk: bytes) -> None:
        """:meth:`feed` in a worker thread: the event loop stays free."""
        await asyncio.to_thread(self.feed, chunk)

    async def finish_async(self) -> FileNode:
        """:meth:`finish` in a worker thread."""
        return await asyncio.to_thread(self.finish)

    def finish(self) -> FileNode:
        """Close the stream, compute directory sizes and return the root of the tree."""
        self._decompressor.finish()
        if not self._ended and (self._buffer.strip(b"\0") or self._skip or self._collect):
            raise LayerFormatError("the archive ends in the middle of an entry")
        if self.entries == 0 and not self._ended:
            raise LayerFormatError("empty blob: not a tar archive")
        _total(self.root)
        return self.root

    # -- tar state machine --------------------------------------------------------------------
    def _consume(self, data: bytes) -> None:
        if not data:
            return
        self.bytes_out += len(data)
        if self.bytes_out > self.max_expanded_bytes:
            raise LayerTooLargeError(
                f"the layer expands past {_size(self.max_expanded_bytes)} "
                f"(from {_size(self.bytes_in)} read); regtui stopped reading it"
            )
        view = memoryview(data)
        while view:
            if self._ended:
                return
            if self._skip:
                step = min(self._skip, len(view))
                self._skip -= step
                view = view[step:]
                continue
            need = self._collect[2] if self._collect else BLOCK
            take = min(need - len(self._buffer), len(view))
            self._buffer += view[:take]
            view = view[take:]
            if len(self._buffer) < need:
                return
            block = bytes(self._buffer)
            self._buffer.clear()
            if self._collect:
                kind, size, _ = self._collect
                self._collect = None
                self._extended(kind, block[:size])
            else:
                self._header(block)

    def _extended(self, kind: str, data: bytes) -> None:
        if kind == "L":
            self._long_name = data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
        elif kind == "K":
            self._long_link = data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
        elif kind == "x":
            self._pax.update(_parse_pax(data))
        elif kind == "g":
            self._global_pax.update(_parse_pax(data))

    def _header(self, block: bytes) -> None:
        if block == b"\0" * BLOCK:
            self._ended = True  # end-of-archive marker; trailing padding is ignored
            return
        stored = tar_number(block[148:156])
        computed = sum(block[:148]) + 8 * 32 + sum(block[156:])
        if stored != computed:
            raise LayerFormatError("not a tar archive (header checksum mismatch)")
        typeflag = block[156:157]
        size = tar_number(block[124:136])
        padded = (size + BLOCK - 1) // BLOCK * BLOCK
        if typeflag in (b"L", b"K", b"x", b"g"):
            if size > MAX_EXTENDED_HEADER:
                raise LayerFormatError(
                    f"an extended tar header of {_size(size)} (more than 1 MiB): not a layer "
                    "regtui lists"
                )
            self._collect = (typeflag.decode(), size, padded)
            if padded == 0:
                self._collect = None
            return
        name = _text(block[0:100])
        if block[257:262] == b"ustar":
            prefix = _text(block[345:500])
            if prefix:
                name = f"{prefix}/{name}"
        link = _text(block[157:257])
        pax = {**self._global_pax, **self._pax}
        name = self._long_name or pax.get("path", name)
        link = self._long_link or pax.get("linkpath", link)
        if "size" in pax:
            try:
                size = int(pax["size"])
            except ValueError as error:
                raise LayerFormatError("bad PAX size") from error
            padded = (size + BLOCK - 1) // BLOCK * BLOCK
        self._long_name = self._long_link = None
        self._pax = {}
        kind = _TYPES.get(typeflag, NodeKind.FILE)
        mode = tar_number(block[100:108])
        self._add(name, kind, size if kind is NodeKind.FILE else 0, mode, link)
        # Only regular files (and unknown types) carry data in the archive.
        if kind in (NodeKind.FILE,) or typeflag not in _TYPES:
            self._skip = padded
        self.entries += 1

    def _count(self, name: str) -> None:
        """Account for one new node; over a limit: :class:`LayerTooLargeError`."""
        self._nodes += 1
        self._name_bytes += len(name)
        if self._nodes > self.max_entries:
            raise LayerTooLargeError(
                f"the layer holds more than {self.max_entries:,} entries; regtui stopped reading it"
            )
        if self._name_bytes > self.max_name_bytes:
            raise LayerTooLargeError(
                f"the layer's names take more than {_size(self.max_name_bytes)}; regtui "
                "stopped reading it"
            )

    def _add(self, path: str, kind: NodeKind, size: int, mode: int, link: str) -> None:
        parts = _split(path)
        if not parts:
            return  # the root itself (``./``, ``/``, ``..``): runtimes skip it
        if kind is NodeKind.HARDLINK:
            link = clean_layer_path(link)
        directory = self.root
        for part in parts[:-1]:
            child = directory.children.get(part)
            if child is None or not child.is_dir:
                self._count(part)
                child = FileNode(part)
                directory.children[part] = child
            directory = child
        self._count(parts[-1] + link)
        leaf = parts[-1]
        if leaf == OPAQUE_MARKER:
            directory.opaque = True
            return
        if leaf.startswith(WHITEOUT_PREFIX):
            deleted = leaf[len(WHITEOUT_PREFIX) :]
            if is_whiteout_target(deleted):
                directory.children[deleted] = FileNode(deleted, kind=NodeKind.WHITEOUT)
            return
        existing = directory.children.get(leaf)
        if kind is NodeKind.DIRECTORY and existing is not None and existing.is_dir:
            existing.mode = mode
            return
        directory.children[leaf] = FileNode(leaf, kind=kind, size=size, mode=mode, link_target=link)


def _total(node: FileNode) -> tuple[int, int]:
    """Fill ``total_size`` and ``file_count`` bottom-up (iteratively: trees can be deep)."""
    order: list[FileNode] = []
    stack = [node]
    while stack:
        current = stack.pop()
        order.append(current)
        stack.extend(child for child in current.children.values() if child.is_dir)
    for current in reversed(order):
        total = files = 0
        for child in current.children.values():
            if child.is_dir:
                total += child.total_size
                files += child.file_count
            elif child.kind is NodeKind.FILE:
                child.total_size = child.size
                child.file_count = 1
                total += child.size
                files += 1
        current.total_size = total
        current.file_count = files
    return node.total_size, node.file_count


def _size(n: int) -> str:
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= size:
            return f"{n / size:.4g} {unit}"
    return f"{n} bytes"


ProgressCallback = Callable[[LayerReader], None]


async def read_layer(
    chunks: AsyncIterable[bytes],
    *,
    on_progress: ProgressCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
    reader: LayerReader | None = None,
) -> FileNode | None:
    """Read a whole layer from ``chunks``; ``None`` when ``should_stop()`` turned true first.

    ``on_progress`` is called after every chunk with the reader (``bytes_in``, ``entries``).
    Decompression and the tar walk run in a worker thread: the caller's event loop stays free.
    ``reader``: one with other limits than the defaults.
    """
    reader = reader or LayerReader()
    async for chunk in chunks:
        if should_stop is not None and should_stop():
            return None
        await reader.feed_async(chunk)
        if on_progress is not None:
            on_progress(reader)
    return await reader.finish_async()
