"""The usage estimate counts each blob once in the total and tells shared from exclusive bytes."""

from __future__ import annotations

from tui.client.estimate import RepoContent, estimate_usage
from tui.client.models import ManifestResult, parse_manifest
from tui.client.registry import manifest_digest
from tui.imagegen import Image, make_image, make_index, make_layer


def _result(raw: bytes) -> ManifestResult:
    media_type, manifest = parse_manifest(raw)
    return ManifestResult(manifest_digest(raw), media_type, raw, manifest)


def _content(name: str, tags: dict[str, Image]) -> RepoContent:
    manifests = {image.digest: _result(image.manifest.data) for image in tags.values()}
    return RepoContent(name, {t: i.digest for t, i in tags.items()}, manifests)


def _bytes(image: Image) -> int:
    return image.manifest.size + image.config.size + sum(layer.size for layer in image.layers)


def test_shared_layers_counted_once() -> None:
    base = make_layer({"etc/os-release": b"x" * 5000})
    app1 = make_image([base, {"app": b"1" * 3000}])
    app2 = make_image([base, {"app": b"2" * 3000}])
    estimate = estimate_usage(
        [_content("one", {"v1": app1, "latest": app1}), _content("two", {"v1": app2})]
    )
    by_name = {usage.name: usage for usage in estimate.repos}
    assert by_name["one"].bytes == _bytes(app1)
    assert by_name["one"].tags == 2 and by_name["one"].manifests == 1
    assert by_name["two"].bytes == _bytes(app2)
    assert estimate.total_bytes == _bytes(app1) + _bytes(app2) - base.size
    assert by_name["one"].exclusive_bytes == _bytes(app1) - base.size
    assert estimate.shared_savings == base.size
    assert estimate.is_estimate


def test_index_children_and_their_blobs() -> None:
    amd = make_image([{"a": b"1"}])
    arm = make_image([{"a": b"2"}], architecture="arm64")
    index = make_index([amd, arm])
    manifests = {
        index.digest: _result(index.manifest.data),
        amd.digest: _result(amd.manifest.data),
        arm.digest: _result(arm.manifest.data),
    }
    estimate = estimate_usage([RepoContent("multi", {"latest": index.digest}, manifests)])
    assert estimate.total_bytes == index.manifest.size + _bytes(amd) + _bytes(arm)
    assert estimate.blob_count == 1 + 3 + 3


def test_schema1_layers_have_unknown_sizes() -> None:
    raw = (
        b'{"schemaVersion":1,"name":"a","tag":"t","architecture":"amd64",'
        b'"fsLayers":[{"blobSum":"sha256:' + b"1" * 64 + b'"}],"history":[]}'
    )
    estimate = estimate_usage([RepoContent("old", {"t": "x"}, {"sha256:x": _result(raw)})])
    assert estimate.unknown_sizes == 1
    assert estimate.total_bytes == len(raw)


def test_empty_registry() -> None:
    estimate = estimate_usage([])
    assert (estimate.total_bytes, estimate.blob_count, estimate.repos) == (0, 0, ())
