"""The storage seam's rule, read from the source: nothing outside the drivers opens, stats or
walks a file of the storage, nor takes a key's local path.

The stores read keys of the layout through the driver's core operations and its capability
Protocols (``storage/driver/capabilities.py``). ``LocalFiles`` (a key's local path) is for what
needs a real file descriptor: sendfile of a blob (``storage/blobs.py``). ``ALLOWED`` names every
other module that still makes one of these calls, and what for; it must match the source exactly,
so an entry that is no longer needed fails too (and goes).
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "embedded_registry"
DRIVERS = "storage/driver/"
"""The drivers themselves: they alone turn a key into a file."""

Found = dict[str, list[str]]

FILE_CALLS = frozenset({"scandir", "stat", "lstat", "listdir", "walk", "open"})
"""``os.<name>``: a system call on a path."""

ALLOWED: dict[str, frozenset[str]] = {
    # sendfile of a blob: a real file descriptor (the route opens the file blobs.py names)
    "storage/blobs.py": frozenset({"local_path", "import LocalFiles"}),
    "routes/blobs.py": frozenset({"local_path", "open"}),
    # the filesystem driver's durable writes and link reads (and GC's stale-temporary sweep)
    "storage/fsutil.py": frozenset({"os.open", "os.walk", "os.lstat"}),
    # scrub's progress kept in a local file
    "gc/scrub.py": frozenset({"open"}),
    # not the storage: the htpasswd file, the admin secret's directory
    "auth.py": frozenset({"os.stat"}),
    "admin.py": frozenset({"os.lstat"}),
}


def _calls(tree: ast.AST) -> set[str]:
    """What of the rule's calls and imports ``tree`` makes."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            if node.attr == "local_path":
                found.add("local_path")
            elif (
                isinstance(node.value, ast.Name)
                and node.value.id == "os"
                and node.attr in FILE_CALLS
            ):
                found.add(f"os.{node.attr}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id == "open":
                found.add("open")
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if alias.name == "LocalFiles":
                    found.add("import LocalFiles")
                if node.module == "os" and alias.name in FILE_CALLS:
                    found.add(f"os.{alias.name}")
    return found


def _modules() -> dict[str, set[str]]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative.startswith(DRIVERS):
            continue
        calls = _calls(ast.parse(path.read_text(), filename=str(path)))
        if calls:
            found[relative] = calls
    return found


def _beyond(these: Mapping[str, AbstractSet[str]], those: Mapping[str, AbstractSet[str]]) -> Found:
    """Per module, what ``these`` hold that ``those`` do not."""
    extra = {
        module: sorted(names - those.get(module, frozenset())) for module, names in these.items()
    }
    return {module: names for module, names in extra.items() if names}


def test_nothing_outside_the_drivers_opens_stats_or_walks_a_file_of_the_storage() -> None:
    unexpected = _beyond(_modules(), ALLOWED)
    assert not unexpected, (
        "read the storage through the driver (storage/driver/capabilities.py), not around it: "
        f"{unexpected}"
    )


def test_the_allowlist_holds_only_what_is_still_used() -> None:
    stale = _beyond(ALLOWED, _modules())
    assert not stale, f"no longer needed, take it out of ALLOWED: {stale}"


def test_the_rule_sees_each_kind_of_call() -> None:
    """The scanner itself: every form it must catch, and what it must leave alone."""
    source = """
import os
from os import scandir
from embedded_registry.storage.driver.capabilities import LocalFiles
driver.local_path(key)
os.stat(path)
open(path, "rb")
with os.scandir(path) as it: pass
handle.open()
os.path.join(a, b)
"""
    assert _calls(ast.parse(source)) == {
        "local_path",
        "os.stat",
        "open",
        "os.scandir",
        "import LocalFiles",
    }
