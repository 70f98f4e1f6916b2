"""The storage panel's numbers: before/after changes per line, GC reports as views."""

from __future__ import annotations

from tui.data.backends import gc_view_from_report, usage_view_from_report
from tui.data.storage import (
    RECLAIMABLE_LINE,
    RECLAIMABLE_UNTAGGED_LINE,
    RepoUsageView,
    UsageView,
    compare_usage,
)


def view(total: int, repos: dict[str, int], *, untagged: int | None = 500) -> UsageView:
    return UsageView(
        source="test",
        estimate=False,
        total_bytes=total,
        blob_count=len(repos) + 1,
        repos=tuple(RepoUsageView(name, size, size) for name, size in repos.items()),
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


def test_grace_periods_read_as_an_operator_writes_them() -> None:
    from tui.data.storage import human_duration

    cases = {0: "0 s", 45: "45 s", 60: "1 min", 90: "90 s", 600: "10 min", 3600: "1 h"}
    cases.update({5400: "1 h 30 min", 86400: "1 d", 90000: "1 d 1 h"})
    assert {seconds: human_duration(seconds) for seconds in cases} == cases


def test_the_grace_line_says_what_the_grace_period_keeps() -> None:
    from tui.client.ext import StorageReport
    from tui.data.storage import compare_usage, grace_line, grace_sentence

    assert grace_sentence(0, 0, 3600.0) is None
    assert grace_sentence(207_000, 4, 3600.0) == (
        "Kept by the 1 h grace period: 202.1 KiB · 4 blobs "
        "(written in the last hour; GC sweeps them later)"
    )
    assert grace_sentence(10, 1, 600.0) == (
        "Kept by the 10 min grace period: 10 B · 1 blob "
        "(written in the last 10 min; GC sweeps them later)"
    )
    doc = {"total_bytes": 5, "grace_period": 3600, "protected_young_bytes": 207_000}
    doc["protected_young_blobs"] = 4
    view = usage_view_from_report(StorageReport.from_json(doc), source="bundled")
    assert (view.protected_young_bytes, view.protected_young_blobs) == (207_000, 4)
    assert view.grace_period == 3600.0
    assert grace_line(view) == grace_sentence(207_000, 4, 3600.0)
    # An older server does not send the fields: nothing is said about the grace period.
    older = usage_view_from_report(StorageReport.from_json({"total_bytes": 5}), source="x")
    assert (older.protected_young_bytes, older.protected_young_blobs) == (0, 0)
    assert grace_line(older) is None
    changes = {c.name: c for c in compare_usage(view, older)}
    assert changes["Kept by the grace period"].delta == -207_000
    assert "Kept by the grace period" not in {c.name for c in compare_usage(older, older)}
