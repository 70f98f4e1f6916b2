"""Two replicas behind Debian's nginx (``proxy_next_upstream error timeout http_503``): when one's
health check fails it answers 503 and every request lands on the other; when the check passes
again, it takes traffic again. Each replica serves its own storage with its own tag, so the
answer names the replica that served it."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.helpers.servers import bundled_registry, nginx_proxy
from tests.server.test_config_serving import seed_image
from tests.server.test_health import wait_for

pytestmark = pytest.mark.timeout(120)


def served_by(url: str, rounds: int = 20) -> list[str]:
    """Which replica answered each of ``rounds`` tag listings through the proxy."""
    answers = []
    with httpx.Client(timeout=10) as client:
        for _ in range(rounds):
            response = client.get(f"{url}/v2/app/tags/list")
            assert response.status_code == 200, response.text
            answers.extend(response.json()["tags"])
    return answers


def test_traffic_leaves_the_unhealthy_replica_and_comes_back(tmp_path: Path) -> None:
    downs = {name: tmp_path / f"down-{name}" for name in ("a", "b")}
    with (
        bundled_registry(
            tmp_path / "a",
            config={"health": {"file": [{"file": str(downs["a"]), "interval": "100ms"}]}},
        ) as a,
        bundled_registry(
            tmp_path / "b",
            config={"health": {"file": [{"file": str(downs["b"]), "interval": "100ms"}]}},
        ) as b,
    ):
        seed_image(a.root, tag="a")
        seed_image(b.root, tag="b")
        with nginx_proxy(tmp_path / "nginx", [a, b], next_upstream=True) as proxy:
            assert set(served_by(proxy.url)) == {"a", "b"}  # round robin while both are well

            downs["a"].write_text("")  # replica a goes out
            wait_for(lambda: httpx.get(f"{a.url}/v2/").status_code == 503)
            assert served_by(proxy.url) == ["b"] * 20  # no 503 reaches the client

            downs["a"].unlink()  # a comes back by itself...
            wait_for(lambda: httpx.get(f"{a.url}/v2/").status_code == 200)
            # ...and nginx tries it again after fail_timeout (1 s, counted in whole seconds)
            wait_for(lambda: set(served_by(proxy.url, rounds=4)) == {"a", "b"}, timeout=10)

            downs["b"].write_text("")  # now b goes out
            wait_for(lambda: httpx.get(f"{b.url}/v2/").status_code == 503)
            assert served_by(proxy.url) == ["a"] * 20


def test_a_replica_whose_storage_goes_is_dropped(tmp_path: Path) -> None:
    """The issue's case: stop one replica's storage (its volume goes) and watch the traffic
    move to the other."""
    check = {"storagedriver": {"enabled": True, "interval": "100ms", "threshold": 2}}
    with (
        bundled_registry(tmp_path / "a", config={"health": check}) as a,
        bundled_registry(tmp_path / "b", config={"health": check}) as b,
    ):
        seed_image(a.root, tag="a")
        seed_image(b.root, tag="b")
        with nginx_proxy(tmp_path / "nginx", [a, b], next_upstream=True) as proxy:
            assert set(served_by(proxy.url)) == {"a", "b"}
            away = tmp_path / "a-away"
            a.root.rename(away)
            wait_for(lambda: httpx.get(f"{a.url}/v2/").status_code == 503)
            assert served_by(proxy.url) == ["b"] * 20
            away.rename(a.root)
            wait_for(lambda: httpx.get(f"{a.url}/v2/").status_code == 200)
            wait_for(lambda: set(served_by(proxy.url, rounds=4)) == {"a", "b"}, timeout=10)
