"""Words on screen: one plural helper for every count the app shows."""

from __future__ import annotations

import pytest

from tui.logic.fmt import count_of, plural


@pytest.mark.parametrize(
    ("count", "noun", "expected"),
    [
        (1, "tag", "1 tag"),
        (0, "tag", "0 tags"),
        (2, "tag", "2 tags"),
        (1, "repository", "1 repository"),
        (7, "repository", "7 repositories"),
        (1, "file", "1 file"),
        (1200, "file", "1,200 files"),
        (3, "entry", "3 entries"),
        (2, "key", "2 keys"),
        (2, "manifest revision", "2 manifest revisions"),
        (1, "platform manifest", "1 platform manifest"),
        (2, "match", "2 matches"),
        (4, "blob", "4 blobs"),
    ],
)
def test_count_of(count: int, noun: str, expected: str) -> None:
    assert count_of(count, noun) == expected


def test_plural_without_a_count_is_the_plural() -> None:
    assert plural("repository") == "repositories"
    assert plural("tag") == "tags"
    assert plural("tag", 1) == "tag"
