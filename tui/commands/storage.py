"""Offline storage: ``regtui du --root DIR`` (and ``--config FILE``), and what it shares with
``regtui gc`` (:mod:`tui.commands.gc`): the storage root's check, the config.yml, JSON rows.

They run the bundled registry's own usage and GC code directly on a storage directory in
Distribution's layout (the bundled registry's, or a registry:2 volume), so they work on a stopped
or read-only registry. ``du`` is registered by :mod:`tui.commands.du`, which hands
``--root`` over to :func:`du_root`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tui.commands._common import (
    EXIT_ERROR,
    EXIT_OK,
    fail,
    print_json,
    repo_usage_table,
    say,
)
from tui.commands._common import size as _size

if TYPE_CHECKING:  # the server's GC and usage code is imported when gc or du --root runs
    from embedded_registry.offline import Config, UsageReport

V2_PREFIX = Path("docker") / "registry" / "v2"  # embedded_registry.storage.paths's


def add_du_root(subparsers: Any) -> None:
    """Add ``du --root DIR | --config FILE`` (the offline measure)."""
    du = subparsers.add_parser("du", help="exact storage report of a storage directory")
    where = du.add_mutually_exclusive_group(required=True)
    where.add_argument("--root", metavar="DIR", help="the registry's storage root")
    where.add_argument("--config", metavar="FILE", help=CONFIG_HELP)
    du.add_argument("--repo", action="append", help="only these repositories (repeatable)")
    du.add_argument("--json", action="store_true", help="machine-readable output")
    du.set_defaults(handler=du_root)


CONFIG_HELP = (
    "the registry's config.yml (as registry garbage-collect FILE): its storage, the filesystem "
    "root or storage.s3"
)


def check_root(root: str) -> Path | None:
    """``root`` when it holds Distribution's layout; ``None`` after a one-line error."""
    path = Path(root)
    if not (path / V2_PREFIX).is_dir():
        fail(f"{root} is not a registry storage root (no {V2_PREFIX.as_posix()} in it)")
        return None
    return path


def configured(args: argparse.Namespace) -> Config | None:
    """The config.yml of ``--config``, ``args.root`` set from it for the filesystem driver;
    ``None`` after a one-line error."""
    from embedded_registry.offline import ConfigError, load_config

    try:
        config = load_config(args.config, require_storage=True)
    except ConfigError as exc:
        fail(f"{args.config}: {exc}")
        return None
    if config.storage.s3 is None:
        args.root = str(config.storage.root)
    return config


def problem_json(repo: str, digest: str | None, message: str) -> dict[str, Any]:
    """A problem of a GC or usage report, as the JSON output has it."""
    return {"repository": repo, "digest": digest, "message": message}


def du_root_json(report: UsageReport) -> dict[str, Any]:
    """``du --root --json``: repositories as ``du HOST --json`` has them, with the offline
    extras (kinds of blobs, uploads, what GC would reclaim)."""
    rows = sorted(report.repositories, key=lambda r: (-r.referenced_bytes, r.name))
    return {
        "root": report.root,
        "is_estimate": False,
        "total_bytes": report.total_bytes,
        "blob_count": report.blob_count,
        "sum_of_repositories_bytes": sum(r.referenced_bytes for r in report.repositories),
        "unknown_sizes": 0,
        "reclaimable_bytes": report.reclaimable_bytes,
        "reclaimable_blobs": report.reclaimable_blobs,
        "reclaimable_bytes_untagged": report.reclaimable_bytes_untagged,
        "reclaimable_blobs_untagged": report.reclaimable_blobs_untagged,
        "protected_young_bytes": report.protected_young_bytes,
        "protected_young_blobs": report.protected_young_blobs,
        "grace_period_seconds": report.grace_period,
        "bytes_by_kind": dict(report.bytes_by_kind),
        "blobs_by_kind": dict(report.blobs_by_kind),
        "repositories": [
            {
                "name": r.name,
                "manifests": r.manifests,
                "tags": r.tags,
                "blobs": r.blobs,
                "referenced_bytes": r.referenced_bytes,
                "exclusive_bytes": r.exclusive_bytes,
                "unknown_sizes": 0,
            }
            for r in rows
        ],
        "upload_bytes": report.upload_bytes,
        "stale_upload_bytes": report.stale_upload_bytes,
        "uploads": [
            {
                "repository": u.repo,
                "upload_id": u.upload_id,
                "bytes": u.bytes,
                "idle_seconds": u.idle_seconds,
                "stale": u.stale,
            }
            for u in report.uploads
        ],
        "problems": [
            problem_json(p["repo"], p.get("digest"), p["message"]) for p in report.problems
        ],
        "elapsed_seconds": report.seconds,
    }


def du_root(args: argparse.Namespace) -> int:
    """``regtui du --root DIR`` or ``--config FILE``: the exact storage report."""
    from embedded_registry.offline import storage_usage

    report: UsageReport
    config = configured(args) if getattr(args, "config", None) else None
    if getattr(args, "config", None) and config is None:
        return EXIT_ERROR
    if config is not None and config.storage.s3 is not None:
        from embedded_registry.offline import StorageUnavailable, usage_configured

        try:
            report = usage_configured(config, grace_period=config.storage.gc_grace_period)
        except StorageUnavailable as exc:
            fail(str(exc))
            return EXIT_ERROR
    else:
        root = check_root(args.root)
        if root is None:
            return EXIT_ERROR
        try:
            report = storage_usage(root)
        except OSError as exc:
            fail(f"{args.root}: {exc}")
            return EXIT_ERROR
    quotas: list[dict[str, Any]] = []
    if config is not None and config.govern.quotas:  # no quota rules: their module unloaded
        from embedded_registry.offline import quota_usage

        quotas = quota_usage(
            config.govern.quotas, {r.name: r.referenced_bytes for r in report.repositories}
        )
    only = set(getattr(args, "repo", None) or ())
    if only:
        report.repositories = [r for r in report.repositories if r.name in only]
    if getattr(args, "json", False):
        print_json({**du_root_json(report), "quotas": quotas})
    else:
        _print_du(report)
        from tui.data.storage import quota_sentence

        for quota in quotas:
            print(quota_sentence(quota))
    return EXIT_OK


def _print_du(report: UsageReport) -> None:
    from tui.logic.fmt import count_of

    rows = sorted(report.repositories, key=lambda r: (-r.referenced_bytes, r.name))
    repo_usage_table(
        [(r.name, r.manifests, r.tags, r.referenced_bytes, r.exclusive_bytes) for r in rows]
    )
    kinds = ", ".join(
        f"{kind} {_size(size)} ({report.blobs_by_kind[kind]})"
        for kind, size in report.bytes_by_kind.items()
    )
    print(f"\ntotal: {_size(report.total_bytes)} in {count_of(report.blob_count, 'blob')}: {kinds}")
    stale = sum(1 for u in report.uploads if u.stale)
    print(
        f"uploads: {len(report.uploads)} ({_size(report.upload_bytes)}), "
        f"{stale} stale ({_size(report.stale_upload_bytes)})"
    )
    print(
        f"gc would reclaim {_size(report.reclaimable_bytes)} "
        f"({count_of(report.reclaimable_blobs, 'blob')}); with --delete-untagged "
        f"{_size(report.reclaimable_bytes_untagged)} "
        f"({count_of(report.reclaimable_blobs_untagged, 'blob')})"
    )
    from tui.data.storage import grace_sentence

    kept = grace_sentence(
        report.protected_young_bytes, report.protected_young_blobs, report.grace_period
    )
    if kept is not None:
        print(kept)
    for problem in report.problems:
        say(f"regtui: warning: {problem['repo']} {problem['digest']}: {problem['message']}")
