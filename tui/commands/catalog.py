"""Listing commands: ``ls HOST`` (the catalog), ``tags HOST/REPO`` and ``refs HOST`` (every
``HOST/REPO:TAG`` of a registry, one line each, read concurrently page by page)."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator, Sequence

from tui.commands import _common as c

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy reads both)

if TYPE_CHECKING:  # neither typing nor datetime is loaded on the quick path of tags
    from datetime import datetime
    from typing import Any

    from tui.client import Descriptor, Reference, RegistryClient

DEFAULT_PAGE_SIZE = 1000
DEFAULT_CONCURRENCY = 16


def register(subparsers: Any) -> None:
    common = c.common_parser()
    ls = subparsers.add_parser(
        "ls", parents=[common], help="list the repositories of a registry (its catalog)"
    )
    ls.add_argument("host", metavar="HOST", help="registry, e.g. 127.0.0.1:5000")
    ls.set_defaults(handler=c.handler(_ls, quick=_quick_ls))

    tags = subparsers.add_parser("tags", parents=[common], help="list the tags of a repository")
    tags.add_argument("repo", metavar="HOST/REPO")
    tags.add_argument(
        "--long", "-l", action="store_true", help="also the digest and type of each tag"
    )
    tags.set_defaults(handler=c.handler(_tags, quick=_quick_tags))

    refs = subparsers.add_parser(
        "refs",
        parents=[common],
        help="every HOST/REPO:TAG of a registry, one per line (catalog and tags, concurrently)",
        description=(
            "Print every HOST/REPO:TAG of a registry, one per line, in catalog order: the "
            "catalog and each repository's tags are read page by page, several repositories "
            "at once. Repositories that disappear meanwhile are skipped."
        ),
    )
    refs.add_argument("host", metavar="HOST", help="registry, e.g. 127.0.0.1:5000")
    refs.add_argument(
        "--repo-filter",
        action="append",
        metavar="GLOB",
        help="only repositories matching this shell pattern, e.g. 'team/*' (repeatable)",
    )
    refs.add_argument(
        "--concurrency",
        type=_positive,
        default=DEFAULT_CONCURRENCY,
        help=f"repositories read at once (default: {DEFAULT_CONCURRENCY})",
    )
    refs.add_argument(
        "--page-size",
        type=_positive,
        default=DEFAULT_PAGE_SIZE,
        metavar="N",
        help=f"entries asked for per page of catalog and tags (default: {DEFAULT_PAGE_SIZE})",
    )
    refs.set_defaults(handler=c.handler(_refs))


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"not a positive whole number: {text!r}")
    return value


def _quick(args: argparse.Namespace, registry: str, path: str, key: str) -> list[str] | None:
    """The names of a one-page answer read without the full client, or ``None``."""
    from tui.client.quick import quick_names

    if args.password_stdin:
        return None
    return quick_names(
        registry,
        path,
        key,
        insecure=args.insecure,
        ca_cert=args.ca_cert,
        username=args.username,
        timeout=args.timeout,
    )


def _quick_ls(args: argparse.Namespace) -> int | None:
    from tui.client.reference import InvalidReferenceError

    try:
        host, registry = c.host_registry(args.host)
    except InvalidReferenceError:
        return None  # the full command says what is wrong
    repos = _quick(args, registry, "/v2/_catalog", "repositories")
    return None if repos is None else _show_repos(args, host, repos)


async def _ls(args: argparse.Namespace) -> int:
    host, registry = c.host_registry(args.host)
    async with c.client(args, registry) as client:
        repos = await client.catalog()
    return _show_repos(args, host, repos)


def _show_repos(args: argparse.Namespace, host: str, repos: list[str]) -> int:
    if args.json:
        c.print_json({"registry": host, "repositories": repos})
    else:
        for repo in repos:
            c.say(repo)
    return c.EXIT_OK


def _quick_tags(args: argparse.Namespace) -> int | None:
    from tui.client.reference import InvalidReferenceError

    if args.long:
        return None  # a HEAD per tag (and push and pull times): the full client's pool
    try:
        ref = c.repo_ref(args.repo)
    except (c.UsageError, InvalidReferenceError):
        return None  # the full command says what is wrong
    tags = _quick(args, c.registry_of(ref), f"/v2/{ref.repository}/tags/list", "tags")
    if tags is None:
        return None
    immutable: list[str] = []
    if args.json:  # the bundled registry's immutable tags; [] from any other registry
        path = immutable_path(ref.repository)
        immutable = _quick(args, c.registry_of(ref), path, "tags") or []
    return _show_tags(args, ref, tags, [], immutable=immutable)


def immutable_path(repo: str) -> str:
    """Where the bundled registry lists the tags ``regtui.immutable`` holds in ``repo``."""
    return f"/v2/{repo}/_regtui/immutable"


async def _immutable_tags(client: RegistryClient, repo: str) -> list[str]:
    """The tags of ``repo`` the registry holds immutable (``[]`` from one that does not say)."""
    response = await client.request("GET", immutable_path(repo))
    if response.status_code != 200:
        return []
    try:
        listed = response.json().get("tags")
    except (ValueError, AttributeError):
        return []
    return [t for t in listed if isinstance(t, str)] if isinstance(listed, list) else []


async def _tags(args: argparse.Namespace) -> int:
    import asyncio

    from tui.client import repository_storage

    ref = c.repo_ref(args.repo)
    async with c.client(args, c.registry_of(ref)) as client:
        tags = await client.list_tags(ref.repository)
        heads = (
            await asyncio.gather(*(client.head_manifest(ref.repository, t) for t in tags))
            if args.long
            else []
        )
        # The bundled registry tells when each tag was pushed and last pulled (others: 404).
        report = await repository_storage(client, ref.repository) if args.long else None
        immutable = (
            [t.tag for t in report.tags if t.immutable is not None]
            if report is not None
            else await _immutable_tags(client, ref.repository)
            if args.json
            else []
        )
    times = (
        {t.tag: {"pushed": _rfc3339(t.pushed), "pulled": _rfc3339(t.pulled)} for t in report.tags}
        if report is not None
        else None
    )
    return _show_tags(args, ref, tags, heads, times, immutable)


def _rfc3339(value: datetime | None) -> str | None:
    if value is None:
        return None
    from datetime import UTC

    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _show_tags(
    args: argparse.Namespace,
    ref: Reference,
    tags: list[str],
    heads: Sequence[Descriptor],
    times: dict[str, dict[str, str | None]] | None = None,
    immutable: list[str] | None = None,
) -> int:
    """``immutable``: the tags the registry holds immutable (the bundled registry's
    ``regtui.immutable``); ``tags --json`` lists them under ``"immutable"``."""
    held = set(immutable or ())
    if args.json:
        data: dict[str, Any] = {
            "registry": ref.registry,
            "repository": ref.repository,
            "tags": tags,
            "immutable": [tag for tag in tags if tag in held],
        }
        if args.long:
            data["manifests"] = [
                {
                    "tag": tag,
                    "digest": h.digest,
                    "media_type": h.media_type,
                    "size": h.size,
                    # the bundled registry: when the tag was pushed and its image last pulled
                    **((times or {}).get(tag) or {"pushed": None, "pulled": None}),
                    "immutable": tag in held,
                }
                for tag, h in zip(tags, heads, strict=True)
            ]
        c.print_json(data)
    elif args.long:
        rows = [
            [
                tag,
                h.digest,
                c.media_kind(h.media_type),
                c.size(h.size),
                "immutable" if tag in held else "",
            ]
            for tag, h in zip(tags, heads, strict=True)
        ]
        c.table(rows, ["TAG", "DIGEST", "TYPE", "MANIFEST", "RULE"], right=(3,))
    else:
        for tag in tags:
            c.say(tag)
    return c.EXIT_OK


async def _refs(args: argparse.Namespace) -> int:
    import fnmatch

    from tui.client.reference import NAME_RE

    host, registry = c.host_registry(args.host)
    patterns: list[str] = args.repo_filter or []
    found: list[dict[str, str]] = []
    skipped: list[str] = []

    def addressable(repo: str) -> bool:
        """A name outside the distribution spec's grammar has no URL to read its tags from:
        it is skipped with a warning, and the walk goes on."""
        if NAME_RE.match(repo):
            return True
        skipped.append(repo)
        c.warn(f"skipped {repo!r}: not a repository name the distribution spec allows")
        return False

    async with c.client(args, registry, max_concurrency=args.concurrency) as client:
        repos = (
            repo
            async for page in client.iter_catalog(args.page_size)
            for repo in page
            if (not patterns or any(fnmatch.fnmatchcase(repo, p) for p in patterns))
            and addressable(repo)
        )
        async for repo, tags in all_tags(client, repos, args.concurrency, args.page_size):
            for tag in tags:
                if args.json:
                    found.append({"repository": repo, "tag": tag, "ref": f"{host}/{repo}:{tag}"})
                else:
                    c.say(f"{host}/{repo}:{tag}")
    if args.json:
        c.print_json({"registry": host, "refs": found, "skipped": skipped})
    return c.EXIT_OK


async def all_tags(
    client: RegistryClient, repos: AsyncIterator[str], concurrency: int, page_size: int
) -> AsyncIterator[tuple[str, list[str]]]:
    """``(repo, tags)`` for each of ``repos``, in their order, with up to ``concurrency``
    repositories read at once (at most about twice that many read ahead); a repository that
    is gone by the time its tags are read is skipped."""
    import asyncio

    from tui.client import NotFoundError

    async def tags_of(repo: str) -> tuple[str, list[str]] | None:
        try:
            return repo, [t async for page in client.iter_tags(repo, page_size) for t in page]
        except NotFoundError:
            return None

    ahead: asyncio.Queue[asyncio.Task[tuple[str, list[str]] | None] | None]
    ahead = asyncio.Queue(maxsize=2 * concurrency)

    async def produce() -> None:
        async for repo in repos:
            await ahead.put(asyncio.create_task(tags_of(repo)))
        await ahead.put(None)

    producer = asyncio.create_task(produce())
    started: list[asyncio.Task[Any]] = [producer]
    try:
        while True:
            getter = asyncio.ensure_future(ahead.get())
            await asyncio.wait({getter, producer}, return_when=asyncio.FIRST_COMPLETED)
            if not getter.done():
                if producer.exception() is not None:  # the catalog failed: that ends it
                    getter.cancel()
                    await producer
                await getter
            task = getter.result()
            if task is None:
                break
            started.append(task)
            result = await task
            if result is not None:
                yield result
        await producer
    finally:
        for task in started:
            task.cancel()
        while not ahead.empty():
            item = ahead.get_nowait()
            if item is not None:
                item.cancel()
