"""Property, against the real bundled registry: the bytes a plan announces are what GC frees.

Random images (drawn from a small pool of layers, so blobs are shared between images and
repositories), random tags (several on one digest), random rules; the plan is applied through
the API, GC runs with no grace period through the extension endpoint, and the storage report's
total before and after must differ by exactly the plan's ``bytes_freed``. Every kept tag still
resolves to its digest and every deleted tag is gone.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from datetime import UTC, datetime

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers.images import make_image, push_image
from tests.helpers.servers import RunningRegistry
from tui.client import NotFoundError, RegistryClient, ext
from tui.data.retention import apply_plan, read_state
from tui.logic.retention import Policy, evaluate

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]

LAYERS = [{f"pool/{n}": os.urandom(2_000 * (n + 1))} for n in range(5)]
COUNTER = itertools.count()

IMAGES = st.lists(
    st.tuples(st.sets(st.integers(0, 4), min_size=1, max_size=3), st.integers(1, 28)),
    min_size=1,
    max_size=5,
)
POLICIES = st.builds(
    Policy,
    keep_newest=st.none() | st.integers(0, 3),
    keep_tags=st.sampled_from([(), ("t0",), ("t[0-2]",)]),
    keep_semver=st.sampled_from([(), (">=1.1 <2",)]),
    delete_older_than=st.none() | st.sampled_from([5 * 86400.0, 400 * 86400.0]),
    exclude=st.just(("*/keeper",)),  # out of scope: its manifests keep their blobs
)


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    images=IMAGES,
    tag_map=st.lists(st.tuples(st.integers(0, 4), st.integers(0, 1)), min_size=1, max_size=8),
    policy=POLICIES,
    keeper_layers=st.sets(st.integers(0, 4), max_size=2),
)
def test_bytes_announced_are_bytes_freed(
    registry: RunningRegistry,
    images: list[tuple[set[int], int]],
    tag_map: list[tuple[int, int]],
    policy: Policy,
    keeper_layers: set[int],
) -> None:
    run = next(COUNTER)
    built = [
        make_image(
            [LAYERS[n] for n in sorted(layers)] + [{"own": f"{run}-{i}".encode()}],
            created=f"2024-02-{day:02d}T00:00:00Z",
        )
        for i, (layers, day) in enumerate(images)
    ]
    tags: dict[tuple[str, str], str] = {}
    with httpx.Client(base_url=registry.url, timeout=60) as client:
        for n, (image_index, repo_index) in enumerate(tag_map):
            image = built[image_index % len(built)]
            repo = f"run{run}/repo{repo_index}"
            tag = f"t{n}" if n % 3 else f"1.{n}"
            tags[(repo, tag)] = push_image(client, repo, tag, image)
        keeper = make_image([LAYERS[n] for n in sorted(keeper_layers)] + [{"k": str(run).encode()}])
        tags[(f"run{run}/keeper", "v1")] = push_image(client, f"run{run}/keeper", "v1", keeper)
    asyncio.run(_prune_and_check(registry, policy, tags, run))


async def _prune_and_check(
    registry: RunningRegistry, policy: Policy, tags: dict[tuple[str, str], str], run: int
) -> None:
    async with RegistryClient(registry.url) as client:
        state = await read_state(client)
        plan = evaluate(policy, state, datetime.now(UTC))
        assert plan.exact
        before = await ext.storage_usage(client)
        outcomes = await apply_plan(client, plan)
        assert not [o for o in outcomes if o.error]
        gc = await ext.collect_garbage(client, dry_run=False, grace_period=0)
        assert gc.before.total_bytes == before.total_bytes  # nothing else wrote meanwhile
        assert gc.before.total_bytes - gc.after.total_bytes == plan.bytes_freed
        going = {(r.name, d.tag) for r in plan.repos for d in r.going}
        for (repo, tag), digest in tags.items():
            if (repo, tag) in going:
                with pytest.raises(NotFoundError):
                    await client.head_manifest(repo, tag)
            else:
                assert (await client.head_manifest(repo, tag)).digest == digest
