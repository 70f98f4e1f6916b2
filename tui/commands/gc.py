"""``regtui gc --root DIR`` / ``--config FILE``: the bundled registry's own GC run offline on a
storage (a directory in Distribution's layout, or the bucket a config.yml names), so it works on
a stopped or read-only registry. :func:`offline_parser` also parses ``du --root`` (of
:mod:`tui.commands.storage`) without loading the client, the app or the server.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import TYPE_CHECKING, Any

from tui.commands._common import EXIT_ERROR, EXIT_OK, Parser, fail, print_json, say, warn
from tui.commands._common import size as _size
from tui.commands.storage import CONFIG_HELP, add_du_root, check_root, configured, problem_json

if TYPE_CHECKING:  # the server's GC code is imported when gc runs
    from embedded_registry.offline import Config, GcReport

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


READ_ONLY_HINT = (
    "stop the registry, or make it read-only (storage.maintenance.readonly.enabled: true in "
    "its config.yml) and restart it; then run gc again, or pass --force to run anyway"
)


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``30m``, ``1h``, ``2d`` -> seconds."""
    match = _DURATION.match(text)
    if match is None:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (like 0, 90s, 30m, 1h)")
    return float(match.group(1)) * _UNITS[match.group(2)]


def register(subparsers: Any) -> None:
    """Add ``gc``."""
    _add_gc(subparsers)


_DU_ROOT_OPTIONS = {"--root": True, "--config": True, "--repo": True, "--json": False}


def _only_du_root_options(args: list[str]) -> bool:
    if not any(a.split("=", 1)[0] in ("--root", "--config") for a in args):
        return False
    rest = iter(args)
    for arg in rest:
        name = arg.split("=", 1)[0]
        if name not in _DU_ROOT_OPTIONS:
            return False
        if _DU_ROOT_OPTIONS[name] and "=" not in arg and next(rest, None) is None:
            return False
    return True


def offline_parser(argv: list[str], prog: str = "regtui") -> argparse.ArgumentParser | None:
    """A parser of just ``gc`` or ``du --root`` when ``argv`` is one of them, else None.

    Offline GC and du often run from cron on big directories: they skip importing the client
    library, the app and the server (a few hundred milliseconds of a run of a second).
    """
    if not argv:
        return None
    if argv[0] == "gc":
        add = _add_gc
    elif argv[0] == "du" and _only_du_root_options(argv[1:]):
        add = add_du_root
    else:
        return None
    parser = Parser(prog=prog)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    add(subparsers)
    return parser


def _add_gc(subparsers: Any) -> None:
    gc = subparsers.add_parser(
        "gc",
        help="garbage-collect a storage directory (offline, like registry garbage-collect)",
        description=(
            "Remove blobs that no manifest references, in a storage directory in Distribution's "
            "layout. Run it on a stopped or read-only registry "
            "(storage.maintenance.readonly.enabled: true): gc refuses while a bundled registry "
            "serves the directory or an upload session was written in the last minute, but a "
            "registry:2 that runs idle leaves no trace it could see. Blobs younger than the "
            "grace period are kept only where a push may be in flight (an open upload session, "
            "or blobs written since their repository's last manifest commit or delete): an "
            "image deleted before the registry stopped is freed at once. A dry run changes "
            "nothing."
        ),
    )
    where = gc.add_mutually_exclusive_group(required=True)
    where.add_argument("--root", metavar="DIR", help="the registry's storage root")
    where.add_argument("--config", metavar="FILE", help=CONFIG_HELP)
    gc.add_argument(
        "--dry-run", "-n", action="store_true", help="list what would go, remove nothing"
    )
    # registry garbage-collect's own short flag, kept for hands used to it (not in --help: -n
    # is the one short flag for --dry-run in every command, as in rsync and git).
    gc.add_argument("-d", dest="dry_run", action="store_true", help=argparse.SUPPRESS)
    gc.add_argument(
        "--delete-untagged",
        "-m",
        action="store_true",
        help="also remove manifests no tag reaches (children of tagged indexes and referrers of "
        "kept manifests stay)",
    )
    gc.add_argument(
        "--remove-empty-repos",
        action="store_true",
        help="remove repositories left without manifests, tags or uploads",
    )
    gc.add_argument(
        "--grace-period",
        type=parse_duration,
        default=None,  # embedded_registry.gc's DEFAULT_GRACE_PERIOD, filled in by _gc_handler
        metavar="DURATION",
        help="keep what a push in flight may need if written more recently than this "
        "(default 1h; 0 for none)",
    )
    gc.add_argument(
        "--force",
        action="store_true",
        help="run even though a registry seems to serve the directory (a dry run never refuses)",
    )
    gc.add_argument("--json", action="store_true", help="machine-readable output")
    gc.set_defaults(handler=_gc_handler)


def _gc_handler(args: argparse.Namespace) -> int:
    from embedded_registry.offline import DEFAULT_GRACE_PERIOD

    if args.grace_period is None:
        args.grace_period = DEFAULT_GRACE_PERIOD
    return gc_root(args)


def registry_answers(host: str, port: int, *, tls: bool, timeout: float = 2.0) -> bool:
    """Whether a registry answers ``GET /v2/`` on ``host:port`` (200, or 401 asking who is
    there, or Distribution's API version header); never raises."""
    import http.client
    import ssl

    connection: http.client.HTTPConnection
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # only asking whether something serves there
        connection = http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
    else:
        connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", "/v2/")
        response = connection.getresponse()
        response.read(4096)
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()
    return (
        response.status in (200, 401)
        or response.getheader("Docker-Distribution-API-Version") is not None
    )


def serving_warning(config: Config, path: str) -> str | None:
    """When the registry ``config`` describes answers on its ``http.addr``: why collecting now
    is unsafe (Distribution keeps no lock a second process could see), and what to do."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(
        config.http.host, config.http.host
    )
    if not registry_answers(host, config.http.port, tls=config.http.tls is not None):
        return None
    where = f"[{host}]" if ":" in host else host
    return (
        f"a registry answers on {where}:{config.http.port}, the http.addr of {path}: garbage "
        "collection while it serves is unsafe (Distribution takes no lock: blobs of a push in "
        "flight, or pushed during the sweep, can be deleted). Stop it, or make it read-only "
        "(storage.maintenance.readonly.enabled: true) and restart it, before a real run"
    )


def _progress(message: str) -> None:
    print(f"regtui: {message}", file=sys.stderr, flush=True)


def _gc_on_driver(args: argparse.Namespace, config: Config) -> GcReport | None:
    from embedded_registry.offline import (
        GcBusy,
        RegistryActive,
        StorageUnavailable,
        collect_garbage_configured,
    )

    try:
        return collect_garbage_configured(
            config,
            refuse_if_active=not args.force and not args.dry_run,
            progress=None if args.json else _progress,
            dry_run=args.dry_run,
            delete_untagged=args.delete_untagged,
            remove_empty_repos=args.remove_empty_repos,
            grace_period=args.grace_period,
        )
    except RegistryActive as exc:
        fail(f"a registry seems to be writing to the bucket: {exc}; {READ_ONLY_HINT}")
    except (StorageUnavailable, GcBusy) as exc:
        fail(str(exc))
    return None


def gc_root(args: argparse.Namespace) -> int:
    """``regtui gc --root DIR`` or ``--config FILE``: plan or run a garbage collection and
    report it."""
    from embedded_registry.offline import (
        GcBusy,
        RegistryActive,
        StorageDriverError,
        collect_garbage,
    )

    if getattr(args, "config", None):
        config = configured(args)
        if config is None:
            return EXIT_ERROR
        warning = serving_warning(config, args.config)
        if warning is not None:
            warn(warning)
        if config.storage.s3 is not None:
            driver_report = _gc_on_driver(args, config)
            if driver_report is None:
                return EXIT_ERROR
            return _report_gc(args, driver_report)
    root = check_root(args.root)
    if root is None:
        return EXIT_ERROR
    try:
        report = collect_garbage(
            root,
            dry_run=args.dry_run,
            delete_untagged=args.delete_untagged,
            remove_empty_repos=args.remove_empty_repos,
            grace_period=args.grace_period,
            refuse_if_active=not args.force and not args.dry_run,
        )
    except RegistryActive as exc:
        fail(f"a registry seems to be writing to {args.root}: {exc}; {READ_ONLY_HINT}")
        return EXIT_ERROR
    except (GcBusy, StorageDriverError) as exc:
        fail(f"{args.root}: {exc}")
        return EXIT_ERROR
    except OSError as exc:
        fail(f"{args.root}: {exc}")
        return EXIT_ERROR
    return _report_gc(args, report)


def _report_gc(args: argparse.Namespace, report: GcReport) -> int:
    if args.json:
        print_json(gc_json(report))
    else:
        _print_gc(report)
    for problem in report.problems:
        where = f"{problem.repo} {problem.digest or ''}".strip()
        warn(f"{where}: {problem.message} (kept)")
    return EXIT_OK


def gc_json(report: GcReport) -> dict[str, Any]:
    """``gc --json``: the report with the CLI's JSON convention (docs/json.md). Its removals
    are an iterator, each made as :func:`print_json` writes it: a GC of 200,000 images
    removes hundreds of thousands of things, and their objects and text would be held at once
    (the peak memory of the run)."""
    return {
        "root": report.root,
        "dry_run": report.dry_run,
        "delete_untagged": report.delete_untagged,
        "remove_empty_repos": report.remove_empty_repos,
        "grace_period_seconds": report.grace_period,
        "marked_blobs": report.marked_blobs,
        "blobs_total": report.blobs_total,
        "eligible_blobs": len(report.eligible_blobs),
        "kept_young_blobs": report.kept_young_blobs,
        "refreshed_blobs": report.refreshed_blobs,
        "blob_bytes": report.blob_bytes,
        "bytes_planned": report.bytes_planned,
        "bytes_freed": report.bytes_freed,
        "elapsed_seconds": report.seconds,
        "removals": (
            {
                "kind": r.kind,
                "path": r.path,
                "size": r.size,
                "digest": r.digest,
                "repository": r.repo,
                "tag": r.tag,
                "removed": r.removed,
                "skipped": r.skipped,
            }
            for r in report.removals
        ),
        "problems": [problem_json(p.repo, p.digest, p.message) for p in report.problems],
    }


def _removal_line(verb: str, removal: Any) -> str:
    """``removed blob sha256:… (2.0 MiB)``, ``removed manifest team/py@sha256:…``, ``removed
    tag team/py:old``, ``removed repository team/py (101 B)``: one sentence each."""
    size = f" ({_size(removal.size)})"
    kind = removal.kind.replace("_", " ")  # layer_link -> layer link (JSON keeps the kind)
    if removal.kind == "repository":
        return f"{verb} repository {removal.repo or removal.path}{size}"
    if removal.repo and removal.tag and not removal.digest:
        return f"{verb} {kind} {removal.repo}:{removal.tag}{size}"
    what = removal.digest or removal.tag or removal.path
    where = f" in {removal.repo}" if removal.repo else ""
    return f"{verb} {kind} {what}{where}{size}"


def _print_gc(report: GcReport) -> None:
    from tui.logic.fmt import count_of

    verb = "would remove" if report.dry_run else "removed"
    for removal in report.removals:
        if not report.dry_run and not removal.removed:
            continue
        say(_removal_line(verb, removal))
    blobs = len(report.eligible_blobs) - len(report.refreshed_blobs)
    manifests = sum(1 for r in report.removals if r.kind == "manifest")
    total = report.bytes_planned if report.dry_run else report.bytes_freed
    print(
        f"{count_of(report.marked_blobs, 'blob')} marked; {count_of(blobs, 'blob')} and "
        f"{count_of(manifests, 'manifest')} "
        f"{'eligible for deletion' if report.dry_run else 'deleted'}: "
        f"{_size(report.blob_bytes)} of blobs, {_size(total)} in all"
        f"{' (dry run: nothing removed)' if report.dry_run else ''}."
    )
    if report.kept_young_blobs:
        were = "was" if report.kept_young_blobs == 1 else "were"
        print(
            f"{count_of(report.kept_young_blobs, 'unreferenced blob')} {were} kept: younger "
            f"than the grace period ({report.grace_period:.0f} s), where a push may be in flight."
        )
    if report.refreshed_blobs:
        count = len(report.refreshed_blobs)
        print(
            f"{count_of(count, 'blob')} {'was' if count == 1 else 'were'} used by a client "
            "during the sweep and kept."
        )
