"""The pull-through cache's pure parts: upstream names, challenges, the schedule's document."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime

from embedded_registry.config import DEFAULT_PROXY_TTL, ProxyConfig, load_config
from embedded_registry.proxy.schedule import BLOB, MANIFEST, STATE_NAME, Schedule
from embedded_registry.proxy.upstream import Upstream, parse_challenge


def test_docker_hub_names_as_docker_spells_them() -> None:
    hub = Upstream(ProxyConfig(remoteurl="https://registry-1.docker.io", namespace="hub"))
    assert hub.remote_name("hub/busybox") == "library/busybox"
    assert hub.remote_name("hub/library/busybox") == "library/busybox"
    assert hub.remote_name("hub/bitnami/redis") == "bitnami/redis"
    # Distribution's proxy section: the name as the client sent it (docker adds library/).
    whole = Upstream(ProxyConfig(remoteurl="https://registry-1.docker.io"))
    assert whole.remote_name("library/busybox") == "library/busybox"
    other = Upstream(ProxyConfig(remoteurl="https://ghcr.io", namespace="gh"))
    assert other.remote_name("gh/busybox") == "busybox"


def test_challenges() -> None:
    bearer = parse_challenge(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/busybox:pull"'
    )
    assert bearer is not None and bearer.scheme == "bearer"
    assert bearer.params["realm"] == "https://auth.docker.io/token"
    assert bearer.params["service"] == "registry.docker.io"
    basic = parse_challenge('Basic realm="Registry Realm"')
    assert basic is not None and basic.scheme == "basic"


def test_the_schedule_reads_and_writes_distributions_document() -> None:
    """Distribution writes Go times with nanoseconds; entries survive a reload."""
    stored: dict[str, bytes] = {
        STATE_NAME: json.dumps(
            {
                "library/busybox@sha256:" + "a" * 64: {
                    "Key": "library/busybox@sha256:" + "a" * 64,
                    "ExpiryData": "2031-01-02T03:04:05.123456789Z",
                    "EntryType": 1,
                },
                "bad key": {"Key": "bad key", "ExpiryData": "2031-01-02T03:04:05Z", "EntryType": 0},
            }
        ).encode()
    }

    async def read(name: str) -> bytes | None:
        return stored.get(name)

    async def write(name: str, data: bytes) -> None:
        stored[name] = data

    async def scenario() -> Schedule:
        schedule = Schedule(read, write)
        await schedule.load()
        schedule.add(BLOB, "team/app", "sha256:" + "b" * 64, 60)
        await schedule.close()
        again = Schedule(read, write)
        await again.load()
        return again

    reloaded = asyncio.run(scenario())
    entries = reloaded.entries
    assert set(entries) == {"library/busybox@sha256:" + "a" * 64, "team/app@sha256:" + "b" * 64}
    assert entries["library/busybox@sha256:" + "a" * 64].kind == MANIFEST
    expected = datetime(2031, 1, 2, 3, 4, 5, 123456, tzinfo=UTC).timestamp()
    assert abs(entries["library/busybox@sha256:" + "a" * 64].expiry - expected) < 1e-3
    assert 55 < entries["team/app@sha256:" + "b" * 64].expiry - time.time() <= 60


def test_the_proxy_section_from_the_environment_as_distribution_reads_it() -> None:
    env = {
        "REGISTRY_PROXY_REMOTEURL": "https://registry-1.docker.io/",
        "REGISTRY_PROXY_USERNAME": "me",
        "REGISTRY_PROXY_PASSWORD": "secret",
    }
    (proxy,) = load_config(env=env).proxies
    assert proxy == ProxyConfig(
        remoteurl="https://registry-1.docker.io", username="me", password="secret"
    )
    assert proxy.ttl == DEFAULT_PROXY_TTL == 168 * 3600
    (short,) = load_config(env={**env, "REGISTRY_PROXY_TTL": "90m"}).proxies
    assert short.ttl == 5400
    assert load_config(env={}).proxies == ()
