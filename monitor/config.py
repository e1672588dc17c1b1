"""Configuration: the original monitor's YAML keys plus this project's grouped limits.

The file stays compatible with the original (``websocket_uri``, ``zeromq_uri``,
``logger`` with ``file``, ``level``, ``max-size``, ``rotations``), so an existing
``/etc/recodex/monitor/config.yml`` keeps working unchanged.  Every problem is
reported as one :class:`ConfigError` naming the file, the key and what is wrong,
because an operator reading a failed ``systemctl start`` has nothing else to go on.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

CONFIG_ENV = "MONITOR_CONFIG"
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


class ConfigError(Exception):
    """A configuration that must stop start-up; ``str()`` is the one line to print."""


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int

    def zmq_address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"tcp://{host}:{self.port}"

    def bind_address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class LoggerConfig:
    file: str | None = None
    level: str = "info"
    max_size: int = 1024 * 1024
    rotations: int = 3


@dataclass(frozen=True)
class WebSocketConfig:
    first_message_timeout: float = 30.0
    max_message_size: int = 1024
    ping_interval: float = 25.0
    ping_timeout: float = 20.0
    send_timeout: float = 10.0
    max_pending: int = 20_000
    max_connections: int = 10_000
    allowed_origins: tuple[str, ...] = ("*",)
    require_origin: bool = False
    trusted_proxies: tuple[str, ...] = ()


@dataclass(frozen=True)
class ChannelConfig:
    retention_after_finish: float = 300.0
    max_history: int = 5_000
    idle_timeout: float = 3600.0
    max_channels: int = 100_000


@dataclass(frozen=True)
class BrokerConfig:
    allow_exit_command: bool = True


@dataclass(frozen=True)
class HttpConfig:
    status_page_enabled: bool = True
    metrics_enabled: bool = True


@dataclass(frozen=True)
class ServerConfig:
    worker_connections: int | None = None
    shutdown_timeout: float = 1.5
    header_timeout: float = 10.0


@dataclass(frozen=True)
class Config:
    websocket_uri: Endpoint = Endpoint("127.0.0.1", 4567)
    zeromq_uri: Endpoint = Endpoint("127.0.0.1", 7894)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    websocket: WebSocketConfig = field(default_factory=WebSocketConfig)
    channels: ChannelConfig = field(default_factory=ChannelConfig)
    broker: BrokerConfig = field(default_factory=BrokerConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    source: str | None = None

    @property
    def worker_connections(self) -> int:
        """gunicorn's cap: every WebSocket holds a slot, so leave room for HTTP requests."""
        if self.server.worker_connections is not None:
            return self.server.worker_connections
        return self.websocket.max_connections + max(100, self.websocket.max_connections // 10)


class _Invalid(Exception):
    """A value's problem, before the key path and file name are attached."""


Parser = Callable[[Any], Any]


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _integer(low: int, high: int) -> Parser:
    def parse(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise _Invalid(f"expected an integer from {low} to {high}, got {_describe(value)}")
        return value

    return parse


def _number(low: float, high: float) -> Parser:
    def parse(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            raise _Invalid(f"expected a number from {low:g} to {high:g}, got {_describe(value)}")
        return float(value)

    return parse


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(f"expected true or false, got {_describe(value)}")
    return value


def _level(value: Any) -> str:
    if not isinstance(value, str) or value.lower() not in LOG_LEVELS:
        raise _Invalid(f"expected one of {', '.join(LOG_LEVELS)}, got {_describe(value)}")
    return value.lower()


def _log_file(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _Invalid(f"expected a file path, got {_describe(value)}")
    try:
        with open(value, "a", encoding="utf-8"):
            pass
    except OSError as exc:
        raise _Invalid(f"cannot open {value!r} for writing: {exc.strerror}") from None
    return value


def _endpoint(value: Any) -> Endpoint:
    if (
        not isinstance(value, (list, tuple))
        or len(value) != 2
        or not isinstance(value[0], str)
        or not value[0]
    ):
        raise _Invalid(f'expected a list of host and port, like ["127.0.0.1", 4567], got {_describe(value)}')
    port = value[1]
    if isinstance(port, str) and port.isascii() and port.isdigit():
        port = int(port)
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise _Invalid(f"expected a port from 1 to 65535, got {_describe(value[1])}")
    return Endpoint(value[0], port)


def _string_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise _Invalid(f"expected a list of non-empty strings, got {_describe(value)}")
    return tuple(value)


def _origins(value: Any) -> tuple[str, ...]:
    origins = _string_list(value)
    for origin in origins:
        if origin != "*" and ("://" not in origin or origin.endswith("/")):
            raise _Invalid(
                f"expected '*' or origins like 'https://recodex.example.org', got {_describe(origin)}"
            )
    return origins


def _proxies(value: Any) -> tuple[str, ...]:
    proxies = _string_list(value)
    for proxy in proxies:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            raise _Invalid(f"expected IP addresses or networks, got {_describe(proxy)}") from None
    return proxies


def _optional(parser: Parser) -> Parser:
    def parse(value: Any) -> Any:
        return None if value is None else parser(value)

    return parse


# Each section: YAML key -> (dataclass attribute, parser).
_LOGGER_KEYS: dict[str, tuple[str, Parser]] = {
    "file": ("file", _log_file),
    "level": ("level", _level),
    "max-size": ("max_size", _integer(1024, 2**40)),
    "rotations": ("rotations", _integer(0, 1000)),
}
_WEBSOCKET_KEYS: dict[str, tuple[str, Parser]] = {
    "first_message_timeout": ("first_message_timeout", _number(0.1, 3600)),
    "max_message_size": ("max_message_size", _integer(16, 1024 * 1024)),
    "ping_interval": ("ping_interval", _number(0.1, 3600)),
    "ping_timeout": ("ping_timeout", _number(0.1, 3600)),
    "send_timeout": ("send_timeout", _number(0.1, 3600)),
    "max_pending": ("max_pending", _integer(1, 10_000_000)),
    "max_connections": ("max_connections", _integer(1, 1_000_000)),
    "allowed_origins": ("allowed_origins", _origins),
    "require_origin": ("require_origin", _boolean),
    "trusted_proxies": ("trusted_proxies", _proxies),
}
_CHANNEL_KEYS: dict[str, tuple[str, Parser]] = {
    "retention_after_finish": ("retention_after_finish", _number(0, 7 * 24 * 3600)),
    "max_history": ("max_history", _integer(1, 10_000_000)),
    "idle_timeout": ("idle_timeout", _number(0.1, 30 * 24 * 3600)),
    "max_channels": ("max_channels", _integer(1, 100_000_000)),
}
_BROKER_KEYS: dict[str, tuple[str, Parser]] = {
    "allow_exit_command": ("allow_exit_command", _boolean),
}
_HTTP_KEYS: dict[str, tuple[str, Parser]] = {
    "status_page_enabled": ("status_page_enabled", _boolean),
    "metrics_enabled": ("metrics_enabled", _boolean),
}
_SERVER_KEYS: dict[str, tuple[str, Parser]] = {
    "worker_connections": ("worker_connections", _optional(_integer(1, 10_000_000))),
    "shutdown_timeout": ("shutdown_timeout", _number(0.1, 60)),
    "header_timeout": ("header_timeout", _number(0.1, 3600)),
}
_SECTIONS: dict[str, tuple[type, dict[str, tuple[str, Parser]]]] = {
    "logger": (LoggerConfig, _LOGGER_KEYS),
    "websocket": (WebSocketConfig, _WEBSOCKET_KEYS),
    "channels": (ChannelConfig, _CHANNEL_KEYS),
    "broker": (BrokerConfig, _BROKER_KEYS),
    "http": (HttpConfig, _HTTP_KEYS),
    "server": (ServerConfig, _SERVER_KEYS),
}
_ENDPOINTS = ("websocket_uri", "zeromq_uri")


def _parse_section(
    name: str, raw: Any, cls: type, keys: dict[str, tuple[str, Parser]], warnings: list[str]
) -> Any:
    if raw is None:
        return cls()
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{name}: expected a mapping of keys, got {_describe(raw)}")
    values = {}
    for key, value in raw.items():
        if key not in keys:
            warnings.append(f"{name}.{key}: unknown key, ignored")
            continue
        attribute, parse = keys[key]
        try:
            values[attribute] = parse(value)
        except _Invalid as exc:
            raise ConfigError(f"{name}.{key}: {exc}") from None
    return cls(**values)


def parse_config(raw: Any, source: str | None = None) -> tuple[Config, list[str]]:
    """Turn the YAML document into a :class:`Config`; returns it with the warnings to log."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"top level: expected a mapping of keys, got {_describe(raw)}")
    warnings: list[str] = []
    values: dict[str, Any] = {"source": source}
    for key, value in raw.items():
        if key in _ENDPOINTS:
            try:
                values[key] = _endpoint(value)
            except _Invalid as exc:
                raise ConfigError(f"{key}: {exc}") from None
        elif key in _SECTIONS:
            cls, keys = _SECTIONS[key]
            values[key] = _parse_section(key, value, cls, keys, warnings)
        else:
            warnings.append(f"{key}: unknown key, ignored")
    config = Config(**values)
    if config.worker_connections < config.websocket.max_connections:
        raise ConfigError(
            "server.worker_connections: must be at least websocket.max_connections "
            f"({config.websocket.max_connections}), got {config.worker_connections}"
        )
    return config, warnings


def load_config(path: str | None) -> tuple[Config, list[str]]:
    """Read ``path`` (or return the built-in defaults for ``None``).

    A named file that is missing is an error, unlike the original, which silently
    fell back to defaults and so hid a typo in the service unit.
    """
    if path is None:
        return Config(), []
    try:
        with open(path, encoding="utf-8") as stream:
            raw = yaml.safe_load(stream)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration file: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: the configuration file is not UTF-8 text") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        if where is not None:
            detail = f" at line {where.line + 1}, column {where.column + 1}: {exc.problem}"
        else:
            detail = ": " + " ".join(str(exc).split())
        raise ConfigError(f"{path}: not valid YAML{detail}") from None
    try:
        return parse_config(raw, source=os.path.abspath(path))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def config_path_from_env() -> str | None:
    """The file named by ``MONITOR_CONFIG``, the way ``wsgi.py`` and gunicorn find it."""
    return os.environ.get(CONFIG_ENV) or None
