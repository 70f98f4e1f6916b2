"""Which tags to delete, and how: "keep the newest N", plans for deleting marked tags, and
retention policies (:class:`Policy`, :func:`evaluate`) for ``regtui prune`` and the Retention
screen. The policy language and the planner live in :mod:`regtui_retention` (pure, shared with
the bundled registry's scheduled retention); they are re-exported here for the app.

Deleting a manifest by digest removes *every* tag pointing at it, so marking is per tag but
the plan is per digest: when all tags of a digest are marked the manifest is deleted; when only
some are, just those tags are removed and the siblings keep the image alive.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from regtui_retention.plan import (
    EVALUATION_ORDER,
    ActionKind,
    BulkAction,
    ManifestState,
    PrunePlan,
    RegistryState,
    RepoPlan,
    RepoState,
    TagDecision,
    TagState,
    UntaggedDeletion,
    evaluate,
    freed_bytes,
    plan_bulk_delete,
    why_untag_only,
)
from regtui_retention.policy import (
    POLICY_KEYS,
    DateSource,
    Policy,
    PolicyError,
    format_duration,
    parse_duration,
    policy_from_mapping,
)
from tui.logic.fmt import count_of
from tui.logic.tags import TagRow, natural_key

__all__ = [
    "EVALUATION_ORDER",
    "POLICY_KEYS",
    "ActionKind",
    "BulkAction",
    "DateSource",
    "ManifestState",
    "Policy",
    "PolicyError",
    "PrunePlan",
    "RegistryState",
    "RepoPlan",
    "RepoState",
    "RetentionPlan",
    "TagDecision",
    "TagState",
    "UntaggedDeletion",
    "describe_bulk",
    "evaluate",
    "format_duration",
    "freed_bytes",
    "keep_newest",
    "parse_duration",
    "plan_bulk_delete",
    "policy_from_mapping",
    "why_untag_only",
]


@dataclass(frozen=True)
class RetentionPlan:
    keep: tuple[str, ...]
    """The newest ``n`` dated tags, plus every tag without a known date (never guessed)."""
    mark: tuple[str, ...]
    """Tags to propose for deletion (for review: nothing is deleted by the plan itself)."""
    protected: tuple[str, ...]
    """Older tags left unmarked because they share a digest with a kept tag."""


def keep_newest(rows: Iterable[TagRow], n: int) -> RetentionPlan:
    """Mark all but the ``n`` newest tags (by image creation date).

    Tags whose date is unknown are kept. A tag older than the cut but pointing at the same
    digest as a kept tag is *protected* rather than marked: it is the same image, and deleting
    that digest would delete the kept tag too.
    """
    if n < 0:
        raise ValueError("n must be zero or more")
    items = list(rows)
    dated = sorted(
        (row for row in items if row.created is not None),
        key=lambda row: (row.created, natural_key(row.tag)),
        reverse=True,
    )
    undated = [row for row in items if row.created is None]
    kept_rows = dated[:n] + undated
    kept_digests = {row.digest for row in kept_rows if row.digest}
    mark: list[str] = []
    protected: list[str] = []
    for row in dated[n:]:
        if row.digest and row.digest in kept_digests:
            protected.append(row.tag)
        else:
            mark.append(row.tag)
    return RetentionPlan(
        keep=tuple(row.tag for row in kept_rows),
        mark=tuple(sorted(mark, key=natural_key)),
        protected=tuple(sorted(protected, key=natural_key)),
    )


def describe_bulk(repository: str, actions: Sequence[BulkAction]) -> str:
    """The confirmation text: every digest and every tag, grouped by what happens to them."""
    deletes = [a for a in actions if a.kind is ActionKind.DELETE_MANIFEST]
    untags = [a for a in actions if a.kind is ActionKind.UNTAG]
    lines = [f"Repository: {repository}", ""]
    if deletes:
        lines.append(f"Delete {count_of(len(deletes), 'manifest')} (every tag on them goes):")
        for action in deletes:
            lines.append(f"  • {action.digest}")
            lines.append(f"      tags: {', '.join(action.tags)}")
    if untags:
        if deletes:
            lines.append("")
        stay = "stays" if len(untags) == 1 else "stay"
        lines.append(
            f"Remove tags only, {count_of(len(untags), 'image')} {stay} (other tags point at them):"
        )
        for action in untags:
            lines.append(f"  • {action.digest}")
            lines.append(f"      remove: {', '.join(action.tags)}")
            lines.append(f"      keep:   {', '.join(action.kept_siblings)}")
    lines += ["", "Blobs are freed only by garbage collection (g on the registry screen)."]
    return "\n".join(lines)
