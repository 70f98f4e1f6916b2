"""``regtui sync FILE``: keep target repositories in step with sources, by digest.

    regtui sync FILE [--dry-run | --check] [--parallel N] [--rate-limit R] [--json]

The file (YAML) is described in :mod:`tui.logic.sync_spec` and the README. Exit codes: 0 every
image is in step (copied now or unchanged), 1 an image or a source failed (the others still
went), 2 a mistake in the command line or the file (nothing read, nothing copied), 3 with
``--check`` only: something would be copied.
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any

from tui.commands import _common as c
from tui.commands.access import add_output_arguments

if TYPE_CHECKING:
    from tui.client import RegistryClient
    from tui.data.sync import SyncOutcome
    from tui.logic.sync_spec import SyncSpec

MAX_FILE_BYTES = 4 * 1024 * 1024


def register(subparsers: Any) -> None:
    sync = subparsers.add_parser(
        "sync",
        help="keep repositories in step with a YAML file of sources and targets, by digest",
        description="Copy what changed from each source to its target (see the README for the "
        "file). Exit codes: 0 in step, 1 a failure, 2 usage or file error, 3 (--check) "
        "something would be copied.",
    )
    sync.add_argument("file", metavar="FILE", help="the sync file (YAML)")
    mode = sync.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", "-n", action="store_true", help="say what would be copied")
    mode.add_argument(
        "--check", action="store_true", help="a dry run that exits 3 when anything would move"
    )
    sync.add_argument("--parallel", "-j", type=int, help="images copied at once (file: parallel)")
    sync.add_argument(
        "--rate-limit",
        type=float,
        metavar="R",
        help="requests per second to each registry at most (file: rate_limit; 0: no limit)",
    )
    sync.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    add_output_arguments(sync, "one JSON document with every image's outcome")
    sync.set_defaults(handler=c.handler(_sync, quick=_quick_sync))


def _load(path: str) -> SyncSpec:
    import yaml

    from tui.logic.sync_spec import SyncSpecError, parse_spec

    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise c.UsageError(f"{path}: {error.strerror or error}") from None
    if len(data) > MAX_FILE_BYTES:
        raise c.UsageError(f"{path}: larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
    try:
        # libyaml's loader when PyYAML has it: the pure-Python one costs a few ms of start-up
        document = yaml.load(data, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(error, "problem", None) or "not YAML"
        raise c.UsageError(f"{path}{where}: {problem}") from None
    try:
        return parse_spec(document)
    except SyncSpecError as error:
        raise c.UsageError(f"{path}: {error}") from None


def _quick_sync(args: argparse.Namespace) -> int | None:
    """Nothing to move (or a dry run), read without the event loop nor the full client
    (:mod:`tui.data.sync_check`); ``None`` hands over to :func:`_sync` (a mistake in the file or
    the options included: it says it)."""
    try:
        spec = _options(_load(args.file), args)
    except c.UsageError:
        return None
    from tui.data.sync_check import quick_plan
    from tui.data.sync_jobs import SyncOutcome

    jobs = quick_plan(spec, timeout=args.timeout)
    if jobs is None:
        return None
    dry_run = args.dry_run or args.check
    if not dry_run and not all(job.unchanged for job in jobs):
        return None  # something moves: the engine plans (again) and copies
    outcomes = [SyncOutcome(job, "unchanged" if job.unchanged else "planned") for job in jobs]
    if not args.json:
        for outcome in outcomes:
            _say(outcome)
    return _report(outcomes, args)


def _options(spec: SyncSpec, args: argparse.Namespace) -> SyncSpec:
    """``spec`` with the command line's ``--parallel`` and ``--rate-limit``, checked."""
    if args.parallel is not None:
        if not 1 <= args.parallel <= 64:
            raise c.UsageError("--parallel must be from 1 to 64")
        spec = spec._replace(parallel=args.parallel)
    if args.rate_limit is not None:
        if args.rate_limit < 0:
            raise c.UsageError("--rate-limit must be at least 0")
        spec = spec._replace(rate_limit=args.rate_limit)
    return spec


async def _sync(args: argparse.Namespace) -> int:
    from tui.client import RegistryClient
    from tui.client.reference import api_host
    from tui.data.sync import REPOSITORIES_AT_ONCE, run_sync

    spec = _options(_load(args.file), args)
    for name, access in spec.registries.items():
        if access.password_env and access.password_env not in os.environ:
            raise c.UsageError(f"registries[{name!r}]: ${access.password_env} is not set")
    clients: dict[str, RegistryClient] = {}

    def client_for(registry: str) -> RegistryClient:
        key = api_host(registry.split("://", 1)[-1])
        if key not in clients:
            access = spec.registries.get(registry.split("://", 1)[-1]) or spec.registries.get(key)
            clients[key] = RegistryClient(
                registry,
                username=access.username if access else None,
                password=os.environ[access.password_env]
                if access and access.password_env
                else None,
                insecure=access.insecure if access else False,
                ca_cert=access.ca_cert if access else None,
                timeout=args.timeout,
                max_concurrency=max(REPOSITORIES_AT_ONCE, 4 * spec.parallel + 4),
                fast_after=None,
                rate_limit=spec.rate_limit or None,
            )
        return clients[key]

    dry_run = args.dry_run or args.check
    try:
        for entry in spec.entries:  # the clients are made (and checked) before anything moves
            client_for(entry.source_registry)
            client_for(entry.target_registry)
        for client in clients.values():
            await client.__aenter__()
        outcomes = await run_sync(
            spec, client_for, dry_run=dry_run, progress=None if args.json else _say
        )
    finally:
        for client in clients.values():
            await client.aclose()
    return _report(outcomes, args)


def _say(outcome: SyncOutcome) -> None:
    job = outcome.job
    if job is None:
        return  # failures before a job are said with the summary
    if outcome.status == "unchanged":
        return
    if outcome.status == "failed":
        c.warn(f"{job.source} -> {job.target}: {outcome.error}")
    elif outcome.status == "planned":
        was = c.short_digest(job.target_digest) if job.target_digest else "absent"
        now = c.short_digest(job.source_digest)
        c.say(f"would copy {job.source} -> {job.target} ({was} -> {now})")
    else:
        result = outcome.result
        moved = f", {c.size(result.bytes_copied)} moved" if result is not None else ""
        c.say(f"copied {job.source} -> {job.target}{moved}")


def _report(outcomes: list[SyncOutcome], args: argparse.Namespace) -> int:
    counts = {status: 0 for status in ("copied", "unchanged", "planned", "failed")}
    for outcome in outcomes:
        counts[outcome.status] += 1
    if args.json:
        c.print_json(
            {
                "dry_run": bool(args.dry_run or args.check),
                "counts": counts,
                "images": [_outcome_json(o) for o in outcomes],
            }
        )
    else:
        for outcome in outcomes:
            if outcome.job is None:
                c.warn(f"{outcome.where}: {outcome.error}")
        print(
            f"{counts['copied']} copied, {counts['unchanged']} unchanged, "
            f"{counts['planned']} to copy, {counts['failed']} failed"
        )
    if counts["failed"]:
        return c.EXIT_ERROR
    if args.check and counts["planned"]:
        return c.EXIT_PLAN_NOT_EMPTY
    return c.EXIT_OK


def _outcome_json(outcome: SyncOutcome) -> dict[str, Any]:
    """One image's outcome, every key always present (docs/json.md)."""
    job, result = outcome.job, outcome.result
    return {
        "status": outcome.status,
        "error": outcome.error,
        "where": outcome.where or (job.entry.where if job is not None else None),
        "source": job.source if job is not None else None,
        "target": job.target if job is not None else None,
        "digest": job.source_digest if job is not None else None,
        "target_digest_before": job.target_digest if job is not None else None,
        "bytes_copied": result.bytes_copied if result is not None else 0,
        "blobs_copied": result.blobs_copied if result is not None else 0,
        "blobs_skipped": result.blobs_skipped if result is not None else 0,
        "blobs_mounted": result.blobs_mounted if result is not None else 0,
    }
