"""Small helpers for the black-box OCI Distribution Spec tests of the bundled registry.

They speak plain HTTP (httpx) to a running server and look at its storage root from the
outside, so a test can say both "the answer was right" and "nothing was left behind on disk".
"""

from __future__ import annotations

import hashlib
import http.client
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.helpers.servers import RunningRegistry
from tui.imagegen import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
    Blob,
)

ACCEPT_ALL = ", ".join([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST])
V2 = Path("docker") / "registry" / "v2"
UPLOAD_RANGE = re.compile(r"^(?:bytes=)?0-(\d+)$")


OCTETS = {"Content-Type": "application/octet-stream"}


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@contextmanager
def client_for(registry: RunningRegistry, **kwargs: Any) -> Iterator[httpx.Client]:
    """An httpx client on ``registry`` that never follows redirects (we check every status)."""
    with httpx.Client(base_url=registry.url, timeout=30.0, **kwargs) as client:
        yield client


def error_codes(response: httpx.Response) -> list[str]:
    """The ``code`` of every OCI error in the body (empty when the body is not OCI JSON)."""
    try:
        document = response.json()
    except ValueError:
        return []
    if not isinstance(document, dict) or not isinstance(document.get("errors"), list):
        return []
    return [str(error.get("code")) for error in document["errors"] if isinstance(error, dict)]


def assert_oci_error(
    response: httpx.Response, status: int | tuple[int, ...], *codes: str
) -> dict[str, Any]:
    """The response has ``status`` and an OCI error body whose first code is one of ``codes``."""
    statuses = status if isinstance(status, tuple) else (status,)
    assert response.status_code in statuses, (
        f"{response.request.method} {response.request.url} -> {response.status_code} "
        f"(wanted {statuses}): {response.text[:500]}"
    )
    found = error_codes(response)
    assert found, f"no OCI error body: {response.headers} {response.text[:500]!r}"
    assert found[0] in codes, f"error codes {found}, wanted one of {codes}"
    for error in response.json()["errors"]:
        assert isinstance(error.get("message", ""), str)
    return response.json()


def files_under(root: Path) -> set[str]:
    """Every regular file under the storage root, relative to it."""
    if not root.exists():
        return set()
    return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()}


def blob_files(root: Path) -> set[str]:
    """Every ``data`` file of the blob store."""
    return {path for path in files_under(root) if path.startswith(str(V2 / "blobs"))}


def upload_files(root: Path) -> set[str]:
    return {path for path in files_under(root) if "/_uploads/" in path}


def blob_on_disk(root: Path, digest: str) -> Path:
    hex_part = digest.split(":", 1)[1]
    return root / V2 / "blobs" / "sha256" / hex_part[:2] / hex_part / "data"


def start_upload(client: httpx.Client, repo: str) -> str:
    """POST an upload session; returns its Location (absolute or relative, as given)."""
    response = client.post(f"/v2/{repo}/blobs/uploads/", headers={"Content-Length": "0"})
    assert response.status_code == 202, response.text
    assert response.headers.get("Location"), response.headers
    return response.headers["Location"]


def with_query(location: str, **params: str) -> str:
    separator = "&" if "?" in location else "?"
    return location + separator + "&".join(f"{key}={value}" for key, value in params.items())


def push_blob_bytes(client: httpx.Client, repo: str, data: bytes) -> str:
    """Monolithic POST+PUT of ``data``; returns its digest."""
    digest = digest_of(data)
    location = start_upload(client, repo)
    response = client.put(
        with_query(location, digest=digest),
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert response.status_code == 201, response.text
    return digest


def push_manifest_blob(client: httpx.Client, repo: str, reference: str, manifest: Blob) -> str:
    response = client.put(
        f"/v2/{repo}/manifests/{reference}",
        content=manifest.data,
        headers={"Content-Type": manifest.media_type},
    )
    assert response.status_code == 201, response.text
    return manifest.digest


def upload_offset(response: httpx.Response) -> int:
    """The last byte offset of an upload's ``Range: 0-N`` header (-1 for ``0-0`` when empty)."""
    value = response.headers.get("Range", "")
    match = UPLOAD_RANGE.match(value)
    assert match, f"bad upload Range header {value!r}"
    return int(match.group(1))


def raw_request(
    registry: RunningRegistry, method: str, path: str, body: bytes = b"", **headers: str
) -> tuple[int, bytes]:
    """Send ``path`` byte for byte (httpx would normalize ``..`` away before sending)."""
    host, port = registry.host.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        for name, value in {"Content-Length": str(len(body)), **headers}.items():
            connection.putheader(name, value)
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()
