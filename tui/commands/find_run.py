"""``regtui find`` at work (the parser is in :mod:`tui.commands.find`).

``regtui find HOST``: tags by pattern across repositories, and where a digest is used.

``--tag PATTERN`` (a glob; a regular expression with ``--regex``; both match the whole tag)
lists matching tags of every repository. ``--digest DIGEST`` finds the tags that point at that
manifest, the indexes that have it as a platform, and the images that use it as config or layer
(only repositories that hold the digest are read). Both together: tags matching the pattern that
also match the digest. Each hit is printed as soon as it is found; on a terminal a progress line
runs on stderr. ``--json`` prints one document at the end, ``--json-lines`` one object per hit
as it is found. As with grep, the exit status is 1 when nothing is found (and a line on stderr
says so, outside the JSON modes), 2 for a usage mistake, 1 for a registry error.
"""

from __future__ import annotations

import argparse
import json
import sys

from tui.client.reference import DIGEST_RE
from tui.commands import _common as c
from tui.data.search import SearchProgress, search_registry
from tui.logic.escape import visible
from tui.logic.find import FindHit, HitKind, InvalidPatternError, TagPattern


def run(args: argparse.Namespace) -> int:
    return c.run(args, _find, usage=(InvalidPatternError,))


def progress_text(progress: SearchProgress) -> str:
    """``repositories 12/340 · manifests 1,200 · hits 3``: the progress line of a search."""
    total = f"{progress.repositories_seen}" + ("" if progress.catalog_complete else "+")
    return (
        f"repositories {progress.repositories_done}/{total} · "
        f"manifests {progress.manifests_read:,} · hits {progress.hits}"
    )


def describe(hit: FindHit) -> str:
    """One line per hit: ``repo:tag  kind  digest  platform``."""
    where = f"{hit.repository}:{hit.tag}"
    if hit.kind is HitKind.TAG and hit.digest is None:
        return where
    platform = f"  {hit.platform}" if hit.platform else ""
    return f"{where}  {hit.kind}  {hit.digest}{platform}"


async def _find(args: argparse.Namespace) -> int:
    if args.tag is None and args.digest is None:
        raise c.UsageError("say what to find: --tag PATTERN and/or --digest DIGEST")
    if args.regex and args.tag is None:
        raise c.UsageError("--regex needs --tag PATTERN")
    if args.digest is not None and not DIGEST_RE.match(args.digest):
        raise c.UsageError(f"not a digest: {args.digest!r} (sha256:...)")
    if args.json and args.json_lines:
        raise c.UsageError("--json or --json-lines, not both")
    if args.concurrency < 1:
        raise c.UsageError("--concurrency must be 1 or more")
    pattern = TagPattern(args.tag, regex=args.regex) if args.tag is not None else None
    host, registry = c.host_registry(args.host)
    progress = c.ProgressLine(progress_text)
    hits = 0
    found: list[dict[str, object]] = []
    async with c.client(
        args,
        registry,
        max_concurrency=args.concurrency,
        fast_after=0,  # a walk of the whole registry: aiohttp's pool from the first request
    ) as client:
        try:
            async for hit in search_registry(
                client,
                pattern=pattern,
                digest=args.digest,
                repositories=args.repo,
                parallel_repos=max(1, min(args.concurrency, 8)),
                on_progress=progress,
            ):
                hits += 1
                progress.clear()
                if args.json:
                    found.append(hit.to_json())  # one document, printed at the end
                    continue
                line = json.dumps(hit.to_json()) if args.json_lines else visible(describe(hit))
                sys.stdout.write(line + "\n")
                sys.stdout.flush()
        finally:
            progress.clear()
    if args.json:
        query = {"tag": args.tag, "regex": args.regex, "digest": args.digest}
        c.print_json({"registry": host, "query": query, "hits": found})
    if not hits:
        # As grep: nothing found is exit status 1 (an error stays one line and 1 as well).
        if not (args.json or args.json_lines):
            print(f"regtui: {nothing_found(args)}", file=sys.stderr)
        return c.EXIT_NOTHING_FOUND
    if not (args.json or args.json_lines) and sys.stderr.isatty():
        print(f"{hits} found.", file=sys.stderr)
    return c.EXIT_OK


def nothing_found(args: argparse.Namespace) -> str:
    """The one line that says a search found nothing, in the terms it was asked in."""
    where = f" in {', '.join(args.repo)}" if args.repo else ""
    if args.digest is not None and args.tag is not None:
        return f"no tag matching {args.tag!r} uses {args.digest}{where}"
    if args.digest is not None:
        return f"nothing uses {args.digest}{where}: no tag, index, config or layer"
    kind = "regular expression" if args.regex else "pattern"
    return f"no tag matches the {kind} {args.tag!r}{where}"
