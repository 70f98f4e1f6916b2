"""``regtui inspect REF``: manifest, platforms, config, layers, history and referrers."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from tui.commands import _common as c
from tui.logic.escape import visible_lines

if TYPE_CHECKING:
    from tui.client import ImageConfig, ImageIndex, ManifestResult, Reference
    from tui.client.models import Descriptor


def register(subparsers: Any) -> None:
    inspect = subparsers.add_parser(
        "inspect",
        parents=[c.common_parser()],
        help="manifest, platforms, config, layers and history",
    )
    inspect.add_argument("ref", metavar="REF", help="HOST/REPO[:TAG][@DIGEST]")
    inspect.add_argument("--platform", help="for an index: show this child (os/arch[/variant])")
    inspect.add_argument("--raw", action="store_true", help="print the manifest as served")
    inspect.set_defaults(handler=c.handler(_inspect))


async def _inspect(args: argparse.Namespace) -> int:
    from tui.client import ImageIndex, ImageManifest, parse_reference

    ref = parse_reference(args.ref)
    async with c.client(args, c.registry_of(ref)) as client:
        result = await client.get_manifest(ref.repository, ref.ref)
        if args.raw:
            raw = result.raw.decode(errors="replace")
            # As served into a pipe; on a terminal, a control character in it is escaped.
            sys.stdout.write((visible_lines(raw) if sys.stdout.isatty() else raw) + "\n")
            return c.EXIT_OK
        index: ManifestResult | None = None
        if isinstance(result.manifest, ImageIndex) and args.platform:
            child = _pick_platform(result.manifest, args.platform)
            index, result = result, await client.get_manifest(ref.repository, child)
        config: ImageConfig | None = None
        manifest = result.manifest
        if isinstance(manifest, ImageManifest) and not manifest.is_artifact:
            config = await client.get_config(ref.repository, manifest)
        referrers = await client.get_referrers(ref.repository, result.digest)
    report = inspect_report(ref, result, config, index, referrers)
    if args.json:
        c.print_json(report)
    else:
        _print_inspect(report)
    return c.EXIT_OK


def _pick_platform(index: ImageIndex, wanted: str) -> str:
    for child in index.manifests:
        if child.platform is not None and str(child.platform) == wanted:
            return child.digest
    for child in index.manifests:  # "linux/arm64" also matches linux/arm64/v8
        if child.platform is not None and str(child.platform).startswith(wanted + "/"):
            return child.digest
    available = ", ".join(str(d.platform) for d in index.manifests if d.platform)
    raise c.UsageError(f"no platform {wanted!r} in this index (it has: {available})")


def _descriptor(d: Descriptor) -> dict[str, Any]:
    return {"digest": d.digest, "media_type": d.media_type, "size": d.size}


def inspect_report(
    ref: Reference,
    result: ManifestResult,
    config: ImageConfig | None,
    index: ManifestResult | None,
    referrers: Any = (),
) -> dict[str, Any]:
    """The ``inspect --json`` document (its keys depend on ``kind``: see docs/json.md)."""
    from tui.client import ImageIndex, ImageManifest, Schema1Manifest, match_history

    manifest = result.manifest
    report: dict[str, Any] = {
        "registry": ref.registry,
        "repository": ref.repository,
        "reference": ref.ref,
        "digest": result.digest,
        "media_type": result.media_type,
        "kind": "",
        "manifest_bytes": result.size,
        "from_index": ({"digest": index.digest, "media_type": index.media_type} if index else None),
        "annotations": dict(getattr(manifest, "annotations", None) or {}),
        "referrers": [{**_descriptor(r), "artifact_type": r.artifact_type} for r in referrers],
    }
    if isinstance(manifest, ImageIndex):
        report["kind"] = "index"
        report["platforms"] = [
            {
                "platform": c.platform_json(d.platform),
                **_descriptor(d),
                "artifact_type": d.artifact_type,
            }
            for d in manifest.manifests
        ]
    elif isinstance(manifest, ImageManifest):
        report["kind"] = "artifact" if manifest.is_artifact else "image"
        report["artifact_type"] = manifest.artifact_type
        report["subject"] = manifest.subject.digest if manifest.subject else None
        report["image_bytes"] = manifest.total_size
        report["layers"] = [_descriptor(d) for d in manifest.layers]
        report["config"] = None
        report["history"] = []
        if config is not None:
            report["config"] = {
                "digest": manifest.config.digest,
                "created": c.rfc3339(config.created),
                "platform": c.platform_json(config.platform),
                "entrypoint": list(config.entrypoint) if config.entrypoint is not None else None,
                "cmd": list(config.cmd) if config.cmd is not None else None,
                "env": list(config.env),
                "labels": dict(config.labels),
                "working_dir": config.working_dir,
                "user": config.user,
                "exposed_ports": list(config.exposed_ports),
            }
            report["history"] = [
                {
                    "created": c.rfc3339(step.entry.created),
                    "created_by": step.entry.created_by,
                    "comment": step.entry.comment,
                    "empty_layer": step.entry.empty_layer,
                    "layer_digest": step.layer.digest if step.layer else None,
                    "layer_bytes": step.layer.size if step.layer else None,
                }
                for step in match_history(config, manifest.layers)
            ]
    elif isinstance(manifest, Schema1Manifest):
        report["kind"] = "schema1"
        report["schema1"] = {
            "name": manifest.name,
            "tag": manifest.tag,
            "architecture": manifest.architecture,
            "signed": manifest.signed,
            "layers": list(manifest.fs_layers),
        }
    return report


def _platform_text(platform: dict[str, str | None] | None) -> str:
    if platform is None:
        return "-"
    return "/".join(v for v in (platform["os"], platform["architecture"], platform["variant"]) if v)


def _print_inspect(report: dict[str, Any]) -> None:
    import json

    c.say(f"Name:       {report['registry']}/{report['repository']}")
    c.say(f"Digest:     {report['digest']}")
    c.say(f"Media type: {report['media_type']}")
    if report["from_index"]:
        c.say(f"From index: {report['from_index']['digest']}")
    if "platforms" in report:
        print("\nPlatforms:")
        rows = [
            [_platform_text(p["platform"]), p["digest"], c.size(p["size"])]
            for p in report["platforms"]
        ]
        c.table(rows, ["PLATFORM", "DIGEST", "MANIFEST"], right=(2,))
    if report.get("artifact_type"):
        c.say(f"Artifact:   {report['artifact_type']}")
    if report.get("subject"):
        c.say(f"Subject:    {report['subject']}")
    if "image_bytes" in report:
        c.say(f"Size:       {c.size(report['image_bytes'])} (compressed, config + layers)")
    config = report.get("config")
    if config:
        c.say(f"Created:    {config['created'] or '-'}")
        c.say(f"Platform:   {_platform_text(config['platform'])}")
        if config["entrypoint"]:
            c.say(f"Entrypoint: {json.dumps(config['entrypoint'])}")
        if config["cmd"]:
            c.say(f"Cmd:        {json.dumps(config['cmd'])}")
        for item in config["env"]:
            c.say(f"Env:        {item}")
        for key, value in config["labels"].items():
            c.say(f"Label:      {key}={value}")
    if report.get("layers"):
        print("\nLayers:")
        rows = [
            [str(n), c.short_digest(d["digest"]), c.size(d["size"]), d["media_type"]]
            for n, d in enumerate(report["layers"])
        ]
        c.table(rows, ["#", "DIGEST", "SIZE", "TYPE"], right=(2,))
    if report.get("history"):
        print("\nHistory:")
        rows = [
            [
                c.short_digest(h["layer_digest"]) if h["layer_digest"] else "-",
                c.size(h["layer_bytes"] or 0),
                (h["created_by"] or h["comment"] or "").replace("\n", " ")[:100],
            ]
            for h in report["history"]
        ]
        c.table(rows, ["LAYER", "SIZE", "CREATED BY"])
    if "schema1" in report:
        s1 = report["schema1"]
        c.say(f"Schema 1:   {s1['name']}:{s1['tag']} ({s1['architecture']}), read-only")
        for digest in s1["layers"]:
            c.say(f"Layer:      {digest}")
    if report["referrers"]:
        print("\nReferrers:")
        rows = [[r["digest"], r["artifact_type"] or r["media_type"]] for r in report["referrers"]]
        c.table(rows, ["DIGEST", "ARTIFACT TYPE"])
