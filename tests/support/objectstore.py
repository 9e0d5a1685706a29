"""An object-store deployment for tests: nats-server and SeaweedFS on 127.0.0.1, a bucket, and
daemons (the real `transcribed run --engine fake` as child processes) pointed at them, each with
folders of its own, as on separate nodes."""

from __future__ import annotations

import json
import os
import signal
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .daemon import DaemonProcess, Folders, wait_until
from .media import write_wav
from .servers import CREDENTIALS, MotoServer, NatsServer, SeaweedS3, make_bucket

BUCKET = "media"
#: Short tests want a short lease, so that a dead worker's job comes back soon.
ACK_WAIT = 3.0


def tone(seconds: float = 1.0, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(16_000 * seconds)) / 16_000
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@dataclass
class Deployment:
    """The servers, the bucket, and the daemons started on them."""

    root: Path
    #: None where the queue is not JetStream (the AWS profile: SQS).
    nats: NatsServer | None
    s3_server: SeaweedS3 | MotoServer
    s3: Any = None
    daemons: list[DaemonProcess] = field(default_factory=list)
    endpoint: str | None = None

    def __post_init__(self) -> None:
        self.endpoint = self.endpoint or self.s3_server.endpoint

    # --- the bucket ------------------------------------------------------------------------------

    def upload(self, name: str, seconds: float = 1.0, freq: float = 440.0) -> str:
        """A WAV file written into the inbox prefix, as a user's upload tool would; its key."""
        local = self.root / "uploads" / name
        local.parent.mkdir(parents=True, exist_ok=True)
        write_wav(local, tone(seconds, freq))
        key = f"inbox/{name}"
        self.s3.upload_file(str(local), BUCKET, key)
        return key

    def manifests(self) -> list[dict[str, Any]]:
        found = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET,
                                                                      Prefix="transcribed/manifests/"):
            for item in page.get("Contents", []):
                found.append(json.loads(self.s3.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()))
        return found

    def outcomes(self) -> Counter[tuple[str, str]]:
        """(object key, outcome) -> how many manifests say it (one each: exactly once)."""
        return Counter((m["object"]["key"], m["outcome"]) for m in self.manifests())

    def read(self, key: str) -> bytes:
        return bytes(self.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())

    def wait_for_manifests(self, count: int, timeout: float = 90) -> list[dict[str, Any]]:
        wait_until(lambda: len(self.manifests()) >= count, timeout, f"{count} manifests", interval=0.3)
        return self.manifests()

    # --- daemons ---------------------------------------------------------------------------------

    def config(self, name: str, jobs: dict[str, Any] | None = None, hooks: dict[str, Any] | None = None,
               **objectstore: Any) -> Path:
        folders = Folders(self.root / name)
        section = {"enabled": True, "endpoint": self.endpoint, "bucket": BUCKET,
                   **({"nats_url": self.nats.url} if self.nats else {}), "ack_wait_seconds": ACK_WAIT, "reconcile_seconds": 1, "addressing": "path",
                   **objectstore}
        return folders.write_config(objectstore=section,
                                    jobs={"retry_delay_seconds": 0.2, **(jobs or {})},
                                    metrics={"stale_after_seconds": 20}, hooks=hooks or {})

    def daemon(self, name: str = "node", fake: dict[str, Any] | None = None, start: bool = True,
               jobs: dict[str, Any] | None = None, **objectstore: Any) -> DaemonProcess:
        process = DaemonProcess(self.config(name, jobs, **objectstore), engine="fake",
                                env={"TRANSCRIBED_FAKE": json.dumps(fake or {}), **CREDENTIALS})
        self.daemons.append(process)
        return process.start() if start else process

    def close(self) -> None:
        for process in self.daemons:
            process.kill()


def open_deployment(root: Path) -> Deployment:
    """Start nats-server and SeaweedFS, make the bucket."""
    for key, value in CREDENTIALS.items():
        os.environ.setdefault(key, value)
    nats = NatsServer(root / "nats").start()
    seaweed = SeaweedS3(root / "seaweed")
    try:
        seaweed.start()
        s3 = make_bucket(seaweed.endpoint, BUCKET)
    except BaseException:  # no server outlives a failed start
        seaweed.stop(signal.SIGKILL)
        nats.stop(signal.SIGKILL)
        raise
    return Deployment(root=root, nats=nats, s3_server=seaweed, s3=s3)


def notification(deployment: Deployment, key: str) -> bytes:
    """The bucket notification a store sends for a new object (the S3 event format MinIO and
    RustFS publish to JetStream and AWS sends to SQS), for the object as it is now."""
    from urllib.parse import quote_plus

    head = deployment.s3.head_object(Bucket=BUCKET, Key=key)
    record = {"eventVersion": "2.1", "eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
              "s3": {"bucket": {"name": BUCKET},
                     "object": {"key": quote_plus(key, safe="/"), "size": head["ContentLength"],
                                "eTag": head["ETag"].strip('"')}}}
    return json.dumps({"EventName": "s3:ObjectCreated:Put", "Key": f"{BUCKET}/{key}",
                       "Records": [record]}).encode()


def publish(url: str, subject: str, bodies: list[bytes], msg_ids: list[str | None] | None = None) -> None:
    """Publish onto the work stream as a store's notification target does (through the real
    client, to the real server)."""
    import asyncio

    import nats

    async def send() -> None:
        nc = await nats.connect(url)
        js = nc.jetstream()
        for body, msg_id in zip(bodies, msg_ids or [None] * len(bodies), strict=True):
            await js.publish(subject, body, headers={"Nats-Msg-Id": msg_id} if msg_id else None)
        await nc.close()
    asyncio.run(send())


def stream_info(url: str, stream: str = "TRANSCRIBED") -> Any:
    import asyncio

    import nats

    async def info() -> Any:
        nc = await nats.connect(url)
        try:
            return await nc.jetstream().stream_info(stream)
        finally:
            await nc.close()
    return asyncio.run(info())
