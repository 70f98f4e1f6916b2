"""The client against registries it does not control (issue 9, items 4-6; issue 11, item 4).

Each test runs a hostile registry (``tests/client/hostile_registry.py``: aiohttp on real
loopback sockets) and checks what must not happen: credentials reaching another origin, memory
growing with what the registry sends, pagination without end, a RecursionError, a command held
past its timeout, raw ``ssl`` text in an error.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import socket
import subprocess
import sys
import tarfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web

from tests.helpers.hostile_registry import (
    PASSWORD,
    TOKEN,
    USER,
    Recorder,
    Sent,
    basic_guard,
    bearer_guard,
    close_delimited_server,
    endless_body,
    gzip_bomb,
    names_page,
    nested_json,
    registry_app,
    serve,
    token_endpoint,
    zstd_bomb,
)
from tui.client import (
    AuthError,
    MalformedResponseError,
    RegistryClient,
    RegistryTimeoutError,
    ResponseTooLargeError,
    TLSError,
)
from tui.client._limits import MAX_MANIFEST_BYTES, MAX_PAGES
from tui.client.layers import MAX_EXPANDED_BYTES, read_layer
from tui.client.models import OCI_INDEX, OCI_MANIFEST

WORKTREE = Path(__file__).resolve().parents[2]
MiB = 1024 * 1024

pytestmark = pytest.mark.usefixtures("each_transport")  # each test on both transports


@pytest.fixture(autouse=True)
def no_docker_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """No developer's credentials reach these servers: only the ones a test passes."""
    monkeypatch.setenv("DOCKER_CONFIG", "/nonexistent-regtui-test")
    for name in ("REGTUI_USERNAME", "REGTUI_PASSWORD"):
        monkeypatch.delenv(name, raising=False)


def client(host: str, **kw: object) -> RegistryClient:
    return RegistryClient(host, username=USER, password=PASSWORD, max_retries=0, **kw)  # type: ignore[arg-type]


# ------------------------------------------------------------------ credentials stay home


@pytest.mark.parametrize("scheme", ["basic", "bearer"])
async def test_a_catalog_link_to_another_origin_carries_no_credentials(scheme: str) -> None:
    other_seen = Recorder()
    other = registry_app(
        [web.get("/v2/_catalog", names_page("repositories", ["zz-from-other"]))],
        recorder=other_seen,
    )
    async with serve(other) as other_host:
        home_seen = Recorder()
        link = f"http://{other_host}/v2/_catalog?last=a&n=1"
        routes = [web.get("/v2/_catalog", names_page("repositories", ["a"], link))]
        if scheme == "bearer":
            routes.append(web.get("/token", token_endpoint))
        guard = basic_guard() if scheme == "basic" else bearer_guard()
        app = registry_app(routes, recorder=home_seen, guard=guard)
        async with serve(app) as home, client(home) as registry:
            assert await registry.catalog() == ["a", "zz-from-other"]
    expected = "Basic" if scheme == "basic" else f"Bearer {TOKEN}"
    assert any(auth.startswith(expected) for auth in home_seen.authorizations)
    assert [s.url for s in other_seen.seen] == ["/v2/_catalog?last=a&n=1"]
    assert other_seen.authorizations == []  # followed, anonymously


async def test_tags_and_referrers_links_to_another_origin_carry_no_credentials() -> None:
    subject = "sha256:" + "a" * 64
    referrer = {"mediaType": OCI_MANIFEST, "digest": "sha256:" + "b" * 64, "size": 10}
    other_seen = Recorder()

    async def other_referrers(request: web.Request) -> web.Response:
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [referrer]}
        return web.json_response(index, content_type=OCI_INDEX)

    other = registry_app(
        [
            web.get("/v2/app/tags/list", names_page("tags", ["v2"])),
            web.get(f"/v2/app/referrers/{subject}", other_referrers),
        ],
        recorder=other_seen,
    )
    async with serve(other) as other_host:

        async def home_referrers(request: web.Request) -> web.Response:
            index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
            link = f'<http://{other_host}/v2/app/referrers/{subject}>; rel="next"'
            return web.json_response(index, content_type=OCI_INDEX, headers={"Link": link})

        tags_link = f"http://{other_host}/v2/app/tags/list?last=v1"
        home = registry_app(
            [
                web.get("/v2/app/tags/list", names_page("tags", ["v1"], tags_link)),
                web.get(f"/v2/app/referrers/{subject}", home_referrers),
            ],
            guard=basic_guard(),
        )
        async with serve(home) as home_host, client(home_host) as registry:
            assert await registry.list_tags("app") == ["v1", "v2"]
            found = await registry.get_referrers("app", subject)
    assert [d.digest for d in found] == [referrer["digest"]]
    assert len(other_seen.seen) == 2
    assert other_seen.authorizations == []


async def test_a_challenge_from_another_origin_is_not_answered() -> None:
    other_seen = Recorder()
    other = registry_app(
        [web.get("/v2/_catalog", names_page("repositories", ["b"]))],
        recorder=other_seen,
        guard=basic_guard(),
    )
    async with serve(other) as other_host:
        link = f"http://{other_host}/v2/_catalog?last=a"
        home = registry_app(
            [web.get("/v2/_catalog", names_page("repositories", ["a"], link))],
            guard=basic_guard(),
        )
        async with serve(home) as home_host, client(home_host) as registry:
            with pytest.raises(AuthError) as caught:
                await registry.catalog()
    assert len(other_seen.seen) == 1  # asked once, anonymously; its 401 not answered
    assert other_seen.authorizations == []
    assert str(caught.value).startswith(f"{other_host}, another origin that {home_host} sent")


async def test_an_upload_location_on_another_origin_carries_no_credentials() -> None:
    data = b"config bytes"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    other_seen = Recorder()
    received: list[bytes] = []

    async def put(request: web.Request) -> web.Response:
        received.append(await request.read())
        return web.Response(status=201)

    other = registry_app([web.put("/uploads/1", put)], recorder=other_seen)
    async with serve(other) as other_host:

        async def start(request: web.Request) -> web.Response:
            location = f"http://{other_host}/uploads/1?state=x"
            return web.Response(status=202, headers={"Location": location})

        async def head(request: web.Request) -> web.Response:
            return web.Response(status=404)

        home = registry_app(
            [web.head(f"/v2/app/blobs/{digest}", head), web.post("/v2/app/blobs/uploads/", start)],
            guard=basic_guard(),
        )
        async with serve(home) as home_host, client(home_host) as registry:
            assert await registry.upload_blob("app", data) == digest
    assert [s.method for s in other_seen.seen] == ["PUT"]
    assert other_seen.authorizations == []
    assert received == [data]


async def test_a_blob_redirect_to_another_host_drops_authorization() -> None:
    data = b"layer " * 10_000
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    storage_seen = Recorder()

    async def stored(request: web.Request) -> web.Response:
        return web.Response(body=data, content_type="application/octet-stream")

    storage = registry_app([web.get("/bucket/{name}", stored)], recorder=storage_seen)
    async with serve(storage) as storage_host:

        async def blob(request: web.Request) -> web.Response:
            raise web.HTTPTemporaryRedirect(f"http://{storage_host}/bucket/x?sig=1")

        home_seen = Recorder()
        home = registry_app(
            [web.get(f"/v2/app/blobs/{digest}", blob)], recorder=home_seen, guard=basic_guard()
        )
        async with serve(home) as home_host, client(home_host) as registry:
            assert await registry.get_blob("app", digest) == data
    assert home_seen.authorizations  # the registry itself got the credentials
    assert len(storage_seen.seen) == 1 and storage_seen.authorizations == []


def non_loopback_address() -> str | None:
    """An address of this machine that is not loopback (where the token service can listen)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks a route
        except OSError:
            return None
        address = str(probe.getsockname()[0])
    return None if address.startswith("127.") or address == "0.0.0.0" else address


async def test_basic_credentials_go_to_a_plain_http_realm_only_on_loopback_or_insecure() -> None:
    address = non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to run a token service on")
    realm_seen = Recorder()
    realm = registry_app([web.get("/token", token_endpoint)], recorder=realm_seen)
    async with serve(realm, host=address) as realm_host:
        home = registry_app(
            [web.get("/v2/_catalog", names_page("repositories", ["a"]))],
            guard=bearer_guard(f"http://{realm_host}/token"),
        )
        async with serve(home) as home_host:
            async with client(home_host) as registry:
                with pytest.raises(AuthError) as caught:
                    await registry.catalog()
            assert realm_seen.seen and realm_seen.authorizations == []  # asked anonymously
            message = str(caught.value)
            assert f"did not send your credentials to {address}" in message
            assert "--insecure" in message and message.count("\n") == 0
            async with client(home_host, insecure=True) as registry:
                assert await registry.catalog() == ["a"]
    assert realm_seen.authorizations == ["Basic YWxpY2U6czNjcmV0"]  # only with --insecure


async def test_a_link_down_to_plain_http_on_a_remote_host_needs_insecure() -> None:
    address = non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to run a server on")
    other_seen = Recorder()
    other = registry_app(
        [web.get("/v2/_catalog", names_page("repositories", ["b"]))], recorder=other_seen
    )
    async with serve(other, host=address) as other_host:
        link = f"http://{other_host}/v2/_catalog?last=a"
        home = registry_app(
            [web.get("/v2/_catalog", names_page("repositories", ["a"], link))],
            guard=basic_guard(),
        )
        async with serve(home) as home_host:
            async with client(home_host) as registry:
                with pytest.raises(TLSError, match="does not follow it without --insecure"):
                    await registry.catalog()
            assert other_seen.seen == []
            async with client(home_host, insecure=True) as registry:
                assert await registry.catalog() == ["a", "b"]
    assert len(other_seen.seen) == 1 and other_seen.authorizations == []


# ------------------------------------------------------------------ pagination


@pytest.mark.parametrize("listing", ["catalog", "tags"])
async def test_a_looping_link_stops_with_a_clear_error(listing: str) -> None:
    key, path = (
        ("repositories", "/v2/_catalog") if listing == "catalog" else ("tags", "/v2/app/tags/list")
    )
    requests = Recorder()

    async def page(request: web.Request) -> web.Response:
        last = request.query.get("last")
        names, following = {None: (["a"], "b"), "b": (["c"], "d"), "d": (["e"], "b")}[last]
        headers = {"Link": f'<{path}?last={following}>; rel="next"'}
        return web.json_response({key: names}, headers=headers)

    app = registry_app([web.get(path, page)], recorder=requests)
    async with serve(app) as host, client(host) as registry:
        with pytest.raises(MalformedResponseError, match="loops back to a page already read"):
            if listing == "catalog":
                await registry.catalog()
            else:
                await registry.list_tags("app")
    assert len([s for s in requests.seen if s.url != "/v2/"]) == 3


async def test_an_endless_link_chain_stops_at_the_page_cap() -> None:
    pages = 0

    async def page(request: web.Request) -> web.Response:
        nonlocal pages
        pages += 1
        headers = {"Link": f'</v2/app/tags/list?last=t{pages}&n=1>; rel="next"'}
        return web.json_response({"tags": [f"t{pages}"]}, headers=headers)

    app = registry_app([web.get("/v2/app/tags/list", page)])
    async with serve(app) as host, client(host) as registry:
        assert registry.max_pages == MAX_PAGES == 10_000  # the documented default
        registry.max_pages = 300  # the same code path, in a fraction of the time
        with pytest.raises(MalformedResponseError) as caught:
            await registry.list_tags("app")
    assert "past 300 pages" in str(caught.value)
    assert pages == 300


# ------------------------------------------------------------------ bounded bodies


def run_probe(*argv: str) -> dict[str, object]:
    """``hostile_registry`` as a fresh process (for its own peak RSS)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REGTUI_", "REGISTRY_"))}
    env["DOCKER_CONFIG"] = "/nonexistent-regtui-test"
    done = subprocess.run(
        [sys.executable, "-m", "tests.helpers.hostile_registry", *argv],
        capture_output=True,
        text=True,
        cwd=WORKTREE,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@asynccontextmanager
async def huge_manifest_server(variant: str, sent: Sent) -> AsyncIterator[str]:
    total, prefix = 400 * MiB, b'{"schemaVersion": 2, "annotations": {"x": "'
    if variant == "close-delimited":
        server = await asyncio.start_server(
            close_delimited_server(sent, total=total, prefix=prefix), "127.0.0.1", 0
        )
        async with server:
            yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
        return
    handler = endless_body(sent, total=total, prefix=prefix, content_length=variant == "length")
    async with serve(registry_app([web.get("/v2/big/manifests/latest", handler)])) as host:
        yield host


@pytest.mark.parametrize("variant", ["chunked", "close-delimited", "length"])
async def test_a_400_mib_manifest_is_refused_while_streaming(variant: str) -> None:
    sent = Sent()
    async with huge_manifest_server(variant, sent) as host:
        result = await asyncio.to_thread(run_probe, "manifest", host)
        await asyncio.wait_for(sent.done.wait(), timeout=60)
    assert result["error"] == "ResponseTooLargeError"
    assert "more than 4 MiB for the manifest big:latest" in str(result["message"])
    # The server could push only what the client read plus the sockets' buffers.
    assert sent.bytes < 4 * MAX_MANIFEST_BYTES, sent.bytes
    assert int(str(result["grown_kib"])) < 48 * 1024, result  # not ~900 MB as before


async def test_the_manifest_limit_holds_in_process_too() -> None:
    sent = Sent()
    async with huge_manifest_server("chunked", sent) as host, client(host) as registry:
        with pytest.raises(ResponseTooLargeError) as caught:
            await registry.get_manifest("big", "latest")
    assert caught.value.limit == MAX_MANIFEST_BYTES


@asynccontextmanager
async def blob_server(data: bytes) -> AsyncIterator[tuple[str, str]]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()

    async def blob(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        response.content_length = len(data)
        await response.prepare(request)
        view = memoryview(data)
        try:
            for start in range(0, len(view), 256 * 1024):
                await response.write(view[start : start + 256 * 1024])
        except (ConnectionError, RuntimeError):
            pass  # the reader stopped early
        return response

    async with serve(registry_app([web.get(f"/v2/app/blobs/{digest}", blob)])) as host:
        yield host, digest


@pytest.mark.parametrize(
    ("codec", "limit", "expected"),
    [
        ("gzip", None, None),  # 1 GiB of zeros read whole, in bounded memory
        ("gzip", 512 * MiB, "expands past 512 MiB"),
        ("zstd", None, "expands past 32 GiB"),  # the default limit, 1 MiB of blob
    ],
)
async def test_layer_bombs_are_read_in_bounded_memory(
    codec: str, limit: int | None, expected: str | None
) -> None:
    blob = gzip_bomb(1024 * MiB) if codec == "gzip" else zstd_bomb(MAX_EXPANDED_BYTES + MiB)
    assert len(blob) < 2 * MiB
    async with blob_server(blob) as (host, digest):
        argv = ["layer", host, digest, *([str(limit)] if limit else [])]
        result = await asyncio.to_thread(run_probe, *argv)
    if expected is None:
        assert result["error"] is None and result["files"] == 1, result
    else:
        assert result["error"] == "LayerTooLargeError", result
        assert expected in str(result["message"]) and "stopped reading" in str(result["message"])
    assert int(str(result["grown_kib"])) < 64 * 1024, result


async def test_a_tar_path_of_1200_components_builds_a_tree() -> None:
    path = "/".join(f"d{i}" for i in range(1199)) + "/leaf"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(path)
        info.size = 5
        tar.addfile(info, io.BytesIO(b"hello"))
    async with (
        blob_server(buffer.getvalue()) as (host, digest),
        client(host) as registry,
        registry.stream_blob("app", digest) as blob,
    ):
        root = await read_layer(blob)
    assert root is not None
    leaf = root.find(path)
    assert leaf is not None and leaf.size == 5
    walked = list(root.walk())
    assert len(walked) == 1200 and walked[-1][0] == path
    assert root.total_size == 5 and root.file_count == 1 and root.deletions() == []
    assert "children" not in repr(root)  # a repr never descends the tree


DEEP = 100_000


@pytest.mark.parametrize(
    "body",
    [
        nested_json(DEEP),
        nested_json(DEEP, closed=False),
        nested_json(DEEP, inside="config"),
    ],
    ids=["arrays", "unclosed", "inside-an-object"],
)
async def test_a_deeply_nested_manifest_is_a_clear_error(body: bytes) -> None:
    async def manifest(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type=OCI_MANIFEST)

    app = registry_app([web.get("/v2/app/manifests/v1", manifest)])
    async with serve(app) as host, client(host) as registry:
        with pytest.raises(MalformedResponseError, match="more than 256 levels deep"):
            await registry.get_manifest("app", "v1")


@pytest.mark.parametrize("listing", ["catalog", "tags", "token"])
async def test_deeply_nested_lists_and_token_answers_are_clear_errors(listing: str) -> None:
    deep = nested_json(DEEP, inside="tags" if listing == "tags" else "repositories")

    async def answer(request: web.Request) -> web.Response:
        return web.Response(body=deep, content_type="application/json")

    async def deep_token(request: web.Request) -> web.Response:
        return web.Response(body=nested_json(DEEP, inside="token"), content_type="application/json")

    routes = [web.get("/v2/_catalog", answer), web.get("/v2/app/tags/list", answer)]
    if listing == "token":
        routes.append(web.get("/token", deep_token))
    app = registry_app(routes, guard=bearer_guard() if listing == "token" else None)
    async with serve(app) as host, client(host) as registry:
        if listing == "token":
            with pytest.raises(AuthError, match="token service"):
                await registry.list_tags("app")
        else:
            with pytest.raises(MalformedResponseError, match="more than 256 levels deep"):
                await (registry.catalog() if listing == "catalog" else registry.list_tags("app"))


@pytest.mark.parametrize("token", ["tok\r\nX-Injected: 1", "two words", ""])
async def test_a_token_that_is_no_header_value_is_refused_and_never_sent(token: str) -> None:
    """A token service's token with a CR, LF or space would write header lines of its choosing
    into the requests to the registry (the pipelined reads write their heads themselves)."""

    async def bad_token(request: web.Request) -> web.Response:
        return web.json_response({"token": token, "expires_in": 300})

    seen = Recorder()
    app = registry_app(
        [web.get("/v2/app/tags/list", names_page("tags", ["v1"])), web.get("/token", bad_token)],
        recorder=seen,
        guard=bearer_guard(),
    )
    async with serve(app) as host, client(host) as registry:
        with pytest.raises(AuthError):
            await registry.list_tags("app")
        assert registry.auth.known_authorization("repository:app:pull") is None
    assert seen.seen, "the registry was asked"
    assert all("Bearer" not in auth for auth in seen.authorizations)


# ------------------------------------------------------------------ timeouts


def trickle(prefix: bytes, sent: Sent, *, content_type: str = "application/json") -> object:
    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": content_type})
        response.content_length = 1_000_000
        await response.prepare(request)
        try:
            await response.write(prefix)
            while True:
                await asyncio.sleep(0.25)  # under the per-read timeout: only a deadline helps
                await response.write(b" ")
                sent.bytes += 1
        except (ConnectionError, RuntimeError, asyncio.CancelledError):
            pass
        finally:
            sent.done.set()
        return response

    return handler


@pytest.mark.parametrize("what", ["tags", "manifest", "blob"])
async def test_a_trickling_registry_ends_with_a_timeout_error(what: str) -> None:
    sent = Sent()
    digest = "sha256:" + "c" * 64
    routes = [
        web.get("/v2/app/tags/list", trickle(b'{"tags": [', sent)),  # type: ignore[arg-type]
        web.get("/v2/app/manifests/v1", trickle(b"{", sent)),  # type: ignore[arg-type]
        web.get(f"/v2/app/blobs/{digest}", trickle(b"", sent)),  # type: ignore[arg-type]
    ]
    async with serve(registry_app(routes)) as host, client(host, timeout=1.5) as registry:

        async def read_it() -> None:
            if what == "tags":
                await registry.list_tags("app")
            elif what == "manifest":
                await registry.get_manifest("app", "v1")
            else:
                async with registry.stream_blob("app", digest) as blob:
                    async for _ in blob:
                        pass

        with pytest.raises(RegistryTimeoutError) as caught:
            # The outer wait only keeps a regression from hanging the suite: without the
            # client's deadline this ends in the builtin TimeoutError and the test fails.
            await asyncio.wait_for(read_it(), timeout=60)
        await asyncio.wait_for(sent.done.wait(), timeout=30)
    error = caught.value
    assert sent.bytes >= 2  # it did trickle: a per-read timeout alone would never fire
    assert error.host == host and error.timeout == 1.5
    assert f"{host} did not answer in time" in str(error) and "1.5 s" in str(error)
    assert str(error).count("\n") == 0


async def test_a_slow_but_steady_blob_is_no_timeout() -> None:
    """Pauses that straddle the stall window are fine while the rate holds (64 KiB a pause)."""
    data = bytes(range(256)) * 1024
    digest = "sha256:" + hashlib.sha256(data).hexdigest()

    async def blob(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        response.content_length = len(data)
        await response.prepare(request)
        for start in range(0, len(data), 65536):
            await asyncio.sleep(0.3)
            await response.write(data[start : start + 65536])
        return response

    app = registry_app([web.get(f"/v2/app/blobs/{digest}", blob)])
    async with (
        serve(app) as host,
        client(host, timeout=1.0) as registry,
        registry.stream_blob("app", digest, chunk_size=65536) as stream,
    ):
        received = b"".join([chunk async for chunk in stream])
    assert received == data


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port whose connections the kernel accepts and nobody ever answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


def test_the_cli_reports_a_timeout_as_one_line(silent_port: int) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REGTUI_", "REGISTRY_"))}
    env["DOCKER_CONFIG"] = "/nonexistent-regtui-test"
    host = f"127.0.0.1:{silent_port}"
    done = subprocess.run(
        [sys.executable, "-m", "tui", "tags", f"{host}/x", "--timeout", "1"],
        capture_output=True,
        text=True,
        cwd=WORKTREE,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"{host} did not answer in time" in lines[0] and "1 s" in lines[0]
    assert "Traceback" not in done.stderr


# ------------------------------------------------------------------ http/https


async def test_https_to_a_plain_http_server_says_so_without_ssl_text() -> None:
    async with (
        serve(registry_app([])) as host,
        RegistryClient(f"https://{host}", max_retries=0) as registry,
    ):
        with pytest.raises(TLSError) as caught:
            await registry.ping()
    message = str(caught.value)
    assert (
        message == f"{host} speaks plain HTTP, not HTTPS: name it http://{host} to use plain HTTP."
    )
    assert "SSL" not in message and "[" not in message


async def test_a_400_naming_https_switches_a_loopback_client_to_https() -> None:
    """A plain answer that says "HTTPS" (nginx's words) is not taken for the registry."""

    async def nginx_words(request: web.Request) -> web.Response:
        body = "<center>The plain HTTP request was sent to HTTPS port</center>"
        return web.Response(status=400, text=body, content_type="text/html")

    app = web.Application()
    app.add_routes([web.get("/v2/", nginx_words)])
    async with serve(app) as host:
        async with RegistryClient(host, max_retries=0) as registry:
            assert registry.base_url == f"https://{host}"
            with pytest.raises(TLSError, match="speaks plain HTTP"):
                await registry.ping()  # nothing speaks TLS there: said in one sentence
        async with RegistryClient(f"http://{host}", max_retries=0) as registry:
            with pytest.raises(TLSError) as caught:
                await registry.ping()
    assert str(caught.value).startswith(f"{host} speaks HTTPS, not plain HTTP: name it https://")
