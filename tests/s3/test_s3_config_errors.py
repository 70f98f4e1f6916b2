"""A registry configured on S3 that cannot use it says why in one line and exits 1: a missing
bucket, wrong credentials, an endpoint nobody answers on, two storage drivers at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from embedded_registry.config import ConfigError, load_config
from tests.helpers.s3 import SeaweedS3, registry_config, require_aiobotocore, run_registry_once
from tests.helpers.servers import free_port


def _refused(tmp_path: Path, config: dict, env: dict[str, str] | None = None) -> str:
    result = run_registry_once(tmp_path, config, env)
    assert result.returncode == 1, result
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_missing_bucket(s3_engine: SeaweedS3, tmp_path: Path) -> None:
    line = _refused(tmp_path, registry_config(s3_engine.s3_config("no-such-bucket")))
    assert "bucket 'no-such-bucket' does not exist" in line


def test_wrong_credentials(s3_engine: SeaweedS3, bucket: str, tmp_path: Path) -> None:
    config = registry_config(s3_engine.s3_config(bucket, secretkey="not-the-secret"))
    line = _refused(tmp_path, config)
    assert "denied" in line and "credentials" in line
    assert "not-the-secret" not in line


def test_unreachable_endpoint(tmp_path: Path) -> None:
    require_aiobotocore()
    config = registry_config(
        {
            "region": "us-east-1",
            "regionendpoint": f"http://127.0.0.1:{free_port()}",
            "bucket": "anything",
            "accesskey": "key",
            "secretkey": "secret",
            "forcepathstyle": True,
        }
    )
    line = _refused(tmp_path, config)
    assert "cannot reach the S3 endpoint" in line


def test_without_the_extra_one_line_says_what_to_install(tmp_path: Path) -> None:
    # An aiobotocore that cannot be imported, ahead of the real one on the path.
    shadow = tmp_path / "shadow" / "aiobotocore"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('not installed (test)')\n")
    config = registry_config({"region": "us-east-1", "bucket": "b"})
    line = _refused(tmp_path, config, {"PYTHONPATH": str(shadow.parent)})
    assert "pip install 'regtui[s3]'" in line


def test_exactly_one_storage_driver() -> None:
    data = {
        "storage": {"filesystem": {"rootdirectory": "/x"}, "s3": {"bucket": "b", "region": "r"}}
    }
    with pytest.raises(ConfigError, match="exactly one storage driver"):
        load_config(data=data, env={})


def test_s3_settings_as_distribution_reads_them() -> None:
    data = {
        "storage": {
            "s3": {
                "region": "eu-west-1",
                "bucket": "images",
                "rootdirectory": "/registry",
                "chunksize": 8 << 20,
                "encrypt": True,
                "keyid": "alias/x",
            },
            "redirect": {"disable": True},
        }
    }
    env = {"REGISTRY_STORAGE_S3_BUCKET": "other", "REGISTRY_STORAGE_S3_SECURE": "false"}
    config = load_config(data=data, env=env)
    s3 = config.storage.s3
    assert s3 is not None
    assert (s3.bucket, s3.region, s3.rootdirectory, s3.chunksize) == (
        "other",
        "eu-west-1",
        "/registry",
        8 << 20,
    )
    assert s3.secure is False and s3.encrypt is True and s3.keyid == "alias/x"
    assert config.storage.redirect_disabled is True
    assert not config.warnings


@pytest.mark.parametrize(
    ("s3", "message"),
    [
        ({"region": "r"}, "needs a bucket"),
        ({"bucket": "b"}, "needs a region"),
        ({"bucket": "b", "region": "r", "chunksize": 1000}, "below S3's minimum part size"),
        ({"bucket": "b", "region": "r", "accesskey": "k"}, "both accesskey and secretkey"),
    ],
)
def test_bad_s3_settings(s3: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(data={"storage": {"s3": s3}}, env={})
