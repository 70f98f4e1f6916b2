"""``regtui scrub --root DIR | --config FILE | HOST``: are the stored bytes the pushed bytes?

Offline (``--root``, ``--config`` with the filesystem or ``storage.s3``), the bundled registry's
own scrub (:mod:`embedded_registry.gc.scrub`) runs here on the storage; with ``HOST`` the bundled
registry runs it itself (its administrative extension, ``POST /v2/_regtui/ext/scrub``) and
streams its progress. Either way: a table (or ``--json``) of every problem with the images it
breaks; exit 0 when clean, 1 when anything is wrong, 2 for a usage mistake.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import TYPE_CHECKING, Any

from tui.commands import _common as c

if TYPE_CHECKING:
    from embedded_registry.offline import ScrubProgress, ScrubReport
    from tui.client.ext import ScrubResult

CONFIG_HELP = "the registry's config.yml: its storage, the filesystem root or storage.s3"


def register(subparsers: Any) -> None:
    scrub = subparsers.add_parser(
        "scrub",
        parents=[c.common_parser()],
        help="verify every blob against its digest, every manifest's references and every link",
        description=(
            "Read every blob and check it against its digest, every manifest's references "
            "(config, layers, index children, subject) and every link (layer, revision and tag "
            "links). Each problem is one line with the images it breaks. A run that stops "
            "resumes where it stopped. --repair does only what cannot lose data: a corrupt "
            "blob is moved aside into quarantine (the next push of it heals the store) and a "
            "link to nothing is removed."
        ),
    )
    scrub.add_argument("host", metavar="HOST", nargs="?", help="a bundled registry to scrub")
    scrub.add_argument("--root", metavar="DIR", help="the registry's storage root (offline)")
    scrub.add_argument("--config", metavar="FILE", help=CONFIG_HELP)
    scrub.add_argument(
        "--repair",
        action="store_true",
        help="quarantine corrupt blobs and remove links to nothing (never anything else)",
    )
    scrub.add_argument(
        "--state",
        metavar="FILE",
        help="keep the progress in this file (default: regtui/scrub/state.json in the storage)",
    )
    scrub.add_argument(
        "--restart", action="store_true", help="start over instead of resuming a stopped run"
    )
    scrub.add_argument(
        "--jobs", type=int, default=None, metavar="N", help="blobs hashed at once (default 2)"
    )
    scrub.set_defaults(handler=_dispatch)


def _dispatch(args: argparse.Namespace) -> int:
    given = [x for x in (args.host, args.root, args.config) if x is not None]
    if len(given) != 1:
        c.fail("scrub takes one of HOST, --root DIR or --config FILE")
        return c.EXIT_USAGE
    if args.jobs is not None and not 1 <= args.jobs <= 64:
        c.fail("--jobs must be between 1 and 64")
        return c.EXIT_USAGE
    if args.host is not None:
        if args.state is not None or args.jobs is not None:
            c.fail("--state and --jobs are for --root and --config: the registry keeps its own")
            return c.EXIT_USAGE
        return c.run(args, _scrub_host)
    return _scrub_offline(args)


# -- offline -----------------------------------------------------------------------------------


def _describe(progress: ScrubProgress) -> str:
    if progress.phase == "blobs":
        return (
            f"scrub: blobs {progress.fraction:.0%}: {progress.blobs} read, "
            f"{c.size(progress.bytes)}, {progress.problems} problems"
        )
    return (
        f"scrub: {progress.repositories} repositories, {progress.manifests} manifests, "
        f"{progress.problems} problems"
    )


def _scrub_offline(args: argparse.Namespace) -> int:
    from embedded_registry.offline import (
        DEFAULT_JOBS,
        StorageDriverError,
        StorageUnavailable,
        scrub_on,
    )
    from tui.commands.gc import serving_warning
    from tui.commands.storage import check_root, configured

    line = c.ProgressLine(_describe)
    jobs = args.jobs or DEFAULT_JOBS

    async def on_driver(driver: Any) -> tuple[ScrubReport, str | None]:
        try:
            return await scrub_on(
                driver,
                repair=args.repair,
                jobs=jobs,
                state_file=args.state,
                restart=args.restart,
                progress=line,
            )
        finally:
            await driver.close()

    try:
        if args.config is not None:
            config = configured(args)
            if config is None:
                return c.EXIT_ERROR
            if args.repair:
                warning = serving_warning(config, args.config)
                if warning is not None:
                    c.warn(warning.replace("garbage collection", "a repair"))
            if config.storage.s3 is not None:
                from embedded_registry.offline import open_storage

                async def on_s3() -> tuple[ScrubReport, str | None]:
                    storage = await open_storage(config)
                    return await on_driver(storage.driver)  # type: ignore[attr-defined]

                report, warning = asyncio.run(on_s3())
                return _report(args, report, warning, line)
        root = check_root(args.root)
        if root is None:
            return c.EXIT_ERROR
        from embedded_registry.offline import FilesystemDriver

        report, warning = asyncio.run(on_driver(FilesystemDriver(root)))
    except StorageUnavailable as exc:
        line.clear()
        c.fail(str(exc))
        return c.EXIT_ERROR
    except (StorageDriverError, OSError) as exc:
        line.clear()
        c.fail(f"{args.root or args.config}: {exc}")
        return c.EXIT_ERROR
    except KeyboardInterrupt:
        line.clear()
        c.fail("interrupted: the next run resumes where this one stopped")
        return c.EXIT_INTERRUPTED
    return _report(args, report, warning, line)


def _report(args: argparse.Namespace, report: ScrubReport, warning: str | None, line: Any) -> int:
    line.clear()
    if warning is not None:
        c.warn(warning)
    document = report.to_json()
    return _print(args, document)


# -- over the API ------------------------------------------------------------------------------


async def _scrub_host(args: argparse.Namespace) -> int:
    from tui.client.ext import scrub_registry

    _host, registry = c.host_registry(args.host)
    line = c.ProgressLine(_describe_remote)
    async with c.client(args, registry) as client:
        result: ScrubResult = await scrub_registry(
            client, repair=args.repair, restart=args.restart, progress=line
        )
    line.clear()
    return _print(args, result.document)


def _describe_remote(progress: dict[str, Any]) -> str:
    def number(key: str) -> int:
        value = progress.get(key, 0)
        return int(value) if isinstance(value, int | float) else 0

    if progress.get("phase") == "blobs":
        fraction = progress.get("fraction", 0.0)
        share = float(fraction) if isinstance(fraction, int | float) else 0.0
        return (
            f"scrub: blobs {share:.0%}: {number('blobs')} read, {c.size(number('bytes'))}, "
            f"{number('problems')} problems"
        )
    return (
        f"scrub: {number('repositories')} repositories, {number('manifests')} manifests, "
        f"{number('problems')} problems"
    )


def _print(args: argparse.Namespace, document: dict[str, Any]) -> int:
    problems = document.get("problems") or []
    errors = [p for p in problems if p.get("severity", "error") == "error"]
    if args.json:
        c.print_json(document)
    else:
        _table(document, problems)
    return c.EXIT_OK if not errors else c.EXIT_ERROR


def _table(document: dict[str, Any], problems: list[dict[str, Any]]) -> None:
    from tui.logic.fmt import count_of

    rows = [
        [
            str(p.get("severity", "error")),
            str(p.get("kind", "")),
            c.short_digest(p.get("digest")) or str(p.get("key", "")).rsplit("/", 3)[-3],
            str(p.get("repository") or "-"),
            str(p.get("message", "")),
            ", ".join(p.get("images") or []) or "-",
            *([str(p.get("repaired") or "-")] if document.get("repair") else []),
        ]
        for p in problems
    ]
    headers = ["LEVEL", "PROBLEM", "OBJECT", "REPOSITORY", "DETAIL", "BREAKS"]
    if document.get("repair"):
        headers.append("REPAIR")
    if rows:
        c.table(rows, headers)
    errors = sum(1 for p in problems if p.get("severity", "error") == "error")
    summary = (
        f"{count_of(int(document.get('blobs', 0)), 'blob')} "
        f"({c.size(int(document.get('bytes', 0)))}), "
        f"{count_of(int(document.get('repositories', 0)), 'repository')}, "
        f"{count_of(int(document.get('manifests', 0)), 'manifest')}, "
        f"{count_of(int(document.get('links', 0)), 'link')} checked in "
        f"{float(document.get('elapsed_seconds', 0.0)):.1f} s"
    )
    verdict = "clean" if not errors else f"{errors} problem{'s' if errors != 1 else ''}"
    broken = document.get("broken_images") or []
    if broken:
        verdict += f", {len(broken)} broken image{'s' if len(broken) != 1 else ''}"
    if document.get("resumed"):
        summary += " (resumed)"
    c.say(f"scrub: {verdict}: {summary}")
