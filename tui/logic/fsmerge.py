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

Paths are cleaned the way container runtimes clean them (:func:`tui.client.layers.clean_layer_path`:
``usr/bin/../../etc/x`` is ``etc/x``) before anything is stacked.

Memory is linear in the entries, whatever their depth: the merged filesystem is a tree of
interned :class:`PathKey` nodes (a component and a reference to the parent), and every table
here is keyed by them; a full path string is built only when asked for (:attr:`PathKey.path`,
:attr:`FileChange.path`), never kept for every ancestor. A path of 50,000 components is 50,000
small nodes, not 50,000 strings of up to 100 KB each. Results come in tree order (a directory
before what is in it, siblings by name).

Everything here is iterative (a path may have thousands of components) and holds metadata only.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from tui.client.layers import clean_layer_path, is_whiteout_target

__all__ = [
    "IMPLICIT_DIRECTORY",
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
    "PathKey",
    "diff_filesystems",
    "directory_sizes",
    "in_tree_order",
    "merge_layers",
    "runs",
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


class PathKey:
    """One path of a tree, interned: its last component and its parent (the root has none).

    Keys are compared by identity: one tree hands out one key per path (:meth:`child`), so a
    dictionary keyed by them costs a pointer per path instead of the path's text.
    """

    __slots__ = ("children", "name", "parent")

    def __init__(self, name: str = "", parent: PathKey | None = None) -> None:
        self.name = name
        self.parent = parent
        self.children: dict[str, PathKey] | None = None

    def child(self, name: str) -> PathKey:
        """The key of ``name`` in this directory (made on first use)."""
        children = self.children
        if children is None:
            children = self.children = {}
        key = children.get(name)
        if key is None:
            key = children[name] = PathKey(name, self)
        return key

    def lookup(self, path: str) -> PathKey | None:
        """The key of a clean relative ``path`` below this one, if it was ever made."""
        key: PathKey | None = self
        if path:
            for part in path.split("/"):
                assert key is not None
                key = key.children.get(part) if key.children else None
                if key is None:
                    return None
        return key

    def intern(self, path: str) -> PathKey:
        """The key of a clean relative ``path`` below this one (made as needed)."""
        key = self
        if path:
            for part in path.split("/"):
                key = key.child(part)
        return key

    @property
    def path(self) -> str:
        """The path from the root (``""`` for the root): built on each call, never stored."""
        parts: list[str] = []
        key: PathKey | None = self
        while key is not None and key.parent is not None:
            parts.append(key.name)
            key = key.parent
        parts.reverse()
        return "/".join(parts)

    @property
    def root(self) -> PathKey:
        key = self
        while key.parent is not None:
            key = key.parent
        return key

    def __repr__(self) -> str:
        return f"PathKey({self.path!r})"


def in_tree_order(keys: Iterable[PathKey]) -> list[PathKey]:
    """``keys`` sorted as a tree lists them: a directory before its contents, siblings by name.

    Linear in the keys and their ancestors (no path string is built)."""
    wanted = set(keys)
    needed: set[PathKey] = set()
    roots: list[PathKey] = []
    for key in wanted:
        current: PathKey | None = key
        while current is not None and current not in needed:
            needed.add(current)
            if current.parent is None:
                roots.append(current)
            current = current.parent
    found: list[PathKey] = []
    stack = roots
    while stack:
        key = stack.pop()
        if key in wanted:
            found.append(key)
        if key.children:
            below = [child for child in key.children.values() if child in needed]
            below.sort(key=_name, reverse=True)
            stack.extend(below)
    return found


def _name(key: PathKey) -> str:
    return key.name


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
            path = clean_layer_path(item.path)
            if not path:
                continue  # the root itself: runtimes skip such an entry
            parent, _, name = path.rpartition("/")
            if name == OPAQUE_MARKER:
                changes.opaque.append(parent)
                continue
            if name.startswith(WHITEOUT_PREFIX):
                deleted = name[len(WHITEOUT_PREFIX) :]
                if is_whiteout_target(deleted):
                    changes.whiteouts.append(f"{parent}/{deleted}" if parent else deleted)
                continue
            link = item.link_target
            if item.type is EntryType.HARDLINK:
                link = clean_layer_path(link)  # resolved from the root, like the entry's name
            if path != item.path or link != item.link_target:
                item = Entry(
                    path,
                    item.type,
                    item.mode,
                    item.uid,
                    item.gid,
                    item.size,
                    link,
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

    key: PathKey
    change: Change
    before: Entry | None
    after: Entry | None
    fields: tuple[str, ...] = ()
    """For ``MODIFIED``: ``type``, ``size``, ``mode``, ``owner``, ``link``, ``content``."""

    @property
    def path(self) -> str:
        """The path (built on each call from the tree: keep it only as long as needed)."""
        return self.key.path

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


IMPLICIT_DIRECTORY = Entry("", EntryType.DIRECTORY, IMPLICIT_DIR_MODE)
"""The entry of a directory no layer wrote but that a path below it implies (one shared object:
an implied directory costs no path string)."""


@dataclass
class MergedView:
    """The filesystem as of one layer, with what that layer changed, and the stack's figures.

    ``nodes`` and ``removed`` are keyed by :class:`PathKey` (``key.path`` gives the text);
    :meth:`find` turns a path into its key.
    """

    layer: int
    nodes: dict[PathKey, MergedNode]
    removed: dict[PathKey, MergedNode]
    wasted_bytes: int
    efficiency: float
    layer_bytes: int
    """Regular-file bytes in the layers up to this one (what they store, uncompressed)."""
    root: PathKey = field(default_factory=PathKey)

    @property
    def total_bytes(self) -> int:
        """Regular-file bytes visible in the merged filesystem."""
        return sum(node.entry.file_bytes for node in self.nodes.values())

    @property
    def file_count(self) -> int:
        return sum(1 for node in self.nodes.values() if not node.entry.is_dir)

    def find(self, path: str) -> PathKey | None:
        """The key of ``path`` (cleaned like a layer's names) if the tree has ever had it."""
        return self.root.lookup(clean_layer_path(path))

    def change_of(self, path: str | PathKey) -> Change:
        """How the selected layer touched ``path`` (``UNCHANGED`` for older entries)."""
        key = self.find(path) if isinstance(path, str) else path
        if key is not None and key in self.removed and key not in self.nodes:
            return Change.REMOVED
        node = self.nodes.get(key) if key is not None else None
        if node is None:
            raise KeyError(path)
        return node.change if node.layer == self.layer else Change.UNCHANGED

    def layer_changes(self) -> list[FileChange]:
        """What the selected layer added, modified and removed, in tree order."""
        found: dict[PathKey, FileChange] = {}
        for key, node in self.nodes.items():
            if node.layer == self.layer and node.change is not Change.UNCHANGED:
                before = self.removed.get(key)
                found[key] = FileChange(
                    key,
                    node.change,
                    before.entry if before else None,
                    node.entry,
                    changed_fields(before.entry, node.entry) if before else (),
                )
        for key, node in self.removed.items():
            if key not in self.nodes:
                found[key] = FileChange(key, Change.REMOVED, node.entry, None)
        return [found[key] for key in in_tree_order(found)]


class FilesystemMerger:
    """Apply layers bottom-up; after each, the merged filesystem and what the layer changed.

    ``removed`` holds the nodes the last layer deleted or replaced (their former entries), so
    that a view can show them and a modification can say what it was before. A layer is only
    read, never changed: the same :class:`LayerChanges` may be applied at several positions
    (an image listing one layer twice).
    """

    def __init__(self) -> None:
        self.root = PathKey()
        self.nodes: dict[PathKey, MergedNode] = {}
        self.removed: dict[PathKey, MergedNode] = {}
        self.layer = -1
        self.wasted_bytes = 0
        self.layer_bytes = 0
        self._sum_min = 0
        self._sum_all = 0
        self._min_seen: dict[PathKey, int] = {}

    # -- figures ------------------------------------------------------------------------------
    @property
    def efficiency(self) -> float:
        return 1.0 if self._sum_all == 0 else self._sum_min / self._sum_all

    def _occurrence(self, key: PathKey, size: int) -> None:
        """Dive's bookkeeping: one more size seen at ``key``."""
        self._sum_all += size
        previous = self._min_seen.get(key)
        if previous is None:
            self._min_seen[key] = size
            self._sum_min += size
        elif size < previous:
            self._min_seen[key] = size
            self._sum_min -= previous - size

    def view(self) -> MergedView:
        return MergedView(
            self.layer,
            self.nodes,
            self.removed,
            self.wasted_bytes,
            self.efficiency,
            self.layer_bytes,
            self.root,
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
                key = self.root.lookup(path)
                if key is not None:
                    self._remove_tree(key)
        for directory in layer.opaque:
            key = self.root.lookup(directory)
            if key is not None:
                for child in self._live_children(key):
                    self._remove_tree(child)
        for path in sorted(layer.entries):
            self._write(path, layer.entries[path])
        # A deletion is a zero-byte occurrence of every file it took away (see module docs).
        for key, node in self.removed.items():
            if key not in self.nodes and not node.entry.is_dir:
                self._occurrence(key, 0)
        return self.view()

    def apply_repeated(self, layer: LayerChanges, times: int) -> MergedView:
        """:meth:`apply` ``layer`` ``times`` times in a row, in the time of at most three.

        A manifest may list one layer thousands of times. Stacking it again on itself gives the
        same filesystem; each copy after the second meets the same state (but for layer
        numbers) and changes the figures by the same amounts (its bytes are unpacked again, what
        the copy below wrote is overwritten again: wasted). So three copies are applied, and the
        third copy's differences are added for the rest; the nodes the last copy wrote or
        removed are renumbered to the last position. Tests compare it with ``times`` calls.
        """
        if times < 1:
            raise ValueError("a layer is applied at least once")
        view = self.apply(layer)
        for _ in range(min(times, 3) - 1):
            wasted, seen_all, seen_min = self.wasted_bytes, self._sum_all, self._sum_min
            view = self.apply(layer)
        rest = times - 3
        if rest <= 0:
            return view
        self.wasted_bytes += rest * (self.wasted_bytes - wasted)
        self._sum_all += rest * (self._sum_all - seen_all)
        self._sum_min += rest * (self._sum_min - seen_min)
        self.layer_bytes += rest * layer.file_bytes
        for node in self.nodes.values():
            if node.layer == self.layer:
                node.layer += rest
        for node in self.removed.values():
            if node.layer == self.layer - 1:
                node.layer += rest
        self.layer += rest
        return self.view()

    def _live_children(self, key: PathKey) -> list[PathKey]:
        if not key.children:
            return []
        return [child for child in key.children.values() if child in self.nodes]

    def _forget(self, key: PathKey, node: MergedNode) -> None:
        """``key`` leaves the filesystem because of the current layer."""
        if node.layer < self.layer:
            # Only what was there before this layer is "removed by" it: what the layer itself
            # wrote and then replaced is not in the filesystem below.
            self.removed.setdefault(key, MergedNode(node.entry, node.layer, Change.REMOVED))
            self.wasted_bytes += node.entry.file_bytes

    def _remove_tree(self, key: PathKey) -> None:
        """Remove ``key`` and everything below it (iteratively).

        Below a path that is not in the filesystem nothing is (a path's parent is always
        there), so the walk stops at keys no longer present.
        """
        stack = [key]
        while stack:
            current = stack.pop()
            node = self.nodes.pop(current, None)
            if node is None:
                continue
            self._forget(current, node)
            if current.children:
                stack.extend(current.children.values())

    def _write(self, path: str, entry: Entry) -> None:
        parts = path.split("/")
        key = self.root
        for part in parts[:-1]:
            key = key.child(part)
            existing = self.nodes.get(key)
            if existing is None or not existing.entry.is_dir:
                self._put(key, IMPLICIT_DIRECTORY)
        key = key.child(parts[-1])
        self._put(key, entry)
        if not entry.is_dir:
            self._occurrence(key, entry.size if entry.type is EntryType.FILE else 0)

    def _put(self, key: PathKey, entry: Entry) -> None:
        existing = self.nodes.get(key)
        if existing is not None:
            if existing.entry.is_dir and not entry.is_dir:
                # A directory replaced by anything else takes its whole subtree with it.
                for child in self._live_children(key):
                    self._remove_tree(child)
            if not existing.entry.is_dir and existing.layer < self.layer:
                if entry.is_dir:
                    self._occurrence(key, 0)  # the file is gone (replaced by a directory)
                self._forget(key, existing)
            elif existing.layer < self.layer:
                self.removed.setdefault(
                    key, MergedNode(existing.entry, existing.layer, Change.REMOVED)
                )
        before = self.removed.get(key)
        if before is None and existing is not None and existing.layer == self.layer:
            # Written twice by this layer: keep the first verdict.
            change = existing.change
        elif before is None:
            change = Change.ADDED
        elif _same(before.entry, entry):
            change = Change.UNCHANGED
        else:
            change = Change.MODIFIED
        self.nodes[key] = MergedNode(entry, self.layer, change)


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
    for layer, times in runs(layers[: last + 1]):
        view = merger.apply_repeated(layer, times)
    return view


def runs(layers: Iterable[LayerChanges]) -> list[tuple[LayerChanges, int]]:
    """Consecutive copies of one layer (the same object) as ``(layer, how many)``."""
    found: list[tuple[LayerChanges, int]] = []
    for layer in layers:
        if found and found[-1][0] is layer:
            found[-1] = (layer, found[-1][1] + 1)
        else:
            found.append((layer, 1))
    return found


def _children_of(nodes: Mapping[PathKey, object]) -> dict[PathKey, list[PathKey]]:
    """Each directory's present children (the root's too), from a flat mapping of keys."""
    children: dict[PathKey, list[PathKey]] = {}
    for key in nodes:
        assert key.parent is not None  # the root is never a node
        children.setdefault(key.parent, []).append(key)
    return children


def directory_sizes(nodes: Mapping[PathKey, MergedNode]) -> dict[PathKey, int]:
    """Regular-file bytes below each directory (the root's key too); linear, no recursion."""
    children = _children_of(nodes)
    sizes: dict[PathKey, int] = {}
    if not nodes:
        return sizes
    root = next(iter(nodes)).root
    order: list[PathKey] = []
    stack = [root]
    while stack:
        key = stack.pop()
        order.append(key)
        stack.extend(children.get(key, ()))
    for key in reversed(order):  # children before their parent
        node = nodes.get(key)
        if node is not None and not node.entry.is_dir:
            continue
        sizes[key] = sum(
            sizes[child] if child in sizes else nodes[child].entry.file_bytes
            for child in children.get(key, ())
        )
    return sizes


def diff_filesystems(
    before: Mapping[PathKey, MergedNode], after: Mapping[PathKey, MergedNode]
) -> list[FileChange]:
    """File-level differences from ``before`` to ``after``, in tree order.

    The two trees are walked side by side, matched by name (their keys may come from two
    mergers). Modified means a changed type, size, mode, owner, link target, or content (when
    both digests are known). Directories appear when they are added, removed or their own
    metadata changed.
    """
    old_children = _children_of(before)
    new_children = _children_of(after)
    old_root = next(iter(before)).root if before else None
    new_root = next(iter(after)).root if after else None

    def pairs(old_dir: PathKey | None, new_dir: PathKey | None) -> list[_Pair]:
        """The children of both directories matched by name, last name first (a stack)."""
        olds = {key.name: key for key in old_children.get(old_dir, ())} if old_dir else {}
        news = {key.name: key for key in new_children.get(new_dir, ())} if new_dir else {}
        names = sorted(olds.keys() | news.keys(), reverse=True)
        return [(olds.get(name), news.get(name)) for name in names]

    found: list[FileChange] = []
    stack = pairs(old_root, new_root)
    while stack:
        old_key, new_key = stack.pop()
        old = before[old_key] if old_key is not None else None
        new = after[new_key] if new_key is not None else None
        if old is None:
            assert new is not None and new_key is not None
            found.append(FileChange(new_key, Change.ADDED, None, new.entry))
        elif new is None:
            assert old_key is not None
            found.append(FileChange(old_key, Change.REMOVED, old.entry, None))
        elif new.entry is not old.entry:
            fields = changed_fields(old.entry, new.entry)
            if fields:
                assert new_key is not None
                found.append(FileChange(new_key, Change.MODIFIED, old.entry, new.entry, fields))
        below_old = old_key if old is not None and old.entry.is_dir else None
        below_new = new_key if new is not None and new.entry.is_dir else None
        if below_old is not None or below_new is not None:
            stack.extend(pairs(below_old, below_new))  # depth first: contents come next
    return found


_Pair = tuple[PathKey | None, PathKey | None]
