"""``regtui prune``: retention by rule, on any registry or offline on a storage directory.

::

    regtui prune HOST [--policy FILE] [rule flags] [--dry-run | --check] [--yes] [--gc] [--json]
    regtui prune --root DIR | --config FILE [rule flags] [--dry-run | --check] [--yes] [--gc]

The plan comes first (per repository: the tags that go, the tags that stay and the rule keeping
each, siblings on the same digest, what happens to each digest, the bytes freed, exact or
estimated); then, unless it is a dry run, it is applied: a digest is deleted only when every tag
on it goes, otherwise only the going tags are removed; then ``--gc`` collects the garbage and
prints the storage before and after.

Exit codes: 0 done, or nothing to do; 1 an error (some deletion failed, the registry refused);
2 a usage error (bad flags or policy, or a deletion not confirmed with --yes where nobody can
be asked); 3 with ``--check`` only: the plan is not empty (a dry run for cron and CI).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from tui.client import RegistryClient, RegistryClientError
from tui.commands import _common as c
from tui.commands.access import add_access_arguments
from tui.commands.prune_report import confirm, final_report, gc_summary, print_outcomes, print_plan
from tui.data.retention import apply_plan, load_policy, read_state
from tui.logic.retention import (
    EVALUATION_ORDER,
    DateSource,
    Policy,
    PolicyError,
    RegistryState,
    evaluate,
    parse_duration,
)


def register(subparsers: Any) -> None:
    prune = subparsers.add_parser(
        "prune",
        help="delete tags and manifests by retention rules (see the plan with --dry-run)",
        description=(
            "Apply retention rules to a registry (HOST, over the API) or to a storage\n"
            "directory (--root DIR or --config FILE, offline, exact bytes). Rules come from\n"
            "--policy FILE (YAML) and the flags (a flag replaces the file's value). A tag that\n"
            "any keep rule matches is never deleted; a digest is deleted only when every tag\n"
            "on it goes, otherwise only the going tags are removed. Each change is checked\n"
            "right before it is made: a tag pushed again since the plan is left alone, a\n"
            "digest that gained a tag is only untagged. Regular expressions run on RE2 (no\n"
            "lookaround, no backreferences), in time linear in the tag."
        ),
        epilog="Evaluation order:\n" + EVALUATION_ORDER + "\n\nExit codes: 0 done or nothing "
        "to do, 1 error, 2 usage, 3 (--check) the plan is not empty.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    prune.add_argument("host", metavar="HOST", nargs="?", help="registry, e.g. 127.0.0.1:5000")
    where = prune.add_argument_group("offline (a stopped or read-only registry's storage)")
    where.add_argument("--root", metavar="DIR", help="the registry's storage root")
    where.add_argument("--config", metavar="FILE", help="a registry config.yml naming the root")
    where.add_argument(
        "--force", action="store_true", help="apply even though a registry seems to be writing"
    )
    rules = prune.add_argument_group("rules (override the policy file)")
    rules.add_argument("--policy", metavar="FILE", help="a YAML policy file (see the README)")
    rules.add_argument(
        "--keep-newest", type=int, metavar="N", help="keep the N newest tags of each repository"
    )
    rules.add_argument(
        "--keep-tag", action="append", metavar="REGEX", help="keep tags matching (repeatable)"
    )
    rules.add_argument(
        "--keep-semver",
        action="append",
        metavar="RANGE",
        help="keep versions in a range, e.g. '>=1.2 <2' (repeatable)",
    )
    rules.add_argument(
        "--pulled-within",
        metavar="DURATION",
        help="keep tags whose image was pulled this recently (bundled registry, --root)",
    )
    rules.add_argument(
        "--keep-newest-pulled",
        type=int,
        metavar="N",
        help="keep the N most recently pulled tags of each repository (bundled registry)",
    )
    rules.add_argument(
        "--older-than", metavar="DURATION", help="delete tags older than this (30d, 12h, 2w)"
    )
    rules.add_argument(
        "--untagged-older-than",
        metavar="DURATION",
        help="delete untagged manifests pushed longer ago (bundled registry, --root)",
    )
    rules.add_argument(
        "--by", choices=[d.value for d in DateSource], help="which date: created or pushed"
    )
    rules.add_argument(
        "--repo", action="append", metavar="PATTERN", help="only these repositories (glob)"
    )
    rules.add_argument(
        "--exclude", action="append", metavar="PATTERN", help="never these repositories (glob)"
    )
    run = prune.add_argument_group("running")
    run.add_argument("--dry-run", "-n", action="store_true", help="show the plan, change nothing")
    run.add_argument(
        "--check", action="store_true", help="a dry run that exits 3 when the plan is not empty"
    )
    run.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    run.add_argument("--gc", action="store_true", help="collect garbage afterwards")
    run.add_argument(
        "--gc-grace",
        metavar="DURATION",
        help="GC's grace period (default: the registry's; blobs written more recently stay)",
    )
    run.add_argument("--json", action="store_true", help="machine-readable output")
    group = add_access_arguments(prune)
    group.add_argument("--concurrency", type=int, default=8, help="repositories read at once")
    prune.set_defaults(handler=main)


# ---------------------------------------------------------------------- plumbing


def _duration(text: str | None, flag: str) -> float | None:
    if text is None:
        return None
    try:
        return parse_duration(text)
    except PolicyError as exc:
        raise c.UsageError(f"{flag}: {exc}") from None


def build_policy(args: argparse.Namespace) -> Policy:
    """The policy file, with every given flag replacing the file's value."""
    try:
        policy = load_policy(args.policy) if args.policy else Policy()
        changes: dict[str, Any] = {}
        if args.keep_newest is not None:
            changes["keep_newest"] = args.keep_newest
        if args.keep_tag:
            changes["keep_tags"] = tuple(args.keep_tag)
        if args.keep_semver:
            changes["keep_semver"] = tuple(args.keep_semver)
        if args.older_than is not None:
            changes["delete_older_than"] = _duration(args.older_than, "--older-than")
        if args.pulled_within is not None:
            changes["pulled_within"] = _duration(args.pulled_within, "--pulled-within")
        if args.keep_newest_pulled is not None:
            changes["keep_newest_pulled"] = args.keep_newest_pulled
        if args.untagged_older_than is not None:
            changes["delete_untagged_older_than"] = _duration(
                args.untagged_older_than, "--untagged-older-than"
            )
        if args.by is not None:
            changes["by"] = DateSource(args.by)
        if args.repo:
            changes["include"] = tuple(args.repo)
        if args.exclude:
            changes["exclude"] = tuple(args.exclude)
        policy = replace(policy, **changes)
    except PolicyError as exc:
        raise c.UsageError(str(exc)) from None
    if not policy.deletes_tags and policy.delete_untagged_older_than is None:
        raise c.UsageError(
            "no rule would delete anything: give a keep rule (--keep-newest, --keep-tag, "
            "--keep-semver, --pulled-within, --keep-newest-pulled), --older-than or "
            "--untagged-older-than (or a --policy file)"
        )
    return policy


def main(args: argparse.Namespace) -> int:
    offline = args.root is not None or args.config is not None
    try:
        if offline and args.host is not None:
            raise c.UsageError("prune takes HOST or --root/--config, not both")
        if not offline and args.host is None:
            raise c.UsageError("prune needs HOST (over the API) or --root DIR / --config FILE")
        if args.root is not None and args.config is not None:
            raise c.UsageError("give --root or --config, not both")
        if args.check:
            args.dry_run = True
        policy = build_policy(args)
        if not args.dry_run and not args.yes:
            if args.json:
                raise c.UsageError("--json without --dry-run needs --yes")
            if args.password_stdin or not sys.stdin.isatty():
                raise c.UsageError("refusing to delete without --yes: nobody to ask on stdin")
        if offline:
            # Imported only here: it loads the server's storage code, which online pruning
            # does without (it imports nothing of this module: no circle).
            from tui.commands import prune_offline

            return prune_offline.run(args, policy)
        return asyncio.run(_online(args, policy))
    except c.UsageError as exc:
        c.fail(str(exc))
        return c.EXIT_USAGE
    except RegistryClientError as exc:
        c.fail(str(exc))
        return c.EXIT_ERROR


def _client(args: argparse.Namespace) -> RegistryClient:
    return c.client(
        args,
        c.host_registry(args.host)[1],
        max_concurrency=max(1, args.concurrency) * 2,
        fast_after=0,  # reads every tag's manifest and config: aiohttp's pool at once
    )


async def _online(args: argparse.Namespace, policy: Policy) -> int:
    async with _client(args) as client:
        state = await read_state(client, parallel=args.concurrency)
        plan = evaluate(policy, state, datetime.now(UTC))
        if policy.by is DateSource.PUSHED and state.source != "storage":
            c.warn(
                "this registry does not tell when tags were pushed: no tag has "
                "a push date, so none is old enough to go and keep_newest keeps them all "
                "(use --by created)"
            )
        if policy.uses_pull_times and state.source != "storage":
            c.warn(
                "this registry does not tell when images were pulled: pulled_within and "
                "keep_newest_pulled keep no tag here (the bundled registry records pulls)"
            )
        report: dict[str, Any] = {"registry": args.host, "dry_run": args.dry_run}
        if not args.json:
            print_plan(plan, state)
        if args.dry_run or plan.is_empty:
            return final_report(args, plan, report, [], None)
        if not args.yes and not confirm(plan):
            print("Nothing deleted.", file=sys.stderr)
            return c.EXIT_ERROR
        outcomes = await apply_plan(client, plan)
        if not args.json:
            print_outcomes(outcomes)
        gc = await _online_gc(client, args, state) if args.gc else None
    return final_report(args, plan, report, outcomes, gc)


async def _online_gc(
    client: RegistryClient, args: argparse.Namespace, state: RegistryState
) -> dict[str, Any] | None:
    from tui.client import ext

    if state.source != "storage" or not await ext.supports_extension(client):
        c.warn(
            "this registry offers no garbage collection over the API: run its "
            "own (registry garbage-collect) or `regtui gc --root DIR` on its stopped storage"
        )
        return None
    result = await ext.collect_garbage(
        client, dry_run=False, grace_period=_duration(args.gc_grace, "--gc-grace")
    )
    return gc_summary(result.before.total_bytes, result.after.total_bytes)
