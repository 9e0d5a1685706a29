"""Which object a queue message names, and the job identity that deduplicates it: a reconciler's
task and a store's notification for one object are one job."""

from __future__ import annotations

import json
from pathlib import PurePosixPath

import pytest

from transcribed.config import parse_config
from transcribed.errors import ConfigError
from transcribed.objectstore.identity import NotAnObject, ObjectRef, inbox_path, objects_in, wanted


def _event(key: str, etag: str, name: str = "ObjectCreated:Put", version: str | None = None) -> bytes:
    obj = {"key": key, "eTag": etag, **({"versionId": version} if version else {})}
    return json.dumps({"Records": [{"eventName": name, "s3": {"bucket": {"name": "media"}, "object": obj}}]}).encode()


class TestMessages:
    """Tasks and bucket notifications (AWS's and MinIO's S3 event format)."""

    def test_a_task_and_a_notification_of_one_object_are_one_job(self) -> None:
        listed = ObjectRef("media", "inbox/a b.wav", "abc123")
        from_task, = objects_in(listed.task())
        from_event, = objects_in(_event("inbox/a+b.wav", "abc123", version="v7"))
        assert from_task.job_key == from_event.job_key == listed.job_key
        assert from_event.key == "inbox/a b.wav"  # URL-decoded, as S3 sends keys
        assert from_event.version == "v7"

    def test_minio_names_events_with_the_s3_prefix(self) -> None:
        assert [r.key for r in objects_in(_event("inbox/x.wav", "e", name="s3:ObjectCreated:Put"))] == ["inbox/x.wav"]

    def test_deletions_and_the_test_event_name_no_job(self) -> None:
        assert objects_in(_event("inbox/x.wav", "e", name="ObjectRemoved:Delete")) == []
        assert objects_in(json.dumps({"Event": "s3:TestEvent", "Bucket": "media"}).encode()) == []

    @pytest.mark.parametrize("body", [b"not json", b"[1]", b'{"key": "x"}', b'{"Records": [{"eventName": "ObjectCreated:Put"}]}'])
    def test_anything_else_is_refused_with_a_reason(self, body: bytes) -> None:
        with pytest.raises(NotAnObject):
            objects_in(body)

    def test_a_different_etag_is_a_different_job(self) -> None:
        assert ObjectRef("media", "inbox/a.wav", "1").job_key != ObjectRef("media", "inbox/a.wav", "2").job_key


class TestInboxPaths:
    def test_the_path_under_the_prefix_is_the_route_path(self) -> None:
        assert inbox_path("inbox/ru/talk.mp3", "inbox/") == PurePosixPath("ru/talk.mp3")

    @pytest.mark.parametrize("key", ["outbox/a.wav", "inbox/", "inbox/dir/", "inbox/../a.wav", "inbox/./a.wav",
                                     "inbox//a.wav"])
    def test_keys_outside_or_climbing_are_not_jobs(self, key: str) -> None:
        assert inbox_path(key, "inbox/") is None

    @pytest.mark.parametrize(("name", "taken"), [("a.wav", True), ("A.MP3", True), (".a.wav", False),
                                                 ("a.wav.part", False), ("a.txt", False), ("wav", False)])
    def test_only_audio_and_video_names_are_taken(self, name: str, taken: bool) -> None:
        assert wanted(PurePosixPath(name), ("wav", "mp3")) is taken


class TestConfig:
    """Every key of the objectstore section is checked at load, the key named in the error."""

    @pytest.mark.parametrize(("section", "error"), [
        ({"bucket": "x"}, "objectstore.bucket"),
        ({"endpoint": "ftp://host"}, "objectstore.endpoint"),
        ({"inbox_prefix": "inbox"}, "objectstore.inbox_prefix"),
        ({"outbox_prefix": "inbox/results/"}, "must not contain one another"),
        ({"ack_wait_seconds": 0}, "objectstore.ack_wait_seconds"),
        ({"reconcile_seconds": -1}, "objectstore.reconcile_seconds"),
        ({"max_deliver": 2}, "objectstore.max_deliver"),
        ({"nats_url": "http://host:4222"}, "objectstore.nats_url"),
        ({"queue": "sqs"}, "objectstore.sqs_queue_url"),
        ({"queue": "kafka"}, "objectstore.queue"),
        ({"stream_max_messages": 0}, "objectstore.stream_max_messages"),
    ])
    def test_bad_values_name_their_key(self, section: dict[str, object], error: str) -> None:
        with pytest.raises(ConfigError, match=error):
            parse_config({"objectstore": {"enabled": True, **section}})

    def test_off_by_default_and_unchecked_while_off(self) -> None:
        assert parse_config({}).objectstore.enabled is False
        assert parse_config({"objectstore": {"bucket": "x"}}).objectstore.bucket == "x"
