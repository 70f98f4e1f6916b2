"""The scripting commands on any registry, one module per family:

- :mod:`tui.commands.catalog`: ``ls``, ``tags``, ``refs``;
- :mod:`tui.commands.inspect`: ``inspect``;
- :mod:`tui.commands.delete`: ``rm``, ``untag``;
- :mod:`tui.commands.du`: ``du`` (``du --root`` runs :mod:`tui.commands.storage`'s code).

Each talks to the registry through :mod:`tui.client` only, imported when the command runs (so
``regtui --help`` stays fast). Output is a human table by default and JSON with ``--json``
(docs/json.md); errors are one line on stderr; exit codes 0 ok / 1 error / 2 usage. Passwords
come from ``--password-stdin``, the environment or Docker's config, and are never printed.

The helpers once defined here keep their names (``_client``, ``_run``...) for older imports.
"""

from __future__ import annotations

from typing import Any

from tui.commands import catalog, delete, du, inspect
from tui.commands._common import EXIT_ERROR, EXIT_OK, EXIT_USAGE, UsageError
from tui.commands._common import client as _client
from tui.commands._common import fail as _fail
from tui.commands._common import media_kind as _kind
from tui.commands._common import password as _password
from tui.commands._common import print_json as _print_json
from tui.commands._common import registry_of as _registry_of
from tui.commands._common import repo_ref as _repo_ref
from tui.commands._common import run as _run
from tui.commands._common import table as _table

FAMILIES = (catalog, inspect, delete, du)

__all__ = [
    "EXIT_ERROR",
    "EXIT_OK",
    "EXIT_USAGE",
    "FAMILIES",
    "UsageError",
    "_client",
    "_fail",
    "_kind",
    "_password",
    "_print_json",
    "_registry_of",
    "_repo_ref",
    "_run",
    "_table",
    "register",
]


def register(subparsers: Any) -> None:
    """Add ``ls``, ``tags``, ``refs``, ``inspect``, ``rm``, ``untag`` and ``du``."""
    for family in FAMILIES:
        family.register(subparsers)
