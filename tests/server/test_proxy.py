"""The pull-through cache (``proxy`` / ``regtui.proxy``) against real upstreams: Debian's
docker-registry with htpasswd (and with token auth), skopeo pulling through the bundled
registry, and a front (``tests/helpers/upstream_front.py``) that records what the upstream is
asked and makes it fail, hang, lie or redirect.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.servers import (
    RunningRegistry,
    bundled_registry,
    distribution_registry,
    require_tool,
    server_env,
)
from tests.helpers.spec import ACCEPT_ALL
from tests.helpers.tokens import Signer, certificate, libtrust_kid, new_key, pem, token_server
from tests.helpers.upstream_front import upstream_front
from tui.imagegen import Image, Index, make_image, make_index, push_image

pytestmark = pytest.mark.timeout(240)

USER, PASSWORD = "alice", "wonderland"
V2 = Path("docker") / "registry" / "v2"


def htpasswd_config(tmp_path: Path) -> dict[str, Any]:
    require_tool("htpasswd")
    path = tmp_path / "htpasswd"
    line = subprocess.run(
        ["htpasswd", "-Bbn", USER, PASSWORD], capture_output=True, text=True, check=True
    ).stdout.strip()
    path.write_text(line + "\n")
    return {"auth": {"htpasswd": {"realm": "upstream", "path": str(path)}}}


@contextlib.contextmanager
def upstream(tmp_path: Path, name: str = "upstream") -> Iterator[RunningRegistry]:
    """Debian's docker-registry behind htpasswd."""
    with distribution_registry(tmp_path / name, config=htpasswd_config(tmp_path)) as registry:
        yield registry


def app_image(seed: str = "app") -> Image:
    return make_image(
        [{"etc/motd": f"hello from {seed}\n".encode()}, {"bin/app": bytes(range(256)) * 2000}]
    )


def multi_image() -> Index:
    return make_index(
        [
            make_image([{"arch": b"amd64"}], architecture="amd64"),
            make_image([{"arch": b"arm64"}], architecture="arm64"),
        ]
    )


def proxy_config(url: str, **extra: Any) -> dict[str, Any]:
    return {"proxy": {"remoteurl": url, "username": USER, "password": PASSWORD, **extra}}


def skopeo_pull(host: str, reference: str, destination: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            require_tool("skopeo"),
            "copy",
            "--src-tls-verify=false",
            f"docker://{host}/{reference}",
            f"oci:{destination}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def pulled_manifest_digest(layout: Path) -> str:
    index = json.loads((layout / "index.json").read_text())
    return str(index["manifests"][0]["digest"])


def revision_exists(root: Path, name: str, digest: str) -> bool:
    hex_part = digest.split(":", 1)[1]
    link = root / V2 / "repositories" / name / "_manifests" / "revisions" / "sha256" / hex_part
    return (link / "link").exists()


def layer_linked(root: Path, name: str, digest: str) -> bool:
    hex_part = digest.split(":", 1)[1]
    return (root / V2 / "repositories" / name / "_layers" / "sha256" / hex_part / "link").exists()


def stored_blobs(root: Path) -> set[str]:
    return {f"sha256:{p.parent.name}" for p in (root / V2 / "blobs").rglob("data")}


def error_code(response: httpx.Response) -> str:
    return str(response.json()["errors"][0]["code"])


# --- pulls: fetched once, then served from the storage ----------------------------------------


def test_first_pull_fetches_and_the_second_is_served_with_the_upstream_stopped(
    tmp_path: Path,
) -> None:
    image, index = app_image(), multi_image()
    with contextlib.ExitStack() as stack:
        up = stack.enter_context(upstream(tmp_path))
        push_image(up.url, "team/app", "v1", image, auth=(USER, PASSWORD))
        push_image(up.url, "library/multi", "v1", index, auth=(USER, PASSWORD))
        front = stack.enter_context(upstream_front(up.url))
        mirror = stack.enter_context(
            bundled_registry(tmp_path / "mirror", config=proxy_config(front.url))
        )
        first = skopeo_pull(mirror.host, "team/app:v1", tmp_path / "first")
        assert first.returncode == 0, first.stderr
        assert pulled_manifest_digest(tmp_path / "first") == image.digest
        multi = skopeo_pull(mirror.host, "library/multi:v1", tmp_path / "multi")
        assert multi.returncode == 0, multi.stderr
        for blob in image.blobs():
            assert len(front.requests("GET", f"/blobs/{blob.digest}")) == 1
        # The cache is the registry's storage: an ordinary repository, its blobs verified.
        assert revision_exists(mirror.root, "team/app", image.digest)
        assert {b.digest for b in image.blobs()} <= stored_blobs(mirror.root)
        catalog = httpx.get(f"{mirror.url}/v2/_catalog").json()["repositories"]
        assert catalog == ["library/multi", "team/app"]

        # A second pull while the upstream answers asks it for the tag only (HEAD).
        seen = len(front.seen)
        again = skopeo_pull(mirror.host, "team/app:v1", tmp_path / "again")
        assert again.returncode == 0, again.stderr
        assert {(s.method, s.path.split("/")[-2]) for s in front.seen[seen:]} <= {
            ("HEAD", "manifests"),
            ("GET", "v2"),
        }

        stack.pop_all().close()  # the upstream, its front and the mirror stop
    with bundled_registry(tmp_path / "mirror", config=proxy_config(front.url)) as mirror:
        for reference, layout in (("team/app:v1", "offline"), ("library/multi:v1", "offline2")):
            offline = skopeo_pull(mirror.host, reference, tmp_path / layout)
            assert offline.returncode == 0, offline.stderr
        assert pulled_manifest_digest(tmp_path / "offline") == image.digest
        by_digest = httpx.get(
            f"{mirror.url}/v2/team/app/manifests/{image.digest}", headers={"Accept": ACCEPT_ALL}
        )
        assert by_digest.status_code == 200
        # Nothing cached and nothing to ask: one clear OCI error.
        missing = httpx.get(f"{mirror.url}/v2/team/other/manifests/v1", timeout=60)
        assert missing.status_code in (502, 504)
        assert error_code(missing) == "UNAVAILABLE"
        assert "upstream" in missing.json()["errors"][0]["detail"]


def test_concurrent_pulls_of_one_blob_fetch_it_once(tmp_path: Path) -> None:
    image = make_image([{"big": bytes(range(256)) * 40000}])
    layer = image.layers[0]
    with (
        upstream(tmp_path) as up,
        upstream_front(up.url) as front,
        bundled_registry(tmp_path / "mirror", config=proxy_config(front.url)) as mirror,
    ):
        push_image(up.url, "team/big", "v1", image, auth=(USER, PASSWORD))
        head = httpx.head(f"{mirror.url}/v2/team/big/blobs/{layer.digest}", timeout=60)
        assert head.status_code == 200  # the upstream's answer: nothing fetched for a HEAD
        assert int(head.headers["Content-Length"]) == layer.size
        assert not front.requests("GET", f"/blobs/{layer.digest}")
        front.hang = 0.5  # every upstream answer waits: the pulls overlap
        url = f"{mirror.url}/v2/team/big/blobs/{layer.digest}"
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            bodies = list(pool.map(lambda _: httpx.get(url, timeout=60).content, range(6)))
        assert all(body == layer.data for body in bodies)
        assert len(front.requests("GET", f"/blobs/{layer.digest}")) == 1


def _first_bytes(
    url: str, count: int
) -> tuple[httpx.Client, httpx.Response, Iterator[bytes], bytes]:
    """A GET of ``url`` whose first ``count`` bytes are read (the response left open, the
    rest of its body in the iterator)."""
    client = httpx.Client(timeout=30)
    response = client.send(client.build_request("GET", url), stream=True)
    assert response.status_code == 200
    pieces = response.iter_raw(64 * 1024)
    got = b""
    while len(got) < count:
        got += next(pieces)
    return client, response, pieces, got


def test_a_first_pull_streams_the_blob_before_the_upstream_sent_all_of_it(tmp_path: Path) -> None:
    """The client gets the blob's first bytes while the upstream still holds back the rest
    (as Distribution's proxy streams); the whole blob is then stored, verified, and a second
    pull is served from the storage."""
    image = make_image([{"big": os.urandom(10 << 20)}])  # incompressible: a 10 MiB layer
    layer = image.layers[0]
    hold = threading.Event()
    with (
        upstream(tmp_path) as up,
        upstream_front(up.url, hold=hold, hold_after=4 << 20) as front,
        bundled_registry(tmp_path / "mirror", config=proxy_config(front.url)) as mirror,
    ):
        push_image(up.url, "team/big", "v1", image, auth=(USER, PASSWORD))
        url = f"{mirror.url}/v2/team/big/blobs/{layer.digest}"
        client, response, rest, got = _first_bytes(url, 1 << 20)
        try:
            assert int(response.headers["Content-Length"]) == layer.size
            assert response.headers["Docker-Content-Digest"] == layer.digest
            assert got == layer.data[: len(got)]  # before the upstream sent the rest
            assert layer.digest not in stored_blobs(mirror.root)
            hold.set()
            got += b"".join(rest)
        finally:
            hold.set()
            response.close()
            client.close()
        assert got == layer.data
        # the client's stream ends once the digest checked out; the commit follows at once
        assert _wait_for(lambda: layer.digest in stored_blobs(mirror.root))
        again = httpx.get(url, timeout=30)
        assert again.content == layer.data
        assert len(front.requests("GET", f"/blobs/{layer.digest}")) == 1


@pytest.mark.parametrize("corrupt", [None, "blob"])
def test_a_client_gone_mid_stream_leaves_a_verified_blob_or_nothing(
    tmp_path: Path, corrupt: str | None
) -> None:
    """The first puller disconnects half-way: the fetch goes on; a blob that verifies is
    stored (the next pull asks the upstream nothing), one that does not leaves nothing."""
    image = make_image([{"big": os.urandom(10 << 20)}])  # incompressible: a 10 MiB layer
    layer = image.layers[0]
    hold = threading.Event()
    with (
        upstream(tmp_path) as up,
        upstream_front(up.url, hold=hold, hold_after=4 << 20, corrupt=corrupt) as front,
        bundled_registry(tmp_path / "mirror", config=proxy_config(front.url)) as mirror,
    ):
        push_image(up.url, "team/big", "v1", image, auth=(USER, PASSWORD))
        url = f"{mirror.url}/v2/team/big/blobs/{layer.digest}"
        try:
            client, response, _, _ = _first_bytes(url, 1 << 20)
            response.close()  # gone, mid-stream
            client.close()
        finally:
            hold.set()
        uploads = mirror.root / V2 / "repositories" / "team" / "big" / "_uploads"
        assert _wait_for(lambda: not uploads.exists() or not any(uploads.iterdir()))
        stored = layer.digest in stored_blobs(mirror.root)
        assert stored is (corrupt is None)
        assert "Traceback" not in mirror.log_path.read_text()
        if corrupt is None:
            assert httpx.get(url, timeout=30).content == layer.data
            assert len(front.requests("GET", f"/blobs/{layer.digest}")) == 1
        else:
            assert not layer_linked(mirror.root, "team/big", layer.digest)


def test_a_tag_moved_upstream_is_fetched_again(tmp_path: Path) -> None:
    first, second = app_image("one"), app_image("two")
    with (
        upstream(tmp_path) as up,
        bundled_registry(tmp_path / "mirror", config=proxy_config(up.url)) as mirror,
    ):
        push_image(up.url, "team/app", "v1", first, auth=(USER, PASSWORD))
        got = httpx.get(f"{mirror.url}/v2/team/app/manifests/v1", headers={"Accept": ACCEPT_ALL})
        assert got.headers["Docker-Content-Digest"] == first.digest
        push_image(up.url, "team/app", "v1", second, auth=(USER, PASSWORD))
        got = httpx.get(f"{mirror.url}/v2/team/app/manifests/v1", headers={"Accept": ACCEPT_ALL})
        assert got.headers["Docker-Content-Digest"] == second.digest
        tags = httpx.get(f"{mirror.url}/v2/team/app/tags/list").json()
        assert tags == {"name": "team/app", "tags": ["v1"]}


# --- writes: refused as registry:2 refuses them in proxy mode ---------------------------------


def _writes(url: str, digest: str) -> list[httpx.Response]:
    with httpx.Client(base_url=url, timeout=30) as client:
        return [
            client.post("/v2/team/app/blobs/uploads/"),
            client.put(
                "/v2/team/app/manifests/v2",
                content=b"{}",
                headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
            ),
            client.delete(f"/v2/team/app/manifests/{digest}"),
        ]


def test_pushes_and_deletes_are_refused_as_registry2_refuses_them(tmp_path: Path) -> None:
    """Debian's docker-registry (2.8) in proxy mode is the oracle: its proxy authenticates with
    tokens only, so the upstream here has no auth."""
    image = make_image([{"docker": b"schema2"}], oci=False)
    with (
        distribution_registry(tmp_path / "upstream") as up,
        bundled_registry(tmp_path / "mirror", config={"proxy": {"remoteurl": up.url}}) as mirror,
        distribution_registry(
            tmp_path / "registry2-cache", config={"proxy": {"remoteurl": up.url}}
        ) as registry2,
    ):
        push_image(up.url, "team/app", "v1", image)
        for cache in (mirror, registry2):  # both have the manifest cached
            pulled = httpx.get(
                f"{cache.url}/v2/team/app/manifests/v1", headers={"Accept": ACCEPT_ALL}
            )
            assert pulled.status_code == 200, (cache.url, pulled.text)
        ours = _writes(mirror.url, image.digest)
        theirs = _writes(registry2.url, image.digest)
        assert [r.status_code for r in ours] == [r.status_code for r in theirs] == [405] * 3
        assert [error_code(r) for r in ours] == [error_code(r) for r in theirs]
        assert {error_code(r) for r in ours} == {"UNSUPPORTED"}
        assert revision_exists(mirror.root, "team/app", image.digest)


# --- expiry -----------------------------------------------------------------------------------


def _wait_for(condition: Any, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def test_cached_content_expires_after_the_ttl(tmp_path: Path) -> None:
    image = app_image()
    with (
        upstream(tmp_path) as up,
        bundled_registry(tmp_path / "mirror", config=proxy_config(up.url, ttl="2s")) as mirror,
    ):
        push_image(up.url, "team/app", "v1", image, auth=(USER, PASSWORD))
        pulled = skopeo_pull(mirror.host, "team/app:v1", tmp_path / "pulled")
        assert pulled.returncode == 0, pulled.stderr
        assert revision_exists(mirror.root, "team/app", image.digest)
        state = json.loads((mirror.root / "scheduler-state.json").read_text())
        assert state[f"team/app@{image.digest}"]["EntryType"] == 1  # Distribution's format
        report = httpx.get(f"{mirror.url}/v2/team/app/_regtui/cache").json()
        assert report["upstream"] == {"url": up.url, "name": "team/app", "namespace": ""}
        assert report["ttl_seconds"] == 2.0
        assert [(t["tag"], t["digest"]) for t in report["tags"]] == [("v1", image.digest)]
        assert report["tags"][0]["expires"].endswith("Z")
        scheduled = {(e["kind"], e["digest"]) for e in report["scheduled"]}
        assert scheduled == {("manifest", image.digest)} | {
            ("blob", b.digest) for b in image.blobs()
        }
        assert _wait_for(lambda: not revision_exists(mirror.root, "team/app", image.digest))
        assert _wait_for(
            lambda: not any(layer_linked(mirror.root, "team/app", b.digest) for b in image.blobs())
        )
        assert _wait_for(
            lambda: json.loads((mirror.root / "scheduler-state.json").read_text()) == {}
        )
        # Pulled again, it is fetched again.
        again = skopeo_pull(mirror.host, "team/app:v1", tmp_path / "again")
        assert again.returncode == 0, again.stderr


def test_ttl_zero_never_expires(tmp_path: Path) -> None:
    image = app_image()
    with (
        upstream(tmp_path) as up,
        bundled_registry(tmp_path / "mirror", config=proxy_config(up.url, ttl=0)) as mirror,
    ):
        push_image(up.url, "team/app", "v1", image, auth=(USER, PASSWORD))
        pulled = skopeo_pull(mirror.host, "team/app:v1", tmp_path / "pulled")
        assert pulled.returncode == 0, pulled.stderr
        assert (
            not (mirror.root / "scheduler-state.json").exists()
            or json.loads((mirror.root / "scheduler-state.json").read_text()) == {}
        )


def test_a_restart_keeps_the_schedule(tmp_path: Path) -> None:
    """Entries written before a stop expire at the next start (their time passed meanwhile)."""
    image = app_image()
    with upstream(tmp_path) as up:
        push_image(up.url, "team/app", "v1", image, auth=(USER, PASSWORD))
        config = proxy_config(up.url, ttl="3s")
        with bundled_registry(tmp_path / "mirror", config=config) as mirror:
            pulled = skopeo_pull(mirror.host, "team/app:v1", tmp_path / "pulled")
            assert pulled.returncode == 0, pulled.stderr
        assert revision_exists(mirror.root, "team/app", image.digest)
        state = json.loads((mirror.root / "scheduler-state.json").read_text())
        assert len(state) == 1 + len(image.blobs())
        time.sleep(3.5)  # expired while stopped
        assert revision_exists(mirror.root, "team/app", image.digest)
        with bundled_registry(tmp_path / "mirror", config=config) as mirror:
            assert _wait_for(lambda: not revision_exists(mirror.root, "team/app", image.digest))
            assert _wait_for(
                lambda: json.loads((mirror.root / "scheduler-state.json").read_text()) == {}
            )


# --- several upstreams, each under its namespace ----------------------------------------------


def test_two_upstreams_under_two_namespaces(tmp_path: Path) -> None:
    one, two = app_image("one"), app_image("two")
    with (
        upstream(tmp_path, "first") as first,
        distribution_registry(tmp_path / "second") as second,  # no auth at all
    ):
        push_image(first.url, "team/app", "v1", one, auth=(USER, PASSWORD))
        push_image(second.url, "library/busybox", "v1", two)
        config = {
            "regtui": {
                "proxy": [
                    {
                        "namespace": "first",
                        "remoteurl": first.url,
                        "username": USER,
                        "password": PASSWORD,
                    },
                    {"namespace": "second", "remoteurl": second.url, "ttl": "1h"},
                ]
            }
        }
        with bundled_registry(tmp_path / "mirror", config=config) as mirror:
            a = skopeo_pull(mirror.host, "first/team/app:v1", tmp_path / "a")
            b = skopeo_pull(mirror.host, "second/library/busybox:v1", tmp_path / "b")
            assert a.returncode == 0, a.stderr
            assert b.returncode == 0, b.stderr
            assert pulled_manifest_digest(tmp_path / "a") == one.digest
            assert pulled_manifest_digest(tmp_path / "b") == two.digest
            # Outside the namespaces the registry is an ordinary one; inside, read-only.
            push_image(mirror.url, "local/app", "v1", one)
            with pytest.raises(Exception, match="405"):
                push_image(mirror.url, "first/team/mine", "v1", one)
            catalog = httpx.get(f"{mirror.url}/v2/_catalog").json()["repositories"]
            assert catalog == ["first/team/app", "local/app", "second/library/busybox"]
            wrong = httpx.get(f"{mirror.url}/v2/first/library/busybox/manifests/v1")
            assert wrong.status_code == 404  # the first upstream has no such image
            report = httpx.get(f"{mirror.url}/v2/second/library/busybox/_regtui/cache").json()
            assert report["upstream"] == {
                "url": second.url,
                "name": "library/busybox",
                "namespace": "second",
            }
            assert report["ttl_seconds"] == 3600
            not_cached = httpx.get(f"{mirror.url}/v2/local/app/_regtui/cache")
            assert not_cached.status_code == 404 and error_code(not_cached) == "NAME_UNKNOWN"


# --- credentials stay with the upstream's origin ----------------------------------------------


def test_credentials_never_follow_a_redirect_to_another_origin(tmp_path: Path) -> None:
    image = app_image()
    with (
        upstream(tmp_path) as up,
        upstream_front(up.url, fetch_auth=(USER, PASSWORD)) as cdn,
        upstream_front(up.url) as front,
    ):
        push_image(up.url, "team/app", "v1", image, auth=(USER, PASSWORD))
        front.redirect_blobs = cdn.url  # another port: another origin
        with bundled_registry(tmp_path / "mirror", config=proxy_config(front.url)) as mirror:
            pulled = skopeo_pull(mirror.host, "team/app:v1", tmp_path / "pulled")
            assert pulled.returncode == 0, pulled.stderr
        assert pulled_manifest_digest(tmp_path / "pulled") == image.digest
        assert len(cdn.seen) == len(image.blobs())
        assert all(seen.authorization is None for seen in cdn.seen)
        authorized = [s for s in front.seen if s.authorization]
        assert authorized and all((s.authorization or "").startswith("Basic ") for s in authorized)


# --- an upstream that fails, hangs or lies ----------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "status", "says"),
    [
        ({"status": 500}, 502, "HTTP 500"),
        ({"hang": 5.0}, 504, "timed out"),
        ({"corrupt": "blob"}, 502, "digest is not"),
        ({"corrupt": "size"}, 502, "digest is not"),
        ({"corrupt": "short"}, 502, "broke off"),
        ({"corrupt": "manifest"}, 502, "digest is sha256:"),
    ],
)
def test_a_failing_or_lying_upstream_caches_nothing(
    tmp_path: Path, fault: dict[str, Any], status: int, says: str
) -> None:
    image = make_image([{"data": bytes(range(256)) * 100}])
    with upstream(tmp_path) as up, upstream_front(up.url) as front:
        push_image(up.url, "team/app", "v1", image, auth=(USER, PASSWORD))
        entry = {"namespace": "cache", "remoteurl": front.url, "timeout": "1s"}
        entry.update(username=USER, password=PASSWORD)
        config = {"regtui": {"proxy": [entry]}}
        with bundled_registry(tmp_path / "mirror", config=config) as mirror:
            for name, value in fault.items():
                setattr(front, name, value)
            with httpx.Client(base_url=mirror.url, timeout=60) as client:
                if fault.get("corrupt") in ("blob", "size", "short"):
                    # The first pull streams: the client's stream is cut short (never a
                    # complete wrong blob), the server says why in one line.
                    blob = f"/v2/cache/team/app/blobs/{image.layers[0].digest}"
                    with pytest.raises(httpx.RemoteProtocolError):
                        client.get(blob)
                    assert _wait_for(lambda: says in mirror.log_path.read_text())
                    said = [
                        line for line in mirror.log_path.read_text().splitlines() if says in line
                    ]
                    assert len(said) == 1 and front.url in said[0] and "cut short" in said[0]
                    assert "Traceback" not in mirror.log_path.read_text()
                    response = None
                else:
                    response = client.get(
                        "/v2/cache/team/app/manifests/v1", headers={"Accept": ACCEPT_ALL}
                    )
            if response is not None:
                assert response.status_code == status, response.text
                assert error_code(response) == "UNAVAILABLE"
                detail = response.json()["errors"][0]["detail"]
                assert says in detail and front.url in detail
            assert not revision_exists(mirror.root, "cache/team/app", image.digest)
            assert stored_blobs(mirror.root) == set()
            uploads = mirror.root / V2 / "repositories" / "cache" / "team" / "app" / "_uploads"
            assert not uploads.exists() or not any(uploads.iterdir())


# --- token auth on the upstream, as Docker Hub uses -------------------------------------------


def test_an_upstream_with_token_auth(tmp_path: Path) -> None:
    """Debian's docker-registry with ``auth.token`` (a Bearer challenge, as Docker Hub): the
    cache gets a pull token for the repository with the configured credentials."""
    issuer, service = "regtui-test-issuer", "regtui-test-upstream"
    key = new_key()
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(pem(certificate("token-signer", key)))
    signer = Signer(key, kid=libtrust_kid(key))
    grants = {USER: {"repository:*": ["pull", "push"]}}
    image = app_image()
    with token_server(
        signer, issuer=issuer, service=service, users={USER: PASSWORD}, grants=grants
    ) as tokens:
        auth = {
            "token": {
                "realm": tokens.realm,
                "service": service,
                "issuer": issuer,
                "rootcertbundle": str(bundle),
            }
        }
        with distribution_registry(tmp_path / "upstream", config={"auth": auth}) as up:
            access = [{"type": "repository", "name": "team/app", "actions": ["pull", "push"]}]
            token = signer.token(issuer=issuer, audience=service, subject=USER, access=access)
            headers = {"Authorization": f"Bearer {token}"}
            with httpx.Client(base_url=up.url, headers=headers, timeout=60) as client:
                push_image(client, "team/app", "v1", image)
            with bundled_registry(tmp_path / "mirror", config=proxy_config(up.url)) as mirror:
                pulled = skopeo_pull(mirror.host, "team/app:v1", tmp_path / "pulled")
                assert pulled.returncode == 0, pulled.stderr
                wrong = {"proxy": {"remoteurl": up.url, "username": USER, "password": "nope"}}
            with bundled_registry(tmp_path / "refused", config=wrong) as refused:
                answer = httpx.get(f"{refused.url}/v2/team/app/manifests/v1", timeout=60)
        assert pulled_manifest_digest(tmp_path / "pulled") == image.digest
        asked = [r for r in tokens.requests if r["account"] == USER]
        assert asked and all(r["scopes"] == ["repository:team/app:pull"] for r in asked)
        assert answer.status_code == 502
        assert "token server refused the credentials" in answer.json()["errors"][0]["detail"]


def test_cached_images_are_served_while_the_upstream_answers_500(tmp_path: Path) -> None:
    image = app_image()
    with (
        upstream(tmp_path) as up,
        upstream_front(up.url) as front,
        bundled_registry(tmp_path / "mirror", config=proxy_config(front.url)) as mirror,
    ):
        push_image(up.url, "team/app", "v1", image, auth=(USER, PASSWORD))
        first = skopeo_pull(mirror.host, "team/app:v1", tmp_path / "first")
        assert first.returncode == 0, first.stderr
        front.status = 500
        again = skopeo_pull(mirror.host, "team/app:v1", tmp_path / "again")
        assert again.returncode == 0, again.stderr
        assert front.requests("HEAD", "/manifests/v1")  # the upstream was asked, and failed
        assert pulled_manifest_digest(tmp_path / "again") == image.digest


def _tui(*args: str) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "tui", *args, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=server_env(),
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def test_du_and_gc_see_the_cache_as_ordinary_repositories(tmp_path: Path) -> None:
    """A cached image and a manifest cached without its blobs (a client that stopped after the
    manifest) are repositories to ``du``; once expired, GC frees their blobs."""
    image, partial = app_image("full"), app_image("partial")
    root = tmp_path / "mirror"
    with upstream(tmp_path) as up:
        push_image(up.url, "team/app", "v1", image, auth=(USER, PASSWORD))
        push_image(up.url, "team/partial", "v1", partial, auth=(USER, PASSWORD))
        config = proxy_config(up.url, ttl="3s")
        with bundled_registry(root, config=config) as mirror:
            pulled = skopeo_pull(mirror.host, "team/app:v1", tmp_path / "pulled")
            assert pulled.returncode == 0, pulled.stderr
            manifest = httpx.get(
                f"{mirror.url}/v2/team/partial/manifests/v1", headers={"Accept": ACCEPT_ALL}
            )
            assert manifest.status_code == 200
        usage = _tui("du", "--root", str(root))
        assert [r["name"] for r in usage["repositories"]] == ["team/app", "team/partial"]
        assert usage["blob_count"] == len(image.blobs()) + 2  # and the two manifests
        time.sleep(3.5)
        with bundled_registry(root, config=config):
            assert _wait_for(lambda: not revision_exists(root, "team/app", image.digest))
            assert _wait_for(lambda: not revision_exists(root, "team/partial", partial.digest))
    collected = _tui("gc", "--root", str(root), "--grace-period", "0", "--force")
    assert collected["bytes_freed"] > 0
    assert stored_blobs(root) == set()


def test_a_registry2_caches_storage_and_schedule_are_served_as_they_are(tmp_path: Path) -> None:
    """Debian's docker-registry in proxy mode caches an image and writes its schedule; regtui,
    on the same directory, serves that image and keeps those entries beside its own."""
    old, new = make_image([{"old": b"cached by registry:2"}], oci=False), app_image("new")
    root = tmp_path / "cache"
    with distribution_registry(tmp_path / "upstream") as up:
        push_image(up.url, "team/old", "v1", old)
        push_image(up.url, "team/new", "v1", new)
        with distribution_registry(root, config={"proxy": {"remoteurl": up.url}}) as registry2:
            pulled = skopeo_pull(registry2.host, "team/old:v1", tmp_path / "by-registry2")
            assert pulled.returncode == 0, pulled.stderr
            state = root / "scheduler-state.json"
            assert _wait_for(
                lambda: state.exists() and f"team/old@{old.digest}" in state.read_text()
            )
        theirs = set(json.loads(state.read_text()))
        with bundled_registry(root, config={"proxy": {"remoteurl": up.url}}) as mirror:
            again = skopeo_pull(mirror.host, "team/new:v1", tmp_path / "new")
            assert again.returncode == 0, again.stderr
            assert _wait_for(lambda: f"team/new@{new.digest}" in state.read_text())
    ours = set(json.loads(state.read_text()))
    assert theirs < ours
    with bundled_registry(root, config={"proxy": {"remoteurl": up.url}}) as mirror:  # up stopped
        offline = skopeo_pull(mirror.host, "team/old:v1", tmp_path / "offline")
        assert offline.returncode == 0, offline.stderr
        served = httpx.get(f"{mirror.url}/v2/team/old/manifests/v1", headers={"Accept": ACCEPT_ALL})
        assert served.headers["Docker-Content-Digest"] == old.digest
