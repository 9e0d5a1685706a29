"""systemd's notify protocol (sd_notify) in a few lines of socket code.

READY=1 once the model is loaded and the watcher runs, STATUS= for `systemctl status`,
WATCHDOG=1 from the consumer loop's heartbeat, STOPPING=1 on shutdown. Without $NOTIFY_SOCKET
(not under systemd) every call does nothing.
"""

from __future__ import annotations

import os
import socket
import time


class Notifier:
    """Sends sd_notify messages to $NOTIFY_SOCKET, and paces WATCHDOG=1 by $WATCHDOG_USEC."""

    def __init__(self) -> None:
        address = os.environ.get("NOTIFY_SOCKET", "")
        if address.startswith("@"):
            address = "\0" + address[1:]  # the abstract namespace
        self.address = address or None
        usec = os.environ.get("WATCHDOG_USEC", "")
        pid = os.environ.get("WATCHDOG_PID", "")
        mine = not pid or pid == str(os.getpid())
        #: Ping at half the interval systemd waits, as sd_watchdog_enabled(3) advises.
        self.watchdog_interval = int(usec) / 2e6 if usec.isdigit() and mine else None
        self._last_ping = 0.0

    def send(self, *fields: str) -> None:
        """Send one message of `KEY=value` lines; failures are ignored (systemd may be gone).

        Never waits: the consumer sends these from its heartbeat, and a datagram socket whose
        reader has fallen behind would block a plain send until it reads. A message it has no
        room for is dropped (EAGAIN); the next beat sends a fresh one."""
        if self.address is None:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto("\n".join(fields).encode(), socket.MSG_DONTWAIT, self.address)
        except OSError:
            pass

    def ready(self, status: str) -> None:
        self.send("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")

    def status(self, status: str) -> None:
        self.send(f"STATUS={status}")

    def stopping(self, status: str = "stopping") -> None:
        self.send("STOPPING=1", f"STATUS={status}")

    def watchdog(self) -> None:
        """Ping the watchdog if its interval is due (called from every consumer heartbeat)."""
        if self.watchdog_interval is None:
            return
        now = time.monotonic()
        if now - self._last_ping >= self.watchdog_interval:
            self._last_ping = now
            self.send("WATCHDOG=1")
