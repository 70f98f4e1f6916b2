"""``regtui events HOST``: the bundled registry's recent pushes, pulls, mounts and deletes, with
who and from where (its administrative events extension); ``--follow`` waits for new ones."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from tui.commands import _common as c

FOLLOW_WAIT = 25.0
"""Seconds of one long poll (the server answers at once when an event comes; the client keeps
it below ``--timeout``)."""


def register(subparsers: Any) -> None:
    events = subparsers.add_parser(
        "events",
        parents=[c.common_parser()],
        help="recent pushes, pulls and deletes of the bundled registry (--follow: live)",
    )
    events.add_argument("host", metavar="HOST", help="the bundled registry (regtui serve)")
    events.add_argument("--follow", "-f", action="store_true", help="keep printing new events")
    events.add_argument("--action", choices=("push", "pull", "mount", "delete"), help="only these")
    events.add_argument("--repo", default="", help="only repositories whose name contains this")
    events.set_defaults(handler=c.handler(_events))


async def _events(args: argparse.Namespace) -> int:
    from tui.client.ext import recent_events
    from tui.logic.events import COLUMNS, EventFilter, row

    _, registry = c.host_registry(args.host)
    wanted = EventFilter(action=args.action, repository=args.repo)
    async with c.client(args, registry) as client:
        page = await recent_events(client)
        shown = wanted.apply(page.events)
        if not args.follow:
            if args.json:
                c.print_json([event.raw for event in shown])
            else:
                c.table([row(event) for event in shown], COLUMNS, right=(4,))
            return c.EXIT_OK
        instance, since = page.instance, page.next
        _print_live(shown, args.json, header=True)
        while True:
            page = await recent_events(client, since=since, wait=FOLLOW_WAIT)
            if page.instance != instance:  # the registry restarted: its cursor starts again
                instance, since = page.instance, 0
                continue
            since = page.next
            _print_live(wanted.apply(page.events), args.json, header=False)


def _print_live(events: list[Any], as_json: bool, *, header: bool) -> None:
    """``--follow``: JSON Lines (one event per line), or table rows as they come."""
    from tui.logic.events import COLUMNS, row

    if as_json:
        for event in events:
            sys.stdout.write(json.dumps(event.raw) + "\n")
    else:
        if header:
            c.say("  ".join(COLUMNS))
        for event in events:
            c.say("  ".join(cell or "-" for cell in row(event)))
    sys.stdout.flush()
