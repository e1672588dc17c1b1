"""The gunicorn worker: gevent-websocket's worker, made to start and stop the monitor.

gunicorn's gevent worker checks for shutdown once a second and then waits up to
``graceful_timeout`` for requests to end, which an open WebSocket never does.
This worker closes every socket with 1001 as soon as SIGTERM, SIGINT or SIGQUIT
arrives and exits well within two seconds.  It is also where the monitor's
ZeroMQ context is created: in the worker, after fork.
"""

from __future__ import annotations

import logging
import os
import resource
import signal
import time

import gevent
from gevent.pool import Pool
from geventwebsocket.gunicorn.workers import GeventWebSocketWorker
from gunicorn.http.wsgi import base_environ
from gunicorn.workers.ggevent import VERSION

from .handler import EXTENSION_KEY, MonitorHandler

log = logging.getLogger(__name__)
# How often the run loop looks at ``alive``: signal handlers only flip a flag.
POLL_INTERVAL = 0.05
NOTIFY_INTERVAL = 1.0


class MonitorWorker(GeventWebSocketWorker):
    wsgi_handler = MonitorHandler

    def run(self) -> None:
        monitor = self.wsgi.extensions[EXTENSION_KEY]
        self._raise_file_limit(self.worker_connections + 64)
        servers = []
        for listener in self.sockets:
            listener.setblocking(1)
            environ = base_environ(self.cfg)
            environ.update({"wsgi.multithread": True, "SERVER_SOFTWARE": VERSION})
            server = self.server_class(
                listener,
                application=self.wsgi,
                spawn=Pool(self.worker_connections),
                log=self.log,
                handler_class=self.wsgi_handler,
                environ=environ,
            )
            server.start()
            servers.append(server)
        monitor.start(on_exit=self._stop_service)
        notified = 0.0
        while self.alive:
            now = time.monotonic()
            if now - notified >= NOTIFY_INTERVAL:
                self.notify()
                notified = now
            gevent.sleep(POLL_INTERVAL)
        for server in servers:
            server.close()
        monitor.shutdown()
        for server in servers:
            server.stop(timeout=0.2)

    def handle_quit(self, sig: int, frame: object) -> None:
        """SIGINT and SIGQUIT close the sockets as cleanly as SIGTERM does."""
        self.alive = False

    def _stop_service(self) -> None:
        """The broker's exit command: ask the gunicorn master to stop everything (exit code 0)."""
        os.kill(self.ppid, signal.SIGTERM)

    @staticmethod
    def _raise_file_limit(needed: int) -> None:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft >= needed or soft == resource.RLIM_INFINITY:
            return
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        if target < needed:
            log.warning(
                "open file limit is %d but %d connections need about %d: raise LimitNOFILE",
                target,
                needed - 64,
                needed,
            )
