"""Which tags to delete, and how: "keep the newest N" and plans for deleting marked tags.

Deleting a manifest by digest removes *every* tag pointing at it, so marking is per tag but
the plan is per digest: when all tags of a digest are marked the manifest is deleted; when only
some are, just those tags are removed and the siblings keep the image alive.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from tui.logic.tags import TagRow, natural_key


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


class ActionKind(enum.StrEnum):
    DELETE_MANIFEST = "delete manifest"
    UNTAG = "untag"


@dataclass(frozen=True)
class BulkAction:
    kind: ActionKind
    digest: str
    tags: tuple[str, ...]
    """For DELETE_MANIFEST: every tag that disappears; for UNTAG: the tags removed."""
    kept_siblings: tuple[str, ...] = ()
    """For UNTAG: tags on the same digest that stay."""


def plan_bulk_delete(marked: Collection[str], rows: Iterable[TagRow]) -> list[BulkAction]:
    """Turn marked tags into per-digest actions (see the module docstring).

    Marked tags whose digest is still unknown cannot be planned: they raise ``ValueError``
    so the screen can tell the user to wait for the details.
    """
    by_digest: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        if row.digest:
            by_digest[row.digest].append(row.tag)
        elif row.tag in marked:
            raise ValueError(f"the digest of {row.tag!r} is not known yet")
    actions: list[BulkAction] = []
    for digest, tags in by_digest.items():
        chosen = sorted((tag for tag in tags if tag in marked), key=natural_key)
        if not chosen:
            continue
        others = sorted((tag for tag in tags if tag not in marked), key=natural_key)
        if others:
            actions.append(BulkAction(ActionKind.UNTAG, digest, tuple(chosen), tuple(others)))
        else:
            actions.append(BulkAction(ActionKind.DELETE_MANIFEST, digest, tuple(chosen)))
    actions.sort(key=lambda action: natural_key(action.tags[0]))
    return actions


def describe_bulk(repository: str, actions: Sequence[BulkAction]) -> str:
    """The confirmation text: every digest and every tag, grouped by what happens to them."""
    deletes = [a for a in actions if a.kind is ActionKind.DELETE_MANIFEST]
    untags = [a for a in actions if a.kind is ActionKind.UNTAG]
    lines = [f"Repository: {repository}", ""]
    if deletes:
        lines.append(f"Delete {len(deletes)} manifest(s) (every tag on them goes):")
        for action in deletes:
            lines.append(f"  • {action.digest}")
            lines.append(f"      tags: {', '.join(action.tags)}")
    if untags:
        if deletes:
            lines.append("")
        lines.append(f"Remove tags only, {len(untags)} image(s) stay (other tags point at them):")
        for action in untags:
            lines.append(f"  • {action.digest}")
            lines.append(f"      remove: {', '.join(action.tags)}")
            lines.append(f"      keep:   {', '.join(action.kept_siblings)}")
    lines += ["", "Blobs are freed only by garbage collection (g on the registry screen)."]
    return "\n".join(lines)
