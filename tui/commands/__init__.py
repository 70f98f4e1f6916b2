"""Subcommands of ``regtui``: each module offers ``register(subparsers)``.

Each ``register`` adds its parsers and sets ``handler=`` (a callable taking the parsed args and
returning an exit code) with ``set_defaults``. A module imports what its commands need when they
run, not when they register, so building the parser stays cheap.

``connect`` and ``serve`` load the app or the server when imported; :func:`register_commands`
imports them only when one of them runs. For the other commands their summary stands in
(``SUMMARIES``; a test checks it against the real parsers).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from types import ModuleType
from typing import Any

COMMAND_MODULE_NAMES = ("connect", "serve", "registry", "storage", "prune", "diff", "find")

SUMMARIES = {
    "connect": {"connect": "explore a registry in the terminal app"},
    "serve": {"serve": "run the bundled OCI registry"},
    "prune": {
        "prune": "delete tags and manifests by retention rules (see the plan with --dry-run)"
    },
}
"""Modules heavy to import: the commands each registers, with their one-line help."""


def __getattr__(name: str) -> tuple[ModuleType, ...]:
    # ``COMMAND_MODULES`` is imported on first use, so ``regtui gc`` need not load the others.
    if name == "COMMAND_MODULES":
        return tuple(importlib.import_module(f"tui.commands.{n}") for n in COMMAND_MODULE_NAMES)
    raise AttributeError(name)


def register_commands(subparsers: Any, argv: Sequence[str] = ()) -> None:
    """Register every command, in order; a heavy module only by its summary unless ``argv``
    runs one of its commands."""
    wanted = argv[0] if argv else None
    for name in COMMAND_MODULE_NAMES:
        summaries = SUMMARIES.get(name)
        if summaries is not None and wanted not in summaries:
            for command, summary in summaries.items():
                subparsers.add_parser(command, help=summary, add_help=False)
            continue
        importlib.import_module(f"tui.commands.{name}").register(subparsers)
