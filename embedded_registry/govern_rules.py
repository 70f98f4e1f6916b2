"""regtui's governance rules in config.yml: immutable tags and storage quotas.

Parsed here (plain values, no I/O) so that :mod:`embedded_registry.config` refuses a malformed
rule at start; enforced by :mod:`embedded_registry.govern`::

    regtui:
      immutable:
        - repository: "team-a/*"      # a glob (fnmatch: * also crosses /); default: every one
          tags: ["v*.*.*", "stable"]  # globs on the tag
        - repository: prod/app
          regex: '^v\\d+\\.\\d+\\.\\d+$'  # or an RE2 expression, matched against the whole tag
      quota:
        - repository: team-a/app      # one repository
          limit: 10GiB
        - namespace: team-b           # every repository whose name starts with team-b/
          limit: 50GB

A rule holds exactly the keys shown (anything else is a ``ConfigError``, as are an empty
pattern, a regex RE2 cannot compile and a negative or malformed size). Sizes are bytes, or a
number with a unit: ``B``, ``kB``/``KB``, ``MB``, ``GB``, ``TB`` (powers of 1000) or ``KiB``,
``MiB``, ``GiB``, ``TiB`` (powers of 1024). From the environment,
``REGISTRY_REGTUI_IMMUTABLE`` or ``REGISTRY_REGTUI_QUOTA`` is refused (the rules are lists:
write them in the file).
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from typing import Any

import re2

MAX_PATTERN = 256
"""Characters of one pattern at most: a rule is a name, not a program."""
RE2_MAX_MEM = 1 << 20
"""Memory RE2 may use for one compiled rule (bounds its size; matching is linear anyway)."""

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([a-zA-Z]*)")


def parse_size(value: Any) -> int:
    """Bytes from ``10737418240``, ``10GiB``, ``1.5 GB``; ValueError when negative or
    malformed."""
    if isinstance(value, bool) or value is None:
        raise ValueError("expected a size like 10GiB")
    if isinstance(value, int):
        number, unit = float(value), ""
    elif isinstance(value, float):
        number, unit = value, ""
    else:
        text = str(value).strip()
        if text.startswith("-"):
            raise ValueError(f"{text!r}: a size must not be negative")
        match = _SIZE.fullmatch(text)
        if match is None:
            raise ValueError(f"{text!r} is not a size like 10GiB or 500MB")
        number, unit = float(match.group(1)), match.group(2).lower()
    if number < 0:
        raise ValueError(f"{value!r}: a size must not be negative")
    if unit not in _UNITS:
        raise ValueError(f"{value!r}: unknown unit {unit!r} (B, kB, MB, GB, TB, KiB...TiB)")
    return int(number * _UNITS[unit])


def _pattern(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{where} must be a non-empty string")
    if len(value) > MAX_PATTERN:
        raise ValueError(f"{where} is longer than {MAX_PATTERN} characters")
    return value.strip()


@dataclass(frozen=True)
class ImmutableRule:
    """``regtui.immutable[index]``: tags of matching repositories that may not move or go."""

    index: int
    repository: str = "*"
    tags: tuple[str, ...] = ()
    regex: str | None = None

    @property
    def label(self) -> str:
        """How a refusal names the rule: ``regtui.immutable[0] (repository "a/*", tags "v*")``."""
        what = (
            f'regex "{self.regex}"'
            if self.regex is not None
            else "tags " + ", ".join(f'"{t}"' for t in self.tags)
        )
        return f'regtui.immutable[{self.index}] (repository "{self.repository}", {what})'

    def matches(self, repository: str, tag: str) -> bool:
        if not _glob(self.repository).match(repository):
            return False
        if self.regex is not None:
            return _regex(self.regex).fullmatch(tag) is not None
        return any(_glob(pattern).match(tag) for pattern in self.tags)


_GLOBS: dict[str, re.Pattern[str]] = {}


def _glob(pattern: str) -> re.Pattern[str]:
    compiled = _GLOBS.get(pattern)
    if compiled is None:
        compiled = _GLOBS[pattern] = re.compile(fnmatch.translate(pattern))
    return compiled


_REGEXES: dict[str, Any] = {}


def _regex(pattern: str) -> Any:
    compiled = _REGEXES.get(pattern)
    if compiled is None:
        options = re2.Options()
        options.max_mem = RE2_MAX_MEM
        compiled = _REGEXES[pattern] = re2.compile(pattern, options)
    return compiled


def _rules(value: Any, section: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    if isinstance(value, str):
        raise ValueError(
            f"expected a list of rules, not a string (write {section} in the config file)"
        )
    if not isinstance(value, list):
        raise ValueError("expected a list of rules")
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise ValueError(f"rule {index} must be a mapping")
    return value


def parse_immutable(value: Any) -> tuple[ImmutableRule, ...]:
    """``regtui.immutable``: see the module docstring."""
    rules = []
    for index, item in enumerate(_rules(value, "regtui.immutable")):
        where = f"rule {index}"
        unknown = sorted(set(map(str, item)) - {"repository", "tags", "regex"})
        if unknown:
            raise ValueError(f"{where}: unknown key {unknown[0]!r} (repository, tags or regex)")
        if ("tags" in item) == ("regex" in item):
            raise ValueError(f"{where} needs exactly one of tags (globs) or regex")
        repository = _pattern(item.get("repository", "*"), f"{where}: repository")
        tags: tuple[str, ...] = ()
        regex = None
        if "tags" in item:
            raw = item["tags"]
            raw = [raw] if isinstance(raw, str) else raw
            if not isinstance(raw, list) or not raw:
                raise ValueError(f"{where}: tags must be a glob or a non-empty list of globs")
            tags = tuple(_pattern(t, f"{where}: tags") for t in raw)
        else:
            regex = _pattern(item["regex"], f"{where}: regex")
            try:
                _regex(regex)
            except re2.error as exc:
                raise ValueError(f"{where}: regex {regex!r} is not valid RE2 ({exc})") from None
        rules.append(ImmutableRule(index, repository, tags, regex))
    return tuple(rules)


@dataclass(frozen=True)
class QuotaRule:
    """``regtui.quota[index]``: at most ``limit`` bytes in one repository, or in all the
    repositories of a namespace together."""

    index: int
    scope: str
    """``repository`` or ``namespace``."""
    name: str
    limit: int

    @property
    def label(self) -> str:
        return f"regtui.quota[{self.index}] ({self.scope} {self.name})"

    def covers(self, repository: str) -> bool:
        if self.scope == "repository":
            return repository == self.name
        return repository.startswith(self.name + "/")


def parse_quotas(value: Any) -> tuple[QuotaRule, ...]:
    """``regtui.quota``: see the module docstring."""
    rules = []
    seen: set[tuple[str, str]] = set()
    for index, item in enumerate(_rules(value, "regtui.quota")):
        where = f"rule {index}"
        unknown = sorted(set(map(str, item)) - {"repository", "namespace", "limit"})
        if unknown:
            raise ValueError(f"{where}: unknown key {unknown[0]!r} (repository, namespace, limit)")
        scopes = [s for s in ("repository", "namespace") if s in item]
        if len(scopes) != 1:
            raise ValueError(f"{where} needs exactly one of repository or namespace")
        if "limit" not in item:
            raise ValueError(f"{where} needs a limit (bytes, or a size like 10GiB)")
        scope = scopes[0]
        name = _pattern(item[scope], f"{where}: {scope}").strip("/")
        if not re.fullmatch(r"[a-z0-9._/-]+", name):
            raise ValueError(f"{where}: {scope} {name!r} is not a repository name")
        if (scope, name) in seen:
            raise ValueError(f"{where}: a second quota for {scope} {name}")
        seen.add((scope, name))
        try:
            limit = parse_size(item["limit"])
        except ValueError as exc:
            raise ValueError(f"{where}: limit {exc}") from None
        rules.append(QuotaRule(index, scope, name, limit))
    return tuple(rules)


def quota_usage(rules: tuple[QuotaRule, ...], referenced: dict[str, int]) -> list[dict[str, Any]]:
    """Each quota rule with its limit and its usage, from the referenced bytes of each
    repository as a usage report (``du``) counts them."""
    return [
        {
            "rule": rule.label,
            "scope": rule.scope,
            "name": rule.name,
            "limit_bytes": rule.limit,
            "used_bytes": sum(b for repo, b in referenced.items() if rule.covers(repo)),
        }
        for rule in rules
    ]


@dataclass(frozen=True)
class GovernConfig:
    """The rules of ``regtui.immutable`` and ``regtui.quota`` (none: nothing is governed)."""

    immutable: tuple[ImmutableRule, ...] = ()
    quotas: tuple[QuotaRule, ...] = ()

    def immutable_rule(self, repository: str, tag: str) -> ImmutableRule | None:
        """The first rule that makes ``tag`` of ``repository`` immutable, or None."""
        for rule in self.immutable:
            if rule.matches(repository, tag):
                return rule
        return None

    def quotas_for(self, repository: str) -> list[QuotaRule]:
        return [rule for rule in self.quotas if rule.covers(repository)]
