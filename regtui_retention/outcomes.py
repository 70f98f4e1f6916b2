"""What applying a plan did, change by change (pure): one :class:`ApplyOutcome` per digest."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["ApplyOutcome", "apply_note", "listed"]


@dataclass(frozen=True)
class ApplyOutcome:
    repo: str
    digest: str
    action: str
    """``delete``, ``untag``, ``skip`` or ``delete untagged``."""
    tags: tuple[str, ...]
    error: str | None = None
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        """In the commands' JSON convention (``repository``, not ``repo``)."""
        fields = asdict(self)
        return {"repository": fields.pop("repo"), **fields, "tags": list(self.tags)}


def listed(tags: Iterable[str]) -> str:
    return ", ".join(sorted(tags))


def apply_note(left_alone: Sequence[str], newcomers: Sequence[str]) -> str | None:
    """What an outcome says about tags that changed between the plan and the change."""
    parts = []
    if newcomers:
        parts.append(f"tagged since the plan ({listed(newcomers)}): only untagged")
    if left_alone:
        parts.append(f"moved or deleted since the plan, left alone: {listed(left_alone)}")
    return "; ".join(parts) or None
