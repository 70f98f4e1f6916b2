"""The files of a layer as a tree with sizes per directory; deletions in red."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from tui.client.layers import FileNode, NodeKind
from tui.logic.escape import visible
from tui.logic.fmt import count_of, human_size


def file_label(node: FileNode) -> Text:
    """A node's label; its name and link target (from the layer) shown escaped."""
    name = visible(node.name)
    if node.kind is NodeKind.WHITEOUT:
        return Text(f"✗ {name}  (deleted by this layer)", style="bold red")
    if node.is_dir:
        label = Text(f"{name}/", style="bold")
        files = count_of(node.file_count, "file")
        label.append(f"  {human_size(node.total_size)} · {files}", style="dim")
        if node.opaque:
            label.append("  (opaque: hides lower layers' contents)", style="red")
        return label
    if node.kind is NodeKind.SYMLINK:
        return Text(f"{name} → {visible(node.link_target or '')}", style="cyan")
    if node.kind is NodeKind.HARDLINK:
        return Text(f"{name} ⇒ {visible(node.link_target or '')}", style="cyan")
    label = Text(name)
    label.append(f"  {human_size(node.size)}", style="dim")
    return label


class FileTree(Tree[FileNode]):
    """Lazy: a directory's children are added when it opens (layers can hold 100,000 files)."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("/", id=id)
        self.guide_depth = 3

    def show(self, root: FileNode) -> None:
        self.clear()
        self.root.set_label(file_label(root).append("  (layer root)", style="dim"))
        self.root.data = root
        self._populate(self.root, root)
        self.root.expand()

    def _populate(self, parent: TreeNode[FileNode], model: FileNode) -> None:
        for child in model.sorted_children():
            if child.is_dir and child.children:
                parent.add(file_label(child), data=child)
            else:
                parent.add_leaf(file_label(child), data=child)

    def _on_tree_node_expanded(self, event: Tree.NodeExpanded[FileNode]) -> None:
        node = event.node
        if node.data is not None and node.data.children and not node.children:
            self._populate(node, node.data)

    def expand_everything(self) -> None:
        """Open every directory (fills in the lazy parts first)."""
        stack = [self.root]
        while stack:
            node = stack.pop()
            if node.data is not None and node.data.children and not node.children:
                self._populate(node, node.data)
            if node.allow_expand:
                node.expand()
            stack.extend(node.children)
