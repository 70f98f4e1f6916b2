"""GC's commit lock: an acknowledged manifest never names a blob GC swept.

Grace period 0, an old blob that nothing references, and a manifest PUT naming it while GC runs.
The two orders are forced with hooks in a registry served in this process on a real socket
(no sleeps, no timing): either the PUT has checked its blobs and GC's sweep would come before
the PUT's commit, or GC has planned the blob's removal and the PUT comes before the sweep. With
the lock, the first waits for the PUT (the blob is then referenced, and kept), the second makes
the PUT wait and fail with MANIFEST_BLOB_UNKNOWN. Without the lock both acknowledge a manifest
whose blob is gone: the test fails (checked by removing the lock from ``routes/ext.py``).
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
from aiohttp import web

import embedded_registry.gc.collect as gc_collect
from embedded_registry.admin import APP_KEY as ADMIN_KEY
from embedded_registry.app import create_app
from embedded_registry.config import Config, StorageConfig
from embedded_registry.keys import COMMIT_LOCK_KEY
from embedded_registry.storage.driver.filesystem import FilesystemDriver
from embedded_registry.storage.factory import driver_storage
from embedded_registry.storage.paths import Layout
from embedded_registry.storage.store import DriverStorage
from tests.helpers.images import make_image, push_image
from tests.helpers.servers import ADMIN_SECRET_HEADER
from tui.imagegen import OCI_MANIFEST

pytestmark = pytest.mark.timeout(120)

HOURS = 3600.0


class RecordingLock(asyncio.Lock):
    """The commit lock, telling the test when someone has to wait for it."""

    def __init__(self) -> None:
        super().__init__()
        self.contended = threading.Event()

    async def acquire(self) -> Literal[True]:
        if self.locked():
            self.contended.set()
        return await super().acquire()


ADMIN_HEADERS: dict[str, str] = {}


@contextmanager
def served(root: Path) -> Iterator[tuple[str, DriverStorage, RecordingLock]]:
    """The bundled registry's app on 127.0.0.1, its loop in a thread of this process (its local
    admin secret in ``ADMIN_HEADERS`` for GC requests)."""
    Layout(root).blobs_dir.mkdir(parents=True)
    Layout(root).repositories_dir.mkdir(parents=True)
    storage = driver_storage(FilesystemDriver(root), coordinate=True)
    app = create_app(Config(storage=StorageConfig(root=root)), storage)
    lock = RecordingLock()
    app[COMMIT_LOCK_KEY] = lock
    ADMIN_HEADERS[ADMIN_SECRET_HEADER] = app[ADMIN_KEY].secret
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = int(runner.addresses[0][1])
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}", storage, lock
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()


def _age(root: Path, seconds: float) -> None:
    then = time.time() - seconds
    for dirpath, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            os.utime(os.path.join(dirpath, name), (then, then))


class Background:
    """One HTTP request in a thread; ``done`` is set when its answer is in."""

    def __init__(self, send: Callable[[], httpx.Response]) -> None:
        self.done = threading.Event()
        self.response: httpx.Response | None = None
        self.error: BaseException | None = None
        self._send = send
        self._thread = threading.Thread(target=self._run)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.response = self._send()
        except BaseException as exc:  # reported by result()
            self.error = exc
        finally:
            self.done.set()

    def result(self) -> httpx.Response:
        self._thread.join(60)
        if self.error is not None:
            raise self.error
        assert self.response is not None
        return self.response


def _wait_for_either(*events: threading.Event) -> None:
    """Block until one of ``events`` is set (pytest-timeout bounds a broken test)."""
    while not any(event.wait(0.01) for event in events):
        pass


def _gc(url: str) -> httpx.Response:
    return httpx.post(
        f"{url}/v2/_regtui/ext/gc",
        json={"dry_run": False, "grace_period": 0},
        headers=ADMIN_HEADERS,
        timeout=60,
    )


@pytest.mark.parametrize("order", ["put_checked_then_gc", "gc_planned_then_put"])
def test_no_acknowledged_manifest_names_a_swept_blob(tmp_path: Path, order: str) -> None:
    root = tmp_path / "registry"
    old = make_image([{"old/layer": b"unreferenced for two hours" * 100}])
    with served(root) as (url, storage, lock):
        push_image(url, "app", "old", old)
        assert httpx.delete(f"{url}/v2/app/manifests/{old.digest}").status_code == 202
        _age(root / "docker", 2 * HOURS)
        # A new manifest naming the old, unreferenced (still linked) config and layer.
        document: dict[str, Any] = json.loads(old.manifest.data)
        document["annotations"] = {"pushed": "again"}
        body = json.dumps(document).encode()
        layer = old.layers[0].digest

        def put() -> httpx.Response:
            return httpx.put(
                f"{url}/v2/app/manifests/again",
                content=body,
                headers={"Content-Type": OCI_MANIFEST},
                timeout=60,
            )

        gc: Background | None = None
        pushed: Background | None = None
        if order == "put_checked_then_gc":
            checked = storage.links.linked_size

            async def hooked(name: str, digest: str) -> int | None:
                nonlocal gc
                size = await checked(name, digest)
                if digest == layer and gc is None:
                    # The PUT has seen the blob: now GC runs, before the PUT commits.
                    gc = Background(lambda: _gc(url))
                    await asyncio.to_thread(_wait_for_either, gc.done, lock.contended)
                return size

            storage.links.linked_size = hooked  # type: ignore[method-assign]
            answer = put()
        else:
            real_sweep = gc_collect.execute

            async def hooked_sweep(*args: Any, **kwargs: Any) -> None:
                nonlocal pushed
                # GC has planned the blob's removal: now the PUT comes, before the sweep.
                pushed = Background(put)
                await asyncio.to_thread(_wait_for_either, pushed.done, lock.contended)
                await real_sweep(*args, **kwargs)

            gc_collect.execute = hooked_sweep  # type: ignore[assignment]
            try:
                gc = Background(lambda: _gc(url))
                gc.result()
            finally:
                gc_collect.execute = real_sweep  # type: ignore[assignment]
            assert pushed is not None
            answer = pushed.result()
        assert gc is not None
        report = gc.result()
        assert report.status_code == 200, report.text

        with httpx.Client(base_url=url) as client:
            tags = client.get("/v2/app/tags/list").json()["tags"] or []
            if answer.status_code == 201:
                # Acknowledged: everything it names is there, and it serves.
                for blob in old.blobs():
                    got = client.get(f"/v2/app/blobs/{blob.digest}")
                    assert got.status_code == 200, f"acknowledged manifest lost {blob.digest}"
                    assert got.content == blob.data
                assert "again" in tags
                swept = {r["digest"] for r in report.json()["removed"] if r["kind"] == "blob"}
                assert layer not in swept
            else:
                # Refused cleanly, before being acknowledged, and nothing half-done is visible.
                assert answer.status_code == 400, answer.text
                assert answer.json()["errors"][0]["code"] == "MANIFEST_BLOB_UNKNOWN"
                assert "again" not in tags
                assert client.get("/v2/app/manifests/again").status_code == 404
        assert lock.contended.is_set(), "the PUT and GC should have met at the commit lock"
        if order == "put_checked_then_gc":
            assert answer.status_code == 201  # it held the lock first: GC waited
