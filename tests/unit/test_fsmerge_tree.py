"""The merge as a tree of path keys: order, filtering, diffs and repeated layers, checked against
oracles that work on plain path strings (independent of the tree code)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tui.logic.fsmerge import (
    Change,
    Entry,
    EntryType,
    FilesystemMerger,
    LayerChanges,
    MergedNode,
    MergedView,
    PathKey,
    diff_filesystems,
    in_tree_order,
    merge_layers,
)
from tui.logic.inside_view import PathMatcher, diff_rows, merged_rows

COMPONENTS = st.sampled_from(["a", "b", "B", "ab", "a-b", "a.b", "é"])
PATHS = st.lists(COMPONENTS, min_size=1, max_size=5).map("/".join)


def interned(paths: list[str]) -> tuple[PathKey, list[PathKey]]:
    root = PathKey()
    return root, [root.intern(path) for path in paths]


@given(st.lists(PATHS, min_size=1, max_size=30), st.data())
def test_the_matcher_agrees_with_a_substring_search_of_the_path(
    paths: list[str], data: st.DataObject
) -> None:
    # Queries cut out of the paths themselves (so they often span components), or made up.
    source = data.draw(st.sampled_from(paths))
    start = data.draw(st.integers(0, len(source)))
    end = data.draw(st.integers(start, len(source)))
    query = data.draw(st.sampled_from([source[start:end].upper(), source[start:end]]))
    query = data.draw(st.one_of(st.just(query), st.text(alphabet="abBé/-.", max_size=6)))
    _, keys = interned(paths)
    matches = PathMatcher(query)
    for key, path in zip(keys, paths, strict=True):
        assert matches(key) == (query.lower() in path.lower()), (path, query)


def test_the_matcher_finds_a_query_across_three_components() -> None:
    _, (key, other) = interned(["xa/b/cx", "xa/b/c/x"])
    assert PathMatcher("a/b/c")(key) and PathMatcher("A/B/")(key)
    assert PathMatcher("/c/")(other) and not PathMatcher("/c/")(key)


@given(st.lists(PATHS, max_size=30))
def test_tree_order_is_the_order_of_component_lists(paths: list[str]) -> None:
    _, keys = interned(paths)
    ordered = [key.path for key in in_tree_order(keys)]
    assert ordered == sorted(set(paths), key=lambda path: path.split("/"))


KINDS = st.sampled_from(["file", "dir", "whiteout", "opaque", "symlink"])


def entry(path: str, kind: str, size: int) -> Entry:
    if kind == "whiteout":
        parent, _, name = path.rpartition("/")
        return Entry(f"{parent}/.wh.{name}" if parent else f".wh.{name}")
    if kind == "opaque":
        return Entry(f"{path}/.wh..wh..opq")
    if kind == "dir":
        return Entry(path, EntryType.DIRECTORY, 0o755)
    if kind == "symlink":
        return Entry(path, EntryType.SYMLINK, 0o777, link_target=f"../{size}")
    return Entry(path, size=size, digest=f"sha256:{size}")


LAYERS = st.lists(st.builds(entry, PATHS, KINDS, st.integers(0, 3)), max_size=12).map(
    LayerChanges.from_entries
)


def filesystem(view: MergedView) -> dict[str, tuple[str, int, int, str]]:
    return {
        key.path: (str(node.entry.type), node.entry.mode, node.entry.size, node.entry.link_target)
        for key, node in view.nodes.items()
    }


@given(LAYERS, LAYERS)
def test_a_layer_applied_twice_gives_the_filesystem_of_once(
    base: LayerChanges, layer: LayerChanges
) -> None:
    # What a runtime does with a manifest listing a layer twice: its whiteouts and opaque
    # markers act again, on what its first copy wrote, and its entries are written again.
    once = filesystem(merge_layers([base, layer]))
    twice = filesystem(merge_layers([base, layer, layer]))
    assert twice == once


def test_the_second_copy_of_a_layer_with_whiteouts_changes_nothing_but_wastes_its_bytes() -> None:
    base = LayerChanges.from_entries([Entry("old", size=10), Entry("keep/lower", size=20)])
    layer = LayerChanges.from_entries(
        [
            Entry(".wh.old"),
            Entry("keep/.wh..wh..opq"),
            Entry("keep/new", size=5, digest="sha256:n"),
            Entry("file", size=7, digest="sha256:f"),
        ]
    )
    first = merge_layers([base, layer])
    assert [(c.path, c.change) for c in first.layer_changes()] == [
        ("file", Change.ADDED),
        ("keep/lower", Change.REMOVED),
        ("keep/new", Change.ADDED),
        ("old", Change.REMOVED),
    ]
    second = merge_layers([base, layer, layer])
    # The opaque marker removes keep/new of the first copy; the same file is written back.
    assert second.layer_changes() == []
    assert filesystem(second) == filesystem(first)
    assert second.wasted_bytes == first.wasted_bytes + 5 + 7  # unpacked twice, seen once
    assert sorted(layer.entries) == ["file", "keep/new"]  # the layer itself is never changed


@given(st.lists(LAYERS, min_size=1, max_size=3), st.lists(LAYERS, min_size=1, max_size=3))
def test_diff_agrees_with_a_comparison_of_path_tables(
    before: list[LayerChanges], after: list[LayerChanges]
) -> None:
    old, new = merge_layers(before), merge_layers(after)
    old_paths = {key.path: node.entry for key, node in old.nodes.items()}
    new_paths = {key.path: node.entry for key, node in new.nodes.items()}
    expected = set()
    for path in old_paths.keys() | new_paths.keys():
        a, b = old_paths.get(path), new_paths.get(path)
        if a is None:
            expected.add((path, Change.ADDED))
        elif b is None:
            expected.add((path, Change.REMOVED))
        elif (a.type, a.size, a.mode, a.uid, a.gid, a.link_target) != (
            b.type,
            b.size,
            b.mode,
            b.uid,
            b.gid,
            b.link_target,
        ) or (a.digest and b.digest and a.digest != b.digest):
            expected.add((path, Change.MODIFIED))
    found = diff_filesystems(old.nodes, new.nodes)
    assert {(c.path, c.change) for c in found} == expected
    assert [c.path for c in found] == sorted((p for p, _ in expected), key=lambda p: p.split("/"))
    assert [c.path for c in diff_rows(found, query="B")] == [
        c.path for c in found if "b" in c.path.lower()
    ]


def test_rows_of_a_deep_tree_filter_and_sort_without_path_text() -> None:
    deep = "/".join(["d"] * 3000)
    view = merge_layers(
        [LayerChanges.from_entries([Entry(f"{deep}/file", size=9), Entry("top", size=1)])]
    )
    rows = merged_rows(view, {}, query="D/FILE")
    assert [row.path for row in rows] == [f"{deep}/file"]
    by_size = merged_rows(view, {}, by_size=True)
    assert [row.path for row in by_size[:2]] == [f"{deep}/file", "top"]


def state(merger: FilesystemMerger) -> tuple[object, ...]:
    def table(nodes: dict[PathKey, MergedNode]) -> dict[str, tuple[object, ...]]:
        return {key.path: (node.entry, node.layer, node.change) for key, node in nodes.items()}

    return (
        merger.layer,
        table(merger.nodes),
        table(merger.removed),
        merger.wasted_bytes,
        merger.layer_bytes,
        merger.efficiency,
    )


@settings(max_examples=300)
@given(LAYERS, LAYERS, st.integers(1, 7), LAYERS)
def test_a_run_of_copies_fast_forwarded_equals_applying_each(
    base: LayerChanges, layer: LayerChanges, times: int, top: LayerChanges
) -> None:
    one_by_one, fast = FilesystemMerger(), FilesystemMerger()
    one_by_one.apply(base)
    fast.apply(base)
    for _ in range(times):
        one_by_one.apply(layer)
    fast.apply_repeated(layer, times)
    assert state(fast) == state(one_by_one)
    # and what comes after the run sees the same filesystem and figures
    one_by_one.apply(top)
    fast.apply(top)
    assert state(fast) == state(one_by_one)
