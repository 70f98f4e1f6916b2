"""Debian's nginx in front of the bundled registry, as the how-tos configure it (Distribution's
"authenticate proxy with nginx" recipe): nginx on the same host, so every request reaches the
registry from 127.0.0.1. Being proxied from loopback must not make anyone an administrator.

(a) a plain ``proxy_pass`` without auth: pulls work; the storage report and GC are refused;
(b) TLS at nginx (a self-signed certificate made here) with ``auth_basic``: an authenticated pull
    works; GC is still refused, nginx's users are not the registry's administrators;
(c) a path rule hiding a repository (``location /v2/private/ { deny all; }``) hides its push
    times too: they live under the repository's own path.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import ssl
import time
from pathlib import Path

import bcrypt
import httpx
import pytest

from tests.helpers.images import Image, make_image, push_image
from tests.helpers.servers import (
    ADMIN_SECRET_HEADER,
    RunningRegistry,
    bundled_registry,
    nginx_proxy,
)
from tests.helpers.tls import self_signed
from tui.client import AuthError, RegistryClient, ext, repository_storage, tags_path
from tui.imagegen import OCI_MANIFEST

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]

REAL_GC = {"dry_run": False, "delete_untagged": True, "grace_period": 0}


def _age(root: Path, seconds: float = 7200) -> None:
    then = time.time() - seconds
    for dirpath, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            os.utime(os.path.join(dirpath, name), (then, then))


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def _with_garbage(registry: RunningRegistry) -> tuple[Image, Image]:
    """A tagged image and an orphaned one (its blobs are garbage), old enough for any grace."""
    kept, gone = make_image([{"kept": b"k" * 900}]), make_image([{"gone": b"g" * 700}])
    push_image(registry.url, "team/app", "v1", kept)
    push_image(registry.url, "team/app", "old", gone)
    assert httpx.delete(f"{registry.url}/v2/team/app/manifests/{gone.digest}").status_code == 202
    _age(registry.root)
    return kept, gone


def _pull(client: httpx.Client, image: Image) -> None:
    manifest = client.get("/v2/team/app/manifests/v1", headers={"Accept": OCI_MANIFEST})
    assert manifest.status_code == 200, manifest.text
    assert manifest.content == image.manifest.data
    for blob in image.blobs():
        got = client.get(f"/v2/team/app/blobs/{blob.digest}")
        assert got.status_code == 200
        assert "sha256:" + hashlib.sha256(got.content).hexdigest() == blob.digest


def _refused(response: httpx.Response) -> None:
    assert response.status_code == 403, response.text
    assert response.json()["errors"][0]["code"] == "DENIED"
    assert "total_bytes" not in response.text and "removals" not in response.text


def test_plain_proxy_pass_does_not_make_loopback_an_administrator(tmp_path: Path) -> None:
    with bundled_registry(tmp_path / "root") as registry:
        kept, gone = _with_garbage(registry)
        before = _files(registry.root)
        with (
            nginx_proxy(tmp_path / "nginx", registry) as nginx,
            httpx.Client(base_url=nginx.url, timeout=30) as through,
        ):
            _pull(through, kept)
            _refused(through.get(ext.STORAGE_PATH))
            _refused(through.post(ext.GC_PATH, json=REAL_GC))
            forged = {
                ADMIN_SECRET_HEADER: "guessed",
                "X-Forwarded-For": "127.0.0.1",
                "X-Real-IP": "127.0.0.1",
            }
            _refused(through.post(ext.GC_PATH, json=REAL_GC, headers=forged))
        assert _files(registry.root) == before  # no GC ran: the orphan's blobs are all there
        # nginx did connect from loopback: the registry saw 127.0.0.1 for the proxied requests.
        assert "127.0.0.1" in registry.log() and "/v2/_regtui/ext/gc" in registry.log()
        # The local administrator, directly on the registry, still may.
        with httpx.Client(base_url=registry.url, headers=registry.admin_headers()) as admin:
            gc = admin.post(ext.GC_PATH, json=REAL_GC)
        assert gc.status_code == 200, gc.text
        assert gone.layers[0].digest in {r["digest"] for r in gc.json()["removed"]}


async def _through_the_client_library(url: str, ca_cert: Path, kept: Image) -> None:
    """As `regtui du` and the Storage screen call it: pulls work, the extension refuses."""
    async with RegistryClient(
        url, username="dev", password="s3cret-pass", ca_cert=str(ca_cert)
    ) as client:
        manifest = await client.get_manifest("team/app", "v1")
        assert manifest.digest == kept.digest
        with pytest.raises(AuthError):
            await ext.collect_garbage(client, dry_run=False, delete_untagged=True, grace_period=0)
        with pytest.raises(AuthError):
            await ext.storage_usage(client)


def test_tls_and_auth_basic_at_nginx_pull_works_gc_is_refused(tmp_path: Path) -> None:
    certificate, key = self_signed(tmp_path / "tls")
    htpasswd = tmp_path / "nginx.htpasswd"
    hashed = bcrypt.hashpw(b"s3cret-pass", bcrypt.gensalt(rounds=5)).decode()
    htpasswd.write_text(f"dev:{hashed}\n")
    with bundled_registry(tmp_path / "root") as registry:
        kept, _gone = _with_garbage(registry)
        before = _files(registry.root)
        with nginx_proxy(
            tmp_path / "nginx",
            registry,
            tls=(certificate, key),
            htpasswd=htpasswd,
            verify=str(certificate),
        ) as nginx:
            context = ssl.create_default_context(cafile=str(certificate))
            with httpx.Client(base_url=nginx.url, verify=context, timeout=30) as anonymous:
                assert anonymous.get("/v2/").status_code == 401  # nginx asks for credentials
                assert anonymous.post(ext.GC_PATH, json=REAL_GC).status_code == 401
            with httpx.Client(
                base_url=nginx.url, verify=context, auth=("dev", "s3cret-pass"), timeout=30
            ) as dev:
                _pull(dev, kept)
                _refused(dev.get(ext.STORAGE_PATH))
                _refused(dev.post(ext.GC_PATH, json=REAL_GC))
            asyncio.run(_through_the_client_library(nginx.url, certificate, kept))
        assert _files(registry.root) == before


async def _push_times_through(url: str) -> None:
    """As ``regtui prune`` and the repository screen read them, through the proxy."""
    async with RegistryClient(url) as client:
        public = await repository_storage(client, "public/app")
        assert public is not None and [t.tag for t in public.tags] == ["v1"]
        with pytest.raises(AuthError):
            await repository_storage(client, "private/app")


def test_a_path_rule_that_hides_a_repository_hides_its_push_times(tmp_path: Path) -> None:
    with bundled_registry(tmp_path / "root") as registry:
        secret, shown = make_image([{"secret": b"s" * 500}]), make_image([{"shown": b"p" * 400}])
        push_image(registry.url, "private/app", "v1", secret)
        push_image(registry.url, "public/app", "v1", shown)
        with (
            nginx_proxy(tmp_path / "nginx", registry, deny=["/v2/private/"]) as nginx,
            httpx.Client(base_url=nginx.url, timeout=30) as through,
        ):
            assert through.get("/v2/private/app/tags/list").status_code == 403
            hidden = through.get(tags_path("private/app"))
            assert hidden.status_code == 403
            assert secret.digest not in hidden.text and "pushed" not in hidden.text
            # The old registry-wide path, outside the rule's reach, is no route any more.
            old = through.get("/v2/_regtui/ext/tags/private/app")
            assert old.status_code == 404, old.text
            assert secret.digest not in old.text and "pushed" not in old.text
            allowed = through.get(tags_path("public/app"))
            assert allowed.status_code == 200, allowed.text
            (tag,) = allowed.json()["tags"]
            assert (tag["tag"], tag["digest"]) == ("v1", shown.digest) and tag["pushed"]
            asyncio.run(_push_times_through(nginx.url))
