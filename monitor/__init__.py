"""recodex-monitor: relays ReCodEx job progress from the broker (ZeroMQ) to browsers (WebSocket)."""

__version__ = "2.0.0"
