"""The streaming layer reader: every compression, whiteouts, sizes, odd tar formats, errors."""

from __future__ import annotations

import io
import tarfile
import threading
from collections.abc import AsyncIterator

import pytest
import zstandard

from tui.client.layers import (
    MAX_ENTRIES,
    MAX_EXPANDED_BYTES,
    MAX_NAME_BYTES,
    Compression,
    LayerFormatError,
    LayerReader,
    LayerTooLargeError,
    NodeKind,
    detect_compression,
    read_layer,
)
from tui.imagegen import compress, tar_bytes

FILES = {
    "bin/busybox": b"x" * 1000,
    "etc/hostname": b"demo\n",
    "etc/ssl/certs/ca.pem": b"c" * 2048,
    "etc/.wh.motd": b"",
    "var/cache/.wh..wh..opq": b"",
    "var/cache/new": b"n" * 10,
    "empty": None,
}


def read_all(blob: bytes, chunk_size: int = 7) -> LayerReader:
    reader = LayerReader()
    for start in range(0, len(blob), chunk_size):
        reader.feed(blob[start : start + chunk_size])
    reader.finish()
    return reader


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_every_compression_gives_the_same_tree(compression: str) -> None:
    blob = compress(tar_bytes(FILES), compression)  # type: ignore[arg-type]
    reader = read_all(blob)
    assert reader.compression == Compression(compression)
    root = reader.root
    assert root.find("bin/busybox") is not None
    assert root.find("bin/busybox").size == 1000  # type: ignore[union-attr]
    assert root.find("etc").total_size == 5 + 2048  # type: ignore[union-attr]
    assert root.find("etc/ssl").file_count == 1  # type: ignore[union-attr]
    assert root.total_size == 1000 + 5 + 2048 + 10
    assert root.find("empty").is_dir  # type: ignore[union-attr]


def test_whiteouts_and_opaque_dirs_are_deletions() -> None:
    root = read_all(compress(tar_bytes(FILES), "gzip")).root
    motd = root.find("etc/motd")
    assert motd is not None and motd.kind is NodeKind.WHITEOUT and motd.is_deletion
    assert root.find("etc/.wh.motd") is None
    cache = root.find("var/cache")
    assert cache is not None and cache.opaque
    assert ".wh..wh..opq" not in cache.children
    assert root.deletions() == ["etc/motd", "var/cache/*"]


def test_one_byte_chunks_and_one_big_chunk_agree() -> None:
    blob = compress(tar_bytes(FILES), "zstd")
    small = read_all(blob, chunk_size=1).root
    big = read_all(blob, chunk_size=len(blob)).root
    assert [(p, n.kind, n.total_size) for p, n in small.walk()] == [
        (p, n.kind, n.total_size) for p, n in big.walk()
    ]


def test_detect_compression_by_magic() -> None:
    assert detect_compression(b"\x1f\x8b\x08\x00") is Compression.GZIP
    assert detect_compression(b"\x28\xb5\x2f\xfd\x00") is Compression.ZSTD
    assert detect_compression(b"bin/\0\0\0") is Compression.NONE


def _gnu_tar() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        long_name = "deep/" + "d" * 150 + "/file.txt"
        info = tarfile.TarInfo(long_name)
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))
        link = tarfile.TarInfo("deep/link")
        link.type = tarfile.SYMTYPE
        link.linkname = "/" + "t" * 200
        tar.addfile(link)
        hard = tarfile.TarInfo("deep/hard")
        hard.type = tarfile.LNKTYPE
        hard.linkname = long_name
        tar.addfile(hard)
    return buffer.getvalue()


def test_gnu_long_names_links_and_hardlinks() -> None:
    root = read_all(_gnu_tar(), chunk_size=100).root
    file = root.find("deep/" + "d" * 150 + "/file.txt")
    assert file is not None and file.size == 3
    link = root.find("deep/link")
    assert link is not None and link.kind is NodeKind.SYMLINK
    assert link.link_target == "/" + "t" * 200
    hard = root.find("deep/hard")
    assert hard is not None and hard.kind is NodeKind.HARDLINK
    assert root.total_size == 3  # a hard link adds no bytes


def test_pax_long_names() -> None:
    name = "p/" + "é" * 120
    blob = tar_bytes({name: b"12345"})  # imagegen writes PAX format
    root = read_all(blob).root
    node = root.find(name)
    assert node is not None and node.size == 5


def test_garbage_is_rejected_with_a_clear_error() -> None:
    reader = LayerReader()
    with pytest.raises(LayerFormatError, match="not a tar"):
        reader.feed(b"this is not a tar archive at all" * 40)


def test_truncated_archive_is_an_error() -> None:
    blob = tar_bytes(FILES)
    reader = LayerReader()
    reader.feed(blob[:1100])
    with pytest.raises(LayerFormatError, match="ends in the middle"):
        reader.finish()


def test_corrupt_gzip_is_an_error() -> None:
    blob = bytearray(compress(tar_bytes(FILES), "gzip"))
    blob[20:40] = b"\xff" * 20
    with pytest.raises(LayerFormatError):
        read_all(bytes(blob))


def test_empty_blob_is_an_error() -> None:
    with pytest.raises(LayerFormatError, match="empty"):
        LayerReader().finish()


async def _chunks(blob: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(blob), size):
        yield blob[start : start + size]


async def test_read_layer_reports_progress_and_can_stop() -> None:
    blob = compress(tar_bytes({f"f{n}": b"z" * 500 for n in range(50)}), "none")
    seen: list[int] = []
    root = await read_layer(_chunks(blob, 4096), on_progress=lambda r: seen.append(r.bytes_in))
    assert root is not None and root.file_count == 50
    assert seen == sorted(seen) and seen[-1] == len(blob)

    stop_after = 3
    calls: list[int] = []

    def should_stop() -> bool:
        calls.append(1)
        return len(calls) > stop_after

    assert await read_layer(_chunks(blob, 1024), should_stop=should_stop) is None


# ------------------------------------------------------------------ bounds (issue 9, item 5)


class PieceRecorder(LayerReader):
    """Records the size of every decompressed piece the tar walk is handed, and its thread."""

    def __init__(self, **kw: int) -> None:
        super().__init__(**kw)
        self.largest_piece = 0
        self.threads: set[int] = set()

    def _consume(self, data: bytes) -> None:
        self.largest_piece = max(self.largest_piece, len(data))
        super()._consume(data)

    def feed(self, chunk: bytes) -> None:
        self.threads.add(threading.get_ident())
        super().feed(chunk)


ZEROS = 64 * 1024 * 1024


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_a_chunk_that_expands_hugely_is_walked_in_1_mib_pieces(compression: str) -> None:
    size = ZEROS if compression != "none" else 8 * 1024 * 1024
    blob = compress(tar_bytes({"zeros": bytes(size)}), compression)  # type: ignore[arg-type]
    reader = PieceRecorder()
    reader.feed(blob)  # one chunk: up to 64 MiB of tar from it
    root = reader.finish()
    assert root.find("zeros").size == size  # type: ignore[union-attr]
    assert reader.bytes_out > size
    assert 0 < reader.largest_piece <= 1024 * 1024


def test_several_gzip_members_are_one_stream() -> None:
    tar = tar_bytes(FILES)
    half = len(tar) // 2
    blob = compress(tar[:half], "gzip") + compress(tar[half:], "gzip")
    assert read_all(blob, chunk_size=333).root.total_size == 1000 + 5 + 2048 + 10


def test_expansion_past_the_limit_stops_with_a_clear_error() -> None:
    blob = compress(tar_bytes({"zeros": bytes(ZEROS)}), "zstd")
    reader = LayerReader(max_expanded_bytes=16 * 1024 * 1024)
    with pytest.raises(LayerTooLargeError, match="expands past 16 MiB") as caught:
        reader.feed(blob)
    assert "stopped reading" in str(caught.value)
    assert reader.bytes_out <= 17 * 1024 * 1024  # stopped within a piece of the limit
    assert LayerReader().max_expanded_bytes == MAX_EXPANDED_BYTES == 32 * 1024**3


def test_too_many_entries_or_names_stop_with_a_clear_error() -> None:
    blob = tar_bytes({f"dir/f{n}": b"" for n in range(50)})
    assert read_all(blob, chunk_size=4096 * 4).root.find("dir").file_count == 50  # type: ignore[union-attr]
    with pytest.raises(LayerTooLargeError, match="more than 20 entries"):
        LayerReader(max_entries=20).feed(blob)
    with pytest.raises(LayerTooLargeError, match="names take more than 100 bytes"):
        LayerReader(max_name_bytes=100).feed(blob)
    assert LayerReader().max_entries == MAX_ENTRIES == 1_000_000
    assert LayerReader().max_name_bytes == MAX_NAME_BYTES == 64 * 1024 * 1024


def test_an_extended_header_over_1_mib_is_refused() -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("f")
        info.pax_headers = {"comment": "x" * (2 * 1024 * 1024)}
        tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(LayerFormatError, match="more than 1 MiB"):
        LayerReader().feed(buffer.getvalue())


def test_a_zstd_window_over_128_mib_is_refused() -> None:
    params = zstandard.ZstdCompressionParameters.from_level(3, window_log=28)
    frame = zstandard.ZstdCompressor(compression_params=params).compressobj()
    blob = frame.compress(tar_bytes({"a": b"1"})) + frame.flush()
    with pytest.raises(LayerFormatError, match="corrupt zstd"):
        read_all(blob, chunk_size=len(blob))


def test_a_path_of_1200_components_needs_no_recursion() -> None:
    path = "/".join(f"d{i}" for i in range(1199)) + "/.wh.gone"
    root = read_all(tar_bytes({path: b""}), chunk_size=65536).root
    walked = [p for p, _ in root.walk()]
    assert len(walked) == 1200 and walked[-1].endswith("/gone")
    assert root.deletions() == [walked[-1]]
    repr(root)  # no RecursionError: children are left out of the repr


async def test_read_layer_decompresses_off_the_event_loop() -> None:
    blob = compress(tar_bytes({"zeros": bytes(8 * 1024 * 1024)}), "gzip")
    reader = PieceRecorder()
    root = await read_layer(_chunks(blob, 4096), reader=reader)
    assert root is not None and root.file_count == 1
    assert reader.threads and threading.get_ident() not in reader.threads
    other = PieceRecorder()
    await other.feed_async(blob)
    assert (await other.finish_async()).file_count == 1
    assert threading.get_ident() not in other.threads
