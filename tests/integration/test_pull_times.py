"""Pull times and scheduled retention, with skopeo pushing and pulling real images.

The bundled registry records a manifest GET (by tag or digest) as a pull, in memory, and writes
the times in batches and at shutdown; ``regtui.retention`` runs the prune planner on its own
schedule, then GC, and logs each run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.images import Image, make_image, push_image, write_oci_layout
from tests.helpers.servers import RunningRegistry, bundled_registry, require_tool
from tui.imagegen import PushError, push_blob, push_manifest

pytestmark = pytest.mark.interop

EXT_TAGS = "/v2/{}/_regtui/tags"
RETENTION = "/v2/_regtui/ext/retention"
NO_FLUSH = {"REGTUI_PULL_FLUSH_INTERVAL": "3600"}
"""Only the shutdown writes the pull times: what a restart finds was flushed at exit."""


def skopeo(*args: str) -> None:
    binary = require_tool("skopeo")
    result = subprocess.run(
        [binary, *args], capture_output=True, text=True, timeout=180, check=False
    )
    assert result.returncode == 0, f"skopeo {' '.join(args)} failed:\n{result.stderr}"


def skopeo_push(registry: RunningRegistry, tmp: Path, repo: str, tag: str, image: Image) -> None:
    layout = write_oci_layout(tmp / f"layout-{repo.replace('/', '_')}-{tag}", image, tag=tag)
    skopeo(
        "copy",
        "--dest-tls-verify=false",
        f"oci:{layout}:{tag}",
        f"docker://{registry.host}/{repo}:{tag}",
    )


def skopeo_pull(registry: RunningRegistry, tmp: Path, ref: str) -> Path:
    out = tmp / f"pulled-{ref.replace('/', '_').replace(':', '_').replace('@', '_')}"
    skopeo("copy", "--src-tls-verify=false", f"docker://{registry.host}/{ref}", f"dir:{out}")
    return out


def tag_times(registry: RunningRegistry, repo: str) -> dict[str, dict[str, Any]]:
    response = httpx.get(f"{registry.url}{EXT_TAGS.format(repo)}", timeout=30)
    assert response.status_code == 200, response.text
    return {t["tag"]: t for t in response.json()["tags"]}


def image(name: str, size: int = 4000) -> Image:
    return make_image([{f"{name}/data": name.encode() * (size // len(name) + 1)}])


def push_acknowledged(client: httpx.Client, repo: str, tag: str, item: Image) -> float:
    """Push as a client does: a push that meets GC may be refused with MANIFEST_BLOB_UNKNOWN
    (its blob was swept after its HEAD; nothing was acknowledged) and is pushed again. When
    the registry acknowledged the manifest."""
    for _ in range(5):
        try:
            push_image(client, repo, tag, item)
        except PushError as exc:
            if "MANIFEST_BLOB_UNKNOWN" not in str(exc):
                raise
            continue
        return time.time()
    raise AssertionError(f"{repo}:{tag} refused 5 times in a row")


def regtui_cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tui.cli", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    require_tool("skopeo")
    return tmp_path


def test_skopeo_pulls_are_recorded_batched_and_survive_a_restart(tmp: Path) -> None:
    root = tmp / "root"
    with bundled_registry(root, env=NO_FLUSH) as registry:
        skopeo_push(registry, tmp, "team/app", "pulled", image("a"))
        skopeo_push(registry, tmp, "team/app", "headed", image("b"))
        skopeo_push(registry, tmp, "team/app", "by-digest", image("c"))
        before = datetime.now(UTC)
        skopeo_pull(registry, tmp, "team/app:pulled")
        digest = tag_times(registry, "team/app")["by-digest"]["digest"]
        skopeo_pull(registry, tmp, f"team/app@{digest}")
        # A HEAD (what clients do to see whether a tag moved) is no pull.
        head = httpx.head(
            f"{registry.url}/v2/team/app/manifests/headed",
            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        )
        assert head.status_code == 200
        served = tag_times(registry, "team/app")
        # Nothing was written on the request path: the times are in memory only so far.
        assert not (root / "regtui" / "pulled").exists()
        pulled = datetime.fromisoformat(served["pulled"]["pulled"].replace("Z", "+00:00"))
        assert before.timestamp() - 1 <= pulled.timestamp() <= time.time() + 1
        assert served["by-digest"]["pulled"] is not None
        assert served["headed"]["pulled"] is None
        assert served["headed"]["pushed"] is not None
        long_json = regtui_cli("tags", "--long", "--json", f"{registry.host}/team/app")
        assert long_json.returncode == 0, long_json.stderr
        manifests = {m["tag"]: m for m in json.loads(long_json.stdout)["manifests"]}
        assert manifests["pulled"]["pulled"] == served["pulled"]["pulled"]
        assert manifests["headed"]["pulled"] is None
    # SIGTERM: the shutdown wrote them, once, to the storage.
    assert (root / "regtui" / "pulled" / "team" / "app" / "_pulled.json").is_file()
    with bundled_registry(root, env=NO_FLUSH) as again:
        after = tag_times(again, "team/app")
        assert after["pulled"]["pulled"] == served["pulled"]["pulled"]
        assert after["by-digest"]["pulled"] == served["by-digest"]["pulled"]
        assert after["headed"]["pulled"] is None


def retention_config(rules: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "version": 0.1,
        "storage": {
            "delete": {"enabled": True},
            "maintenance": {"gc": {"graceperiod": "2s"}, "uploadpurging": {"enabled": False}},
        },
        "regtui": {"retention": {"rules": rules, "interval": "1s", **extra}},
    }


def runs(registry: RunningRegistry) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{registry.url}{RETENTION}?n=200", headers=registry.admin_headers(), timeout=30
    )
    assert response.status_code == 200, response.text
    return list(response.json()["runs"])


def wait_for_run(registry: RunningRegistry, done: Any, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for run in runs(registry):
            if done(run):
                return run
        time.sleep(0.3)
    raise AssertionError(f"no such retention run in {timeout} s:\n{registry.log()}")


def manifest_status(registry: RunningRegistry, repo: str, tag: str) -> int:
    return httpx.head(
        f"{registry.url}/v2/{repo}/manifests/{tag}",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    ).status_code


def test_pulled_within_keeps_the_pulled_image_and_deletes_the_unpulled_one(tmp: Path) -> None:
    """Tags pushed more than 4 s ago go unless pulled within the hour: the policy of harbor
    #18479's fix (fresh pushes are not deleted before anyone could pull them)."""
    rules = {"pulled_within": "1h", "delete_older_than": "4s", "by": "pushed"}
    with bundled_registry(tmp / "root", config=retention_config(rules)) as registry:
        kept, doomed = image("kept"), image("doomed")
        skopeo_push(registry, tmp, "app", "pulled", kept)
        skopeo_push(registry, tmp, "app", "unpulled", doomed)
        skopeo_pull(registry, tmp, "app:pulled")
        run = wait_for_run(registry, lambda r: r.get("planned", {}).get("tags_going"))
        assert [t["tag"] for t in run["plan"]["repositories"][0]["tags_going"]] == ["unpulled"]
        going = run["plan"]["repositories"][0]["tags_going"][0]
        assert going["reasons"] == ["older than 4s (by pushed) (never pulled)"]
        staying = run["plan"]["repositories"][0]["tags_staying"][0]
        assert staying["tag"] == "pulled" and staying["reasons"] == ["pulled_within 1h"]
        assert [a["action"] for a in run["applied"]] == ["delete"]
        assert manifest_status(registry, "app", "unpulled") == 404
        assert manifest_status(registry, "app", "pulled") == 200
        skopeo_pull(registry, tmp, "app:pulled")  # still whole
        doomed_bytes = sum(len(b.data) for b in (doomed.manifest, *doomed.blobs()))
        assert run["gc"]["bytes_freed"] == run["planned"]["bytes_freed"] == doomed_bytes


def test_dry_run_only_reports(tmp: Path) -> None:
    rules = {"keep_newest_pulled": 1, "delete_older_than": "1s", "by": "pushed"}
    config = retention_config(rules, dryrun=True)
    with bundled_registry(tmp / "root", config=config) as registry:
        skopeo_push(registry, tmp, "app", "one", image("one"))
        skopeo_push(registry, tmp, "app", "two", image("two"))
        skopeo_pull(registry, tmp, "app:two")
        run = wait_for_run(registry, lambda r: r.get("planned", {}).get("tags_going") == 1)
        assert run["dry_run"] is True and "applied" not in run and "gc" not in run
        going = run["plan"]["repositories"][0]["tags_going"]
        assert [t["tag"] for t in going] == ["one"]
        assert manifest_status(registry, "app", "one") == 200
        refused = httpx.post(
            f"{registry.url}{RETENTION}", json={"dry_run": False}, headers=registry.admin_headers()
        )
        assert refused.status_code == 403, refused.text
        log = regtui_cli("retention", registry.host)
        assert log.returncode == 0, log.stderr
        assert "dry run" in log.stdout and "1 tag" in log.stdout


def test_scheduled_retention_frees_the_planned_bytes_while_pushes_go_on(tmp: Path) -> None:
    """Old images go by schedule while four clients keep pushing new ones, and a slow one
    has its blobs in before the run and its manifest after it; every push that was
    acknowledged pulls back whole afterwards, and GC freed exactly what the plan said."""
    rules = {"keep_tags": "^new-.*", "delete_older_than": "3s", "by": "pushed"}
    old = [image(f"old{i}", 50000 + i) for i in range(6)]
    with bundled_registry(tmp / "root") as first:  # no retention yet
        for i, item in enumerate(old):
            push_image(first.url, f"old/r{i % 2}", f"v{i}", item)
    time.sleep(3.5)  # all of them older than the policy's 3 s at the first run
    config = retention_config(rules)
    config["regtui"]["retention"]["interval"] = "6s"  # the first run 5 s in: pushes go on
    # GC's grace period protects the pushes in flight (blobs in, manifest not yet): a client
    # that takes longer than it between its blobs and its manifest loses its blobs to the
    # run's GC (which then frees more than the plan). The deleted images go at once anyway:
    # nothing is pushed where they were.
    config["storage"]["maintenance"]["gc"]["graceperiod"] = "1h"
    with bundled_registry(tmp / "root", config=config) as registry:
        pushed: list[tuple[str, str, Image, float]] = []
        failures: list[BaseException] = []
        stop = threading.Event()
        lock = threading.Lock()

        def pusher(worker: int) -> None:
            try:
                with httpx.Client(base_url=registry.url, timeout=60) as client:
                    n = 0
                    while not stop.is_set():
                        item = image(f"w{worker}n{n}", 3000)
                        acked = push_acknowledged(client, f"new/w{worker}", f"new-{n}", item)
                        with lock:
                            pushed.append((f"new/w{worker}", f"new-{n}", item, acked))
                        n += 1
            except BaseException as exc:  # a failed push fails the test below
                failures.append(exc)

        # One push is slow (a client under load): its blobs go in before the run, its
        # manifest after it. The run's GC must leave them alone (a push in flight).
        slow = image("slow", 3000)
        with httpx.Client(base_url=registry.url, timeout=60) as client:
            for blob in slow.blobs():
                push_blob(client, "new/slow", blob)
        threads = [threading.Thread(target=pusher, args=(w,)) for w in range(4)]
        for thread in threads:
            thread.start()
        try:
            run = wait_for_run(registry, lambda r: "gc" in r)
            released = _stamp(run["lease_released"])
            deadline = time.monotonic() + 60  # pushes go on past the run's end
            while not any(acked > released for *_, acked in pushed) and not failures:
                assert time.monotonic() < deadline, "no push acknowledged after the run"
                time.sleep(0.1)
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=60)
        assert not failures, failures
        with httpx.Client(base_url=registry.url, timeout=60) as client:
            push_manifest(client, "new/slow", "new-slow", slow.manifest)  # not refused
        pushed.append(("new/slow", "new-slow", slow, time.time()))
        assert run["planned"]["manifests_deleted"] == 6
        assert run["gc"]["bytes_freed"] == run["planned"]["bytes_freed"]
        old_bytes = sum(len(b.data) for item in old for b in (item.manifest, *item.blobs()))
        assert run["planned"]["bytes_freed"] == old_bytes
        # The run happened in the midst of the pushes.
        taken = _stamp(run["lease_taken"])
        assert any(acked < taken for *_, acked in pushed)
        assert any(acked > released for *_, acked in pushed)
        with httpx.Client(base_url=registry.url, timeout=60) as client:
            for repo, tag, item, _ in pushed:
                manifest = client.get(
                    f"/v2/{repo}/manifests/{tag}",
                    headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
                )
                assert manifest.status_code == 200, (repo, tag)
                assert manifest.content == item.manifest.data
                for blob in item.blobs():
                    got = client.get(f"/v2/{repo}/blobs/{blob.digest}")
                    assert got.status_code == 200 and got.content == blob.data, (repo, blob)
            for i in range(6):
                assert manifest_status(registry, f"old/r{i % 2}", f"v{i}") == 404


def _stamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_malformed_retention_config_is_refused_at_start(tmp: Path) -> None:
    for retention, words in (
        ({"rules": {"keep_newst": 1}}, "unknown policy key: keep_newst"),
        ({"rules": {"keep_newest": 1}, "intervall": "1h"}, "regtui.retention.intervall"),
        ({"policy": str(tmp / "missing.yml")}, "regtui.retention.policy"),
        ({"rules": {"include": "x"}}, "would delete nothing"),
    ):
        config = {"version": 0.1, "regtui": {"retention": retention}}
        path = tmp / "config.yml"
        path.write_text(json.dumps(config))
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "embedded_registry",
                "--root",
                str(tmp / "r"),
                "--config",
                str(path),
                "--addr",
                "127.0.0.1:0",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode != 0 and words in result.stderr, (retention, result.stderr)
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_prune_root_reads_the_stored_pull_times(tmp: Path) -> None:
    """Offline, ``regtui prune --root`` plans from the pull times the server wrote at exit
    (and applies with the code the scheduled retention runs)."""
    root = tmp / "root"
    with bundled_registry(root, env=NO_FLUSH) as registry:
        skopeo_push(registry, tmp, "app", "pulled", image("p"))
        skopeo_push(registry, tmp, "app", "unpulled", image("u"))
        skopeo_pull(registry, tmp, "app:pulled")
    result = regtui_cli(
        "prune", "--root", str(root), "--pulled-within", "1h", "--yes", "--json", "--gc"
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    repo = report["plan"]["repositories"][0]
    assert [t["tag"] for t in repo["tags_going"]] == ["unpulled"]
    assert [(t["tag"], t["reasons"]) for t in repo["tags_staying"]] == [
        ("pulled", ["pulled_within 1h"])
    ]
    assert [(a["action"], a["tags"]) for a in report["applied"]] == [("delete", ["unpulled"])]
    with bundled_registry(root) as again:
        assert manifest_status(again, "app", "pulled") == 200
        assert manifest_status(again, "app", "unpulled") == 404


def test_scheduled_retention_keeps_old_images_pushed_again_during_the_run(tmp: Path) -> None:
    """The hard case: while a run deletes old images, clients push the very same images again
    under new tags (into the same repositories, and into others): every push that was
    acknowledged pulls back whole; a digest that gained a tag since the plan is only untagged."""
    rules = {"keep_tags": "^new-.*", "delete_older_than": "3s", "by": "pushed"}
    old = [image(f"again{i}", 40000 + i) for i in range(6)]
    with bundled_registry(tmp / "root") as first:
        for i, item in enumerate(old):
            push_image(first.url, f"old/r{i % 2}", f"v{i}", item)
    time.sleep(3.5)
    with bundled_registry(tmp / "root", config=retention_config(rules)) as registry:
        pushed: list[tuple[str, str, Image]] = []
        failures: list[BaseException] = []
        stop = threading.Event()
        lock = threading.Lock()

        def pusher(worker: int) -> None:
            try:
                with httpx.Client(base_url=registry.url, timeout=60) as client:
                    n = 0
                    while not stop.is_set():
                        i = (worker + n) % len(old)
                        repo = f"old/r{i % 2}" if worker % 2 == 0 else f"copies/w{worker}"
                        tag = f"new-{worker}-{n}"
                        push_acknowledged(client, repo, tag, old[i])
                        with lock:
                            pushed.append((repo, tag, old[i]))
                        n += 1
                        time.sleep(0.05)
            except BaseException as exc:  # a failed push fails the test below
                failures.append(exc)

        threads = [threading.Thread(target=pusher, args=(w,)) for w in range(4)]
        for thread in threads:
            thread.start()
        try:
            run = wait_for_run(registry, lambda r: r.get("planned", {}).get("tags_going"))
        finally:
            time.sleep(1.0)
            stop.set()
            for thread in threads:
                thread.join(timeout=60)
        assert not failures, failures
        assert not run.get("error") and not run.get("failed"), run
        assert len(pushed) >= 8
        with httpx.Client(base_url=registry.url, timeout=60) as client:
            for repo, tag, item in pushed:
                manifest = client.get(
                    f"/v2/{repo}/manifests/{tag}",
                    headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
                )
                assert manifest.status_code == 200, (repo, tag, run)
                assert manifest.content == item.manifest.data
                for blob in item.blobs():
                    got = client.get(f"/v2/{repo}/blobs/{blob.digest}")
                    assert got.status_code == 200 and got.content == blob.data, (repo, blob)
        # The planned tags went (the digests that gained a new tag meanwhile only untagged).
        for i in range(6):
            assert manifest_status(registry, f"old/r{i % 2}", f"v{i}") == 404
