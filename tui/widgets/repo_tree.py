"""Repositories as a tree by namespace, populated lazily (a namespace fills in when opened)."""

from __future__ import annotations

from collections.abc import Iterable

from rich.text import Text
from textual.message import Message
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from tui.logic.repotree import RepoNode


class RepoTree(Tree[RepoNode]):
    """Shows a ``RepoNode`` model. Leaves are repositories; ``counts`` add "N tags"."""

    class RepositorySelected(Message):
        def __init__(self, tree: RepoTree, repository: str) -> None:
            super().__init__()
            self.tree = tree
            self.repository = repository

        @property
        def control(self) -> RepoTree:
            return self.tree

    class RepositoriesShown(Message):
        """Repositories became visible (a namespace opened): their tag counts are wanted."""

        def __init__(self, tree: RepoTree, repositories: list[str]) -> None:
            super().__init__()
            self.tree = tree
            self.repositories = repositories

        @property
        def control(self) -> RepoTree:
            return self.tree

    EXPAND_ALL_LIMIT = 300
    """When a filtered tree has at most this many repositories, every namespace opens."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("repositories", id=id)
        self.show_root = False
        self.guide_depth = 3
        self.counts: dict[str, int | str] = {}
        self._leaves: dict[str, list[TreeNode[RepoNode]]] = {}
        self._model = RepoNode("", "")

    # -- building -----------------------------------------------------------------------------
    def show(self, model: RepoNode, *, expanded: Iterable[str] = ()) -> None:
        """Replace the tree with ``model``; namespaces in ``expanded`` (paths) open again."""
        cursor = self.cursor_node.data.path if self.cursor_node and self.cursor_node.data else None
        self._model = model
        self.clear()
        self._leaves = {}
        open_all = model.repo_count <= self.EXPAND_ALL_LIMIT
        wanted = set(expanded)
        shown = self._populate(self.root, model, open_all=open_all, wanted=wanted)
        # Lines are laid out on the next refresh: place the cursor then.
        self.call_after_refresh(self._place_cursor, cursor)
        if shown:
            self.post_message(self.RepositoriesShown(self, shown))

    def _populate(
        self, parent: TreeNode[RepoNode], model: RepoNode, *, open_all: bool, wanted: set[str]
    ) -> list[str]:
        shown: list[str] = []
        for child in model.sorted_children():
            if child.children:
                node = parent.add(self._namespace_label(child), data=child)
                if child.repository:
                    self._add_leaf(node, child, own=True)
                    shown.append(child.repository)
                if open_all or child.path in wanted:
                    shown += self._populate(node, child, open_all=open_all, wanted=wanted)
                    node.expand()
                else:
                    # A placeholder keeps the expand arrow until the namespace is opened.
                    node.allow_expand = True
            else:
                self._add_leaf(parent, child)
                if child.repository:
                    shown.append(child.repository)
        return shown

    def _add_leaf(self, parent: TreeNode[RepoNode], model: RepoNode, *, own: bool = False) -> None:
        repository = model.repository or model.path
        leaf_model = RepoNode(model.name, model.path, repository)
        node = parent.add_leaf(self._repo_label(repository, own=own), data=leaf_model)
        self._leaves.setdefault(repository, []).append(node)

    def _namespace_label(self, model: RepoNode) -> Text:
        label = Text(f"{model.name}/", style="bold")
        label.append(f"  {model.repo_count} repositories", style="dim")
        return label

    def _repo_label(self, repository: str, *, own: bool = False) -> Text:
        name = repository.rsplit("/", 1)[-1]
        label = Text(f"{name} (this repository)" if own else name)
        count = self.counts.get(repository)
        if isinstance(count, int):
            label.append(f"  {count} tag{'s' if count != 1 else ''}", style="dim")
        elif count:
            label.append(f"  {count}", style="dim red")
        return label

    def set_count(self, repository: str, count: int | str) -> None:
        self.counts[repository] = count
        for node in self._leaves.get(repository, []):
            own = (
                node.parent is not None
                and node.parent.data is not None
                and (node.parent.data.path == repository)
            )
            node.set_label(self._repo_label(repository, own=own))

    def _place_cursor(self, path: str | None) -> None:
        """Back on the same repository after a rebuild, else on the first repository."""
        first: TreeNode[RepoNode] | None = None
        for nodes in self._leaves.values():
            for node in nodes:
                if first is None and node.line >= 0:
                    first = node
                if path and node.data is not None and node.data.path == path and node.line >= 0:
                    self.move_cursor(node, animate=False)
                    return
        if first is not None:
            self.move_cursor(first, animate=False)

    # -- state --------------------------------------------------------------------------------
    def expanded_paths(self) -> set[str]:
        paths: set[str] = set()
        stack = list(self.root.children)
        while stack:
            node = stack.pop()
            if node.is_expanded and node.data is not None:
                paths.add(node.data.path)
                stack.extend(node.children)
        return paths

    @property
    def repositories_shown(self) -> list[str]:
        return list(self._leaves)

    # -- events -------------------------------------------------------------------------------
    def _on_tree_node_expanded(self, event: Tree.NodeExpanded[RepoNode]) -> None:
        node = event.node
        model = node.data
        if model is None or not model.children:
            return
        already = any(
            child.data is not None and child.data.path != model.path for child in node.children
        )
        if already:
            return
        shown = self._populate(node, model, open_all=False, wanted=set())
        if shown:
            self.post_message(self.RepositoriesShown(self, shown))

    def _on_tree_node_selected(self, event: Tree.NodeSelected[RepoNode]) -> None:
        model = event.node.data
        if model is not None and model.repository and not event.node.allow_expand:
            event.stop()
            self.post_message(self.RepositorySelected(self, model.repository))
