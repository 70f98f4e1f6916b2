"""Fixtures of the S3 tests: one SeaweedFS per test module, one fresh bucket per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.s3 import SeaweedS3, seaweed


@pytest.fixture(scope="module")
def s3_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    with seaweed(Path(tmp_path_factory.mktemp("seaweed"))) as engine:
        yield engine


@pytest.fixture
def bucket(s3_engine: SeaweedS3) -> str:
    return s3_engine.create_bucket()
