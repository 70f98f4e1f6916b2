"""Stack image layers into one filesystem, the way a container runtime does (pure, no I/O).

Each layer is a list of tar entries (:class:`Entry`); :meth:`LayerChanges.from_entries` reads the
OCI whiteout convention out of their names: ``dir/.wh.NAME`` deletes ``dir/NAME`` from the layers
below, ``dir/.wh..wh..opq`` hides everything the layers below had in ``dir``. Entries of the same
layer are never hidden by that layer's own whiteouts (image-spec, "Whiteouts").

:class:`FilesystemMerger` applies layers one after the other and remembers, for the last layer
applied, which paths it added, modified or removed; :func:`merge_layers` gives the filesystem as of
any layer. :func:`diff_filesystems` compares two merged filesystems file by file.

Wasted space and efficiency:

* **wasted bytes**: bytes of regular files written by a lower layer and then overwritten or deleted
  by a layer above (or written twice in one layer): they are pulled and stored, never seen.
* **efficiency** follows dive's score: every path collects the sizes it had in each layer that
  wrote it; efficiency = (sum over paths of the smallest size seen) / (sum of every size seen),
  1.0 when nothing was written. A deletion counts as a zero-byte occurrence of every file it
  deletes (dive counts a deleted directory once, as the sum of its contents).

Everything here is iterative (a path may have thousands of components) and holds metadata only.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

__all__ = [
    "OPAQUE_MARKER",
    "WHITEOUT_PREFIX",
    "Change",
    "Entry",
    "EntryType",
    "FileChange",
    "FilesystemMerger",
    "LayerChanges",
    "MergedNode",
    "MergedView",
    "descendants",
    "diff_filesystems",
    "directory_sizes",
    "merge_layers",
    "normalize_path",
    "parent_of",
]

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
IMPLICIT_DIR_MODE = 0o755


class EntryType(enum.StrEnum):
    FILE = "file"
    DIRECTORY = "dir"
    SYMLINK = "symlink"
    HARDLINK = "hardlink"
    DEVICE = "device"
    FIFO = "fifo"


class Change(enum.StrEnum):
    ADDED = "added"
    MODIFIED = "modified"
    REMOVED = "removed"
    UNCHANGED = "unchanged"


@dataclass(frozen=True, slots=True)
class Entry:
    """One tar entry's metadata (never its content). ``path`` is relative, without ``./``."""

    path: str
    type: EntryType = EntryType.FILE
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    size: int = 0
    link_target: str = ""
    digest: str | None = None
    """Digest of the content when the reader computed one (``None``: unknown)."""

    @property
    def is_dir(self) -> bool:
        return self.type is EntryType.DIRECTORY

    @property
    def file_bytes(self) -> int:
        """Bytes this entry stores: the size of a regular file, 0 for anything else."""
        return self.size if self.type is EntryType.FILE else 0


def normalize_path(path: str) -> str:
    """``./usr//bin/`` -> ``usr/bin``; ``..`` components are dropped (never climb out)."""
    return "/".join(part for part in path.split("/") if part and part not in (".", ".."))


def parent_of(path: str) -> str:
    """The parent directory of ``path`` (``""`` is the root)."""
    return path.rpartition("/")[0]


def _ancestors(path: str) -> Iterator[str]:
    """``a/b/c`` -> ``a``, ``a/b`` (top-down, without the path itself)."""
    position = path.find("/")
    while position >= 0:
        yield path[:position]
        position = path.find("/", position + 1)


@dataclass(slots=True)
class LayerChanges:
    """What one layer does: entries it writes, paths it deletes, directories it makes opaque."""

    entries: dict[str, Entry] = field(default_factory=dict)
    whiteouts: list[str] = field(default_factory=list)
    opaque: list[str] = field(default_factory=list)
    duplicate_bytes: int = 0
    """Regular-file bytes of entries written twice in this layer (the earlier copy is hidden)."""

    @classmethod
    def from_entries(cls, raw: Iterable[Entry]) -> LayerChanges:
        """Interpret whiteout names; a path written twice keeps its last entry (tar order)."""
        changes = cls()
        for item in raw:
            path = normalize_path(item.path)
            if not path:
                continue
            parent, _, name = path.rpartition("/")
            if name == OPAQUE_MARKER:
                changes.opaque.append(parent)
                continue
            if name.startswith(WHITEOUT_PREFIX):
                deleted = name[len(WHITEOUT_PREFIX) :]
                if deleted:
                    changes.whiteouts.append(f"{parent}/{deleted}" if parent else deleted)
                continue
            if path != item.path:
                item = Entry(
                    path,
                    item.type,
                    item.mode,
                    item.uid,
                    item.gid,
                    item.size,
                    item.link_target,
                    item.digest,
                )
            previous = changes.entries.get(path)
            if previous is not None:
                changes.duplicate_bytes += previous.file_bytes
            changes.entries[path] = item
        return changes

    @property
    def file_bytes(self) -> int:
        return sum(entry.file_bytes for entry in self.entries.values()) + self.duplicate_bytes


@dataclass(slots=True)
class MergedNode:
    """A path of the merged filesystem: its entry, the layer that last wrote it, and how."""

    entry: Entry
    layer: int
    change: Change
    """``ADDED`` or ``MODIFIED`` by ``layer`` (``REMOVED`` for nodes in a removed list)."""


@dataclass(frozen=True, slots=True)
class FileChange:
    """One path that differs between two filesystems (or that a layer changed)."""

    path: str
    change: Change
    before: Entry | None
    after: Entry | None
    fields: tuple[str, ...] = ()
    """For ``MODIFIED``: ``type``, ``size``, ``mode``, ``owner``, ``link``, ``content``."""

    @property
    def size_before(self) -> int:
        return self.before.file_bytes if self.before else 0

    @property
    def size_after(self) -> int:
        return self.after.file_bytes if self.after else 0

    @property
    def size_delta(self) -> int:
        return self.size_after - self.size_before


def changed_fields(before: Entry, after: Entry) -> tuple[str, ...]:
    """The fields that differ; ``content`` only when both digests are known."""
    found: list[str] = []
    if before.type is not after.type:
        found.append("type")
    if before.size != after.size:
        found.append("size")
    if before.mode != after.mode:
        found.append("mode")
    if before.uid != after.uid or before.gid != after.gid:
        found.append("owner")
    if before.link_target != after.link_target:
        found.append("link")
    if before.digest and after.digest and before.digest != after.digest:
        found.append("content")
    return tuple(found)


@dataclass
class MergedView:
    """The filesystem as of one layer, with what that layer changed, and the stack's figures."""

    layer: int
    nodes: dict[str, MergedNode]
    removed: dict[str, MergedNode]
    wasted_bytes: int
    efficiency: float
    layer_bytes: int
    """Regular-file bytes in the layers up to this one (what they store, uncompressed)."""

    @property
    def total_bytes(self) -> int:
        """Regular-file bytes visible in the merged filesystem."""
        return sum(node.entry.file_bytes for node in self.nodes.values())

    @property
    def file_count(self) -> int:
        return sum(1 for node in self.nodes.values() if not node.entry.is_dir)

    def change_of(self, path: str) -> Change:
        """How the selected layer touched ``path`` (``UNCHANGED`` for older entries)."""
        if path in self.removed and path not in self.nodes:
            return Change.REMOVED
        node = self.nodes.get(path)
        if node is None:
            raise KeyError(path)
        return node.change if node.layer == self.layer else Change.UNCHANGED

    def layer_changes(self) -> list[FileChange]:
        """What the selected layer added, modified and removed, sorted by path."""
        found: list[FileChange] = []
        for path, node in self.nodes.items():
            if node.layer == self.layer and node.change is not Change.UNCHANGED:
                before = self.removed.get(path)
                found.append(
                    FileChange(
                        path,
                        node.change,
                        before.entry if before else None,
                        node.entry,
                        changed_fields(before.entry, node.entry) if before else (),
                    )
                )
        for path, node in self.removed.items():
            if path not in self.nodes:
                found.append(FileChange(path, Change.REMOVED, node.entry, None))
        found.sort(key=lambda change: change.path)
        return found


class FilesystemMerger:
    """Apply layers bottom-up; after each, the merged filesystem and what the layer changed.

    ``removed`` holds the nodes the last layer deleted or replaced (their former entries), so
    that a view can show them and a modification can say what it was before.
    """

    def __init__(self) -> None:
        self.nodes: dict[str, MergedNode] = {}
        self.removed: dict[str, MergedNode] = {}
        self.layer = -1
        self.wasted_bytes = 0
        self.layer_bytes = 0
        self._children: dict[str, set[str]] = {}
        self._sum_min = 0
        self._sum_all = 0
        self._min_seen: dict[str, int] = {}

    # -- figures ------------------------------------------------------------------------------
    @property
    def efficiency(self) -> float:
        return 1.0 if self._sum_all == 0 else self._sum_min / self._sum_all

    def _occurrence(self, path: str, size: int) -> None:
        """Dive's bookkeeping: one more size seen at ``path``."""
        self._sum_all += size
        previous = self._min_seen.get(path)
        if previous is None:
            self._min_seen[path] = size
            self._sum_min += size
        elif size < previous:
            self._min_seen[path] = size
            self._sum_min -= previous - size

    def view(self) -> MergedView:
        return MergedView(
            self.layer,
            self.nodes,
            self.removed,
            self.wasted_bytes,
            self.efficiency,
            self.layer_bytes,
        )

    # -- applying a layer ---------------------------------------------------------------------
    def apply(self, layer: LayerChanges) -> MergedView:
        """Stack ``layer`` on top; returns the view as of this layer (shares this state)."""
        self.layer += 1
        self.removed = {}
        self.layer_bytes += layer.file_bytes
        self.wasted_bytes += layer.duplicate_bytes
        for path in layer.whiteouts:
            if path not in layer.entries:
                self._remove_tree(path)
        for directory in layer.opaque:
            for child in sorted(self._children.get(directory, ())):
                self._remove_tree(child)
        for path in sorted(layer.entries):
            self._write(layer.entries[path])
        # A deletion is a zero-byte occurrence of every file it took away (see module docs).
        for path, node in self.removed.items():
            if path not in self.nodes and not node.entry.is_dir:
                self._occurrence(path, 0)
        return self.view()

    def _link(self, path: str) -> None:
        self._children.setdefault(parent_of(path), set()).add(path)

    def _unlink(self, path: str) -> None:
        siblings = self._children.get(parent_of(path))
        if siblings is not None:
            siblings.discard(path)

    def _forget(self, path: str, node: MergedNode) -> None:
        """``path`` leaves the filesystem because of the current layer."""
        if node.layer < self.layer:
            # Only what was there before this layer is "removed by" it: what the layer itself
            # wrote and then replaced is not in the filesystem below.
            self.removed.setdefault(path, MergedNode(node.entry, node.layer, Change.REMOVED))
            self.wasted_bytes += node.entry.file_bytes

    def _remove_tree(self, path: str) -> None:
        """Remove ``path`` and everything below it (iteratively)."""
        root = self.nodes.get(path)
        if root is None:
            return
        self._unlink(path)
        stack = [path]
        while stack:
            current = stack.pop()
            node = self.nodes.pop(current, None)
            if node is not None:
                self._forget(current, node)
            stack.extend(self._children.pop(current, ()))

    def _write(self, entry: Entry) -> None:
        path = entry.path
        for ancestor in _ancestors(path):
            existing = self.nodes.get(ancestor)
            if existing is None or not existing.entry.is_dir:
                self._put(Entry(ancestor, EntryType.DIRECTORY, IMPLICIT_DIR_MODE))
        self._put(entry)
        if not entry.is_dir:
            self._occurrence(path, entry.size if entry.type is EntryType.FILE else 0)

    def _put(self, entry: Entry) -> None:
        path = entry.path
        existing = self.nodes.get(path)
        if existing is not None:
            if existing.entry.is_dir and not entry.is_dir:
                # A directory replaced by anything else takes its whole subtree with it.
                for child in list(self._children.get(path, ())):
                    self._remove_tree(child)
            if not existing.entry.is_dir and existing.layer < self.layer:
                if entry.is_dir:
                    self._occurrence(path, 0)  # the file is gone (replaced by a directory)
                self._forget(path, existing)
            elif existing.layer < self.layer:
                self.removed.setdefault(
                    path, MergedNode(existing.entry, existing.layer, Change.REMOVED)
                )
        before = self.removed.get(path)
        if before is None and existing is not None and existing.layer == self.layer:
            # Written twice by this layer: keep the first verdict.
            change = existing.change
        elif before is None:
            change = Change.ADDED
        elif _same(before.entry, entry):
            change = Change.UNCHANGED
        else:
            change = Change.MODIFIED
        if existing is None:
            self._link(path)
        self.nodes[path] = MergedNode(entry, self.layer, change)


def _same(before: Entry, after: Entry) -> bool:
    """Rewriting a path changes nothing only when every field, content included, is known equal.

    A regular file rewritten with the same metadata but no digests may hold other bytes: it is
    counted as modified (its old bytes are wasted either way).
    """
    if changed_fields(before, after):
        return False
    if after.type is EntryType.FILE:
        return bool(before.digest and before.digest == after.digest)
    return True


def merge_layers(layers: Sequence[LayerChanges], upto: int | None = None) -> MergedView:
    """The filesystem as of layer ``upto`` (default: the last), marked by that layer's changes."""
    if not layers:
        raise ValueError("an image without layers has no filesystem")
    last = len(layers) - 1 if upto is None else upto
    if not 0 <= last < len(layers):
        raise IndexError(f"layer {upto} of {len(layers)}")
    merger = FilesystemMerger()
    view = merger.view()
    for layer in layers[: last + 1]:
        view = merger.apply(layer)
    return view


def descendants(nodes: Mapping[str, object], path: str) -> list[str]:
    """Every path below ``path`` in a flat mapping of paths (root: ``""``), sorted."""
    prefix = f"{path}/" if path else ""
    return sorted(p for p in nodes if p.startswith(prefix) and p != path)


def directory_sizes(nodes: Mapping[str, MergedNode]) -> dict[str, int]:
    """Regular-file bytes below each directory (``""`` is the root); one pass, no recursion."""
    sizes: dict[str, int] = {"": 0}
    for path, node in nodes.items():
        if node.entry.is_dir:
            sizes.setdefault(path, 0)
    for path, node in nodes.items():
        size = node.entry.file_bytes
        if not size:
            continue
        sizes[""] += size
        for ancestor in _ancestors(path):
            sizes[ancestor] = sizes.get(ancestor, 0) + size
    return sizes


def diff_filesystems(
    before: Mapping[str, MergedNode], after: Mapping[str, MergedNode]
) -> list[FileChange]:
    """File-level differences from ``before`` to ``after``, sorted by path.

    Modified means a changed type, size, mode, owner, link target, or content (when both
    digests are known). Directories appear when they are added, removed or their own
    metadata changed.
    """
    found: list[FileChange] = []
    for path, old in before.items():
        new = after.get(path)
        if new is None:
            found.append(FileChange(path, Change.REMOVED, old.entry, None))
            continue
        if new.entry is old.entry:
            continue
        fields = changed_fields(old.entry, new.entry)
        if fields:
            found.append(FileChange(path, Change.MODIFIED, old.entry, new.entry, fields))
    for path, new in after.items():
        if path not in before:
            found.append(FileChange(path, Change.ADDED, None, new.entry))
    found.sort(key=lambda change: change.path)
    return found
