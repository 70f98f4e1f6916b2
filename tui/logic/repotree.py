"""Repositories grouped by namespace (``team/app/api`` under ``team`` → ``app``), and filtering.

The tree model is built once from every name (``build_repo_tree``). A filter keystroke does not
rebuild it: ``RepoIndex.match`` counts the matching repositories under each path (a few ms for
10,000 names), and ``visible_rows`` flattens the open part of the tree, skipping paths without a
match, into the rows a virtualised widget draws. The cost of a keystroke is the number of matches
plus the number of open rows, never a widget object per repository.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum


@dataclass(eq=False)
class RepoNode:
    """A namespace segment; ``repository`` is set when the full path is itself a repository."""

    name: str
    path: str
    repository: str | None = None
    children: dict[str, RepoNode] = field(default_factory=dict)
    repo_count: int = 0
    """Repositories at and below this node (kept by ``build_repo_tree``)."""
    _sorted: list[RepoNode] | None = field(default=None, repr=False)

    def sorted_children(self) -> list[RepoNode]:
        """Namespaces (nodes with children) first, then repositories, each by name."""
        if self._sorted is None:
            self._sorted = sorted(
                self.children.values(), key=lambda node: (not node.children, node.name)
            )
        return self._sorted


def build_repo_tree(names: Iterable[str]) -> RepoNode:
    root = RepoNode("", "")
    for name in names:
        node = root
        node.repo_count += 1
        parts = name.split("/")
        for depth, part in enumerate(parts):
            child = node.children.get(part)
            if child is None:
                child = RepoNode(part, "/".join(parts[: depth + 1]))
                node.children[part] = child
            node = child
            node.repo_count += 1
        node.repository = name
    return root


@dataclass(frozen=True)
class Match:
    """The repositories matching a filter, and how many of them sit at or below each path."""

    repositories: frozenset[str]
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return len(self.repositories)

    def count(self, node: RepoNode) -> int:
        return self.counts.get(node.path, 0)


class RepoIndex:
    """Every repository name, its tree (built once), and fast matching for the filter."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = list(names)
        self.model = build_repo_tree(self.names)
        self._lowered = [name.lower() for name in self.names]
        self._prefixes = [_prefixes(name) for name in self.names]

    def __len__(self) -> int:
        return len(self.names)

    def match(self, query: str) -> Match | None:
        """The repositories matching ``query`` (as ``filter_names``); None when it is blank."""
        words = query.lower().split()
        if not words:
            return None
        keys = self._lowered
        if len(words) == 1:
            word = words[0]
            hits = [position for position, key in enumerate(keys) if word in key]
        else:
            hits = [
                position for position, key in enumerate(keys) if all(word in key for word in words)
            ]
        counts: dict[str, int] = {}
        get = counts.get
        prefixes = self._prefixes
        for position in hits:
            for prefix in prefixes[position]:
                counts[prefix] = get(prefix, 0) + 1
        names = self.names
        return Match(frozenset(names[position] for position in hits), counts)


def _prefixes(name: str) -> tuple[str, ...]:
    parts = name.split("/")
    return tuple("/".join(parts[: depth + 1]) for depth in range(len(parts)))


def namespace_paths(model: RepoNode, match: Match | None = None) -> set[str]:
    """Paths of every namespace (node with children) below ``model`` (with a match, if given)."""
    paths: set[str] = set()

    def wanted(node: RepoNode) -> bool:
        return bool(node.children) and (match is None or match.count(node) > 0)

    stack = [child for child in model.children.values() if wanted(child)]
    while stack:
        node = stack.pop()
        paths.add(node.path)
        stack.extend(child for child in node.children.values() if wanted(child))
    return paths


class RowKind(Enum):
    NAMESPACE = "namespace"
    REPOSITORY = "repository"
    OWN = "own"
    """The repository at a namespace's own path (``team/app`` beside ``team/app/api``)."""


@dataclass(frozen=True, slots=True)
class TreeRow:
    depth: int
    node: RepoNode
    kind: RowKind
    expanded: bool = False
    guides: str = ""
    """Tree guides before the row (``│  ├─ ``); empty at the top level."""

    @property
    def repository(self) -> str | None:
        return None if self.kind is RowKind.NAMESPACE else self.node.repository


def visible_rows(model: RepoNode, expanded: set[str], match: Match | None = None) -> list[TreeRow]:
    """The rows of ``model`` as drawn: namespaces in ``expanded`` (paths) show their children;
    with a ``match``, only paths holding a matching repository are drawn."""
    rows: list[TreeRow] = []
    append = rows.append
    counts = match.counts if match is not None else None
    matched = match.repositories if match is not None else None

    def walk(parent: RepoNode, depth: int, prefix: str) -> None:
        children = parent.sorted_children()
        if counts is not None:
            children = [child for child in children if child.path in counts]
        own = bool(
            depth and parent.repository and (matched is None or parent.repository in matched)
        )
        if own:
            last = not children
            append(TreeRow(depth, parent, RowKind.OWN, guides=prefix + ("└─ " if last else "├─ ")))
        for position, child in enumerate(children):
            last = position == len(children) - 1
            guides = prefix + ("└─ " if last else "├─ ") if depth else ""
            if not child.children:
                append(TreeRow(depth, child, RowKind.REPOSITORY, guides=guides))
                continue
            is_open = child.path in expanded
            append(TreeRow(depth, child, RowKind.NAMESPACE, is_open, guides))
            if is_open:
                walk(child, depth + 1, prefix + ("   " if last else "│  ") if depth else "")

    walk(model, 0, "")
    return rows


def filter_names(
    names: Sequence[str], query: str, *, lowered: Sequence[str] | None = None
) -> list[str]:
    """Names containing every word of ``query`` (case-insensitive, in any order).

    ``lowered`` (the names in lower case, same order) saves lower-casing them on every keystroke.
    """
    words = query.lower().split()
    if not words:
        return list(names)
    keys = lowered if lowered is not None else [name.lower() for name in names]
    if len(words) == 1:
        word = words[0]
        return [name for name, key in zip(names, keys, strict=True) if word in key]
    return [
        name for name, key in zip(names, keys, strict=True) if all(word in key for word in words)
    ]
