""" "Keep the newest N" and the plan for deleting marked tags."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tui.logic.retention import ActionKind, keep_newest, plan_bulk_delete, why_untag_only
from tui.logic.tags import TagRow


def row(tag: str, digest: str | None, day: int | None) -> TagRow:
    created = datetime(2024, 1, day, tzinfo=UTC) if day else None
    return TagRow(tag, digest, created=created)


ROWS = [
    row("v1", "sha256:a", 1),
    row("v2", "sha256:b", 2),
    row("v3", "sha256:c", 3),
    row("stable", "sha256:c", 1),  # older date label but same image as v3
    row("v4", "sha256:d", 4),
    row("mystery", "sha256:e", None),
]


def test_keep_newest_marks_the_rest_and_protects_shared_digests() -> None:
    plan = keep_newest(ROWS, 2)
    assert plan.keep == ("v4", "v3", "mystery")
    assert plan.mark == ("v1", "v2")
    assert plan.protected == ("stable",)


def test_keep_zero_and_keep_more_than_there_are() -> None:
    assert keep_newest(ROWS, 0).mark == ("stable", "v1", "v2", "v3", "v4")
    assert keep_newest(ROWS, 50).mark == ()
    with pytest.raises(ValueError):
        keep_newest(ROWS, -1)


def test_bulk_plan_deletes_whole_digests_and_untags_partial_ones() -> None:
    actions = plan_bulk_delete({"v1", "stable"}, ROWS)
    assert [(a.kind, a.digest, a.tags, a.kept_siblings) for a in actions] == [
        (ActionKind.UNTAG, "sha256:c", ("stable",), ("v3",)),
        (ActionKind.DELETE_MANIFEST, "sha256:a", ("v1",), ()),
    ]
    both = plan_bulk_delete({"v3", "stable"}, ROWS)
    assert [(a.kind, a.tags) for a in both] == [(ActionKind.DELETE_MANIFEST, ("stable", "v3"))]


def test_bulk_plan_refuses_unknown_digests() -> None:
    with pytest.raises(ValueError, match="not known"):
        plan_bulk_delete({"x"}, [row("x", None, 1)])
    assert plan_bulk_delete(set(), ROWS) == []


def test_why_a_tag_goes_but_its_image_stays_is_a_sentence() -> None:
    assert why_untag_only(["latest"]) == "only the tag goes: latest keeps the image"
    assert why_untag_only(["3.19", "3.20", "latest"]) == (
        "only the tag goes: 3.19, 3.20 and latest keep the image"
    )
    assert why_untag_only([]) == "only the tag goes: an index names the image"
