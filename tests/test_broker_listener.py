"""The ZeroMQ listener survives its socket failing: real sockets, in this process, under gevent.

A fault of the monitor's own socket cannot be caused from outside a running
server, so this test runs the listener itself and closes its socket under it,
as an error inside libzmq would; the broker side is a real ROUTER.
"""

from __future__ import annotations

import gevent
import zmq.green as zmq

from monitor.broker import IDENTITY, BrokerListener
from monitor.config import Endpoint
from monitor.messages import Message

from .harness import free_port


def _send(broker: zmq.Socket, *frames: bytes) -> None:
    """Send as the broker does, waiting (cooperatively) for the monitor to be routable."""
    with gevent.Timeout(10):
        while True:
            try:
                broker.send_multipart([IDENTITY, *frames])
                return
            except zmq.ZMQError as exc:
                if exc.errno != zmq.EHOSTUNREACH:
                    raise
                gevent.sleep(0.02)


def _wait(predicate, timeout: float = 10.0) -> None:
    with gevent.Timeout(timeout):
        while not predicate():
            gevent.sleep(0.01)


def test_listener_rebinds_after_its_socket_fails_and_keeps_receiving() -> None:
    port = free_port()
    received: list[Message] = []
    exits: list[bool] = []
    listener = BrokerListener(
        Endpoint("127.0.0.1", port), received.append, lambda: exits.append(True), lambda: None
    )
    context = zmq.Context()
    broker = context.socket(zmq.ROUTER)
    broker.setsockopt(zmq.ROUTER_MANDATORY, 1)
    broker.setsockopt(zmq.LINGER, 0)
    try:
        listener.start()
        _wait(lambda: listener.bound)
        broker.connect(f"tcp://127.0.0.1:{port}")
        _send(broker, b"job", b"STARTED")
        _wait(lambda: len(received) == 1)

        listener._socket.close(linger=0)  # the fault: the socket dies under the waiting greenlet
        _wait(lambda: listener.failures == 1 and listener.bound)
        assert listener.alive
        _send(broker, b"job", b"TASK", b"t1", b"COMPLETED")
        _send(broker, b"0", b"exit")
        _wait(lambda: len(received) == 2 and exits)
        assert [message.text for message in received] == [
            '{"command": "STARTED"}',
            '{"command": "TASK", "task_id": "t1", "task_state": "COMPLETED"}',
        ]
    finally:
        listener.stop()
        broker.close(linger=0)
        context.term()
    assert not listener.alive and not listener.bound
