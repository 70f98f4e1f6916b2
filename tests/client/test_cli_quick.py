"""``regtui tags``/``ls``'s quick path (tui.client.quick) answers the plain case only: anything
else reaches the full client, which gives the answer or the error it gave before; credentials
that could change the answer keep the quick path away; a registry that does not answer in
``--timeout`` is reported once, not asked twice. Real ``regtui`` processes, real servers."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
import threading
from pathlib import Path

import pytest
from aiohttp import web

from tests.helpers.hostile_registry import (
    BASIC,
    Recorder,
    basic_guard,
    names_page,
    registry_app,
    serve,
)

pytestmark = pytest.mark.timeout(120)
WORKTREE = Path(__file__).resolve().parents[2]


async def regtui(*argv: str, docker_config: Path | None = None) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REGTUI_", "REGISTRY_"))}
    env["DOCKER_CONFIG"] = str(docker_config) if docker_config else "/nonexistent-regtui-test"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tui",
        *argv,
        cwd=WORKTREE,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_the_plain_case_is_one_request() -> None:
    recorder = Recorder()
    app = registry_app(
        [
            web.get("/v2/app/tags/list", names_page("tags", ["v1", "v2"])),
            web.get("/v2/_catalog", names_page("repositories", ["app", "tools"])),
        ],
        recorder=recorder,
    )
    async with serve(app) as host:
        assert await regtui("tags", f"{host}/app") == (0, "v1\nv2\n", "")
        code, out, _ = await regtui("ls", host, "--json")
    assert code == 0
    assert json.loads(out) == {"registry": host, "repositories": ["app", "tools"]}
    assert [s.url for s in recorder.seen] == ["/v2/app/tags/list?n=1000", "/v2/_catalog?n=1000"]
    assert recorder.authorizations == []


async def test_pages_go_to_the_full_client() -> None:
    app = registry_app(
        [
            web.get("/v2/app/tags/list", names_page("tags", ["v1"], "/v2/app/tags/more")),
            web.get("/v2/app/tags/more", names_page("tags", ["v2"])),
        ]
    )
    async with serve(app) as host:
        assert await regtui("tags", f"{host}/app") == (0, "v1\nv2\n", "")


async def test_a_challenge_goes_to_the_full_client(tmp_path: Path) -> None:
    """Anonymous: the full client's one line. With Docker's config naming the registry, the
    quick path is not taken at all (an answer could depend on who asks)."""
    recorder = Recorder()
    app = registry_app(
        [web.get("/v2/app/tags/list", names_page("tags", ["v1"]))],
        recorder=recorder,
        guard=basic_guard(),
    )
    async with serve(app) as host:
        code, out, err = await regtui("tags", f"{host}/app")
        assert (code, out) == (1, "")
        assert err.startswith("regtui: error: ") and len(err.splitlines()) == 1, err
        assert "Traceback" not in err
        config = tmp_path / "config.json"
        auth = base64.b64encode(b"alice:s3cret").decode()
        config.write_text(json.dumps({"auths": {host: {"auth": auth}}}))
        recorder.seen.clear()
        assert await regtui("tags", f"{host}/app", docker_config=tmp_path) == (0, "v1\n", "")
    assert "/v2/app/tags/list?n=1000" in [s.url for s in recorder.seen]
    assert all(s.authorization in (None, BASIC) for s in recorder.seen)
    assert recorder.seen[0].url == "/v2/"  # the full client's probe: no quick request first


async def test_a_silent_registry_is_reported_once() -> None:
    """A registry that answers the headers and never the body: one line naming ``--timeout``,
    and one request (the quick path's), not a second wait."""
    recorder = Recorder()

    async def stalls(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        await response.write(b'{"tags": [')
        await asyncio.sleep(30)
        return response

    app = registry_app([web.get("/v2/app/tags/list", stalls)], recorder=recorder)
    async with serve(app) as host:
        code, out, err = await regtui("tags", f"{host}/app", "--timeout", "1")
    assert (code, out) == (1, "")
    assert len(err.splitlines()) == 1, err
    assert f"{host} did not answer in time" in err and "1 s" in err
    assert [s.url for s in recorder.seen] == ["/v2/app/tags/list?n=1000"]


def _answer_once(raw: bytes) -> tuple[str, threading.Thread]:
    """A loopback server that reads one request and writes ``raw`` back, then closes."""
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def serve_one() -> None:
        connection, _ = listener.accept()
        with connection, listener:
            request = b""
            while b"\r\n\r\n" not in request:
                request += connection.recv(4096)
            connection.sendall(raw)

    thread = threading.Thread(target=serve_one, daemon=True)
    thread.start()
    return f"127.0.0.1:{listener.getsockname()[1]}", thread


BODY = b'{"name": "app", "tags": ["v1", "v2"]}'


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY), ["v1", "v2"]),
        (b"HTTP/1.0 200 OK\r\n\r\n" + BODY, ["v1", "v2"]),  # the body ends when the server closes
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"a;ext=1\r\n"
            + BODY[:10]
            + b"\r\n"
            + b"%x\r\n" % (len(BODY) - 10)
            + BODY[10:]
            + b"\r\n0\r\nX-Trailer: t\r\n\r\n",
            ["v1", "v2"],
        ),
        (
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s"
            % (len(BODY), BODY),
            ["v1", "v2"],
        ),
        # Anything but a plain answer goes to the full client (None here):
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n" + BODY, None),
        (b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n folded\r\n\r\n%s" % (len(BODY), BODY), None),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", None),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", None),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + BODY, None),  # cut short
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", None),
        (b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 2\r\n\r\n{}", None),
        (b"HTTP/1.1 200 OK\r\nLink: </v2/x>; rel=next\r\nContent-Length: 2\r\n\r\n{}", None),
        (b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\n{}", None),
        (b"SSH-2.0-OpenSSH_9.2\r\n\r\n", None),
    ],
)
def test_the_quick_readers_http_is_strict(raw: bytes, expected: list[str] | None) -> None:
    from tui.client.quick import quick_names

    host, thread = _answer_once(raw)
    assert quick_names(host, "/v2/app/tags/list", "tags", timeout=10) == expected
    thread.join(5)
