"""A refusal is not an absence (issue 20, item 2): behind Debian's nginx the bundled registry
refuses its storage report and GC (403 DENIED, with a reason); the client, ``regtui du HOST`` and
the delete dialog's GC line say so, with the registry's reason and what to do, never "this
registry offers no garbage-collection API"."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator

import pytest

from tests.helpers.images import make_image, push_image
from tests.helpers.servers import RunningNginx, bundled_registry, nginx_proxy
from tui.cli import main
from tui.client import RefusedError, RegistryClient, ext
from tui.data.backends import ESTIMATE_GC_REASON, RefusedBackend, detect_backend
from tui.logic.deletion import GC_NOTE, gc_note

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]

SERVER_REASON = "call them on the registry's own machine over loopback"
"""Part of the bundled registry's 403 message (embedded_registry/routes/ext.py)."""


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningNginx]:
    base = tmp_path_factory.mktemp("refusals")
    with bundled_registry(base / "root") as registry:
        push_image(registry.url, "team/app", "v1", make_image([{"a": b"a" * 300}]))
        with nginx_proxy(base / "nginx", registry) as nginx:
            yield nginx


def _host(nginx: RunningNginx) -> str:
    return nginx.url.removeprefix("http://")


async def _client_calls(url: str) -> None:
    async with RegistryClient(url, insecure=True) as client:
        for call in (
            ext.supports_extension(client),
            ext.storage_usage(client),
            ext.collect_garbage(client, dry_run=True),
        ):
            with pytest.raises(RefusedError) as refused:
                await call
            error = refused.value
            assert error.status_code == 403 and error.code == "DENIED"
            assert error.reason is not None and SERVER_REASON in error.reason
            assert SERVER_REASON in str(error) and "--root DIR" in str(error)
        backend = await detect_backend(client)
        assert isinstance(backend, RefusedBackend) and not backend.gc_available
        assert SERVER_REASON in backend.gc_unavailable_reason
        assert "offers no garbage-collection API" not in backend.gc_unavailable_reason


def test_the_client_raises_a_refusal_with_the_registrys_reason(proxied: RunningNginx) -> None:
    asyncio.run(_client_calls(proxied.url))


def test_du_over_nginx_says_the_exact_report_was_refused_and_why(
    proxied: RunningNginx, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    monkeypatch.setenv("DOCKER_CONFIG", "/nonexistent-regtui-test")
    code = main(["du", _host(proxied), "--insecure"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "team/app" in out and "total (estimate)" in out
    assert err.count("\n") == 1, err
    assert (
        err.startswith("regtui: warning: ")
        and "denied access to the storage report (403 DENIED)" in err
    )
    assert SERVER_REASON in err and "--root DIR" in err and "-u NAME" in err


def test_the_delete_dialog_points_at_g_only_where_g_collects() -> None:
    assert gc_note(True) == GC_NOTE and "g on the registry screen" in GC_NOTE
    refused = gc_note(False, "the registry refuses it to this connection (403 DENIED).")
    assert "g on the" not in refused and "403 DENIED" in refused
    absent = gc_note(False, ESTIMATE_GC_REASON)
    assert "g on the" not in absent and "registry garbage-collect" in absent
