"""An object-store deployment for tests: nats-server and SeaweedFS on 127.0.0.1, a bucket, and
daemons (the real `transcribed run --engine fake` as child processes) pointed at them, each with
folders of its own, as on separate nodes."""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .daemon import DaemonProcess, Folders, wait_until
from .media import write_wav
from .servers import CREDENTIALS, NatsServer, SeaweedS3, make_bucket

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
    nats: NatsServer
    s3_server: SeaweedS3
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

    def config(self, name: str, **objectstore: Any) -> Path:
        folders = Folders(self.root / name)
        section = {"enabled": True, "endpoint": self.endpoint, "bucket": BUCKET, "nats_url": self.nats.url,
                   "ack_wait_seconds": ACK_WAIT, "reconcile_seconds": 1, "addressing": "path",
                   **objectstore}
        return folders.write_config(objectstore=section, jobs={"retry_delay_seconds": 0.2},
                                    metrics={"stale_after_seconds": 20})

    def daemon(self, name: str = "node", fake: dict[str, Any] | None = None, start: bool = True,
               **objectstore: Any) -> DaemonProcess:
        process = DaemonProcess(self.config(name, **objectstore), engine="fake",
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
    seaweed = SeaweedS3(root / "seaweed").start()
    s3 = make_bucket(seaweed.endpoint, BUCKET)
    return Deployment(root=root, nats=nats, s3_server=seaweed, s3=s3)
