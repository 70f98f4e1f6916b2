"""GC removes nothing it is no longer entitled to remove, on a filesystem root.

* A ``regtui gc --root`` stopped (SIGSTOP) between its mark and its sweep for longer than its
  lease, while the serving registry takes a push of the image it was about to sweep, removes
  nothing once resumed and says it lost its lease.
* A sweep whose lease another collector took over stops before its next removal (the lease is
  read again in the storage right before each one).
* A blob touched by a HEAD between the sweep's first check and its rename aside is put back.
* A blob written in the same (whole) second as its repository's last tag write is kept: it
  may belong to a push whose manifest has not come yet.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from embedded_registry.gc import collect_garbage, decide, execute
from embedded_registry.gc.scan import scan
from embedded_registry.storage.driver.filesystem import FilesystemDriver
from embedded_registry.storage.lease import LEASE_PATH, LeaseLost, acquire
from embedded_registry.storage.paths import Layout
from tests.helpers.images import Image, make_image, push_image
from tests.helpers.layout import LayoutWriter
from tests.helpers.pause import LEASE_TTL_ENV, start_paused_gc
from tests.helpers.servers import bundled_registry

pytestmark = pytest.mark.timeout(180)

HOURS = 3600.0
LEASE_SECONDS = 3.0


def _age(root: Path, seconds: float) -> None:
    then = time.time() - seconds
    for dirpath, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            os.utime(os.path.join(dirpath, name), (then, then))


def _assert_pulls(url: str, repo: str, tag: str, image: Image) -> None:
    with httpx.Client(base_url=url, timeout=30) as client:
        got = client.get(
            f"/v2/{repo}/manifests/{tag}", headers={"Accept": image.manifest.media_type}
        )
        assert got.status_code == 200, got.text
        assert got.content == image.manifest.data
        for blob in image.blobs():
            pulled = client.get(f"/v2/{repo}/blobs/{blob.digest}")
            assert pulled.status_code == 200, (blob.digest, pulled.text)
            assert pulled.content == blob.data


def test_a_gc_paused_past_its_lease_sweeps_no_acknowledged_image(tmp_path: Path) -> None:
    root = tmp_path / "root"
    image = make_image([{"etc/app": os.urandom(20_000)}, {"bin/app": b"pushed twice\n"}])
    with bundled_registry(root) as registry:
        push_image(registry.url, "app", "v1", image)
        assert httpx.delete(f"{registry.url}/v2/app/manifests/{image.digest}").status_code == 202
        gc, lines = start_paused_gc(
            ["--root", str(root), "--force", "--grace-period", "0"],
            "gc-sweep",
            {LEASE_TTL_ENV: str(LEASE_SECONDS)},
        )
        try:
            assert "removal(s) planned" in lines[-1], lines
            time.sleep(LEASE_SECONDS + 0.5)
            # The client finds every blob (HEAD 200), uploads nothing, and the manifest PUT is
            # acknowledged: the lease it waits for has run out.
            push_image(registry.url, "app", "v1", image)
            _assert_pulls(registry.url, "app", "v1", image)
        finally:
            gc.send_signal(signal.SIGCONT)
        _out, err = gc.communicate(timeout=60)
        _assert_pulls(registry.url, "app", "v1", image)
    assert gc.returncode != 0
    assert "regtui: error: " in err and "lost the GC lease before the sweep" in err, err
    assert "nothing was removed" in err, err
    # The registry's commit revoked the lease that had run out: whoever reads it sees so.
    lease = json.loads((root / LEASE_PATH.lstrip("/")).read_text())
    assert lease["revoked"] is True and lease["expires"] == 0


def test_a_sweep_stops_when_another_collector_took_the_lease(tmp_path: Path) -> None:
    """The lease in the storage names another holder (a collector whose clock said this one's
    lease was over): the sweep's next fence reads it and nothing more is removed."""
    root = tmp_path / "root"
    writer = LayoutWriter(root)
    writer.ensure()
    garbage = [writer.blob(f"garbage {n}\n".encode() * 100) for n in range(5)]
    _age(root / "docker", 2 * HOURS)
    driver = FilesystemDriver(root)

    async def run() -> None:
        lease = await acquire(driver, ttl=HOURS)
        snapshot = await scan(driver)
        decided = decide(
            snapshot, delete_untagged=False, remove_empty_repos=False, now=time.time(), grace=0
        )
        assert {r.digest for r in decided.removals if r.kind == "blob"} == set(garbage)
        # Another collector replaced the lease (the local clock alone says it is still held).
        await driver.put_content(
            LEASE_PATH, json.dumps({"holder": "another gc", "expires": time.time() + 60}).encode()
        )
        assert not lease.lost
        with pytest.raises(LeaseLost, match="now held by another gc") as lost:
            await execute(
                snapshot, decided.removals, decided.problems, time.time(), fence=lease.fence
            )
        assert "after 0 of 5 planned removal(s)" in str(lost.value)
        await lease.release()  # a lost lease is left to its new holder

    asyncio.run(run())
    for digest in garbage:
        assert Layout(root).blob_data(digest).exists()
    assert "another gc" in (root / LEASE_PATH.lstrip("/")).read_text()


def test_a_head_between_the_first_check_and_the_rename_aside_keeps_the_blob(
    tmp_path: Path,
) -> None:
    """``regtui gc --root`` stops right after its first check of a layer (its mtime is old) and
    before it renames the data aside; the serving registry answers a HEAD of that layer (which
    refreshes it) and a client would now skip its upload: the check after the rename must see
    the refresh and put the data back."""
    root = tmp_path / "root"
    image = make_image([{"etc/layer": os.urandom(10_000)}])
    layer = image.layers[0]
    with bundled_registry(root) as registry:
        push_image(registry.url, "app", "v1", image)
        assert httpx.delete(f"{registry.url}/v2/app/manifests/{image.digest}").status_code == 202
        _age(root / "docker", 2 * HOURS)
        hex_part = layer.digest.split(":", 1)[1]
        gc, lines = start_paused_gc(
            ["--root", str(root), "--force", "--json"], f"gc-sweep-rename@{hex_part}"
        )
        try:
            assert lines[-1].startswith("regtui: paused at gc-sweep-rename: "), lines
            assert f": {Layout(root).blob_data(layer.digest)} (pid " in lines[-1], lines
            head = httpx.head(f"{registry.url}/v2/app/blobs/{layer.digest}")
            assert head.status_code == 200
        finally:
            gc.send_signal(signal.SIGCONT)
        out, err = gc.communicate(timeout=60)
        assert gc.returncode == 0, err
        report = json.loads(out)
        assert report["refreshed_blobs"] == [layer.digest]
        pulled = httpx.get(f"{registry.url}/v2/app/blobs/{layer.digest}")
        assert pulled.status_code == 200 and pulled.content == layer.data
        # The rest of the deleted image went.
        assert not Layout(root).blob_data(image.config.digest).exists()


def test_a_blob_written_in_the_same_second_as_the_last_tag_write_is_kept(
    tmp_path: Path,
) -> None:
    """On S3 every time is a whole second: a layer finished in the second a tag of its
    repository was written may belong to a push whose manifest comes next. Equal times are
    "at or after the last commit": the blob and its link stay (a second later, they go)."""
    root = tmp_path / "root"
    writer = LayoutWriter(root)
    writer.ensure()
    body = writer.manifest("app", "tagged")
    tagged = writer.put("app", body, tag="v1")
    pending = writer.add_blob("app", b"uploaded for the next manifest\n" * 50)["digest"]
    assert isinstance(pending, str)
    layout = Layout(root)
    _age(root / "docker", 2 * HOURS)
    commit = float(int(time.time()) - 120)  # young (within the grace period), a whole second
    for path in (
        layout.tag_current_link("app", "v1"),
        layout.blob_data(pending),
        layout.layer_link("app", pending),
    ):
        os.utime(path, (commit, commit))

    dry = collect_garbage(root, dry_run=True, grace_period=HOURS)
    assert pending not in dry.eligible_blobs
    assert dry.kept_young_blobs == 1
    report = collect_garbage(root, grace_period=HOURS)
    assert report.eligible_blobs == []
    assert layout.blob_data(pending).exists() and layout.layer_link("app", pending).exists()
    assert layout.blob_data(tagged).exists()

    # One second older than the tag write: finished before that commit, so no push waits for
    # it any more, and it goes.
    for path in (layout.blob_data(pending), layout.layer_link("app", pending)):
        os.utime(path, (commit - 1, commit - 1))
    assert collect_garbage(root, grace_period=HOURS).eligible_blobs == [pending]
    assert not layout.blob_data(pending).exists()


def test_a_lease_that_ran_out_is_never_refreshed_and_a_replaced_one_is_lost(
    tmp_path: Path,
) -> None:
    """A refresh after the lease ran out fails although nobody rewrote the lease object (the
    replicas may have committed meanwhile); one after another process rewrote it fails too.
    A commit that finds a lease run out revokes it; a new collector then takes it."""
    from embedded_registry.storage.lease import CommitGuard, lease_holder

    root = tmp_path / "root"
    LayoutWriter(root).ensure()
    driver = FilesystemDriver(root)
    lease_file = root / LEASE_PATH.lstrip("/")

    async def run() -> None:
        stalled = await acquire(driver, ttl=0.4)
        await stalled.refresh()  # while held: extended
        await asyncio.sleep(0.5)  # longer than the lease, which nothing refreshes meanwhile
        untouched = lease_file.read_bytes()
        with pytest.raises(LeaseLost, match="ran out"):
            await stalled.refresh()
        assert lease_file.read_bytes() == untouched
        with pytest.raises(LeaseLost):
            await stalled.fence()
        await CommitGuard(driver).begin()  # a replica's commit: revokes the lease
        assert json.loads(lease_file.read_text())["revoked"] is True
        assert await lease_holder(driver) is None

        taken = await acquire(driver, ttl=HOURS)
        assert json.loads(lease_file.read_text())["holder"] == taken.holder
        await driver.put_content(
            LEASE_PATH, json.dumps({"holder": "other", "expires": time.time() + 60}).encode()
        )
        with pytest.raises(LeaseLost, match="replaced or revoked"):
            await taken.refresh()
        assert taken.lost
        await taken.release()
        assert json.loads(lease_file.read_text())["holder"] == "other"

    asyncio.run(run())
