"""The optional HTTP listener (`metrics.listen`): Prometheus' /metrics, a /healthz probe, and the
status page for a person at / (status_page.py), which only `metrics.status_page_clients` may read.

Both read `Stats` at request time (metrics.py), so they never disagree with the status file and
STATUS=. /healthz is 200 when the model is loaded and the consumer's heartbeat is fresh, 503 with
a JSON reason otherwise: Kubernetes' probes and Docker's HEALTHCHECK need nothing else. A daemon
waiting for storage answers 200 with `"status": "degraded"` and why: a restart frees no space. The
server runs in its own threads and never touches the GPU, so a hung CUDA call shows up as a stale
heartbeat instead of a hung probe.
"""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.exposition import choose_encoder

from .. import __version__, logs
from ..config import parse_listen
from ..errors import TranscribedError
from .metrics import StatsCollector
from .stats import Stats
from .status_page import StatusPage

log = logs.get_logger()


class Listener:
    """/metrics and /healthz on `metrics.listen`, served by daemon threads until `close()`."""

    def __init__(self, listen: str, stats: Stats, stale_after: float, worker: str,
                 page: StatusPage | None = None) -> None:
        self.listen = listen
        #: The status page at /; None: not served.
        self.page = page if page is not None and page.enabled else None
        self.stats = stats
        self.stale_after = stale_after
        self.registry = CollectorRegistry()
        self.registry.register(StatsCollector(stats, stale_after, worker))
        # process_resident_memory_bytes and friends: RAM creep in a long-running daemon shows here.
        ProcessCollector(registry=self.registry)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Listener:
        host, port = parse_listen(self.listen)
        server_class = _IPv6Server if ":" in host else _Server
        try:
            server = server_class((host, port), _Handler)
        except OSError as exc:
            raise TranscribedError(f"metrics.listen: cannot listen on {self.listen}: "
                                   f"{exc.strerror or exc}") from None
        server.app = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.5},
                                        name="metrics", daemon=True)
        self._thread.start()
        log.info("metrics.listening", address=self.address, paths=self.paths)
        return self

    @property
    def paths(self) -> list[str]:
        return ["/metrics", "/healthz", *(["/"] if self.page is not None else [])]

    @property
    def address(self) -> str:
        """host:port actually bound (port 0 in the config picks a free one)."""
        if self._server is None:
            raise RuntimeError("the metrics server is not listening: start() it first")
        host, port = self._server.socket.getsockname()[:2]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


class _Server(ThreadingHTTPServer):
    """The HTTP server, holding the Listener its request handlers answer for."""

    daemon_threads = True
    app: Listener


class _IPv6Server(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server_version = f"transcribed/{__version__}"

    def do_GET(self) -> None:
        app = cast(_Server, self.server).app  # the server that made this handler: start()'s
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
            self._reply(200, content_type, encoder(app.registry))
        elif path == "/healthz":
            health = app.stats.health(app.stale_after)
            body = {**health.as_dict(), "state": app.stats.state}
            if health.degraded:
                body["storage"] = app.stats.storage
            if app.stats.pause is not None:  # paused is healthy: nothing to restart
                body["paused"] = app.stats.pause
            self._reply(200 if health.ok else 503, "application/json", _json(body))
        elif path in ("/", "/index.html") and app.page is not None:
            self._status_page(app, app.page)
        else:
            self._reply(404, "application/json", _json({"error": "not found", "paths": app.paths}))

    def _status_page(self, app: Listener, page: StatusPage) -> None:
        """The page for a person, to the clients `metrics.status_page_clients` allows."""
        if not page.allows(str(self.client_address[0])):
            self._reply(403, "text/plain; charset=utf-8",
                        b"the status page is not open to this address (metrics.status_page_clients)\n")
            return
        self._reply(200, "text/html; charset=utf-8", page.render(app.stats.snapshot(app.stale_after)))

    def _reply(self, code: int, content_type: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        if content_type.startswith("text/html"):  # no script, no frame, nothing from elsewhere
            self.send_header("Content-Security-Policy",
                             "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's signature
        """Probes every few seconds would flood the log: requests are not logged."""


def _json(data: dict[str, Any]) -> bytes:
    return (json.dumps(data) + "\n").encode()
