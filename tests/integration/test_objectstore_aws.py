"""The AWS profile against moto in server mode on 127.0.0.1: the bucket's event notifications go
into SQS, the visibility timeout is the lease (extended while the consumer beats), and the queue's
redrive policy moves a job that kills its workers into the dead-letter queue, which becomes its
failed record. No broker runs; the reconciler is off, so every job comes from a notification."""

from __future__ import annotations

import json
import os
import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemon import DaemonProcess, wait_until
from tests.support.objectstore import ACK_WAIT, BUCKET, Deployment
from tests.support.servers import CREDENTIALS, MotoServer, client, make_bucket

#: The redrive policy's maxReceiveCount in these tests.
MAX_RECEIVES = 2


class Aws:
    """moto's S3 and SQS, wired as an AWS account would be."""

    def __init__(self, root: Path) -> None:
        self.server = MotoServer(root / "moto").start()
        self.s3 = make_bucket(self.server.endpoint, BUCKET)
        sqs = self.sqs = client(self.server.endpoint, "sqs")
        self.dead_url = sqs.create_queue(QueueName="transcribed-dead")["QueueUrl"]
        dead_arn = sqs.get_queue_attributes(QueueUrl=self.dead_url, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        self.url = sqs.create_queue(QueueName="transcribed-jobs", Attributes={
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dead_arn, "maxReceiveCount": MAX_RECEIVES}),
        })["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.s3.put_bucket_notification_configuration(Bucket=BUCKET, NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"],
                                     "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "inbox/"}]}}}]})


@pytest.fixture
def aws(tmp_path: Path) -> Iterator[tuple[Aws, Deployment]]:
    for key, value in CREDENTIALS.items():
        os.environ.setdefault(key, value)
    account = Aws(tmp_path)
    deployment = Deployment(root=tmp_path, nats=None, s3_server=account.server, s3=account.s3)
    try:
        yield account, deployment
    finally:
        deployment.close()
        account.server.stop(signal.SIGKILL)


def _daemon(account: Aws, deployment: Deployment, name: str, fake: dict[str, Any] | None = None,
            **extra: Any) -> DaemonProcess:
    return deployment.daemon(name, fake=fake, queue="sqs", sqs_queue_url=account.url,
                             sqs_dead_letter_url=account.dead_url, reconcile_seconds=0,
                             max_deliver=MAX_RECEIVES, **extra)


def test_s3_notifications_through_sqs_become_jobs(aws: tuple[Aws, Deployment]) -> None:
    account, deployment = aws
    daemon = _daemon(account, deployment, "a", jobs={"max_attempts": MAX_RECEIVES})
    keys = [deployment.upload(f"talk{n}.wav") for n in range(3)]
    deployment.wait_for_manifests(3)
    assert deployment.outcomes() == Counter({(key, "done"): 1 for key in keys})
    assert daemon.stop() == 0


def test_the_visibility_timeout_is_extended_while_a_long_job_runs(aws: tuple[Aws, Deployment]) -> None:
    """A job four visibility timeouts long, another daemon idle beside it: one receive, one run."""
    account, deployment = aws
    worker = _daemon(account, deployment, "a", {"delays": {"long.wav": 4 * ACK_WAIT}},
                     jobs={"max_attempts": MAX_RECEIVES})
    key = deployment.upload("long.wav")
    worker.wait_for("job.started", file="long.wav")
    idle = _daemon(account, deployment, "b", jobs={"max_attempts": MAX_RECEIVES})
    manifest, = deployment.wait_for_manifests(1)
    assert deployment.outcomes() == Counter({(key, "done"): 1})
    assert manifest["attempts"] == 1
    assert [e for e in idle.events() if e.get("event") == "job.claimed"] == []


def test_the_redrive_policy_turns_a_poison_file_into_a_failed_record(aws: tuple[Aws, Deployment]) -> None:
    """A file that kills each daemon that takes it: after maxReceiveCount receives SQS moves it to
    the dead-letter queue, and a daemon writes its failed record from there."""
    account, deployment = aws
    key = deployment.upload("poison.wav")
    for _ in range(MAX_RECEIVES + 2):
        run = _daemon(account, deployment, "a", {"crash_on": ["poison.wav"]},
                      jobs={"max_attempts": MAX_RECEIVES})
        assert run.process is not None
        wait_until(lambda: run.process.poll() is not None or deployment.manifests(), 60,  # noqa: B023
                   "a crash or a manifest")
        if deployment.manifests():
            break
    manifest, = deployment.manifests()
    assert deployment.outcomes() == Counter({(key, "failed"): 1})
    assert manifest["report"]["stage"] == "queue"
    assert manifest["attempts"] == MAX_RECEIVES
