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
import asyncio
import json
import sys
import time

from tui.client import InvalidReferenceError, RegistryClient, RegistryClientError
from tui.client.reference import DIGEST_RE, parse_registry
from tui.commands.access import PasswordError, read_password
from tui.data.search import SearchProgress, search_registry
from tui.logic.escape import visible
from tui.logic.find import FindHit, HitKind, InvalidPatternError, TagPattern

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
EXIT_NOTHING_FOUND = 1
"""As grep: a search that finds nothing exits 1."""


class UsageError(Exception):
    """A mistake in the command line: exit code 2."""


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_find(args))
    except (UsageError, InvalidPatternError, InvalidReferenceError, PasswordError) as error:
        print(f"regtui: error: {visible(str(error))}", file=sys.stderr)
        return EXIT_USAGE
    except RegistryClientError as error:
        print(f"regtui: error: {visible(str(error))}", file=sys.stderr)
        return EXIT_ERROR


class _ProgressLine:
    """``repositories 12/340 · manifests 1,200 · hits 3`` on stderr (a terminal only)."""

    def __init__(self) -> None:
        self.enabled = sys.stderr.isatty()
        self._last = 0.0
        self._shown = False

    def __call__(self, progress: SearchProgress) -> None:
        now = time.monotonic()
        if not self.enabled or now - self._last < 0.1:
            return
        self._last = now
        self._shown = True
        total = f"{progress.repositories_seen}" + ("" if progress.catalog_complete else "+")
        sys.stderr.write(
            f"\r\x1b[Krepositories {progress.repositories_done}/{total} · "
            f"manifests {progress.manifests_read:,} · hits {progress.hits}"
        )
        sys.stderr.flush()

    def clear(self) -> None:
        if self._shown:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
            self._shown = False


def describe(hit: FindHit) -> str:
    """One line per hit: ``repo:tag  kind  digest  platform``."""
    where = f"{hit.repository}:{hit.tag}"
    if hit.kind is HitKind.TAG and hit.digest is None:
        return where
    platform = f"  {hit.platform}" if hit.platform else ""
    return f"{where}  {hit.kind}  {hit.digest}{platform}"


async def _find(args: argparse.Namespace) -> int:
    if args.tag is None and args.digest is None:
        raise UsageError("say what to find: --tag PATTERN and/or --digest DIGEST")
    if args.regex and args.tag is None:
        raise UsageError("--regex needs --tag PATTERN")
    if args.digest is not None and not DIGEST_RE.match(args.digest):
        raise UsageError(f"not a digest: {args.digest!r} (sha256:...)")
    if args.json and args.json_lines:
        raise UsageError("--json or --json-lines, not both")
    if args.concurrency < 1:
        raise UsageError("--concurrency must be 1 or more")
    pattern = TagPattern(args.tag, regex=args.regex) if args.tag is not None else None
    scheme, host = parse_registry(args.host)
    progress = _ProgressLine()
    hits = 0
    found: list[dict[str, object]] = []
    async with RegistryClient(
        f"{scheme}://{host}" if scheme else host,
        username=args.username,
        password=read_password(args),
        insecure=args.insecure,
        ca_cert=args.ca_cert,
        timeout=args.timeout,
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
        json.dump({"registry": host, "query": query, "hits": found}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    if not hits:
        # As grep: nothing found is exit status 1 (an error stays one line and 1 as well).
        if not (args.json or args.json_lines):
            print(f"regtui: {nothing_found(args)}", file=sys.stderr)
        return EXIT_NOTHING_FOUND
    if not (args.json or args.json_lines) and sys.stderr.isatty():
        print(f"{hits} found.", file=sys.stderr)
    return EXIT_OK


def nothing_found(args: argparse.Namespace) -> str:
    """The one line that says a search found nothing, in the terms it was asked in."""
    where = f" in {', '.join(args.repo)}" if args.repo else ""
    if args.digest is not None and args.tag is not None:
        return f"no tag matching {args.tag!r} uses {args.digest}{where}"
    if args.digest is not None:
        return f"nothing uses {args.digest}{where}: no tag, index, config or layer"
    kind = "regular expression" if args.regex else "pattern"
    return f"no tag matches the {kind} {args.tag!r}{where}"
