"""Fixtures of the integration tier."""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Iterator

import pytest

from tests.support.notify import NotifySocket


@pytest.fixture
def notify_socket() -> Iterator[NotifySocket]:
    """A bound datagram socket in a short temp dir (unix socket paths are limited to 108 bytes)."""
    with tempfile.TemporaryDirectory(prefix="sdnotify-") as tmp:
        path = os.path.join(tmp, "notify")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(path)
            yield NotifySocket(sock, path)
