"""The catalog: every repository under ``repositories/``, in Distribution's order.

A directory is a repository when it holds ``_layers`` (Distribution 2.8's rule) or
``_manifests`` (Distribution 3's). Names are ordered component by component ("a" < "a/b" <
"a-b"), the order Distribution's sorted walk produces.
"""

from __future__ import annotations

import os
from pathlib import Path

from embedded_registry import names

_REPO_MARKERS = ("_layers", "_manifests")


def path_order_key(name: str) -> tuple[str, ...]:
    """Sort key comparing names component-wise, like Distribution's ``lessPath``."""
    return tuple(name.split("/"))


def list_repositories(repositories_dir: Path) -> list[str]:
    found: list[str] = []

    def walk(directory: Path, prefix: str) -> None:
        try:
            entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
        except (FileNotFoundError, NotADirectoryError):
            return
        children = []
        for entry in entries:
            if not entry.is_dir(follow_symlinks=False):
                continue
            if entry.name in _REPO_MARKERS and prefix:
                if prefix[:-1] not in found[-1:]:
                    found.append(prefix[:-1])
            elif not entry.name.startswith("_"):
                children.append(entry)
        for child in children:
            walk(Path(child.path), f"{prefix}{child.name}/")

    walk(repositories_dir, "")
    valid = [name for name in found if names.is_valid_name(name)]
    return sorted(valid, key=path_order_key)


def page(repositories: list[str], last: str | None, count: int) -> tuple[list[str], bool]:
    """The ``count`` names after ``last``, and whether more follow."""
    if last:
        key = path_order_key(last)
        repositories = [name for name in repositories if path_order_key(name) > key]
    return repositories[:count], len(repositories) > count
