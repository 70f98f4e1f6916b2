"""The tests are hermetic: the developer's settings reach neither a test nor a server it starts.

The autouse fixture in ``tests/conftest.py`` removes ``REGTUI_*`` and ``REGISTRY_*`` and points
``HOME``, ``DOCKER_CONFIG`` and ``XDG_*`` at a temporary home; ``tests/helpers/servers.py``
starts servers without ``REGTUI_*``/``REGISTRY_*`` even when a test set them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.helpers.images import make_image, push_image
from tests.helpers.servers import bundled_registry, distribution_registry

pytestmark = pytest.mark.timeout(120)
PYTEST = (sys.executable, "-m", "pytest", "-q", "-o", "addopts=", "-p", "no:cacheprovider")
FIXTURE_AS_PLUGIN = ("-p", "tests.conftest")  # the fixture under test
WORKTREE = Path(__file__).resolve().parents[2]

INNER_TEST = """
import json, os
from pathlib import Path
from tui.client.auth import default_docker_config, resolve_credentials

def test_inner():
    # REGTUI_ADMIN_DIR is the one the fixtures set themselves: the session's own directory.
    leaked = sorted(
        n for n in os.environ
        if n.startswith(("REGTUI_", "REGISTRY_")) and n != "REGTUI_ADMIN_DIR"
    )
    assert leaked == [], leaked
    outer_home = os.environ["OUTER_HOME"]
    assert not os.environ["REGTUI_ADMIN_DIR"].startswith(outer_home)
    assert os.environ["HOME"] != outer_home
    for name in ("DOCKER_CONFIG", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME"):
        assert not os.environ[name].startswith(outer_home), name
    assert not default_docker_config().exists()
    assert resolve_credentials("127.0.0.1:5000") is None
"""


def test_the_autouse_fixture_hides_the_developers_settings(tmp_path: Path) -> None:
    """A pytest run whose environment carries a developer's settings sees none of them."""
    outer_home = tmp_path / "developer"
    docker = outer_home / ".docker"
    docker.mkdir(parents=True)
    secret = "ZGV2OmRldi1zZWNyZXQ="  # base64 of dev:dev-secret
    (docker / "config.json").write_text(json.dumps({"auths": {"127.0.0.1:5000": {"auth": secret}}}))
    inner = tmp_path / "test_inner.py"
    inner.write_text(INNER_TEST)
    env = {
        **os.environ,
        "HOME": str(outer_home),
        "OUTER_HOME": str(outer_home),
        "DOCKER_CONFIG": str(docker),
        "XDG_DATA_HOME": str(outer_home / "data"),
        "REGTUI_USERNAME": "dev",
        "REGTUI_PASSWORD": "dev-secret",
        "REGTUI_ADMIN_DIR": str(outer_home / "admin"),
        "REGISTRY_HTTP_ADDR": "127.0.0.1:9",
        "PYTHONPATH": str(WORKTREE),
    }
    done = subprocess.run(
        [*PYTEST, *FIXTURE_AS_PLUGIN, "--rootdir", str(tmp_path), str(inner)],
        cwd=WORKTREE,
        env=env,
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout


@pytest.mark.interop
def test_servers_do_not_inherit_registry_or_regtui_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Set in the test's own environment, Distribution's overrides would move the address and
    turn deletes off; the servers the helpers start ignore them."""
    monkeypatch.setenv("REGISTRY_HTTP_ADDR", "127.0.0.1:9")
    monkeypatch.setenv("REGISTRY_STORAGE_DELETE_ENABLED", "false")
    monkeypatch.setenv("REGTUI_CONFIG", str(tmp_path / "nowhere.yml"))
    image = make_image([{"f": b"x"}])
    for start in (bundled_registry, distribution_registry):
        with start(tmp_path / start.__name__) as running:
            assert not running.url.endswith(":9")
            digest = push_image(running.url, "app", "v1", image)
            response = httpx.delete(f"{running.url}/v2/app/manifests/{digest}")
            assert response.status_code == 202, (start.__name__, response.text)
