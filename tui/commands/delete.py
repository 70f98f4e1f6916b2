"""Deleting commands: ``rm REF`` (a manifest by digest, with every tag on it) and ``untag REF``
(one tag; the other tags on the image stay)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from tui.commands import _common as c

if TYPE_CHECKING:
    from tui.logic.deletion import DeleteContext, SubjectRef


def register(subparsers: Any) -> None:
    common = c.common_parser()
    rm = subparsers.add_parser(
        "rm", parents=[common], help="delete a manifest by digest (every tag on it goes too)"
    )
    rm.add_argument("ref", metavar="REF", help="HOST/REPO@DIGEST or HOST/REPO:TAG")
    rm.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    rm.add_argument("--dry-run", "-n", action="store_true", help="say what would be removed, only")
    rm.set_defaults(handler=c.handler(_rm))

    untag = subparsers.add_parser(
        "untag", parents=[common], help="remove one tag; other tags on the image stay"
    )
    untag.add_argument("ref", metavar="REF", help="HOST/REPO:TAG")
    untag.add_argument(
        "--dry-run", "-n", action="store_true", help="say what would be removed, only"
    )
    untag.set_defaults(handler=c.handler(_untag))


def _confirm(question: str) -> bool:
    print(f"{question} [y/N] ", end="", flush=True, file=sys.stderr)
    answer = sys.stdin.readline().strip().lower()
    return answer in ("y", "yes")


async def _rm(args: argparse.Namespace) -> int:
    from tui.client import parse_reference

    ref = parse_reference(args.ref)
    if ref.digest is None and ref.tag is None:
        raise c.UsageError(f"{args.ref!r}: say which manifest, HOST/REPO@DIGEST or HOST/REPO:TAG")
    if not (args.yes or args.dry_run or args.json) and not sys.stdin.isatty():
        raise c.UsageError("refusing to delete without --yes: stdin is not a terminal")
    async with c.client(args, c.registry_of(ref)) as client:
        digest = ref.digest or (await client.head_manifest(ref.repository, ref.ref)).digest
        # The app's delete dialog's search: tags, the indexes that list it, its subject.
        from tui.data.deletion import plan_manifest_delete

        context = await plan_manifest_delete(client, ref.repository, digest)
        data = {"dry_run": args.dry_run, "deleted": False, **plan_json(ref.registry, context)}
        if not args.json:
            _print_plan(context, args.dry_run)
        if args.dry_run:
            if args.json:
                c.print_json(data)
            return c.EXIT_OK
        if not args.yes:
            if args.json:
                raise c.UsageError("--json without --dry-run needs --yes")
            if not _confirm(f"Delete {ref.repository}@{c.short_digest(digest)}?"):
                print("Nothing deleted.", file=sys.stderr)
                return c.EXIT_ERROR
        await client.delete_manifest(ref.repository, digest)
    if args.json:
        c.print_json({**data, "deleted": True})
    else:
        c.say(f"Deleted {ref.repository}@{digest}")
    return c.EXIT_OK


def plan_json(registry: str, context: DeleteContext) -> dict[str, Any]:
    """``rm --json``: what goes, and what else points at it (``indexes`` that list it break)."""
    plan, subject = context.plan, context.subject
    return {
        "registry": registry,
        "repository": plan.repo,
        "digest": plan.digest,
        "media_type": plan.media_type,
        "size": plan.size,
        "tags": list(plan.tags),
        "children": [
            {"digest": d.digest, "platform": c.platform_json(d.platform)} for d in plan.children
        ],
        "referrers": [
            {"digest": r.digest, "media_type": r.media_type, "artifact_type": r.artifact_type}
            for r in plan.referrers
        ],
        "indexes": [
            {"digest": p.digest, "tags": list(p.tags), "platform": c.platform_json(p.platform)}
            for p in context.parents
        ],
        "indexes_truncated": context.indexes_truncated,
        "subject": None
        if subject is None
        else {
            "digest": subject.digest,
            "media_type": subject.media_type,
            "tags": list(subject.tags),
        },
        "artifact_type": context.artifact_type,
    }


def _subject_json(subject: SubjectRef) -> dict[str, Any]:
    return {"digest": subject.digest, "media_type": subject.media_type, "tags": list(subject.tags)}


def _print_plan(context: DeleteContext, dry_run: bool) -> None:
    from tui.logic.deletion import breaks_sentence, parent_sentence, tagged_sentence
    from tui.logic.fmt import count_of, plural

    plan = context.plan
    verb = "Would delete" if dry_run else "Will delete"
    c.say(f"{verb} manifest {plan.repo}@{plan.digest} ({c.media_kind(plan.media_type)})")
    if plan.tags:
        c.say(f"  {plural('tag', len(plan.tags))} removed with it: {', '.join(plan.tags)}")
    else:
        print("  no tag points at it")
    if context.parents:
        print(f"  {breaks_sentence(len(context.parents))}")
        for parent in context.parents:
            print(f"    index {parent.digest}")
            print(f"      {parent_sentence(parent, plan.repo)}")
    if context.indexes_truncated:
        print("  (too many indexes to read them all: others may list it too)")
    if context.subject is not None:
        subject = context.subject
        print(f"  it refers to {subject.digest}, which stays")
        print(f"      {tagged_sentence(subject.tags, plan.repo)}.")
    if plan.children:
        stay = "stays" if len(plan.children) == 1 else "stay"
        print(
            f"  its {count_of(len(plan.children), 'platform manifest')} {stay}, untagged, until GC:"
        )
        for child in plan.children:
            c.say(f"    {child.platform or '-'}  {child.digest}")
    if plan.referrers:
        count = len(plan.referrers)
        print(f"  {count_of(count, 'referrer')} (signatures, SBOMs) will point at nothing:")
        for referrer in plan.referrers:
            c.say(f"    {referrer.digest}  {referrer.artifact_type or referrer.media_type}")
    print("  blobs are freed only by garbage collection")


async def _untag(args: argparse.Namespace) -> int:
    from tui.client import parse_reference

    ref = parse_reference(args.ref)
    if ref.tag is None or ref.digest is not None:
        raise c.UsageError(f"{args.ref!r}: untag takes HOST/REPO:TAG")
    async with c.client(args, c.registry_of(ref)) as client:
        result = await client.untag(ref.repository, ref.tag, dry_run=args.dry_run)
    if args.json:
        c.print_json(
            {
                "dry_run": args.dry_run,
                "registry": ref.registry,
                "repository": result.repo,
                "tag": result.tag,
                "digest": result.digest,
                "method": result.method,
                "sibling_tags": list(result.sibling_tags),
                "placeholder_digest": result.placeholder_digest,
            }
        )
        return c.EXIT_OK
    verb = "Would remove" if args.dry_run else "Removed"
    c.say(f"{verb} tag {ref.repository}:{ref.tag} (was {result.digest})")
    if result.sibling_tags:
        c.say(f"  tags kept on that manifest: {', '.join(result.sibling_tags)}")
    else:
        print("  no other tag points at that manifest: it stays, untagged, until deleted")
    if result.method == "placeholder":
        print(
            "  the registry cannot delete tags: moved it onto a placeholder manifest "
            f"{c.short_digest(result.placeholder_digest)} and deleted that"
        )
    return c.EXIT_OK
