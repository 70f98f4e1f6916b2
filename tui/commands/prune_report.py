"""What ``regtui prune`` shows and asks, online and offline alike: the plan, the question, the
outcomes and the final report (exit code included); and the storage root of a config file.

:mod:`tui.commands.prune` (over the API) and :mod:`tui.commands.prune_offline` (on a storage
directory) both use it; neither imports the other's code for it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tui.commands import _common as c
from tui.data.retention import ApplyOutcome
from tui.logic.fmt import count_of, human_size, short_digest

if TYPE_CHECKING:
    from embedded_registry.offline import GovernConfig
from tui.logic.retention import ActionKind, PrunePlan, RegistryState, why_untag_only


def _size(n: int) -> str:
    return human_size(n)


def confirm(plan: PrunePlan) -> bool:
    going = sum(len(r.going) for r in plan.repos)
    deleted = sum(len(r.deleted_digests) for r in plan.repos)
    question = f"Remove {count_of(going, 'tag')} and delete {count_of(deleted, 'manifest')}?"
    print(f"{question} [y/N] ", end="", flush=True, file=sys.stderr)
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def gc_summary(before: int, after: int) -> dict[str, Any]:
    """Storage before and after GC; ``bytes_freed`` is their difference (blob bytes)."""
    return {"before_bytes": before, "after_bytes": after, "bytes_freed": before - after}


def final_report(
    args: argparse.Namespace,
    plan: PrunePlan,
    report: dict[str, Any],
    outcomes: Sequence[ApplyOutcome],
    gc: dict[str, Any] | None,
) -> int:
    """The end of a prune: the JSON report (plan, what was applied, GC) or the GC line, one
    line per failed action; the exit code (an error, a plan left with ``--check``, or OK)."""
    failed = [o for o in outcomes if o.error]
    if args.json:
        report.update(
            plan=plan.to_json(),
            applied=[o.to_json() for o in outcomes],
            gc=gc,
        )
        c.print_json(report)
    elif gc is not None:
        print(
            f"\nGC: storage {_size(gc['before_bytes'])} -> {_size(gc['after_bytes'])} "
            f"(freed {_size(gc['bytes_freed'])}; the plan said {_size(plan.bytes_freed)})"
        )
    for outcome in failed:
        c.fail(f"{outcome.repo}@{short_digest(outcome.digest)}: {outcome.error}")
    if failed:
        return c.EXIT_ERROR
    if args.check and not plan.is_empty:
        return c.EXIT_PLAN_NOT_EMPTY
    return c.EXIT_OK


# ---------------------------------------------------------------------- human output


def _label(plan: PrunePlan, state: RegistryState) -> str:
    if plan.exact:
        return "exact, from storage"
    return "estimate from manifests: untagged manifests and other garbage are not seen"


def _day(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d}" if value is not None else "-" * 10


def print_plan(plan: PrunePlan, state: RegistryState) -> None:
    """Per repository, a line per tag: go/stay, tag, digest, created, pushed, (pulled, when a
    rule reads pull times), why."""
    for repo in plan.repos:
        if not repo.decisions and not repo.untagged:
            continue
        c.say(
            f"{repo.name}: {len(repo.going)} of {len(repo.decisions)} tags go, frees "
            f"{_size(repo.bytes_freed)}"
        )
        actions = {tag: a for a in repo.actions for tag in a.tags}
        width = max((len(d.tag) for d in repo.decisions), default=0)
        pulls = plan.policy.uses_pull_times
        for d in repo.decisions:
            verb = "go  " if d.goes else "stay"
            what = ""
            action = actions.get(d.tag)
            if action is not None and action.kind is ActionKind.DELETE_MANIFEST:
                what = "  [delete manifest]"
            elif action is not None:
                what = f"  [{why_untag_only(action.kept_siblings)}]"
            siblings = f" (same image: {', '.join(d.siblings)})" if d.siblings else ""
            c.say(
                f"  {verb} {d.tag:<{width}}  {short_digest(d.digest)}  {_day(d.created)}  "
                f"{_day(d.pushed)}  {_day(d.pulled) + '  ' if pulls else ''}"
                f"{'; '.join(d.reasons)}{siblings}{what}"
            )
        for u in repo.untagged:
            print(
                f"  go   (untagged) {short_digest(u.digest)}  pushed {u.pushed:%Y-%m-%d}"
                if u.pushed
                else f"  go   (untagged) {short_digest(u.digest)}"
            )
        for note in repo.notes:
            c.say(f"  note: {note}")
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
        c.say(f"{verb.get(o.action, o.action)} {o.repo}@{short_digest(o.digest)}{tags}{note}")


def load_root_from_config(path: str) -> tuple[Path, GovernConfig]:
    """The filesystem root a config.yml names, and its ``regtui.immutable``/``quota`` rules
    (offline pruning keeps the tags the server would refuse to delete)."""
    from embedded_registry.offline import ConfigError, load_config

    try:
        config = load_config(Path(path), env={}, require_storage=True)
    except ConfigError as exc:
        raise c.UsageError(f"{path}: {exc}") from None
    except OSError as exc:
        raise c.UsageError(f"{path}: {exc.strerror or exc}") from None
    if config.storage.s3 is not None:
        raise c.UsageError(
            f"{path}: offline pruning needs a filesystem root; on s3, prune through the "
            "registry (regtui prune HOST)"
        )
    return config.storage.root, config.govern
