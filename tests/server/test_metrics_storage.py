"""Metrics of the storage (issue 24): driver operations and their latency, bytes per repository
kept current without a walk per scrape, and GC runs by outcome with the bytes they freed.

Real servers with ``http.debug.prometheus.enabled``, scraped over a real socket; images pushed
by skopeo; per-repository bytes compared with what ``regtui du --root`` says of the same root.
The driver wrapper is also exercised directly on a real filesystem driver."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from embedded_registry.config import Config, DebugConfig, HttpConfig, StorageConfig
from embedded_registry.storage.driver.base import (
    FileInfo,
    FileWriter,
    PathNotFoundError,
    StorageDriver,
)
from embedded_registry.storage.driver.capabilities import (
    CheapTouch,
    DirectoryTimes,
    LocalFiles,
    MultipartUploads,
)
from embedded_registry.storage.driver.filesystem import FilesystemDriver
from embedded_registry.storage.factory import filesystem_storage
from embedded_registry.storage.metered import driver_metrics, metered_driver
from tests.helpers.servers import RunningRegistry, bundled_registry, free_port, server_env
from tests.integration.test_skopeo import copy_in
from tests.server.test_health import wait_for
from tests.server.test_metrics import Samples, moved, scrape, value
from tui.imagegen import Image, make_image, write_oci_layout

pytestmark = pytest.mark.timeout(180)

ACTIONS = "regtui_storage_actions_total"
SECONDS = "registry_storage_action_seconds_count"
REPO_BYTES = "registry_repository_storage_bytes"
UPLOAD_ROUTE = "/v2/{name}/blobs/uploads/{upload_id}"


@pytest.fixture
def watched(tmp_path: Path) -> Iterator[tuple[RunningRegistry, str, Path]]:
    port = free_port()
    root = tmp_path / "registry"
    config = {
        "http": {"debug": {"addr": f"127.0.0.1:{port}", "prometheus": {"enabled": True}}},
        "storage": {"delete": {"enabled": True}, "maintenance": {"gc": {"graceperiod": "0s"}}},
    }
    with bundled_registry(root, config=config) as registry:
        yield registry, f"http://127.0.0.1:{port}/metrics", root


def du(root: Path) -> dict[str, int]:
    """``regtui du --root ROOT --json``: referenced bytes per repository."""
    result = subprocess.run(
        [sys.executable, "-m", "tui", "du", "--root", str(root), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env=server_env(),
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    return {repo["name"]: repo["referenced_bytes"] for repo in report["repositories"]}


def repository_bytes(samples: Samples) -> dict[str, float]:
    return {
        dict(labels)["repository"]: number
        for (name, labels), number in samples.items()
        if name == REPO_BYTES
    }


def noise(size: int, seed: str) -> bytes:
    """Incompressible bytes (the layers are gzipped: their size must stay theirs)."""
    return hashlib.shake_256(seed.encode()).digest(size)


def push(registry: RunningRegistry, tmp_path: Path, image: Image, target: str) -> None:
    layout = write_oci_layout(tmp_path / target.replace("/", "_").replace(":", "_"), image, tag="v")
    copy_in(f"oci:{layout}:v", f"docker://{registry.host}/{target}")


def actions(samples: Samples, name: str, **labels: str) -> float:
    """The sum over the series of ``name`` that carry ``labels``."""
    wanted = set(labels.items())
    return sum(number for (n, ls), number in samples.items() if n == name and wanted <= ls)


def test_a_skopeo_push_moves_driver_operations_bytes_in_and_repository_bytes(
    watched: tuple[RunningRegistry, str, Path], tmp_path: Path
) -> None:
    registry, metrics, root = watched
    layer = noise(300_000, "app")
    app = make_image([{"app/data.bin": layer}])
    tool = make_image([{"tool/readme": noise(5_000, "tool")}])
    before = scrape(metrics)
    push(registry, tmp_path, app, "team/app:v1")
    push(registry, tmp_path, tool, "team/tool:v1")
    after = scrape(metrics)

    # every operation is counted with the driver's name, and timed
    assert (
        moved(before, after, ACTIONS, driver="filesystem", action="put_content", outcome="ok") > 0
    )
    assert moved(before, after, ACTIONS, driver="filesystem", action="move", outcome="ok") > 0
    writes = moved(before, after, ACTIONS, driver="filesystem", action="writer.write", outcome="ok")
    assert writes > 0
    counted = actions(after, ACTIONS, driver="filesystem") - actions(
        before, ACTIONS, driver="filesystem"
    )
    timed = actions(after, SECONDS, driver="filesystem") - actions(
        before, SECONDS, driver="filesystem"
    )
    assert counted == timed > 0
    # the body bytes of the uploads: at least the blobs' sizes
    blob_bytes = sum(len(blob.data) for image in (app, tool) for blob in image.blobs())
    received = moved(before, after, "registry_http_request_bytes_total", route=UPLOAD_ROUTE)
    assert received >= blob_bytes

    # bytes per repository: what `regtui du --root` says, once the background scan ran
    expected = du(root)
    assert set(expected) == {"team/app", "team/tool"}
    assert expected["team/app"] >= len(layer)
    wait_for(lambda: repository_bytes(scrape(metrics)) == expected, timeout=30)
    scanned = value(scrape(metrics), "regtui_repository_storage_scan_timestamp_seconds")
    assert scanned > 0

    # a manifest deleted through the API: the figure follows without a restart
    with httpx.Client(base_url=registry.url, timeout=30) as client:
        deleted = client.delete(f"/v2/team/tool/manifests/{tool.digest}")
        assert deleted.status_code == 202, deleted.text
    expected = du(root)
    assert expected["team/tool"] == 0
    wait_for(lambda: repository_bytes(scrape(metrics)) == expected, timeout=30)


def test_gc_runs_by_outcome_and_bytes_freed_as_gc_reports(
    watched: tuple[RunningRegistry, str, Path], tmp_path: Path
) -> None:
    registry, metrics, root = watched
    kept = make_image([{"kept": noise(50_000, "kept")}])
    gone = make_image([{"gone": noise(80_000, "gone")}])
    push(registry, tmp_path, kept, "team/kept:v1")
    push(registry, tmp_path, gone, "team/gone:v1")
    with httpx.Client(base_url=registry.url, timeout=60) as client:
        deleted = client.delete(f"/v2/team/gone/manifests/{gone.digest}")
        assert deleted.status_code == 202, deleted.text
        before = scrape(metrics)
        gc = "/v2/_regtui/ext/gc"
        headers = registry.admin_headers()
        dry = client.post(gc, json={}, headers=headers)
        assert dry.status_code == 200, dry.text
        real = client.post(gc, json={"dry_run": False}, headers=headers)
        assert real.status_code == 200, real.text
        freed = real.json()["bytes_freed"]
        after = scrape(metrics)
    assert freed >= 80_000  # the deleted image's layer at least
    assert moved(before, after, "regtui_gc_runs_total", outcome="dry_run") == 1
    assert moved(before, after, "regtui_gc_runs_total", outcome="completed") == 1
    assert moved(before, after, "regtui_gc_freed_bytes_total") == freed
    # GC's own storage operations are counted too: its lease and its sweep's journal (on the
    # filesystem its scan and removals are blocking calls of one worker thread, not operations)
    for action in ("put_conditional", "put_content", "delete"):
        assert moved(before, after, ACTIONS, driver="filesystem", action=action, outcome="ok") > 0
    # after GC, the figures per repository are du's again
    expected = du(root)
    wait_for(lambda: repository_bytes(scrape(metrics)) == expected, timeout=30)

    # another collector holds the GC lease: the run is refused and counted as busy
    lease = root / "regtui" / "gc-lease"
    lease.parent.mkdir(parents=True, exist_ok=True)
    lease.write_text(json.dumps({"holder": "another collector", "expires": time.time() + 600}))
    with httpx.Client(base_url=registry.url, timeout=60) as client:
        busy = client.post(gc, json={"dry_run": False}, headers=headers)
    assert busy.status_code == 429, busy.text
    later = scrape(metrics)
    assert moved(after, later, "regtui_gc_runs_total", outcome="busy") == 1
    assert moved(after, later, "regtui_gc_runs_total", outcome="completed") == 0
    assert moved(after, later, "regtui_gc_freed_bytes_total") == 0


def test_without_metrics_the_driver_is_not_wrapped(tmp_path: Path) -> None:
    plain = filesystem_storage(Config(storage=StorageConfig(root=tmp_path)))
    assert type(plain.driver) is FilesystemDriver  # nothing between the store and the driver
    metered = filesystem_storage(
        Config(
            storage=StorageConfig(root=tmp_path),
            http=HttpConfig(debug=DebugConfig(addr=("127.0.0.1", 0), prometheus_enabled=True)),
        )
    )
    assert isinstance(metered.driver, StorageDriver)
    assert driver_metrics(metered.driver) is not None


class GrownDriver(FilesystemDriver):
    """A driver with a method the base interface does not name, as a driver that gains one."""

    name = "grown"

    async def shout(self, path: str) -> str:
        return (await self.get_content(path)).decode().upper()

    async def names(self, path: str) -> AsyncIterator[str]:
        for child in sorted(await self.list(path)):
            yield child.rsplit("/", 1)[1]


def count(driver: StorageDriver, action: str, outcome: str = "ok") -> float:
    metrics = driver_metrics(driver)
    assert metrics is not None
    return metrics.actions.cell(metrics.driver, action, outcome).value


async def test_the_wrapper_times_whatever_the_driver_offers(tmp_path: Path) -> None:
    inner = GrownDriver(tmp_path)
    driver = metered_driver(inner)
    assert driver.name == "grown"
    assert isinstance(driver, CheapTouch) and isinstance(driver, DirectoryTimes)
    assert isinstance(driver, LocalFiles) and driver.local_path("/a") == inner.local_path("/a")
    assert not isinstance(driver, MultipartUploads)  # the filesystem has none

    await driver.put_content("/d/a", b"hello")
    assert await driver.get_content("/d/a") == b"hello"
    assert await driver.shout("/d/a") == "HELLO"  # type: ignore[attr-defined]
    assert [n async for n in driver.names("/d")] == ["a"]  # type: ignore[attr-defined]
    with pytest.raises(PathNotFoundError):
        await driver.stat("/d/missing")
    info = await driver.stat("/d/a")
    assert isinstance(info, FileInfo) and info.size == 5
    assert b"".join([block async for block in driver.reader("/d/a", 1)]) == b"ello"
    writer = await driver.writer("/d/b")
    assert isinstance(writer, FileWriter)
    await writer.write(b"12345")
    assert writer.size == 5
    await writer.commit()
    assert (tmp_path / "d" / "b").read_bytes() == b"12345"
    files = [i.path async for i in driver.list_files("/d")]  # type: ignore[attr-defined]
    assert sorted(files) == ["/d/a", "/d/b"]

    assert count(driver, "put_content") == 1
    assert count(driver, "get_content") == 1  # shout's own read is the driver's business
    assert count(driver, "shout") == 1
    assert count(driver, "names") == 1
    assert count(driver, "stat") == 1
    assert count(driver, "stat", "not_found") == 1
    assert count(driver, "reader") == 1
    assert count(driver, "writer") == 1
    assert count(driver, "writer.write") == 1
    assert count(driver, "writer.commit") == 1
    assert count(driver, "list_files") == 1
