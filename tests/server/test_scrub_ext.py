"""``regtui scrub HOST``: the bundled registry scrubs its own storage and streams its progress
(``POST /v2/_regtui/ext/scrub``), with the GC endpoints' access rules; damage is reported, the
server stays up, a repair heals at the next push.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.images import make_image, push_image
from tests.helpers.servers import RunningRegistry
from tui.cli import main
from tui.client import RegistryClient, ext

pytestmark = pytest.mark.timeout(120)

IMAGE = make_image([{"layer": b"x" * 4000}])


def _blob(root: Path, digest: str) -> Path:
    return Path(root, "docker/registry/v2/blobs/sha256", digest[7:9], digest[7:], "data")


def _layer_bytes() -> bytes:
    return IMAGE.layers[0].data


def _damage(root: Path, digest: str) -> None:
    path = _blob(root, digest)
    path.write_bytes(path.read_bytes()[:100])  # the layer is over 100 bytes gzipped


async def test_the_server_scrubs_streams_progress_and_stays_up(registry: RunningRegistry) -> None:
    push_image(registry.url, "app", "v1", IMAGE)
    layer = IMAGE.layers[0].digest
    _damage(registry.root, layer)
    seen: list[dict[str, Any]] = []
    async with RegistryClient(registry.url) as client:
        result = await ext.scrub_registry(client, progress=seen.append)
        assert (await client.request("GET", "/v2/")).status_code == 200  # still up
    assert seen and seen[0]["phase"] == "blobs"
    assert not result.clean and result.broken_images == ("app:v1",)
    [problem] = result.problems
    assert problem.kind == "blob-corrupt" and problem.digest == layer
    assert problem.message.startswith(f"truncated: 100 of {len(_layer_bytes())} bytes")
    assert str(registry.root) not in json.dumps(result.document)  # no machine path goes out


def test_scrub_host_repairs_and_the_next_push_heals(
    registry: RunningRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    push_image(registry.url, "app", "v1", IMAGE)
    layer = IMAGE.layers[0].digest
    _damage(registry.root, layer)
    assert main(["scrub", registry.url, "--json", "--repair"]) == 1
    doc = json.loads(capsys.readouterr().out)
    [problem] = doc["problems"]
    assert problem["repaired"].startswith("quarantined to /regtui/scrub/quarantine/sha256/")
    assert httpx.head(f"{registry.url}/v2/app/blobs/{layer}").status_code == 404
    push_image(registry.url, "app", "v1", IMAGE)
    got = httpx.get(f"{registry.url}/v2/app/blobs/{layer}")
    assert hashlib.sha256(got.content).hexdigest() == layer[7:]
    assert main(["scrub", registry.url]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].startswith("scrub: clean: 3 blobs")


def test_scrub_is_administrative(
    registry: RunningRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without the admin secret (another machine, or a proxy): 403, one line from the CLI."""
    answer = httpx.post(f"{registry.url}/v2/_regtui/ext/scrub", json={})
    assert answer.status_code == 403
    assert answer.json()["errors"][0]["code"] == "DENIED"
    bad = httpx.post(
        f"{registry.url}/v2/_regtui/ext/scrub",
        json={"repair": "yes"},
        headers=registry.admin_headers(),
    )
    assert bad.status_code == 400 and "repair must be true or false" in bad.text


def test_each_bad_input_is_one_line_and_the_server_stays_up(
    registry: RunningRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    """A directory where a blob's data should be, a tag on a missing revision, a manifest
    edited by hand: the scrub over the API reports each, and the server answers after."""
    other = make_image([{"other": b"o" * 3000}])
    third = make_image([{"third": b"t" * 2000}])
    push_image(registry.url, "app", "v1", IMAGE)
    push_image(registry.url, "app", "v2", other)
    push_image(registry.url, "lib", "v1", third)
    data = _blob(registry.root, other.layers[0].digest)
    data.unlink()
    (data / "surprise").mkdir(parents=True)
    manifests = Path(registry.root, "docker/registry/v2/repositories/lib/_manifests")
    (manifests / "tags/v1/current/link").write_text("sha256:" + "1" * 64)
    edited = _blob(registry.root, IMAGE.digest)
    document = json.loads(edited.read_bytes())
    document["annotations"] = {"edited": "by hand"}
    edited.write_bytes(json.dumps(document).encode())

    assert main(["scrub", registry.url, "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    found = {(p["kind"], tuple(p["images"])) for p in doc["problems"]}
    assert found == {
        ("blob-not-a-file", ("app:v2",)),
        ("tag-dangling", ("lib:v1",)),
        ("blob-corrupt", ("app:v1",)),
    }
    assert main(["scrub", registry.url]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 + 3 + 1  # header, one line a problem, the verdict
    assert httpx.get(f"{registry.url}/v2/lib/tags/list").status_code == 200
    assert (data / "surprise").is_dir()  # nothing changed without --repair


def test_another_registry_offers_no_scrub(
    distribution: RunningRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["scrub", distribution.url]) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert "offers no scrub" in line and "--root DIR" in line
