"""Subcommands of ``regtui``: each module offers ``register(subparsers)``.

Each ``register`` adds its parsers and sets ``handler=`` (a callable taking the parsed args and
returning an exit code) with ``set_defaults``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

COMMAND_MODULE_NAMES = ("connect", "serve", "registry", "storage", "diff", "find")


def __getattr__(name: str) -> tuple[ModuleType, ...]:
    # ``COMMAND_MODULES`` is imported on first use, so ``regtui gc`` need not load the others.
    if name == "COMMAND_MODULES":
        return tuple(importlib.import_module(f"tui.commands.{n}") for n in COMMAND_MODULE_NAMES)
    raise AttributeError(name)
