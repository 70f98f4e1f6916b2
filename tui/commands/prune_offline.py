"""``regtui prune --root DIR`` / ``--config FILE``: retention on a storage directory, offline.

The state is read by the bundled registry's own stores on the filesystem driver (the ``ext/tags``
document, so push times and sizes are exact); deletions are theirs too (a tag directory, a
revision link: what Distribution's API delete does); GC is
:func:`embedded_registry.gc.collect_garbage`. Like
``regtui gc`` it refuses to write while a registry seems to be writing to the directory.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from embedded_registry import errors as registry_errors
from embedded_registry.gc import DEFAULT_GRACE_PERIOD, collect_garbage, scan_root
from embedded_registry.gc.offline import writer_activity
from embedded_registry.storage.driven import DriverStorage
from embedded_registry.storage.driver.base import StorageDriverError
from embedded_registry.storage.driver.filesystem import FilesystemDriver
from embedded_registry.storage.paths import V2_PREFIX
from embedded_registry.usage import storage_usage
from tui.client._pushtimes import RepositoryStorage
from tui.commands.prune import (
    EXIT_ERROR,
    UsageError,
    confirm,
    finish,
    gc_summary,
    load_root_from_config,
    print_outcomes,
    print_plan,
)
from tui.data.retention import ApplyOutcome, state_from_storage
from tui.logic.retention import ActionKind, Policy, PrunePlan, RegistryState, evaluate
from tui.logic.retention import parse_duration as policy_duration

READ_ONLY_HINT = (
    "stop the registry, or make it read-only (storage.maintenance.readonly.enabled: true) and "
    "restart it; then run prune again, or pass --force"
)


def _storage(root: Path) -> DriverStorage:
    """The directory as the bundled registry serves it: its stores on the filesystem driver."""
    return DriverStorage(FilesystemDriver(root), coordinate=True)


def read_directory(root: Path) -> RegistryState:
    """Every repository of the directory with push times and exact sizes."""

    async def read() -> list[RepositoryStorage]:
        storage = _storage(root)
        reports = []
        for name in await storage.repositories():
            doc = await storage.describe_repository(name)
            if doc is not None:
                reports.append(RepositoryStorage.from_json(doc))
        return reports

    return state_from_storage(asyncio.run(read()), source="directory")


def apply_to_directory(root: Path, plan: PrunePlan) -> list[ApplyOutcome]:
    """Carry out ``plan`` on the directory; tags are re-read first (as the online apply)."""
    return asyncio.run(_apply(_storage(root), plan))


async def _apply(storage: DriverStorage, plan: PrunePlan) -> list[ApplyOutcome]:
    outcomes: list[ApplyOutcome] = []
    for repo in plan.repos:
        if repo.is_empty:
            continue
        current = {
            t: await storage.tag_digest(repo.name, t) for t in await storage.tags(repo.name) or []
        }
        for action in repo.actions:
            here = {t for t, d in current.items() if d == action.digest}
            tags = tuple(t for t in action.tags if t in here)
            newcomers = here - set(action.tags) - set(action.kept_siblings)
            if not tags:
                note = "every tag moved since the plan: left alone"
                outcomes.append(ApplyOutcome(repo.name, action.digest, "skip", (), note=note))
                continue
            try:
                if action.kind is ActionKind.DELETE_MANIFEST and tags and not newcomers:
                    await storage.delete_manifest(repo.name, action.digest)
                    outcomes.append(ApplyOutcome(repo.name, action.digest, "delete", tags))
                    continue
                for tag in tags:
                    await storage.delete_tag(repo.name, tag)
                outcomes.append(ApplyOutcome(repo.name, action.digest, "untag", tags))
            except (registry_errors.RegistryError, StorageDriverError, OSError) as exc:
                outcomes.append(
                    ApplyOutcome(repo.name, action.digest, "untag", tags, error=_describe(exc))
                )
        tagged = {d for d in current.values() if d}
        for untagged in repo.untagged:
            if untagged.digest in tagged:
                continue
            try:
                await storage.delete_manifest(repo.name, untagged.digest)
                outcomes.append(ApplyOutcome(repo.name, untagged.digest, "delete untagged", ()))
            except (registry_errors.RegistryError, StorageDriverError, OSError) as exc:
                outcomes.append(
                    ApplyOutcome(
                        repo.name, untagged.digest, "delete untagged", (), error=_describe(exc)
                    )
                )
    return outcomes


def _describe(exc: BaseException) -> str:
    if isinstance(exc, registry_errors.RegistryError):
        return str(exc.entries()[0].get("message") or exc)
    return str(exc)


def run(args: argparse.Namespace, policy: Policy) -> int:
    root = Path(args.root) if args.root is not None else load_root_from_config(args.config)
    if not (root / V2_PREFIX).is_dir():
        raise UsageError(f"{root} is not a registry storage root (no {V2_PREFIX.as_posix()})")
    grace = DEFAULT_GRACE_PERIOD
    if args.gc_grace is not None:
        try:
            grace = policy_duration(args.gc_grace)
        except ValueError as exc:
            raise UsageError(f"--gc-grace: {exc}") from None
    try:
        state = read_directory(root)
    except (OSError, StorageDriverError) as exc:
        print(f"regtui: error: {root}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    plan = evaluate(policy, state, datetime.now(UTC))
    report: dict[str, Any] = {"root": str(root), "dry_run": args.dry_run}
    if not args.json:
        print_plan(plan, state)
    if args.dry_run or plan.is_empty:
        return finish(args, plan, report, [], None)
    if not args.force:
        reason = writer_activity(scan_root(root), root=root)
        if reason is not None:
            print(
                f"regtui: error: a registry seems to be writing to {root}: {reason}; "
                f"{READ_ONLY_HINT}",
                file=sys.stderr,
            )
            return EXIT_ERROR
    if not args.yes and not confirm(plan):
        print("Nothing deleted.", file=sys.stderr)
        return EXIT_ERROR
    outcomes = apply_to_directory(root, plan)
    if not args.json:
        print_outcomes(outcomes)
    gc = None
    if args.gc:
        before = storage_usage(root, grace_period=grace).total_bytes
        # Our own deletions just now look like a writer: the check above already ran.
        collect_garbage(root, grace_period=grace, refuse_if_active=False)
        after = storage_usage(root, grace_period=grace).total_bytes
        gc = gc_summary(before, after)
    return finish(args, plan, report, outcomes, gc)
