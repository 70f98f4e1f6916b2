"""Repositories grouped by namespace (``team/app/api`` under ``team`` → ``app``), and filtering.

Names are kept in one sorted list; the tree is rebuilt from a filtered list, which is fast
enough for 10,000 names per keystroke (a few milliseconds).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


@dataclass(eq=False)
class RepoNode:
    """A namespace segment; ``repository`` is set when the full path is itself a repository."""

    name: str
    path: str
    repository: str | None = None
    children: dict[str, RepoNode] = field(default_factory=dict)

    @property
    def repo_count(self) -> int:
        """Repositories at and below this node."""
        total = 1 if self.repository else 0
        stack = list(self.children.values())
        while stack:
            node = stack.pop()
            total += 1 if node.repository else 0
            stack.extend(node.children.values())
        return total

    def sorted_children(self) -> list[RepoNode]:
        """Namespaces (nodes with children) first, then repositories, each by name."""
        return sorted(self.children.values(), key=lambda node: (not node.children, node.name))


def build_repo_tree(names: Iterable[str]) -> RepoNode:
    root = RepoNode("", "")
    for name in names:
        node = root
        parts = name.split("/")
        for depth, part in enumerate(parts):
            child = node.children.get(part)
            if child is None:
                child = RepoNode(part, "/".join(parts[: depth + 1]))
                node.children[part] = child
            node = child
        node.repository = name
    return root


def filter_names(names: Sequence[str], query: str) -> list[str]:
    """Names containing every word of ``query`` (case-insensitive, in any order)."""
    words = query.lower().split()
    if not words:
        return list(names)
    return [name for name in names if all(word in name.lower() for word in words)]
