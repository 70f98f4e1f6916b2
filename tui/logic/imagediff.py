"""Compare two images: configuration, layers, sizes and files (pure: no I/O, no Textual).

The loader (:mod:`tui.data.inside`) fetches manifests and configs and streams layers; this module
turns what it found into an :class:`ImageDiff` and into the JSON document of ``regtui diff``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tui.client.models import Descriptor, ImageConfig, ImageIndex, Platform
from tui.logic.fsmerge import Change, Entry, FileChange

__all__ = [
    "ConfigChange",
    "ImageDiff",
    "ImageSide",
    "LayerComparison",
    "PlatformPickError",
    "compare_configs",
    "compare_layers",
    "file_change_json",
    "pick_platform",
    "platform_json",
    "summarize_files",
]

DEFAULT_PLATFORMS = ("linux/amd64",)


class PlatformPickError(ValueError):
    """The index has no child for the platform asked for (or no way to choose one)."""


def pick_platform(index: ImageIndex, wanted: str | None) -> Descriptor:
    """The child manifest of ``index`` for ``wanted`` (``os/arch[/variant]``).

    Without ``wanted``: the only image child, else ``linux/amd64``; anything else must be named.
    ``linux/arm64`` also matches ``linux/arm64/v8``.
    """
    images = [
        child
        for child in index.manifests
        if child.platform is not None and child.platform.os not in ("unknown", "")
    ]
    if wanted is None:
        if len(images) == 1:
            return images[0]
        for default in DEFAULT_PLATFORMS:
            for child in images:
                if str(child.platform) == default:
                    return child
    else:
        for child in images:
            if str(child.platform) == wanted:
                return child
        for child in images:
            if str(child.platform).startswith(wanted + "/"):
                return child
    available = ", ".join(str(child.platform) for child in images) or "none"
    asked = f"no platform {wanted!r}" if wanted else "several platforms"
    raise PlatformPickError(f"{asked} in this index: pick one with --platform ({available})")


def platform_json(platform: Platform | None) -> dict[str, Any] | None:
    if platform is None:
        return None
    return {
        "os": platform.os,
        "architecture": platform.architecture,
        "variant": platform.variant or None,
    }


# ---------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class ConfigChange:
    """One configuration field (or one key of env/labels/ports) that differs."""

    field: str
    key: str | None
    before: str | None
    after: str | None

    def line(self, arrow: str = "->") -> str:
        """``+ name: after``, ``- name: before`` or ``~ name: before -> after``."""
        name = f"{self.field} {self.key}" if self.key else self.field
        if self.before is None:
            return f"+ {name}: {self.after}"
        if self.after is None:
            return f"- {name}: {self.before}"
        return f"~ {name}: {self.before} {arrow} {self.after}"


def _env_map(env: Iterable[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for item in env:
        key, _, value = item.partition("=")
        found[key] = value
    return found


def _keyed(name: str, before: Mapping[str, str], after: Mapping[str, str]) -> list[ConfigChange]:
    changes: list[ConfigChange] = []
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if old != new:
            changes.append(ConfigChange(name, key, old, new))
    return changes


def _words(value: Sequence[str] | None) -> str | None:
    if value is None:
        return None
    return json.dumps(list(value))


def compare_configs(before: ImageConfig | None, after: ImageConfig | None) -> list[ConfigChange]:
    """Differences in what a container gets: env, entrypoint, cmd, labels, user, ports, platform."""
    old = before or ImageConfig()
    new = after or ImageConfig()
    changes: list[ConfigChange] = []
    scalars = [
        (
            "platform",
            str(old.platform) if old.platform else None,
            str(new.platform) if new.platform else None,
        ),
        ("entrypoint", _words(old.entrypoint), _words(new.entrypoint)),
        ("cmd", _words(old.cmd), _words(new.cmd)),
        ("user", old.user, new.user),
        ("working_dir", old.working_dir, new.working_dir),
    ]
    for name, a, b in scalars:
        if a != b:
            changes.append(ConfigChange(name, None, a, b))
    changes += _keyed("env", _env_map(old.env), _env_map(new.env))
    changes += _keyed("labels", dict(old.labels), dict(new.labels))
    ports_old = {port: "exposed" for port in old.exposed_ports}
    ports_new = {port: "exposed" for port in new.exposed_ports}
    changes += _keyed("exposed_ports", ports_old, ports_new)
    if old.created != new.created:
        changes.append(ConfigChange("created", None, old.created, new.created))
    return changes


# ---------------------------------------------------------------------------- layers


@dataclass(frozen=True)
class LayerComparison:
    shared: tuple[Descriptor, ...]
    only_before: tuple[Descriptor, ...]
    only_after: tuple[Descriptor, ...]

    @property
    def shared_bytes(self) -> int:
        return sum(layer.size for layer in self.shared)


def compare_layers(before: Sequence[Descriptor], after: Sequence[Descriptor]) -> LayerComparison:
    """Layers by digest: in both images, only in the first, only in the second (in order)."""
    in_before = {layer.digest for layer in before}
    in_after = {layer.digest for layer in after}
    seen: set[str] = set()
    shared = []
    for layer in before:
        if layer.digest in in_after and layer.digest not in seen:
            seen.add(layer.digest)
            shared.append(layer)
    return LayerComparison(
        shared=tuple(shared),
        only_before=tuple(layer for layer in before if layer.digest not in in_after),
        only_after=tuple(layer for layer in after if layer.digest not in in_before),
    )


# ---------------------------------------------------------------------------- the whole diff


@dataclass
class ImageSide:
    """One of the two images compared."""

    reference: str
    digest: str
    layers: tuple[Descriptor, ...]
    config_size: int
    config: ImageConfig | None
    index_digest: str | None = None
    uncompressed_bytes: int | None = None
    """Sum of the layers' tar sizes, known once the layers were read."""

    @property
    def size(self) -> int:
        """Compressed: config plus layers (what a pull downloads)."""
        return self.config_size + sum(layer.size for layer in self.layers)

    @property
    def platform(self) -> Platform | None:
        return self.config.platform if self.config else None


@dataclass(frozen=True)
class FilesSummary:
    added: int
    removed: int
    modified: int
    size_change: int


def summarize_files(changes: Iterable[FileChange]) -> FilesSummary:
    counts = {Change.ADDED: 0, Change.REMOVED: 0, Change.MODIFIED: 0}
    delta = 0
    for change in changes:
        counts[change.change] = counts.get(change.change, 0) + 1
        delta += change.size_delta
    return FilesSummary(
        counts[Change.ADDED], counts[Change.REMOVED], counts[Change.MODIFIED], delta
    )


@dataclass
class ImageDiff:
    before: ImageSide
    after: ImageSide
    config: list[ConfigChange]
    layers: LayerComparison
    files: list[FileChange] | None = None
    """``None`` when the files were not compared (``--no-files``, or cancelled)."""
    notes: list[str] = field(default_factory=list)

    @property
    def size_change(self) -> int:
        return self.after.size - self.before.size

    def to_json(self) -> dict[str, Any]:
        """The document of ``regtui diff --json`` (snake_case keys, sizes in bytes)."""
        files = None
        summary = None
        if self.files is not None:
            files = [file_change_json(change) for change in self.files]
            counted = summarize_files(self.files)
            summary = {
                "added": counted.added,
                "removed": counted.removed,
                "modified": counted.modified,
                "size_change_bytes": counted.size_change,
            }
        return {
            "before": _side_json(self.before),
            "after": _side_json(self.after),
            "size_change_bytes": self.size_change,
            "config": [
                {"field": c.field, "key": c.key, "before": c.before, "after": c.after}
                for c in self.config
            ],
            "layers": {
                "shared": [_layer_json(layer) for layer in self.layers.shared],
                "only_before": [_layer_json(layer) for layer in self.layers.only_before],
                "only_after": [_layer_json(layer) for layer in self.layers.only_after],
                "shared_bytes": self.layers.shared_bytes,
            },
            "files": files,
            "files_summary": summary,
        }


def _side_json(side: ImageSide) -> dict[str, Any]:
    return {
        "reference": side.reference,
        "digest": side.digest,
        "index_digest": side.index_digest,
        "platform": platform_json(side.platform),
        "image_bytes": side.size,
        "uncompressed_bytes": side.uncompressed_bytes,
        "layer_count": len(side.layers),
    }


def _layer_json(layer: Descriptor) -> dict[str, Any]:
    return {"digest": layer.digest, "media_type": layer.media_type, "size": layer.size}


def _mode(entry: Entry | None) -> str | None:
    return None if entry is None else f"{entry.mode:04o}"


def _owner(entry: Entry | None) -> str | None:
    return None if entry is None else f"{entry.uid}:{entry.gid}"


def file_change_json(change: FileChange) -> dict[str, Any]:
    """One path of a file-level diff as JSON."""
    shown = change.after or change.before
    assert shown is not None
    return {
        "path": change.path,
        "change": str(change.change),
        "type": str(shown.type),
        "fields": list(change.fields),
        "size_before_bytes": change.size_before if change.before else None,
        "size_after_bytes": change.size_after if change.after else None,
        "size_change_bytes": change.size_delta,
        "mode_before": _mode(change.before),
        "mode_after": _mode(change.after),
        "owner_before": _owner(change.before),
        "owner_after": _owner(change.after),
        "link_before": change.before.link_target or None if change.before else None,
        "link_after": change.after.link_target or None if change.after else None,
    }
