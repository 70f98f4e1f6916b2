"""Retention policies: the rules, their YAML form and durations (pure, no I/O).

:func:`regtui_retention.plan.evaluate` applies a :class:`Policy` to a registry's state.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from regtui_retention.patterns import PatternError, TagRegex
from regtui_retention.semver import SemverError, parse_range


class PolicyError(ValueError):
    """A policy that cannot be read or would be unsafe; the message is one line."""


class DateSource(enum.StrEnum):
    CREATED = "created"
    """The image config's ``created`` (set by the build; may be old for a fresh push)."""
    PUSHED = "pushed"
    """When the tag was last pushed (from storage: only the bundled registry and a directory)."""


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str | float) -> float:
    """``90``, ``90s``, ``30m``, ``12h``, ``30d``, ``2w`` -> seconds (PolicyError otherwise)."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        if text < 0:
            raise PolicyError(f"not a duration: {text!r}")
        return float(text)
    match = _DURATION.match(str(text))
    if match is None:
        raise PolicyError(f"not a duration: {text!r} (like 90s, 30m, 12h, 30d, 2w)")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2)]


def format_duration(seconds: float) -> str:
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


@dataclass(frozen=True)
class Policy:
    """Retention rules; see :func:`evaluate` for the order in which they apply.

    Keep rules (a tag any of them matches is never deleted): ``keep_newest`` (the N newest
    tags of each repository by ``by`` date), ``keep_tags`` (regular expressions, matched
    against the whole tag, run on RE2: see :mod:`regtui_retention.patterns`), ``keep_semver``
    (ranges such as ``>=1.2 <2``, see :mod:`regtui_retention.semver`), ``pulled_within``
    (seconds; tags whose image was pulled that recently: a GET of its manifest by tag or
    digest, as the bundled registry records it), ``keep_newest_pulled`` (the N most
    recently pulled tags of each repository; tags never pulled are not among them).
    Delete rules: ``delete_older_than`` (seconds; tags whose ``by`` date is older), and
    ``delete_untagged_older_than`` (seconds; manifests no tag reaches, by push time).
    Scope: ``include``/``exclude`` are shell patterns on repository names (``team/*``).
    """

    keep_newest: int | None = None
    keep_tags: tuple[str, ...] = ()
    keep_semver: tuple[str, ...] = ()
    delete_older_than: float | None = None
    delete_untagged_older_than: float | None = None
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    by: DateSource = DateSource.CREATED
    pulled_within: float | None = None
    keep_newest_pulled: int | None = None

    def __post_init__(self) -> None:
        if self.keep_newest is not None and self.keep_newest < 0:
            raise PolicyError("keep_newest must be zero or more")
        if self.keep_newest_pulled is not None and self.keep_newest_pulled < 0:
            raise PolicyError("keep_newest_pulled must be zero or more")
        for value in (self.delete_older_than, self.delete_untagged_older_than, self.pulled_within):
            if value is not None and value < 0:
                raise PolicyError("durations must be zero or more")
        for pattern in self.keep_tags:
            try:
                TagRegex(pattern)
            except PatternError as exc:
                raise PolicyError(f"keep_tags: {exc}") from None
        for text in self.keep_semver:
            try:
                parse_range(text)
            except SemverError as exc:
                raise PolicyError(f"keep_semver: {text!r}: {exc}") from None

    @property
    def has_keep_rule(self) -> bool:
        return (
            self.keep_newest is not None
            or bool(self.keep_tags)
            or bool(self.keep_semver)
            or self.pulled_within is not None
            or self.keep_newest_pulled is not None
        )

    @property
    def uses_pull_times(self) -> bool:
        """Whether a rule reads when tags were pulled (only the bundled registry knows)."""
        return self.pulled_within is not None or self.keep_newest_pulled is not None

    @property
    def deletes_tags(self) -> bool:
        """Whether tags can go at all: an age limit, or keep rules that name what stays."""
        return self.delete_older_than is not None or self.has_keep_rule

    def selects(self, repository: str) -> bool:
        if self.include and not any(fnmatchcase(repository, p) for p in self.include):
            return False
        return not any(fnmatchcase(repository, p) for p in self.exclude)

    def to_json(self) -> dict[str, Any]:
        return {
            "keep_newest": self.keep_newest,
            "keep_tags": list(self.keep_tags),
            "keep_semver": list(self.keep_semver),
            "delete_older_than_seconds": self.delete_older_than,
            "delete_untagged_older_than_seconds": self.delete_untagged_older_than,
            "include": list(self.include),
            "exclude": list(self.exclude),
            "by": self.by.value,
            "pulled_within_seconds": self.pulled_within,
            "keep_newest_pulled": self.keep_newest_pulled,
        }


POLICY_KEYS = (
    "keep_newest",
    "keep_tags",
    "keep_semver",
    "delete_older_than",
    "delete_untagged_older_than",
    "include",
    "exclude",
    "by",
    "pulled_within",
    "keep_newest_pulled",
)


def _strings(doc: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = doc.get(key)
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return tuple(str(v) for v in value)
    raise PolicyError(f"{key} must be a string or a list of strings")


def policy_from_mapping(doc: Any) -> Policy:
    """A policy from a YAML/JSON document (the keys of :data:`POLICY_KEYS`; unknown keys fail).

    Durations are numbers of seconds or text like ``30d``; ``keep_tags`` etc. take a string
    or a list of strings.
    """
    if doc is None:
        doc = {}
    if not isinstance(doc, Mapping):
        raise PolicyError("a policy is a mapping of rules (keep_newest: 5, ...)")
    unknown = sorted(str(k) for k in doc if k not in POLICY_KEYS)
    if unknown:
        raise PolicyError(
            f"unknown policy {'key' if len(unknown) == 1 else 'keys'}: {', '.join(unknown)} "
            f"(known: {', '.join(POLICY_KEYS)})"
        )

    def whole(key: str) -> int | None:
        value = doc.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise PolicyError(f"{key} must be a whole number")
        return value

    keep_newest = whole("keep_newest")
    keep_newest_pulled = whole("keep_newest_pulled")
    by = doc.get("by", DateSource.CREATED.value)
    if by not in tuple(DateSource):
        raise PolicyError("by must be 'created' or 'pushed'")

    def duration(key: str) -> float | None:
        value = doc.get(key)
        return None if value is None else parse_duration(value)

    return Policy(
        keep_newest=keep_newest,
        keep_tags=_strings(doc, "keep_tags"),
        keep_semver=_strings(doc, "keep_semver"),
        delete_older_than=duration("delete_older_than"),
        delete_untagged_older_than=duration("delete_untagged_older_than"),
        include=_strings(doc, "include"),
        exclude=_strings(doc, "exclude"),
        by=DateSource(by),
        pulled_within=duration("pulled_within"),
        keep_newest_pulled=keep_newest_pulled,
    )
