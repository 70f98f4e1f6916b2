"""The streaming layer reader: every compression, whiteouts, sizes, odd tar formats, errors."""

from __future__ import annotations

import io
import tarfile
from collections.abc import AsyncIterator

import pytest

from tui.client.layers import (
    Compression,
    LayerFormatError,
    LayerReader,
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
