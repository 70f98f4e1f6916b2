"""The storage panel's numbers: before/after changes per line, GC reports as views."""

from __future__ import annotations

from tui.data.backends import gc_view_from_report, usage_view_from_report
from tui.data.storage import (
    RECLAIMABLE_LINE,
    RECLAIMABLE_UNTAGGED_LINE,
    RepoUsage,
    UsageView,
    compare_usage,
)


def view(total: int, repos: dict[str, int], *, untagged: int | None = 500) -> UsageView:
    return UsageView(
        source="test",
        estimate=False,
        total_bytes=total,
        blob_count=len(repos) + 1,
        repos=tuple(RepoUsage(name, size, size) for name, size in repos.items()),
        reclaimable_bytes=0,
        reclaimable_untagged_bytes=untagged,
    )


def test_every_line_has_its_change_and_gone_repositories_stay_listed() -> None:
    before = view(3000, {"a": 1000, "b": 2000})
    after = view(1500, {"b": 1500}, untagged=0)
    changes = {(c.repository, c.name): c for c in compare_usage(before, after)}
    assert changes[(False, "Total on disk")].delta == -1500
    assert changes[(False, "Blobs")].unit == "count" and changes[(False, "Blobs")].delta == -1
    assert changes[(False, RECLAIMABLE_LINE)].delta == 0
    assert changes[(False, RECLAIMABLE_UNTAGGED_LINE)].delta == -500
    assert changes[(True, "a")].after == 0 and changes[(True, "a")].delta == -1000
    assert changes[(True, "b")].delta == -500


def test_unknown_reclaimable_is_left_out_not_shown_as_zero() -> None:
    estimate = view(10, {}, untagged=None)
    names = [c.name for c in compare_usage(estimate, estimate)]
    assert RECLAIMABLE_UNTAGGED_LINE not in names and RECLAIMABLE_LINE in names


def test_reports_become_views_with_both_reclaimable_numbers_and_blob_bytes() -> None:
    usage = usage_view_from_report(
        {
            "total_bytes": 900,
            "blob_count": 3,
            "repositories": [{"name": "r", "referenced_bytes": 900, "exclusive_bytes": 900}],
            "reclaimable_bytes": 0,
            "reclaimable_blobs": 0,
            "reclaimable_bytes_untagged": 300,
            "reclaimable_blobs_untagged": 2,
        },
        source="json",
    )
    assert (usage.reclaimable_bytes, usage.reclaimable_untagged_bytes) == (0, 300)
    assert usage.reclaimable_untagged_blobs == 2
    gc = gc_view_from_report(
        {
            "dry_run": False,
            "removals": [
                {"kind": "blob", "size": 200, "digest": "sha256:1", "removed": True},
                {"kind": "blob", "size": 100, "digest": "sha256:2", "removed": False},
                {"kind": "manifest", "size": 71, "digest": "sha256:3", "removed": True},
                {"kind": "layer_link", "size": 71, "removed": True},
            ],
            "bytes_freed": 342,
        }
    )
    assert gc.blob_bytes == 200  # a blob used again during the sweep was kept
    assert gc.freed_bytes == 342 and gc.count("blob") == 2
