"""Image comparison and the rows of the inside screens (pure logic)."""

from __future__ import annotations

import pytest

from tui.client.models import Descriptor, ImageConfig, ImageIndex, Platform
from tui.logic.find import HitKind, InvalidPatternError, TagPattern, digest_uses
from tui.logic.fsmerge import Change, Entry, EntryType, LayerChanges, directory_sizes, merge_layers
from tui.logic.imagediff import (
    PlatformPickError,
    compare_configs,
    compare_layers,
    pick_platform,
)
from tui.logic.inside_view import diff_rows, merged_rows, mode_string


def child(digest: str, os: str, arch: str, variant: str | None = None) -> Descriptor:
    return Descriptor("m", digest, 1, Platform(os, arch, variant))


INDEX = ImageIndex(
    "i",
    (
        child("sha256:a", "linux", "amd64"),
        child("sha256:b", "linux", "arm64", "v8"),
        child("sha256:c", "unknown", "unknown"),  # an attestation manifest
    ),
)


def test_pick_platform() -> None:
    assert pick_platform(INDEX, None).digest == "sha256:a"
    assert pick_platform(INDEX, "linux/arm64").digest == "sha256:b"
    assert pick_platform(INDEX, "linux/arm64/v8").digest == "sha256:b"
    with pytest.raises(PlatformPickError, match=r"\(linux/amd64, linux/arm64/v8\)"):
        pick_platform(INDEX, "linux/s390x")
    only_arm = ImageIndex("i", (INDEX.manifests[1], INDEX.manifests[2]))
    assert pick_platform(only_arm, None).digest == "sha256:b"
    two = ImageIndex("i", (INDEX.manifests[1], child("sha256:d", "linux", "ppc64le")))
    with pytest.raises(PlatformPickError, match="several platforms"):
        pick_platform(two, None)


def test_compare_configs() -> None:
    old = ImageConfig(os="linux", architecture="amd64", env=("A=1", "B=2"), cmd=("sh",))
    new = ImageConfig(
        os="linux",
        architecture="arm64",
        env=("A=1", "C=3"),
        entrypoint=("/init",),
        labels={"x": "y"},
        exposed_ports=("80/tcp",),
    )
    found = [(c.field, c.key, c.before, c.after) for c in compare_configs(old, new)]
    assert found == [
        ("platform", None, "linux/amd64", "linux/arm64"),
        ("entrypoint", None, None, '["/init"]'),
        ("cmd", None, '["sh"]', None),
        ("env", "B", "2", None),
        ("env", "C", None, "3"),
        ("labels", "x", None, "y"),
        ("exposed_ports", "80/tcp", None, "exposed"),
    ]
    assert compare_configs(old, old) == []


def test_compare_layers_keeps_order_and_counts_shared_once() -> None:
    a, b, c = (Descriptor("l", f"sha256:{n}", size) for n, size in (("a", 1), ("b", 2), ("c", 4)))
    result = compare_layers([a, b, a], [a, c])
    assert result.shared == (a,) and result.shared_bytes == 1
    assert result.only_before == (b,) and result.only_after == (c,)


def test_tag_patterns_match_the_whole_tag() -> None:
    assert TagPattern("1.*").matches("1.2.3") and not TagPattern("1.*").matches("v1.2")
    assert TagPattern(r"v\d+", regex=True).matches("v12")
    assert not TagPattern(r"v\d+", regex=True).matches("v12-rc")
    with pytest.raises(InvalidPatternError):
        TagPattern("[", regex=True)
    assert digest_uses("sha256:b", INDEX) == [HitKind.INDEX_CHILD]


def test_merged_rows_filter_sort_and_removed_paths() -> None:
    base = LayerChanges.from_entries(
        [Entry("d", EntryType.DIRECTORY, 0o755), Entry("d/big", size=9), Entry("d/small", size=1)]
    )
    top = LayerChanges.from_entries([Entry("d/.wh.small"), Entry("e", size=5)])
    view = merge_layers([base, top])
    sizes = directory_sizes(view.nodes)
    rows = merged_rows(view, sizes)
    assert [(r.path, r.change, r.size) for r in rows] == [
        ("d", Change.UNCHANGED, 9),
        ("d/big", Change.UNCHANGED, 9),
        ("d/small", Change.REMOVED, 1),
        ("e", Change.ADDED, 5),
    ]
    assert [r.path for r in merged_rows(view, sizes, by_size=True)] == [
        "d",
        "d/big",
        "e",
        "d/small",
    ]
    assert [r.path for r in merged_rows(view, sizes, only_changes=True)] == ["d/small", "e"]
    assert [r.path for r in merged_rows(view, sizes, query="SMA")] == ["d/small"]
    changes = view.layer_changes()
    assert [c.path for c in diff_rows(changes, by_size=True)] == ["e", "d/small"]
    assert mode_string(Entry("d", EntryType.DIRECTORY, 0o755)) == "drwxr-xr-x"
    assert mode_string(Entry("l", EntryType.SYMLINK, 0o777)) == "lrwxrwxrwx"


def test_the_find_screen_reads_its_query() -> None:
    from tui.screens.find import parse_query

    pattern, digest = parse_query("sha256:" + "a" * 64)
    assert pattern is None and digest == "sha256:" + "a" * 64
    pattern, digest = parse_query("re:v\\d+")
    assert digest is None and pattern is not None and pattern.regex and pattern.matches("v3")
    pattern, digest = parse_query("1.*")
    assert digest is None and pattern is not None and pattern.matches("1.2")
    with pytest.raises(InvalidPatternError):
        parse_query("re:(")
