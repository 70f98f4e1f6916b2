"""Where credentials may come from, without reading them: the names :mod:`tui.client.auth` looks
up (environment variables, the keys of Docker's ``config.json``).

Light on purpose (no httpx, no asyncio): :mod:`tui.client.quick` asks :func:`may_have_credentials`
before it answers a command without the full client.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

from tui.client.reference import DOCKER_HUB, api_host

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy reads both)

if TYPE_CHECKING:
    from pathlib import Path

ENV_USERNAME = "REGTUI_USERNAME"
ENV_PASSWORD = "REGTUI_PASSWORD"
DOCKER_HUB_CONFIG_KEY = "https://index.docker.io/v1/"


def config_keys(registry: str) -> list[str]:
    """The keys of ``config.json`` (``auths``, ``credHelpers``) that name ``registry``."""
    if registry == DOCKER_HUB or api_host(registry) != registry:
        return [DOCKER_HUB_CONFIG_KEY, "index.docker.io", "docker.io", "registry-1.docker.io"]
    return [registry, f"https://{registry}", f"http://{registry}", f"https://{registry}/v2/"]


def docker_config_file() -> str:
    """Docker's ``config.json``: in ``$DOCKER_CONFIG``, else in ``~/.docker``."""
    base = os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    return os.path.join(base, "config.json")


def default_docker_config() -> Path:
    from pathlib import Path  # (pathlib costs a few ms the quick path does without)

    return Path(docker_config_file())


def may_have_credentials(
    registry: str, *, environ: Mapping[str, str] | None = None, config_path: Path | None = None
) -> bool:
    """Whether :func:`tui.client.auth.resolve_credentials` could find credentials for
    ``registry`` without arguments: an environment variable, or Docker's config naming the
    registry (``auths``, ``credHelpers``) or a ``credsStore`` (a helper may know any registry).
    A config file that cannot be read gives nothing (as for ``resolve_credentials``)."""
    env = os.environ if environ is None else environ
    if env.get(ENV_USERNAME) is not None or env.get(ENV_PASSWORD) is not None:
        return True
    try:
        with open(config_path or docker_config_file(), encoding="utf-8") as file:
            config = json.load(file)
    except (OSError, ValueError):
        return False
    if not isinstance(config, dict):
        return False
    if config.get("credsStore"):
        return True
    keys = config_keys(registry)
    for table in (config.get("credHelpers"), config.get("auths")):
        if isinstance(table, dict) and any(key in table for key in keys):
            return True
    return False
