"""``recodex-monitor``: the original command line, now starting the gunicorn service."""

from __future__ import annotations

import argparse
import os
import sys

from gunicorn.app.base import BaseApplication

from . import __version__
from .config import CONFIG_ENV, Config, ConfigError, load_config
from .gunicorn_settings import gunicorn_settings
from .memory import use_system_allocator


class MonitorApplication(BaseApplication):
    """The same gunicorn application as ``gunicorn -c gunicorn.conf.py wsgi:app``."""

    def __init__(self, config: Config, warnings: list[str]) -> None:
        self.config = config
        self.warnings = warnings
        super().__init__(usage="recodex-monitor [-c FILE]", prog="recodex-monitor")

    def load_config(self) -> None:
        for key, value in gunicorn_settings(self.config).items():
            self.cfg.set(key, value)

    def load(self):
        from .app import create_app

        return create_app(self.config, self.warnings)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="recodex-monitor",
        description="Relay ReCodEx job progress from the broker (ZeroMQ) to browsers (WebSocket).",
    )
    parser.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        help="YAML configuration file (default: built-in defaults, "
        "WebSockets on 127.0.0.1:4567, broker on 127.0.0.1:7894)",
    )
    parser.add_argument("--version", action="version", version=f"recodex-monitor {__version__}")
    args = parser.parse_args(argv)
    try:
        config, warnings = load_config(args.config)
    except ConfigError as exc:
        print(f"recodex-monitor: {exc}", file=sys.stderr)
        return 2
    if args.config:
        os.environ[CONFIG_ENV] = os.path.abspath(args.config)
    use_system_allocator()
    MonitorApplication(config, warnings).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
