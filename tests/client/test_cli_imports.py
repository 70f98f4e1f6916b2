"""Each command imports only what it uses: the guard of ``regtui``'s start-up time.

``--help`` and the scripting commands must not load the app (textual) nor the server
(embedded_registry); ``--help`` loads no HTTP stack and no command module either; the offline
commands load no client. The commands that make a few requests (``ls``, ``tags``, ``inspect``...)
load neither aiohttp nor httpx's own transport (httpcore, anyio), only the light one; the app and
the commands that walk a registry get aiohttp's pool. The set is read from ``sys.modules`` of a
real ``regtui`` process after it ran.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.client.test_client_registries import populate
from tests.helpers.modules import modules_of
from tests.helpers.servers import RunningRegistry

pytestmark = pytest.mark.timeout(120)
APP = ("textual", "tui.app", "tui.screens", "tui.widgets", "tui.dialogs")
# rich is no part of APP: httpx's __init__ imports it for its own command line where it is
# installed, and tui.client keeps that from happening (tui/client/_quiet_httpx.py).
HTTPX_CLI = ("httpx._main", "rich", "click", "pygments")
SERVER = ("embedded_registry",)
NETWORK = ("httpx", "aiohttp", "ssl", "tui.client", "asyncio")
HEAVY_TRANSPORTS = ("aiohttp", "tui.client._aiohttp", "httpcore", "anyio")
"""What a command making a few requests does without: aiohttp (~100 ms to import, two TLS
contexts built from the trust store), httpx's own transport (httpcore and anyio, ~40 ms)."""
UNUSED_BY_LISTINGS = ("tui.client.estimate", "tui.client.layers", "uuid")
PLUMBING = ("tui.commands._common", "tui.commands.access", "tui.commands.exits")
"""What ``tui.cli`` itself uses of ``tui.commands``: exit codes and the one-line failure."""
HELP = ("tui.commands.exits", "tui.commands.top_help")
"""All ``regtui --help`` loads of ``tui.commands``: the exit codes and the help's layout."""
QUICK = "tui.client.quick"
NOT_ON_THE_QUICK_PATH = (
    "httpx",
    "asyncio",
    "aiohttp",
    "ssl",
    "tui.client.auth",
    "tui.client.errors",
    "tui.client.registry",
    "tui.client._h11",
    "tui.client.models",
    "h11",
    "dataclasses",
    "shutil",
    "encodings.idna",
    "typing",
    "datetime",
)
"""What ``regtui tags``/``ls`` do without on a plain registry (httpx ~26 ms, asyncio ~33 ms,
the auth code ~10 ms of a 110 ms command before; typing, with the contextlib it loads, and
datetime ~7 ms of a 67 ms one)."""
FAST_TRANSPORT = "tui.client._aiohttp"
LIGHT_TRANSPORT = "tui.client._h11"


def loaded(modules: set[str], packages: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in packages or m.startswith(packages))


def test_the_guard_sees_a_heavy_import(tmp_path: Path) -> None:
    """``serve --help`` does load the server: the listing would show a forbidden import."""
    assert loaded(modules_of(tmp_path, "serve", "--help"), SERVER)


@pytest.mark.parametrize("argv", [["--help"], ["tags", "--help"], ["gc", "--help"]])
def test_help_loads_no_app_server_or_network(tmp_path: Path, argv: list[str]) -> None:
    modules = modules_of(tmp_path, *argv)
    assert loaded(modules, (*APP, *SERVER, *NETWORK, "rich")) == []
    if argv == ["--help"]:
        # every command by its summary: no command module, only the plumbing (exit codes...)
        assert set(loaded(modules, ("tui.commands.",))) == set(HELP)
        assert "typing" not in modules  # a few milliseconds of the 40 ms budget
        assert "argparse" not in modules  # laid out by tui.commands.top_help


def test_listings_take_the_quick_path(registry: RunningRegistry, tmp_path: Path) -> None:
    """``ls`` and ``tags`` on a registry without auth make one plain request each: no event
    loop, no httpx, no auth code, no TLS (tui.client.quick); the output is the full client's."""
    populate(registry.url)
    for argv in (
        ["ls", registry.host],
        ["tags", f"{registry.host}/team/app"],
        ["tags", "--json", f"{registry.host}/team/app"],
    ):
        modules = modules_of(tmp_path, *argv)
        assert QUICK in modules, argv  # the command did run, on the quick path
        assert loaded(modules, APP + SERVER + NOT_ON_THE_QUICK_PATH) == [], argv


SYNC_QUICK = "tui.client.pipeline"
NOT_ON_THE_SYNC_CHECK = (
    "httpx",
    "aiohttp",
    "ssl",
    "asyncio",
    "tui.client.registry",
    "tui.data.copy",
    "dataclasses",
    "inspect",
    "tui.logic.tags",
)
"""What a second ``regtui sync`` of unchanged sources does without: the event loop, httpx, the
engine, and :mod:`dataclasses` (with the ``inspect``, ``ast`` and ``dis`` it loads, ~16 ms of the
check's CPU on a loaded machine: the sync file and its jobs are named tuples)."""


def test_a_second_sync_checks_without_the_engine_nor_dataclasses(
    registry: RunningRegistry, tmp_path: Path
) -> None:
    """The first run copies (the engine); the second finds every tag in step on the quick
    check's pipelines, tags ranked by version on the way (the semver module), and loads none of
    ``NOT_ON_THE_SYNC_CHECK``."""
    import yaml

    populate(registry.url)
    spec = tmp_path / "sync.yml"
    entry = {"source": f"{registry.host}/team/app", "target": f"{registry.host}/mirror/app"}
    spec.write_text(yaml.safe_dump({"sync": [entry]}))
    assert "tui.data.copy" in modules_of(tmp_path, "sync", str(spec))  # it copied
    modules = modules_of(tmp_path, "sync", str(spec))
    assert SYNC_QUICK in modules  # the check did run, on the pipelines
    assert "regtui_retention.semver" in modules
    assert loaded(modules, APP + SERVER + NOT_ON_THE_SYNC_CHECK) == []
    assert "tui.data.sync" not in modules  # the engine (a prefix of tui.data.sync_check)


def test_scripting_commands_load_no_app_nor_server(
    registry: RunningRegistry, tmp_path: Path
) -> None:
    populate(registry.url)
    for argv in (
        ["tags", "--long", f"{registry.host}/team/app"],
        ["refs", registry.host],
        ["inspect", f"{registry.host}/team/app:v1"],
        ["untag", "--dry-run", f"{registry.host}/team/app:v1"],
    ):
        modules = modules_of(tmp_path, *argv)
        assert LIGHT_TRANSPORT in modules, argv  # the command did run, on the light transport
        assert loaded(modules, APP + SERVER + HTTPX_CLI + HEAVY_TRANSPORTS) == [], argv
        assert loaded(modules, UNUSED_BY_LISTINGS) == [], argv
        if argv[0] == "refs":
            assert "tui.client.models" not in modules, argv  # it reads no manifest


def test_every_scripting_command_loads_no_app_nor_server(
    registry: RunningRegistry, tmp_path: Path
) -> None:
    """The commands that walk or stream (``du``, ``find``, ``prune``, ``diff``, ``layers``,
    ``rm``, ``tag``, ``cp``) run on aiohttp's pool, without the app, the server or httpx's own
    transport."""
    digests = populate(registry.url)
    for argv in (
        ["rm", "--dry-run", f"{registry.host}/team/app@{digests['v2']}"],
        ["du", registry.host, "--estimate"],
        ["find", registry.host, "--tag", "v*"],
        ["prune", registry.host, "--keep-newest", "1", "--dry-run"],
        ["layers", f"{registry.host}/team/app:multi"],
        ["diff", f"{registry.host}/team/app:v1", ":v2", "--no-files"],
        ["tag", f"{registry.host}/team/app:v1", "v1-again"],
        ["cp", f"{registry.host}/team/app:v1", f"{registry.host}/team/copy:v1"],
    ):
        modules = modules_of(tmp_path, *argv)
        assert "tui.client.registry" in modules, argv  # the command did run, on the client
        assert loaded(modules, APP + SERVER + HTTPX_CLI + ("httpcore", "anyio")) == [], argv


def test_the_bulk_commands_walk_on_aiohttps_pool(registry: RunningRegistry, tmp_path: Path) -> None:
    """``du`` and ``find`` read every manifest: aiohttp's pool from the first request (``prune``,
    ``diff``, ``layers`` and the app ask for it the same way; other clients move to it after
    ``tui.client._transport.FAST_AFTER`` requests)."""
    populate(registry.url)
    for argv in (
        ["du", registry.host, "--estimate"],
        ["find", registry.host, "--tag", "v*"],
    ):
        modules = modules_of(tmp_path, *argv)
        assert FAST_TRANSPORT in modules, argv
        assert LIGHT_TRANSPORT not in modules, argv


def test_offline_commands_load_no_client_nor_app(registry: RunningRegistry, tmp_path: Path) -> None:
    for argv in (["du", "--root", str(registry.root)], ["gc", "--root", str(registry.root), "-d"]):
        modules = modules_of(tmp_path, *argv)
        assert "embedded_registry.gc" in modules, argv
        assert loaded(modules, (*APP, "tui.client", "httpx")) == [], argv


def test_the_summaries_match_the_real_parsers() -> None:
    """``regtui --help`` names every command by ``SUMMARIES``: exactly what the modules register
    (same commands, same order, same help), and running a command registers its real parser."""
    import argparse

    from tui.cli import build_parser
    from tui.commands import COMMAND_MODULES, SUMMARIES

    light = build_parser([])
    full = argparse.ArgumentParser(prog=light.prog, description=light.description)
    full.add_argument("--version", action="version", version="unused")
    subparsers = full.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(subparsers)
    assert full.format_help() == light.format_help()
    registered = list(subparsers.choices)
    assert registered == [command for s in SUMMARIES.values() for command in s]
    for command in registered:
        real = subparsers.choices[command].format_help()
        (chosen,) = [
            a for a in build_parser([command])._actions if isinstance(a, argparse._SubParsersAction)
        ]
        assert chosen.choices[command].format_help() == real, command


async def test_the_app_walks_on_aiohttps_pool(registry: RunningRegistry) -> None:
    """The app reads every repository's tags and manifests: aiohttp's pool from the start."""
    from tui.app import AppSettings, make_app
    from tui.client._transport import ClientTransport

    populate(registry.url)
    app = make_app(AppSettings(registry=registry.host, insecure=True, timeout=10.0))
    async with app.run_test():
        transport = app.client._http._transport
        assert isinstance(transport, ClientTransport)
        assert transport.fast_after == 0
        assert transport.fast  # the requests so far went through aiohttp


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["tgas"], "invalid choice: 'tgas'"),
        (["-x", "tags", "HOST/REPO"], "unrecognized arguments: -x HOST/REPO"),
        ([], "the following arguments are required: COMMAND"),
    ],
)
def test_a_command_line_that_runs_no_command_is_a_usage_error(
    argv: list[str], words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Commands only named in the help are no parsers (``SummaryOnly``): whatever reaches them
    still ends as argparse's usage error (exit 2, one line), never an AttributeError."""
    from tui.cli import main

    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    error = capsys.readouterr().err
    assert words in error
    assert "Traceback" not in error


def test_the_quick_help_is_argparses_at_every_width(monkeypatch: pytest.MonkeyPatch) -> None:
    """``regtui --help`` is laid out without argparse (``tui.commands.top_help``): the very
    text argparse makes of the real parser, at every width it answers for; narrower, argparse
    itself lays it out."""
    from tui.cli import build_parser
    from tui.commands.top_help import SMALLEST, help_text

    answered = 0
    for columns in range(20, 301):
        monkeypatch.setenv("COLUMNS", str(columns))
        ours = help_text(columns)
        if ours is None:
            assert columns - 2 < SMALLEST
            continue
        answered += 1
        assert ours == build_parser(["--help"]).format_help(), columns
    assert answered == 301 - (SMALLEST + 2)


@pytest.mark.parametrize("columns", ["80", "40"])
def test_help_prints_argparses_text_and_exits_0(columns: str) -> None:
    """Through a real process, at a width the quick help lays out and at one it leaves to
    argparse: the same text as the parser's, exit 0."""
    from tui.cli import build_parser

    env = {**os.environ, "COLUMNS": columns}
    for flag in ("--help", "-h"):
        process = subprocess.run(
            [sys.executable, "-m", "tui.cli", flag], capture_output=True, text=True, env=env
        )
        assert process.returncode == 0
        assert process.stderr == ""
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("COLUMNS", columns)
            assert process.stdout == build_parser(["--help"]).format_help()
