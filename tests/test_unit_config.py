"""Unit tests for monitor.config: defaults, the original file format, validation and its messages."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from monitor.config import (
    BrokerConfig,
    ChannelConfig,
    Config,
    ConfigError,
    Endpoint,
    HttpConfig,
    LoggerConfig,
    ServerConfig,
    WebSocketConfig,
    config_path_from_env,
    load_config,
    parse_config,
)


def config_error(raw: Any) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    return str(info.value)


# --- defaults -----------------------------------------------------------------------------------


def test_load_config_none_gives_defaults() -> None:
    config, warnings = load_config(None)
    assert warnings == []
    assert config.websocket_uri == Endpoint("127.0.0.1", 4567)
    assert config.zeromq_uri == Endpoint("127.0.0.1", 7894)
    assert config.logger.file is None
    assert config.logger.level == "info"
    assert config.source is None
    assert config == Config()


@pytest.mark.parametrize("raw", [None, {}])
def test_parse_config_empty_gives_defaults(raw: Any) -> None:
    config, warnings = parse_config(raw)
    assert warnings == []
    assert config == Config()
    assert config.websocket_uri.bind_address() == "127.0.0.1:4567"
    assert config.zeromq_uri.zmq_address() == "tcp://127.0.0.1:7894"


def test_default_values() -> None:
    config = Config()
    assert config.logger == LoggerConfig(None, "info", 1024 * 1024, 3)
    assert config.websocket == WebSocketConfig(
        first_message_timeout=30.0,
        max_message_size=1024,
        ping_interval=25.0,
        ping_timeout=20.0,
        send_timeout=10.0,
        max_pending=20_000,
        max_connections=10_000,
        allowed_origins=("*",),
        require_origin=False,
        trusted_proxies=(),
    )
    assert config.channels == ChannelConfig(300.0, 5_000, 3600.0, 100_000)
    assert config.broker == BrokerConfig(True)
    assert config.http == HttpConfig(True, True)
    assert config.server == ServerConfig(None, 1.5)
    assert config.worker_connections == 11_000


@pytest.mark.parametrize("section", ["logger", "websocket", "channels", "broker", "http", "server"])
def test_null_section_gives_its_defaults(section: str) -> None:
    config, warnings = parse_config({section: None})
    assert config == Config()
    assert warnings == []


# --- the original monitor's file ----------------------------------------------------------------


def test_original_file_format(tmp_path: Path) -> None:
    log_file = tmp_path / "monitor.log"
    path = tmp_path / "config.yml"
    path.write_text(
        "---\n"
        "websocket_uri:\n"
        '    - "0.0.0.0"\n'
        "    - 4568\n"
        "zeromq_uri:\n"
        '    - "127.0.0.2"\n'
        "    - 7895\n"
        "logger:\n"
        f'    file: "{log_file}"\n'
        '    level: "debug"\n'
        "    max-size: 2097152\n"
        "    rotations: 5\n"
        "...\n",
        encoding="utf-8",
    )
    config, warnings = load_config(str(path))
    assert warnings == []
    assert config.websocket_uri == Endpoint("0.0.0.0", 4568)
    assert config.zeromq_uri == Endpoint("127.0.0.2", 7895)
    assert config.logger == LoggerConfig(str(log_file), "debug", 2097152, 5)
    assert config.source == os.path.abspath(path)
    assert log_file.exists()
    assert config.websocket == WebSocketConfig()


def test_load_config_relative_path_source_is_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "c.yml").write_text("zeromq_uri: [localhost, 9000]\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    config, _ = load_config("c.yml")
    assert config.source == str(tmp_path / "c.yml")
    assert config.zeromq_uri == Endpoint("localhost", 9000)


def test_every_section_from_yaml(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    path.write_text(
        """
websocket_uri: ["::", 80]
zeromq_uri: ["::1", 7894]
logger: {level: WARNING, file: ""}
websocket:
  first_message_timeout: 5
  max_message_size: 16
  ping_interval: 0.5
  ping_timeout: 3600
  send_timeout: 2.5
  max_pending: 1
  max_connections: 50
  allowed_origins: ["https://recodex.example.org", "http://localhost:8080"]
  require_origin: true
  trusted_proxies: ["10.0.0.0/8", "::1"]
channels:
  retention_after_finish: 0
  max_history: 10
  idle_timeout: 60
  max_channels: 7
broker: {allow_exit_command: false}
http: {status_page_enabled: false, metrics_enabled: false}
server: {worker_connections: 50, shutdown_timeout: 60}
""",
        encoding="utf-8",
    )
    config, warnings = load_config(str(path))
    assert warnings == []
    assert config.websocket_uri.bind_address() == "[::]:80"
    assert config.zeromq_uri.zmq_address() == "tcp://[::1]:7894"
    assert config.logger == LoggerConfig(None, "warning")
    assert config.websocket == WebSocketConfig(
        first_message_timeout=5.0,
        max_message_size=16,
        ping_interval=0.5,
        ping_timeout=3600.0,
        send_timeout=2.5,
        max_pending=1,
        max_connections=50,
        allowed_origins=("https://recodex.example.org", "http://localhost:8080"),
        require_origin=True,
        trusted_proxies=("10.0.0.0/8", "::1"),
    )
    assert config.channels == ChannelConfig(0.0, 10, 60.0, 7)
    assert config.broker == BrokerConfig(False)
    assert config.http == HttpConfig(False, False)
    assert config.server == ServerConfig(50, 60.0)
    assert config.worker_connections == 50


# --- endpoints ----------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["websocket_uri", "zeromq_uri"])
def test_port_as_digit_string_is_accepted(key: str) -> None:
    config, _ = parse_config({key: ["localhost", "8080"]})
    assert getattr(config, key) == Endpoint("localhost", 8080)
    assert isinstance(getattr(config, key).port, int)


@pytest.mark.parametrize("port", [1, 65535])
def test_port_bounds_accepted(port: int) -> None:
    config, _ = parse_config({"zeromq_uri": ["h", port]})
    assert config.zeromq_uri.port == port


def test_endpoint_tuple_accepted() -> None:
    config, _ = parse_config({"zeromq_uri": ("h", 1)})
    assert config.zeromq_uri == Endpoint("h", 1)


@pytest.mark.parametrize(
    ("port", "shown"),
    [(0, "0"), (65536, "65536"), (-1, "-1"), (True, "True"), ("http", "'http'"), ("", "''"), (80.0, "80.0")],
)
@pytest.mark.parametrize("key", ["websocket_uri", "zeromq_uri"])
def test_bad_port(key: str, port: Any, shown: str) -> None:
    assert config_error({key: ["h", port]}) == f"{key}: expected a port from 1 to 65535, got {shown}"


@pytest.mark.parametrize("port", ["\u00b2", "\u2460", "0"])
def test_bad_digit_string_port_is_config_error(port: str) -> None:
    # str.isdigit() is true for "²" and "①", which int() cannot parse; "0" is out of range.
    assert config_error({"websocket_uri": ["h", port]}) == (
        f"websocket_uri: expected a port from 1 to 65535, got {port!r}"
    )


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("127.0.0.1:4567", "'127.0.0.1:4567'"),
        (["h"], "['h']"),
        (["h", 1, 2], "['h', 1, 2]"),
        (["", 1], "['', 1]"),
        ([1, 1], "[1, 1]"),
        ({"host": "h", "port": 1}, "{'host': 'h', 'port': 1}"),
        (None, "None"),
    ],
)
def test_bad_endpoint_shape(value: Any, shown: str) -> None:
    assert config_error({"zeromq_uri": value}) == (
        f'zeromq_uri: expected a list of host and port, like ["127.0.0.1", 4567], got {shown}'
    )


def test_long_values_are_shortened_in_messages() -> None:
    message = config_error({"zeromq_uri": "x" * 200})
    assert message == (
        'zeromq_uri: expected a list of host and port, like ["127.0.0.1", 4567], got '
        + "'"
        + "x" * 56
        + "..."
    )


def test_endpoint_addresses() -> None:
    assert Endpoint("127.0.0.1", 7894).zmq_address() == "tcp://127.0.0.1:7894"
    assert Endpoint("127.0.0.1", 4567).bind_address() == "127.0.0.1:4567"
    assert Endpoint("localhost", 1).zmq_address() == "tcp://localhost:1"
    assert Endpoint("::1", 7894).zmq_address() == "tcp://[::1]:7894"
    assert Endpoint("::1", 4567).bind_address() == "[::1]:4567"
    assert Endpoint("fe80::1", 80).bind_address() == "[fe80::1]:80"
    assert Endpoint("*", 7894).zmq_address() == "tcp://*:7894"


# --- every key: valid and invalid values ----------------------------------------------------------

INT_RANGE = "expected an integer from {} to {}, got {}"
NUM_RANGE = "expected a number from {} to {}, got {}"
BOOL = "expected true or false, got {}"

# (section, key, attribute, [(value, parsed)], [(bad value, message)])
KEYS: list[tuple[str, str, str, list[tuple[Any, Any]], list[tuple[Any, str]]]] = [
    (
        "logger",
        "level",
        "level",
        [
            ("debug", "debug"),
            ("Info", "info"),
            ("WARNING", "warning"),
            ("error", "error"),
            ("critical", "critical"),
        ],
        [
            ("verbose", "expected one of debug, info, warning, error, critical, got 'verbose'"),
            (10, "expected one of debug, info, warning, error, critical, got 10"),
            (None, "expected one of debug, info, warning, error, critical, got None"),
        ],
    ),
    (
        "logger",
        "max-size",
        "max_size",
        [(1024, 1024), (2**40, 2**40)],
        [
            (1023, INT_RANGE.format(1024, 2**40, 1023)),
            (2**40 + 1, INT_RANGE.format(1024, 2**40, 2**40 + 1)),
            (2048.0, INT_RANGE.format(1024, 2**40, 2048.0)),
            ("2048", INT_RANGE.format(1024, 2**40, "'2048'")),
            (True, INT_RANGE.format(1024, 2**40, True)),
        ],
    ),
    (
        "logger",
        "rotations",
        "rotations",
        [(0, 0), (1000, 1000)],
        [
            (-1, INT_RANGE.format(0, 1000, -1)),
            (1001, INT_RANGE.format(0, 1000, 1001)),
            (False, INT_RANGE.format(0, 1000, False)),
        ],
    ),
    (
        "logger",
        "file",
        "file",
        [(None, None), ("", None)],
        [(5, "expected a file path, got 5"), (["a"], "expected a file path, got ['a']")],
    ),
    (
        "websocket",
        "first_message_timeout",
        "first_message_timeout",
        [(0.1, 0.1), (3600, 3600.0), (7, 7.0)],
        [
            (0, NUM_RANGE.format(0.1, 3600, 0)),
            (0.05, NUM_RANGE.format(0.1, 3600, 0.05)),
            (3601, NUM_RANGE.format(0.1, 3600, 3601)),
            ("5", NUM_RANGE.format(0.1, 3600, "'5'")),
            (True, NUM_RANGE.format(0.1, 3600, True)),
            (float("nan"), NUM_RANGE.format(0.1, 3600, "nan")),
            (float("inf"), NUM_RANGE.format(0.1, 3600, "inf")),
        ],
    ),
    (
        "websocket",
        "max_message_size",
        "max_message_size",
        [(16, 16), (1024 * 1024, 1024 * 1024)],
        [
            (-1, "expected an integer from 16 to 1048576, got -1"),
            (15, "expected an integer from 16 to 1048576, got 15"),
            (1048577, "expected an integer from 16 to 1048576, got 1048577"),
            (True, "expected an integer from 16 to 1048576, got True"),
            (64.0, "expected an integer from 16 to 1048576, got 64.0"),
        ],
    ),
    (
        "websocket",
        "ping_interval",
        "ping_interval",
        [(0.1, 0.1), (3600, 3600.0)],
        [(0, NUM_RANGE.format(0.1, 3600, 0)), (False, NUM_RANGE.format(0.1, 3600, False))],
    ),
    (
        "websocket",
        "ping_timeout",
        "ping_timeout",
        [(0.1, 0.1), (3600.0, 3600.0)],
        [(-5, NUM_RANGE.format(0.1, 3600, -5)), (None, NUM_RANGE.format(0.1, 3600, None))],
    ),
    (
        "websocket",
        "send_timeout",
        "send_timeout",
        [(0.1, 0.1), (3600, 3600.0)],
        [(3600.5, NUM_RANGE.format(0.1, 3600, 3600.5)), ([1], NUM_RANGE.format(0.1, 3600, [1]))],
    ),
    (
        "websocket",
        "max_pending",
        "max_pending",
        [(1, 1), (10_000_000, 10_000_000)],
        [(0, INT_RANGE.format(1, 10_000_000, 0)), (10_000_001, INT_RANGE.format(1, 10_000_000, 10_000_001))],
    ),
    (
        "websocket",
        "max_connections",
        "max_connections",
        [(1, 1), (1_000_000, 1_000_000)],
        [(0, INT_RANGE.format(1, 1_000_000, 0)), (1_000_001, INT_RANGE.format(1, 1_000_000, 1_000_001))],
    ),
    (
        "websocket",
        "require_origin",
        "require_origin",
        [(True, True), (False, False)],
        [(1, BOOL.format(1)), ("yes", BOOL.format("'yes'")), (None, BOOL.format(None))],
    ),
    (
        "websocket",
        "allowed_origins",
        "allowed_origins",
        [
            ("*", ("*",)),
            (["*"], ("*",)),
            ("https://a.example", ("https://a.example",)),
            (["https://a.example", "http://b.example:8080"], ("https://a.example", "http://b.example:8080")),
            ([], ()),
        ],
        [
            ("a.example", "expected '*' or origins like 'https://recodex.example.org', got 'a.example'"),
            (
                "https://a.example/",
                "expected '*' or origins like 'https://recodex.example.org', got 'https://a.example/'",
            ),
            (
                ["https://a.example", "b.example"],
                "expected '*' or origins like 'https://recodex.example.org', got 'b.example'",
            ),
            ([""], "expected a list of non-empty strings, got ['']"),
            ([1], "expected a list of non-empty strings, got [1]"),
            (5, "expected a list of non-empty strings, got 5"),
            ({"a": 1}, "expected a list of non-empty strings, got {'a': 1}"),
        ],
    ),
    (
        "websocket",
        "trusted_proxies",
        "trusted_proxies",
        [
            ("10.0.0.0/8", ("10.0.0.0/8",)),
            ("::1", ("::1",)),
            (
                ["10.0.0.0/8", "::1", "192.168.1.1", "fd00::/8"],
                ("10.0.0.0/8", "::1", "192.168.1.1", "fd00::/8"),
            ),
            ("10.1.2.3/8", ("10.1.2.3/8",)),
        ],
        [
            ("proxy.local", "expected IP addresses or networks, got 'proxy.local'"),
            (["::1", "proxy.local"], "expected IP addresses or networks, got 'proxy.local'"),
            ("10.0.0.0/33", "expected IP addresses or networks, got '10.0.0.0/33'"),
            ([None], "expected a list of non-empty strings, got [None]"),
        ],
    ),
    (
        "channels",
        "retention_after_finish",
        "retention_after_finish",
        [(0, 0.0), (604800, 604800.0), (1.5, 1.5)],
        [(-1, NUM_RANGE.format(0, 604800, -1)), (604801, NUM_RANGE.format(0, 604800, 604801))],
    ),
    (
        "channels",
        "max_history",
        "max_history",
        [(1, 1), (10_000_000, 10_000_000)],
        [(0, INT_RANGE.format(1, 10_000_000, 0)), (1.0, INT_RANGE.format(1, 10_000_000, 1.0))],
    ),
    (
        "channels",
        "idle_timeout",
        "idle_timeout",
        [(0.1, 0.1), (2_592_000, 2_592_000.0)],
        [],  # message checked separately (its upper bound is printed with %g)
    ),
    (
        "channels",
        "max_channels",
        "max_channels",
        [(1, 1), (100_000_000, 100_000_000)],
        [(0, INT_RANGE.format(1, 100_000_000, 0)), (True, INT_RANGE.format(1, 100_000_000, True))],
    ),
    (
        "broker",
        "allow_exit_command",
        "allow_exit_command",
        [(True, True), (False, False)],
        [(0, BOOL.format(0)), ("false", BOOL.format("'false'"))],
    ),
    (
        "http",
        "status_page_enabled",
        "status_page_enabled",
        [(True, True), (False, False)],
        [(1, BOOL.format(1))],
    ),
    (
        "http",
        "metrics_enabled",
        "metrics_enabled",
        [(True, True), (False, False)],
        [("no", BOOL.format("'no'"))],
    ),
    (
        "server",
        "worker_connections",
        "worker_connections",
        [(None, None), (10_000, 10_000), (10_000_000, 10_000_000)],
        [
            (0, INT_RANGE.format(1, 10_000_000, 0)),
            (10_000_001, INT_RANGE.format(1, 10_000_000, 10_000_001)),
            (True, INT_RANGE.format(1, 10_000_000, True)),
        ],
    ),
    (
        "server",
        "shutdown_timeout",
        "shutdown_timeout",
        [(0.1, 0.1), (60, 60.0)],
        [(0, NUM_RANGE.format(0.1, 60, 0)), (61, NUM_RANGE.format(0.1, 60, 61))],
    ),
    (
        "server",
        "header_timeout",
        "header_timeout",
        [(0.1, 0.1), (3600, 3600.0)],
        [(0, NUM_RANGE.format(0.1, 3600, 0)), ("10s", NUM_RANGE.format(0.1, 3600, "'10s'"))],
    ),
]

VALID = [
    pytest.param(section, key, attribute, value, parsed, id=f"{section}.{key}={value!r}")
    for section, key, attribute, good, _ in KEYS
    for value, parsed in good
]
INVALID = [
    pytest.param(section, key, value, message, id=f"{section}.{key}={value!r}")
    for section, key, _, _, bad in KEYS
    for value, message in bad
]


@pytest.mark.parametrize(("section", "key", "attribute", "value", "parsed"), VALID)
def test_valid_value(section: str, key: str, attribute: str, value: Any, parsed: Any) -> None:
    config, warnings = parse_config({section: {key: value}})
    assert warnings == []
    result = getattr(getattr(config, section), attribute)
    assert result == parsed
    assert type(result) is type(parsed)


@pytest.mark.parametrize(("section", "key", "value", "message"), INVALID)
def test_invalid_value(section: str, key: str, value: Any, message: str) -> None:
    assert config_error({section: {key: value}}) == f"{section}.{key}: {message}"


def test_every_key_is_covered() -> None:
    from monitor import config as module

    declared = {(section, key) for section, (_, keys) in module._SECTIONS.items() for key in keys}
    assert declared == {(section, key) for section, key, *_ in KEYS}


def test_idle_timeout_out_of_range_names_key() -> None:
    for value in (0, 2_592_001, True, "1h"):
        message = config_error({"channels": {"idle_timeout": value}})
        assert message.startswith("channels.idle_timeout: expected a number from 0.1 to ")
        assert message.endswith(f", got {value!r}")


@pytest.mark.parametrize(
    "raw",
    [
        {"websocket": {"max_message_size": True}},
        {"websocket": {"max_connections": True}},
        {"channels": {"max_history": True}},
        {"channels": {"retention_after_finish": False}},
        {"logger": {"rotations": True}},
        {"server": {"worker_connections": True}},
    ],
)
def test_booleans_are_not_numbers(raw: dict) -> None:
    with pytest.raises(ConfigError, match=r"got (True|False)$"):
        parse_config(raw)


@pytest.mark.parametrize("section", ["logger", "websocket", "channels", "broker", "http", "server"])
def test_section_must_be_mapping(section: str) -> None:
    assert config_error({section: [1, 2]}) == f"{section}: expected a mapping of keys, got [1, 2]"
    assert config_error({section: "x"}) == f"{section}: expected a mapping of keys, got 'x'"


@pytest.mark.parametrize("raw", [[1], "text", 5])
def test_top_level_must_be_mapping(raw: Any) -> None:
    assert config_error(raw) == f"top level: expected a mapping of keys, got {raw!r}"


# --- unknown keys -------------------------------------------------------------------------------


def test_unknown_keys_are_warnings() -> None:
    config, warnings = parse_config(
        {
            "websocket_url": ["h", 1],
            "websocket": {"max_conections": 5, "max_connections": 200},
            "channels": {"retention": 1},
            "logger": {"max_size": 5},
        }
    )
    assert warnings == [
        "websocket_url: unknown key, ignored",
        "websocket.max_conections: unknown key, ignored",
        "channels.retention: unknown key, ignored",
        "logger.max_size: unknown key, ignored",
    ]
    assert config.websocket.max_connections == 200
    assert config.channels == ChannelConfig()
    assert config.logger == LoggerConfig()
    assert config.websocket_uri == Endpoint("127.0.0.1", 4567)


# --- worker_connections ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("max_connections", "expected"), [(1, 101), (1000, 1100), (2000, 2200), (50_000, 55_000)]
)
def test_worker_connections_default_has_headroom(max_connections: int, expected: int) -> None:
    config, _ = parse_config({"websocket": {"max_connections": max_connections}})
    assert config.server.worker_connections is None
    assert config.worker_connections == expected


def test_explicit_worker_connections_equal_to_max_connections() -> None:
    config, _ = parse_config({"websocket": {"max_connections": 300}, "server": {"worker_connections": 300}})
    assert config.worker_connections == 300


def test_worker_connections_below_max_connections_rejected() -> None:
    assert config_error({"websocket": {"max_connections": 300}, "server": {"worker_connections": 299}}) == (
        "server.worker_connections: must be at least websocket.max_connections (300), got 299"
    )


def test_worker_connections_below_default_max_connections_rejected() -> None:
    assert config_error({"server": {"worker_connections": 1000}}) == (
        "server.worker_connections: must be at least websocket.max_connections (10000), got 1000"
    )


# --- load_config errors ------------------------------------------------------------------------


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config.yml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def load_error(path: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return str(info.value)


def test_load_config_value_error_starts_with_path(tmp_path: Path) -> None:
    path = write(tmp_path, "websocket:\n  max_message_size: -1\n")
    assert (
        load_error(path)
        == f"{path}: websocket.max_message_size: expected an integer from 16 to 1048576, got -1"
    )


def test_load_config_yaml_booleans_are_not_integers(tmp_path: Path) -> None:
    path = write(tmp_path, "channels:\n  max_history: yes\n")
    assert (
        load_error(path) == f"{path}: channels.max_history: expected an integer from 1 to 10000000, got True"
    )


def test_load_config_missing_file(tmp_path: Path) -> None:
    path = str(tmp_path / "missing.yml")
    assert load_error(path) == f"{path}: cannot read the configuration file: No such file or directory"


def test_load_config_directory(tmp_path: Path) -> None:
    assert load_error(str(tmp_path)).startswith(f"{tmp_path}: cannot read the configuration file: ")


def test_load_config_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    path.write_bytes(b"logger:\n  level: \xff\xfe\n")
    assert load_error(str(path)) == f"{path}: the configuration file is not UTF-8 text"


def test_load_config_invalid_yaml_reports_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "websocket:\n  max_message_size: 16\n bad: [\n")
    message = load_error(path)
    assert message.startswith(f"{path}: not valid YAML at line 3, column 2: ")


def test_load_config_unclosed_flow_sequence(tmp_path: Path) -> None:
    path = write(tmp_path, 'zeromq_uri: ["h", 1\nlogger: {}\n')
    message = load_error(path)
    assert message.startswith(f"{path}: not valid YAML at line ")
    assert ", column " in message


def test_load_config_tab_indentation(tmp_path: Path) -> None:
    path = write(tmp_path, "logger:\n\tlevel: info\n")
    assert load_error(path) == (
        f"{path}: not valid YAML at line 2, column 1: found character '\\t' that cannot start any token"
    )


def test_load_config_control_character_says_what_and_where(tmp_path: Path) -> None:
    # PyYAML's reader rejects control characters with a ReaderError, which has no problem_mark
    # and no problem attribute, but does know the character and its position.
    path = write(tmp_path, "logger:\n  level: in\x01fo\n")
    message = load_error(path)
    assert message.startswith(f"{path}: not valid YAML")
    assert "#x0001" in message, message
    assert "position 19" in message or "line 2, column 12" in message, message


def test_load_config_empty_file_gives_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    config, warnings = load_config(path)
    assert warnings == []
    assert config.websocket_uri == Endpoint("127.0.0.1", 4567)
    assert config.source == os.path.abspath(path)


def test_load_config_top_level_list(tmp_path: Path) -> None:
    path = write(tmp_path, "- a\n- b\n")
    assert load_error(path) == f"{path}: top level: expected a mapping of keys, got ['a', 'b']"


def test_load_config_returns_warnings(tmp_path: Path) -> None:
    path = write(tmp_path, "extra: 1\nhttp:\n  status_page: false\n")
    config, warnings = load_config(path)
    assert warnings == ["extra: unknown key, ignored", "http.status_page: unknown key, ignored"]
    assert config.http == HttpConfig()


# --- log file ------------------------------------------------------------------------------------


def test_log_file_in_missing_directory(tmp_path: Path) -> None:
    log_file = tmp_path / "no-such-dir" / "monitor.log"
    assert config_error({"logger": {"file": str(log_file)}}) == (
        f"logger.file: cannot open {str(log_file)!r} for writing: No such file or directory"
    )
    assert not log_file.parent.exists()


def test_log_file_in_missing_directory_from_file(tmp_path: Path) -> None:
    log_file = tmp_path / "no-such-dir" / "monitor.log"
    path = write(tmp_path, f"logger:\n  file: {log_file}\n")
    assert load_error(path) == (
        f"{path}: logger.file: cannot open {str(log_file)!r} for writing: No such file or directory"
    )


def test_log_file_is_directory(tmp_path: Path) -> None:
    message = config_error({"logger": {"file": str(tmp_path)}})
    assert message.startswith(f"logger.file: cannot open {str(tmp_path)!r} for writing: ")


def test_existing_log_file_is_kept(tmp_path: Path) -> None:
    log_file = tmp_path / "monitor.log"
    log_file.write_text("earlier line\n", encoding="utf-8")
    config, _ = parse_config({"logger": {"file": str(log_file)}})
    assert config.logger.file == str(log_file)
    assert log_file.read_text(encoding="utf-8") == "earlier line\n"


# --- environment ---------------------------------------------------------------------------------


def test_config_path_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MONITOR_CONFIG", raising=False)
    assert config_path_from_env() is None
    monkeypatch.setenv("MONITOR_CONFIG", "")
    assert config_path_from_env() is None
    monkeypatch.setenv("MONITOR_CONFIG", "/etc/recodex/monitor/config.yml")
    assert config_path_from_env() == "/etc/recodex/monitor/config.yml"
