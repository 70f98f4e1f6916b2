"""Every range operator at its boundaries, with full versions and pre-releases.

The rules are the module's documented ones (regtui_retention/semver.py): missing parts are 0, a
pre-release sorts before its release and is otherwise compared like any version, a partial
version names a set (``1.2`` is every ``1.2.z``), and the upper bound of ``^``, ``~`` and a
partial ``<=``/``=`` excludes that bound's own pre-releases. Expected answers are written out
by hand: no parser of ours decides them.
"""

from __future__ import annotations

import pytest

from regtui_retention.semver import parse_range

CASES: list[tuple[str, dict[str, bool]]] = [
    # full versions: each comparator on both sides of its bound and on it
    (
        "<=1.2.7",
        {"1.2.6": True, "1.2.7": True, "v1.2.7": True, "1.2.7-rc.1": True, "1.2.8-rc.1": False}
        | {"1.2.8": False, "1.3": False, "1": True},
    ),
    (
        "<1.2.7",
        {"1.2.6": True, "1.2.7": False, "1.2.7-rc.1": True, "1.2.8": False, "v1.2.7": False},
    ),
    (
        ">=1.2.7",
        {"1.2.6": False, "1.2.7": True, "1.2.7-rc.1": False, "1.2.8-rc.1": True, "2": True},
    ),
    (">1.2.7", {"1.2.7": False, "1.2.8-rc.1": True, "1.2.8": True, "1.2.6": False}),
    ("=1.2.7", {"1.2.7": True, "v1.2.7": True, "1.2.7-rc.1": False, "1.2.8": False}),
    ("1.2.7", {"1.2.7": True, "1.2.6": False, "1.2.8": False, "1.2.7-rc.1": False}),
    ("<=1.2.0", {"1.2": True, "1.2.0": True, "1.2.1": False, "1": True}),
    ("=1.0.0", {"1": True, "1.0": True, "v1": True, "1.0.1": False}),
    # caret and tilde with full versions
    (
        "^1.2.7",
        {"1.2.6": False, "1.2.7": True, "1.9.9": True, "1.3.0-rc.1": True, "1.2.7-rc.1": False}
        | {"2.0.0-rc.1": False, "2.0.0": False},
    ),
    ("^0.2.7", {"0.2.6": False, "0.2.7": True, "0.2.99": True, "0.3.0-rc.1": False, "0.3": False}),
    ("^0.0.7", {"0.0.6": False, "0.0.7": True, "0.0.8-rc.1": False, "0.0.8": False}),
    (
        "~1.2.7",
        {"1.2.6": False, "1.2.7": True, "1.2.99": True, "1.3.0-rc.1": False, "1.3.0": False},
    ),
    # partial versions name sets
    ("<=1.2", {"1.2.99": True, "1.3.0-rc.1": False, "1.3.0": False, "1.2.0-rc.1": True}),
    ("<1.2", {"1.1.99": True, "1.2.0-rc.1": False, "1.2.0": False}),
    (">1.2", {"1.2.99": False, "1.3.0-rc.1": False, "1.3.0": True}),
    (">=1.2", {"1.2.0-rc.1": False, "1.2.0": True, "1.1.99": False}),
    ("=1.2", {"1.2.0-rc.1": False, "1.2.0": True, "1.2.5-rc.1": True, "1.3.0-rc.1": False}),
    ("~1", {"0.9.9": False, "1.0.0": True, "1.99.0": True, "2.0.0-rc.1": False}),
    ("^0.0", {"0.0.0": True, "0.0.9": True, "0.1.0-rc.1": False, "0.1.0": False}),
    # ranges: AND within, OR between
    (
        ">=1.2.7 <1.3.0",
        {"1.2.6": False, "1.2.7": True, "1.2.99": True, "1.3.0-rc.1": True, "1.3.0": False},
    ),
    ("<=1.2.7 || >=3.0.0", {"1.2.7": True, "2.9.9": False, "3.0.0-rc.1": False, "3.0.0": True}),
    # pre-releases: numeric identifiers numerically, before alphanumeric ones; fewer first
    (
        ">=1.2.0-rc.1 <=1.2.0",
        {"1.2.0-rc.0": False, "1.2.0-rc.1": True, "1.2.0-rc.10": True, "1.2.0-beta": False}
        | {"1.2.0": True, "1.2.1": False, "1.2.0-rc": False, "1.2.0-rc.1.1": True},
    ),
    ("=1.2.7-rc.1", {"1.2.7-rc.1": True, "1.2.7-rc.10": False, "1.2.7": False}),
    ("<1.2.7-rc.10", {"1.2.7-rc.2": True, "1.2.7-rc.10": False, "1.2.7-rc.a": False}),
    # not versions: never in any range
    ("*", {"latest": False, "1.2.3.4": False, "01.2": False, "1.2.3": True}),
]


@pytest.mark.parametrize(("text", "answers"), CASES, ids=[text for text, _ in CASES])
def test_operator_boundaries(text: str, answers: dict[str, bool]) -> None:
    matcher = parse_range(text)
    assert {tag: matcher.matches(tag) for tag in answers} == answers
