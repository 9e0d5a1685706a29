"""A job's identity: which object it is (bucket, key, ETag), and the messages that name one.

The identity is the bucket, the key and the ETag, hashed (`ObjectRef.job_key`). It names the
job's manifest (the commit point) and is the queue's deduplication id, so an object announced
twice (a notification and a reconcile, or a notification sent twice) is one job. The ETag, not
the version id, is in the identity: every listing and every notification carries the ETag, while
a listing carries no version id, and the reconciler and the notifications must name a job alike.
The version id is kept in the job's record and its manifest.

A message on the queue is either the daemon's own task (`{"bucket", "key", "etag", "version"}`,
published by the reconciler) or a bucket notification in the S3 event format (AWS to SQS,
MinIO and RustFS to JetStream), whose keys are URL-encoded and may hold several records.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote_plus

from ..intake.inbox import TEMPORARY_SUFFIXES

#: Bucket notifications that announce a new object (AWS and MinIO spell them alike).
CREATED_PREFIXES = ("ObjectCreated:", "s3:ObjectCreated:")


@dataclass(frozen=True)
class ObjectRef:
    """One object of the inbox, as it was when announced."""

    bucket: str
    key: str
    etag: str
    version: str | None = None

    @property
    def job_key(self) -> str:
        """The job's identity: the manifest's name and the queue's deduplication id."""
        text = f"{self.bucket}\n{self.key}\n{self.etag}"
        return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def task(self) -> bytes:
        """The daemon's own message for this object."""
        return json.dumps({"bucket": self.bucket, "key": self.key, "etag": self.etag,
                           "version": self.version}).encode()

    def describe(self) -> dict[str, Any]:
        return {"bucket": self.bucket, "key": self.key, "etag": self.etag, "version": self.version,
                "uri": self.uri, "job_key": self.job_key}


def clean_etag(etag: str) -> str:
    """The ETag without the quotes a listing or a HEAD puts around it (notifications have none)."""
    return etag.strip().strip('"')


class NotAnObject(ValueError):
    """A message that names no object to transcribe (a test event, a deletion, garbage)."""


def objects_in(body: bytes) -> list[ObjectRef]:
    """The objects a queue message names: one for a task, one per created-object record of a
    bucket notification, none for a notification that announces nothing new (an S3 test event,
    a deletion). Raises NotAnObject for a message that is neither."""
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise NotAnObject(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise NotAnObject("not a JSON object")
    if "Records" in data:
        return _records(data["Records"])
    if data.get("Event") == "s3:TestEvent":  # AWS sends one when notifications are switched on
        return []
    try:
        return [ObjectRef(str(data["bucket"]), str(data["key"]), clean_etag(str(data["etag"])),
                          data.get("version") or None)]
    except KeyError as exc:
        raise NotAnObject(f"no {exc.args[0]!r} in the task") from None


def _records(records: Any) -> list[ObjectRef]:
    if not isinstance(records, list):
        raise NotAnObject("Records is not a list")
    found = []
    for record in records:
        try:
            if not str(record["eventName"]).startswith(CREATED_PREFIXES):
                continue
            s3 = record["s3"]
            found.append(ObjectRef(str(s3["bucket"]["name"]), unquote_plus(str(s3["object"]["key"])),
                                   clean_etag(str(s3["object"]["eTag"])),
                                   s3["object"].get("versionId") or None))
        except (KeyError, TypeError) as exc:
            raise NotAnObject(f"a record without {exc}") from None
    return found


def inbox_path(key: str, inbox_prefix: str) -> PurePosixPath | None:
    """The object's path under the inbox prefix (what routes and result names use), or None for a
    key outside it, a folder marker, or a path that climbs (`..`)."""
    if not key.startswith(inbox_prefix):
        return None
    parts = key[len(inbox_prefix):].split("/")
    if any(part in ("", ".", "..") for part in parts):  # a folder marker, `//`, or a climb
        return None
    return PurePosixPath(*parts)


def wanted(rel: PurePosixPath, extensions: tuple[str, ...]) -> bool:
    """An audio or video file by its extension, as the inbox folder takes them: dotfiles and
    temporary names (`talk.mp3.part`: an upload tool's name until it renames) are not."""
    name = rel.name
    if name.startswith(".") or name.lower().endswith(TEMPORARY_SUFFIXES):
        return False
    return "." in name and name.rpartition(".")[2].lower() in {e.lower() for e in extensions}
