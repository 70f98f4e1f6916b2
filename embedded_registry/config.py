"""The registry's configuration: a subset of CNCF Distribution's ``config.yml``.

Sources, later ones winning: built-in defaults, the YAML file, ``REGISTRY_<SECTION>_<KEY>``
environment variables (as Distribution: ``REGISTRY_HTTP_ADDR``,
``REGISTRY_STORAGE_DELETE_ENABLED``...), then command-line flags. A value of the wrong shape is a
``ConfigError`` whose message is one line naming the key.

Fail closed: the sections that guard data and access (``auth``, ``storage``, ``http.tls``,
``proxy``) are honoured exactly or the registry does not start. In them an unknown key, a
misspelled or unsupported method or driver (``auth: {htpassword: ...}``, ``storage: {gcs: ...}``),
a section of the wrong type (``auth: htpasswd``, ``storage: []``, ``storage: s3``), an empty
section, two auth methods or two storage drivers are ``ConfigError``; so is a non-string path
(``rootdirectory: 5``). ``proxy`` (a pull-through cache: ``remoteurl``, ``username``,
``password``, ``ttl``) is checked as strictly (see :class:`ProxyConfig`). The sections
that watch the registry are honoured exactly too: an unknown or malformed key of ``health``,
``http.debug`` or ``notifications`` (an endpoint without a name or an http(s) url, an unknown
key, a bad duration, headers that are not lists, an unknown action, two endpoints of one name)
is a ``ConfigError``. A known section of any other type
(``http: x``, ``log: 5``) is an error too. Unknown keys elsewhere (``http.secret``, ``log.fields``,
the performance-only ``storage.cache``) are reported in ``Config.warnings`` and otherwise ignored,
as are the matching ``REGISTRY_*`` variables.

Defaults differ from Distribution's in two places, on purpose: the registry listens on
``127.0.0.1:5000`` (loopback, not every interface) and ``storage.delete.enabled`` is true
(Distribution's default is false; regtui exists to delete). ``storage.maintenance.gc.graceperiod``
is regtui's own key: blobs and uploads younger than it are never swept by online GC.

The top-level ``regtui`` section is regtui's own (Distribution ignores it, so one config.yml
serves both). It governs the administrative extension endpoints (storage report, online GC)::

    regtui:
      extensions:
        enabled: true      # false: the endpoints are not served at all (404, as unknown routes)
        admins: [alice]    # users (htpasswd) or token subjects who may call them

or ``REGISTRY_REGTUI_EXTENSIONS_ENABLED=false`` and ``REGISTRY_REGTUI_EXTENSIONS_ADMINS=alice,bob``.
``regtui.proxy`` is a list of pull-through caches, each under its own namespace
(:func:`_parse_proxies`).
The local admin secret (:mod:`embedded_registry.admin`) opens them on the same machine whatever
the admins list says.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Set
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from embedded_registry import names
from embedded_registry.govern_rules import GovernConfig, parse_immutable, parse_quotas
from regtui_retention.policy import Policy, PolicyError, policy_from_mapping
from regtui_retention.policyfile import read_policy_file

ENV_PREFIX = "REGISTRY_"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5000
LOG_LEVELS = ("error", "warn", "info", "debug")


class ConfigError(Exception):
    """A configuration the registry cannot start with; the message is one line."""


@dataclass
class UploadPurging:
    enabled: bool = True
    age: float = 168 * 3600.0
    interval: float = 24 * 3600.0
    dryrun: bool = False


MIN_S3_CHUNK_SIZE = 5 << 20
"""S3's minimum multipart part size (Distribution refuses a smaller ``chunksize``)."""


@dataclass(frozen=True)
class S3Config:
    """``storage.s3`` as Distribution's s3-aws driver reads it (defaults as Distribution's)."""

    bucket: str
    region: str = "us-east-1"
    regionendpoint: str | None = None
    forcepathstyle: bool = False
    accesskey: str | None = None
    secretkey: str | None = None
    secure: bool = True
    skipverify: bool = False
    rootdirectory: str = ""
    chunksize: int = 2 * MIN_S3_CHUNK_SIZE
    multipartcopychunksize: int = 32 << 20
    multipartcopymaxconcurrency: int = 100
    multipartcopythresholdsize: int = 32 << 20
    storageclass: str = "STANDARD"
    encrypt: bool = False
    keyid: str | None = None

    @property
    def endpoint_url(self) -> str | None:
        """``regionendpoint`` with a scheme (``secure`` chooses it when the value has none)."""
        endpoint = self.regionendpoint
        if not endpoint:
            return None
        if "://" not in endpoint:
            endpoint = ("https://" if self.secure else "http://") + endpoint
        return endpoint


@dataclass
class StorageConfig:
    root: Path
    delete_enabled: bool = True
    read_only: bool = False
    upload_purging: UploadPurging = field(default_factory=UploadPurging)
    gc_grace_period: float = 3600.0
    s3: S3Config | None = None
    """The s3 driver's settings; ``None``: the filesystem driver at ``root``."""
    redirect_disabled: bool = False
    """``storage.redirect.disable``: serve blob GETs here instead of redirecting to the bucket."""

    @property
    def driver(self) -> str:
        return "s3" if self.s3 is not None else "filesystem"


@dataclass
class TLSConfig:
    certificate: Path
    key: Path


DEFAULT_METRICS_PATH = "/metrics"


@dataclass(frozen=True)
class DebugConfig:
    """``http.debug``: a second listener serving ``/debug/health`` and, with
    ``prometheus.enabled``, Prometheus metrics on ``prometheus.path``."""

    addr: tuple[str, int] | None = None
    prometheus_enabled: bool = False
    prometheus_path: str = DEFAULT_METRICS_PATH


@dataclass
class HttpConfig:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    tls: TLSConfig | None = None
    headers: dict[str, list[str]] = field(default_factory=dict)
    debug: DebugConfig = field(default_factory=DebugConfig)


@dataclass
class HtpasswdConfig:
    realm: str
    path: Path


DEFAULT_AUTOREDIRECT_PATH = "/auth/token"
SIGNING_ALGORITHMS = (
    "EdDSA",
    "HS256",
    "HS384",
    "HS512",
    "RS256",
    "RS384",
    "RS512",
    "ES256",
    "ES384",
    "ES512",
    "PS256",
    "PS384",
    "PS512",
)
"""The JWS algorithms Distribution's token auth accepts (all of them when none is configured)."""


@dataclass(frozen=True)
class TokenConfig:
    """``auth.token`` as Distribution reads it: tokens from an external token server."""

    realm: str
    service: str
    issuer: str
    rootcertbundle: Path | None = None
    jwks: Path | None = None
    autoredirect: bool = False
    autoredirectpath: str = DEFAULT_AUTOREDIRECT_PATH
    signingalgorithms: tuple[str, ...] = SIGNING_ALGORITHMS


DEFAULT_CHECK_INTERVAL = 10.0
"""Distribution's ``defaultCheckInterval``: a check's interval when none (or 0) is given."""


@dataclass(frozen=True)
class FileCheck:
    """``health.file[]``: unhealthy while ``file`` exists."""

    file: str
    interval: float = DEFAULT_CHECK_INTERVAL


@dataclass(frozen=True)
class HttpCheck:
    """``health.http[]``: a HEAD of ``uri`` must answer ``statuscode``."""

    uri: str
    headers: tuple[tuple[str, str], ...] = ()
    statuscode: int = 200
    timeout: float = 0.0
    """0: the interval (Distribution waits forever; a hung check would then never report)."""
    interval: float = DEFAULT_CHECK_INTERVAL
    threshold: int = 0


@dataclass(frozen=True)
class TcpCheck:
    """``health.tcp[]``: a TCP connection to ``addr`` must open."""

    addr: str
    timeout: float = 0.0
    interval: float = DEFAULT_CHECK_INTERVAL
    threshold: int = 0


@dataclass
class HealthConfig:
    """Distribution's ``health`` section. The storage driver check is on unless
    ``health.storagedriver.enabled: false`` (Distribution's is off unless configured; its stock
    config.yml turns it on)."""

    storagedriver_enabled: bool = True
    storagedriver_interval: float = DEFAULT_CHECK_INTERVAL
    storagedriver_threshold: int = 0
    file: tuple[FileCheck, ...] = ()
    http: tuple[HttpCheck, ...] = ()
    tcp: tuple[TcpCheck, ...] = ()


DEFAULT_NOTIFY_TIMEOUT = 1.0
DEFAULT_NOTIFY_THRESHOLD = 10
DEFAULT_NOTIFY_BACKOFF = 1.0
EVENT_ACTIONS = ("pull", "push", "mount", "delete")


@dataclass(frozen=True)
class NotificationEndpoint:
    """``notifications.endpoints[]``: a webhook (Distribution's defaults for zero values)."""

    name: str
    url: str
    headers: tuple[tuple[str, str], ...] = ()
    timeout: float = DEFAULT_NOTIFY_TIMEOUT
    threshold: int = DEFAULT_NOTIFY_THRESHOLD
    backoff: float = DEFAULT_NOTIFY_BACKOFF
    ignored_media_types: frozenset[str] = frozenset()
    """``ignoredmediatypes`` and ``ignore.mediatypes`` together, as Distribution joins them."""
    ignored_actions: frozenset[str] = frozenset()
    disabled: bool = False


@dataclass(frozen=True)
class NotificationsConfig:
    endpoints: tuple[NotificationEndpoint, ...] = ()
    """Every configured endpoint, the disabled ones too."""
    include_references: bool = False

    @property
    def active(self) -> tuple[NotificationEndpoint, ...]:
        return tuple(endpoint for endpoint in self.endpoints if not endpoint.disabled)


@dataclass
class LogConfig:
    level: str = "info"
    accesslog_disabled: bool = False


@dataclass
class ExtensionsConfig:
    """regtui's own ``regtui.extensions`` section: the administrative endpoints."""

    enabled: bool = True
    admins: tuple[str, ...] = ()
    """htpasswd users, or token subjects (``sub``), who may call the endpoints (storage report,
    GC)."""


DEFAULT_PROXY_TTL = 168 * 3600.0
"""Distribution's ``proxy.ttl`` default (a week); 0 keeps cached content until GC'd by hand."""
DEFAULT_PROXY_TIMEOUT = 30.0
"""How long the cache waits for an upstream to connect or to send the next bytes."""
PROXY_KEYS = frozenset({"remoteurl", "username", "password", "ttl"})
REGTUI_PROXY_KEYS = PROXY_KEYS | {"namespace", "timeout"}


@dataclass(frozen=True)
class ProxyConfig:
    """A pull-through cache of one upstream registry: Distribution's ``proxy`` section
    (``namespace`` empty: every repository is the upstream's), or one entry of regtui's
    ``regtui.proxy`` list (repositories under ``<namespace>/`` only)."""

    remoteurl: str
    namespace: str = ""
    username: str | None = None
    password: str | None = None
    ttl: float = DEFAULT_PROXY_TTL
    timeout: float = DEFAULT_PROXY_TIMEOUT


@dataclass
class RetentionConfig:
    """regtui's own ``regtui.retention`` section: the prune policy, run by the server on an
    interval (:mod:`embedded_registry.retention`)."""

    policy: Policy
    source: str
    """Where the policy came from: the file's path, or ``inline`` (``rules``)."""
    interval: float = 24 * 3600.0
    dry_run: bool = False
    """Plan and log only: nothing is deleted, no GC."""
    gc: bool = True
    """Collect garbage after each run that deleted something."""


@dataclass
class Config:
    storage: StorageConfig
    http: HttpConfig = field(default_factory=HttpConfig)
    log: LogConfig = field(default_factory=LogConfig)
    auth: HtpasswdConfig | TokenConfig | None = None
    health: HealthConfig = field(default_factory=HealthConfig)
    extensions: ExtensionsConfig = field(default_factory=ExtensionsConfig)
    notifications: NotificationsConfig = field(default_factory=NotificationsConfig)
    govern: GovernConfig = field(default_factory=GovernConfig)
    """``regtui.immutable`` and ``regtui.quota`` (:mod:`embedded_registry.govern_rules`)."""
    warnings: list[str] = field(default_factory=list)
    proxies: tuple[ProxyConfig, ...] = ()
    """Pull-through caches, Distribution's ``proxy`` and regtui's ``regtui.proxy``."""
    retention: RetentionConfig | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.http.tls is not None else "http"


def default_root(env: Mapping[str, str] | None = None) -> Path:
    """``$XDG_DATA_HOME/regtui/registry``, or ``~/.local/share/regtui/registry``."""
    env = os.environ if env is None else env
    base = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "regtui" / "registry"


# --- value parsers ----------------------------------------------------------------------------

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def parse_duration(value: Any) -> float:
    """A Go duration (``168h``, ``1h30m``, ``500ms``) or a number of seconds, in seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like 24h")
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    if text in ("0", ""):
        return 0.0
    position, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        position = match.end()
    if position != len(text) or position == 0:
        raise ValueError(f"{text!r} is not a duration like 24h or 30m")
    return total


def parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"{value!r} is not true or false")


def parse_addr(value: Any) -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT`` (every interface) or ``[v6]:PORT``."""
    text = str(value).strip()
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ValueError(f"{text!r} is not HOST:PORT")
    port = int(port_text)
    if port > 65535:
        raise ValueError(f"port {port} is out of range")
    host = host.strip("[]")
    return (host or "0.0.0.0"), port


def _parse_str(value: Any) -> str:
    """A string; a number is taken as its text (``version: 0.1``, ``bucket: 2024``)."""
    if value is None or isinstance(value, dict | list | bool):
        raise ValueError(f"expected a string, not {_kind(value)}")
    return str(value)


def _parse_text(value: Any) -> str:
    """A YAML string, nothing else: a path or an auth setting is never guessed from a number
    (``rootdirectory: 5`` must not serve ``./5``)."""
    if not isinstance(value, str):
        raise ValueError(f"expected a string, not {_kind(value)}")
    return value


def _parse_path(value: Any) -> str:
    """A non-empty path (an empty one must not fall back to a default)."""
    text = _parse_text(value)
    if not text.strip():
        raise ValueError("expected a path, not an empty string")
    return text


def _parse_algorithms(value: Any) -> tuple[str, ...]:
    """``signingalgorithms``: a list (or, from the environment, a comma-separated string)."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise ValueError("expected a list of signing algorithms")
    algorithms = tuple(item.strip() for item in items if item.strip())
    for algorithm in algorithms:
        if algorithm not in SIGNING_ALGORITHMS:
            raise ValueError(f"unsupported signing algorithm {algorithm}")
    return algorithms


def _kind(value: Any) -> str:
    """How a YAML value reads in a message: ``a string``, ``a list``..."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"a string ({value!r})" if len(value) <= 40 else "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _parse_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("expected an integer")
    return int(value)


def _parse_level(value: Any) -> str:
    level = str(value).strip().lower()
    if level == "warning":
        level = "warn"
    if level not in LOG_LEVELS:
        raise ValueError(f"{value!r} is not one of {', '.join(LOG_LEVELS)}")
    return level


def _parse_headers(value: Any) -> dict[str, list[str]]:
    if not isinstance(value, dict):
        raise ValueError("expected a mapping of header names to lists of values")
    result: dict[str, list[str]] = {}
    for name, values in value.items():
        if isinstance(values, list):
            result[str(name)] = [str(item) for item in values]
        else:
            result[str(name)] = [str(values)]
    return result


def _parse_names(value: Any) -> tuple[str, ...]:
    """A YAML list of user names, or one comma-separated string (as an environment variable)."""
    if isinstance(value, str):
        items: list[Any] = value.split(",")
    elif isinstance(value, list):
        items = value
    elif value is None:
        items = []
    else:
        raise ValueError("expected a list of user names")
    names = []
    for item in items:
        if isinstance(item, dict | list | bool) or item is None:
            raise ValueError("expected a list of user names")
        name = str(item).strip()
        if name:
            names.append(name)
    return tuple(names)


def _keyed_item(item: Any, where: str, allowed: Set[str]) -> dict[str, Any]:
    """One mapping of a list section (a check, an endpoint, an upstream): its keys lowered,
    none but ``allowed``."""
    if not isinstance(item, dict):
        raise ValueError(f"{where} must be a mapping, not {_kind(item)}")
    item = {str(key).lower(): value for key, value in item.items()}
    unknown = sorted(set(item) - allowed)
    if unknown:
        raise ValueError(f"{where}: unknown key {unknown[0]}")
    return item


def _check_items(value: Any, key: str, allowed: set[str], required: str) -> list[dict[str, Any]]:
    """A list of mappings (``health.file``...), each with ``required``, no key but ``allowed``."""
    if not isinstance(value, list):
        raise ValueError(f"expected a list of checks (- {required}: ...), not {_kind(value)}")
    items: list[dict[str, Any]] = []
    for number, item in enumerate(value, 1):
        item = _keyed_item(item, f"check {number}", allowed)
        if not isinstance(item.get(required), str) or not item[required].strip():
            raise ValueError(f"check {number} needs {required}")
        items.append(item)
    return items


def _interval(item: Mapping[str, Any]) -> float:
    interval = parse_duration(item.get("interval", 0))
    if interval < 0:
        raise ValueError("interval must not be negative")
    return interval or DEFAULT_CHECK_INTERVAL


def _timeout(item: Mapping[str, Any]) -> float:
    timeout = parse_duration(item.get("timeout", 0))
    if timeout < 0:
        raise ValueError("timeout must not be negative")
    return timeout


def _threshold(value: Any) -> int:
    threshold = _parse_int(value)
    if threshold < 0:
        raise ValueError("threshold must not be negative")
    return threshold


def _parse_file_checks(value: Any) -> tuple[FileCheck, ...]:
    items = _check_items(value, "health.file", {"file", "interval"}, "file")
    return tuple(FileCheck(item["file"], _interval(item)) for item in items)


def _parse_http_checks(value: Any) -> tuple[HttpCheck, ...]:
    allowed = {"uri", "headers", "statuscode", "timeout", "interval", "threshold"}
    checks = []
    for item in _check_items(value, "health.http", allowed, "uri"):
        uri = item["uri"].strip()
        if not re.match(r"https?://[^/\s]", uri):
            raise ValueError(f"{uri!r} is not an http:// or https:// URL")
        status = _parse_int(item.get("statuscode", 200) or 200)
        if not 100 <= status <= 599:
            raise ValueError(f"statuscode {status} is not an HTTP status")
        headers = _parse_headers(item.get("headers") or {})
        checks.append(
            HttpCheck(
                uri=uri,
                headers=tuple((k, v) for k, values in headers.items() for v in values),
                statuscode=status,
                timeout=_timeout(item),
                interval=_interval(item),
                threshold=_threshold(item.get("threshold", 0)),
            )
        )
    return tuple(checks)


def _parse_tcp_checks(value: Any) -> tuple[TcpCheck, ...]:
    allowed = {"addr", "timeout", "interval", "threshold"}
    checks = []
    for item in _check_items(value, "health.tcp", allowed, "addr"):
        addr = item["addr"].strip()
        parse_addr(addr)
        if addr.startswith(":"):
            raise ValueError(f"{addr!r} names no host to connect to")
        checks.append(
            TcpCheck(
                addr=addr,
                timeout=_timeout(item),
                interval=_interval(item),
                threshold=_threshold(item.get("threshold", 0)),
            )
        )
    return tuple(checks)


_ENDPOINT_KEYS = {
    "name",
    "disabled",
    "url",
    "headers",
    "timeout",
    "threshold",
    "backoff",
    "ignoredmediatypes",
    "ignore",
}


def _text_list(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"{what} must be a list of strings, not {_kind(value)}")
    return list(value)


def _endpoint_headers(value: Any, number: int) -> tuple[tuple[str, str], ...]:
    """Go's ``http.Header`` in YAML: a mapping of names to lists of values."""
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise ValueError(f"endpoint {number}: headers must be a mapping of lists")
    pairs = []
    for name, values in value.items():
        if not isinstance(name, str) or not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name):
            raise ValueError(f"endpoint {number}: {name!r} is not a header name")
        for item in _text_list(values, f"endpoint {number}: headers.{name}"):
            if any(ch in item for ch in "\r\n\0"):
                raise ValueError(f"endpoint {number}: headers.{name} holds a line break")
            pairs.append((name, item))
    return tuple(pairs)


def _endpoint_duration(item: Mapping[str, Any], key: str, number: int, default: float) -> float:
    value = parse_duration(item.get(key) or 0)
    if value < 0:
        raise ValueError(f"endpoint {number}: {key} must not be negative")
    return value or default


def _parse_endpoint(item: Any, number: int) -> NotificationEndpoint:
    item = _keyed_item(item, f"endpoint {number}", _ENDPOINT_KEYS)
    name, url = item.get("name"), item.get("url")
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"endpoint {number} needs a name")
    if not isinstance(url, str) or not re.fullmatch(r"https?://[^/?#\s]+[^\s]*", url.strip()):
        raise ValueError(f"endpoint {name}: url must be an http:// or https:// URL")
    ignore = item.get("ignore") or {}
    if not isinstance(ignore, dict) or set(map(str, ignore)) - {"mediatypes", "actions"}:
        raise ValueError(f"endpoint {name}: ignore takes mediatypes and actions only")
    actions = _text_list(ignore.get("actions"), f"endpoint {name}: ignore.actions")
    for action in actions:
        if action not in EVENT_ACTIONS:
            raise ValueError(
                f"endpoint {name}: ignore.actions: {action!r} is not one of "
                f"{', '.join(EVENT_ACTIONS)}"
            )
    media = _text_list(item.get("ignoredmediatypes"), f"endpoint {name}: ignoredmediatypes")
    media += _text_list(ignore.get("mediatypes"), f"endpoint {name}: ignore.mediatypes")
    threshold = _parse_int(item.get("threshold") or 0)
    if threshold < 0:
        raise ValueError(f"endpoint {name}: threshold must not be negative")
    return NotificationEndpoint(
        name=name,
        url=url.strip(),
        headers=_endpoint_headers(item.get("headers"), number),
        timeout=_endpoint_duration(item, "timeout", number, DEFAULT_NOTIFY_TIMEOUT),
        threshold=threshold or DEFAULT_NOTIFY_THRESHOLD,
        backoff=_endpoint_duration(item, "backoff", number, DEFAULT_NOTIFY_BACKOFF),
        ignored_media_types=frozenset(media),
        ignored_actions=frozenset(actions),
        disabled=parse_bool(item.get("disabled", False)),
    )


def _parse_endpoints(value: Any) -> tuple[NotificationEndpoint, ...]:
    """``notifications.endpoints``: a list of webhooks, each name once."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ValueError(f"expected a list of endpoints (- name: ...), not {_kind(value)}")
    endpoints = tuple(_parse_endpoint(item, number) for number, item in enumerate(value, 1))
    names = [endpoint.name for endpoint in endpoints]
    for name in names:
        if names.count(name) > 1:
            raise ValueError(f"two endpoints are named {name}")
    return endpoints


def _parse_url_path(value: Any) -> str:
    text = _parse_text(value).strip()
    if not text.startswith("/"):
        raise ValueError(f"{text!r} is not a path starting with /")
    return text


def _parse_remote_url(value: Any) -> str:
    """An ``http(s)://host[:port]`` base URL, without credentials, query or fragment."""
    text = _parse_text(value).strip()
    parts = urlsplit(text)
    try:
        parts.port  # noqa: B018  (raises on a bad port)
    except ValueError:
        raise ValueError(f"{text!r} has a bad port") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{text!r} is not an http:// or https:// URL")
    if parts.username is not None or parts.password is not None:
        raise ValueError("put the credentials in username and password, not in the URL")
    if parts.query or parts.fragment or parts.path not in ("", "/"):
        raise ValueError(f"{text!r} must be a registry's base URL (no path, query or fragment)")
    return f"{parts.scheme}://{parts.netloc}"


def _proxy_ttl(value: Any) -> float:
    ttl = parse_duration(value)
    if ttl < 0:
        raise ValueError("ttl must not be negative")
    return ttl


def _proxy_config(item: Mapping[str, Any], where: str, namespace: str = "") -> ProxyConfig:
    """One upstream's settings (``item`` with lower-case keys, already checked for unknown
    ones); ``where`` names it in messages."""
    if "remoteurl" not in item:
        raise ValueError(f"{where} needs remoteurl")
    try:
        remoteurl = _parse_remote_url(item["remoteurl"])
    except ValueError as exc:
        raise ValueError(f"{where}.remoteurl: {exc}") from None
    username = item.get("username")
    password = item.get("password")
    for key, text in (("username", username), ("password", password)):
        if text is not None and not isinstance(text, str):
            raise ValueError(f"{where}.{key} must be a string, not {_kind(text)}")
    if bool(username) != bool(password):
        raise ValueError(f"{where} needs both username and password, or neither")
    try:
        ttl = _proxy_ttl(item.get("ttl", DEFAULT_PROXY_TTL))
        timeout = parse_duration(item.get("timeout", DEFAULT_PROXY_TIMEOUT))
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    if timeout <= 0:
        raise ValueError(f"{where}.timeout must be positive")
    return ProxyConfig(
        remoteurl=remoteurl,
        namespace=namespace,
        username=username or None,
        password=password or None,
        ttl=ttl,
        timeout=timeout,
    )


def _parse_proxies(value: Any) -> tuple[ProxyConfig, ...]:
    """``regtui.proxy``: a list of ``{namespace, remoteurl, username, password, ttl,
    timeout}``; namespaces are repository names, distinct, none inside another."""
    if not isinstance(value, list) or not value:
        raise ValueError(f"expected a list of upstreams (- namespace: ...), not {_kind(value)}")
    proxies: list[ProxyConfig] = []
    for number, item in enumerate(value, 1):
        where = f"upstream {number}"
        item = _keyed_item(item, where, REGTUI_PROXY_KEYS)
        namespace = item.get("namespace")
        if not isinstance(namespace, str) or not names.is_valid_name(namespace.strip("/")):
            raise ValueError(f"{where} needs a namespace that is a repository name (e.g. hub)")
        namespace = namespace.strip("/")
        for other in proxies:
            if other.namespace == namespace:
                raise ValueError(f"namespace {namespace} is configured twice")
            if namespace.startswith(other.namespace + "/") or other.namespace.startswith(
                namespace + "/"
            ):
                raise ValueError(f"namespace {namespace} overlaps {other.namespace}")
        proxies.append(_proxy_config(item, f"{where} ({namespace})", namespace))
    return tuple(proxies)


def _check_proxy(values: Mapping[str, Any]) -> tuple[ProxyConfig, ...]:
    """Distribution's ``proxy`` section (every repository) and regtui's ``regtui.proxy``."""
    given = {k.removeprefix("proxy."): v for k, v in values.items() if k.startswith("proxy.")}
    proxies: tuple[ProxyConfig, ...] = ()
    if given:
        try:
            proxies = (_proxy_config(given, "proxy"),)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    return proxies + tuple(values.get("regtui.proxy", ()))


def _parse_rules(value: Any) -> Policy:
    """``regtui.retention.rules``: a policy written inline, in the prune policy language."""
    if not isinstance(value, dict):
        raise ValueError(f"must be a mapping of rules (keep_newest: 5, ...), not {_kind(value)}")
    return policy_from_mapping(value)  # PolicyError is a ValueError: one line


# The subset of Distribution's configuration regtui reads: dotted key -> parser.
KNOWN_KEYS: dict[str, Callable[[Any], Any]] = {
    "version": _parse_str,
    "log.level": _parse_level,
    "log.accesslog.disabled": parse_bool,
    "loglevel": _parse_level,
    "storage.filesystem.rootdirectory": _parse_path,
    "storage.delete.enabled": parse_bool,
    "storage.maintenance.uploadpurging.enabled": parse_bool,
    "storage.maintenance.uploadpurging.age": parse_duration,
    "storage.maintenance.uploadpurging.interval": parse_duration,
    "storage.maintenance.uploadpurging.dryrun": parse_bool,
    "storage.maintenance.readonly.enabled": parse_bool,
    "storage.maintenance.gc.graceperiod": parse_duration,
    "storage.redirect.disable": parse_bool,
    "storage.s3.bucket": _parse_str,
    "storage.s3.region": _parse_str,
    "storage.s3.regionendpoint": _parse_str,
    "storage.s3.forcepathstyle": parse_bool,
    "storage.s3.accesskey": _parse_str,
    "storage.s3.secretkey": _parse_str,
    "storage.s3.secure": parse_bool,
    "storage.s3.skipverify": parse_bool,
    "storage.s3.v4auth": parse_bool,
    "storage.s3.rootdirectory": _parse_text,
    "storage.s3.chunksize": _parse_int,
    "storage.s3.multipartcopychunksize": _parse_int,
    "storage.s3.multipartcopymaxconcurrency": _parse_int,
    "storage.s3.multipartcopythresholdsize": _parse_int,
    "storage.s3.storageclass": _parse_str,
    "storage.s3.encrypt": parse_bool,
    "storage.s3.keyid": _parse_str,
    "http.addr": parse_addr,
    "http.tls.certificate": _parse_path,
    "http.tls.key": _parse_path,
    "http.headers": _parse_headers,
    "auth.htpasswd.realm": _parse_text,
    "auth.htpasswd.path": _parse_path,
    "auth.token.realm": _parse_text,
    "auth.token.service": _parse_text,
    "auth.token.issuer": _parse_text,
    "auth.token.rootcertbundle": _parse_path,
    "auth.token.jwks": _parse_path,
    "auth.token.autoredirect": parse_bool,
    "auth.token.autoredirectpath": _parse_text,
    "auth.token.signingalgorithms": _parse_algorithms,
    "health.storagedriver.enabled": parse_bool,
    "health.storagedriver.interval": parse_duration,
    "health.storagedriver.threshold": _threshold,
    "health.file": _parse_file_checks,
    "health.http": _parse_http_checks,
    "health.tcp": _parse_tcp_checks,
    "notifications.endpoints": _parse_endpoints,
    "notifications.events.includereferences": parse_bool,
    "http.debug.addr": parse_addr,
    "http.debug.prometheus.enabled": parse_bool,
    "http.debug.prometheus.path": _parse_url_path,
    # regtui's own section (Distribution ignores unknown top-level keys).
    "regtui.extensions.enabled": parse_bool,
    "regtui.extensions.admins": _parse_names,
    "proxy.remoteurl": lambda value: value,  # checked with the section (_check_proxy)
    "proxy.username": lambda value: value,
    "proxy.password": lambda value: value,
    "proxy.ttl": lambda value: value,
    "regtui.proxy": _parse_proxies,
    "regtui.retention.enabled": parse_bool,
    "regtui.retention.policy": _parse_path,
    "regtui.retention.rules": _parse_rules,
    "regtui.retention.interval": parse_duration,
    "regtui.retention.dryrun": parse_bool,
    "regtui.retention.gc": parse_bool,
    "regtui.immutable": parse_immutable,
    "regtui.quota": parse_quotas,
}
# Mappings whose children are data, not keys.
_LEAF_MAPPINGS = {
    "http.headers",
    "regtui.proxy",
    "regtui.retention.rules",
    "notifications.endpoints",
    "regtui.immutable",
    "regtui.quota",
}
# The sections the known keys live in: each must be a mapping (``http: x`` is an error).
_SECTIONS = {key.rsplit(".", i)[0] for key in KNOWN_KEYS for i in range(1, key.count(".") + 1)}
_OTHER_STORAGE_DRIVERS = {"gcs", "azure", "swift", "oss", "inmemory"}
_STORAGE_DRIVERS = {"filesystem", "s3"} | _OTHER_STORAGE_DRIVERS
_STORAGE_SETTINGS = {"maintenance", "cache", "delete", "redirect", "tag"}
"""What Distribution reads under ``storage`` besides the one driver."""
AUTH_METHODS = ("htpasswd", "token")

_GUARDED = ("auth", "storage", "http.tls", "proxy")
_STRICT = (
    "health",
    "http.debug",
    "notifications",
    "regtui.retention",
    "regtui.immutable",
    "regtui.quota",
)
"""Sections operators rely on to watch the registry: honoured exactly, or it does not start."""
NOTIFICATIONS_REFUSED = (
    "notifications.endpoints: set the endpoints in the config file (a list of mappings), not "
    "in REGISTRY_NOTIFICATIONS_* variables"
)
"""Sections that guard data or access: honoured exactly, or the registry does not start."""
_WARN_ONLY = (
    "storage.cache",
    "storage.tag",
    "storage.filesystem.maxthreads",
    "storage.s3.loglevel",
)
"""Keys under ``storage`` that tune performance or logging only: ignored with a warning."""


def _under(key: str, sections: tuple[str, ...]) -> bool:
    return any(key == section or key.startswith(section + ".") for section in sections)


def _guarded(key: str) -> bool:
    return _under(key, _GUARDED) and not _under(key, _WARN_ONLY)


def _check_strict(key: str) -> None:
    """A key of ``health`` or ``http.debug`` regtui does not know stops the start."""
    if _under(key, _STRICT):
        raise ConfigError(
            f"{key} is not a setting regtui supports; it refuses to start rather than ignore a "
            "health, debug, notifications, retention or governance setting"
        )


def _flatten(data: Mapping[str, Any], prefix: str, out: dict[str, Any]) -> None:
    """``data`` as dotted keys; a section of the wrong type is a ConfigError."""
    for key, value in data.items():
        dotted = f"{prefix}{str(key).lower()}"
        guarded = _guarded(dotted)
        if dotted in _SECTIONS or (guarded and dotted not in KNOWN_KEYS):
            if value is None or value == {}:
                if guarded:
                    raise ConfigError(
                        f"{dotted} is empty: configure it or remove it from the config file"
                    )
                continue  # an empty section of no consequence (``log:``)
            if dotted in _SECTIONS and not isinstance(value, dict):
                raise ConfigError(f"{dotted} must be a mapping, not {_kind(value)}")
        if isinstance(value, dict) and dotted not in _LEAF_MAPPINGS:
            if not value:
                out.setdefault(dotted, {})
            _flatten(value, f"{dotted}.", out)
        else:
            out[dotted] = value


def _env_values(env: Mapping[str, str]) -> tuple[dict[str, Any], list[str]]:
    by_env_name = {
        ENV_PREFIX + key.upper().replace(".", "_"): key
        for key in KNOWN_KEYS
        if key not in _LEAF_MAPPINGS
    }
    values: dict[str, Any] = {}
    unknown: list[str] = []
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX):
            continue
        key = by_env_name.get(name)
        if key is None:
            unknown.append(name)
        else:
            values[key] = value
    return values, sorted(unknown)


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"config file {path} is not valid YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must be a mapping at the top level")
    return data


@dataclass
class Overrides:
    """Command-line flags; ``None`` leaves the value of the file or environment."""

    addr: str | None = None
    root: str | None = None
    read_only: bool | None = None
    log_level: str | None = None


def load_config(
    path: Path | str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Overrides | None = None,
    data: Mapping[str, Any] | None = None,
    require_storage: bool = False,
) -> Config:
    """Build the configuration from a file (or ``data``), the environment and the flags.

    ``require_storage``: a ConfigError unless the file or the environment names a storage
    driver, as Distribution requires (a tool that acts on "the registry's storage" must not
    fall back to the default root). Such a tool serves nothing, so ``auth``, ``http.tls`` and
    ``proxy`` are not its business: they are left out with a warning (``regtui gc --config``
    on a pull-through cache's config.yml), while ``storage`` stays as strict as for serving."""
    env = dict(os.environ if env is None else env)
    warnings: list[str] = []
    source = data if data is not None else _read_file(Path(path)) if path is not None else {}
    if require_storage:
        source = _storage_only(source, warnings)
        env = {k: v for k, v in env.items() if not _served_only(_env_key(k))}
    raw: dict[str, Any] = {}
    _flatten(source, "", raw)
    env_values, unknown_env = _env_values(env)
    for name in unknown_env:
        _check_strict(_env_key(name))
        if _env_key(name).startswith("notifications.endpoints"):
            raise ConfigError(NOTIFICATIONS_REFUSED)
        if _guarded(_env_key(name)):
            raise ConfigError(
                f"{name} is not a setting regtui supports; it refuses to start rather than "
                "ignore a setting of auth, storage or http.tls"
            )
    _check_storage_drivers({key for key in raw if key.startswith("storage.")})
    raw.update(env_values)
    if overrides is not None and overrides.root is not None:
        # --root chooses the filesystem driver, whatever the file says (as a flag wins).
        raw = {k: v for k, v in raw.items() if not k.startswith("storage.s3.")}
    drivers = _check_storage_drivers({key for key in raw if key.startswith("storage.")})
    if require_storage and not drivers:
        raise ConfigError(
            "storage: no storage driver configured (storage.filesystem.rootdirectory or storage.s3)"
        )
    methods = sorted({key.split(".")[1] for key in raw if key.startswith("auth.")})
    if len(methods) > 1:
        raise ConfigError(
            f"auth: configure exactly one authentication method, not {' and '.join(methods)}"
        )
    if methods and methods[0] not in AUTH_METHODS:
        raise ConfigError(
            f"auth.{methods[0]}: unknown authentication method (regtui supports "
            f"{' and '.join(AUTH_METHODS)})"
        )
    warnings += [f"ignoring unknown environment variable {name}" for name in unknown_env]
    overrides = overrides or Overrides()
    if overrides.addr is not None:
        raw["http.addr"] = overrides.addr
    if overrides.root is not None:
        raw["storage.filesystem.rootdirectory"] = overrides.root
    if overrides.read_only:
        raw["storage.maintenance.readonly.enabled"] = True
    if overrides.log_level is not None:
        raw["log.level"] = overrides.log_level

    values: dict[str, Any] = {}
    for key, value in sorted(raw.items()):
        parser = KNOWN_KEYS.get(key)
        if parser is None:
            _check_strict(key)
            if _guarded(key):
                raise ConfigError(
                    f"{key} is not a setting regtui supports; it refuses to start rather than "
                    "ignore a setting of auth, storage or http.tls"
                )
            warnings.append(f"ignoring unsupported config key {key}")
            continue
        try:
            values[key] = parser(value)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"bad value for {key}: {exc}") from None
    if "storage.filesystem" in drivers and "storage.filesystem.rootdirectory" not in values:
        raise ConfigError("storage.filesystem needs a rootdirectory")
    return _build(values, env, warnings)


_SERVED_ONLY = ("auth", "http.tls", "http.debug", "proxy", "health", "notifications")
"""What only a server uses: a storage tool leaves these sections out."""


def _served_only(key: str) -> bool:
    return _under(key, _SERVED_ONLY)


def _env_key(name: str) -> str:
    """``REGISTRY_AUTH_TOKEN_REALM`` -> ``auth.token.realm`` (approximately: names may hold
    underscores, but the first parts, which decide the section, never do)."""
    return name.removeprefix(ENV_PREFIX).lower().replace("_", ".")


def _storage_only(source: Mapping[str, Any], warnings: list[str]) -> dict[str, Any]:
    """``source`` without the sections only a server uses (each left out with a warning)."""
    kept = dict(source)
    for section in ("auth", "proxy", "health", "notifications"):
        for key in [k for k in kept if str(k).lower() == section]:
            del kept[key]
            warnings.append(f"ignoring {section}: this command serves nothing")
    for key in [k for k in kept if str(k).lower() == "http"]:
        http = kept[key]
        for part in ("tls", "debug"):
            if isinstance(http, dict) and any(str(k).lower() == part for k in http):
                http = {k: v for k, v in http.items() if str(k).lower() != part}
                kept[key] = http
                warnings.append(f"ignoring http.{part}: this command serves nothing")
    return kept


def _check_storage_drivers(keys: set[str]) -> list[str]:
    """The storage driver ``keys`` name (``storage.<driver>...``): none or one, of regtui's."""
    named = sorted({key.split(".")[1] for key in keys} - _STORAGE_SETTINGS)
    if len(named) > 1:
        raise ConfigError(
            f"storage: configure exactly one storage driver, not {' and '.join(named)}"
        )
    for driver in named:
        if driver in _OTHER_STORAGE_DRIVERS:
            raise ConfigError(
                f"storage.{driver}: only the filesystem and s3 storage drivers are supported"
            )
        if driver not in _STORAGE_DRIVERS:
            raise ConfigError(
                f"storage.{driver}: unknown storage driver (regtui supports filesystem and s3)"
            )
    return [f"storage.{driver}" for driver in named]


def _build(values: dict[str, Any], env: Mapping[str, str], warnings: list[str]) -> Config:
    get = values.get
    root = get("storage.filesystem.rootdirectory")
    storage = StorageConfig(
        root=Path(root).expanduser() if root else default_root(env),
        delete_enabled=get("storage.delete.enabled", True),
        read_only=get("storage.maintenance.readonly.enabled", False),
        upload_purging=UploadPurging(
            enabled=get("storage.maintenance.uploadpurging.enabled", True),
            age=get("storage.maintenance.uploadpurging.age", 168 * 3600.0),
            interval=get("storage.maintenance.uploadpurging.interval", 24 * 3600.0),
            dryrun=get("storage.maintenance.uploadpurging.dryrun", False),
        ),
        gc_grace_period=get("storage.maintenance.gc.graceperiod", 3600.0),
        s3=_s3_config(values),
        redirect_disabled=get("storage.redirect.disable", False),
    )
    host, port = get("http.addr", (DEFAULT_HOST, DEFAULT_PORT))
    tls = None
    certificate, key = get("http.tls.certificate"), get("http.tls.key")
    if certificate is not None or key is not None:
        if certificate is None or key is None:
            raise ConfigError("http.tls needs both certificate and key")
        tls = TLSConfig(Path(certificate).expanduser(), Path(key).expanduser())
    debug = DebugConfig(
        addr=get("http.debug.addr"),
        prometheus_enabled=get("http.debug.prometheus.enabled", False),
        prometheus_path=get("http.debug.prometheus.path", DEFAULT_METRICS_PATH),
    )
    if debug.prometheus_enabled and debug.addr is None:
        raise ConfigError(
            "http.debug.prometheus needs http.debug.addr (the metrics are served on the debug "
            "listener only)"
        )
    http = HttpConfig(host=host, port=port, tls=tls, headers=get("http.headers", {}), debug=debug)
    auth: HtpasswdConfig | TokenConfig | None = None
    if any(name.startswith("auth.htpasswd.") for name in values):
        htpasswd = get("auth.htpasswd.path")
        if not htpasswd:
            raise ConfigError("auth.htpasswd needs a path")
        realm = get("auth.htpasswd.realm") or "Registry Realm"
        auth = HtpasswdConfig(realm=realm, path=Path(htpasswd).expanduser())
    elif any(name.startswith("auth.token.") for name in values):
        auth = _token_config(values)
    extensions = ExtensionsConfig(
        enabled=get("regtui.extensions.enabled", True),
        admins=get("regtui.extensions.admins", ()),
    )
    if extensions.admins and auth is None:
        warnings.append(
            "regtui.extensions.admins has no effect without auth.htpasswd or auth.token "
            "(only the local admin secret opens the extension endpoints)"
        )
    retention = _check_retention(values, storage)
    level = get("log.level", get("loglevel", "info"))
    return Config(
        storage=storage,
        http=http,
        log=LogConfig(level=level, accesslog_disabled=get("log.accesslog.disabled", False)),
        auth=auth,
        health=HealthConfig(
            storagedriver_enabled=get("health.storagedriver.enabled", True),
            storagedriver_interval=get("health.storagedriver.interval", 0.0)
            or DEFAULT_CHECK_INTERVAL,
            storagedriver_threshold=get("health.storagedriver.threshold", 0),
            file=get("health.file", ()),
            http=get("health.http", ()),
            tcp=get("health.tcp", ()),
        ),
        extensions=extensions,
        notifications=NotificationsConfig(
            endpoints=get("notifications.endpoints", ()),
            include_references=get("notifications.events.includereferences", False),
        ),
        govern=GovernConfig(get("regtui.immutable", ()), get("regtui.quota", ())),
        warnings=warnings,
        proxies=_check_proxy(values),
        retention=retention,
    )


def _token_config(values: dict[str, Any]) -> TokenConfig:
    """``auth.token`` checked as Distribution checks it: realm, service and issuer are required,
    and at least one of rootcertbundle and jwks (the keys are read when the server starts)."""
    given = {
        key.removeprefix("auth.token."): v
        for key, v in values.items()
        if key.startswith("auth.token.")
    }
    for required in ("realm", "service", "issuer"):
        if not given.get(required):
            raise ConfigError(f"auth.token needs {required} (auth.token.{required})")
    bundle, jwks = given.get("rootcertbundle"), given.get("jwks")
    if bundle is None and jwks is None:
        raise ConfigError("auth.token needs rootcertbundle or jwks (the token signing keys)")
    autoredirect = given.get("autoredirect", False)
    path = given.get("autoredirectpath") or DEFAULT_AUTOREDIRECT_PATH
    if not path.startswith("/"):
        raise ConfigError(f"bad value for auth.token.autoredirectpath: {path!r} is not a path")
    return TokenConfig(
        realm=given["realm"],
        service=given["service"],
        issuer=given["issuer"],
        rootcertbundle=Path(bundle).expanduser() if bundle is not None else None,
        jwks=Path(jwks).expanduser() if jwks is not None else None,
        autoredirect=autoredirect,
        autoredirectpath=path,
        signingalgorithms=given.get("signingalgorithms") or SIGNING_ALGORITHMS,
    )


_BUCKET_NAME = re.compile(r"[a-zA-Z0-9.\-_]{1,255}")
"""The bucket names the S3 client accepts (botocore's rule; S3 itself is stricter for new
buckets, S3-compatible stores vary), checked here so that a bad one is one line at start."""


def _s3_config(values: dict[str, Any]) -> S3Config | None:
    """``storage.s3`` checked as Distribution checks it; ``None`` when not configured."""
    given = {
        key.removeprefix("storage.s3."): v
        for key, v in values.items()
        if key.startswith("storage.s3.")
    }
    if not given:
        return None
    bucket = given.get("bucket")
    if not bucket:
        raise ConfigError("storage.s3 needs a bucket (storage.s3.bucket)")
    if not _BUCKET_NAME.fullmatch(bucket):
        raise ConfigError(
            f"bad value for storage.s3.bucket: {bucket!r} is not a bucket name (letters, "
            "digits, '.', '-' and '_', at most 255)"
        )
    region = given.get("region")
    if not region:
        if not given.get("regionendpoint"):
            raise ConfigError("storage.s3 needs a region (storage.s3.region)")
        region = "us-east-1"
    if bool(given.get("accesskey")) != bool(given.get("secretkey")):
        raise ConfigError("storage.s3 needs both accesskey and secretkey, or neither")
    defaults = S3Config(bucket=bucket)
    chunksize = given.get("chunksize", defaults.chunksize)
    if chunksize < MIN_S3_CHUNK_SIZE:
        raise ConfigError(
            f"bad value for storage.s3.chunksize: {chunksize} is below S3's minimum part "
            f"size {MIN_S3_CHUNK_SIZE}"
        )
    copy_chunk = given.get("multipartcopychunksize", defaults.multipartcopychunksize)
    if copy_chunk < MIN_S3_CHUNK_SIZE:
        raise ConfigError(
            f"bad value for storage.s3.multipartcopychunksize: {copy_chunk} is below "
            f"{MIN_S3_CHUNK_SIZE}"
        )
    concurrency = given.get("multipartcopymaxconcurrency", defaults.multipartcopymaxconcurrency)
    if concurrency < 1:
        raise ConfigError("bad value for storage.s3.multipartcopymaxconcurrency: must be >= 1")
    return S3Config(
        bucket=bucket,
        region=region,
        regionendpoint=given.get("regionendpoint") or None,
        forcepathstyle=given.get("forcepathstyle", False),
        accesskey=given.get("accesskey") or None,
        secretkey=given.get("secretkey") or None,
        secure=given.get("secure", True),
        skipverify=given.get("skipverify", False),
        rootdirectory=given.get("rootdirectory", ""),
        chunksize=chunksize,
        multipartcopychunksize=copy_chunk,
        multipartcopymaxconcurrency=concurrency,
        multipartcopythresholdsize=given.get(
            "multipartcopythresholdsize", defaults.multipartcopythresholdsize
        ),
        storageclass=given.get("storageclass", "STANDARD"),
        encrypt=given.get("encrypt", False),
        keyid=given.get("keyid") or None,
    )


MIN_RETENTION_INTERVAL = 1.0


def _check_retention(values: dict[str, Any], storage: StorageConfig) -> RetentionConfig | None:
    """``regtui.retention`` checked at start: exactly one of ``policy`` (a file, read now) and
    ``rules``; a policy that deletes something; an interval of a second or more; storage the
    server may delete from (unless ``dryrun``)."""
    given = {
        k.removeprefix("regtui.retention."): v
        for k, v in values.items()
        if k.startswith("regtui.retention.")
    }
    if not given or not given.get("enabled", True):
        return None
    path: str | None = given.get("policy")
    rules: Policy | None = given.get("rules")
    if (path is None) == (rules is None):
        raise ConfigError(
            "regtui.retention needs exactly one of policy (a policy file) and rules (inline)"
        )
    if path is not None:
        try:
            policy = read_policy_file(Path(path).expanduser())[1]
        except PolicyError as exc:
            raise ConfigError(f"regtui.retention.policy: {exc}") from None
        source = str(path)
    else:
        assert rules is not None
        policy, source = rules, "inline"
    if not policy.deletes_tags and policy.delete_untagged_older_than is None:
        raise ConfigError(
            f"regtui.retention: the policy ({source}) would delete nothing: give a keep rule, "
            "delete_older_than or delete_untagged_older_than"
        )
    interval = given.get("interval", 24 * 3600.0)
    if interval < MIN_RETENTION_INTERVAL:
        raise ConfigError(
            f"bad value for regtui.retention.interval: {interval:g} s is below "
            f"{MIN_RETENTION_INTERVAL:g} s"
        )
    dry_run = given.get("dryrun", False)
    if not dry_run and storage.read_only:
        raise ConfigError(
            "regtui.retention: the registry is read-only (storage.maintenance.readonly): "
            "set regtui.retention.dryrun: true or remove the section"
        )
    if not dry_run and not storage.delete_enabled:
        raise ConfigError(
            "regtui.retention: storage.delete.enabled is false: set regtui.retention.dryrun: "
            "true or enable deletes"
        )
    return RetentionConfig(
        policy=policy,
        source=source,
        interval=interval,
        dry_run=dry_run,
        gc=given.get("gc", True),
    )
