"""Demo content for ``regtui serve --local --demo``: a registry that shows everything at once.

Generated images, pushed over HTTP like any client would: several repositories in namespaces,
many tags, shared base layers, a two-platform index, a zstd image, an image overwritten so an
untagged manifest exists, and a signature and an SBOM attached with ``subject``. Deterministic,
so screenshots and snapshot tests stay the same from run to run.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from tui.imagegen import (
    Blob,
    Image,
    Pushable,
    make_artifact,
    make_image,
    make_index,
    make_layer,
    push_image,
)

ProgressCallback = Callable[[str], None]


def _binary(seed: str, size: int) -> bytes:
    """Incompressible but deterministic bytes, so layers have realistic compressed sizes."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}/{counter}".encode()).digest()
        counter += 1
    return b"\x7fELF" + bytes(out[: size - 4])


# A "base OS" layer shared by most images, so storage panels show shared bytes.
_BASE_FILES = {
    "etc/os-release": b'NAME="Demo Linux"\nVERSION_ID="1.0"\n',
    "etc/passwd": b"root:x:0:0:root:/root:/bin/sh\n",
    "bin/sh": _binary("sh", 96 * 1024),
    "lib/libc.so.6": _binary("libc", 1536 * 1024),
    "usr/share/doc/README": b"Demo base image for regtui.\n" * 64,
}


@functools.cache
def _base_layer(*, oci: bool = True) -> Blob:
    return make_layer(_BASE_FILES, oci=oci)


_PYTHON_FILES = {
    "usr/local/bin/python3": _binary("python3", 3 * 1024 * 1024),
    "usr/local/lib/python3.12/os.py": b"# demo\n" * 4096,
    "usr/local/lib/python3.12/json/__init__.py": b"# demo json\n" * 1024,
}


@dataclass(frozen=True)
class DemoSummary:
    repositories: int
    tags: int
    manifests: int


def _created(day: int) -> str:
    return f"2024-{1 + day // 28:02d}-{1 + day % 28:02d}T09:30:00Z"


def _app_image(name: str, version: str, day: int, *, extra: bytes = b"") -> Image:
    base = _base_layer()
    app = make_layer(
        {
            f"srv/{name}/VERSION": version.encode() + b"\n",
            f"srv/{name}/app.bin": _binary(f"{name}-{version}", 200 * 1024) + extra,
            f"srv/{name}/static/index.html": b"<html>demo</html>\n" * (16 + day),
        }
    )
    return make_image(
        [base, app],
        created=_created(day),
        commands=[
            "ADD rootfs.tar.gz / # buildkit",
            f"COPY ./{name} /srv/{name} # buildkit",
        ],
        entrypoint=[f"/srv/{name}/app.bin"],
        cmd=["--serve"],
        env=["PATH=/usr/local/bin:/usr/bin:/bin", f"APP_VERSION={version}"],
        labels={
            "org.opencontainers.image.title": name,
            "org.opencontainers.image.version": version,
            "org.opencontainers.image.source": f"https://example.com/demo/{name}",
        },
        empty_layer_commands=[f"ENV APP_VERSION={version}", 'CMD ["--serve"]'],
    )


def populate(base_url: str, *, progress: ProgressCallback | None = None) -> DemoSummary:
    """Push the demo content into the (empty) registry at ``base_url``."""
    say = progress or (lambda _message: None)
    tags = manifests = 0
    repositories: set[str] = set()

    with httpx.Client(base_url=base_url, timeout=60.0) as client:

        def push(repo: str, tag: str | None, item: Pushable) -> str:
            nonlocal tags, manifests
            digest = push_image(client, repo, tag, item)
            repositories.add(repo)
            manifests += 1
            tags += tag is not None
            return digest

        say("pushing library/alpine-demo")
        base_only = make_image(
            [_base_layer()],
            created=_created(0),
            commands=["ADD rootfs.tar.gz / # buildkit"],
        )
        for tag in ("3.18", "3.19", "3.20", "latest"):
            push("library/alpine-demo", tag, base_only)

        say("pushing library/python-demo (two platforms)")
        platforms = []
        for architecture, variant in (("amd64", None), ("arm64", "v8")):
            platforms.append(
                make_image(
                    [_base_layer(), make_layer(_PYTHON_FILES)],
                    architecture=architecture,
                    variant=variant,
                    created=_created(40),
                    commands=["ADD rootfs.tar.gz / # buildkit", "RUN make install # buildkit"],
                    cmd=["python3"],
                )
            )
        index = make_index(platforms)
        for tag in ("3.12", "3.12-slim", "latest"):
            push("library/python-demo", tag, index)
        push(
            "library/python-demo",
            None,
            make_artifact(
                index,
                artifact_type="application/spdx+json",
                payload=json.dumps({"spdxVersion": "SPDX-2.3", "name": "python-demo"}).encode(),
            ),
        )

        say("pushing acme/web (many tags)")
        web_versions = [f"1.{minor}.{patch}" for minor in range(4) for patch in range(4)]
        for day, version in enumerate(web_versions):
            image = _app_image("web", version, day)
            push("acme/web", version, image)
            if version == web_versions[-1]:
                push("acme/web", "latest", image)
                push("acme/web", "stable", image)
                push("acme/web", None, make_artifact(image))

        say("pushing acme/api (an overwritten tag leaves an untagged manifest)")
        push("acme/api", "2.0.0", _app_image("api", "2.0.0", 10))
        push("acme/api", "edge", _app_image("api", "2.1.0-rc1", 11))
        push("acme/api", "edge", _app_image("api", "2.1.0-rc2", 12, extra=b"rebuilt"))
        push("acme/api", "2.1.0", _app_image("api", "2.1.0", 13))

        say("pushing acme/tools/cli (zstd layers) and acme/tools/debug (Docker schema2)")
        zstd_image = make_image(
            [{"usr/bin/acme": _binary("acme", 512 * 1024)}],
            compression="zstd",
            created=_created(20),
            commands=["COPY acme /usr/bin/acme # buildkit"],
            entrypoint=["/usr/bin/acme"],
            cmd=None,
        )
        push("acme/tools/cli", "0.9.0", zstd_image)
        push("acme/tools/cli", "latest", zstd_image)
        docker_image = make_image(
            [
                _base_layer(oci=False),
                make_layer({"opt/debug/gdb": _binary("gdb", 700 * 1024)}, oci=False),
            ],
            oci=False,
            created=_created(30),
            commands=["ADD rootfs.tar.gz / # buildkit", "RUN apk add gdb # buildkit"],
        )
        push("acme/tools/debug", "1.0", docker_image)

        say("pushing staging/web (copies of acme/web: layers shared across repositories)")
        for day, version in enumerate(web_versions[-3:], start=len(web_versions) - 3):
            push("staging/web", f"{version}-rc", _app_image("web", version, day))

    summary = DemoSummary(repositories=len(repositories), tags=tags, manifests=manifests)
    say(f"demo ready: {summary.repositories} repositories, {summary.tags} tags")
    return summary


def is_empty(base_url: str) -> bool:
    """True when the registry's catalog lists no repository."""
    response = httpx.get(f"{base_url}/v2/_catalog", params={"n": 1}, timeout=10.0)
    response.raise_for_status()
    return not response.json().get("repositories")
