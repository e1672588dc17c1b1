"""``recodex-monitor-send``: play the broker and send progress messages to a running monitor.

Checking a deployment end to end (``zeromq_uri``, firewall, reverse proxy, the
browser) otherwise needs a broker, a worker and a submission.  This command does
what the broker does, with nothing but pyzmq: a ``ROUTER`` socket that connects
to the monitor and addresses its messages to the peer ``recodex-monitor``.

It is a plain blocking program (``zmq``, not ``zmq.green``): it runs outside the
gevent service and sends a handful of messages.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import zmq

from . import __version__
from .config import ConfigError, Endpoint, load_config

PROG = "recodex-monitor-send"
MONITOR_IDENTITY = b"recodex-monitor"
DEFAULT_ENDPOINT = Endpoint("127.0.0.1", 7894)
TASK_STATES = ("COMPLETED", "FAILED", "SKIPPED")
# The commands a job's channel carries (docs/PROTOCOL.md).  The broker's "exit" on
# channel 0 is left out on purpose: one typo should not stop a production monitor.
COMMANDS = ("DOWNLOADED", "STARTED", "TASK", "ENDED", "UPLOADED", "FINISHED", "FAILED", "ABORTED")
# A bind address means "every interface": the monitor is then reachable on loopback.
WILDCARD_HOSTS = {"0.0.0.0": "127.0.0.1", "*": "127.0.0.1", "::": "::1", "[::]": "::1"}
RETRY_PAUSE = 0.02

Frames = tuple[str, ...]


class NoMonitor(Exception):
    """Nobody took the message in time: the monitor is down or listens elsewhere."""


def demo_run() -> list[Frames]:
    """A job as a worker reports it: compilation, then tests, one of which fails.

    Test 6 fails at run time, so its judging task is skipped, the way a
    ReCodEx worker skips the tasks that depend on a failed one.  The job
    itself still ends normally (ENDED, UPLOADED, FINISHED).
    """
    states = ["COMPLETED"] * 12
    states[6] = "FAILED"
    states[7] = "SKIPPED"
    tasks = [("TASK", f"t{number:02d}", state) for number, state in enumerate(states, start=1)]
    return [("DOWNLOADED",), ("STARTED",), *tasks, ("ENDED",), ("UPLOADED",), ("FINISHED",)]


def zmq_address_from_config(path: str) -> str:
    """The address the broker would connect to, from the monitor's own configuration file.

    The monitor *binds* ``zeromq_uri``; a wildcard bind host is not an address
    one can connect to, so it becomes the loopback of the same family.
    """
    config, _ = load_config(path)
    endpoint = config.zeromq_uri
    host = WILDCARD_HOSTS.get(endpoint.host, endpoint.host)
    return Endpoint(host, endpoint.port).zmq_address()


def open_socket(address: str) -> zmq.Socket:
    """A ROUTER like the broker's; ROUTER_MANDATORY makes an absent monitor an error.

    Without it ZeroMQ drops messages for a peer that is not connected yet, and
    the command would report success for messages nobody received.
    """
    context = zmq.Context.instance()
    socket = context.socket(zmq.ROUTER)
    socket.setsockopt(zmq.ROUTER_MANDATORY, 1)
    if address.startswith("tcp://["):
        socket.setsockopt(zmq.IPV6, 1)
    socket.connect(address)
    return socket


def send_message(socket: zmq.Socket, frames: Frames, timeout: float) -> None:
    """Send one message, retrying while the monitor is not (yet) connected.

    The TCP connection and ZeroMQ handshake happen in the background after
    ``connect``; until the monitor has introduced itself, sending to its
    identity fails with EHOSTUNREACH, so the only way to know is to try.
    """
    deadline = time.monotonic() + timeout
    payload = [MONITOR_IDENTITY, *(frame.encode("utf-8") for frame in frames)]
    while True:
        try:
            socket.send_multipart(payload, flags=zmq.NOBLOCK)
            return
        except zmq.ZMQError as exc:
            # EAGAIN: connected but not reading (queue full); same remedy, same limit.
            if exc.errno not in (zmq.EHOSTUNREACH, zmq.EAGAIN):
                raise
        if time.monotonic() >= deadline:
            raise NoMonitor
        time.sleep(RETRY_PAUSE)


def send_all(
    address: str, job_id: str, messages: Sequence[Frames], interval: float, timeout: float, quiet: bool
) -> None:
    """Send ``messages`` on channel ``job_id`` with ``interval`` seconds between them."""
    socket = open_socket(address)
    try:
        for index, frames in enumerate(messages):
            if index and interval > 0:
                time.sleep(interval)
            send_message(socket, (job_id, *frames), timeout)
            if not quiet:
                print("sent", job_id, *frames, flush=True)
    finally:
        # Linger: a message handed to ZeroMQ may still be in its queue; give it the
        # same time the monitor had to answer instead of dropping it on exit.
        socket.close(linger=int(timeout * 1000))
        zmq.Context.instance().term()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Send ReCodEx progress messages to a running recodex-monitor, as the broker does.",
        epilog=f"Examples: {PROG} job-1 STARTED; {PROG} job-1 TASK t01 COMPLETED; "
        f"{PROG} --demo job-1 (a whole run, then open the status page and watch job-1).",
    )
    parser.add_argument("job_id", metavar="JOB_ID", help="the channel: the job id browsers watch")
    parser.add_argument(
        "command",
        metavar="COMMAND",
        nargs="?",
        type=str.upper,
        help=f"one of {', '.join(COMMANDS)} (not with --demo)",
    )
    parser.add_argument("task_id", metavar="TASK_ID", nargs="?", help="only for TASK")
    parser.add_argument(
        "task_state",
        metavar="TASK_STATE",
        nargs="?",
        type=str.upper,
        help=f"only for TASK: {'/'.join(TASK_STATES)}",
    )
    parser.add_argument(
        "--demo", action="store_true", help="send a whole job run, with a failed and a skipped task"
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=0.5,
        metavar="SECONDS",
        help="pause between demo messages, so a person can follow (default: 0.5)",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--zmq",
        metavar="URI",
        help=f"the monitor's broker endpoint (default: {DEFAULT_ENDPOINT.zmq_address()})",
    )
    where.add_argument(
        "-c", "--config", metavar="FILE", help="take the endpoint from the monitor's zeromq_uri"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="how long to wait for the monitor to take a message (default: 5)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    return parser


def parse_messages(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[Frames]:
    """Check the positional arguments against the protocol; argparse errors exit with 2."""
    if not args.job_id:
        parser.error("JOB_ID must not be empty")
    if args.demo:
        if args.command is not None:
            parser.error("--demo sends a whole run: give it JOB_ID only")
        return demo_run()
    if args.command is None:
        parser.error("give a COMMAND, or --demo for a whole run")
    if args.command not in COMMANDS:
        parser.error(f"COMMAND must be one of {', '.join(COMMANDS)}, got {args.command!r}")
    if args.command == "TASK":
        if args.task_id is None or args.task_state is None:
            parser.error("TASK needs TASK_ID and TASK_STATE")
        if not args.task_id:
            parser.error("TASK_ID must not be empty")
        if args.task_state not in TASK_STATES:
            parser.error(f"TASK_STATE must be one of {', '.join(TASK_STATES)}, got {args.task_state!r}")
        return [("TASK", args.task_id, args.task_state)]
    if args.task_id is not None:
        parser.error(f"{args.command} takes no TASK_ID or TASK_STATE")
    return [(args.command,)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    messages = parse_messages(parser, args)
    if args.interval < 0:
        parser.error("--interval must not be negative")
    if args.timeout <= 0:
        parser.error("--timeout must be positive")
    if args.config is not None:
        try:
            address = zmq_address_from_config(args.config)
        except ConfigError as exc:
            parser.error(str(exc))
    elif args.zmq is not None:
        if "://" not in args.zmq:
            parser.error(f"--zmq expects a ZeroMQ address like tcp://127.0.0.1:7894, got {args.zmq!r}")
        address = args.zmq
    else:
        address = DEFAULT_ENDPOINT.zmq_address()
    try:
        send_all(address, args.job_id, messages, args.interval, args.timeout, args.quiet)
    except NoMonitor:
        print(
            f"{PROG}: no monitor connected at {address}: is it running, and is zeromq_uri right? "
            f"(waited {args.timeout:g} s)",
            file=sys.stderr,
        )
        return 1
    except zmq.ZMQError as exc:
        print(f"{PROG}: cannot send to {address}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
