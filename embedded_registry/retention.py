"""Retention on the storage: the state read by the registry's own stores, a plan applied to
them, and the scheduled runs of ``regtui.retention`` (plan, apply, GC, log).

The planner is :func:`regtui_retention.plan.evaluate`, the one ``regtui prune`` uses; the state
comes from :meth:`DriverStorage.describe_repository` (the ``_regtui/tags`` document: push and
pull times, every revision, exact sizes) and :func:`apply_plan` is what ``regtui prune --root``
runs too. Each change is checked against the storage right before it is made, under the
server's commit lock when there is one (a manifest PUT on this replica waits for it), so a tag
pushed again since the plan is left alone and a digest that gained a tag is only untagged.

A scheduled run (:func:`run_retention`, every ``regtui.retention.interval``):

1. takes the retention lease (``<root>/regtui/retention-lease``, the GC lease's protocol of
   :mod:`embedded_registry.storage.lease` on another object): one run at a time across the
   replicas of one storage; a replica that finds it held logs the run as skipped;
2. flushes this replica's pull times, reads the state, plans;
3. unless ``dryrun``: applies the plan, then (``gc``, when something was deleted) runs GC with
   its own lease and the configured grace period, under the commit lock as the GC endpoint does;
4. writes the run's record to ``<root>/regtui/retention/runs/<time>-<id>.json`` (what went, the
   bytes the plan counted and the bytes GC freed, errors), readable from any replica through
   ``GET /v2/_regtui/ext/retention`` and ``regtui retention HOST``; the newest
   ``KEEP_RUNS`` are kept.

Across replicas, the check before a change and the change are not atomic against a push on
*another* replica (the API has no compare-and-swap): the window is one storage request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from embedded_registry import errors
from embedded_registry.config import Config, RetentionConfig
from embedded_registry.gc.collect import collect_garbage_on
from embedded_registry.govern import Governor
from embedded_registry.govern_rules import GovernConfig
from embedded_registry.keys import COMMIT_LOCK_KEY, CONFIG_KEY, STORAGE_KEY
from embedded_registry.storage.driver.base import PathNotFoundError, StorageDriverError
from embedded_registry.storage.lease import GcBusy, acquire, lease_holder
from embedded_registry.storage.store import DriverStorage
from regtui_retention.document import repo_state_from_document
from regtui_retention.outcomes import ApplyOutcome, apply_note, listed
from regtui_retention.plan import ActionKind, PrunePlan, RegistryState, evaluate

log = logging.getLogger("embedded_registry.retention")

RETENTION_LEASE_PATH = "/regtui/retention-lease"
RUNS_DIR = "/regtui/retention/runs"
KEEP_RUNS = 200
RUN_MAX_BYTES = 16 << 20
FIRST_RUN_DELAY = 5.0
"""Seconds after the start before the first run (the interval when shorter)."""

# ---------------------------------------------------------------------- state and apply


async def read_state(
    storage: DriverStorage, source: str = "storage", govern: GovernConfig | None = None
) -> RegistryState:
    """Every repository of ``storage`` with push and pull times and exact sizes; with
    ``govern``, each tag's ``regtui.immutable`` rule (the plan keeps those tags)."""
    repos = []
    for name in await storage.repositories():
        doc = await storage.describe_repository(name)
        if doc is not None:
            if govern is not None:
                for entry in doc.get("tags", []):
                    rule = govern.immutable_rule(name, entry["tag"])
                    entry["immutable"] = rule.label if rule is not None else None
            repos.append(repo_state_from_document(doc))
    return RegistryState(tuple(repos), exact=True, source=source)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, errors.RegistryError):
        return str(exc.entries()[0].get("message") or exc)
    return str(exc)


async def _tags_on(storage: DriverStorage, repo: str, digest: str) -> set[str]:
    """The tags of ``repo`` pointing at ``digest`` right now."""
    found = set()
    for tag in await storage.tags(repo) or []:
        if await storage.tag_digest(repo, tag) == digest:
            found.add(tag)
    return found


Check = Callable[[str, str], Awaitable[None]]
"""``check(repository, tag or digest)`` before a delete: raises to refuse it (the immutable
tags of ``regtui.immutable``, :meth:`embedded_registry.govern.Governor.check_delete`)."""


async def _no_check(repo: str, reference: str) -> None:
    return None


async def _untag_each(
    storage: DriverStorage,
    repo: str,
    digest: str,
    tags: tuple[str, ...],
    check: Check = _no_check,
) -> tuple[list[str], list[str]]:
    """Remove each tag still on ``digest`` (read right before); returns removed, left alone."""
    removed: list[str] = []
    left: list[str] = []
    for tag in tags:
        if await storage.tag_digest(repo, tag) != digest:
            left.append(tag)
            continue
        await check(repo, tag)
        await storage.delete_tag(repo, tag)
        removed.append(tag)
    return removed, left


async def apply_plan(
    storage: DriverStorage,
    plan: PrunePlan,
    *,
    commit_lock: asyncio.Lock | None = None,
    check: Check = _no_check,
) -> list[ApplyOutcome]:
    """Carry out ``plan`` on the storage, each change checked right before it is made (under
    ``commit_lock``, the server's: no manifest PUT of this process lands in between).

    A manifest is deleted only if the tags on it now are among the planned ones; with a tag
    the plan did not know, only the planned tags are removed; a tag is removed only while it
    still points at the planned digest; an untagged manifest that gained a tag stays."""
    outcomes: list[ApplyOutcome] = []
    failures = (errors.RegistryError, StorageDriverError, OSError)

    def guard() -> contextlib.AbstractAsyncContextManager[Any]:
        return commit_lock if commit_lock is not None else contextlib.nullcontext()

    for repo in plan.repos:
        if repo.is_empty:
            continue
        for action in repo.actions:
            tags = action.tags
            try:
                async with guard():
                    outcomes.append(
                        await _apply_action(
                            storage, repo.name, action.kind, tags, action.digest, check
                        )
                    )
            except failures as exc:
                outcomes.append(
                    ApplyOutcome(repo.name, action.digest, "untag", tags, error=_describe(exc))
                )
        for untagged in repo.untagged:
            action_name = "delete untagged"
            try:
                async with guard():
                    tagged = await _tags_on(storage, repo.name, untagged.digest)
                    if tagged:
                        note = f"tagged since the plan ({listed(tagged)})"
                        outcomes.append(
                            ApplyOutcome(repo.name, untagged.digest, action_name, (), note=note)
                        )
                        continue
                    await check(repo.name, untagged.digest)
                    await storage.delete_manifest(repo.name, untagged.digest)
                outcomes.append(ApplyOutcome(repo.name, untagged.digest, action_name, ()))
            except failures as exc:
                outcomes.append(
                    ApplyOutcome(repo.name, untagged.digest, action_name, (), error=_describe(exc))
                )
    return outcomes


async def _apply_action(
    storage: DriverStorage,
    repo: str,
    kind: ActionKind,
    planned: tuple[str, ...],
    digest: str,
    check: Check = _no_check,
) -> ApplyOutcome:
    tags = planned
    left_alone: list[str] = []
    newcomers: list[str] = []
    if kind is ActionKind.DELETE_MANIFEST:
        on_it = await _tags_on(storage, repo, digest)
        newcomers = sorted(on_it - set(planned))
        tags = tuple(t for t in planned if t in on_it)
        left_alone = [t for t in planned if t not in on_it]
        if tags and not newcomers:
            await check(repo, digest)
            await storage.delete_manifest(repo, digest)
            return ApplyOutcome(repo, digest, "delete", tags, note=apply_note(left_alone, []))
    removed, left = await _untag_each(storage, repo, digest, tags, check)
    note = apply_note([*left_alone, *left], newcomers)
    return ApplyOutcome(repo, digest, "untag" if removed else "skip", tuple(removed), note=note)


# ---------------------------------------------------------------------- scheduled runs


def _now_text(moment: float) -> str:
    return (
        datetime.fromtimestamp(moment, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


STAYING_KEPT_IN_RECORD = 1000
"""Tags that stay listed in a run's record at most (what goes is always listed whole)."""


def plan_record(plan: PrunePlan) -> dict[str, Any]:
    """The plan as a run's record keeps it: a registry of many tags keeps the tags that went
    and counts those that stayed (``tags_staying_omitted``), so that a record stays small."""
    document = plan.to_json()
    repos = document["repositories"]
    if sum(len(r["tags_staying"]) for r in repos) > STAYING_KEPT_IN_RECORD:
        for repo in repos:
            repo["tags_staying_omitted"] = len(repo["tags_staying"])
            repo["tags_staying"] = []
    return document


def _summary(plan: PrunePlan) -> dict[str, Any]:
    return {
        "tags_going": sum(len(r.going) for r in plan.repos),
        "manifests_deleted": sum(len(r.deleted_digests) for r in plan.repos),
        "bytes_freed": plan.bytes_freed,
    }


async def run_retention(
    storage: DriverStorage,
    config: Config,
    *,
    commit_lock: asyncio.Lock | None = None,
    dry_run: bool | None = None,
    trigger: str = "schedule",
) -> dict[str, Any]:
    """One run of ``config.retention`` (see the module docstring); its record, also written
    to the storage. ``dry_run`` overrides the configured one (``None``: as configured)."""
    settings = config.retention
    if settings is None:
        raise errors.unsupported("regtui.retention is not configured")
    dry = settings.dry_run if dry_run is None else dry_run
    started = time.time()
    record: dict[str, Any] = {
        "id": uuid.uuid4().hex[:12],
        "started": _now_text(started),
        "trigger": trigger,
        "replica": f"pid {os.getpid()}",
        "dry_run": dry,
        "policy_source": settings.source,
        "policy": settings.policy.to_json(),
    }
    driver = storage.driver
    try:
        lease = await acquire(driver, path=RETENTION_LEASE_PATH)
    except GcBusy:
        holder = await lease_holder(driver, RETENTION_LEASE_PATH) or "it just finished"
        mine = holder.endswith(f" pid {os.getpid()}")
        who = "a run of this replica" if mine else "another replica"
        record["skipped"] = f"{who} is running retention ({holder})"
        record["finished"] = _now_text(time.time())
        await _write_record(storage, record)
        return record
    # When this run held the lease: the runs of all replicas never overlap in these times.
    record["lease_taken"] = _now_text(time.time())
    try:
        async with lease.keep():
            await _run(storage, config, settings, record, dry, commit_lock)
    except Exception as exc:  # a run that fails is logged, and the schedule goes on
        record["error"] = str(exc) or exc.__class__.__name__
        log.warning("retention run failed: %s", record["error"])
    finally:
        record["lease_released"] = _now_text(time.time())
        await lease.release()
    record["finished"] = _now_text(time.time())
    await _write_record(storage, record)
    return record


async def _run(
    storage: DriverStorage,
    config: Config,
    settings: RetentionConfig,
    record: dict[str, Any],
    dry: bool,
    commit_lock: asyncio.Lock | None,
) -> None:
    await storage.flush_pulls()  # this replica's pulls count in the plan
    state = await read_state(storage, govern=config.govern)
    plan = evaluate(settings.policy, state, datetime.now(UTC))
    record["planned"] = _summary(plan)
    record["plan"] = plan_record(plan)
    if dry or plan.is_empty:
        log.info(
            "retention %s: %d tags would go, %d bytes after GC",
            "dry run" if dry else "run",
            record["planned"]["tags_going"],
            plan.bytes_freed,
        )
        return
    # regtui.immutable holds here too: an immutable tag is never deleted by a scheduled run.
    check = Governor(config.govern, storage).check_delete
    outcomes = await apply_plan(storage, plan, commit_lock=commit_lock, check=check)
    record["applied"] = [o.to_json() for o in outcomes]
    record["failed"] = sum(1 for o in outcomes if o.error)
    deleted = any(o.action in ("delete", "delete untagged") and not o.error for o in outcomes)
    if settings.gc and deleted:
        record["gc"] = await _gc(storage, config, commit_lock)
    freed = record.get("gc", {}).get("bytes_freed")
    log.info(
        "retention run: %d changes (%d failed), planned %d bytes, GC freed %s",
        len(outcomes),
        record["failed"],
        plan.bytes_freed,
        freed if freed is not None else "nothing (no GC)",
    )


async def _gc(
    storage: DriverStorage, config: Config, commit_lock: asyncio.Lock | None
) -> dict[str, Any]:
    lock = commit_lock if commit_lock is not None else asyncio.Lock()
    try:
        async with lock:
            report = await collect_garbage_on(
                storage.driver,
                grace_period=config.storage.gc_grace_period,
                where=storage.driver.name,
            )
    except GcBusy as exc:
        return {"error": str(exc), "bytes_freed": 0}
    blobs = [r for r in report.removals if r.kind == "blob" and r.removed]
    return {
        # Blob bytes, as the plan counts them (links and upload files are in files_bytes_freed).
        "bytes_freed": sum(r.size for r in blobs),
        "files_bytes_freed": report.bytes_freed,
        "blobs_removed": [{"digest": r.digest, "size": r.size} for r in blobs],
        "kept_young_blobs": report.kept_young_blobs,
        "grace_period": config.storage.gc_grace_period,
    }


async def _write_record(storage: DriverStorage, record: dict[str, Any]) -> None:
    name = f"{record['started'].replace(':', '').replace('.', '')}-{record['id']}.json"
    body = json.dumps(record, separators=(",", ":")).encode()
    try:
        await storage.driver.put_content(f"{RUNS_DIR}/{name}", body)
        keys = await _run_keys(storage)
        for old in keys[:-KEEP_RUNS]:
            with contextlib.suppress(PathNotFoundError):
                await storage.driver.delete(old)
    except (StorageDriverError, OSError) as exc:
        log.warning("could not write the retention run's record: %s", exc)


async def _run_keys(storage: DriverStorage) -> list[str]:
    """The keys of the run records, oldest first (their names start with the start time)."""
    try:
        keys = await storage.driver.list(RUNS_DIR)
    except PathNotFoundError:
        return []
    return sorted(k for k in keys if k.endswith(".json"))


async def read_runs(storage: DriverStorage, limit: int = 20) -> list[dict[str, Any]]:
    """The newest ``limit`` run records, newest first (every replica's)."""
    runs: list[dict[str, Any]] = []
    for key in reversed(await _run_keys(storage)):
        if len(runs) >= limit:
            break
        try:
            data = await storage.driver.get_content(key, limit=RUN_MAX_BYTES)
        except PathNotFoundError:
            continue  # pruned by another replica meanwhile
        with contextlib.suppress(ValueError):
            document = json.loads(data)
            if isinstance(document, dict):
                runs.append(document)
    return runs


def describe_settings(settings: RetentionConfig | None) -> dict[str, Any] | None:
    """``regtui.retention`` as the log endpoint shows it."""
    if settings is None:
        return None
    return {
        "policy_source": settings.source,
        "policy": settings.policy.to_json(),
        "interval_seconds": settings.interval,
        "dry_run": settings.dry_run,
        "gc": settings.gc,
    }


async def _loop(app: web.Application, settings: RetentionConfig) -> None:
    storage = app[STORAGE_KEY]
    assert isinstance(storage, DriverStorage)
    await asyncio.sleep(min(FIRST_RUN_DELAY, settings.interval))
    while True:
        started = time.monotonic()
        try:
            await run_retention(storage, app[CONFIG_KEY], commit_lock=app[COMMIT_LOCK_KEY])
        except Exception as exc:  # the schedule outlives any one run
            log.warning("retention run failed: %s", exc)
        await asyncio.sleep(max(0.0, settings.interval - (time.monotonic() - started)))


async def scheduled_retention(app: web.Application) -> AsyncIterator[None]:
    """The ``cleanup_ctx`` of ``regtui.retention``: runs on its interval while serving."""
    settings = app[CONFIG_KEY].retention
    task = None
    if settings is not None and isinstance(app[STORAGE_KEY], DriverStorage):
        task = asyncio.create_task(_loop(app, settings))
    yield
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


__all__ = [
    "KEEP_RUNS",
    "RETENTION_LEASE_PATH",
    "apply_plan",
    "describe_settings",
    "plan_record",
    "read_runs",
    "read_state",
    "run_retention",
    "scheduled_retention",
]
