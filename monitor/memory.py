"""Handing memory back to the operating system after many channels expire.

Freed memory tends to stay in a Python process.  CPython's own small-object
allocator (pymalloc) returns a 1 MiB arena only when every object in it is
gone, and a few long-lived objects (a counter, a timestamp) allocated while
100 000 jobs came and went are enough to pin dozens of arenas: measured with
``tools/soak.py``, RSS stayed 50 % above its start after every job expired.
The monitor therefore runs on the C allocator (``PYTHONMALLOC=malloc``, set by
re-executing itself at start-up), and after a mass expiry compacts its maps,
runs a full collection and calls glibc's ``malloc_trim``, which hands free pages
back wherever they are: RSS then returns to within a few percent of its start.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .channels import ChannelRegistry

log = logging.getLogger(__name__)


def _load_malloc_trim():
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None  # not glibc: the collection alone still helps


_malloc_trim = _load_malloc_trim()
ALLOCATOR_ENV = "PYTHONMALLOC"


def use_system_allocator() -> None:
    """Re-execute this process on the C allocator, unless an allocator was chosen already.

    The allocator is fixed when the interpreter starts, and gunicorn forks its
    worker from the master, so the master itself must start with it.  An
    operator's own ``PYTHONMALLOC`` (``pymalloc``, ``debug``) is respected.
    """
    if os.environ.get(ALLOCATOR_ENV) or _malloc_trim is None:
        return
    argv = getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv]
    try:
        os.execve(sys.executable, argv, {**os.environ, ALLOCATOR_ENV: "malloc"})
    except OSError as exc:
        log.warning("could not restart on the C allocator (%s): freed memory may not return", exc)


class MemoryReleaser:
    """Decides when a release is worth its cost, which grows with what is still alive.

    Releasing once at least ``minimum`` channels, and at least as many as remain,
    were dropped since the last release keeps the cost proportional to work
    already done.
    """

    def __init__(self, registry: ChannelRegistry, minimum: int = 1000) -> None:
        self.registry = registry
        self.minimum = minimum
        self.dropped = 0

    def dropped_channels(self, count: int) -> None:
        self.dropped += count
        if self.dropped >= max(self.minimum, len(self.registry)):
            log.debug("releasing memory after %d channel(s) were dropped", self.dropped)
            self.dropped = 0
            self.registry.compact()
            gc.collect()
            if _malloc_trim is not None:
                _malloc_trim(0)
