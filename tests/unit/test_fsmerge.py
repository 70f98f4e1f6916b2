"""Layers stacked into one filesystem: whiteouts, opaque dirs, replacements, links, figures."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

import pytest

from tui.logic.fsmerge import (
    IMPLICIT_DIRECTORY,
    Change,
    Entry,
    EntryType,
    FilesystemMerger,
    LayerChanges,
    PathKey,
    diff_filesystems,
    directory_sizes,
    merge_layers,
)

D = EntryType.DIRECTORY
V = TypeVar("V")


def by_path(table: Mapping[PathKey, V]) -> dict[str, V]:
    """A table keyed by path text (fine for the small trees of these tests)."""
    return {key.path: value for key, value in table.items()}


def f(path: str, size: int = 0, **kw: object) -> Entry:
    return Entry(path, EntryType.FILE, size=size, **kw)  # type: ignore[arg-type]


def d(path: str, mode: int = 0o755, **kw: object) -> Entry:
    return Entry(path, D, mode=mode, **kw)  # type: ignore[arg-type]


def layer(*entries: Entry) -> LayerChanges:
    return LayerChanges.from_entries(entries)


BASE = layer(
    d("etc"),
    f("etc/passwd", 100),
    f("etc/motd", 50),
    d("var"),
    d("var/cache"),
    f("var/cache/a", 1000),
    f("var/cache/b", 2000),
    d("usr"),
    d("usr/lib"),
    f("usr/lib/libc.so", 5000),
    Entry("usr/lib/libc.so.6", EntryType.SYMLINK, 0o777, link_target="libc.so"),
    Entry("usr/lib/hard", EntryType.HARDLINK, 0o644, link_target="usr/lib/libc.so"),
)


def test_whiteout_names_are_read_as_deletions() -> None:
    changes = layer(f("./etc/.wh.motd"), f("var/cache/.wh..wh..opq"), f("var/cache/c", 3))
    assert changes.whiteouts == ["etc/motd"]
    assert changes.opaque == ["var/cache"]
    assert list(changes.entries) == ["var/cache/c"]


def test_first_layer_adds_everything_with_implicit_parents() -> None:
    view = merge_layers([layer(f("a/b/c", 10, uid=1000, gid=1000, mode=0o600))])
    assert {p: view.change_of(p) for p in by_path(view.nodes)} == {
        "a": Change.ADDED,
        "a/b": Change.ADDED,
        "a/b/c": Change.ADDED,
    }
    implicit = by_path(view.nodes)["a"].entry  # an implicit directory: 0755 root:root
    assert (implicit.type, implicit.mode, implicit.uid, implicit.gid) == (D, 0o755, 0, 0)
    c = by_path(view.nodes)["a/b/c"].entry
    assert (c.mode, c.uid, c.gid, c.size) == (0o600, 1000, 1000, 10)
    assert view.wasted_bytes == 0 and view.efficiency == 1.0


def test_whiteout_removes_a_file_and_a_whole_directory() -> None:
    top = layer(f("etc/.wh.motd"), f(".wh.var"), f("etc/.wh.absent"))
    view = merge_layers([BASE, top])
    assert "etc/motd" not in by_path(view.nodes)
    assert not any(p == "var" or p.startswith("var/") for p in by_path(view.nodes))
    assert sorted(by_path(view.removed)) == [
        "etc/motd",
        "var",
        "var/cache",
        "var/cache/a",
        "var/cache/b",
    ]
    assert all(view.change_of(p) is Change.REMOVED for p in by_path(view.removed))
    assert view.wasted_bytes == 50 + 1000 + 2000
    assert view.total_bytes == 100 + 5000
    # dive's score: deleted files are zero-byte occurrences: min sums 100+5000, all sums 8150
    assert view.efficiency == pytest.approx(5100 / 8150)
    removed = [(c.path, c.change, c.size_before) for c in view.layer_changes()]
    assert removed == [
        ("etc/motd", Change.REMOVED, 50),
        ("var", Change.REMOVED, 0),
        ("var/cache", Change.REMOVED, 0),
        ("var/cache/a", Change.REMOVED, 1000),
        ("var/cache/b", Change.REMOVED, 2000),
    ]


def test_opaque_directory_hides_lower_content_but_keeps_its_own() -> None:
    top = layer(
        d("var/cache"), f("var/cache/.wh..wh..opq"), f("var/cache/b", 20), f("var/cache/n", 7)
    )
    view = merge_layers([BASE, top])
    assert sorted(p for p in by_path(view.nodes) if p.startswith("var/cache/")) == [
        "var/cache/b",
        "var/cache/n",
    ]
    assert view.change_of("var/cache/a") is Change.REMOVED
    assert view.change_of("var/cache/b") is Change.MODIFIED  # re-added with another size
    assert view.change_of("var/cache/n") is Change.ADDED
    assert view.change_of("var/cache") is Change.UNCHANGED  # same metadata, rewritten
    assert view.wasted_bytes == 1000 + 2000
    changes = {c.path: c for c in view.layer_changes()}
    assert changes["var/cache/b"].fields == ("size",)
    assert changes["var/cache/b"].size_delta == 20 - 2000


def test_opaque_marker_in_a_lower_layer_does_not_hide_its_own_layer() -> None:
    view = merge_layers([layer(d("x"), f("x/.wh..wh..opq"), f("x/kept", 5))])
    assert "x/kept" in by_path(view.nodes) and not by_path(view.removed)


def test_a_file_replaced_by_a_directory_and_back() -> None:
    first = layer(f("thing", 300))
    second = layer(d("thing"), f("thing/inside", 4))
    view = merge_layers([first, second])
    assert by_path(view.nodes)["thing"].entry.type is D
    assert view.change_of("thing") is Change.MODIFIED
    assert view.change_of("thing/inside") is Change.ADDED
    assert view.wasted_bytes == 300
    changes = {c.path: c for c in view.layer_changes()}
    assert changes["thing"].fields == ("type", "size", "mode")
    # and back: a file over a directory takes the directory's subtree with it
    view = merge_layers([first, second, layer(f("thing", 9))])
    assert "thing/inside" not in by_path(view.nodes)
    assert view.change_of("thing/inside") is Change.REMOVED
    assert by_path(view.nodes)["thing"].entry.type is EntryType.FILE
    assert view.wasted_bytes == 300 + 4


def test_a_file_under_a_path_that_was_a_file_makes_an_implicit_directory() -> None:
    view = merge_layers([layer(f("opt", 10)), layer(f("opt/tool", 1))])
    assert by_path(view.nodes)["opt"].entry == IMPLICIT_DIRECTORY
    assert view.change_of("opt") is Change.MODIFIED
    assert view.wasted_bytes == 10


def test_links_keep_their_targets_and_count_no_bytes() -> None:
    retarget = Entry("usr/lib/libc.so.6", EntryType.SYMLINK, 0o777, link_target="libc-2.so")
    view = merge_layers([BASE, layer(retarget)])
    assert by_path(view.nodes)["usr/lib/hard"].entry.type is EntryType.HARDLINK
    assert by_path(view.nodes)["usr/lib/hard"].entry.link_target == "usr/lib/libc.so"
    assert view.change_of("usr/lib/libc.so.6") is Change.MODIFIED
    assert [c.fields for c in view.layer_changes()] == [("link",)]
    assert view.total_bytes == 100 + 50 + 1000 + 2000 + 5000
    assert view.wasted_bytes == 0


def test_overwrites_are_wasted_and_lower_efficiency_as_dive_scores_it() -> None:
    view = merge_layers([layer(f("big", 1000)), layer(f("big", 1200)), layer(f("big", 1200))])
    assert view.wasted_bytes == 1000 + 1200
    assert view.layer_bytes == 3400
    assert view.efficiency == pytest.approx(1000 / 3400)
    # A rewrite with unknown content is a modification; with equal digests it is not.
    assert view.change_of("big") is Change.MODIFIED
    same = merge_layers([layer(f("x", 5, digest="sha256:1")), layer(f("x", 5, digest="sha256:1"))])
    assert same.change_of("x") is Change.UNCHANGED
    other = merge_layers([layer(f("x", 5, digest="sha256:1")), layer(f("x", 5, digest="sha256:2"))])
    assert [c.fields for c in other.layer_changes()] == [("content",)]


def test_duplicate_entries_in_one_layer_keep_the_last_and_waste_the_first() -> None:
    changes = layer(f("a", 10), f("a", 30))
    assert changes.entries["a"].size == 30 and changes.duplicate_bytes == 10
    assert merge_layers([changes]).wasted_bytes == 10


def test_the_view_of_an_earlier_layer() -> None:
    layers = [BASE, layer(f("etc/.wh.motd")), layer(f("new", 1))]
    view = merge_layers(layers, upto=1)
    assert "new" not in by_path(view.nodes) and view.change_of("etc/motd") is Change.REMOVED
    assert view.change_of("etc/passwd") is Change.UNCHANGED
    with pytest.raises(IndexError):
        merge_layers(layers, upto=3)


def test_owner_and_mode_changes_are_modifications() -> None:
    view = merge_layers([BASE, layer(f("etc/passwd", 100, uid=0, gid=42, mode=0o640))])
    assert [(c.path, c.fields) for c in view.layer_changes()] == [("etc/passwd", ("mode", "owner"))]


def test_directory_sizes() -> None:
    sizes = by_path(directory_sizes(merge_layers([BASE]).nodes))
    assert sizes[""] == 8150
    assert sizes["var"] == sizes["var/cache"] == 3000
    assert sizes["usr/lib"] == 5000


def test_diff_of_two_filesystems() -> None:
    one = merge_layers([BASE]).nodes.copy()
    two = merge_layers(
        [
            BASE,
            layer(
                f("etc/.wh.motd"),
                f("etc/passwd", 120),
                f("etc/group", 30),
                f("usr/lib/libc.so", 5000, mode=0o755),
            ),
        ]
    ).nodes
    changes = [(c.path, c.change, c.fields, c.size_delta) for c in diff_filesystems(one, two)]
    assert changes == [
        ("etc/group", Change.ADDED, (), 30),
        ("etc/motd", Change.REMOVED, (), -50),
        ("etc/passwd", Change.MODIFIED, ("size",), 20),
        ("usr/lib/libc.so", Change.MODIFIED, ("mode",), 0),
    ]
    assert diff_filesystems(two, two) == []


def test_1200_components_raise_no_recursion_error() -> None:
    deep = "/".join(f"d{n}" for n in range(1200))
    merger = FilesystemMerger()
    merger.apply(layer(f(f"{deep}/file", 7)))
    assert len(by_path(merger.nodes)) == 1201
    sizes = by_path(directory_sizes(merger.nodes))
    assert sizes["d0"] == 7 and sizes[deep] == 7
    view = merger.apply(layer(f(".wh.d0")))
    assert view.nodes == {} and len(by_path(view.removed)) == 1201
    assert view.wasted_bytes == 7
    first = merge_layers([layer(f(f"{deep}/file", 7))]).nodes
    assert len(diff_filesystems(first, {})) == 1201
