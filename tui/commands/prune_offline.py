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
from embedded_registry.storage.driver.base import StorageDriverError
from embedded_registry.storage.driver.filesystem import FilesystemDriver
from embedded_registry.storage.paths import V2_PREFIX
from embedded_registry.storage.store import DriverStorage
from embedded_registry.usage import storage_usage
from tui.client import RepositoryStorage
from tui.commands import _common as c
from tui.commands.prune_report import (
    confirm,
    finish,
    gc_summary,
    load_root_from_config,
    print_outcomes,
    print_plan,
)
from tui.data.retention import ApplyOutcome, apply_note, state_from_storage
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
    """Carry out ``plan`` on the directory, each change checked right before it is made."""
    return asyncio.run(_apply(_storage(root), plan))


async def _tags_on(storage: DriverStorage, repo: str, digest: str) -> set[str]:
    """The tags of ``repo`` pointing at ``digest`` right now."""
    found = set()
    for tag in await storage.tags(repo) or []:
        if await storage.tag_digest(repo, tag) == digest:
            found.add(tag)
    return found


async def _untag_each(
    storage: DriverStorage, repo: str, digest: str, tags: tuple[str, ...]
) -> tuple[list[str], list[str]]:
    """Remove each tag still on ``digest`` (read right before); returns removed, left alone."""
    removed: list[str] = []
    left: list[str] = []
    for tag in tags:
        if await storage.tag_digest(repo, tag) != digest:
            left.append(tag)
            continue
        await storage.delete_tag(repo, tag)
        removed.append(tag)
    return removed, left


async def _apply(storage: DriverStorage, plan: PrunePlan) -> list[ApplyOutcome]:
    """As the online apply (:func:`tui.data.retention.apply_plan`): each change is checked
    against the directory right before it is made (a writer may be running with --force)."""
    outcomes: list[ApplyOutcome] = []
    errors = (registry_errors.RegistryError, StorageDriverError, OSError)
    for repo in plan.repos:
        if repo.is_empty:
            continue
        for action in repo.actions:
            tags = action.tags
            left_alone: list[str] = []
            newcomers: list[str] = []
            try:
                if action.kind is ActionKind.DELETE_MANIFEST:
                    on_it = await _tags_on(storage, repo.name, action.digest)
                    newcomers = sorted(on_it - set(action.tags))
                    tags = tuple(t for t in action.tags if t in on_it)
                    left_alone = [t for t in action.tags if t not in on_it]
                    if tags and not newcomers:
                        await storage.delete_manifest(repo.name, action.digest)
                        note = apply_note(left_alone, [])
                        outcomes.append(
                            ApplyOutcome(repo.name, action.digest, "delete", tags, note=note)
                        )
                        continue
                removed, left = await _untag_each(storage, repo.name, action.digest, tags)
            except errors as exc:
                outcomes.append(
                    ApplyOutcome(repo.name, action.digest, "untag", tags, error=_describe(exc))
                )
                continue
            note = apply_note([*left_alone, *left], newcomers)
            kind = "untag" if removed else "skip"
            outcomes.append(ApplyOutcome(repo.name, action.digest, kind, tuple(removed), note=note))
        for untagged in repo.untagged:
            try:
                tagged = await _tags_on(storage, repo.name, untagged.digest)
                if tagged:
                    note = f"tagged since the plan ({', '.join(sorted(tagged))})"
                    outcomes.append(
                        ApplyOutcome(repo.name, untagged.digest, "delete untagged", (), note=note)
                    )
                    continue
                await storage.delete_manifest(repo.name, untagged.digest)
                outcomes.append(ApplyOutcome(repo.name, untagged.digest, "delete untagged", ()))
            except errors as exc:
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
        raise c.UsageError(f"{root} is not a registry storage root (no {V2_PREFIX.as_posix()})")
    grace = DEFAULT_GRACE_PERIOD
    if args.gc_grace is not None:
        try:
            grace = policy_duration(args.gc_grace)
        except ValueError as exc:
            raise c.UsageError(f"--gc-grace: {exc}") from None
    try:
        state = read_directory(root)
    except (OSError, StorageDriverError) as exc:
        c.fail(f"{root}: {exc}")
        return c.EXIT_ERROR
    plan = evaluate(policy, state, datetime.now(UTC))
    report: dict[str, Any] = {"root": str(root), "dry_run": args.dry_run}
    if not args.json:
        print_plan(plan, state)
    if args.dry_run or plan.is_empty:
        return finish(args, plan, report, [], None)
    if not args.force:
        reason = writer_activity(scan_root(root), root=root)
        if reason is not None:
            c.fail(f"a registry seems to be writing to {root}: {reason}; {READ_ONLY_HINT}")
            return c.EXIT_ERROR
    if not args.yes and not confirm(plan):
        print("Nothing deleted.", file=sys.stderr)
        return c.EXIT_ERROR
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
