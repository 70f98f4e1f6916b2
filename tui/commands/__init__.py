"""Subcommands of ``regtui``: each module offers ``register(subparsers)``.

Each ``register`` adds its parsers and sets ``handler=`` (a callable taking the parsed args and
returning an exit code) with ``set_defaults``.
"""

from __future__ import annotations

from types import ModuleType

from tui.commands import connect, registry, serve, storage

COMMAND_MODULES: tuple[ModuleType, ...] = (connect, serve, registry, storage)
