"""Logging set-up: the original monitor's ``logger`` section, to a rotating file or stderr."""

from __future__ import annotations

import logging
import logging.handlers
import sys

from .config import LoggerConfig

FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s"


def configure_logging(config: LoggerConfig) -> None:
    """Route every logger of the process to the configured destination.

    gunicorn's own error log stays on stderr (the journal under systemd): two
    processes rotating one file would lose lines.
    """
    if config.file:
        handler: logging.Handler = logging.handlers.RotatingFileHandler(
            config.file, maxBytes=config.max_size, backupCount=config.rotations, encoding="utf-8"
        )
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(config.level.upper())
