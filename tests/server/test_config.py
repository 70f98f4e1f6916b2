"""Loading the Distribution-style configuration: file, REGISTRY_* environment, flags."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from embedded_registry.config import (
    ConfigError,
    Overrides,
    TokenConfig,
    default_root,
    load_config,
    parse_duration,
)


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_defaults(tmp_path: Path) -> None:
    config = load_config(env={"XDG_DATA_HOME": str(tmp_path)})
    assert (config.http.host, config.http.port) == ("127.0.0.1", 5000)
    assert config.storage.root == tmp_path / "regtui" / "registry"
    assert config.storage.delete_enabled is True  # Distribution's default is false
    assert config.storage.read_only is False
    assert config.storage.upload_purging.enabled is True
    assert config.storage.upload_purging.age == 168 * 3600
    assert config.storage.upload_purging.interval == 24 * 3600
    assert config.storage.gc_grace_period == 3600
    assert config.auth is None and config.http.tls is None
    assert config.warnings == []


def test_default_root_without_xdg() -> None:
    assert default_root({}) == Path.home() / ".local" / "share" / "regtui" / "registry"


def test_distribution_config_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {
            "version": 0.1,
            "log": {"level": "debug", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(tmp_path / "data")},
                "delete": {"enabled": False},
                "maintenance": {
                    "uploadpurging": {"enabled": True, "age": "2h", "interval": "30m"},
                    "readonly": {"enabled": True},
                    "gc": {"graceperiod": "90s"},
                },
            },
            "http": {
                "addr": ":5001",
                "headers": {"X-Content-Type-Options": ["nosniff"]},
                "tls": {"certificate": "/c.pem", "key": "/k.pem"},
            },
            "auth": {"htpasswd": {"realm": "basic", "path": "/etc/htpasswd"}},
        },
    )
    config = load_config(path, env={})
    assert config.log.level == "debug" and config.log.accesslog_disabled
    assert config.storage.root == tmp_path / "data"
    assert config.storage.delete_enabled is False
    assert config.storage.read_only is True
    assert config.storage.upload_purging.age == 7200
    assert config.storage.upload_purging.interval == 1800
    assert config.storage.gc_grace_period == 90
    assert (config.http.host, config.http.port) == ("0.0.0.0", 5001)
    assert config.http.headers == {"X-Content-Type-Options": ["nosniff"]}
    assert config.http.tls is not None and config.http.tls.key == Path("/k.pem")
    assert config.scheme == "https"
    assert config.auth is not None and config.auth.realm == "basic"
    assert config.warnings == []


def test_environment_overrides_file_and_flags_override_both(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {"http": {"addr": "127.0.0.1:6000"}, "storage": {"delete": {"enabled": True}}},
    )
    env = {
        "REGISTRY_HTTP_ADDR": "127.0.0.1:7000",
        "REGISTRY_STORAGE_DELETE_ENABLED": "false",
        "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": str(tmp_path / "env-root"),
        "REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_AGE": "1h",
    }
    config = load_config(path, env=env)
    assert config.http.port == 7000
    assert config.storage.delete_enabled is False
    assert config.storage.root == tmp_path / "env-root"
    assert config.storage.upload_purging.age == 3600
    flags = Overrides(addr="127.0.0.1:0", root=str(tmp_path / "flag-root"), read_only=True)
    config = load_config(path, env=env, overrides=flags)
    assert config.http.port == 0
    assert config.storage.root == tmp_path / "flag-root"
    assert config.storage.read_only is True


def test_unknown_keys_are_warnings(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {
            "http": {"secret": "s", "addr": "127.0.0.1:5000"},
            "storage": {"cache": {"blobdescriptor": "inmemory"}},
        },
    )
    config = load_config(path, env={"REGISTRY_NOPE": "1"})
    assert config.http.port == 5000
    assert "ignoring unsupported config key http.secret" in config.warnings
    assert "ignoring unsupported config key storage.cache.blobdescriptor" in config.warnings
    assert "ignoring unknown environment variable REGISTRY_NOPE" in config.warnings


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"storage": {"delete": {"enabled": "maybe"}}}, "storage.delete.enabled"),
        ({"http": {"addr": "nohost"}}, "http.addr"),
        ({"http": {"addr": "127.0.0.1:99999"}}, "http.addr"),
        ({"log": {"level": "loud"}}, "log.level"),
        ({"storage": {"maintenance": {"uploadpurging": {"age": "1 week"}}}}, "uploadpurging.age"),
        ({"http": {"headers": ["x"]}}, "http.headers"),
        ({"storage": {"s3": {"bucket": "b"}}}, "storage.s3"),
        ({"http": {"tls": {"certificate": "/c.pem"}}}, "http.tls"),
        ({"auth": {"htpasswd": {"realm": "r"}}}, "auth.htpasswd"),
    ],
)
def test_bad_values_are_one_line_errors(tmp_path: Path, data: dict, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, data), env={})
    message = str(caught.value)
    assert key in message
    assert "\n" not in message


def test_bad_environment_value_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"storage\.delete\.enabled"):
        load_config(env={"REGISTRY_STORAGE_DELETE_ENABLED": "perhaps"})


def test_unreadable_or_invalid_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "missing.yml", env={})
    broken = tmp_path / "broken.yml"
    broken.write_text("http: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken, env={})
    scalar = tmp_path / "scalar.yml"
    scalar.write_text("just a string\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(scalar, env={})


def test_go_durations() -> None:
    assert parse_duration("168h") == 168 * 3600
    assert parse_duration("1h30m") == 5400
    assert parse_duration("500ms") == 0.5
    assert parse_duration("1.5s") == 1.5
    assert parse_duration(30) == 30
    for bad in ("h", "10", "1d", "-1h", "1h 30m"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_regtuis_own_section_governs_the_extensions(tmp_path: Path) -> None:
    default = load_config(env={})
    assert default.extensions.enabled is True and default.extensions.admins == ()
    path = write(
        tmp_path,
        {
            "auth": {"htpasswd": {"realm": "r", "path": str(tmp_path / "htpasswd")}},
            "regtui": {"extensions": {"enabled": False, "admins": ["alice", "bob"]}},
        },
    )
    config = load_config(path, env={})
    assert config.extensions.enabled is False
    assert config.extensions.admins == ("alice", "bob")
    assert config.warnings == []
    env = {
        "REGISTRY_REGTUI_EXTENSIONS_ENABLED": "true",
        "REGISTRY_REGTUI_EXTENSIONS_ADMINS": "carol, dave",
    }
    overridden = load_config(path, env=env)
    assert overridden.extensions.enabled is True
    assert overridden.extensions.admins == ("carol", "dave")


def test_admins_without_auth_are_a_warning_and_bad_admins_an_error(tmp_path: Path) -> None:
    config = load_config(data={"regtui": {"extensions": {"admins": ["alice"]}}}, env={})
    assert any("regtui.extensions.admins" in w and "auth" in w for w in config.warnings)
    with pytest.raises(ConfigError, match=r"regtui\.extensions\.admins"):
        load_config(data={"regtui": {"extensions": {"admins": 5}}}, env={})
    with pytest.raises(ConfigError, match=r"regtui\.extensions\.enabled"):
        load_config(data={"regtui": {"extensions": {"enabled": "maybe"}}}, env={})


def test_token_auth_settings_as_distribution_reads_them(tmp_path: Path) -> None:
    token = {
        "realm": "https://auth.example/token",
        "service": "registry.example",
        "issuer": "auth.example",
        "rootcertbundle": str(tmp_path / "ca.pem"),
        "autoredirect": True,
        "signingalgorithms": ["RS256", "ES256"],
    }
    config = load_config(data={"auth": {"token": token}}, env={})
    assert isinstance(config.auth, TokenConfig)
    assert (config.auth.realm, config.auth.service, config.auth.issuer) == (
        "https://auth.example/token",
        "registry.example",
        "auth.example",
    )
    assert config.auth.rootcertbundle == tmp_path / "ca.pem" and config.auth.jwks is None
    assert config.auth.autoredirect and config.auth.autoredirectpath == "/auth/token"
    assert config.auth.signingalgorithms == ("RS256", "ES256")
    env = {"REGISTRY_AUTH_TOKEN_SIGNINGALGORITHMS": "ES384", "REGISTRY_AUTH_TOKEN_SERVICE": "b"}
    overridden = load_config(data={"auth": {"token": token}}, env=env)
    assert isinstance(overridden.auth, TokenConfig)
    assert overridden.auth.signingalgorithms == ("ES384",)
    assert overridden.auth.service == "b"
    default = load_config(data={"auth": {"token": {**token, "signingalgorithms": []}}}, env={})
    assert isinstance(default.auth, TokenConfig) and "EdDSA" in default.auth.signingalgorithms


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"signingalgorithms": ["RS256", "none"]}, "unsupported signing algorithm none"),
        ({"rootcertbundle": None}, "rootcertbundle or jwks"),
        ({"service": ""}, "auth.token needs service"),
        ({"autoredirectpath": "auth/token"}, "autoredirectpath"),
        ({"realm": 5}, "auth.token.realm"),
    ],
)
def test_bad_token_auth_settings(change: dict, message: str) -> None:
    token = {"realm": "r", "service": "s", "issuer": "i", "rootcertbundle": "/ca.pem", **change}
    token = {k: v for k, v in token.items() if v is not None}
    with pytest.raises(ConfigError, match=message):
        load_config(data={"auth": {"token": token}}, env={})
