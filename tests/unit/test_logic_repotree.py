"""Repositories by namespace, and the catalog filter."""

from __future__ import annotations

import time

from tui.logic.repotree import build_repo_tree, filter_names

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


def test_filter_and_rebuild_ten_thousand_names_quickly() -> None:
    names = [f"ns{n % 50}/project{n % 400}/svc{n}" for n in range(10_000)]
    started = time.perf_counter()
    build_repo_tree(filter_names(names, "svc1"))
    assert time.perf_counter() - started < 0.5
