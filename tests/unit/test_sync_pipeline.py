"""The quick check's pipeline (:mod:`tui.client.pipeline`) against a small HTTP/1.1 server on a
real socket (answers written by hand, to say what a registry may say: pipelined answers, a
``HEAD`` answer's length without its body, a connection closed after one answer, a challenge),
and the cases :func:`tui.data.sync_check.quick_plan` leaves to the engine without asking."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator

import pytest

import tui.client.pipeline as pipeline
import tui.data.sync_check as sync_check
from tui.client.models import MANIFEST_ACCEPT
from tui.client.pipeline import NotPlain, Origin, Pipelines, fetch_all
from tui.logic.sync_spec import parse_spec

Answerer = Callable[[bytes], bytes]
"""The request's head (request line and headers) -> the bytes answered."""
ACCEPTED: dict[str, int] = {}
"""Connections each server of :func:`serve` accepted, by ``HOST:PORT``."""


@pytest.fixture
def serve() -> Iterator[Callable[[Answerer], str]]:
    """``serve(answer)``: a server on 127.0.0.1 answering each request of each connection with
    ``answer(head)`` (pipelined requests read one after the other); its ``HOST:PORT``."""
    listeners: list[socket.socket] = []

    def start(answer: Answerer) -> str:
        listener = socket.create_server(("127.0.0.1", 0))
        listeners.append(listener)
        host = f"127.0.0.1:{listener.getsockname()[1]}"
        ACCEPTED[host] = 0

        def connection(sock: socket.socket) -> None:
            buffer = b""
            with sock:
                while True:
                    while b"\r\n\r\n" not in buffer:
                        try:
                            data = sock.recv(65536)
                        except OSError:  # reset: the client gave up
                            return
                        if not data:
                            return
                        buffer += data
                    head, buffer = buffer.split(b"\r\n\r\n", 1)
                    reply = answer(head)
                    try:
                        sock.sendall(reply)
                    except OSError:  # the client gave up and closed the connection
                        return
                    if b"Connection: close" in reply:
                        return

        def accept() -> None:
            while True:
                try:
                    sock, _ = listener.accept()
                except OSError:
                    return
                ACCEPTED[host] += 1
                threading.Thread(target=connection, args=(sock,), daemon=True).start()

        threading.Thread(target=accept, daemon=True).start()
        return host

    yield start
    for listener in listeners:
        listener.close()


def path_of(head: bytes) -> str:
    return head.split(b" ")[1].decode()


def test_pipelined_answers_come_back_in_order_and_a_head_has_no_body(
    serve: Callable[[Answerer], str],
) -> None:
    def answer(head: bytes) -> bytes:
        path = path_of(head)
        if head.startswith(b"HEAD"):  # the length of the body a GET would have, no body
            return (
                b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n"
                b"Docker-Content-Digest: sha256:" + path.encode()[5:8] * 2 + b"\r\n\r\n"
            )
        body = f'{{"path": "{path}"}}'.encode()
        return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)

    host = serve(answer)
    requests = [
        ("HEAD" if n % 2 else "GET", f"/v2/r{n:03d}/x", "*/*") for n in range(50)
    ]  # more than one batch per connection
    answers = fetch_all("http", host, requests, connections=3, depth=4, timeout=10)
    assert len(answers) == 50
    for n, found in enumerate(answers):
        if n % 2:
            assert found.body == b"" and found.headers[b"docker-content-digest"].endswith(
                f"{n:03d}".encode() * 2
            )
        else:
            assert found.body == f'{{"path": "/v2/r{n:03d}/x"}}'.encode()


def test_a_connection_closed_with_requests_unanswered_is_not_plain(
    serve: Callable[[Answerer], str],
) -> None:
    host = serve(
        lambda head: b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
    )
    assert fetch_all("http", host, [("GET", "/v2/", "*/*")], timeout=10)[0].body == b"{}"
    with pytest.raises(NotPlain):
        fetch_all("http", host, [("GET", "/v2/", "*/*")] * 3, connections=1, timeout=10)


def test_a_registry_that_asks_for_credentials_is_left_to_the_engine(
    serve: Callable[[Answerer], str],
) -> None:
    """A challenge (or any answer it does not read) makes the check give up: the engine, with
    the auth code, then asks and reports."""
    challenge = (
        b"HTTP/1.1 401 Unauthorized\r\nWww-Authenticate: Basic realm=x\r\nContent-Length: 0\r\n\r\n"
    )
    source = serve(lambda head: challenge)
    target = serve(lambda head: b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
    spec = parse_spec({"sync": [{"source": f"{source}/team/app", "target": f"{target}/app"}]})
    assert sync_check.quick_plan(spec, timeout=10) is None


@pytest.mark.parametrize(
    "extra",
    [
        {"registries": {"127.0.0.1:9": {"username": "u", "password_env": "P"}}},
        {"registries": {"127.0.0.1:9": {"ca_cert": "/nowhere/ca.pem"}}},
        {"defaults": {"rate_limit": 5}},
        {"defaults": {"platform": "linux/amd64"}},
        {"defaults": {"referrers": True}},
    ],
)
def test_what_the_check_leaves_to_the_engine_without_a_request(
    extra: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str] = []

    class Never(Pipelines):
        def ask_all(self, origin: Origin, *args: object, **kw: object) -> None:
            asked.append(origin[1])
            raise AssertionError("asked")

    monkeypatch.setattr(sync_check, "Pipelines", Never)
    document = {"sync": [{"source": "127.0.0.1:9/team/app", "target": "127.0.0.1:8/app"}]}
    spec = parse_spec({**document, **extra})
    assert sync_check.quick_plan(spec) is None
    assert asked == []


def test_the_check_asks_for_manifests_as_the_client_does() -> None:
    assert sync_check.MANIFEST_ACCEPT == MANIFEST_ACCEPT


def json_answer(document: object) -> bytes:
    body = json.dumps(document).encode()
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


def head_answer(digest: str) -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\nDocker-Content-Digest: "
        + digest.encode()
        + b"\r\n\r\n"
    )


NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
DIGEST = "sha256:" + "ab" * 32


def test_a_repositorys_digests_are_asked_while_another_tag_list_is_awaited(
    serve: Callable[[Answerer], str],
) -> None:
    """No phase waits for the slowest answer of the one before: the source answers b's tag
    list only once it was asked a's digest (a check that waited for every tag list first
    would wait for ever: here the server gives up after a few seconds with a 500)."""
    asked_a = threading.Event()

    def source_answer(head: bytes) -> bytes:
        path = path_of(head)
        if path.startswith("/v2/_catalog"):
            return json_answer({"repositories": ["team/a", "team/b"]})
        if path.startswith("/v2/team/a/tags/list"):
            return json_answer({"name": "team/a", "tags": ["1.0"]})
        if path.startswith("/v2/team/b/tags/list"):
            if not asked_a.wait(5):
                return b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n"
            return json_answer({"name": "team/b", "tags": ["2.0"]})
        if path == "/v2/team/a/manifests/1.0":
            asked_a.set()
        return head_answer(DIGEST)

    source, target = serve(source_answer), serve(lambda head: NOT_FOUND)
    spec = parse_spec({"sync": [{"source": source, "target": f"{target}/mirror"}]})
    jobs = sync_check.quick_plan(spec, timeout=10)
    assert jobs is not None
    assert [(j.source_repository, j.reference, j.source_digest, j.target_digest) for j in jobs] == [
        ("team/a", "1.0", DIGEST, None),
        ("team/b", "2.0", DIGEST, None),
    ]


def test_the_connections_to_a_registry_stay_open_for_the_whole_check(
    serve: Callable[[Answerer], str],
) -> None:
    """Catalog, tag lists and digests all go on the same few kept-alive connections (not on
    new ones for each step)."""
    names = [f"team/app{n}" for n in range(20)]

    def source_answer(head: bytes) -> bytes:
        path = path_of(head)
        if path.startswith("/v2/_catalog"):
            return json_answer({"repositories": names})
        if "/tags/list" in path:
            return json_answer({"name": path.split("/tags/")[0][4:], "tags": ["1.0"]})
        return head_answer(DIGEST)

    source, target = serve(source_answer), serve(lambda head: head_answer(DIGEST))
    spec = parse_spec({"sync": [{"source": source, "target": f"{target}/mirror"}]})
    jobs = sync_check.quick_plan(spec, timeout=10)
    assert jobs is not None and len(jobs) == len(names) and all(j.unchanged for j in jobs)
    assert 1 <= ACCEPTED[source] <= pipeline.CONNECTIONS
    assert 1 <= ACCEPTED[target] <= pipeline.CONNECTIONS


def test_a_registry_that_stops_answering_hands_over_and_leaves_no_thread(
    serve: Callable[[Answerer], str],
) -> None:
    """One connection's answer times out while the others wait on theirs: the check gives up
    (the engine then asks, and says the timeout), every connection closed, every thread ended."""
    release = threading.Event()
    names = [f"team/app{n}" for n in range(8)]

    def source_answer(head: bytes) -> bytes:
        path = path_of(head)
        if path.startswith("/v2/_catalog"):
            return json_answer({"repositories": names})
        if path.startswith("/v2/team/app3/"):
            release.wait(30)  # hangs
        return json_answer({"name": "x", "tags": []})

    source, target = serve(source_answer), serve(lambda head: NOT_FOUND)
    spec = parse_spec({"sync": [{"source": source, "target": f"{target}/mirror"}]})
    try:
        assert sync_check.quick_plan(spec, timeout=1) is None
        assert [t for t in threading.enumerate() if t.name.startswith("pipeline")] == []
    finally:
        release.set()
