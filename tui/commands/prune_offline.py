"""``regtui prune --root DIR`` / ``--config FILE``: retention on a storage directory, offline.

The state is read and the plan applied by :mod:`embedded_registry.retention`, the code of the
bundled registry's scheduled retention, on its own stores on the filesystem driver (the
``ext/tags`` document, so push and pull times and sizes are exact; deletions are a tag
directory, a revision link: what Distribution's API delete does); GC is
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

from embedded_registry.offline import (
    DEFAULT_GRACE_PERIOD,
    V2_PREFIX,
    DriverStorage,
    FilesystemDriver,
    GovernConfig,
    Governor,
    StorageDriverError,
    apply_plan,
    collect_garbage,
    driver_storage,
    read_state,
    scan_root,
    storage_usage,
    writer_activity,
)
from tui.commands import _common as c
from tui.commands.prune_report import (
    confirm,
    final_report,
    gc_summary,
    load_root_from_config,
    print_outcomes,
    print_plan,
)
from tui.data.retention import ApplyOutcome
from tui.logic.retention import Policy, PrunePlan, RegistryState, evaluate
from tui.logic.retention import parse_duration as policy_duration

READ_ONLY_HINT = (
    "stop the registry, or make it read-only (storage.maintenance.readonly.enabled: true) and "
    "restart it; then run prune again, or pass --force"
)


def _storage(root: Path) -> DriverStorage:
    """The directory as the bundled registry serves it: its stores on the filesystem driver."""
    return driver_storage(FilesystemDriver(root), coordinate=True)


def read_directory(root: Path, govern: GovernConfig | None = None) -> RegistryState:
    """Every repository of the directory with push and pull times and exact sizes (and, with
    a config's ``govern``, the ``regtui.immutable`` rule of each tag: the plan keeps them)."""
    return asyncio.run(read_state(_storage(root), source="directory", govern=govern))


def apply_to_directory(
    root: Path, plan: PrunePlan, govern: GovernConfig | None = None
) -> list[ApplyOutcome]:
    """Carry out ``plan`` on the directory, each change checked right before it is made (the
    bundled registry's scheduled retention applies its plans with the same code, and refuses
    what ``regtui.immutable`` holds as it does)."""
    storage = _storage(root)
    if govern is None:
        return asyncio.run(apply_plan(storage, plan))
    return asyncio.run(apply_plan(storage, plan, check=Governor(govern, storage).check_delete))


def run(args: argparse.Namespace, policy: Policy) -> int:
    govern = None
    if args.root is not None:
        root = Path(args.root)
    else:
        root, govern = load_root_from_config(args.config)
    if not (root / V2_PREFIX).is_dir():
        raise c.UsageError(f"{root} is not a registry storage root (no {V2_PREFIX.as_posix()})")
    grace = DEFAULT_GRACE_PERIOD
    if args.gc_grace is not None:
        try:
            grace = policy_duration(args.gc_grace)
        except ValueError as exc:
            raise c.UsageError(f"--gc-grace: {exc}") from None
    try:
        state = read_directory(root, govern)
    except (OSError, StorageDriverError) as exc:
        c.fail(f"{root}: {exc}")
        return c.EXIT_ERROR
    plan = evaluate(policy, state, datetime.now(UTC))
    report: dict[str, Any] = {"root": str(root), "dry_run": args.dry_run}
    if not args.json:
        print_plan(plan, state)
    if args.dry_run or plan.is_empty:
        return final_report(args, plan, report, [], None)
    if not args.force:
        reason = writer_activity(scan_root(root), root=root)
        if reason is not None:
            c.fail(f"a registry seems to be writing to {root}: {reason}; {READ_ONLY_HINT}")
            return c.EXIT_ERROR
    if not args.yes and not confirm(plan):
        print("Nothing deleted.", file=sys.stderr)
        return c.EXIT_ERROR
    outcomes = apply_to_directory(root, plan, govern)
    if not args.json:
        print_outcomes(outcomes)
    gc = None
    if args.gc:
        before = storage_usage(root, grace_period=grace).total_bytes
        # Our own deletions just now look like a writer: the check above already ran.
        collect_garbage(root, grace_period=grace, refuse_if_active=False)
        after = storage_usage(root, grace_period=grace).total_bytes
        gc = gc_summary(before, after)
    return final_report(args, plan, report, outcomes, gc)
