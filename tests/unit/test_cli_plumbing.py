"""One CLI plumbing (issue 21, item 5): exit codes, ``UsageError``, the one-line failure and the
progress line are defined once, in ``tui/commands/_common.py``; the command modules import one
another without a circle (a lazy import counts: it hides a circle, it does not break it)."""

from __future__ import annotations

import ast
from pathlib import Path

import grimp

COMMANDS = Path(__file__).resolve().parents[2] / "tui" / "commands"
CLI_MODULES = sorted([*COMMANDS.glob("*.py"), COMMANDS.parent / "cli.py"])
COMMON = COMMANDS / "_common.py"
EXITS = COMMON.with_name("exits.py")  # the exit codes, which _common re-exports


def _definitions(path: Path) -> list[str]:
    """The plumbing a module defines: ``EXIT_*`` constants, ``UsageError``, a failure printer,
    a progress line class."""
    found = []
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names = target.elts if isinstance(target, ast.Tuple) else [target]
                found += [
                    n.id for n in names if isinstance(n, ast.Name) and n.id.startswith("EXIT_")
                ]
        elif (
            isinstance(node, ast.ClassDef)
            and (node.name == "UsageError" or node.name.endswith("ProgressLine"))
        ) or (isinstance(node, ast.FunctionDef) and node.name in ("fail", "_fail")):
            found.append(node.name)
    return found


def test_the_plumbing_is_defined_once_in_common() -> None:
    elsewhere = {
        path.name: names
        for path in CLI_MODULES
        if path not in (COMMON, EXITS) and (names := _definitions(path))
    }
    assert elsewhere == {}
    common = _definitions(COMMON) + _definitions(EXITS)
    assert {"EXIT_OK", "EXIT_ERROR", "EXIT_USAGE", "UsageError", "fail", "ProgressLine"} <= set(
        common
    )
    assert len(common) == len(set(common))


def test_no_import_circle_among_the_commands() -> None:
    graph = grimp.build_graph("tui", include_external_packages=False)
    modules = sorted(m for m in graph.modules if m.startswith("tui.commands"))
    circles = []
    for importer in modules:
        for imported in graph.find_modules_directly_imported_by(importer):
            if imported.startswith("tui.commands") and imported != importer:
                back = graph.find_shortest_chain(importer=imported, imported=importer)
                if back is not None:
                    circles.append((importer, *back))
    assert circles == []
