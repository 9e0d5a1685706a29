"""Real notification receivers on 127.0.0.1 for the Apprise tests: an HTTP server that takes
Apprise's JSON and form notifications, and an SMTP server (aiosmtpd) that takes its e-mails. Both
can be down for a while: the SMTP server is started on a port chosen before (nothing listens
there until `start`), and the HTTP server answers 503 to its first requests."""

from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
import urllib.parse
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, Session
from aiosmtpd.smtp import SMTP as SMTPServer

from tests.support.net import free_port


@dataclass
class Posted:
    """One request the HTTP receiver answered."""

    path: str
    content_type: str
    body: bytes
    status: int

    @property
    def fields(self) -> dict[str, Any]:
        """The notification's fields: the JSON object, or the form's values."""
        if self.content_type.startswith("application/json"):
            return dict(json.loads(self.body))
        return dict(urllib.parse.parse_qsl(self.body.decode()))


@dataclass
class HttpReceiver:
    """Takes POSTs on 127.0.0.1; answers 503 to the first `down_for` of them, 200 after."""

    down_for: int = 0
    posted: list[Posted] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None
    thread: threading.Thread | None = None

    def __enter__(self) -> HttpReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    status = 503 if len(receiver.posted) < receiver.down_for else 200
                    receiver.posted.append(Posted(self.path, self.headers.get("Content-Type", ""), body, status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, name="http-receiver", daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        if self.thread is not None:
            self.thread.join(timeout=5)

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.server_address[1])

    def accepted(self, path: str) -> list[Posted]:
        with self.lock:
            return [p for p in self.posted if p.path == path and p.status == 200]

    def tries(self, path: str) -> list[Posted]:
        with self.lock:
            return [p for p in self.posted if p.path == path]


class _Mailbox:
    """aiosmtpd's handler: keeps every message it is given."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []

    async def handle_DATA(self, _server: SMTPServer, _session: Session, envelope: Envelope) -> str:  # noqa: N802 - aiosmtpd's name
        content = envelope.content if isinstance(envelope.content, bytes) else str(envelope.content).encode()
        self.messages.append(email.message_from_bytes(content, policy=email.policy.default))  # type: ignore[arg-type]
        self.envelopes.append((str(envelope.mail_from), list(envelope.rcpt_tos)))
        return "250 OK"


@dataclass
class SmtpReceiver:
    """An SMTP server on 127.0.0.1:`port` that wants a login (`user`, `password`); nothing listens
    on the port until `start`, so a sender meets a refused connection: a mail server that is down."""

    user: str = "office"
    password: str = "s3cret-mail-pass"
    port: int = field(default_factory=free_port)
    mailbox: _Mailbox = field(default_factory=_Mailbox)
    controller: Controller | None = None

    def start(self) -> None:
        def authenticate(_server: Any, _session: Any, _envelope: Any, _mechanism: str, data: Any) -> AuthResult:
            return AuthResult(success=(data.login, data.password) == (self.user.encode(), self.password.encode()))

        self.controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port,
                                     authenticator=authenticate, auth_require_tls=False)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def __enter__(self) -> SmtpReceiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def refuses(self) -> bool:
        """Is the port closed (the server down)?"""
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", self.port)) != 0

    @property
    def messages(self) -> list[EmailMessage]:
        return list(self.mailbox.messages)

    def url(self, to: str = "office@example.com") -> str:
        """The Apprise URL of this server: plain SMTP with a login (no TLS on loopback)."""
        return (f"mailto://{self.user}:{self.password}@127.0.0.1:{self.port}"
                f"?from=transcribed@example.com&to={to}&mode=insecure")
