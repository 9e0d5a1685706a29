"""The sd_notify client in-process: an abstract socket name, the watchdog's pacing, and a
watchdog meant for another process. The daemon speaking to a socket as systemd hears it is
tests/integration/test_notify.py."""

from __future__ import annotations

import os
import socket
import time

import pytest

from transcribed.operations.notify import Notifier


def test_notifier_speaks_to_an_abstract_socket_and_paces_its_pings(monkeypatch):
    """NOTIFY_SOCKET=@name (abstract namespace) works, and WATCHDOG=1 is rate-limited."""
    name = f"transcribed-test-{os.getpid()}-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        monkeypatch.setenv("WATCHDOG_USEC", "400000")
        monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
        notifier = Notifier()
        assert notifier.watchdog_interval == pytest.approx(0.2)
        for _ in range(3):
            notifier.watchdog()  # only the first is due
        time.sleep(0.25)
        notifier.watchdog()
        notifier.status("hello")
        received = [sock.recv(100).decode() for _ in range(3)]
    assert received == ["WATCHDOG=1", "WATCHDOG=1", "STATUS=hello"]


def test_watchdog_is_off_when_meant_for_another_process(monkeypatch):
    """WATCHDOG_PID naming another process (a parent's watchdog) means: do not ping."""
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getppid()))
    assert Notifier().watchdog_interval is None


def test_a_reader_that_has_fallen_behind_never_blocks_the_sender(monkeypatch):
    """A notify socket nobody reads fills up; sending goes on at once, the extra messages dropped
    (the consumer sends from its heartbeat: a blocked send would stall every job)."""
    name = f"transcribed-test-full-{os.getpid()}-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        notifier = Notifier()
        began = time.monotonic()
        for n in range(2000):  # far more than a datagram queue holds
            notifier.status(f"message {n}")
        took = time.monotonic() - began
        assert sock.recv(100).decode() == "STATUS=message 0"
    assert took < 5, f"sending took {took:.1f} s: it waited for the reader"
