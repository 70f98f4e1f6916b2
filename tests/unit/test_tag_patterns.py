"""User regular expressions run in bounded time (RE2), and a refused one is one clear line.

``(a+)+$`` against ``'a' * 40 + 'b'`` backtracks for hours in Python's ``re``; each test has a
pytest timeout of a few seconds rather than a timing assertion.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from regtui_retention.patterns import PatternError, TagRegex
from tui.logic.find import InvalidPatternError, TagPattern
from tui.logic.retention import (
    Policy,
    PolicyError,
    RegistryState,
    RepoState,
    TagState,
    evaluate,
    policy_from_mapping,
)

EVIL = r"(a+)+$"
TAG = "a" * 40 + "b"


@pytest.mark.timeout(5)
def test_a_catastrophic_pattern_answers_at_once() -> None:
    assert TagRegex(EVIL).fullmatch(TAG) is False
    assert TagRegex(EVIL).fullmatch("a" * 40) is True
    assert TagPattern(EVIL, regex=True).matches(TAG) is False
    assert TagPattern(r"(a|aa)+b", regex=True).matches(TAG) is True


@pytest.mark.timeout(5)
def test_a_policy_with_a_catastrophic_keep_rule_evaluates() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    tags = (TagState(TAG, "sha256:" + "1" * 64, now), TagState("a" * 40, "sha256:" + "2" * 64, now))
    state = RegistryState((RepoState("r", tags, {}),), exact=False)
    plan = evaluate(Policy(keep_tags=(EVIL,)), state, now)
    decisions = {d.tag: d for d in plan.repos[0].decisions}
    assert decisions[TAG].goes and not decisions["a" * 40].goes
    assert decisions["a" * 40].reasons == (f"keep_tags {EVIL}",)


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        (r"^(?!dev-).*", "invalid perl operator: (?!"),
        (r"(a)\1", "invalid escape sequence: \\1"),
        (r"v(1", "missing )"),
        (r"a{1001}", "invalid repetition size"),
    ],
)
def test_a_refused_pattern_is_one_line_everywhere(pattern: str, why: str) -> None:
    with pytest.raises(PatternError) as raised:
        TagRegex(pattern)
    assert why in str(raised.value) and "RE2" in str(raised.value)
    with pytest.raises(InvalidPatternError) as found:
        TagPattern(pattern, regex=True)
    with pytest.raises(PolicyError) as policy:
        policy_from_mapping({"keep_tags": [pattern]})
    for error in (raised.value, found.value, policy.value):
        assert "\n" not in str(error) and repr(pattern) in str(error)
    assert str(policy.value).startswith("keep_tags: regular expression")


def test_globs_still_match_the_whole_tag() -> None:
    assert TagPattern("v1.*").matches("v1.2")
    assert not TagPattern("v1.*").matches("xv1.2")
    assert not TagPattern("1.2", regex=True).matches("1.2.3")  # whole tag, not a prefix
    assert TagPattern("1.2", regex=True).matches("1x2")
