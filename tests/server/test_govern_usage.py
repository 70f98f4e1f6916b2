"""The per-repository storage bytes the governor keeps for a metrics gauge: what ``du`` counts,
kept current by the background refresh (no walk per call)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from aiohttp import web

from embedded_registry import govern
from embedded_registry.app import create_app
from embedded_registry.config import load_config
from embedded_registry.usage import storage_usage
from tui.imagegen import make_image, push_image


async def test_usage_by_repository_is_what_du_counts(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "docker/registry/v2").mkdir(parents=True)
    config = load_config(
        data={
            "storage": {"filesystem": {"rootdirectory": str(root)}},
            "regtui": {"quota": [{"namespace": "team", "limit": "1GiB"}]},
        },
        env={},
    )
    app = create_app(config)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        url = f"http://127.0.0.1:{port}"
        shared = {"shared": os.urandom(30_000)}
        for repo, tag in (("team/a", "v1"), ("team/b", "v1"), ("other/c", "x")):
            image = make_image([shared, {"own": os.urandom(1000)}])
            await asyncio.to_thread(push_image, url, repo, tag, image)
        governor = app[govern.GOVERN_KEY]
        await governor.refresh()
        report = await asyncio.to_thread(storage_usage, root)
        expected = {r.name: r.referenced_bytes for r in report.repositories}
        assert govern.usage_by_repository(app) == expected
        assert set(expected) == {"team/a", "team/b", "other/c"}
    finally:
        await runner.cleanup()
