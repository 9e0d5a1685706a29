"""Loopback networking for tests: a port to listen on, and the daemon's HTTP endpoints read."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def http_get(address: str, path: str) -> tuple[int, str]:
    """(status, body) of GET http://ADDRESS/PATH; an error status is an answer, not an exception."""
    try:
        with urllib.request.urlopen(f"http://{address}{path}", timeout=10) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def metric_value(address: str, name: str) -> float | None:
    """The unlabelled sample `name` of the daemon's /metrics (None: not there)."""
    text = http_get(address, "/metrics")[1]
    return next((s.value for f in text_string_to_metric_families(text) for s in f.samples
                 if s.name == name and not s.labels), None)
