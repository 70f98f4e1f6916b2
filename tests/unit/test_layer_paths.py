"""Layer paths cleaned the way container runtimes clean them, everywhere regtui reads a layer.

containerd's ``archive.Apply`` runs ``filepath.Clean`` on a tar entry's name and resolves it
under the root with ``fs.RootPath`` (``..`` never climbs above the root); moby's ``pkg/archive``
cleans and joins the same way. So ``usr/bin/../../etc/cron.d/evil`` lands in
``/etc/cron.d/evil``, and so must regtui show it. The table below is that behaviour written out
by hand; the property test compares with Python's ``posixpath.normpath`` of the name made
absolute (the same lexical rules, implemented independently of regtui).
"""

from __future__ import annotations

import io
import posixpath
import tarfile

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.helpers.inside_images import T, tar_of
from tui.client.layers import LayerReader, NodeKind, clean_layer_path
from tui.data.layer_entries import EntryReader
from tui.logic.fsmerge import Entry, EntryType, LayerChanges, merge_layers

# (name in the tar, where a runtime puts it relative to the root; "" is the root itself)
RUNTIME_CASES = [
    ("usr/bin/../../etc/cron.d/evil", "etc/cron.d/evil"),
    ("../../etc/passwd", "etc/passwd"),
    ("../../../../../../etc/shadow", "etc/shadow"),
    ("a/../../b", "b"),
    ("a/b/./../c", "a/c"),
    ("/etc/passwd", "etc/passwd"),
    ("//etc///passwd", "etc/passwd"),
    ("./etc/passwd", "etc/passwd"),
    ("././etc/./passwd", "etc/passwd"),
    ("etc//passwd", "etc/passwd"),
    ("etc/passwd/", "etc/passwd"),
    ("usr/lib/", "usr/lib"),
    ("./", ""),
    ("/", ""),
    (".", ""),
    ("..", ""),
    ("a/..", ""),
    ("a/b/../../..", ""),
    ("...", "..."),
    ("..a/b..", "..a/b.."),
    (".wh..wh..opq", ".wh..wh..opq"),
    ("etc/.wh.motd", "etc/.wh.motd"),
    ("a\\..\\b", "a\\..\\b"),  # a backslash is part of a name on Linux
]


@pytest.mark.parametrize(("name", "expected"), RUNTIME_CASES)
def test_names_are_cleaned_as_runtimes_clean_them(name: str, expected: str) -> None:
    assert clean_layer_path(name) == expected


names = st.lists(
    st.sampled_from(["", ".", "..", "a", "b", "..a", "...", ".wh.x", "é"]), max_size=12
).map("/".join)


@given(names)
def test_cleaning_matches_normpath_of_the_rooted_name(name: str) -> None:
    # An independent oracle: POSIX lexical cleaning of the name taken from the root.
    expected = posixpath.normpath("/" + name).lstrip("/")
    assert clean_layer_path(name) == expected


@given(st.one_of(names, st.text(alphabet="./ab", max_size=40)))
def test_a_clean_path_is_relative_canonical_and_stable(name: str) -> None:
    cleaned = clean_layer_path(name)
    assert not cleaned.startswith("/")
    if cleaned:
        assert all(part not in ("", ".", "..") for part in cleaned.split("/"))
    assert clean_layer_path(cleaned) == cleaned


HOSTILE = [
    T("usr", "dir", mode=0o755),
    T("usr/bin", "dir", mode=0o755),
    T("usr/bin/../../etc/cron.d/evil", size=5),
    T("../../outside", size=3),
    T("/abs/file", size=2),
    T("./dot//twice/", "dir", mode=0o700),
    T("link", "hardlink", link="usr/bin/../../etc/cron.d/evil"),
    T("sym", "symlink", mode=0o777, link="../../etc"),
    T("etc/.wh..."),  # a whiteout of "..": containerd refuses it, regtui ignores it
]
EXPECTED_PATHS = {
    "usr",
    "usr/bin",
    "etc",
    "etc/cron.d",
    "etc/cron.d/evil",
    "outside",
    "abs",
    "abs/file",
    "dot",
    "dot/twice",
    "link",
    "sym",
}


def _tar() -> bytes:
    raw = tar_of(HOSTILE)
    # Python's tarfile keeps names as given; check the hostile names really are in the tar.
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        assert "usr/bin/../../etc/cron.d/evil" in tar.getnames()
    return raw


def test_the_layer_files_tree_shows_where_a_runtime_puts_them() -> None:
    reader = LayerReader()
    reader.feed(_tar())
    root = reader.finish()
    paths = {path for path, _ in root.walk()}
    assert paths == EXPECTED_PATHS
    assert root.find("usr/bin/etc") is None
    evil = root.find("etc/cron.d/evil")
    assert evil is not None and evil.size == 5
    link = root.find("link")
    assert link is not None and (link.kind, link.link_target) == (
        NodeKind.HARDLINK,
        "etc/cron.d/evil",
    )
    symlink = root.find("sym")
    assert symlink is not None and symlink.link_target == "../../etc"  # kept as written
    assert root.find("/abs//file/") is not None  # looking a path up cleans it the same way


def test_the_entries_of_diff_and_the_merged_view_are_cleaned_the_same_way() -> None:
    reader = EntryReader()
    reader.feed(_tar())
    reader.finish()
    changes = LayerChanges.from_entries(reader.collected)
    assert changes.whiteouts == []
    view = merge_layers([changes])
    nodes = {key.path: node.entry for key, node in view.nodes.items()}
    assert set(nodes) == EXPECTED_PATHS
    assert nodes["link"].link_target == "etc/cron.d/evil"
    assert nodes["dot/twice"].mode == 0o700
    assert view.find("usr/bin/../../etc/cron.d/evil") is view.find("etc/cron.d/evil")


def test_entries_made_by_hand_are_cleaned_when_stacked() -> None:
    raw = [
        Entry("usr/bin/../../etc/cron.d/evil", size=1),
        Entry("x", EntryType.HARDLINK, link_target="/./etc//cron.d/evil/"),
        Entry("../", EntryType.DIRECTORY),
    ]
    changes = LayerChanges.from_entries(raw)
    assert sorted(changes.entries) == ["etc/cron.d/evil", "x"]
    assert changes.entries["x"].link_target == "etc/cron.d/evil"
    # A whiteout is resolved the same way: it deletes what the runtime would delete.
    top = LayerChanges.from_entries([Entry("usr/../etc/cron.d/.wh.evil")])
    view = merge_layers([changes, top])
    assert {key.path for key in view.nodes} == {"etc", "etc/cron.d", "x"}
