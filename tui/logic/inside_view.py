"""Rows of the merged-filesystem and diff screens: filtered, sorted, capped (pure)."""

from __future__ import annotations

import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from tui.logic.escape import visible
from tui.logic.fmt import human_size, short_digest, signed_size
from tui.logic.fsmerge import (
    Change,
    Entry,
    EntryType,
    FileChange,
    MergedView,
    PathKey,
    in_tree_order,
)
from tui.logic.imagediff import ImageDiff

__all__ = [
    "MAX_ROWS",
    "MergedRow",
    "PathMatcher",
    "diff_rows",
    "diff_summary_lines",
    "efficiency_text",
    "merged_rows",
    "mode_string",
]

MAX_ROWS = 2000
"""Rows a table shows at once; the filter narrows the rest down."""

_TYPE_BITS = {
    EntryType.FILE: stat.S_IFREG,
    EntryType.DIRECTORY: stat.S_IFDIR,
    EntryType.SYMLINK: stat.S_IFLNK,
    EntryType.HARDLINK: stat.S_IFREG,
    EntryType.DEVICE: stat.S_IFCHR,
    EntryType.FIFO: stat.S_IFIFO,
}


def mode_string(entry: Entry) -> str:
    """``drwxr-xr-x`` as ``ls -l`` shows it."""
    return stat.filemode(_TYPE_BITS[entry.type] | (entry.mode & 0o7777))


def efficiency_text(efficiency: float) -> str:
    return f"{efficiency * 100:.1f} %"


@dataclass(frozen=True)
class MergedRow:
    key: PathKey
    change: Change
    entry: Entry
    size: int
    """A file's bytes, or the bytes below a directory."""

    @property
    def path(self) -> str:
        """Built from the tree on each call (rows keep no path text: a tree may be deep)."""
        return self.key.path


class PathMatcher:
    """Whether a path contains ``query`` (case-insensitive), without building the path.

    A path of 50,000 components has 50,000 ancestors whose texts add up to gigabytes: each key
    keeps only whether its path matched and the path's last ``len(query) - 1`` characters, which
    is all a child needs (the query is in the child's path if it is in the parent's, or across
    that tail, the ``/`` and the child's name). Linear in the keys asked about and their
    ancestors, each visited once.
    """

    def __init__(self, query: str) -> None:
        self.needle = query.lower()
        self._keep = max(len(self.needle) - 1, 0)
        self._known: dict[PathKey, tuple[bool, str]] = {}

    def __call__(self, key: PathKey) -> bool:
        if not self.needle:
            return True
        known = self._known
        chain: list[PathKey] = []
        current = key
        while current.parent is not None and current not in known:
            chain.append(current)
            current = current.parent
        matched, tail = known[current] if current.parent is not None else (False, None)
        for item in reversed(chain):
            name = item.name.lower()
            text = name if tail is None else f"{tail}/{name}"
            matched = matched or self.needle in text
            tail = text[-self._keep :] if self._keep else ""
            known[item] = (matched, tail)
        return known[key][0] if key.parent is not None else False


def merged_rows(
    view: MergedView,
    sizes: Mapping[PathKey, int],
    *,
    query: str = "",
    by_size: bool = False,
    only_changes: bool = False,
) -> list[MergedRow]:
    """Every path of the view (and those its layer removed), filtered by ``query``.

    By path means in tree order (a directory, then what is in it); by size, largest first.
    No path text is built (:class:`PathMatcher`): rows are linear in the tree, however deep.
    """
    matches = PathMatcher(query)
    rows: dict[PathKey, MergedRow] = {}
    for key, node in view.nodes.items():
        change = node.change if node.layer == view.layer else Change.UNCHANGED
        if only_changes and change is Change.UNCHANGED:
            continue
        if not matches(key):
            continue
        size = sizes.get(key, 0) if node.entry.is_dir else node.entry.file_bytes
        rows[key] = MergedRow(key, change, node.entry, size)
    for key, node in view.removed.items():
        if key not in view.nodes and matches(key):
            rows[key] = MergedRow(key, Change.REMOVED, node.entry, node.entry.file_bytes)
    ordered = [rows[key] for key in in_tree_order(rows)]
    if by_size:
        ordered.sort(key=lambda row: -row.size)  # stable: equal sizes stay in tree order
    return ordered


def diff_rows(
    changes: Iterable[FileChange], *, query: str = "", by_size: bool = False
) -> list[FileChange]:
    """File changes filtered by ``query``; in the given (tree) order, or by the size of the
    change (largest first, ties in the given order)."""
    matches = PathMatcher(query)
    rows = [change for change in changes if matches(change.key)]
    if by_size:
        rows.sort(key=lambda change: -abs(change.size_delta))
    return rows


def diff_summary_lines(diff: ImageDiff) -> list[str]:
    """The top of the diff screen: both images, size change, config changes, layers."""
    lines = []
    for name, side in (("Before", diff.before), ("After ", diff.after)):
        platform = f" · {side.platform}" if side.platform else ""
        lines.append(
            f"{name} {side.reference} · {short_digest(side.digest)}{platform} · "
            f"{human_size(side.size)}"
        )
    lines.append(f"Size   {signed_size(diff.size_change)} compressed")
    if not diff.config:
        lines.append("Config identical")
    for change in diff.config:
        lines.append(f"Config {change.line('→')}")
    layers = diff.layers
    lines.append(
        f"Layers {len(layers.shared)} shared ({human_size(layers.shared_bytes)}) · "
        f"{len(layers.only_before)} only before "
        f"({human_size(sum(layer.size for layer in layers.only_before))}) · "
        f"{len(layers.only_after)} only after "
        f"({human_size(sum(layer.size for layer in layers.only_after))})"
    )
    return [visible(line) for line in lines]  # labels, env values, references: from the images
