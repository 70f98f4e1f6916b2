"""``GET /v2/_regtui/ext/events`` and ``regtui events``: the registry's recent events, with who
and from where, for administrators only (the GC extension's rules), live by long poll.

Real sockets: the bundled registry as a child process, htpasswd users, the CLI as a process.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import httpx
import pytest

from tests.helpers.images import make_image, push_image
from tests.helpers.servers import ADMIN_DIR_ENV, RunningRegistry, bundled_registry, server_env
from tui.client import RefusedError, RegistryClient
from tui.client.ext import recent_events

pytestmark = pytest.mark.timeout(120)

ALICE = ("alice", "wonderland")  # an administrator
BOB = ("bob", "builder")  # pushes and pulls, administers nothing
EVENTS = "/v2/_regtui/ext/events"


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[RunningRegistry]:
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(
        "".join(
            f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()}\n"
            for user, password in (ALICE, BOB)
        )
    )
    config = {
        "auth": {"htpasswd": {"realm": "regtui", "path": str(htpasswd)}},
        "regtui": {"extensions": {"admins": ["alice"]}},
    }
    with bundled_registry(tmp_path / "registry", config=config) as registry:
        yield registry


def test_events_say_who_and_from_where_to_administrators_only(secured: RunningRegistry) -> None:
    image = make_image([{"who": b"bob pushed this\n"}])
    push_image(secured.url, "team/app", "v1", image, auth=BOB)
    pulled = httpx.get(f"{secured.url}/v2/team/app/manifests/v1", auth=BOB)
    assert pulled.status_code == 200

    assert httpx.get(f"{secured.url}{EVENTS}").status_code == 401
    refused = httpx.get(f"{secured.url}{EVENTS}", auth=BOB)
    assert refused.status_code == 403 and refused.json()["errors"][0]["code"] == "DENIED"
    # A proxy on the same host makes every request loopback: still no way in without the secret.
    assert (
        httpx.get(
            f"{secured.url}{EVENTS}", headers={"X-Forwarded-For": "127.0.0.1"}, auth=BOB
        ).status_code
        == 403
    )

    answer = httpx.get(f"{secured.url}{EVENTS}", auth=ALICE)
    assert answer.status_code == 200
    document = answer.json()
    events = document["events"]
    pushes = [e for e in events if e["action"] == "push"]
    assert {e["target"]["digest"] for e in pushes} == {b.digest for b in image.blobs()} | {
        image.digest
    }
    assert all(e["actor"] == {"name": "bob"} for e in events)
    assert all(e["request"]["addr"].startswith("127.0.0.1:") for e in events)
    pull = [e for e in events if e["action"] == "pull"]
    assert pull and pull[-1]["target"]["tag"] == "v1" and pull[-1]["request"]["method"] == "GET"
    assert document["next"] == len(events)
    # The local admin secret opens it too (the client library sends it by itself).
    local = httpx.get(
        f"{secured.url}{EVENTS}?since={len(events) - 1}", headers=secured.admin_headers()
    )
    assert [e["id"] for e in local.json()["events"]] == [events[-1]["id"]]


def test_a_long_poll_answers_as_soon_as_an_event_comes(tmp_path: Path) -> None:
    with bundled_registry(tmp_path / "registry") as registry:

        async def follow() -> tuple[float, list[str]]:
            async with RegistryClient(registry.host, timeout=30) as client:
                first = await recent_events(client)
                assert first.events == ()
                asked.set()
                started = time.monotonic()
                page = await recent_events(client, since=first.next, wait=20)
                return time.monotonic() - started, [e.action for e in page.events]

        asked = threading.Event()

        def push_later() -> None:
            assert asked.wait(30)
            time.sleep(1.0)
            push_image(registry.url, "live/app", "v1", make_image([{"live": b"now"}]))

        pusher = threading.Thread(target=push_later)
        pusher.start()
        took, actions = asyncio.run(follow())
        pusher.join()
        assert 0.9 < took < 10, took  # it waited for the push, not for its 20 s
        assert actions and actions[0] == "push"


def test_bad_queries_are_one_oci_error(tmp_path: Path) -> None:
    with bundled_registry(tmp_path / "registry") as registry:
        for query in ("since=x", "wait=-1", "limit=nan"):
            answer = httpx.get(f"{registry.url}{EVENTS}?{query}", headers=registry.admin_headers())
            assert answer.status_code == 400, query
            assert answer.json()["errors"][0]["code"] == "UNSUPPORTED"


def test_extensions_off_means_no_events_endpoint(tmp_path: Path) -> None:
    config = {"regtui": {"extensions": {"enabled": False}}}
    with bundled_registry(tmp_path / "registry", config=config) as registry:
        assert httpx.get(f"{registry.url}{EVENTS}").status_code == 404


def test_client_refusal_is_a_refused_error(
    secured: RunningRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ADMIN_DIR_ENV, str(tmp_path / "not-the-servers"))  # another machine

    async def ask() -> None:
        async with RegistryClient(secured.host, username=BOB[0], password=BOB[1]) as client:
            await recent_events(client)

    with pytest.raises(RefusedError, match="denied access to the registry's events"):
        asyncio.run(ask())


def _regtui(registry: RunningRegistry, *args: str) -> subprocess.CompletedProcess[str]:
    env = server_env({ADMIN_DIR_ENV: str(registry.admin_dir)})
    return subprocess.run(
        [sys.executable, "-m", "tui", "events", registry.host, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_cli_lists_filters_and_refuses_in_one_line(tmp_path: Path) -> None:
    with bundled_registry(tmp_path / "registry") as registry:
        push_image(registry.url, "cli/one", "v1", make_image([{"one": b"1"}]))
        push_image(registry.url, "cli/two", "v2", make_image([{"two": b"2"}]))
        table = _regtui(registry, "--repo", "two")
        assert table.returncode == 0, table.stderr
        lines = table.stdout.splitlines()
        assert lines[0].split() == ["TIME", "ACTION", "REPOSITORY", "WHAT", "SIZE", "WHO", "FROM"]
        assert len(lines) == 4 and all("cli/two" in line for line in lines[1:])
        assert "v2 @" in lines[-1]
        listed = _regtui(registry, "--json", "--action", "push")
        events = json.loads(listed.stdout)
        assert len(events) == 6 and {e["action"] for e in events} == {"push"}
        env = server_env({ADMIN_DIR_ENV: str(tmp_path / "no-secret-here")})
        refused = subprocess.run(
            [sys.executable, "-m", "tui", "events", registry.host],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            check=False,
        )
        assert refused.returncode == 1
        assert refused.stderr.count("\n") == 1 and "denied access" in refused.stderr


def test_cli_follow_prints_new_events_as_json_lines(tmp_path: Path) -> None:
    with bundled_registry(tmp_path / "registry") as registry:
        env = server_env({ADMIN_DIR_ENV: str(registry.admin_dir)})
        process = subprocess.Popen(
            [sys.executable, "-m", "tui", "events", registry.host, "--follow", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            time.sleep(1.5)
            image = make_image([{"follow": b"me"}])
            push_image(registry.url, "follow/app", "v1", image)
            assert process.stdout is not None
            seen = [json.loads(process.stdout.readline()) for _ in range(3)]
            assert [e["action"] for e in seen] == ["push"] * 3
            assert {e["target"]["digest"] for e in seen} == {
                *(blob.digest for blob in image.blobs()),
                image.digest,
            }
        finally:
            process.terminate()
            process.wait(timeout=10)


def test_deletes_by_tag_and_by_digest_are_distributions_delete_events(tmp_path: Path) -> None:
    with bundled_registry(tmp_path / "registry") as registry:
        one, two = make_image([{"one": b"1"}]), make_image([{"two": b"2"}])
        push_image(registry.url, "del/app", "keep", one)
        push_image(registry.url, "del/app", "untag-me", one)
        push_image(registry.url, "del/app", "gone", two)
        push_image(registry.url, "del/app", "gone-too", two)
        assert httpx.delete(f"{registry.url}/v2/del/app/manifests/untag-me").status_code == 202
        assert httpx.delete(f"{registry.url}/v2/del/app/manifests/{two.digest}").status_code == 202
        events = httpx.get(f"{registry.url}{EVENTS}", headers=registry.admin_headers()).json()
    deletes = [e["target"] for e in events["events"] if e["action"] == "delete"]
    assert deletes[0] == {"repository": "del/app", "tag": "untag-me"}
    assert deletes[1] == {"digest": two.digest, "repository": "del/app"}
    assert sorted(d["tag"] for d in deletes[2:]) == ["gone", "gone-too"]
    assert all(set(d) == {"repository", "tag"} for d in deletes[2:])


def test_a_long_poll_does_not_hold_the_server_s_stop(tmp_path: Path) -> None:
    with bundled_registry(tmp_path / "registry") as registry:
        answers: list[int] = []

        def poll() -> None:
            url = f"{registry.url}{EVENTS}?wait=60"
            answers.append(httpx.get(url, headers=registry.admin_headers(), timeout=90).status_code)

        poller = threading.Thread(target=poll)
        poller.start()
        time.sleep(1.0)
        started = time.monotonic()
        registry.process.send_signal(signal.SIGTERM)
        registry.process.wait(timeout=60)
        stopped = time.monotonic() - started
        poller.join(10)
    assert stopped < 10, stopped  # aiohttp waits up to 60 s for requests in flight
    assert answers == [200]
