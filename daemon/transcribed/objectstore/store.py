"""The object store, through plain S3 calls (boto3) against any S3-compatible endpoint.

What a job needs of it: the inbox listed, an object downloaded as it was announced (`If-Match`
its ETag), results uploaded, and one conditional write, `If-None-Match: *`, that succeeds for
exactly one writer (the commit: commit.py). Several stores got concurrent conditional writes
wrong until 2026, so `probe_conditional_writes` tries N of them at once before the daemon trusts
the store with its commit.

A store that does not answer (refused, timed out, a 5xx) is `StoreUnreachable`: the job waits
and is tried again, it does not fail.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import botocore.exceptions

from ..config import ObjectStore
from ..errors import TranscribedError
from .identity import ObjectRef, clean_etag

#: Concurrent conditional PUTs of the start-up probe.
PROBE_WRITERS = 8
#: Bytes per read while an object is downloaded.
CHUNK_BYTES = 1 << 20


class StoreUnreachable(TranscribedError):
    """The object store did not answer (or answered with a server error): wait and try again."""


class ObjectGone(TranscribedError):
    """The announced object is no longer there as it was (deleted, or replaced by a new version,
    which has a job of its own)."""


def _status(exc: botocore.exceptions.ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


class Store:
    """One bucket of an S3-compatible store."""

    def __init__(self, section: ObjectStore) -> None:
        self.bucket = section.bucket
        addressing = {"auto": "auto", "path": "path", "virtual": "virtual"}[section.addressing]
        config = botocore.config.Config(
            s3={"addressing_style": addressing}, connect_timeout=5, read_timeout=60,
            retries={"max_attempts": 3, "mode": "standard"}, max_pool_connections=PROBE_WRITERS * 2)
        self.client: Any = boto3.session.Session().client(
            "s3", endpoint_url=section.endpoint, region_name=section.region, config=config)

    def _call(self, operation: str, **params: Any) -> Any:
        """One S3 call; the store's absence or its server errors become StoreUnreachable."""
        try:
            return getattr(self.client, operation)(Bucket=self.bucket, **params)
        except (botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectionError,
                botocore.exceptions.ReadTimeoutError, botocore.exceptions.ConnectTimeoutError) as exc:
            raise StoreUnreachable(f"{operation}: {exc}") from None
        except botocore.exceptions.ClientError as exc:
            if _status(exc) >= 500:
                raise StoreUnreachable(f"{operation}: {exc}") from None
            raise

    # --- reading ----------------------------------------------------------------------------------

    def listing(self, prefix: str) -> Iterator[tuple[str, str]]:
        """(key, ETag) of every object under `prefix`, a page (1000) per request."""
        token: str | None = None
        while True:
            extra = {"ContinuationToken": token} if token else {}
            page = self._call("list_objects_v2", Prefix=prefix, **extra)
            for item in page.get("Contents", []):
                yield item["Key"], clean_etag(item.get("ETag", ""))
            if not page.get("IsTruncated"):
                return
            token = page.get("NextContinuationToken")

    def exists(self, key: str) -> bool:
        try:
            self._call("head_object", Key=key)
        except botocore.exceptions.ClientError as exc:
            if _status(exc) == 404:
                return False
            raise
        return True

    def read_json(self, key: str) -> dict[str, Any] | None:
        try:
            body = self._call("get_object", Key=key)["Body"].read()
        except botocore.exceptions.ClientError as exc:
            if _status(exc) == 404:
                return None
            raise
        data = json.loads(body)
        return data if isinstance(data, dict) else None

    def download(self, ref: ObjectRef, dest: Path) -> int:
        """The object as announced (its ETag) into `dest`; returns its size. ObjectGone when it was
        deleted or replaced since."""
        try:
            response = self._call("get_object", Key=ref.key, IfMatch=f'"{ref.etag}"')
        except botocore.exceptions.ClientError as exc:
            if _status(exc) in (404, 412):
                raise ObjectGone(f"{ref.uri} (ETag {ref.etag}) is "
                                 f"{'gone' if _status(exc) == 404 else 'replaced'}") from None
            raise
        size = 0
        body = response["Body"]
        try:
            with open(dest, "wb") as out:
                while chunk := body.read(CHUNK_BYTES):
                    out.write(chunk)
                    size += len(chunk)
        except (botocore.exceptions.ReadTimeoutError, botocore.exceptions.ConnectionError) as exc:
            raise StoreUnreachable(f"get_object {ref.key}: {exc}") from None
        return size

    # --- writing ----------------------------------------------------------------------------------

    def upload(self, path: Path, key: str, content_type: str | None = None) -> None:
        with open(path, "rb") as body:
            self._call("put_object", Key=key, Body=body,
                       **({"ContentType": content_type} if content_type else {}))

    def put_bytes(self, key: str, body: bytes, content_type: str = "application/json") -> None:
        self._call("put_object", Key=key, Body=body, ContentType=content_type)

    def put_if_absent(self, key: str, body: bytes) -> bool:
        """Write `key` only if nothing is there (`If-None-Match: *`): True for the one writer that
        created it, False (412, or 409 while another conditional write of it is in flight) for
        every other."""
        try:
            self._call("put_object", Key=key, Body=body, IfNoneMatch="*", ContentType="application/json")
        except botocore.exceptions.ClientError as exc:
            if _status(exc) in (409, 412):
                return False
            raise
        return True

    def delete_prefix(self, prefix: str) -> int:
        """Remove every object under `prefix` (a losing attempt's results); returns how many."""
        keys = [key for key, _ in self.listing(prefix)]
        for start in range(0, len(keys), 1000):
            batch = [{"Key": key} for key in keys[start:start + 1000]]
            self._call("delete_objects", Delete={"Objects": batch, "Quiet": True})
        return len(keys)

    def head_bucket(self) -> None:
        self._call("head_bucket")


def probe_conditional_writes(store: Store, prefix: str,
                             writers: int = PROBE_WRITERS) -> tuple[int, list[str]]:
    """`writers` concurrent `If-None-Match: *` PUTs of one new key: how many succeeded (exactly
    one on a store the commit can rely on), and the errors of those that neither won nor got 412."""
    key = f"{prefix}probe/{uuid.uuid4().hex}"
    errors: list[str] = []

    def write(i: int) -> bool:
        try:
            return store.put_if_absent(key, json.dumps({"writer": i}).encode())
        except (botocore.exceptions.ClientError, StoreUnreachable) as exc:
            errors.append(str(exc))
            return False

    with ThreadPoolExecutor(max_workers=writers, thread_name_prefix="objectstore-probe") as pool:
        won = sum(pool.map(write, range(writers)))
    with contextlib.suppress(botocore.exceptions.ClientError, StoreUnreachable):
        store.delete_prefix(key)  # a leftover probe object is harmless
    return won, errors
