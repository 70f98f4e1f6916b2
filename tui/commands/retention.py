"""``regtui retention HOST``: the log of the bundled registry's scheduled retention
(``regtui.retention`` in its config.yml), or one run now with ``--run``.

Each run: when, whether it was a dry run, what the plan counted (tags going, manifests deleted,
bytes after GC), what GC freed, and what went (``--long``); ``skipped`` when another replica
was running, ``error`` when it failed. Administrative, as ``regtui gc HOST``: the local admin
secret on the registry's own machine, or a user in ``regtui.extensions.admins``.
"""

from __future__ import annotations

import argparse
from typing import Any

from tui.commands import _common as c
from tui.commands.access import add_access_arguments
from tui.logic.escape import visible
from tui.logic.fmt import count_of, short_digest


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "retention",
        help="the bundled registry's scheduled retention: its runs, or one run now",
        description=(
            "Show the runs of the bundled registry's scheduled retention (regtui.retention in\n"
            "its config.yml), newest first, from every replica; --run starts one now."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("host", metavar="HOST", help="registry, e.g. 127.0.0.1:5000")
    parser.add_argument("-n", type=int, default=10, metavar="N", help="runs to show (10)")
    parser.add_argument("--run", action="store_true", help="run the policy now")
    parser.add_argument(
        "--dry-run", action="store_true", help="with --run: plan and log only, delete nothing"
    )
    parser.add_argument("--long", "-l", action="store_true", help="also what each run removed")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    add_access_arguments(parser)
    parser.set_defaults(handler=c.handler(_main))


async def _main(args: argparse.Namespace) -> int:
    from tui.client import ext

    if not 1 <= args.n <= 200:
        raise c.UsageError("-n takes 1 to 200")
    if args.dry_run and not args.run:
        raise c.UsageError("--dry-run goes with --run")
    async with c.client(args, c.host_registry(args.host)[1]) as client:
        if args.run:
            record = await ext.run_retention(client, dry_run=True if args.dry_run else None)
            if args.json:
                c.print_json(record)
            else:
                _show(record, args.long)
            return c.EXIT_ERROR if record.get("error") or record.get("failed") else c.EXIT_OK
        log = await ext.retention_log(client, args.n)
    if args.json:
        c.print_json(log)
        return c.EXIT_OK
    configured = log.get("configured")
    if not isinstance(configured, dict):
        c.say("regtui.retention is not configured on this registry")
    else:
        mode = "dry run" if configured.get("dry_run") else "deletes"
        gc = ", then GC" if configured.get("gc") and not configured.get("dry_run") else ""
        every = configured.get("interval_seconds")
        c.say(
            f"policy {visible(str(configured.get('policy_source')))}, every {every:g} s, {mode}{gc}"
            if isinstance(every, int | float)
            else f"policy {visible(str(configured.get('policy_source')))}"
        )
    runs = [r for r in log["runs"] if isinstance(r, dict)]
    if not runs:
        c.say("no runs yet")
    for record in runs:
        _show(record, args.long)
    return c.EXIT_OK


def _number(record: dict[str, Any], *keys: str) -> int:
    value: Any = record
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _show(record: dict[str, Any], long: bool) -> None:
    """One run in a line (and, with ``long``, a line per change)."""
    when = visible(str(record.get("started", "?")))
    kind = "dry run" if record.get("dry_run") else "run"
    if record.get("skipped"):
        c.say(f"{when}  {kind}  skipped: {visible(str(record['skipped']))}")
        return
    parts = [
        f"{when}  {kind}",
        f"{count_of(_number(record, 'planned', 'tags_going'), 'tag')} going",
        f"{count_of(_number(record, 'planned', 'manifests_deleted'), 'manifest')} deleted",
        f"plan frees {c.size(_number(record, 'planned', 'bytes_freed'))}",
    ]
    if isinstance(record.get("gc"), dict):
        parts.append(f"GC freed {c.size(_number(record, 'gc', 'bytes_freed'))}")
    if record.get("failed"):
        parts.append(f"{_number(record, 'failed')} failed")
    if record.get("error"):
        parts.append(f"error: {visible(str(record['error']))}")
    c.say("  ".join(parts))
    if not long:
        return
    for change in record.get("applied") or []:
        if not isinstance(change, dict):
            continue
        tags = ", ".join(visible(str(t)) for t in change.get("tags") or [])
        what = f"{visible(str(change.get('action')))} {visible(str(change.get('repository')))}"
        line = f"    {what}@{short_digest(str(change.get('digest')))}"
        line += f" ({tags})" if tags else ""
        if change.get("note") or change.get("error"):
            line += f": {visible(str(change.get('error') or change.get('note')))}"
        c.say(line)
