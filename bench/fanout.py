"""Fan-out benchmark of recodex-monitor: one command, one JSON line per scenario.

    .venv/bin/python bench/fanout.py            # the full run (about two minutes)
    .venv/bin/python bench/fanout.py --quick    # a small smoke run (a few seconds)

It starts the monitor as the README does (``python -m gunicorn -c gunicorn.conf.py
wsgi:app`` from the repository root, ``MONITOR_CONFIG`` naming a temporary config
on free ports), holds the WebSocket clients in separate processes
(:mod:`wsclient`), plays the broker itself through pyzmq (``ROUTER``, connect,
``ROUTER_MANDATORY``, addressing ``recodex-monitor``), and prints one JSON line
per scenario: its figures, the target beside each, pass or fail, the CPU seconds
that the server, the clients and the broker used (from /proc) and which side
limited the run.

Every scenario checks that every socket received every message, in order,
byte for byte, and nothing more; a failed check makes the exit status 1.  A
missed target is reported as ``"pass": false`` and only changes the exit status
with ``--require-targets`` (exit 3).  Loopback only, bounded loops, every process
stopped by pid at the end, error or not.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import signal
import statistics
import sys
import tempfile
import time
from array import array
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import zmq

sys.path.insert(0, str(Path(__file__).resolve().parent))

import wsclient
from monitorproc import CLOCK_TICKS, ROOT, MonitorServer, cpu_seconds

IDENTITY = b"recodex-monitor"
MARKER = ("DOWNLOADED",)

# The original monitor (asyncio + websockets) on this 2-core machine, for comparison.
ORIGINAL = {
    "flat_out_deliveries_per_s": 48_000,
    "connections_per_s": 1_750,
    "idle_kib_per_socket": 18,
    "latency_2000_p50_ms": 26,
    "latency_2000_p99_ms": 61,
}

FULL = {
    "flat_out": {"sockets": 1000, "channels": 100, "messages": 50, "repeat": 3},
    "connect": {"sockets": 1000, "channels": 100, "repeat": 3},
    "memory": {"sockets": [1000, 10000], "per_channel": 10, "warmup": 20},
    "latency": {"sockets": 1000, "channels": 100, "rates": [500, 2000], "seconds": 5.0},
    "replay": {"sockets": 1000, "history": 1000},
}
QUICK = {
    "flat_out": {"sockets": 100, "channels": 10, "messages": 20, "repeat": 1},
    "connect": {"sockets": 100, "channels": 10, "repeat": 1},
    "memory": {"sockets": [100, 300], "per_channel": 10, "warmup": 10},
    "latency": {"sockets": 100, "channels": 10, "rates": [100, 300], "seconds": 1.0},
    "replay": {"sockets": 50, "history": 100},
}
SCENARIOS = ("flat_out", "connect", "memory", "latency", "replay")


class BenchmarkFailure(Exception):
    """A correctness check failed: the run must exit non-zero."""


# -- the client processes --------------------------------------------------------------------


class Clients:
    """The WebSocket client processes (spawned, so they share nothing with this one)."""

    def __init__(self, count: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.pipes = []
        self.processes = []
        for _ in range(count):
            mine, theirs = context.Pipe()
            process = context.Process(target=wsclient.main, args=(theirs,), daemon=True)
            process.start()
            theirs.close()
            self.pipes.append(mine)
            self.processes.append(process)

    def __len__(self) -> int:
        return len(self.pipes)

    @property
    def pids(self) -> list[int]:
        return [process.pid for process in self.processes]

    def call(
        self, name: str, arguments: list[dict] | dict | None = None, timeout: float = 120.0
    ) -> list[dict]:
        """Run a command in every client process at once; their answers, in order."""
        if not isinstance(arguments, list):
            arguments = [arguments or {}] * len(self.pipes)
        for pipe, argument in zip(self.pipes, arguments):
            pipe.send((name, argument))
        answers = []
        for index, pipe in enumerate(self.pipes):
            if not pipe.poll(timeout):
                raise BenchmarkFailure(f"client process {index} did not answer {name!r} within {timeout} s")
            answer = pipe.recv()
            if "exception" in answer:
                raise BenchmarkFailure(f"client process {index} failed in {name!r}:\n{answer['exception']}")
            answers.append(answer)
        return answers

    def stop(self) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(OSError, BrokenPipeError):
                pipe.send(("exit", {}))
        for process in self.processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join(timeout=5)


# -- the broker -------------------------------------------------------------------------------


class Broker:
    """Plays the ReCodEx broker: a ROUTER that connects and addresses ``recodex-monitor``."""

    def __init__(self, address: str) -> None:
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.socket.setsockopt(zmq.SNDHWM, 0)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(address)
        deadline = time.monotonic() + 10
        while True:  # until the monitor's socket is connected (unroutable before)
            try:
                self.socket.send_multipart([IDENTITY, b"bench-sync", b"DOWNLOADED"])
                break
            except zmq.ZMQError as exc:
                if exc.errno != zmq.EHOSTUNREACH or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        self.send_raw = self.socket.send_multipart

    def send(self, channel: str, fields: tuple[str, ...]) -> None:
        self.send_raw([IDENTITY, channel.encode(), *(field.encode() for field in fields)])

    def close(self) -> None:
        self.socket.close(linger=0)
        self.context.term()


# -- measuring --------------------------------------------------------------------------------


class CpuWindow:
    """CPU seconds of the server, each client process and this process (the broker) over a window."""

    def __init__(self, server: MonitorServer, clients: Clients) -> None:
        self.server = server
        self.clients = clients
        self.start = self._read()

    def _read(self) -> dict:
        total, worker = self.server.cpu()
        return {
            "wall": time.monotonic(),
            "server": total,
            "worker": worker,
            "clients": [cpu_seconds(pid) for pid in self.clients.pids],
            "broker": cpu_seconds(os.getpid()),
            "machine": machine_busy_seconds(),
        }

    def stop(self) -> dict:
        end = self._read()
        start = self.start
        wall = end["wall"] - start["wall"]
        server = end["server"] - start["server"]
        worker = end["worker"] - start["worker"]
        clients = [after - before for after, before in zip(end["clients"], start["clients"])]
        broker = end["broker"] - start["broker"]
        others = end["machine"] - start["machine"] - server - sum(clients) - broker
        utilisation = {
            "server_worker": worker / wall,
            "client_max": max(clients) / wall if clients else 0.0,
            "all": (server + sum(clients) + broker) / wall,
        }
        if utilisation["server_worker"] >= 0.85:
            limit = "server (its one worker process at one full core)"
        elif utilisation["client_max"] >= 0.85:
            limit = "client (a client process at one full core)"
        elif utilisation["all"] >= 1.7:
            limit = "machine (both cores busy)"
        else:
            limit = "neither side saturated (waiting on the other or on timers)"
        return {
            "wall_s": round(wall, 3),
            "server_cpu_s": round(server, 2),
            "server_worker_util": round(utilisation["server_worker"], 2),
            "clients_cpu_s": [round(value, 2) for value in clients],
            "client_max_util": round(utilisation["client_max"], 2),
            "broker_cpu_s": round(broker, 2),
            "other_processes_cpu_s": round(max(others, 0.0), 2),
            "limit": limit,
        }


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy since boot (/proc/stat), to see what else ran meanwhile."""
    with open("/proc/stat", encoding="ascii") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / CLOCK_TICKS


def spread(sockets: int, channels: list[str], processes: int) -> list[list[str]]:
    """Socket ``k`` watches channel ``k % len(channels)`` and lives in process ``k % processes``."""
    per_process: list[list[str]] = [[] for _ in range(processes)]
    for number in range(sockets):
        per_process[number % processes].append(channels[number % len(channels)])
    return per_process


def seconds(start_ns: int, end_ns: int) -> float:
    return max(end_ns - start_ns, 1) / 1e9


@contextlib.contextmanager
def running_monitor(
    work: Path, name: str, root: Path, profile: Path | None = None
) -> Iterator[MonitorServer]:
    directory = work / name
    directory.mkdir()
    server = MonitorServer(directory, root)
    spy = None
    try:
        server.start()
        if profile is not None:
            spy = _start_py_spy(server.worker_pid, profile / f"{name}.folded.txt")
        yield server
    finally:
        if spy is not None:
            _stop_py_spy(spy)
        server.stop()


def _start_py_spy(pid: int, output: Path) -> Any:
    import subprocess

    output.parent.mkdir(parents=True, exist_ok=True)
    spy = subprocess.Popen(
        ["py-spy", "record", "-p", str(pid), "-o", str(output), "--format", "raw", "--rate", "500"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    time.sleep(0.5)
    return spy


def _stop_py_spy(spy: Any) -> None:
    import subprocess

    if spy.poll() is None:
        spy.send_signal(signal.SIGINT)
    try:
        spy.wait(timeout=30)
    except subprocess.TimeoutExpired:
        spy.kill()
        spy.wait(timeout=5)


def check(condition: bool, checks: dict, name: str, detail: Any = None) -> None:
    """Record a check; one that failed once (in any repeat) stays failed."""
    checks[name] = checks.get(name, True) and bool(condition)
    if not condition and detail is not None:
        checks.setdefault("details", []).append(f"{name}: {detail}")


def wait_all(clients: Clients, timeout: float, checks: dict, name: str) -> list[dict]:
    answers = clients.call("wait", {"timeout": timeout}, timeout=timeout + 30)
    remaining = sum(answer["remaining"] for answer in answers)
    errors = [error for answer in answers for error in answer["errors"]]
    check(remaining == 0 and not errors, checks, name, f"{remaining} socket(s) short, errors {errors[:3]}")
    return answers


def verify(clients: Clients, messages: int, checks: dict, name: str, grace: float = 0.3) -> dict:
    answers = clients.call("verify", {"messages": messages, "grace": grace})
    summary = {key: sum(answer[key] for answer in answers) for key in ("sockets", "short", "extra", "open")}
    errors = [error for answer in answers for error in answer["errors"]]
    ok = (
        summary["short"] == 0
        and summary["extra"] == 0
        and not errors
        and summary["open"] == summary["sockets"]
    )
    check(ok, checks, name, f"{summary}, errors {errors[:3]}")
    summary["pings"] = sum(answer["pings"] for answer in answers)
    return summary


def open_sockets(
    clients: Clients,
    server: MonitorServer,
    per_process: list[list[str]],
    messages: dict[str, list[tuple[str, ...]]] | None,
    send_id: bool,
    checks: dict,
    name: str,
) -> list[dict]:
    arguments = []
    for channels in per_process:
        mine = None if messages is None else {channel: messages[channel] for channel in set(channels)}
        arguments.append(
            {
                "host": "127.0.0.1",
                "port": server.http_port,
                "sockets": channels,
                "messages": mine,
                "send_id": send_id,
            }
        )
    answers = clients.call("open", arguments, timeout=300)
    wanted = sum(len(channels) for channels in per_process)
    opened = sum(answer["opened"] for answer in answers)
    failures = [failure for answer in answers for failure in answer["failures"]]
    check(opened == wanted, checks, name, f"{opened} of {wanted} opened: {failures[:3]}")
    return answers


def send_markers(broker: Broker, channels: list[str]) -> None:
    for channel in channels:
        broker.send(channel, MARKER)


def finish(server: MonitorServer, clients: Clients, checks: dict) -> None:
    """Close the scenario's sockets; the server must have survived and logged no error."""
    alive = server.alive()
    clients.call("close")
    problems = server.problems()
    check(alive, checks, "server_alive", "the monitor died")
    check(not problems, checks, "server_logged_no_error", problems[:3])


# -- the scenarios ----------------------------------------------------------------------------


def scenario_parts(context: dict) -> tuple[dict, Clients, Broker, MonitorServer]:
    """What every scenario works with: its parameters, the client processes, the broker, the server."""
    return context["p"], context["clients"], context["broker"], context["server"]


def flat_out(context: dict) -> dict:
    """Every channel's messages sent as fast as the broker socket takes them."""
    parameters, clients, broker, server = scenario_parts(context)
    checks: dict = {}
    runs = []
    cpu_total = deliveries_total = 0.0
    for repeat in range(parameters["repeat"]):
        channels = [f"flat-{repeat}-{number:03}" for number in range(parameters["channels"])]
        count = parameters["messages"]
        tasks = [("TASK", f"{number:05}", "COMPLETED") for number in range(count)]
        messages = {channel: [MARKER, *tasks] for channel in channels}
        per_process = spread(parameters["sockets"], channels, len(clients))
        open_sockets(clients, server, per_process, messages, True, checks, "all_sockets_opened")
        clients.call("arm", {"messages": 1})
        send_markers(broker, channels)
        wait_all(clients, 60, checks, "all_subscribed")
        clients.call("arm", {"messages": 1 + count})
        writes = server.socket_writes()
        window = CpuWindow(server, clients)
        started = time.monotonic_ns()
        for fields in tasks:
            for channel in channels:
                broker.send(channel, fields)
        sent = time.monotonic_ns()
        answers = wait_all(clients, 120, checks, "all_received_all")
        cpu = window.stop()
        last = max(answer["last"] for answer in answers)
        deliveries = parameters["sockets"] * count
        rate = deliveries / seconds(started, last)
        writes = server.socket_writes() - writes
        runs.append(
            {
                "deliveries_per_s": round(rate),
                "broker_send_s": round(seconds(started, sent), 3),
                "messages_per_socket_write": round(deliveries / max(writes, 1), 2),
                **cpu,
            }
        )
        cpu_total += cpu["server_cpu_s"]
        deliveries_total += deliveries
        verify(clients, 1 + count, checks, "exact_in_order_nothing_extra")
        finish(server, clients, checks)
    rate = statistics.median(run["deliveries_per_s"] for run in runs)
    cpu_per_100k = cpu_total / deliveries_total * 100_000
    context["cpu_per_100k"] = (cpu_per_100k, deliveries_total, cpu_total, all(checks.values()))
    return {
        "sockets": parameters["sockets"],
        "channels": parameters["channels"],
        "messages_per_channel": parameters["messages"],
        "deliveries_per_run": parameters["sockets"] * parameters["messages"],
        "deliveries_per_s": round(rate),
        "target": ">= 100000 /s (median of runs)",
        "original": ORIGINAL["flat_out_deliveries_per_s"],
        "pass": rate >= 100_000,
        "runs": runs,
        "checks": checks,
    }


def server_cpu(context: dict) -> dict:
    """Server CPU (master + worker, utime + stime) per 100 000 deliveries, from the flat-out runs."""
    per_100k, deliveries, cpu, flat_out_correct = context["cpu_per_100k"]
    return {
        "server_cpu_s_per_100k_deliveries": round(per_100k, 3),
        "deliveries": int(deliveries),
        "server_cpu_s": round(cpu, 2),
        "target": "<= 1.0 s (one core doing 100 000 deliveries/s)",
        "pass": per_100k <= 1.0,
        "checks": {"flat_out_runs_correct": flat_out_correct},
    }


def connect(context: dict) -> dict:
    """Connections opened and subscribed as fast as the clients can open them (median of runs)."""
    parameters, clients, broker, server = scenario_parts(context)
    checks: dict = {}
    runs = []
    for repeat in range(parameters["repeat"]):
        channels = [f"connect-{repeat}-{number:03}" for number in range(parameters["channels"])]
        messages = {channel: [MARKER] for channel in channels}
        per_process = spread(parameters["sockets"], channels, len(clients))
        window = CpuWindow(server, clients)
        answers = open_sockets(clients, server, per_process, messages, True, checks, "all_sockets_opened")
        started = min(answer["started"] for answer in answers)
        ids_sent = max(answer["ended"] for answer in answers)
        clients.call("arm", {"messages": 1})
        send_markers(broker, channels)
        confirmed = max(answer["last"] for answer in wait_all(clients, 60, checks, "all_subscribed"))
        cpu = window.stop()
        verify(clients, 1, checks, "exact_in_order_nothing_extra")
        finish(server, clients, checks)
        runs.append(
            {
                "connections_per_s": round(parameters["sockets"] / seconds(started, confirmed)),
                "connections_per_s_until_ids_sent": round(parameters["sockets"] / seconds(started, ids_sent)),
                **cpu,
            }
        )
    rate = statistics.median(run["connections_per_s"] for run in runs)
    return {
        "sockets": parameters["sockets"],
        "connections_per_s": round(rate),
        "target": f"> {ORIGINAL['connections_per_s']} /s (the original), until every socket got a message",
        "pass": rate > ORIGINAL["connections_per_s"],
        "runs": runs,
        "checks": checks,
    }


def memory(context: dict) -> dict:
    """Worker RSS growth per open idle (subscribed) socket, at each size."""
    parameters, clients, broker, server = scenario_parts(context)
    checks: dict = {}
    per_channel = parameters["per_channel"]
    # Warm-up: a few connections load lazily imported code and one-time state (the SHA-1 of
    # the handshake, Flask's first request); kept few, so that the memory they free does not
    # flatter the figures below.
    warm = [f"warm-{number:03}" for number in range(max(1, parameters["warmup"] // per_channel))]
    warm_messages = {channel: [MARKER] for channel in warm}
    warm_sockets = spread(parameters["warmup"], warm, len(clients))
    open_sockets(clients, server, warm_sockets, warm_messages, True, checks, "warmup_opened")
    clients.call("arm", {"messages": 1})
    send_markers(broker, warm)
    wait_all(clients, 60, checks, "warmup_subscribed")
    clients.call("close")
    time.sleep(1.0)
    base = server.rss_kib()
    sizes = []
    total_channels: list[str] = []
    opened = 0
    for size in parameters["sockets"]:
        new_count = size - opened
        first = len(total_channels)
        channels = [f"idle-{number:05}" for number in range(first, first + new_count // per_channel)]
        total_channels += channels
        messages = {channel: [MARKER, ("STARTED",)] for channel in channels}
        open_sockets(
            clients,
            server,
            spread(new_count, channels, len(clients)),
            messages,
            True,
            checks,
            f"opened_{size}",
        )
        opened = size
        clients.call("arm", {"messages": 1})
        send_markers(broker, channels)
        wait_all(clients, 120, checks, f"subscribed_{size}")
        time.sleep(1.0)
        rss = server.rss_kib()
        sizes.append(
            {
                "sockets": size,
                "rss_kib": rss,
                "growth_kib": rss - base,
                "kib_per_socket": round((rss - base) / size, 2),
            }
        )
    clients.call("arm", {"messages": 2})
    for channel in total_channels:
        broker.send(channel, ("STARTED",))
    wait_all(clients, 120, checks, "all_idle_sockets_got_a_message")
    verify(clients, 2, checks, "exact_in_order_nothing_extra")
    finish(server, clients, checks)
    worst = max(entry["kib_per_socket"] for entry in sizes)
    return {
        "base_rss_kib": base,
        "sizes": sizes,
        "kib_per_socket": worst,
        "target": "<= 16 KiB per idle socket at every size",
        "original": ORIGINAL["idle_kib_per_socket"],
        "pass": worst <= 16,
        "checks": checks,
    }


def latency(context: dict) -> dict:
    """Broker send to client receive, at paced broker rates."""
    parameters, clients, broker, server = scenario_parts(context)
    checks: dict = {}
    channels = [f"latency-{number:03}" for number in range(parameters["channels"])]
    encoded = [channel.encode() for channel in channels]
    per_process = spread(parameters["sockets"], channels, len(clients))
    open_sockets(clients, server, per_process, None, True, checks, "all_sockets_opened")
    clients.call("arm", {"messages": 1})
    send_markers(broker, channels)
    wait_all(clients, 60, checks, "all_subscribed")
    received = 1
    results = []
    for rate in parameters["rates"]:
        total = int(rate * parameters["seconds"])
        total -= total % len(channels)
        per_channel = total // len(channels)
        clients.call("arm", {"messages": received + per_channel})
        base = received - 1
        window = CpuWindow(server, clients)
        interval = 1e9 / rate
        begin = time.monotonic_ns() + 1_000_000
        worst_lag = 0
        send = broker.send_raw
        for number in range(total):
            due = begin + int(number * interval)
            now = time.monotonic_ns()
            if due > now:
                time.sleep((due - now) / 1e9)
            else:
                worst_lag = max(worst_lag, now - due)
            sequence = base + number // len(channels)
            task = f"{sequence}:{time.monotonic_ns()}".encode()
            send([IDENTITY, encoded[number % len(channels)], b"TASK", task, b"COMPLETED"])
        wait_all(clients, 60, checks, f"all_received_at_{rate}")
        cpu = window.stop()
        received += per_channel
        samples = array("q")
        for answer in clients.call("samples"):
            samples.frombytes(answer["samples"])
        ordered = sorted(samples)
        expected = per_channel * parameters["sockets"]
        check(
            len(ordered) == expected,
            checks,
            f"one_sample_per_delivery_at_{rate}",
            f"{len(ordered)} != {expected}",
        )

        def quantile(q: float, ordered: list = ordered) -> float:
            return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e6, 3) if ordered else -1.0

        results.append(
            {
                "rate": rate,
                "messages": total,
                "deliveries": len(ordered),
                "p50_ms": quantile(0.50),
                "p90_ms": quantile(0.90),
                "p99_ms": quantile(0.99),
                "p999_ms": quantile(0.999),
                "max_ms": quantile(1.0),
                "broker_worst_lag_ms": round(worst_lag / 1e6, 3),
                **cpu,
            }
        )
    verify(clients, received, checks, "exact_in_order_nothing_extra")
    finish(server, clients, checks)
    first = results[0]
    for entry in results:
        if entry["rate"] == 2000:
            entry["original_p50_ms"] = ORIGINAL["latency_2000_p50_ms"]
            entry["original_p99_ms"] = ORIGINAL["latency_2000_p99_ms"]
    return {
        "sockets": parameters["sockets"],
        "channels": parameters["channels"],
        "p50_ms": first["p50_ms"],
        "p99_ms": first["p99_ms"],
        "at_rate": first["rate"],
        "target": f"p99 < 5 ms at {first['rate']} messages/s",
        "pass": 0 <= first["p99_ms"] < 5,
        "rates": results,
        "checks": checks,
    }


def replay(context: dict) -> dict:
    """Sockets joining a channel that already holds its history: replayed messages per second."""
    parameters, clients, broker, server = scenario_parts(context)
    checks: dict = {}
    history = parameters["history"]
    channel = "replay-000"
    messages = {channel: [("TASK", f"{number:05}", "COMPLETED") for number in range(history)]}
    for fields in messages[channel]:
        broker.send(channel, fields)
    # One probe socket proves the channel holds the whole history before the others join.
    probe = [[channel]] + [[] for _ in range(len(clients) - 1)]
    open_sockets(clients, server, probe, messages, True, checks, "probe_opened")
    clients.call("arm", {"messages": history})
    wait_all(clients, 60, checks, "history_complete")
    clients.call("close")
    per_process = spread(parameters["sockets"], [channel], len(clients))
    open_sockets(clients, server, per_process, messages, False, checks, "all_sockets_opened")
    clients.call("arm", {"messages": history})
    window = CpuWindow(server, clients)
    started = time.monotonic_ns()
    clients.call("send_ids")
    answers = wait_all(clients, 120, checks, "all_received_the_replay")
    cpu = window.stop()
    last = max(answer["last"] for answer in answers)
    verify(clients, history, checks, "exact_in_order_nothing_extra")
    finish(server, clients, checks)
    delivered = parameters["sockets"] * history
    rate = delivered / seconds(started, last)
    return {
        "sockets": parameters["sockets"],
        "history": history,
        "messages_delivered": delivered,
        "seconds": round(seconds(started, last), 3),
        "replayed_per_s": round(rate),
        "target": ">= 200000 /s",
        "pass": rate >= 200_000,
        **cpu,
        "checks": checks,
    }


RUNNERS: dict[str, Callable[[dict], dict]] = {
    "flat_out": flat_out,
    "connect": connect,
    "memory": memory,
    "latency": latency,
    "replay": replay,
}


def correct(result: dict) -> bool:
    return all(value for key, value in result["checks"].items() if key != "details")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small numbers: a smoke run of a few seconds")
    parser.add_argument("--clients", type=int, default=2, help="client processes (default 2)")
    parser.add_argument("--only", help=f"comma-separated scenarios out of {','.join(SCENARIOS)}")
    parser.add_argument("--server-root", type=Path, default=ROOT, help="checkout to start the monitor from")
    parser.add_argument(
        "--profile", type=Path, help="record py-spy profiles (folded stacks) of the worker here"
    )
    parser.add_argument("--require-targets", action="store_true", help="exit 3 when a target is missed")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    chosen = args.only.split(",") if args.only else list(SCENARIOS)
    unknown = set(chosen) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")

    def interrupted(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    failed = missed = False
    clients = Clients(args.clients)
    try:
        with tempfile.TemporaryDirectory(prefix="monitor-bench-") as work:
            for name in chosen:
                started = time.monotonic()
                context: dict = {"p": plan[name], "clients": clients}
                try:
                    with running_monitor(
                        Path(work), name, args.server_root.resolve(), args.profile
                    ) as server:
                        context["server"] = server
                        context["broker"] = Broker(server.zmq_address)
                        try:
                            result = RUNNERS[name](context)
                            extra = [("server_cpu", server_cpu)] if name == "flat_out" else []
                        finally:
                            context["broker"].close()
                except BenchmarkFailure as exc:
                    result, extra = {"checks": {"ran": False, "details": [str(exc)]}, "pass": False}, []
                    clients.call("close")
                results = [(name, result)] + [(extra_name, runner(context)) for extra_name, runner in extra]
                for scenario, entry in results:
                    entry["correct"] = correct(entry)
                    entry["quick"] = args.quick
                    entry["client_processes"] = len(clients)
                    entry["scenario_s"] = round(time.monotonic() - started, 1)
                    print(json.dumps({"scenario": scenario, **entry}), flush=True)
                    failed |= not entry["correct"]
                    missed |= not entry["pass"]
    finally:
        clients.stop()
    if failed:
        print("benchmark: a correctness check failed (see 'checks')", file=sys.stderr)
        return 1
    if missed and args.require_targets:
        print("benchmark: a target was missed (see 'pass')", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
