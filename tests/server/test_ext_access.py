"""Who may call the extension endpoints (storage report, GC), attacked over real sockets.

The bundled registry runs as a child process on loopback; the requests are plain ``httpx`` calls
(what any local user or proxy could send) or the client library's own (``tui.client.ext``, which
finds the local admin secret by itself). What must not happen is checked on disk: a refused GC
removes nothing.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import bcrypt
import httpx
import pytest
from aiohttp import web

from tests.helpers.images import Image, make_image, push_image
from tests.helpers.servers import ADMIN_SECRET_HEADER, RunningRegistry, bundled_registry
from tui.client import AuthError, RegistryClient, ext
from tui.client._admin import local_admin_secret
from tui.imagegen import OCI_MANIFEST, make_layer, push_blob

pytestmark = pytest.mark.timeout(120)

ALICE = ("alice", "wonderland")  # an administrator
BOB = ("bob", "builder")  # a user who may push and pull, not administer
REAL_GC = {"dry_run": False, "delete_untagged": True, "grace_period": 0}


def _age(root: Path, seconds: float = 7200) -> None:
    then = time.time() - seconds
    for dirpath, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            os.utime(os.path.join(dirpath, name), (then, then))


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def _garbage(registry: RunningRegistry, auth: tuple[str, str] | None = None) -> Image:
    """A kept image, an orphaned one (manifest deleted: its blobs are garbage), all old."""
    push_image(registry.url, "app", "kept", make_image([{"kept": b"k" * 600}]), auth=auth)
    gone = make_image([{"gone": b"g" * 800}])
    push_image(registry.url, "app", "gone", gone, auth=auth)
    response = httpx.delete(f"{registry.url}/v2/app/manifests/{gone.digest}", auth=auth)
    assert response.status_code == 202, response.text
    _age(registry.root)
    return gone


def _error_code(response: httpx.Response) -> str:
    document = response.json()
    return str(document["errors"][0]["code"])


def _htpasswd(path: Path) -> Path:
    lines = [
        f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()}"
        for user, password in (ALICE, BOB)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[RunningRegistry]:
    """htpasswd auth with alice as the only administrator; GC's configured grace: 1 h."""
    config = {
        "auth": {"htpasswd": {"realm": "regtui", "path": str(_htpasswd(tmp_path / "htpasswd"))}},
        "storage": {"maintenance": {"gc": {"graceperiod": "1h"}}},
        "regtui": {"extensions": {"admins": ["alice"]}},
    }
    with bundled_registry(tmp_path / "secured", config=config) as running:
        yield running


# -- no anonymous access, whatever the address --------------------------------------------------


def test_an_anonymous_loopback_client_is_denied(registry: RunningRegistry) -> None:
    _garbage(registry)
    before = _files(registry.root)
    with httpx.Client(base_url=registry.url) as anonymous:
        report = anonymous.get(ext.STORAGE_PATH)
        gc = anonymous.post(ext.GC_PATH, json=REAL_GC)
        wrong = anonymous.post(ext.GC_PATH, json=REAL_GC, headers={ADMIN_SECRET_HEADER: "x" * 43})
        empty = anonymous.post(ext.GC_PATH, json=REAL_GC, headers={ADMIN_SECRET_HEADER: ""})
    for response in (report, gc, wrong, empty):
        assert response.status_code == 403, response.text
        assert _error_code(response) == "DENIED"
        assert "total_bytes" not in response.text and "v1" not in response.text
    assert _files(registry.root) == before  # no GC ran


def test_the_local_secret_opens_them_and_stays_private(registry: RunningRegistry) -> None:
    gone = _garbage(registry)
    assert registry.admin_dir is not None
    secret_file = registry.admin_dir / str(registry.port)
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(registry.admin_dir.stat().st_mode) == 0o700
    secret = registry.admin_secret()
    assert len(secret) >= 40
    with httpx.Client(base_url=registry.url, headers=registry.admin_headers()) as admin:
        report = admin.get(ext.STORAGE_PATH)
        gc = admin.post(ext.GC_PATH, json=REAL_GC)
    assert report.status_code == 200 and report.json()["reclaimable_blobs"] == 3
    assert gc.status_code == 200, gc.text
    assert {r["digest"] for r in gc.json()["removed"] if r["kind"] == "blob"} == {
        gone.manifest.digest,
        gone.config.digest,
        gone.layers[0].digest,
    }
    assert httpx.get(f"{registry.url}/v2/app/blobs/{gone.layers[0].digest}").status_code == 404
    for response in (report, gc):
        assert secret not in response.text
        assert secret not in str(response.headers)
    assert secret not in registry.log()


async def test_the_client_library_finds_the_secret_by_itself(registry: RunningRegistry) -> None:
    """``regtui du HOST`` and the Storage screen on the same machine: zero setup."""
    _garbage(registry)
    async with RegistryClient(registry.host) as client:  # no scheme: probed, as the CLI does
        assert await ext.supports_extension(client)
        report = await ext.storage_usage(client)
        result = await ext.collect_garbage(client, dry_run=True, grace_period=0)
    assert report.reclaimable_blobs == 3 and len(result.eligible_blobs) == 3


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="this machine has no IPv6 loopback")
async def test_ipv6_loopback_finds_the_secret(tmp_path: Path) -> None:
    with bundled_registry(tmp_path / "root", args=("--addr", "[::1]:0")) as running:
        assert running.url.startswith("http://[::1]:")
        async with RegistryClient(running.host) as client:
            assert (await ext.storage_usage(client)).blob_count == 0


async def test_localhost_finds_the_secret(registry: RunningRegistry) -> None:
    async with RegistryClient(f"localhost:{registry.port}") as client:
        assert (await ext.storage_usage(client)).blob_count == 0


def test_the_secret_file_goes_with_a_clean_shutdown(tmp_path: Path) -> None:
    with bundled_registry(tmp_path / "root") as running:
        assert running.admin_dir is not None
        secret_file = running.admin_dir / str(running.port)
        assert secret_file.exists()
    assert not secret_file.exists()


def test_a_restart_makes_a_new_secret_and_the_old_one_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    with bundled_registry(root) as first:
        old = first.admin_secret()
        port = first.port
    with bundled_registry(root, args=("--addr", f"127.0.0.1:{port}")) as second:
        assert second.admin_secret() != old
        response = httpx.get(f"{second.url}{ext.STORAGE_PATH}", headers={ADMIN_SECRET_HEADER: old})
        assert response.status_code == 403


# -- htpasswd: administrators only ------------------------------------------------------------


def test_with_htpasswd_only_administrators_get_in(secured: RunningRegistry) -> None:
    gone = _garbage(secured, auth=ALICE)
    before = _files(secured.root)
    with httpx.Client(base_url=secured.url) as anonymous:
        assert anonymous.get(ext.STORAGE_PATH).status_code == 401
        assert anonymous.post(ext.GC_PATH, json=REAL_GC).status_code == 401
    with httpx.Client(base_url=secured.url, auth=BOB) as bob:
        assert bob.get("/v2/app/manifests/kept", headers={"Accept": OCI_MANIFEST}).is_success
        for response in (bob.get(ext.STORAGE_PATH), bob.post(ext.GC_PATH, json=REAL_GC)):
            assert response.status_code == 403, response.text
            assert _error_code(response) == "DENIED"
    assert _files(secured.root) == before  # bob's GC ran nothing
    with httpx.Client(base_url=secured.url, auth=ALICE) as alice:
        assert alice.get(ext.STORAGE_PATH).json()["reclaimable_blobs"] == 3
        gc = alice.post(ext.GC_PATH, json=REAL_GC)
    assert gc.status_code == 200, gc.text
    assert gone.layers[0].digest in {r["digest"] for r in gc.json()["removed"]}


def test_the_local_secret_works_with_htpasswd_too(secured: RunningRegistry) -> None:
    with httpx.Client(base_url=secured.url, headers=secured.admin_headers()) as local:
        assert local.get(ext.STORAGE_PATH).status_code == 200
        # The secret opens the extension endpoints only, not the registry itself.
        assert local.get("/v2/_catalog").status_code == 401


def test_a_grace_period_below_the_configured_one_needs_an_administrator(
    secured: RunningRegistry,
) -> None:
    """The configured grace is 1 h; everything is 2 h old; asking for less than 1 h is
    administrative (and so is every other GC request today: the check stays, defence in depth)."""
    young = make_image([{"young": b"y" * 500}])
    push_image(secured.url, "app", "young", young, auth=ALICE)
    assert httpx.delete(
        f"{secured.url}/v2/app/manifests/{young.digest}", auth=ALICE
    ).is_success  # garbage, written just now
    before = _files(secured.root)
    quick = {"dry_run": False, "grace_period": 1}
    refused = httpx.post(f"{secured.url}{ext.GC_PATH}", json=quick, auth=BOB)
    assert refused.status_code == 403 and _error_code(refused) == "DENIED"
    assert _files(secured.root) == before
    time.sleep(1.5)  # older than the 1 s asked for, younger than the configured hour
    allowed = httpx.post(f"{secured.url}{ext.GC_PATH}", json=quick, auth=ALICE)
    assert allowed.status_code == 200, allowed.text
    assert young.layers[0].digest in {r["digest"] for r in allowed.json()["removed"]}


# -- turned off ------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["config", "environment"])
def test_extensions_can_be_turned_off(tmp_path: Path, how: str) -> None:
    config: dict[str, Any] = {"regtui": {"extensions": {"enabled": False}}}
    env = {"REGISTRY_REGTUI_EXTENSIONS_ENABLED": "false"}
    with bundled_registry(
        tmp_path / "root",
        config=config if how == "config" else None,
        env=env if how == "environment" else None,
    ) as running:
        assert running.admin_dir is not None
        assert not (running.admin_dir / str(running.port)).exists()  # no secret is written
        push_image(running.url, "library/app", "v1", make_image([{"a": b"a"}]))
        with httpx.Client(base_url=running.url) as c:
            storage = c.get(ext.STORAGE_PATH)
            gc = c.post(ext.GC_PATH, json={"dry_run": True})
            push_times = c.get("/v2/library/app/_regtui/tags")
            assert c.get("/v2/").status_code == 200  # the registry itself still serves
    for response in (storage, gc, push_times):
        assert response.status_code == 404  # as any unknown route
        assert "total_bytes" not in response.text


def test_admins_come_from_the_environment_too(tmp_path: Path) -> None:
    config = {"auth": {"htpasswd": {"realm": "r", "path": str(_htpasswd(tmp_path / "pw"))}}}
    env = {"REGISTRY_REGTUI_EXTENSIONS_ADMINS": "carol, bob"}
    with bundled_registry(tmp_path / "root", config=config, env=env) as running:
        assert httpx.get(f"{running.url}{ext.STORAGE_PATH}", auth=BOB).status_code == 200
        assert httpx.get(f"{running.url}{ext.STORAGE_PATH}", auth=ALICE).status_code == 403


# -- storage.delete.enabled: false -----------------------------------------------------------


def test_delete_disabled_refuses_a_gc_that_deletes_manifests(tmp_path: Path) -> None:
    config = {"storage": {"delete": {"enabled": False}}}
    with bundled_registry(tmp_path / "root", config=config) as running:
        old = make_image([{"old": b"o" * 700}])
        new = make_image([{"new": b"n" * 700}])
        push_image(running.url, "app", "v1", old)
        push_image(running.url, "app", "v1", new)  # old is untagged now
        lone = make_layer({"lone": b"l" * 300})
        with httpx.Client(base_url=running.url) as c:
            push_blob(c, "app", lone)  # a blob no manifest names
        _age(running.root)
        before = _files(running.root)
        admin = running.admin_headers()
        with httpx.Client(base_url=running.url, headers=admin) as c:
            real = c.post(ext.GC_PATH, json=REAL_GC)
            assert real.status_code == 405, real.text
            assert _error_code(real) == "UNSUPPORTED"
            assert _files(running.root) == before  # nothing removed

            dry = c.post(ext.GC_PATH, json={**REAL_GC, "dry_run": True})
            assert dry.status_code == 200, dry.text
            planned = {r["digest"] for r in dry.json()["removed"] if r["kind"] == "manifest"}
            assert old.digest in planned
            assert _files(running.root) == before

            blobs_only = c.post(ext.GC_PATH, json={"dry_run": False, "grace_period": 0})
            assert blobs_only.status_code == 200, blobs_only.text
            swept = {r["digest"] for r in blobs_only.json()["removed"]}
            assert swept == {lone.digest}
            by_digest = c.get(f"/v2/app/manifests/{old.digest}", headers={"Accept": OCI_MANIFEST})
            assert by_digest.status_code == 200  # the untagged manifest stays
            assert c.delete(f"/v2/app/manifests/{old.digest}").status_code == 405


# -- no path of the server's machine in any answer ---------------------------------------------


def test_answers_name_no_path_of_the_server(registry: RunningRegistry) -> None:
    root = registry.root
    spellings = {str(root), os.path.realpath(root), str(root.parent)}
    _garbage(registry)
    bodies: list[str] = []
    with httpx.Client(base_url=registry.url, headers=registry.admin_headers()) as admin:
        gc = admin.post(ext.GC_PATH, json={"dry_run": False, "grace_period": 0})
        assert gc.status_code == 200, gc.text
        removals = gc.json()["removals"]
        assert removals and all(r["path"].startswith("docker/registry/v2/") for r in removals)
        assert "root" not in gc.json() and "root" not in gc.json()["before"]
        # The kept manifest's data replaced by a directory: reading it fails with an OSError
        # whose text names the file; the storage report lists a problem, the pull a 500.
        kept = httpx.head(
            f"{registry.url}/v2/app/manifests/kept", headers={"Accept": OCI_MANIFEST}
        ).headers["Docker-Content-Digest"]
        hex_digest = kept.split(":", 1)[1]
        data = root / "docker/registry/v2/blobs/sha256" / hex_digest[:2] / hex_digest / "data"
        data.unlink()
        data.mkdir()
        report = admin.get(ext.STORAGE_PATH)
        assert report.status_code == 200
        assert "root" not in report.json()
        dry = admin.post(ext.GC_PATH, json={"dry_run": True, "grace_period": 0})
        bad = admin.post(ext.GC_PATH, content=b"{not json")
        assert bad.status_code == 400
        crash = admin.get(f"/v2/app/manifests/{kept}", headers={"Accept": OCI_MANIFEST})
        assert crash.status_code == 500 and _error_code(crash) == "UNKNOWN"
        bodies += [gc.text, report.text, dry.text, bad.text, crash.text]
        bodies.append(admin.get("/v2/nope/manifests/x").text)
        bodies.append(admin.get("/v2/app/blobs/sha256:" + "0" * 64).text)
    for body in bodies:
        for spelling in spellings:
            assert spelling not in body, (spelling, body[:500])
    assert str(data) in registry.log()  # the 500's cause is logged on the server, whole


# -- the client: the secret goes nowhere else --------------------------------------------------


@asynccontextmanager
async def _recording_server(handler: Any) -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    """An aiohttp server on loopback that records every request's headers."""
    seen: list[dict[str, str]] = []

    async def record(request: web.Request) -> web.StreamResponse:
        seen.append({**request.headers, ":path": request.path_qs})
        result: web.StreamResponse = await handler(request)
        return result

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()


def _plant_secret(directory: Path, host: str, secret: str, mode: int = 0o600) -> Path:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / host.rsplit(":", 1)[1]
    path.write_text(secret + "\n")
    path.chmod(mode)
    return path


async def test_the_secret_is_never_sent_after_a_redirect(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A loopback server whose secret file exists redirects the storage report to another
    port: the other server never sees the secret (the client follows without it)."""
    monkeypatch.setenv("REGTUI_ADMIN_DIR", str(tmp_path / "admin"))
    report = json.dumps({"total_bytes": 5, "blob_count": 1})

    async def target(request: web.Request) -> web.Response:
        return web.json_response(text=report)

    async with _recording_server(target) as (other, other_seen):

        async def redirector(request: web.Request) -> web.Response:
            if request.path == "/v2/":
                return web.json_response({})
            raise web.HTTPTemporaryRedirect(f"http://{other}{request.path}")

        async with _recording_server(redirector) as (first, first_seen):
            _plant_secret(tmp_path / "admin", first, "the-secret-of-the-first-port")
            async with RegistryClient(f"http://{first}") as client:
                result = await ext.storage_usage(client)
    assert result.total_bytes == 5  # the redirect was followed, by the ordinary path
    assert any(ADMIN_SECRET_HEADER in h for h in first_seen)  # the loopback registry itself
    assert other_seen and not any(ADMIN_SECRET_HEADER in h for h in other_seen)
    assert "the-secret-of-the-first-port" not in json.dumps(other_seen)


async def test_the_secret_never_goes_through_a_proxy(
    registry: RunningRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def refuse(request: web.Request) -> web.Response:
        return web.Response(status=502, text="the proxy forwards nothing")

    async with _recording_server(refuse) as (proxy, proxy_seen):
        for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"):
            monkeypatch.setenv(name, f"http://{proxy}")
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        async with RegistryClient(f"http://{registry.host}", max_retries=0) as client:
            report = await ext.storage_usage(client)
            ordinary = await client.request("GET", "/v2/_catalog")
    assert report.blob_count == 0
    assert ordinary.status_code == 502 and proxy_seen  # ordinary requests go through the proxy
    assert not any(ADMIN_SECRET_HEADER in h for h in proxy_seen)
    assert registry.admin_secret() not in json.dumps(proxy_seen)


def test_the_secret_is_read_only_for_loopback_and_only_from_a_private_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "admin"
    monkeypatch.setenv("REGTUI_ADMIN_DIR", str(directory))
    _plant_secret(directory, "h:5000", "s3cret")
    for url in ("http://127.0.0.1:5000", "http://localhost:5000", "https://[::1]:5000"):
        assert local_admin_secret(url) == "s3cret", url
    for url in ("http://192.0.2.1:5000", "http://registry.example:5000", "http://127.0.0.1:5001"):
        assert local_admin_secret(url) is None, url
    _plant_secret(directory, "h:5000", "s3cret", mode=0o644)  # readable by others: not ours
    assert local_admin_secret("http://127.0.0.1:5000") is None


async def test_without_a_secret_the_client_says_access_is_denied(
    registry: RunningRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another local user (no readable secret) gets a clear refusal, not a report."""
    monkeypatch.setenv("REGTUI_ADMIN_DIR", str(tmp_path / "someone-else"))
    async with RegistryClient(registry.host) as client:
        with pytest.raises(AuthError, match="denied"):
            await ext.storage_usage(client)
