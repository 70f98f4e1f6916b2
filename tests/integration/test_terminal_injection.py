"""Text from a registry or an image reaches the terminal escaped, never obeyed.

A hostile image is pushed to the bundled registry: its config's labels, env values and history
hold an OSC 52 clipboard write (``ESC ] 52 ; c ; … BEL``), a screen clear (``ESC [ 2 J``), a
newline that would forge an output line, a C1 CSI and a right-to-left override, and one of its
layers has a file named with them. ``regtui inspect`` and ``regtui diff`` run as subprocesses
(as a user runs them): their output holds no raw control character, shows the escaped form,
and ``--json`` keeps the values exactly (JSON escapes them itself). A registry of our own
answers names and tags that the bundled one would refuse: ``ls``, ``tags`` and ``refs`` escape
them too, and an error message from the registry is one escaped line.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from aiohttp import web

from tests.helpers.hostile_registry import serve
from tests.helpers.images import Image, make_image, push_image
from tests.helpers.servers import RunningRegistry

pytestmark = pytest.mark.timeout(180)

OSC52 = "\x1b]52;c;ZXZpbA==\x07"  # "evil" into the clipboard
CLEAR = "\x1b[2J"
C1 = "\x9b31m"  # CSI as one C1 character
RLO = "\u202e"
FORGED = "\nDigest:     sha256:forged"

LABEL = f"{OSC52}owned{CLEAR}"
ENV = f"EVIL={CLEAR}{FORGED}"
COMMAND = f"RUN echo {OSC52}{C1}"
FILE = f"etc/evil{CLEAR}\n{RLO}gpj.exe"


def escaped(text: str) -> str:
    """What the user must see instead: the same escapes the issue asks for."""
    out = []
    for char in text:
        if char == "\n":
            out.append("\\n")
        elif unicodedata.category(char) == "Cc":
            out.append(f"\\x{ord(char):02x}")
        elif char == RLO:
            out.append("\\u202e")
        else:
            out.append(char)
    return "".join(out)


def no_terminal_controls(output: str) -> None:
    """Only the line breaks the command wrote itself; no ESC, BEL, C1 or bidi override."""
    for char in output:
        if char in "\n":
            continue
        assert unicodedata.category(char) != "Cc", f"raw {char!r} in the output"
        assert char != RLO, "raw U+202E in the output"


def hostile() -> Image:
    return make_image(
        [{"etc/ok": b"fine"}, {FILE: b"payload", "etc/ok": b"changed"}],
        labels={"org.example.note": LABEL, f"key{CLEAR}": "value"},
        env=("PATH=/usr/bin", ENV),
        commands=["COPY base /", COMMAND],
    )


def benign() -> Image:
    return make_image([{"etc/ok": b"fine"}], labels={"org.example.note": "plain"})


@dataclass
class Ran:
    code: int
    out: str
    err: str


async def regtui(*args: str) -> Ran:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REGTUI_", "REGISTRY_"))}
    env["DOCKER_CONFIG"] = "/nonexistent-regtui-test"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tui",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return Ran(process.returncode, out.decode(), err.decode())


@pytest.fixture
def pushed(registry: RunningRegistry) -> Iterator[RunningRegistry]:
    push_image(registry.url, "hostile/app", "v1", benign())
    push_image(registry.url, "hostile/app", "v2", hostile())
    yield registry


async def test_inspect_shows_labels_env_and_history_escaped(pushed: RunningRegistry) -> None:
    ran = await regtui("inspect", f"{pushed.host}/hostile/app:v2")
    assert ran.code == 0, ran.err
    no_terminal_controls(ran.out + ran.err)
    assert f"Label:      org.example.note={escaped(LABEL)}" in ran.out
    assert f"Label:      key{escaped(CLEAR)}=value" in ran.out
    assert f"Env:        {escaped(ENV)}" in ran.out
    assert escaped(COMMAND) in ran.out
    assert "\nDigest:     sha256:forged" not in ran.out  # no forged line

    as_json = await regtui("inspect", f"{pushed.host}/hostile/app:v2", "--json")
    assert as_json.code == 0, as_json.err
    no_terminal_controls(as_json.out)  # JSON escapes control characters itself
    config = json.loads(as_json.out)["config"]
    assert config["labels"]["org.example.note"] == LABEL and ENV in config["env"]


async def test_diff_shows_config_changes_and_file_names_escaped(pushed: RunningRegistry) -> None:
    ran = await regtui("diff", f"{pushed.host}/hostile/app:v1", ":v2")
    assert ran.code == 0, ran.err
    no_terminal_controls(ran.out + ran.err)
    assert f"org.example.note: plain -> {escaped(LABEL)}" in ran.out
    assert escaped(ENV.partition("=")[2]) in ran.out
    assert f"A {escaped(FILE)}" in ran.out

    as_json = await regtui("diff", f"{pushed.host}/hostile/app:v1", ":v2", "--json")
    assert as_json.code == 0, as_json.err
    no_terminal_controls(as_json.out)
    assert FILE in {change["path"] for change in json.loads(as_json.out)["files"]}


# -- a registry that sends names and tags no real one accepts --------------------------------

EVIL_REPO = f"evil{CLEAR}/x"
EVIL_TAG = f"v1{OSC52}"
EVIL_ERROR = f"no such thing{CLEAR}{FORGED}"


def hostile_registry() -> web.Application:
    async def base(_: web.Request) -> web.Response:
        return web.json_response({})

    async def catalog(_: web.Request) -> web.Response:
        return web.json_response({"repositories": ["ok/app", EVIL_REPO]})

    async def tags(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name == "gone/app":
            error = {"code": "DENIED", "message": EVIL_ERROR, "detail": EVIL_ERROR}
            return web.json_response({"errors": [error]}, status=403)
        return web.json_response({"name": name, "tags": ["v0", EVIL_TAG]})

    app = web.Application()
    app.router.add_get("/v2/", base)
    app.router.add_get("/v2/_catalog", catalog)
    app.router.add_get("/v2/{name:.+}/tags/list", tags)
    return app


async def test_names_tags_and_errors_from_a_hostile_registry_are_escaped() -> None:
    async with serve(hostile_registry()) as host:
        ls = await regtui("ls", host)
        tags = await regtui("tags", f"{host}/ok/app")
        refs = await regtui("refs", host, "--repo-filter", "ok/*")
        # A name no URL can hold: skipped with one escaped warning, the walk goes on.
        refs_all = await regtui("refs", host)
        refs_json = await regtui("refs", host, "--json")
        error = await regtui("tags", f"{host}/gone/app")
    for ran in (ls, tags, refs, refs_all, refs_json):
        assert ran.code == 0, ran.err
        no_terminal_controls(ran.out + ran.err)
    assert ls.out.splitlines() == ["ok/app", escaped(EVIL_REPO)]
    assert tags.out.splitlines() == ["v0", escaped(EVIL_TAG)]
    assert refs.out.splitlines() == [f"{host}/ok/app:v0", f"{host}/ok/app:{escaped(EVIL_TAG)}"]
    assert refs_all.out == refs.out
    assert refs_all.err.startswith("regtui: warning: skipped ")
    assert len(refs_all.err.splitlines()) == 1 and escaped(CLEAR) in refs_all.err
    assert json.loads(refs_json.out)["skipped"] == [EVIL_REPO]
    assert error.code == 1
    no_terminal_controls(error.out + error.err)
    assert len(error.err.splitlines()) == 1 and error.err.startswith("regtui: error: ")
    assert escaped(CLEAR) in error.err and "forged" in error.err  # said, on the same line
