"""One Markdown table of the key figures of several benchmark runs (JSON-lines files).

    .venv/bin/python bench/table.py before=run0.jsonl after=run1.jsonl ...

Each argument is ``label=file`` (or just a file, labelled by its name); each
becomes a column.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _get(results: dict[str, dict], scenario: str, *path: Any) -> Any:
    value: Any = results.get(scenario)
    for key in path:
        if value is None:
            return None
        value = value[key]
    return value


def _rate(results: dict[str, dict], rate: int, key: str) -> Any:
    for entry in _get(results, "latency", "rates") or []:
        if entry["rate"] == rate:
            return entry[key]
    return None


def _cpu_per_100k(results: dict[str, dict]) -> Any:
    return _get(results, "server_cpu", "server_cpu_s_per_100k_deliveries")


def _latency(results: dict[str, dict], rate: int) -> Any:
    return _pair(_rate(results, rate, "p50_ms"), _rate(results, rate, "p99_ms"))


def _median_run(results: dict[str, dict], key: str) -> Any:
    runs = _get(results, "flat_out", "runs") or []
    values = sorted(run[key] for run in runs)
    return values[len(values) // 2] if values else None


def _size(results: dict[str, dict], index: int) -> Any:
    sizes = _get(results, "memory", "sizes") or []
    return sizes[index]["kib_per_socket"] if len(sizes) > index else None


def _pair(first: Any, second: Any) -> str | None:
    return None if first is None else f"{first} / {second}"


def _others(results: dict[str, dict]) -> Any:
    """CPU seconds that processes other than the benchmark's used during its measured windows."""
    windows = [*(_get(results, "flat_out", "runs") or []), *(_get(results, "latency", "rates") or [])]
    connect = results.get("connect") or {}
    windows += connect.get("runs", [connect])
    windows.append(results.get("replay") or {})
    return round(sum(window.get("other_processes_cpu_s", 0.0) for window in windows), 2)


def _format(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, int):
        return f"{value:,}".replace(",", " ")
    return str(value)


ROWS = [
    ("flat-out deliveries/s (median of runs)", lambda r: _get(r, "flat_out", "deliveries_per_s")),
    ("flat-out messages per socket write", lambda r: _median_run(r, "messages_per_socket_write")),
    ("flat-out server worker CPU use", lambda r: _median_run(r, "server_worker_util")),
    ("server CPU s per 100 000 deliveries", _cpu_per_100k),
    ("connections/s (until all got a message)", lambda r: _get(r, "connect", "connections_per_s")),
    ("idle KiB/socket at 1 000", lambda r: _size(r, 0)),
    ("idle KiB/socket at 10 000", lambda r: _size(r, 1)),
    ("latency p50 / p99 ms at 500 msg/s", lambda r: _latency(r, 500)),
    ("latency p50 / p99 ms at 2 000 msg/s", lambda r: _latency(r, 2000)),
    ("replayed messages/s", lambda r: _get(r, "replay", "replayed_per_s")),
    ("all correctness checks", lambda r: all(entry.get("correct") for entry in r.values()) if r else None),
    ("CPU s used by other processes meanwhile", lambda r: _others(r)),
]


def main(arguments: list[str]) -> None:
    columns = []
    for argument in arguments:
        label, _, name = argument.rpartition("=")
        path = Path(name)
        results = {}
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                entry = json.loads(line)
                results[entry["scenario"]] = entry
        columns.append((label or path.stem, results))
    print("| figure | " + " | ".join(label for label, _ in columns) + " |")
    print("| --- | " + " | ".join("---" for _ in columns) + " |")
    for title, getter in ROWS:
        print(f"| {title} | " + " | ".join(_format(getter(results)) for _, results in columns) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
