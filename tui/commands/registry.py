"""Scriptable commands on any registry: ``ls``, ``tags``, ``inspect``, ``rm``, ``untag``, ``du``.

Each command talks to the registry through :mod:`tui.client` only. Output is a human table by
default and JSON with ``--json``; errors are one line on stderr; exit codes 0 ok / 1 error /
2 usage. Passwords come from ``--password-stdin``, the environment or Docker's config, and are
never printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import asdict
from typing import Any, TextIO

from tui.client import (
    AuthError,
    ImageConfig,
    ImageIndex,
    ImageManifest,
    InvalidReferenceError,
    Reference,
    RegistryClient,
    RegistryClientError,
    Schema1Manifest,
    match_history,
    parse_reference,
)
from tui.client.ext import StorageReport, storage_usage, supports_extension
from tui.client.models import (
    DOCKER_SCHEMA1,
    DOCKER_SCHEMA1_SIGNED,
    INDEX_MEDIA_TYPES,
    ManifestResult,
)
from tui.client.reference import parse_registry
from tui.client.survey import estimate_registry
from tui.commands.access import PasswordError, add_access_arguments, read_password
from tui.data.storage import grace_sentence
from tui.logic.fmt import human_size, short_digest

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A mistake in the command line: exit code 2."""


def register(subparsers: Any) -> None:
    common = argparse.ArgumentParser(add_help=False)
    group = add_access_arguments(common)
    group.add_argument("--json", action="store_true", help="machine-readable output")

    ls = subparsers.add_parser(
        "ls", parents=[common], help="list the repositories of a registry (its catalog)"
    )
    ls.add_argument("host", metavar="HOST", help="registry, e.g. 127.0.0.1:5000")
    ls.set_defaults(handler=lambda args: _run(args, _ls))

    tags = subparsers.add_parser("tags", parents=[common], help="list the tags of a repository")
    tags.add_argument("repo", metavar="HOST/REPO")
    tags.add_argument(
        "--long", "-l", action="store_true", help="also the digest and type of each tag"
    )
    tags.set_defaults(handler=lambda args: _run(args, _tags))

    inspect = subparsers.add_parser(
        "inspect", parents=[common], help="manifest, platforms, config, layers and history"
    )
    inspect.add_argument("ref", metavar="REF", help="HOST/REPO[:TAG][@DIGEST]")
    inspect.add_argument("--platform", help="for an index: show this child (os/arch[/variant])")
    inspect.add_argument("--raw", action="store_true", help="print the manifest as served")
    inspect.set_defaults(handler=lambda args: _run(args, _inspect))

    rm = subparsers.add_parser(
        "rm", parents=[common], help="delete a manifest by digest (every tag on it goes too)"
    )
    rm.add_argument("ref", metavar="REF", help="HOST/REPO@DIGEST or HOST/REPO:TAG")
    rm.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    rm.add_argument("--dry-run", action="store_true", help="say what would be removed, only")
    rm.set_defaults(handler=lambda args: _run(args, _rm))

    untag = subparsers.add_parser(
        "untag", parents=[common], help="remove one tag; other tags on the image stay"
    )
    untag.add_argument("ref", metavar="REF", help="HOST/REPO:TAG")
    untag.add_argument("--dry-run", action="store_true", help="say what would be removed, only")
    untag.set_defaults(handler=lambda args: _run(args, _untag))

    du = subparsers.add_parser(
        "du",
        parents=[common],
        help="storage per repository: over the API (HOST) or offline from a directory (--root DIR)",
    )
    du.add_argument("host", metavar="HOST", nargs="?", help="registry to estimate")
    du.add_argument("--root", metavar="DIR", help="measure a storage directory directly (offline)")
    du.add_argument("--repo", action="append", help="only these repositories (repeatable)")
    du.add_argument(
        "--estimate",
        action="store_true",
        help="always estimate from manifests, even where the registry can report its storage",
    )
    du.add_argument("--concurrency", type=int, help="parallel requests (default: 16)")
    du.set_defaults(handler=_du_dispatch)


# ---------------------------------------------------------------------- plumbing


def _fail(message: str) -> None:
    print(f"regtui: error: {message}", file=sys.stderr)


def _run(args: argparse.Namespace, command: Callable[[argparse.Namespace], Awaitable[int]]) -> int:
    try:
        coroutine = command(args)
        assert isinstance(coroutine, Coroutine)
        return asyncio.run(coroutine)
    except (UsageError, InvalidReferenceError) as exc:
        _fail(str(exc))
        return EXIT_USAGE
    except RegistryClientError as exc:
        _fail(str(exc))
        return EXIT_ERROR


def _password(args: argparse.Namespace) -> str | None:
    try:
        return read_password(args)
    except PasswordError as error:
        raise UsageError(str(error)) from None


def _client(args: argparse.Namespace, registry: str, **kw: Any) -> RegistryClient:
    return RegistryClient(
        registry,
        username=args.username,
        password=_password(args),
        insecure=args.insecure,
        ca_cert=args.ca_cert,
        timeout=args.timeout,
        **kw,
    )


def _registry_of(ref: Reference) -> str:
    return f"{ref.scheme}://{ref.registry}" if ref.scheme else ref.registry


def _repo_ref(text: str) -> Reference:
    ref = parse_reference(text)
    if ref.tag is not None or ref.digest is not None:
        raise UsageError(f"{text!r}: give HOST/REPO without a tag or digest")
    return ref


def _print_json(data: Any, out: TextIO | None = None) -> None:
    json.dump(data, out or sys.stdout, indent=2, default=str)
    (out or sys.stdout).write("\n")


def _table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        cells = [str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)]
        print("  ".join(cells).rstrip())


# ---------------------------------------------------------------------- ls / tags


async def _ls(args: argparse.Namespace) -> int:
    scheme, host = parse_registry(args.host)
    async with _client(args, f"{scheme}://{host}" if scheme else host) as client:
        repos = await client.catalog()
    if args.json:
        _print_json({"Registry": host, "Repositories": repos})
    else:
        for repo in repos:
            print(repo)
    return EXIT_OK


async def _tags(args: argparse.Namespace) -> int:
    ref = _repo_ref(args.repo)
    async with _client(args, _registry_of(ref)) as client:
        tags = await client.list_tags(ref.repository)
        heads = (
            await asyncio.gather(*(client.head_manifest(ref.repository, t) for t in tags))
            if args.long
            else []
        )
    name = f"{ref.registry}/{ref.repository}"
    if args.json:
        data: dict[str, Any] = {"Repository": name, "Tags": tags}
        if args.long:
            data["Digests"] = {
                tag: {"digest": h.digest, "mediaType": h.media_type, "size": h.size}
                for tag, h in zip(tags, heads, strict=True)
            }
        _print_json(data)
    elif args.long:
        rows = [
            [tag, h.digest, _kind(h.media_type), human_size(h.size)]
            for tag, h in zip(tags, heads, strict=True)
        ]
        _table(rows, ["TAG", "DIGEST", "TYPE", "MANIFEST"])
    else:
        for tag in tags:
            print(tag)
    return EXIT_OK


def _kind(media_type: str) -> str:
    if media_type in INDEX_MEDIA_TYPES:
        return "index"
    if media_type in (DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED):
        return "schema1"
    return "docker" if "docker" in media_type else "oci"


# ---------------------------------------------------------------------- inspect


async def _inspect(args: argparse.Namespace) -> int:
    ref = parse_reference(args.ref)
    async with _client(args, _registry_of(ref)) as client:
        result = await client.get_manifest(ref.repository, ref.ref)
        if args.raw:
            sys.stdout.write(result.raw.decode(errors="replace") + "\n")
            return EXIT_OK
        index: ManifestResult | None = None
        if isinstance(result.manifest, ImageIndex) and args.platform:
            child = _pick_platform(result.manifest, args.platform)
            index, result = result, await client.get_manifest(ref.repository, child)
        config: ImageConfig | None = None
        manifest = result.manifest
        if isinstance(manifest, ImageManifest) and not manifest.is_artifact:
            config = await client.get_config(ref.repository, manifest)
        referrers = await client.get_referrers(ref.repository, result.digest)
    report = _inspect_report(ref, result, config, index)
    report["Referrers"] = [asdict(d) for d in referrers]
    if args.json:
        _print_json(report)
    else:
        _print_inspect(report)
    return EXIT_OK


def _pick_platform(index: ImageIndex, wanted: str) -> str:
    for child in index.manifests:
        if child.platform is not None and str(child.platform) == wanted:
            return child.digest
    for child in index.manifests:  # "linux/arm64" also matches linux/arm64/v8
        if child.platform is not None and str(child.platform).startswith(wanted + "/"):
            return child.digest
    available = ", ".join(str(c.platform) for c in index.manifests if c.platform)
    raise UsageError(f"no platform {wanted!r} in this index (it has: {available})")


def _inspect_report(
    ref: Reference,
    result: ManifestResult,
    config: ImageConfig | None,
    index: ManifestResult | None,
) -> dict[str, Any]:
    manifest = result.manifest
    report: dict[str, Any] = {
        "Name": f"{ref.registry}/{ref.repository}",
        "Reference": ref.ref,
        "Digest": result.digest,
        "MediaType": result.media_type,
        "ManifestSize": result.size,
    }
    if index is not None:
        report["Index"] = {"Digest": index.digest, "MediaType": index.media_type}
    if isinstance(manifest, ImageIndex):
        report["Platforms"] = [
            {
                "Platform": str(d.platform) if d.platform else None,
                "Digest": d.digest,
                "MediaType": d.media_type,
                "Size": d.size,
                "ArtifactType": d.artifact_type,
            }
            for d in manifest.manifests
        ]
    elif isinstance(manifest, ImageManifest):
        report["ArtifactType"] = manifest.artifact_type
        report["Subject"] = manifest.subject.digest if manifest.subject else None
        report["Size"] = manifest.total_size
        report["Layers"] = [
            {"Digest": d.digest, "MediaType": d.media_type, "Size": d.size} for d in manifest.layers
        ]
        if manifest.annotations:
            report["Annotations"] = dict(manifest.annotations)
        if config is not None:
            report["Config"] = {
                "Digest": manifest.config.digest,
                "Created": config.created,
                "Platform": str(config.platform) if config.platform else None,
                "Entrypoint": config.entrypoint,
                "Cmd": config.cmd,
                "Env": config.env,
                "Labels": dict(config.labels),
                "WorkingDir": config.working_dir,
                "User": config.user,
                "ExposedPorts": config.exposed_ports,
            }
            report["History"] = [
                {
                    "Created": step.entry.created,
                    "CreatedBy": step.entry.created_by,
                    "Comment": step.entry.comment,
                    "EmptyLayer": step.entry.empty_layer,
                    "Layer": step.layer.digest if step.layer else None,
                    "Size": step.layer.size if step.layer else None,
                }
                for step in match_history(config, manifest.layers)
            ]
    elif isinstance(manifest, Schema1Manifest):
        report["Schema1"] = {
            "Name": manifest.name,
            "Tag": manifest.tag,
            "Architecture": manifest.architecture,
            "Signed": manifest.signed,
            "Layers": list(manifest.fs_layers),
        }
    return report


def _print_inspect(report: dict[str, Any]) -> None:
    print(f"Name:       {report['Name']}")
    print(f"Digest:     {report['Digest']}")
    print(f"Media type: {report['MediaType']}")
    if "Index" in report:
        print(f"From index: {report['Index']['Digest']}")
    if "Platforms" in report:
        print("\nPlatforms:")
        rows = [
            [p["Platform"] or "-", p["Digest"], human_size(p["Size"])] for p in report["Platforms"]
        ]
        _table(rows, ["PLATFORM", "DIGEST", "MANIFEST"])
    if report.get("ArtifactType"):
        print(f"Artifact:   {report['ArtifactType']}")
    if report.get("Subject"):
        print(f"Subject:    {report['Subject']}")
    if "Size" in report:
        print(f"Size:       {human_size(report['Size'])} (compressed, config + layers)")
    config = report.get("Config")
    if config:
        print(f"Created:    {config['Created'] or '-'}")
        print(f"Platform:   {config['Platform'] or '-'}")
        if config["Entrypoint"]:
            print(f"Entrypoint: {json.dumps(list(config['Entrypoint']))}")
        if config["Cmd"]:
            print(f"Cmd:        {json.dumps(list(config['Cmd']))}")
        for item in config["Env"]:
            print(f"Env:        {item}")
        for key, value in config["Labels"].items():
            print(f"Label:      {key}={value}")
    if "Layers" in report:
        print("\nLayers:")
        rows = [
            [str(n), short_digest(d["Digest"]), human_size(d["Size"]), d["MediaType"]]
            for n, d in enumerate(report["Layers"])
        ]
        _table(rows, ["#", "DIGEST", "SIZE", "TYPE"])
    if report.get("History"):
        print("\nHistory:")
        rows = [
            [
                short_digest(h["Layer"]) if h["Layer"] else "-",
                human_size(h["Size"]) if h["Size"] is not None else "0 B",
                (h["CreatedBy"] or h["Comment"] or "").replace("\n", " ")[:100],
            ]
            for h in report["History"]
        ]
        _table(rows, ["LAYER", "SIZE", "CREATED BY"])
    if "Schema1" in report:
        s1 = report["Schema1"]
        print(f"Schema 1:   {s1['Name']}:{s1['Tag']} ({s1['Architecture']}), read-only")
        for digest in s1["Layers"]:
            print(f"Layer:      {digest}")
    if report.get("Referrers"):
        print("\nReferrers:")
        rows = [[r["digest"], r["artifact_type"] or r["media_type"]] for r in report["Referrers"]]
        _table(rows, ["DIGEST", "ARTIFACT TYPE"])


# ---------------------------------------------------------------------- rm / untag


def _confirm(question: str) -> bool:
    print(f"{question} [y/N] ", end="", flush=True, file=sys.stderr)
    answer = sys.stdin.readline().strip().lower()
    return answer in ("y", "yes")


async def _rm(args: argparse.Namespace) -> int:
    ref = parse_reference(args.ref)
    if ref.digest is None and ref.tag is None:
        raise UsageError(f"{args.ref!r}: say which manifest, HOST/REPO@DIGEST or HOST/REPO:TAG")
    if not (args.yes or args.dry_run or args.json) and not sys.stdin.isatty():
        raise UsageError("refusing to delete without --yes: stdin is not a terminal")
    async with _client(args, _registry_of(ref)) as client:
        digest = ref.digest or (await client.head_manifest(ref.repository, ref.ref)).digest
        plan = await client.plan_delete(ref.repository, digest)
        data = {"DryRun": args.dry_run, **_plan_json(plan)}
        if not args.json:
            _print_plan(plan, args.dry_run)
        if args.dry_run:
            if args.json:
                _print_json(data)
            return EXIT_OK
        if not args.yes:
            if args.json:
                raise UsageError("--json without --dry-run needs --yes")
            if not _confirm(f"Delete {ref.repository}@{short_digest(digest)}?"):
                print("Nothing deleted.", file=sys.stderr)
                return EXIT_ERROR
        await client.delete_manifest(ref.repository, digest)
    if args.json:
        _print_json({**data, "Deleted": True})
    else:
        print(f"Deleted {ref.repository}@{digest}")
    return EXIT_OK


def _plan_json(plan: Any) -> dict[str, Any]:
    return {
        "Repository": plan.repo,
        "Digest": plan.digest,
        "MediaType": plan.media_type,
        "Tags": list(plan.tags),
        "Children": [{"Digest": c.digest, "Platform": str(c.platform)} for c in plan.children],
        "Referrers": [
            {"Digest": r.digest, "ArtifactType": r.artifact_type} for r in plan.referrers
        ],
    }


def _print_plan(plan: Any, dry_run: bool) -> None:
    verb = "Would delete" if dry_run else "Will delete"
    print(f"{verb} manifest {plan.repo}@{plan.digest} ({_kind(plan.media_type)})")
    if plan.tags:
        print(f"  tags removed with it ({len(plan.tags)}): {', '.join(plan.tags)}")
    else:
        print("  no tag points at it")
    if plan.children:
        print(f"  its {len(plan.children)} platform manifests stay, untagged, until GC:")
        for child in plan.children:
            print(f"    {child.platform or '-'}  {child.digest}")
    if plan.referrers:
        print(f"  {len(plan.referrers)} referrers (signatures, SBOMs) will point at nothing:")
        for referrer in plan.referrers:
            print(f"    {referrer.digest}  {referrer.artifact_type or referrer.media_type}")
    print("  blobs are freed only by garbage collection")


async def _untag(args: argparse.Namespace) -> int:
    ref = parse_reference(args.ref)
    if ref.tag is None or ref.digest is not None:
        raise UsageError(f"{args.ref!r}: untag takes HOST/REPO:TAG")
    async with _client(args, _registry_of(ref)) as client:
        result = await client.untag(ref.repository, ref.tag, dry_run=args.dry_run)
    if args.json:
        _print_json({"DryRun": args.dry_run, **asdict(result)})
        return EXIT_OK
    verb = "Would remove" if args.dry_run else "Removed"
    print(f"{verb} tag {ref.repository}:{ref.tag} (was {result.digest})")
    if result.sibling_tags:
        print(f"  tags kept on that manifest: {', '.join(result.sibling_tags)}")
    else:
        print("  no other tag points at that manifest: it stays, untagged, until deleted")
    if result.method == "placeholder":
        print(
            "  the registry cannot delete tags: moved it onto a placeholder manifest "
            f"{short_digest(result.placeholder_digest)} and deleted that"
        )
    return EXIT_OK


# ---------------------------------------------------------------------- du


def _du_dispatch(args: argparse.Namespace) -> int:
    if args.root is not None:
        if args.host is not None:
            _fail("du takes either HOST or --root DIR, not both")
            return EXIT_USAGE
        from tui.commands import storage  # the offline measure of the GC helper's module

        du_root = getattr(storage, "du_root", None)
        if du_root is None:
            _fail("du --root is not available in this build")
            return EXIT_ERROR
        return int(du_root(args))
    if args.host is None:
        _fail("du needs HOST (estimate over the API) or --root DIR (exact, offline)")
        return EXIT_USAGE
    return _run(args, _du)


async def _du(args: argparse.Namespace) -> int:
    scheme, host = parse_registry(args.host)
    registry = f"{scheme}://{host}" if scheme else host
    # Even on loopback, where the registry shares our CPU, 16 requests in flight cost less CPU
    # per request than 4 (both event loops handle more per wake-up): measured in bench_client.
    concurrency = args.concurrency or 16
    async with _client(args, registry, max_concurrency=max(1, concurrency)) as client:
        exact = None if args.estimate else await _storage_report(client)
        if exact is not None:
            data = _exact_json(exact, args.repo)
        else:
            data = asdict(await estimate_registry(client, args.repo))
    if args.json:
        _print_json({"Registry": host, **data})
        return EXIT_OK
    rows = [
        [
            usage["name"],
            str(usage["tags"]),
            str(usage["manifests"]),
            human_size(usage["bytes"]),
            human_size(usage["exclusive_bytes"]),
        ]
        for usage in data["repos"]
    ]
    _table(rows, ["REPOSITORY", "TAGS", "MANIFESTS", "SIZE", "ONLY HERE"])
    shared = human_size(data["sum_of_repos"] - data["total_bytes"])
    kind = "estimate" if data["is_estimate"] else "exact"
    print(
        f"\nTotal ({kind}): {human_size(data['total_bytes'])} in {data['blob_count']} blobs; "
        f"sharing saves {shared}"
    )
    if data.get("unknown_sizes"):
        print(f"{data['unknown_sizes']} schema1 layers have no size in their manifest.")
    print(data["note"])
    return EXIT_OK


async def _storage_report(client: RegistryClient) -> StorageReport | None:
    """The bundled registry's exact report, or ``None`` from any other registry."""
    try:
        if not await supports_extension(client):
            return None
    except AuthError:
        return None  # a registry that guards unknown paths: the estimate says what is wrong
    return await storage_usage(client)


def _exact_json(report: StorageReport, only: list[str] | None) -> dict[str, Any]:
    """The storage report in the estimate's shape, so that scripts read both alike."""
    repos = [
        {
            "name": r.name,
            "tags": r.tags,
            "manifests": r.manifests,
            "blobs": r.blobs,
            "bytes": r.referenced_bytes,
            "exclusive_bytes": r.exclusive_bytes,
            "unknown_sizes": 0,
        }
        for r in sorted(report.repositories, key=lambda r: (-r.referenced_bytes, r.name))
        if not only or r.name in only
    ]
    kept = grace_sentence(
        report.protected_young_bytes, report.protected_young_blobs, report.grace_period
    )
    return {
        "repos": repos,
        "total_bytes": report.total_bytes,
        "blob_count": report.blob_count,
        "sum_of_repos": sum(r.referenced_bytes for r in report.repositories),
        "unknown_sizes": 0,
        "note": (
            "Exact, from the registry's storage (every blob on disk, garbage included); "
            f"GC would reclaim {human_size(report.reclaimable_bytes)}."
        )
        + (f"\n{kept}" if kept else ""),
        "is_estimate": False,
        "reclaimable_bytes": report.reclaimable_bytes,
    }
