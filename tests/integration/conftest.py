"""Fixtures of the integration tier."""

from __future__ import annotations

import os
import signal
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.notify import NotifySocket
from tests.support.objectstore import Deployment, open_deployment


@pytest.fixture
def notify_socket() -> Iterator[NotifySocket]:
    """A bound datagram socket in a short temp dir (unix socket paths are limited to 108 bytes)."""
    with tempfile.TemporaryDirectory(prefix="sdnotify-") as tmp:
        path = os.path.join(tmp, "notify")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(path)
            yield NotifySocket(sock, path)


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    """nats-server (JetStream) and SeaweedFS's S3 gateway on 127.0.0.1 with the bucket made, and
    the daemons a test starts on them; all killed after the test."""
    deployment = open_deployment(tmp_path)
    try:
        yield deployment
    finally:
        deployment.close()
        deployment.s3_server.stop(signal.SIGKILL)
        if deployment.nats is not None:
            deployment.nats.stop(signal.SIGKILL)
