"""The retention log and "run now" are administrative, like the other extension endpoints:
anonymous callers are refused, a user who may push is refused, an administrator gets in, and a
refused "run now" deletes nothing."""

from __future__ import annotations

from pathlib import Path

import bcrypt
import httpx

from tests.helpers.images import make_image, push_image
from tests.helpers.servers import bundled_registry
from tui.client import ext
from tui.imagegen import OCI_MANIFEST

ALICE = ("alice", "wonderland")  # an administrator
BOB = ("bob", "builder")  # a user who may push and pull, not administer


def _htpasswd(path: Path) -> Path:
    path.write_text(
        "".join(
            f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()}\n"
            for user, password in (ALICE, BOB)
        )
    )
    return path


def test_only_administrators_read_the_log_and_run_retention(tmp_path: Path) -> None:
    config = {
        "auth": {"htpasswd": {"realm": "regtui", "path": str(_htpasswd(tmp_path / "htpasswd"))}},
        "regtui": {
            "extensions": {"admins": ["alice"]},
            # a policy that would delete every tag (the schedule only plans: dryrun)
            "retention": {"rules": {"keep_tags": "^nothing$"}, "interval": "24h", "dryrun": True},
        },
    }
    with bundled_registry(tmp_path / "root", config=config) as registry:
        push_image(registry.url, "app", "v1", make_image([{"a": b"a" * 100}]), auth=ALICE)
        with httpx.Client(base_url=registry.url) as anonymous:
            assert anonymous.get(ext.RETENTION_PATH).status_code == 401
            assert anonymous.post(ext.RETENTION_PATH, json={}).status_code == 401
        with httpx.Client(base_url=registry.url, auth=BOB) as bob:
            for response in (bob.get(ext.RETENTION_PATH), bob.post(ext.RETENTION_PATH, json={})):
                assert response.status_code == 403, response.text
                assert response.json()["errors"][0]["code"] == "DENIED"
        with httpx.Client(base_url=registry.url, auth=ALICE) as alice:
            log = alice.get(ext.RETENTION_PATH)
            assert log.status_code == 200, log.text
            assert log.json()["configured"]["interval_seconds"] == 24 * 3600
            # bob's "run now" never ran (a scheduled tick may have, 5 s after the start)
            assert [r for r in log.json()["runs"] if r["trigger"] == "request"] == []
            bad = alice.get(f"{ext.RETENTION_PATH}?n=0")
            assert bad.status_code == 400
            run = alice.post(ext.RETENTION_PATH, json={"dry_run": True})
            assert run.status_code == 200, run.text
            assert run.json()["trigger"] == "request" and run.json()["planned"]["tags_going"] == 1
            assert alice.get(ext.RETENTION_PATH).json()["runs"][0]["id"] == run.json()["id"]
            deleting = alice.post(ext.RETENTION_PATH, json={"dry_run": False})
            assert deleting.status_code == 403  # dryrun: true in the config is the last word
            kept = alice.get("/v2/app/manifests/v1", headers={"Accept": OCI_MANIFEST})
            assert kept.status_code == 200
