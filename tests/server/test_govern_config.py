"""``regtui.immutable`` and ``regtui.quota`` in config.yml: parsed, or refused at start with one
line naming the key (fail closed: a rule that guards data is never half-read)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from embedded_registry.config import ConfigError, load_config
from embedded_registry.govern_rules import parse_size
from tests.helpers.servers import server_env


def _load(regtui: dict[str, Any], env: dict[str, str] | None = None) -> Any:
    return load_config(data={"regtui": regtui}, env=env or {})


def test_rules_parse() -> None:
    config = _load(
        {
            "immutable": [
                {"repository": "team/*", "tags": ["v*", "stable"]},
                {"regex": r"release-\d+"},
            ],
            "quota": [
                {"repository": "team/app", "limit": "10GiB"},
                {"namespace": "team/", "limit": 1500},
            ],
        }
    )
    rules = config.govern
    assert rules.immutable_rule("team/app", "v1.2") is rules.immutable[0]
    assert rules.immutable_rule("team/app", "latest") is None
    assert rules.immutable_rule("any/where", "release-12") is rules.immutable[1]
    assert rules.immutable_rule("any/where", "release-12b") is None  # the whole tag
    assert [(q.scope, q.name, q.limit) for q in rules.quotas] == [
        ("repository", "team/app", 10 << 30),
        ("namespace", "team", 1500),
    ]
    assert [q.name for q in rules.quotas_for("team/app")] == ["team/app", "team"]
    assert [q.name for q in rules.quotas_for("teamx/app")] == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, 0), (123, 123), ("1KiB", 1024), ("1.5 GB", 1_500_000_000), ("2mib", 2 << 20)],
)
def test_sizes(value: Any, expected: int) -> None:
    assert parse_size(value) == expected


@pytest.mark.parametrize(
    ("regtui", "words"),
    [
        ({"immutable": [{"repository": "a", "tags": ["v*"], "tag": "x"}]}, "unknown key 'tag'"),
        ({"immutable": [{"repository": "a"}]}, "exactly one of tags"),
        ({"immutable": [{"regex": "(unclosed"}]}, "not valid RE2"),
        ({"immutable": [{"regex": r"(a)\1"}]}, "not valid RE2"),  # a backreference
        ({"immutable": [{"tags": [""]}]}, "non-empty"),
        ({"immutable": {"repository": "a", "tags": "v*"}}, "list of rules"),
        ({"immutable": "v*"}, "list of rules"),
        ({"quota": [{"repository": "a", "limit": -5}]}, "negative"),
        ({"quota": [{"repository": "a", "limit": "-5GiB"}]}, "negative"),
        ({"quota": [{"repository": "a", "limit": "10 parsecs"}]}, "unknown unit"),
        ({"quota": [{"repository": "a", "limit": "lots"}]}, "not a size"),
        ({"quota": [{"repository": "a"}]}, "needs a limit"),
        ({"quota": [{"repository": "a", "namespace": "b", "limit": 1}]}, "exactly one"),
        ({"quota": [{"repository": "a", "limit": 1, "hard": True}]}, "unknown key 'hard'"),
        ({"quota": [{"repository": "A B", "limit": 1}]}, "not a repository name"),
        (
            {"quota": [{"repository": "a", "limit": 1}, {"repository": "a", "limit": 2}]},
            "a second quota",
        ),
    ],
)
def test_malformed_rules_are_refused(regtui: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigError) as refused:
        _load(regtui)
    message = str(refused.value)
    assert "\n" not in message and words in message
    assert message.startswith("bad value for regtui.")


def test_rules_from_the_environment_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"regtui\.quota"):
        load_config(data={}, env={"REGISTRY_REGTUI_QUOTA": "[]"})


def test_server_refuses_to_start_with_a_bad_rule(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text(
        yaml.safe_dump({"regtui": {"quota": [{"repository": "a", "limit": "-1GiB"}]}})
    )
    result = subprocess.run(
        [
            *(sys.executable, "-m", "embedded_registry", "--root", str(tmp_path / "r")),
            *("--config", str(config), "--addr", "127.0.0.1:0"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=server_env(),
        check=False,
    )
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "regtui.quota" in lines[0] and "negative" in lines[0], lines
