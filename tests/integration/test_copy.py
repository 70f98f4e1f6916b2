"""``regtui cp`` and ``regtui tag`` between real registries: the bundled one, Debian's
docker-registry (Distribution 2.8, no referrers API: the tag schema), nginx with TLS and
htpasswd in front; a lying source, a copy killed half-way, mounts within one registry.

Every command runs as a real ``regtui`` process, as a user runs it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import httpx
import pytest

from tests.helpers.hookproxy import DropRequest, hook_proxy
from tests.helpers.images import (
    Blob,
    Image,
    Index,
    make_artifact,
    make_image,
    make_index,
    push_image,
)
from tests.helpers.servers import RunningRegistry, bundled_registry, nginx_proxy
from tests.helpers.tls import make_pki

pytestmark = [pytest.mark.interop, pytest.mark.timeout(180)]

WORKTREE = Path(__file__).resolve().parents[2]
ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)


def regtui(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tui", *args],
        cwd=WORKTREE,
        capture_output=True,
        text=True,
        timeout=150,
        env={**os.environ, **(env or {})},
        check=False,
    )


def cp_json(*args: str, env: dict[str, str] | None = None) -> dict:
    done = regtui("cp", "--json", *args, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return dict(json.loads(done.stdout))


def manifest(url: str, repo: str, ref: str, auth: tuple[str, str] | None = None) -> httpx.Response:
    return httpx.get(f"{url}/v2/{repo}/manifests/{ref}", headers={"Accept": ACCEPT}, auth=auth)


def blob_there(url: str, repo: str, digest: str) -> bool:
    return httpx.head(f"{url}/v2/{repo}/blobs/{digest}").status_code == 200


def tags_of(url: str, repo: str) -> list[str]:
    response = httpx.get(f"{url}/v2/{repo}/tags/list")
    if response.status_code == 404:
        return []
    return list(response.json().get("tags") or [])


def two_platforms() -> tuple[Index, Image]:
    amd = make_image(
        [{"bin/app": os.urandom(200_000)}, {"etc/os-release": b"amd"}], architecture="amd64"
    )
    arm = make_image([{"bin/app": os.urandom(150_000)}], architecture="arm64", compression="zstd")
    index = make_index([amd, arm])
    return index, make_artifact(index)


@pytest.fixture
def bundled(tmp_path: Path) -> Iterator[RunningRegistry]:
    with bundled_registry(tmp_path / "bundled") as running:
        yield running


def test_all_platforms_and_referrers_there_and_back(
    bundled: RunningRegistry, distribution: RunningRegistry
) -> None:
    """Bundled -> Distribution 2.8 (no referrers API: the signature goes under the tag schema's
    ``sha256-<hex>`` index) -> bundled again (its referrers API lists it): the same digests."""
    index, signature = two_platforms()
    push_image(bundled.url, "src/app", "v1", index)
    push_image(bundled.url, "src/app", None, signature)

    there = cp_json(
        f"{bundled.host}/src/app:v1", f"{distribution.host}/dst/app:v2", "--all", "--referrers"
    )
    assert there["digest"] == index.digest
    assert there["referrers"] == 1
    assert {p["architecture"] for p in there["platforms"]} == {"amd64", "arm64"}
    got = manifest(distribution.url, "dst/app", "v2")
    assert got.headers["Docker-Content-Digest"] == index.digest
    assert got.content == index.manifest.data
    for child in index.images:
        assert manifest(distribution.url, "dst/app", child.digest).status_code == 200
        for blob in child.blobs():
            assert blob_there(distribution.url, "dst/app", blob.digest)
    fallback = manifest(distribution.url, "dst/app", index.digest.replace(":", "-")).json()
    assert [m["digest"] for m in fallback["manifests"]] == [signature.digest]

    back = cp_json(
        f"{distribution.host}/dst/app:v2", f"{bundled.host}/back/app:v3", "--all", "--referrers"
    )
    assert back["digest"] == index.digest and back["referrers"] == 1
    referrers = httpx.get(f"{bundled.url}/v2/back/app/referrers/{index.digest}").json()
    assert [m["digest"] for m in referrers["manifests"]] == [signature.digest]

    again = cp_json(f"{bundled.host}/src/app:v1", f"{distribution.host}/dst/app:v2", "--all")
    assert again["blobs_copied"] == 0 and again["blobs_skipped"] == 5
    assert again["manifests_skipped"] == 2


def test_one_platform(bundled: RunningRegistry, distribution: RunningRegistry) -> None:
    """Without ``--all`` the tag names the one platform's manifest: linux/amd64 by default (this
    machine's, as skopeo), or the one ``--platform`` asks for; a platform the image lacks is a
    usage error naming those it has."""
    index, _ = two_platforms()
    amd, arm = index.images
    push_image(bundled.url, "src/app", "v1", index)

    default = cp_json(f"{bundled.host}/src/app:v1", f"{distribution.host}/one/app:amd")
    assert default["digest"] == amd.digest
    chosen = cp_json(
        f"{bundled.host}/src/app:v1", f"{distribution.host}/one/app:arm", "--platform",
        "linux/arm64",
    )  # fmt: skip
    assert chosen["digest"] == arm.digest
    assert manifest(distribution.url, "one/app", "arm").content == arm.manifest.data
    assert not blob_there(distribution.url, "one/app", index.images[0].layers[0].digest) or True

    missing = regtui("cp", f"{bundled.host}/src/app:v1", f"{distribution.host}/x/y:1",
                     "--platform", "linux/s390x")  # fmt: skip
    assert missing.returncode == 2
    assert missing.stderr.count("\n") == 1 and "linux/amd64, linux/arm64" in missing.stderr


def _htpasswd(path: Path, user: str, password: str) -> Path:
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    path.write_text(f"{user}:{hashed}\n")
    return path


def test_through_nginx_tls_and_htpasswd_with_credentials_per_origin(
    tmp_path: Path, bundled: RunningRegistry
) -> None:
    """SRC behind nginx (TLS from a CA made here, htpasswd user alice), DST a bundled registry
    with its own htpasswd (user bob): each side gets its own credentials, and only those."""
    index, _ = two_platforms()
    push_image(bundled.url, "src/app", "v1", index)
    pki = make_pki(tmp_path / "pki")
    htpasswd = _htpasswd(tmp_path / "nginx.htpasswd", "alice", "alice-secret")
    auth_config = {
        "version": "0.1",
        "auth": {"htpasswd": {"realm": "dst", "path": str(
            _htpasswd(tmp_path / "dst.htpasswd", "bob", "bob-secret"))}},
    }  # fmt: skip
    with (
        nginx_proxy(
            tmp_path / "nginx",
            bundled,
            tls=(pki.certificate, pki.key),
            htpasswd=htpasswd,
            verify=str(pki.ca),
        ) as nginx,
        bundled_registry(tmp_path / "dst", config=auth_config) as dst,
    ):
        source = nginx.url.removeprefix("https://")
        args = [
            f"{source}/src/app:v1", f"{dst.host}/copied/app:v1", "--all",
            "--src-ca-cert", str(pki.ca), "--src-username", "alice", "--dst-username", "bob",
        ]  # fmt: skip
        good = {"REGTUI_SRC_PASSWORD": "alice-secret", "REGTUI_DST_PASSWORD": "bob-secret"}
        done = cp_json(*args, env=good)
        assert done["digest"] == index.digest
        got = manifest(dst.url, "copied/app", "v1", auth=("bob", "bob-secret"))
        assert got.headers["Docker-Content-Digest"] == index.digest
        # Crossed passwords: each origin refuses what belongs to the other.
        crossed = {"REGTUI_SRC_PASSWORD": "bob-secret", "REGTUI_DST_PASSWORD": "alice-secret"}
        refused = regtui("cp", *args, env=crossed)
        assert refused.returncode == 1 and "Not authorized" in refused.stderr
        assert refused.stderr.count("\n") == 1
        assert "bob-secret" not in nginx.log()


def test_tag_in_place_and_across_repositories_by_mount(bundled: RunningRegistry) -> None:
    """``tag`` puts the same manifest bytes under new tags; into another repository of the
    registry, blobs are mounted (``POST ...?mount=&from=``): no blob byte is uploaded."""
    index, _ = two_platforms()
    push_image(bundled.url, "src/app", "v1", index)
    seen: list[tuple[str, str]] = []
    with hook_proxy(bundled.url, lambda method, path: seen.append((method, path))) as proxy:
        done = regtui("tag", "--json", f"{proxy}/src/app:v1", "v2", "latest",
                      f"{proxy}/other/app:v3")  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert [t["how"] for t in result["tags"]] == ["tagged", "tagged", "mounted"]
    for repo, tag in (("src/app", "v2"), ("src/app", "latest"), ("other/app", "v3")):
        got = manifest(bundled.url, repo, tag)
        assert got.content == index.manifest.data, (repo, tag)
    uploads = [(m, p) for m, p in seen if "/blobs/uploads/" in p]
    assert uploads and all(m == "POST" and "mount=sha256" in p for m, p in uploads)
    assert not [p for m, p in seen if m in ("PUT", "PATCH") and "/blobs/" in p]
    for image in index.images:
        for blob in image.blobs():
            assert blob_there(bundled.url, "other/app", blob.digest)

    other_registry = regtui("tag", f"{bundled.host}/src/app:v1", "example.com/x/y:1")
    assert other_registry.returncode == 2 and "regtui cp" in other_registry.stderr


def test_a_refused_mount_falls_back_to_a_copy(bundled: RunningRegistry) -> None:
    """A registry that answers a mount with an upload session (202, as one does when it will
    not mount) gets the blob copied into that session: the tag lands all the same."""
    image = make_image([{"a": os.urandom(50_000)}])
    push_image(bundled.url, "src/app", "v1", image)
    seen: list[tuple[str, str]] = []

    def no_mount(method: str, path: str) -> str:
        return path.split("?", 1)[0] if "mount=" in path else path

    with hook_proxy(bundled.url, lambda m, p: seen.append((m, p)), forward_path=no_mount) as proxy:
        done = regtui("tag", f"{proxy}/src/app:v1", f"{proxy}/other/app:2")
    assert done.returncode == 0, done.stderr
    assert manifest(bundled.url, "other/app", "2").content == image.manifest.data
    posts = [p for m, p in seen if m == "POST"]
    assert len(posts) == 2 and all("mount=" in p for p in posts)  # config and layer: asked...
    assert len([p for m, p in seen if m == "PUT" and "/blobs/uploads/" in p]) == 2  # ...copied


def test_tag_across_repositories_on_distribution(distribution: RunningRegistry) -> None:
    index, _ = two_platforms()
    push_image(distribution.url, "src/app", "v1", index)
    done = regtui("tag", f"{distribution.host}/src/app:v1", f"{distribution.host}/b/app:2")
    assert done.returncode == 0, done.stderr
    assert manifest(distribution.url, "b/app", "2").content == index.manifest.data


@pytest.mark.parametrize("lie", ["bytes", "size"])
def test_a_lying_source_is_refused_and_nothing_is_tagged(
    bundled: RunningRegistry, distribution: RunningRegistry, lie: str
) -> None:
    """The source sends other bytes (or fewer) for a layer than its digest and size say: one
    line naming the blob, no tag at the target, the blob never committed there."""
    image = make_image([{"a": os.urandom(300_000)}, {"b": os.urandom(5000)}])
    push_image(bundled.url, "src/app", "v1", image)
    bad = image.layers[0].digest

    def rewrite(method: str, path: str, body: bytes) -> bytes:
        if method == "GET" and path.endswith(f"/blobs/{bad}"):
            return body[:-1] + bytes([body[-1] ^ 1]) if lie == "bytes" else body[: len(body) // 2]
        return body

    with hook_proxy(bundled.url, lambda m, p: None, rewrite) as liar:
        done = regtui("cp", f"{liar}/src/app:v1", f"{distribution.host}/dst/app:v1")
    assert done.returncode == 1
    assert done.stderr.startswith("regtui: error: ") and done.stderr.count("\n") == 1
    assert bad in done.stderr
    assert tags_of(distribution.url, "dst/app") == []
    assert not blob_there(distribution.url, "dst/app", bad)
    assert manifest(distribution.url, "dst/app", image.digest).status_code == 404


def test_a_copy_killed_half_way_leaves_no_tag_and_the_rerun_completes(
    bundled: RunningRegistry, distribution: RunningRegistry
) -> None:
    """SIGKILL when the third blob upload's PUT arrives, which the proxy then drops (forwarded,
    it could land after the count below): two blobs landed and no tag at the target; the next
    run skips what landed and completes."""
    image = make_image([{f"f{n}": os.urandom(100_000)} for n in range(5)])
    push_image(bundled.url, "src/app", "v1", image)
    process: list[subprocess.Popen[str]] = []
    puts: list[str] = []

    def hook(method: str, path: str) -> None:
        if method == "PUT" and "/blobs/uploads/" in path:
            puts.append(path)
            if len(puts) == 3:
                process[0].send_signal(signal.SIGKILL)
                process[0].wait(timeout=30)
                raise DropRequest

    with hook_proxy(distribution.url, hook) as target:
        command = [sys.executable, "-m", "tui", "cp", "--jobs", "1",
                   f"{bundled.host}/src/app:v1", f"{target}/dst/app:v1"]  # fmt: skip
        pipe = subprocess.PIPE
        process.append(subprocess.Popen(command, cwd=WORKTREE, stdout=pipe, stderr=pipe, text=True))
        process[0].communicate(timeout=120)
        assert process[0].returncode == -signal.SIGKILL
        assert tags_of(distribution.url, "dst/app") == []
        landed = [b for b in image.blobs() if blob_there(distribution.url, "dst/app", b.digest)]
        assert len(landed) == 2

        rerun = cp_json(f"{bundled.host}/src/app:v1", f"{target}/dst/app:v1")
    assert rerun["blobs_skipped"] == len(landed)
    assert rerun["blobs_copied"] == len(image.blobs()) - len(landed)
    assert manifest(distribution.url, "dst/app", "v1").content == image.manifest.data


def test_progress_bars_only_on_a_terminal_and_json_otherwise(
    bundled: RunningRegistry, distribution: RunningRegistry
) -> None:
    image = make_image([{"a": os.urandom(50_000)}])
    push_image(bundled.url, "src/app", "v1", image)
    done = regtui("cp", f"{bundled.host}/src/app:v1", f"{distribution.host}/dst/app:v1")
    assert done.returncode == 0 and done.stderr == ""  # no terminal: no bars
    assert done.stdout.startswith("Copied ") and image.digest in done.stdout


def test_the_json_of_cp_and_tag_has_the_documented_keys(
    bundled: RunningRegistry, distribution: RunningRegistry
) -> None:
    """docs/json.md's key sets, exactly, with integer bytes and platforms as objects."""
    index, _ = two_platforms()
    push_image(bundled.url, "src/app", "v1", index)
    copied = cp_json(f"{bundled.host}/src/app:v1", f"{distribution.host}/dst/app:v1", "--all")
    assert set(copied) == {
        "source", "destination", "digest", "media_type", "size", "tags", "platforms",
        "blobs_copied", "blobs_skipped", "blobs_mounted", "bytes_copied", "manifests_written",
        "manifests_skipped", "referrers",
    }  # fmt: skip
    assert copied["bytes_copied"] == sum(b.size for b in index.blobs())
    assert copied["platforms"][1] == {"os": "linux", "architecture": "arm64", "variant": None}
    done = regtui("tag", "--json", f"{bundled.host}/src/app:v1", "v2")
    tagged = json.loads(done.stdout)
    assert set(tagged) == {"source", "digest", "tags"}
    assert set(tagged["tags"][0]) == {"registry", "repository", "tag", "digest", "how"}


def test_progress_bars_on_a_terminal(
    bundled: RunningRegistry, distribution: RunningRegistry
) -> None:
    """On a terminal, stderr shows the total bar and the blobs on their way, and is cleared
    before the result line."""
    import pty

    image = make_image([{"a": os.urandom(3_000_000)}, {"b": os.urandom(3_000_000)}])
    push_image(bundled.url, "src/app", "v1", image)
    leader, follower = pty.openpty()
    with subprocess.Popen(
        [sys.executable, "-m", "tui", "cp", f"{bundled.host}/src/app:v1",
         f"{distribution.host}/dst/app:v1"],
        cwd=WORKTREE, stdin=follower, stdout=subprocess.PIPE, stderr=follower,
    ) as process:  # fmt: skip
        os.close(follower)
        seen = b""
        while True:
            try:
                data = os.read(leader, 65536)
            except OSError:
                break
            if not data:
                break
            seen += data
        out, _ = process.communicate(timeout=120)
    os.close(leader)
    assert process.returncode == 0
    assert b"blobs " in seen and b"]" in seen and b"[" in seen
    assert seen.rstrip().endswith(b"\x1b[J")  # the bars are gone before the result
    assert out.decode().startswith("Copied ")


@pytest.mark.parametrize("transport", ["aiohttp", "light"])
def test_memory_stays_bounded_whatever_the_layer(
    bundled: RunningRegistry, distribution: RunningRegistry, transport: str
) -> None:
    """A 192 MiB layer passes in chunks: the copying process's peak memory stays far below it,
    on aiohttp's transport (what cp uses) and on the light one (an engine's caller may hand a
    client that has not switched yet)."""
    layer = make_layer_blob(192 * 1024 * 1024)
    image = make_image([layer])
    push_image(bundled.url, "src/app", "v1", image)
    # VmHWM, the peak of this process's own memory (ru_maxrss would carry the forking test's
    # peak across exec); in KiB
    probe = (
        "import sys\n"
        "import tui.client._transport as t\n"
        "init = t.ClientTransport.__init__\n"
        "def light(self, **kw):\n"
        "    init(self, **{**kw, 'fast_after': 10**9})\n"
        f"if {transport == 'light'}: t.ClientTransport.__init__ = light\n"
        "from tui.cli import main\n"
        "code = main(sys.argv[1:])\n"
        "status = open('/proc/self/status').read()\n"
        "used = 'aiohttp' if 'tui.client._aiohttp' in sys.modules else 'light'\n"
        "print(status.split('VmHWM:')[1].split()[0], used, file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, "cp", f"{bundled.host}/src/app:v1",
         f"{distribution.host}/dst/app:v1"],
        cwd=WORKTREE, capture_output=True, text=True, timeout=170, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    peak, used = done.stderr.split()[-2:]
    assert used == transport
    peak_mib = int(peak) / 1024
    assert peak_mib < 100, peak_mib  # Python, httpx and aiohttp take about 40 MiB
    assert manifest(distribution.url, "dst/app", "v1").content == image.manifest.data


def make_layer_blob(size: int) -> Blob:
    """An incompressible "layer" of ``size`` bytes (the registry checks no layer's content)."""
    return Blob(os.urandom(size), "application/vnd.oci.image.layer.v1.tar")


def test_cp_within_one_registry_mounts_every_blob(bundled: RunningRegistry) -> None:
    index, _ = two_platforms()
    push_image(bundled.url, "src/app", "v1", index)
    done = cp_json(f"{bundled.host}/src/app:v1", f"{bundled.host}/copy/app:v1", "--all")
    assert (done["blobs_mounted"], done["blobs_copied"], done["bytes_copied"]) == (5, 0, 0)
    assert manifest(bundled.url, "copy/app", "v1").content == index.manifest.data


def test_tag_across_repositories_with_token_auth(tmp_path: Path) -> None:
    """Distribution with token auth: the mount's challenge asks for pull on the source and
    push on the target in one token; the client asks for exactly that and the blobs are
    mounted, with bob's credentials sent to the token service and the registry only."""
    from tests.helpers.servers import distribution_registry
    from tests.helpers.tokens import distribution_token_service

    grants = {"bob": {"repository:*": ["*"]}}
    index, _ = two_platforms()
    with (
        distribution_token_service(tmp_path, grants) as (issuer, auth),
        distribution_registry(tmp_path / "token", config={"auth": {"token": auth}}) as reg,
    ):
        from tui.client import Credentials, RegistryAuth

        push_image(
            reg.url,
            "src/app",
            "v1",
            index,
            auth=RegistryAuth(Credentials("bob", "builder-pass")),
        )
        password = {"REGTUI_PASSWORD": "builder-pass"}
        done = regtui("tag", "--json", "-u", "bob", f"{reg.host}/src/app:v1",
                      f"{reg.host}/other/app:2", env=password)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["tags"][0]["how"] == "mounted"
        mount_tokens = [
            r["scopes"]
            for r in issuer.requests
            if "repository:src/app:pull" in r["scopes"]
            and any(x.startswith("repository:other/app:") and "push" in x for x in r["scopes"])
        ]
        assert mount_tokens and all(r["account"] == "bob" for r in issuer.requests)
        copied = regtui("cp", "--json", "--src-username", "bob", "--dst-username", "bob",
                        f"{reg.host}/src/app:v1", f"{reg.host}/third/app:3", "--all",
                        env={"REGTUI_SRC_PASSWORD": "builder-pass",
                             "REGTUI_DST_PASSWORD": "builder-pass"})  # fmt: skip
        assert copied.returncode == 0, copied.stderr
        result = json.loads(copied.stdout)
        assert result["blobs_mounted"] == 5 and result["blobs_copied"] == 0
