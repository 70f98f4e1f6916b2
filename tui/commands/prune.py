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
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tui.client import RegistryClient, RegistryClientError
from tui.client.reference import parse_registry
from tui.commands._common import say
from tui.commands.access import PasswordError, add_access_arguments, read_password
from tui.data.retention import ApplyOutcome, apply_plan, load_policy, read_state
from tui.logic.escape import visible
from tui.logic.fmt import count_of, human_size, short_digest
from tui.logic.retention import (
    EVALUATION_ORDER,
    ActionKind,
    DateSource,
    Policy,
    PolicyError,
    PrunePlan,
    RegistryState,
    evaluate,
    parse_duration,
    why_untag_only,
)

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_PLAN_NOT_EMPTY = 0, 1, 2, 3


class UsageError(Exception):
    """A mistake in the command line or the policy: exit code 2."""


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


def _fail(message: str) -> None:
    print(f"regtui: error: {visible(message)}", file=sys.stderr)


def _size(n: int) -> str:
    return human_size(n)


def _duration(text: str | None, flag: str) -> float | None:
    if text is None:
        return None
    try:
        return parse_duration(text)
    except PolicyError as exc:
        raise UsageError(f"{flag}: {exc}") from None


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
        raise UsageError(str(exc)) from None
    if not policy.deletes_tags and policy.delete_untagged_older_than is None:
        raise UsageError(
            "no rule would delete anything: give a keep rule (--keep-newest, --keep-tag, "
            "--keep-semver), --older-than or --untagged-older-than (or a --policy file)"
        )
    return policy


def main(args: argparse.Namespace) -> int:
    offline = args.root is not None or args.config is not None
    try:
        if offline and args.host is not None:
            raise UsageError("prune takes HOST or --root/--config, not both")
        if not offline and args.host is None:
            raise UsageError("prune needs HOST (over the API) or --root DIR / --config FILE")
        if args.root is not None and args.config is not None:
            raise UsageError("give --root or --config, not both")
        if args.check:
            args.dry_run = True
        policy = build_policy(args)
        if not args.dry_run and not args.yes:
            if args.json:
                raise UsageError("--json without --dry-run needs --yes")
            if args.password_stdin or not sys.stdin.isatty():
                raise UsageError("refusing to delete without --yes: nobody to ask on stdin")
        if offline:
            from tui.commands import prune_offline  # the bridge into the server's storage code

            return prune_offline.run(args, policy)
        return asyncio.run(_online(args, policy))
    except UsageError as exc:
        _fail(str(exc))
        return EXIT_USAGE
    except RegistryClientError as exc:
        _fail(str(exc))
        return EXIT_ERROR


def _client(args: argparse.Namespace) -> RegistryClient:
    scheme, host = parse_registry(args.host)
    try:
        password = read_password(args)
    except PasswordError as exc:
        raise UsageError(str(exc)) from None
    return RegistryClient(
        f"{scheme}://{host}" if scheme else host,
        username=args.username,
        password=password,
        insecure=args.insecure,
        ca_cert=args.ca_cert,
        timeout=args.timeout,
        max_concurrency=max(1, args.concurrency) * 2,
        fast_after=0,  # reads every tag's manifest and config: aiohttp's pool at once
    )


def confirm(plan: PrunePlan) -> bool:
    going = sum(len(r.going) for r in plan.repos)
    deleted = sum(len(r.deleted_digests) for r in plan.repos)
    question = f"Remove {count_of(going, 'tag')} and delete {count_of(deleted, 'manifest')}?"
    print(f"{question} [y/N] ", end="", flush=True, file=sys.stderr)
    return sys.stdin.readline().strip().lower() in ("y", "yes")


async def _online(args: argparse.Namespace, policy: Policy) -> int:
    async with _client(args) as client:
        state = await read_state(client, parallel=args.concurrency)
        plan = evaluate(policy, state, datetime.now(UTC))
        if policy.by is DateSource.PUSHED and state.source != "storage":
            print(
                "regtui: warning: this registry does not tell when tags were pushed: no tag has "
                "a push date, so none is old enough to go and keep_newest keeps them all "
                "(use --by created)",
                file=sys.stderr,
            )
        report: dict[str, Any] = {"registry": args.host, "dry_run": args.dry_run}
        if not args.json:
            print_plan(plan, state)
        if args.dry_run or plan.is_empty:
            return finish(args, plan, report, [], None)
        if not args.yes and not confirm(plan):
            print("Nothing deleted.", file=sys.stderr)
            return EXIT_ERROR
        outcomes = await apply_plan(client, plan)
        if not args.json:
            print_outcomes(outcomes)
        gc = await _online_gc(client, args, state) if args.gc else None
    return finish(args, plan, report, outcomes, gc)


async def _online_gc(
    client: RegistryClient, args: argparse.Namespace, state: RegistryState
) -> dict[str, Any] | None:
    from tui.client import ext

    if state.source != "storage" or not await ext.supports_extension(client):
        print(
            "regtui: warning: this registry offers no garbage collection over the API: run its "
            "own (registry garbage-collect) or `regtui gc --root DIR` on its stopped storage",
            file=sys.stderr,
        )
        return None
    result = await ext.collect_garbage(
        client, dry_run=False, grace_period=_duration(args.gc_grace, "--gc-grace")
    )
    return gc_summary(result.before.total_bytes, result.after.total_bytes)


def gc_summary(before: int, after: int) -> dict[str, Any]:
    """Storage before and after GC; ``bytes_freed`` is their difference (blob bytes)."""
    return {"before_bytes": before, "after_bytes": after, "bytes_freed": before - after}


def finish(
    args: argparse.Namespace,
    plan: PrunePlan,
    report: dict[str, Any],
    outcomes: Sequence[ApplyOutcome],
    gc: dict[str, Any] | None,
) -> int:
    failed = [o for o in outcomes if o.error]
    if args.json:
        report.update(
            plan=plan.to_json(),
            applied=[_outcome_json(o) for o in outcomes],
            gc=gc,
        )
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif gc is not None:
        print(
            f"\nGC: storage {_size(gc['before_bytes'])} -> {_size(gc['after_bytes'])} "
            f"(freed {_size(gc['bytes_freed'])}; the plan said {_size(plan.bytes_freed)})"
        )
    for outcome in failed:
        _fail(f"{outcome.repo}@{short_digest(outcome.digest)}: {outcome.error}")
    if failed:
        return EXIT_ERROR
    if args.check and not plan.is_empty:
        return EXIT_PLAN_NOT_EMPTY
    return EXIT_OK


def _outcome_json(outcome: ApplyOutcome) -> dict[str, Any]:
    """One applied action, in the commands' JSON convention (``repository``, not ``repo``)."""
    fields = asdict(outcome)
    return {"repository": fields.pop("repo"), **fields, "tags": list(outcome.tags)}


# ---------------------------------------------------------------------- human output


def _label(plan: PrunePlan, state: RegistryState) -> str:
    if plan.exact:
        return "exact, from storage"
    return "estimate from manifests: untagged manifests and other garbage are not seen"


def _day(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d}" if value is not None else "-" * 10


def print_plan(plan: PrunePlan, state: RegistryState) -> None:
    """Per repository, a line per tag: go/stay, tag, digest, created, pushed, why."""
    for repo in plan.repos:
        if not repo.decisions and not repo.untagged:
            continue
        say(
            f"{repo.name}: {len(repo.going)} of {len(repo.decisions)} tags go, frees "
            f"{_size(repo.bytes_freed)}"
        )
        actions = {tag: a for a in repo.actions for tag in a.tags}
        width = max((len(d.tag) for d in repo.decisions), default=0)
        for d in repo.decisions:
            verb = "go  " if d.goes else "stay"
            what = ""
            action = actions.get(d.tag)
            if action is not None and action.kind is ActionKind.DELETE_MANIFEST:
                what = "  [delete manifest]"
            elif action is not None:
                what = f"  [{why_untag_only(action.kept_siblings)}]"
            siblings = f" (same image: {', '.join(d.siblings)})" if d.siblings else ""
            say(
                f"  {verb} {d.tag:<{width}}  {short_digest(d.digest)}  {_day(d.created)}  "
                f"{_day(d.pushed)}  {'; '.join(d.reasons)}{siblings}{what}"
            )
        for u in repo.untagged:
            print(
                f"  go   (untagged) {short_digest(u.digest)}  pushed {u.pushed:%Y-%m-%d}"
                if u.pushed
                else f"  go   (untagged) {short_digest(u.digest)}"
            )
        for note in repo.notes:
            say(f"  note: {note}")
    going = sum(len(r.going) for r in plan.repos)
    deleted = sum(len(r.deleted_digests) for r in plan.repos)
    untagged = sum(1 for r in plan.repos for a in r.actions if a.kind is ActionKind.UNTAG)
    unknown = f"; {plan.unknown_sizes} blobs of unknown size" if plan.unknown_sizes else ""
    skipped = f"; {len(plan.skipped)} repositories out of scope" if plan.skipped else ""
    print(
        f"\nPlan: {going} tags go, {deleted} manifests deleted, {untagged} only untagged; "
        f"frees {_size(plan.bytes_freed)} after GC ({_label(plan, state)}{unknown}){skipped}"
    )
    if plan.is_empty:
        print("Nothing to do.")


def print_outcomes(outcomes: Sequence[ApplyOutcome]) -> None:
    for o in outcomes:
        if o.error:
            continue
        tags = f" ({', '.join(o.tags)})" if o.tags else ""
        note = f": {o.note}" if o.note else ""
        verb = {"delete": "deleted", "untag": "untagged", "delete untagged": "deleted untagged"}
        say(f"{verb.get(o.action, o.action)} {o.repo}@{short_digest(o.digest)}{tags}{note}")


def load_root_from_config(path: str) -> Path:
    from embedded_registry.config import ConfigError, load_config

    try:
        config = load_config(Path(path), env={}, require_storage=True)
    except ConfigError as exc:
        raise UsageError(f"{path}: {exc}") from None
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror or exc}") from None
    if config.storage.s3 is not None:
        raise UsageError(
            f"{path}: offline pruning needs a filesystem root; on s3, prune through the "
            "registry (regtui prune HOST)"
        )
    return config.storage.root
