"""Tar entries as metadata: owners, links, whiteouts kept raw, no content kept, deep paths."""

from __future__ import annotations

import tracemalloc

import pytest

from tests.helpers.inside_images import BASE, UPDATE, T, tar_of
from tui.client.layers import LayerFormatError, LayerTooLargeError
from tui.data.layer_entries import EntryReader
from tui.imagegen import compress
from tui.logic.fsmerge import EntryType, LayerChanges, merge_layers


def read(blob: bytes, chunk: int = 4096, max_entries: int = 1000) -> EntryReader:
    reader = EntryReader(max_entries)
    for start in range(0, len(blob), chunk):
        reader.feed(blob[start : start + chunk])
    reader.finish()
    return reader


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_entries_carry_type_mode_owner_size_and_link(compression: str) -> None:
    reader = read(compress(tar_of(UPDATE), compression))  # type: ignore[arg-type]
    by_path = {entry.path: entry for entry in reader.collected}
    assert [e.path for e in reader.collected] == [t.name for t in UPDATE]
    config = by_path["app/config.json"]
    assert (config.type, config.size, config.mode, config.uid, config.gid) == (
        EntryType.FILE,
        40,
        0o644,
        1000,
        1000,
    )
    assert by_path["usr/bin/tool"].mode == 0o700
    link = by_path["usr/lib/libc.so.6"]
    assert (link.type, link.link_target) == (EntryType.SYMLINK, "libc-2.so")
    changes = LayerChanges.from_entries(reader.collected)
    assert changes.whiteouts == ["etc/motd"] and changes.opaque == ["var/cache"]


def test_hard_links_and_big_ids_from_pax() -> None:
    reader = read(tar_of([*BASE, T("home/u/f", size=3, uid=3_000_000, gid=70_000)]))
    by_path = {entry.path: entry for entry in reader.collected}
    hard = by_path["usr/lib/libc.hard"]
    assert (hard.type, hard.link_target, hard.size) == (EntryType.HARDLINK, "usr/lib/libc.so", 0)
    assert (by_path["home/u/f"].uid, by_path["home/u/f"].gid) == (3_000_000, 70_000)


def test_file_contents_are_never_kept() -> None:
    blob = tar_of([T("big", size=32 * 1024 * 1024), T("small", size=1)])
    tracemalloc.start()
    try:
        reader = read(blob, chunk=256 * 1024)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [e.size for e in reader.collected] == [32 * 1024 * 1024, 1]
    assert peak < 4 * 1024 * 1024  # a few chunks, never the 32 MiB file


def test_a_path_of_1200_components_through_a_real_tar() -> None:
    deep = "/".join(f"d{n}" for n in range(1200))
    reader = read(compress(tar_of([T(f"{deep}/leaf", size=5)]), "gzip"))
    view = merge_layers([LayerChanges.from_entries(reader.collected)])
    assert len(view.nodes) == 1201 and view.total_bytes == 5


def test_too_many_entries_is_refused() -> None:
    with pytest.raises(LayerFormatError, match="more than 3 entries"):
        read(tar_of(BASE), max_entries=3)


@pytest.mark.parametrize("chunk", [1, 511, 512, 513, 65536])
def test_contents_are_hashed_whatever_the_chunking(chunk: int) -> None:
    import hashlib
    import io
    import tarfile

    contents = {"a": b"hello", "b": b"y" * 1500, "empty": b"", "c": b"z" * 512}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in contents.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        tar.addfile(tarfile.TarInfo("dir"))  # a zero-size file after them
    reader = read(compress(buffer.getvalue(), "gzip"), chunk=chunk)
    digests = {entry.path: entry.digest for entry in reader.collected}
    expected = {
        name: "sha256:" + hashlib.sha256(data).hexdigest() for name, data in contents.items()
    }
    assert digests == {**expected, "dir": "sha256:" + hashlib.sha256(b"").hexdigest()}


def test_same_size_other_bytes_is_a_content_change() -> None:
    first = read(tar_of([T("v", size=3)])).collected
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("v")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))
    second = read(buffer.getvalue()).collected
    view = merge_layers([LayerChanges.from_entries(first), LayerChanges.from_entries(second)])
    assert [c.fields for c in view.layer_changes()] == [("content",)]
    same = merge_layers([LayerChanges.from_entries(first), LayerChanges.from_entries(first)])
    assert same.layer_changes() == []


def test_nested_names_listed_one_by_one_stop_at_the_path_bytes_limit() -> None:
    # d, d/d, d/d/d, ...: each entry keeps its whole path, so the paths kept grow with the
    # square of the depth (50,000 levels, a few MB of gzip, would be 2.5 GB of paths).
    nested = [T("/".join(["d"] * depth), "dir", mode=0o755) for depth in range(1, 1501)]
    blob = compress(tar_of(nested), "gzip")
    assert len(blob) < 200_000
    whole = EntryReader(max_entries=10_000)
    whole.feed(blob)
    whole.finish()
    assert len(whole.collected) == 1500 and whole.path_bytes == sum(
        2 * depth - 1 for depth in range(1, 1501)
    )
    reader = EntryReader(max_entries=10_000, max_path_bytes=1024**2)
    with pytest.raises(LayerTooLargeError, match="paths take more than 1 MiB"):
        reader.feed(blob)
