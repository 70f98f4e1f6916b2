"""Subcommands of ``regtui``: each module offers ``register(subparsers)``.

Each ``register`` adds its parsers and sets ``handler=`` (a callable taking the parsed args and
returning an exit code) with ``set_defaults``. A module imports what its commands need when they
run, not when they register, so building the parser stays cheap.

Only the module of the command that runs is imported and registered; ``regtui --help`` names
every command by its one-line summary (``SUMMARIES``; a test checks it against the real
parsers). So ``--help`` imports no command module and ``regtui tags`` only
:mod:`tui.commands.catalog` (``connect`` and ``serve`` load the app or the server when
imported). Each parser argparse builds costs a few gettext look-ups on disk, so a command that
is only named is no parser (:class:`SummaryOnly`); and nothing on this path imports
:mod:`typing` (a few milliseconds of every start).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from types import ModuleType

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy reads both)
if TYPE_CHECKING:
    import argparse
    from typing import Any

SUMMARIES: dict[str, dict[str, str]] = {
    "connect": {"connect": "explore a registry in the terminal app"},
    "serve": {"serve": "run the bundled OCI registry"},
    "catalog": {
        "ls": "list the repositories of a registry (its catalog)",
        "tags": "list the tags of a repository",
        "refs": "every HOST/REPO:TAG of a registry, one per line (catalog and tags, concurrently)",
    },
    "inspect": {"inspect": "manifest, platforms, config, layers and history"},
    "delete": {
        "rm": "delete a manifest by digest (every tag on it goes too)",
        "untag": "remove one tag; other tags on the image stay",
    },
    "du": {
        "du": "storage per repository: over the API (HOST) or offline from a directory (--root DIR)"
    },
    "gc": {"gc": "garbage-collect a storage directory (offline, like registry garbage-collect)"},
    "prune": {
        "prune": "delete tags and manifests by retention rules (see the plan with --dry-run)"
    },
    "retention": {
        "retention": "the bundled registry's scheduled retention: its runs, or one run now"
    },
    "diff": {
        "diff": "compare two images: config, layers, sizes and files",
        "layers": "per platform: compressed and uncompressed sizes, and the layers platforms share",
    },
    "find": {"find": "find tags by pattern, and where a digest is used, across repositories"},
    "copy": {
        "tag": "new tags on an existing manifest, without moving data",
        "cp": "copy an image between registries, OCI layouts (oci:DIR) and docker-archive:FILE",
    },
    "sync": {
        "sync": "keep repositories in step with a YAML file of sources and targets, by digest"
    },
    "events": {
        "events": "recent pushes, pulls and deletes of the bundled registry (--follow: live)"
    },
    "scrub": {
        "scrub": "verify every blob against its digest, every manifest's references and every link"
    },
}
"""Every command module, in the order of ``regtui --help``: the commands it registers (in its
own order), with their one-line help."""

COMMAND_MODULE_NAMES = tuple(SUMMARIES)


def __getattr__(name: str) -> tuple[ModuleType, ...]:
    # ``COMMAND_MODULES`` is imported on first use, so ``regtui gc`` need not load the others.
    if name == "COMMAND_MODULES":
        return tuple(importlib.import_module(f"tui.commands.{n}") for n in COMMAND_MODULE_NAMES)
    raise AttributeError(name)


def module_of(argv: Sequence[str]) -> str | None:
    """The command module that ``argv`` runs (its first word names one of its commands), or
    None (``--help``, no command, a mistyped one)."""
    wanted = argv[0] if argv else None
    for name, summaries in SUMMARIES.items():
        if wanted in summaries:
            return name
    return None


class SummaryOnly:
    """What a command is when it is only named in ``regtui --help``: argparse keeps the object
    its subparsers action makes for each name but lays the help out from the name and summary
    alone, so building a real parser (a few gettext look-ups on disk each) would be wasted.

    Reached only when the command line runs no command although a command's name follows the
    global options (``regtui -x tags``): the rest is handed back as unrecognized, which argparse
    reports as a usage error."""

    def __init__(self, **_: Any) -> None:
        pass

    def parse_known_args(
        self, args: Sequence[str], namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        import argparse

        return namespace or argparse.Namespace(), list(args)


def register_commands(subparsers: Any, argv: Sequence[str] = ()) -> None:
    """Register the commands: when ``argv`` runs one, only its module (no other command can
    show up in the output then: the usage line names ``COMMAND``, not the choices); otherwise
    (``--help``, no command, a mistyped one) every command by its summary, in order, with
    ``subparsers`` made with ``parser_class=SummaryOnly``."""
    name = module_of(argv)
    if name is not None:
        importlib.import_module(f"tui.commands.{name}").register(subparsers)
        return
    for summaries in SUMMARIES.values():
        for command, summary in summaries.items():
            subparsers.add_parser(command, help=summary)
