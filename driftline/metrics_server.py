"""Expose a Prometheus registry over HTTP for one process.

Every driftline process owns a ``CollectorRegistry`` (never the global one, so tests can
create fresh ones) and serves it on a configurable port; port 0 picks a free port.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, start_http_server

__all__ = ["serve_metrics"]


def serve_metrics(registry: CollectorRegistry, port: int, addr: str = "127.0.0.1") -> int:
    """Start the metrics HTTP server in a daemon thread and return the bound port."""
    server, _thread = start_http_server(port, addr=addr, registry=registry)
    return int(server.server_port)
