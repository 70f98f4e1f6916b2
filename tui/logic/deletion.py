"""What a confirm dialog says before a manifest is deleted by digest (pure, unit-testable).

The repository screen and the image screen both show it: every tag that disappears with the
manifest, the indexes that list it (deleting a platform manifest breaks them), the manifest a
referrer refers to, the platform manifests of an index (they stay) and the referrers left
dangling.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tui.client import DeletePlan, Platform
from tui.client.models import INDEX_MEDIA_TYPES
from tui.logic.fmt import count_of, short_digest
from tui.logic.words import join_and

GC_NOTE = "Blobs are freed only by garbage collection (g on the registry screen)."
"""Where ``g`` collects: the bundled registry (or ``--storage DIR``) lets regtui run GC."""


def gc_note(available: bool, unavailable_reason: str = "") -> str:
    """The delete dialog's last line: points at ``g`` only where ``g`` can collect; elsewhere
    says why not (the registry's refusal, or that it has no GC API) and what to run instead."""
    if available:
        return GC_NOTE
    reason = unavailable_reason.strip() or "this registry offers no garbage collection to regtui."
    return f"Blobs are freed only by garbage collection, which regtui cannot run here: {reason}"


DELETES_DISABLED = (
    "Deletes are disabled on this registry (it answered 405 Method Not Allowed): "
    "nothing was deleted."
)
"""The one notification when the registry refuses every DELETE."""


@dataclass(frozen=True)
class ParentIndex:
    """An index that lists the manifest to delete."""

    digest: str
    tags: tuple[str, ...]
    platform: Platform | None = None
    """The platform under which the index lists the manifest."""


@dataclass(frozen=True)
class SubjectRef:
    """The manifest that a referrer (a signature, an SBOM) refers to."""

    digest: str
    media_type: str
    tags: tuple[str, ...]


@dataclass(frozen=True)
class DeleteContext:
    """A :class:`DeletePlan` and everything else that points at the manifest."""

    plan: DeletePlan
    parents: tuple[ParentIndex, ...] = ()
    """Indexes found (through the repository's tags, and the index it was opened from)."""
    subject: SubjectRef | None = None
    artifact_type: str | None = None
    """Set when the manifest is an artifact (a referrer): it names what kind."""
    indexes_checked: bool = False
    """True when the repository's indexes were searched for the manifest."""
    indexes_truncated: bool = False
    """True when there were too many indexes to read them all."""


def tags_phrase(tags: Sequence[str]) -> str:
    """``tags 3.12, latest``, ``tag latest`` or ``untagged``."""
    if not tags:
        return "untagged"
    return f"{'tag' if len(tags) == 1 else 'tags'} {', '.join(tags)}"


def tagged_sentence(tags: Sequence[str], repo: str | None = None) -> str:
    """``Tagged 3.12, 3.12-slim and latest`` (``repo:tag`` each when ``repo`` is given), or
    ``Untagged``; no full stop."""
    if not tags:
        return "Untagged"
    return "Tagged " + join_and([f"{repo}:{tag}" if repo else tag for tag in tags])


def parent_sentence(parent: ParentIndex, repo: str | None = None) -> str:
    """What the dialog (and ``regtui rm``) says of an index that lists the manifest:
    ``Tagged 3.12 and latest; lists it as linux/amd64.``"""
    where = f"; lists it as {parent.platform}" if parent.platform else ""
    return f"{tagged_sentence(parent.tags, repo)}{where}."


def breaks_sentence(count: int) -> str:
    """The warning above the indexes that list a manifest about to go."""
    if count == 1:
        return (
            "An index lists it. Deleting it BREAKS that index: pulling its platform through it "
            "will fail (manifest unknown):"
        )
    return (
        f"{count} indexes list it. Deleting it BREAKS them: pulling their platform through them "
        "will fail (manifest unknown):"
    )


def delete_title(context: DeleteContext) -> str:
    digest = short_digest(context.plan.digest)
    if context.artifact_type is not None and context.subject is not None:
        return f"Delete referrer {digest}?"
    platforms = {str(parent.platform) for parent in context.parents if parent.platform}
    if len(platforms) == 1:
        return f"Delete the {platforms.pop()} manifest {digest}?"
    return f"Delete manifest {digest}?"


def describe_delete(context: DeleteContext, *, gc: str = GC_NOTE) -> tuple[str, str]:
    """``(title, body)`` of the confirm dialog: exactly what goes and what it leaves behind;
    ``gc`` is its last line (:func:`gc_note`)."""
    plan = context.plan
    lines = [
        f"Repository: {plan.repo}",
        f"Manifest:   {plan.digest}",
        f"Type:       {context.artifact_type or plan.media_type}",
        "",
    ]
    if plan.tags:
        count = len(plan.tags)
        lines.append(
            f"{'This tag points' if count == 1 else f'These {count} tags point'} at it "
            f"and will {'disappear' if count == 1 else 'ALL disappear'}:"
        )
        lines += [f"  • {tag}" for tag in plan.tags]
    else:
        lines.append("No tag points at it.")
    if context.parents:
        lines += ["", breaks_sentence(len(context.parents))]
        for parent in context.parents:
            lines.append(f"  • index {parent.digest}")
            lines.append(f"    {parent_sentence(parent)}")
    elif (
        context.indexes_checked
        and context.subject is None
        and plan.media_type not in INDEX_MEDIA_TYPES
    ):
        lines += ["", "No index of this repository lists it (indexes found through tags)."]
    if context.indexes_truncated:
        lines.append("  (Too many indexes to read them all: others may list it too.)")
    if context.subject is not None:
        subject = context.subject
        lines += [
            "",
            "It refers to this manifest, which stays:",
            f"  • {subject.digest}",
            f"    {tagged_sentence(subject.tags)}.",
        ]
    if plan.children:
        lines += [
            "",
            f"Its {count_of(len(plan.children), 'platform manifest')} "
            f"{'stays' if len(plan.children) == 1 else 'stay'}, untagged:",
        ]
        for child in plan.children:  # two lines each: a digest alone fits in 80 columns
            lines += [f"  • {child.platform or 'unknown platform'}", f"    {child.digest}"]
    if plan.referrers:
        count = len(plan.referrers)
        lines += [
            "",
            f"{count_of(count, 'referrer')} will point at nothing:",
        ]
        for ref in plan.referrers:
            lines += [f"  • {ref.artifact_type or ref.media_type}", f"    {ref.digest}"]
    lines += ["", gc]
    return delete_title(context), "\n".join(lines)
