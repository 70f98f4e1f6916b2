"""Compact digests for GC at scale: what a scan of hundreds of thousands of blobs holds.

A digest as a Python string costs 120 bytes, and a GC holds one per blob, one per ``_layers``
link and one per marked blob. Here the ``sha256`` digests of the blobs are 32 raw bytes each in
one sorted buffer (:class:`PackedDigests`): a blob is a position in it, a repository's layer
links are an ``array`` of positions (:class:`DigestList`), the mark is one byte per blob
(:class:`DigestMarks`). A string is made only when one is asked for (a removal, a report). Any
other digest (``sha512``, a blob listed out of order) is kept as a string beside them.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator

SHA256 = "sha256:"
WIDTH = 32
"""Bytes of one packed digest (sha256)."""

_BUCKETS = 1 << 16
"""The packed digests are indexed by their first two bytes."""


def raw_sha256(digest: str) -> bytes | None:
    """The 32 bytes of ``sha256:<64 lower-case hex>``; None for anything else."""
    if len(digest) != 71 or not digest.startswith(SHA256):
        return None
    hex_part = digest[7:]
    if not (hex_part.islower() or hex_part.isdigit()):
        return None  # upper case: another name than the blob's directory
    try:
        return bytes.fromhex(hex_part)
    except ValueError:
        return None


class PackedDigests:
    """sha256 digests in ascending order, 32 bytes each in one buffer; found by their first
    two bytes (a table of where each such bucket starts), then ``find`` within the bucket."""

    __slots__ = ("_buffer", "_count", "_filled", "_last", "_starts")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._count = 0
        self._last = b""
        self._starts = array("I", bytes(4 * (_BUCKETS + 1)))
        self._filled = 0
        """Buckets below this have their start set; the others start at the end."""

    def __len__(self) -> int:
        return self._count

    def append(self, raw: bytes) -> bool:
        """Add ``raw`` when it sorts after every digest already here; whether it was added."""
        if raw <= self._last:
            return False
        bucket = raw[0] << 8 | raw[1]
        starts, count = self._starts, self._count
        for b in range(self._filled, bucket + 1):
            starts[b] = count
        self._filled = max(self._filled, bucket + 1)
        self._buffer += raw
        self._last = raw
        self._count = count + 1
        return True

    def index(self, raw: bytes) -> int:
        """The position of ``raw``; -1 when it is not here."""
        bucket = raw[0] << 8 | raw[1]
        filled, count = self._filled, self._count
        low = self._starts[bucket] if bucket < filled else count
        high = self._starts[bucket + 1] if bucket + 1 < filled else count
        if low == high:
            return -1
        buffer, end = self._buffer, high * WIDTH
        at = buffer.find(raw, low * WIDTH, end)
        while at > 0 and at % WIDTH:  # a match across two digests: look on
            at = buffer.find(raw, at + 1, end)
        return at // WIDTH if at >= 0 else -1

    def find(self, digest: str) -> int:
        """The position of the digest string ``digest``; -1 when it is not here (or is no
        lower-case sha256)."""
        raw = raw_sha256(digest)
        return -1 if raw is None else self.index(raw)

    def digest(self, index: int) -> str:
        """The digest string at ``index``."""
        start = index * WIDTH
        return SHA256 + self._buffer[start : start + WIDTH].hex()


class DigestList:
    """A repository's ``_layers`` links: positions in the snapshot's blob directories (4 bytes
    each) and, as strings, the digests that are no packed blob (a link to a missing blob).
    Iterates as digest strings: the packed ones in digest order, then the others, sorted."""

    __slots__ = ("_dirs", "_indexes", "_others")

    def __init__(self, dirs: BlobIndex, digests: Iterable[str] = ()) -> None:
        self._dirs = dirs
        indexes, others = set(), set()
        for digest in digests:
            index = dirs.index(digest)
            if index >= 0:
                indexes.add(index)
            else:
                others.add(digest)
        self._indexes = array("I", sorted(indexes))
        self._others = tuple(sorted(others))

    def __iter__(self) -> Iterator[str]:
        digest = self._dirs.packed_digest
        for index in self._indexes:
            yield digest(index)
        yield from self._others

    def __len__(self) -> int:
        return len(self._indexes) + len(self._others)

    def __contains__(self, digest: object) -> bool:
        if not isinstance(digest, str):
            return False
        index = self._dirs.index(digest)
        return index in self._indexes if index >= 0 else digest in self._others

    def __repr__(self) -> str:
        return f"DigestList({list(self)!r})"

    def packed_only(self) -> bool:
        """Whether every link is to a packed blob."""
        return not self._others

    def unmarked(self, marks: DigestMarks) -> tuple[list[str], bool]:
        """The packed links (in digest order) whose blob ``marks`` does not hold; and whether
        any was left out (a link to a marked blob)."""
        digest, marked = self._dirs.packed_digest, marks.marked_at
        found = [digest(index) for index in self._indexes if not marked(index)]
        return found, len(found) < len(self._indexes)


class BlobIndex:
    """The part of blob directories the compact sets need: a digest's packed position."""

    __slots__ = ("_packed", "_removed")

    def __init__(self) -> None:
        self._packed = PackedDigests()
        self._removed: set[int] = set()

    def index(self, digest: str) -> int:
        """The packed position of ``digest``; -1 when it is not a packed blob."""
        index = self._packed.find(digest)
        return -1 if self._removed and index in self._removed else index

    def packed_digest(self, index: int) -> str:
        return self._packed.digest(index)

    def packed_count(self) -> int:
        """How many positions there are (removed ones included)."""
        return len(self._packed)

    def removed(self, index: int) -> bool:
        """Whether the packed blob at ``index`` was taken out."""
        return index in self._removed

    def packed_present(self) -> Iterator[int]:
        removed = self._removed
        return (i for i in range(len(self._packed)) if i not in removed)


class DigestMarks:
    """A set of digest strings: one byte per packed blob of ``dirs``, a set for the others."""

    __slots__ = ("_bits", "_count", "_dirs", "_others")

    def __init__(self, dirs: BlobIndex) -> None:
        self._dirs = dirs
        self._bits = bytearray(dirs.packed_count())
        self._count = 0
        self._others: set[str] = set()

    def add(self, digest: str) -> None:
        index = self._dirs.index(digest)
        if index < 0 or index >= len(self._bits):
            self._others.add(digest)
        elif not self._bits[index]:
            self._bits[index] = 1
            self._count += 1

    def update(self, digests: Iterable[str]) -> None:
        for digest in digests:
            self.add(digest)

    def __contains__(self, digest: object) -> bool:
        if not isinstance(digest, str):
            return False
        index = self._dirs.index(digest)
        if 0 <= index < len(self._bits):
            return bool(self._bits[index])
        return digest in self._others

    def __len__(self) -> int:
        return self._count + len(self._others)

    def __iter__(self) -> Iterator[str]:
        bits, digest = self._bits, self._dirs.packed_digest
        index = bits.find(1)
        while index >= 0:
            yield digest(index)
            index = bits.find(1, index + 1)
        yield from self._others

    def marked_at(self, index: int) -> bool:
        """Whether the packed blob at ``index`` is marked."""
        return index < len(self._bits) and bool(self._bits[index])

    def packed_marked(self) -> int:
        """How many packed blobs are marked."""
        return self._count

    def others(self) -> set[str]:
        """The marked digests that are no packed blob."""
        return self._others

    def unmarked_packed(self) -> Iterator[str]:
        """The packed blobs not marked (removed ones left out), as digest strings."""
        bits, dirs = self._bits, self._dirs
        index = bits.find(0)
        while index >= 0:
            if not dirs.removed(index):
                yield dirs.packed_digest(index)
            index = bits.find(0, index + 1)
