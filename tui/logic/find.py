"""What ``regtui find`` matches (pure): tag patterns, and how a manifest uses a digest.

A tag pattern is a shell glob (``1.*``, ``v[0-9]*``) or, with ``regex=True``, a regular
expression in RE2's syntax (:mod:`regtui_retention.patterns`: linear time, no lookaround or
backreferences); both must match the whole tag. A digest is matched against a manifest in four ways:
the tag points at it (``tag``), the tag points at an index that has it as a child
(``index_child``), or the image uses it as its config (``config``) or as a layer (``layer``).
"""

from __future__ import annotations

import enum
import fnmatch
import re
from dataclasses import dataclass
from typing import Any

from regtui_retention.patterns import PatternError, TagRegex
from tui.client.models import ImageIndex, ImageManifest, Manifest, Platform
from tui.logic.imagediff import platform_json

__all__ = [
    "FindHit",
    "HitKind",
    "InvalidPatternError",
    "TagPattern",
    "digest_uses",
]


class InvalidPatternError(ValueError):
    """The pattern is not a regular expression RE2 accepts (a usage error)."""


class TagPattern:
    """A whole-tag match: a glob, or an anchored regular expression."""

    def __init__(self, pattern: str, *, regex: bool = False) -> None:
        self.pattern = pattern
        self.regex = regex
        self._glob: re.Pattern[str] | None = None
        self._regex: TagRegex | None = None
        if regex:
            try:
                self._regex = TagRegex(pattern)  # RE2: linear in the tag, whatever the pattern
            except PatternError as error:
                raise InvalidPatternError(str(error)) from None
        else:
            # fnmatch's translation never backtracks badly (it makes each * atomic)
            self._glob = re.compile(fnmatch.translate(pattern))

    def matches(self, tag: str) -> bool:
        if self._regex is not None:
            return self._regex.fullmatch(tag)
        assert self._glob is not None
        return self._glob.fullmatch(tag) is not None


class HitKind(enum.StrEnum):
    TAG = "tag"
    """A tag matches the pattern (or points at the digest)."""
    INDEX_CHILD = "index_child"
    """The tag points at an index that has the digest as one of its manifests."""
    CONFIG = "config"
    LAYER = "layer"


@dataclass(frozen=True)
class FindHit:
    kind: HitKind
    repository: str
    tag: str
    digest: str | None = None
    """The manifest the tag points at (for a hit inside an index: the child's digest)."""
    platform: Platform | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": str(self.kind),
            "repository": self.repository,
            "tag": self.tag,
            "digest": self.digest,
            "platform": platform_json(self.platform),
        }


def digest_uses(wanted: str, manifest: Manifest) -> list[HitKind]:
    """How ``manifest`` itself uses ``wanted``: as config, as a layer, as an index child."""
    found: list[HitKind] = []
    if isinstance(manifest, ImageManifest):
        if manifest.config.digest == wanted:
            found.append(HitKind.CONFIG)
        if any(layer.digest == wanted for layer in manifest.layers):
            found.append(HitKind.LAYER)
    elif isinstance(manifest, ImageIndex) and any(
        child.digest == wanted for child in manifest.manifests
    ):
        found.append(HitKind.INDEX_CHILD)
    return found
