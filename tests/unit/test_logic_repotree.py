"""Repositories by namespace, and the catalog filter."""

from __future__ import annotations

import time

from tui.logic.repotree import RepoIndex, RowKind, build_repo_tree, filter_names, visible_rows

NAMES = ["alpine", "team/app/api", "team/app/web", "team/app", "team/db", "library/nginx"]


def test_tree_groups_by_namespace() -> None:
    root = build_repo_tree(NAMES)
    assert [node.name for node in root.sorted_children()] == ["library", "team", "alpine"]
    team = root.children["team"]
    assert team.repository is None and team.repo_count == 4
    app = team.children["app"]
    assert app.repository == "team/app"  # a namespace that is also a repository
    assert [node.path for node in app.sorted_children()] == ["team/app/api", "team/app/web"]
    assert root.repo_count == len(NAMES)


def test_filter_is_case_insensitive_and_word_based() -> None:
    assert filter_names(NAMES, "APP") == ["team/app/api", "team/app/web", "team/app"]
    assert filter_names(NAMES, "app web") == ["team/app/web"]
    assert filter_names(NAMES, "") == NAMES
    assert filter_names(NAMES, "zzz") == []


def rows_text(rows: list) -> list[str]:  # type: ignore[type-arg]
    return [f"{'  ' * row.depth}{row.kind.value}:{row.node.path}" for row in rows]


def test_visible_rows_open_only_expanded_namespaces() -> None:
    model = build_repo_tree(NAMES)
    assert rows_text(visible_rows(model, set())) == [
        "namespace:library",
        "namespace:team",
        "repository:alpine",
    ]
    rows = visible_rows(model, {"team", "team/app"})
    assert rows_text(rows) == [
        "namespace:library",
        "namespace:team",
        "  namespace:team/app",
        "    own:team/app",  # the repository at the namespace's own path comes first
        "    repository:team/app/api",
        "    repository:team/app/web",
        "  repository:team/db",
        "repository:alpine",
    ]
    assert rows[1].expanded and not rows[0].expanded
    assert [row.guides for row in rows] == [
        "",
        "",
        "├─ ",
        "│  ├─ ",
        "│  ├─ ",
        "│  └─ ",
        "└─ ",
        "",
    ]
    assert [row.repository for row in rows if row.kind is not RowKind.NAMESPACE] == [
        "team/app",
        "team/app/api",
        "team/app/web",
        "team/db",
        "alpine",
    ]


def test_match_narrows_rows_and_counts_without_rebuilding() -> None:
    index = RepoIndex(NAMES)
    assert index.match("  ") is None
    match = index.match("web")
    assert match is not None and match.repositories == {"team/app/web"}
    assert match.counts == {"team": 1, "team/app": 1, "team/app/web": 1}
    rows = visible_rows(index.model, {"team", "team/app"}, match)
    # team/app is shown as the path to the match, but not as a repository of its own.
    assert rows_text(rows) == [
        "namespace:team",
        "  namespace:team/app",
        "    repository:team/app/web",
    ]
    both = index.match("TEAM app")
    assert both is not None
    assert both.repositories == set(filter_names(NAMES, "TEAM app"))
    assert both.count(index.model.children["team"]) == 3


def test_filter_ten_thousand_names_quickly() -> None:
    names = sorted(f"ns{n % 50}/project{n % 400}/svc{n}" for n in range(10_000))
    index = RepoIndex(names)
    started = time.perf_counter()
    for query in ("s", "sv", "svc", "svc1", "svc12"):
        match = index.match(query)
        visible_rows(index.model, set(), match)
    # Five keystrokes' worth of work; a few ms each on a laptop, generous for a loaded CI.
    assert time.perf_counter() - started < 0.5
