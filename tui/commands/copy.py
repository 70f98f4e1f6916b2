"""Moving images: ``tag REF NEWTAG…`` (new tags on a manifest, across repositories of one
registry by cross-repository mount) and ``cp SRC DST`` (registry to registry, OCI layouts and
``docker save`` archives). The engine is :mod:`tui.data.copy`."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

from tui.commands import _common as c
from tui.commands.access import add_output_arguments

if TYPE_CHECKING:
    from tui.client import Platform, Reference, RegistryClient
    from tui.data.copy import CopyProgress, CopyResult
    from tui.data.copy_io import Destination, Source
    from tui.logic.copy_plan import Location

SRC_PASSWORD_ENV = "REGTUI_SRC_PASSWORD"
DST_PASSWORD_ENV = "REGTUI_DST_PASSWORD"


def register(subparsers: Any) -> None:
    tag = subparsers.add_parser(
        "tag",
        parents=[c.common_parser()],
        help="new tags on an existing manifest, without moving data",
    )
    tag.add_argument("ref", metavar="REF", help="HOST/REPO:TAG or HOST/REPO@DIGEST")
    tag.add_argument(
        "new_tags",
        metavar="NEWTAG",
        nargs="+",
        help="a tag of the same repository, or HOST/OTHER:TAG on the same registry "
        "(blobs mounted, not copied)",
    )
    tag.set_defaults(handler=c.handler(_one_line(_tag)))

    cp = subparsers.add_parser(
        "cp",
        help="copy an image between registries, OCI layouts (oci:DIR) and docker-archive:FILE",
        description="Copy an image. SRC and DST: HOST/REPO[:TAG|@DIGEST], oci:DIR[:TAG] or "
        "docker-archive:FILE[:NAME:TAG]. Blobs the target has are skipped, blobs on the same "
        "registry are mounted; the tag is written last, so an interrupted copy leaves no tag "
        "behind and a rerun resumes.",
    )
    cp.add_argument("source", metavar="SRC")
    cp.add_argument("destination", metavar="DST")
    which = cp.add_mutually_exclusive_group()
    which.add_argument(
        "--platform",
        metavar="OS/ARCH[/VARIANT]",
        help="the platform to copy from a multi-platform image (default: this machine's, "
        "linux/amd64 on x86-64, as skopeo)",
    )
    which.add_argument(
        "--all", "-a", action="store_true", help="copy the whole index and every platform"
    )
    cp.add_argument(
        "--referrers",
        action="store_true",
        help="copy the signatures, SBOMs and other artifacts that refer to the image",
    )
    cp.add_argument("--jobs", "-j", type=int, default=4, help="blobs copied at once (default 4)")
    access = cp.add_argument_group("registry access")
    access.add_argument(
        "--src-username", metavar="USER", help=f"user for SRC (password: {SRC_PASSWORD_ENV})"
    )
    access.add_argument(
        "--dst-username", metavar="USER", help=f"user for DST (password: {DST_PASSWORD_ENV})"
    )
    access.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the passwords from stdin, one line each: SRC's first, then DST's",
    )
    access.add_argument(
        "--insecure", action="store_true", help="allow plain HTTP and unverified TLS"
    )
    access.add_argument("--ca-cert", metavar="FILE", help="trust this CA (PEM) for TLS on both")
    access.add_argument("--src-ca-cert", metavar="FILE", help="trust this CA (PEM) for SRC")
    access.add_argument("--dst-ca-cert", metavar="FILE", help="trust this CA (PEM) for DST")
    access.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    add_output_arguments(cp, "the result as JSON (no progress bars)")
    cp.set_defaults(handler=c.handler(_one_line(_cp)))


def _one_line(command: c.Command) -> c.Command:
    """``command`` with the engine's own failures (a format that cannot hold the image, a bad
    archive) and the file system's (a full disk, a directory not writable) as one line, exit 1,
    as the registry's are."""

    async def run(args: argparse.Namespace) -> int:
        from tui.data.copy_io import CopyError

        try:
            return await command(args)
        except CopyError as exc:
            c.fail(str(exc))
        except OSError as exc:
            where = f": {exc.filename}" if exc.filename else ""
            c.fail(f"{exc.strerror or exc}{where}")
        return c.EXIT_ERROR

    return run


# ---------------------------------------------------------------------- tag


async def _tag(args: argparse.Namespace) -> int:
    from tui.client import parse_reference
    from tui.data.copy import copy_image
    from tui.data.copy_io import RegistryDestination, RegistrySource

    ref = parse_reference(args.ref, require_host=True)
    targets = [_tag_target(ref, text) for text in args.new_tags]
    results: list[dict[str, Any]] = []
    async with c.client(args, c.registry_of(ref), fast_after=0) as client:
        manifest = await client.get_manifest(ref.repository, ref.ref)
        for repo, tag in targets:
            if repo == ref.repository:
                await client.put_manifest_checked(repo, tag, manifest.raw, manifest.media_type)
                how = "tagged"
            else:
                source = RegistrySource(client, ref.repository, manifest.digest)
                destination = RegistryDestination(client, repo)
                await copy_image(source, destination, tags=[tag], all_platforms=True)
                how = "mounted"
            results.append(
                {
                    "registry": ref.registry,
                    "repository": repo,
                    "tag": tag,
                    "digest": manifest.digest,
                    "how": how,
                }
            )
            if not args.json:
                c.say(f"Tagged {ref.registry}/{repo}:{tag} -> {manifest.digest}")
    if args.json:
        c.print_json({"source": str(ref), "digest": manifest.digest, "tags": results})
    return c.EXIT_OK


def _tag_target(ref: Reference, text: str) -> tuple[str, str]:
    from tui.client import parse_reference
    from tui.client.reference import TAG_RE

    if TAG_RE.match(text):
        return ref.repository, text
    target = parse_reference(text, require_host=True)
    if target.registry != ref.registry:
        raise c.UsageError(
            f"{text!r} is on another registry than {ref.registry}: use regtui cp to copy there"
        )
    if target.tag is None or target.digest is not None:
        raise c.UsageError(f"{text!r}: give a tag, HOST/REPO:TAG")
    return target.repository, target.tag


# ---------------------------------------------------------------------- cp


async def _cp(args: argparse.Namespace) -> int:
    from tui.data.copy import copy_image
    from tui.logic.copy_plan import PlatformError, destination_tags, parse_location

    if args.jobs < 1:
        raise c.UsageError("--jobs must be at least 1")
    try:
        source_at, destination_at = parse_location(args.source), parse_location(args.destination)
        platform = _platform(args.platform)
    except (ValueError, PlatformError) as exc:
        raise c.UsageError(str(exc)) from None
    passwords = _passwords(args)
    clients: list[RegistryClient] = []
    progress = None if args.json else _Bars()
    try:
        source = await _open_source(args, source_at, passwords[0], clients)
        destination = _open_destination(args, destination_at, passwords[1], clients)
        tags = destination_tags(source_at, destination_at)
        try:
            result = await copy_image(
                source,
                destination,
                tags=tags,
                platform=platform,
                all_platforms=args.all,
                referrers=args.referrers,
                jobs=args.jobs,
                progress=progress,
            )
        except PlatformError as exc:
            raise c.UsageError(str(exc)) from None
        finally:
            if progress is not None:
                progress.clear()
            await destination.close()
            await source.close()
    finally:
        for client in clients:
            await client.aclose()
    _report(result, args.json)
    return c.EXIT_OK


def _platform(text: str | None) -> Platform:
    import platform as host

    from tui.logic.copy_plan import machine_platform, parse_platform

    return parse_platform(text) if text else machine_platform(host.machine())


def _passwords(args: argparse.Namespace) -> tuple[str | None, str | None]:
    """SRC's and DST's passwords: from stdin (one line each, for the users given), else
    ``REGTUI_SRC_PASSWORD``/``REGTUI_DST_PASSWORD``; ``None``: the client finds them."""
    users = (args.src_username, args.dst_username)
    if args.password_stdin:
        if not any(users):
            raise c.UsageError("--password-stdin needs --src-username or --dst-username")
        if sys.stdin.isatty():
            raise c.UsageError("--password-stdin: pipe the passwords, one line each")
        read = [sys.stdin.readline().rstrip("\r\n") if user else None for user in users]
        if any(user and not secret for user, secret in zip(users, read, strict=True)):
            raise c.UsageError("--password-stdin: a password line is missing on stdin")
        return read[0], read[1]
    found = (os.environ.get(SRC_PASSWORD_ENV), os.environ.get(DST_PASSWORD_ENV))
    for user, secret, env in zip(users, found, (SRC_PASSWORD_ENV, DST_PASSWORD_ENV), strict=True):
        if user and secret is None:
            raise c.UsageError(f"no password for {user}: set {env} or use --password-stdin")
    return (found[0] if users[0] else None), (found[1] if users[1] else None)


def _client(
    args: argparse.Namespace,
    ref: Reference,
    user: str | None,
    secret: str | None,
    ca_cert: str | None,
) -> RegistryClient:
    from tui.client import RegistryClient

    return RegistryClient(
        c.registry_of(ref),
        username=user,
        password=secret,
        insecure=args.insecure,
        ca_cert=ca_cert or args.ca_cert,
        timeout=args.timeout,
        max_concurrency=2 * args.jobs + 4,
        fast_after=0,  # blobs stream through aiohttp's transport, chunk by chunk
    )


async def _open_source(
    args: argparse.Namespace, at: Location, secret: str | None, clients: list[RegistryClient]
) -> Source:
    from tui.data.copy import open_source
    from tui.logic.copy_plan import RegistryLocation

    client = None
    if isinstance(at, RegistryLocation):
        client = _client(args, at.ref, args.src_username, secret, args.src_ca_cert)
        clients.append(client)
        await client.__aenter__()
    return await open_source(at, client)


def _open_destination(
    args: argparse.Namespace, at: Location, secret: str | None, clients: list[RegistryClient]
) -> Destination:
    from tui.data.copy import open_destination
    from tui.logic.copy_plan import RegistryLocation

    client = None
    if isinstance(at, RegistryLocation):
        if at.ref.digest is not None:
            raise c.UsageError(f"{args.destination!r}: a destination takes a tag, not a digest")
        own = args.dst_username is not None or args.dst_ca_cert is not None
        same = [cl for cl in clients if cl.host == at.ref.api_host and not own]
        if same:
            client = same[0]  # one registry, one set of credentials: mounts work across repos
        else:
            client = _client(args, at.ref, args.dst_username, secret, args.dst_ca_cert)
            clients.append(client)
    return open_destination(at, client)


def _report(result: CopyResult, as_json: bool) -> None:
    if as_json:
        c.print_json(
            {
                "source": result.source,
                "destination": result.destination,
                "digest": result.digest,
                "media_type": result.media_type,
                "size": result.size,
                "tags": list(result.tags),
                "platforms": [c.platform_json(p) for p in result.platforms],
                "blobs_copied": result.blobs_copied,
                "blobs_skipped": result.blobs_skipped,
                "blobs_mounted": result.blobs_mounted,
                "bytes_copied": result.bytes_copied,
                "manifests_written": result.manifests_written,
                "manifests_skipped": result.manifests_skipped,
                "referrers": result.referrers,
            }
        )
        return
    tags = ", ".join(result.tags) or "no tag"
    c.say(f"Copied {result.source} -> {result.destination} ({tags}) {result.digest}")
    print(
        f"  blobs: {result.blobs_copied} copied ({c.size(result.bytes_copied)}), "
        f"{result.blobs_skipped} already there, {result.blobs_mounted} mounted; "
        f"manifests: {result.manifests_written} written, {result.manifests_skipped} already "
        f"there; referrers: {result.referrers}"
    )


class _Bars:
    """Progress bars on stderr, only on a terminal: the total, and one per blob on its way;
    redrawn at most ten times a second while blobs move, and at once when the stage changes
    (so every stage shows, however fast)."""

    WIDTH = 30

    def __init__(self) -> None:
        import time

        self._clock = time.monotonic
        self.enabled = sys.stderr.isatty()
        self._last = 0.0
        self._lines = 0
        self._stage = ""

    def __call__(self, state: CopyProgress) -> None:
        now = self._clock()
        same_stage = state.stage == self._stage
        if not self.enabled or (now - self._last < 0.1 and state.stage == "blobs" and same_stage):
            return
        self._last, self._stage = now, state.stage
        lines = [self._total(state)]
        for digest, (done, size) in list(state.active.items())[:8]:
            lines.append(f"  {c.short_digest(digest)} {self._bar(done, size)} {c.size(done)}")
        self._draw(lines)

    def _bar(self, done: int, total: int) -> str:
        filled = self.WIDTH if total <= 0 else min(self.WIDTH, self.WIDTH * done // total)
        return "[" + "#" * filled + "." * (self.WIDTH - filled) + "]"

    def _total(self, state: CopyProgress) -> str:
        if state.stage == "reading":
            return "reading manifests…"
        if state.stage != "blobs":
            return f"writing manifests… ({state.blobs_total} blobs in place)"
        return (
            f"{self._bar(state.bytes_done, state.bytes_total)} {c.size(state.bytes_done)} of "
            f"{c.size(state.bytes_total)}  blobs {state.blobs_done}/{state.blobs_total} "
            f"({state.skipped} there, {state.mounted} mounted)"
        )

    def _draw(self, lines: list[str]) -> None:
        up = f"\x1b[{self._lines - 1}A" if self._lines > 1 else ""
        sys.stderr.write(up + "\r\x1b[J" + "\n".join(c.visible(line[:200]) for line in lines))
        sys.stderr.flush()
        self._lines = len(lines)

    def clear(self) -> None:
        if self._lines:
            up = f"\x1b[{self._lines - 1}A" if self._lines > 1 else ""
            sys.stderr.write(f"{up}\r\x1b[J")
            sys.stderr.flush()
            self._lines = 0
