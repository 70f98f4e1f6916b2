"""The merged filesystem as a tree that folds and unfolds (space), as dive shows it."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rich.text import Text
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from tui.logic.escape import visible
from tui.logic.fmt import human_size
from tui.logic.fsmerge import Change
from tui.logic.image_view import tree_children
from tui.logic.inside_view import MergedRow

MARK_STYLES = {
    Change.ADDED: ("A", "bold green"),
    Change.REMOVED: ("D", "bold red"),
    Change.MODIFIED: ("M", "bold yellow"),
    Change.UNCHANGED: (" ", ""),
}


def node_label(name: str, row: MergedRow | None, size: int) -> Text:
    """``A bin/  1.2 MiB``: the change mark, the name (directories end in ``/``), the size."""
    mark, style = MARK_STYLES[row.change if row is not None else Change.UNCHANGED]
    label = Text(mark, style=style)
    is_dir = row is None or row.entry.is_dir
    removed = row is not None and row.change is Change.REMOVED
    # Names come from a layer: control characters shown escaped, never sent to the terminal.
    label.append(f" {visible(name)}{'/' if is_dir else ''}", style="strike dim" if removed else "")
    if row is not None and row.entry.link_target:
        label.append(f" → {visible(row.entry.link_target)}", style="cyan")
    label.append(f"  {human_size(size)}", style="dim")
    return label


class MergedTree(Tree[str]):
    """Node data: the path (``""`` for the root). Directories fill in when they open."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("/", id=id)
        self.guide_depth = 2
        self._rows: dict[str, MergedRow] = {}
        self._children: dict[str, list[str]] = {}
        self._sizes: Callable[[str], int] = lambda path: 0

    def show(
        self, rows: Sequence[MergedRow], sizes: Callable[[str], int], *, by_size: bool
    ) -> None:
        """The rows (already filtered) as a tree; directories leading to a row are shown even
        when the filter left them out. ``by_size``: the largest first in every directory.
        ``sizes(path)``: the bytes below a directory (asked only for the directories shown, so
        no path text is built for the others)."""
        self._rows = {row.path: row for row in rows}
        self._sizes = sizes
        self._children = tree_children(self._rows)
        for paths in self._children.values():
            if by_size:
                paths.sort(key=lambda path: (-self._path_size(path), path))
            else:
                paths.sort()
        self.clear()
        self.root.data = ""
        self.root.set_label(Text(f"/  {human_size(sizes(''))}", style="bold"))
        self._populate(self.root, "")
        self.root.expand()

    def _path_size(self, path: str) -> int:
        row = self._rows.get(path)
        return row.size if row is not None else self._sizes(path)

    def _populate(self, parent: TreeNode[str], path: str) -> None:
        for child in self._children.get(path, ()):
            label = node_label(
                child.rpartition("/")[2], self._rows.get(child), self._path_size(child)
            )
            if child in self._children:
                parent.add(label, data=child)
            else:
                parent.add_leaf(label, data=child)

    def _on_tree_node_expanded(self, event: Tree.NodeExpanded[str]) -> None:
        node = event.node
        if node.data is not None and not node.children:
            self._populate(node, node.data)
