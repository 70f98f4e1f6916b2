"""``regtui du HOST``: storage per repository over the API (the bundled registry's exact report,
an estimate from manifests elsewhere); ``du --root DIR`` is handed to :mod:`tui.commands.storage`.

Both print the same table (:func:`tui.commands._common.repo_usage_table`) and the same
repository objects in JSON.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from tui.commands import _common as c

UNREFERENCED = "unreferenced"
"""The storage report's kind of blob that no manifest references (garbage before GC)."""

if TYPE_CHECKING:
    from tui.client import RegistryClient
    from tui.client.ext import StorageReport


def register(subparsers: Any) -> None:
    du = subparsers.add_parser(
        "du",
        parents=[c.common_parser()],
        help="storage per repository: over the API (HOST) or offline from a directory (--root DIR)",
    )
    du.add_argument("host", metavar="HOST", nargs="?", help="registry to estimate")
    du.add_argument("--root", metavar="DIR", help="measure a storage directory directly (offline)")
    du.add_argument(
        "--config",
        metavar="FILE",
        help="measure the storage a registry config.yml names (a directory or storage.s3)",
    )
    du.add_argument("--repo", action="append", help="only these repositories (repeatable)")
    du.add_argument(
        "--estimate",
        action="store_true",
        help="always estimate from manifests, even where the registry can report its storage",
    )
    du.add_argument("--concurrency", type=int, help="parallel requests (default: 16)")
    du.set_defaults(handler=_du_dispatch)


def _du_dispatch(args: argparse.Namespace) -> int:
    if args.root is not None or args.config is not None:
        if args.host is not None or (args.root is not None and args.config is not None):
            c.fail("du takes one of HOST, --root DIR or --config FILE")
            return c.EXIT_USAGE
        from tui.commands.storage import du_root  # the offline measure, beside offline GC

        return int(du_root(args))
    if args.host is None:
        c.fail("du needs HOST (estimate over the API) or --root DIR (exact, offline)")
        return c.EXIT_USAGE
    return c.run(args, _du)


def repo_json(
    name: str, manifests: int, tags: int, blobs: int, referenced: int, exclusive: int, unknown: int
) -> dict[str, Any]:
    """One repository in ``du --json``, over the API and offline alike."""
    return {
        "name": name,
        "manifests": manifests,
        "tags": tags,
        "blobs": blobs,
        "referenced_bytes": referenced,
        "exclusive_bytes": exclusive,
        "unknown_sizes": unknown,
    }


async def _du(args: argparse.Namespace) -> int:
    from tui.logic.fmt import count_of

    host, registry = c.host_registry(args.host)
    # Even on loopback, where the registry shares our CPU, 16 requests in flight cost less CPU
    # per request than 4 (both event loops handle more per wake-up): measured in bench_client.
    concurrency = args.concurrency or 16
    # fast_after=0: an estimate reads every manifest, through aiohttp's pool from the start.
    async with c.client(
        args, registry, max_concurrency=max(1, concurrency), fast_after=0
    ) as client:
        exact = None if args.estimate else await _storage_report(client)
        if exact is not None:
            data = _exact_json(exact, args.repo)
        else:
            from dataclasses import asdict

            from tui.client.survey import estimate_registry

            data = _estimate_json(asdict(await estimate_registry(client, args.repo)))
    if args.json:
        c.print_json({"registry": host, **data})
        return c.EXIT_OK
    c.repo_usage_table(
        [
            (r["name"], r["manifests"], r["tags"], r["referenced_bytes"], r["exclusive_bytes"])
            for r in data["repositories"]
        ]
    )
    shared = c.size(sharing_saves(data["sum_of_repositories_bytes"], data["referenced_bytes"]))
    kind = "estimate" if data["is_estimate"] else "exact"
    print(
        f"\ntotal ({kind}): {c.size(data['total_bytes'])} in "
        f"{count_of(data['blob_count'], 'blob')}; sharing saves {shared}"
    )
    if data["unknown_sizes"]:
        unknown = data["unknown_sizes"]
        have = "has" if unknown == 1 else "have"
        print(f"{count_of(unknown, 'schema1 layer')} {have} no size in the manifests.")
    print(data["note"])
    from tui.data.storage import quota_sentence

    for quota in data.get("quotas", []):
        print(quota_sentence(quota))
    return c.EXIT_OK


def sharing_saves(sum_of_repositories: int, referenced: int) -> int:
    """What storing each blob once saves: the repositories' referenced bytes added up, less the
    referenced bytes counted once. Garbage (blobs no manifest references) is no part of either
    side, so it never makes the saving negative."""
    return max(0, sum_of_repositories - referenced)


def _estimate_json(estimate: dict[str, Any]) -> dict[str, Any]:
    return {
        "is_estimate": True,
        "total_bytes": estimate["total_bytes"],
        "referenced_bytes": estimate["total_bytes"],  # an estimate sees referenced blobs only
        "blob_count": estimate["blob_count"],
        "sum_of_repositories_bytes": estimate["sum_of_repos"],
        "unknown_sizes": estimate["unknown_sizes"],
        "reclaimable_bytes": None,
        "quotas": [],
        "repositories": [
            repo_json(
                r["name"],
                r["manifests"],
                r["tags"],
                r["blobs"],
                r["bytes"],
                r["exclusive_bytes"],
                r["unknown_sizes"],
            )
            for r in estimate["repos"]
        ],
        "note": estimate["note"],
    }


async def _storage_report(client: RegistryClient) -> StorageReport | None:
    """The bundled registry's exact report, or ``None`` from any other registry, and when the
    report is refused (after a warning that gives the registry's reason and what to do)."""
    from tui.client import AuthError, RefusedError
    from tui.client.ext import storage_usage, supports_extension

    try:
        if not await supports_extension(client):
            return None
        return await storage_usage(client)
    except RefusedError as refused:
        c.warn(f"{refused} Estimating from manifests instead.")
        return None
    except AuthError:
        return None  # 401: a registry that guards unknown paths; the estimate says what is wrong


def _exact_json(report: StorageReport, only: list[str] | None) -> dict[str, Any]:
    """The storage report in the estimate's shape, so that scripts read both alike."""
    from tui.data.storage import grace_sentence

    repos = [
        repo_json(r.name, r.manifests, r.tags, r.blobs, r.referenced_bytes, r.exclusive_bytes, 0)
        for r in sorted(report.repositories, key=lambda r: (-r.referenced_bytes, r.name))
        if not only or r.name in only
    ]
    kept = grace_sentence(
        report.protected_young_bytes, report.protected_young_blobs, report.grace_period
    )
    return {
        "is_estimate": False,
        "total_bytes": report.total_bytes,
        "referenced_bytes": report.total_bytes - report.bytes_by_kind.get(UNREFERENCED, 0),
        "blob_count": report.blob_count,
        "sum_of_repositories_bytes": sum(r.referenced_bytes for r in report.repositories),
        "unknown_sizes": 0,
        "reclaimable_bytes": report.reclaimable_bytes,
        "repositories": repos,
        "quotas": [
            {
                "rule": q.rule,
                "scope": q.scope,
                "name": q.name,
                "limit_bytes": q.limit,
                "used_bytes": q.used,
            }
            for q in report.quotas
        ],
        "note": (
            "Exact, from the registry's storage (every blob on disk, garbage included); "
            f"GC would reclaim {c.size(report.reclaimable_bytes)}."
        )
        + (f"\n{kept}" if kept else ""),
    }
