"""The listening end of systemd's notify protocol, for tests of what the daemon tells systemd."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field


@dataclass
class NotifySocket:
    """The listening end of $NOTIFY_SOCKET: every datagram with the time it arrived."""

    sock: socket.socket
    path: str
    received: list[tuple[float, dict[str, str]]] = field(default_factory=list)

    def next(self, deadline: float) -> dict[str, str] | None:
        """The next message (KEY=value lines as a dict), or None at the deadline."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(4096)
        except TimeoutError:
            return None
        message = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
        self.received.append((time.monotonic(), message))
        return message

    def wait_for(self, key: str, timeout: float, value: str = "1") -> dict[str, str]:
        """Read messages until one has `key=value`; fail after `timeout` seconds naming it."""
        deadline = time.monotonic() + timeout
        while (message := self.next(deadline)) is not None:
            if message.get(key) == value:
                return message
        raise AssertionError(f"no {key}={value} within {timeout} s; got {self.messages()}")

    def messages(self) -> list[dict[str, str]]:
        return [message for _, message in self.received]
