"""SQS as the work queue, for AWS: S3 event notifications go straight into it, so nobody on AWS
has to run a broker.

The lease is the visibility timeout (`ack_wait_seconds`, set at each receive); renewing it is
`ChangeMessageVisibility`; a message not deleted in time becomes visible again (the adoption);
`ApproximateReceiveCount` is the delivery number; the queue's redrive policy (its
maxReceiveCount, made by the deployment, not by the daemon) moves a message received too often
into the dead-letter queue, which the daemon reads (`sqs_dead_letter_url`) to write the job's
failed record. A FIFO queue (`.fifo`) gets the job key as its deduplication id; a standard
queue has none, and duplicates end at the claim (a manifest is there) or at the commit (412).
"""

from __future__ import annotations

from typing import Any

import boto3
import botocore.config
import botocore.exceptions

from ..config import ObjectStore
from ..config.objectstore import deliveries_allowed
from .queue import DeadLetter, Delivery, QueueUnavailable

#: SQS hands out at most ten messages per receive, and waits at most 20 s (long polling).
MAX_PER_RECEIVE = 10
MAX_WAIT_SECONDS = 20
#: A dead letter being handled stays invisible to other daemons this long.
DEAD_LETTER_VISIBILITY = 60
#: Visibility timeouts are whole seconds, at most 12 hours.
MAX_VISIBILITY = 12 * 3600


def _seconds(value: float) -> int:
    return max(0, min(MAX_VISIBILITY, round(value)))


class SqsDelivery:
    """A received message: its lease is the visibility timeout."""

    def __init__(self, queue: SqsQueue, message: dict[str, Any]) -> None:
        self._queue = queue
        self._receipt = message["ReceiptHandle"]
        self.body: bytes = message["Body"].encode()
        self.number: int = int(message.get("Attributes", {}).get("ApproximateReceiveCount", 1))

    def ack(self) -> None:
        self._lease("delete_message", QueueUrl=self._queue.url, ReceiptHandle=self._receipt)

    def nak(self, delay: float = 0.0) -> None:
        self._lease("change_message_visibility", QueueUrl=self._queue.url,
                    ReceiptHandle=self._receipt, VisibilityTimeout=_seconds(delay))

    def extend(self) -> None:
        self._lease("change_message_visibility", QueueUrl=self._queue.url,
                    ReceiptHandle=self._receipt, VisibilityTimeout=self._queue.visibility)

    def _lease(self, operation: str, **params: Any) -> None:
        """A call on this receipt; one SQS refuses (the receipt expired: the message went to
        another worker) is QueueUnavailable too: the lease has decided, nothing is lost."""
        try:
            self._queue.call(operation, **params)
        except botocore.exceptions.ClientError as exc:
            raise QueueUnavailable(f"{operation}: {exc}") from None


class SqsQueue:
    """One SQS queue (standard or FIFO), and its dead-letter queue."""

    def __init__(self, section: ObjectStore, max_attempts: int) -> None:
        assert section.sqs_queue_url is not None  # noqa: S101 - required by the config's checks
        self.url: str = section.sqs_queue_url
        self.dead_url = section.sqs_dead_letter_url
        self.visibility = _seconds(section.ack_wait_seconds) or 1
        self.deliveries = deliveries_allowed(section, max_attempts)
        config = botocore.config.Config(connect_timeout=5, read_timeout=MAX_WAIT_SECONDS + 10,
                                        retries={"max_attempts": 3, "mode": "standard"})
        self.client: Any = boto3.session.Session().client(
            "sqs", endpoint_url=section.endpoint, region_name=section.region, config=config)

    def call(self, operation: str, **params: Any) -> Any:
        try:
            return getattr(self.client, operation)(**params)
        except (botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectionError,
                botocore.exceptions.ReadTimeoutError, botocore.exceptions.ConnectTimeoutError) as exc:
            raise QueueUnavailable(f"{operation}: {exc}") from None
        except botocore.exceptions.ClientError as exc:
            if int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0) >= 500:
                raise QueueUnavailable(f"{operation}: {exc}") from None
            raise

    def prepare(self) -> None:
        """The queues are the deployment's (with their redrive policy): checked, never made."""
        for url in (self.url, self.dead_url):
            if url:
                self.call("get_queue_attributes", QueueUrl=url, AttributeNames=["QueueArn"])

    def publish(self, body: bytes, dedup_id: str) -> bool:
        extra = {"MessageDeduplicationId": dedup_id, "MessageGroupId": dedup_id} \
            if self.url.endswith(".fifo") else {}
        self.call("send_message", QueueUrl=self.url, MessageBody=body.decode(), **extra)
        return True  # SQS does not say whether it dropped a duplicate

    def pull(self, up_to: int, wait: float) -> list[Delivery]:
        if up_to < 1:
            return []
        answer = self.call("receive_message", QueueUrl=self.url,
                           MaxNumberOfMessages=min(MAX_PER_RECEIVE, up_to),
                           WaitTimeSeconds=min(MAX_WAIT_SECONDS, int(wait)),
                           VisibilityTimeout=self.visibility,
                           MessageSystemAttributeNames=["ApproximateReceiveCount"])
        return [SqsDelivery(self, message) for message in answer.get("Messages", [])]

    def dead_letters(self, up_to: int) -> list[DeadLetter]:
        if not self.dead_url:
            return []
        answer = self.call("receive_message", QueueUrl=self.dead_url,
                           MaxNumberOfMessages=min(MAX_PER_RECEIVE, up_to), WaitTimeSeconds=0,
                           VisibilityTimeout=DEAD_LETTER_VISIBILITY)
        return [DeadLetter(body=m["Body"].encode(), deliveries=self.deliveries, token=m["ReceiptHandle"])
                for m in answer.get("Messages", [])]

    def forget_dead(self, letter: DeadLetter) -> None:
        self.call("delete_message", QueueUrl=self.dead_url, ReceiptHandle=letter.token)

    def lag(self) -> int | None:
        try:
            answer = self.call("get_queue_attributes", QueueUrl=self.url,
                               AttributeNames=["ApproximateNumberOfMessages"])
        except QueueUnavailable:
            return None
        return int(answer["Attributes"]["ApproximateNumberOfMessages"])

    def close(self) -> None:
        self.client.close()
