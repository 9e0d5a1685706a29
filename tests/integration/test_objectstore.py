"""The object-store intake against the real servers (nats-server with JetStream, SeaweedFS's S3
gateway) on 127.0.0.1, with real daemons: each object is transcribed and committed exactly once."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from tests.support.objectstore import Deployment


def test_objects_in_the_inbox_prefix_are_transcribed_and_committed_once(deployment: Deployment) -> None:
    """Three uploads, one daemon, no notifications: the reconciler finds them; each gets one
    manifest naming its attempt's results, and the results hold the transcript."""
    keys = [deployment.upload(f"talk{n}.wav") for n in range(3)]
    daemon = deployment.daemon()
    manifests = deployment.wait_for_manifests(3)
    assert sorted(m["object"]["key"] for m in manifests) == sorted(keys)
    for manifest in manifests:
        assert manifest["outcome"] == "done"
        assert set(manifest["results"]) >= {".json", ".txt", ".srt", ".vtt", ".log.jsonl"}
        name = manifest["object"]["key"].rpartition("/")[2]
        assert f"fake transcript of {name}" in deployment.read(manifest["results"][".txt"]).decode()
        assert manifest["results"][".json"].startswith(f"outbox/{name[:-4]}/{manifest['attempt']}/")
        block = json.loads(deployment.read(manifest["results"][".json"]))["transcribed"]
        assert block["intake"] == "objectstore"
        assert block["origin"]["uri"] == f"s3://media/{manifest['object']['key']}"
        assert block["origin"]["attempt"] == manifest["attempt"]
    assert daemon.stop() == 0


def test_the_doctor_checks_the_store_and_the_queue(deployment: Deployment) -> None:
    """`diagnose` against the real servers: the probe's conditional writes, the queue's backlog."""
    from transcribed.config import load_config
    from transcribed.doctor import diagnose

    report = diagnose(load_config(deployment.config("doctor")), sample=False)
    checks = {check.name: check for check in report.checks}
    assert checks["objectstore_store"].status == "ok", checks["objectstore_store"]
    assert "1 of 8 concurrent conditional writes succeeded" in checks["objectstore_store"].detail
    assert checks["objectstore_queue"].status == "ok", checks["objectstore_queue"]
    assert "0 jobs waiting" in checks["objectstore_queue"].detail


def test_the_doctor_fails_when_the_queue_is_away(deployment: Deployment) -> None:
    from transcribed.config import load_config
    from transcribed.doctor import diagnose

    assert deployment.nats is not None
    deployment.nats.stop()
    report = diagnose(load_config(deployment.config("doctor")), sample=False)
    checks = {check.name: check for check in report.checks}
    assert checks["objectstore_queue"].status == "fail"
    assert not report.ready


def test_a_store_that_ignores_conditional_writes_is_refused_loudly(tmp_path: Path) -> None:
    """Behind a proxy that drops If-None-Match, every one of the probe's concurrent conditional
    PUTs succeeds: the daemon refuses to start in exactly-once mode (exit 1, saying why), and
    starts at-least-once, logged as an error, only when told to."""
    from tests.support.daemon import DaemonProcess
    from tests.support.servers import CREDENTIALS, ConditionStripper, NatsServer, SeaweedS3, make_bucket

    seaweed = SeaweedS3(tmp_path / "seaweed", anonymous=True).start()
    nats = NatsServer(tmp_path / "nats").start()
    proxy = ConditionStripper(seaweed.endpoint)
    try:
        make_bucket(proxy.endpoint, "media")
        deployment = Deployment(root=tmp_path, nats=nats, s3_server=seaweed, endpoint=proxy.endpoint)
        refused = DaemonProcess(deployment.config("strict"), engine="fake", env=CREDENTIALS)
        with pytest.raises(AssertionError, match=r"daemon exited \(1\)"):
            refused.start()
        assert "Refusing to start in exactly-once mode" in refused.stderr()
        event = next(e for e in refused.events() if e.get("event") == "objectstore.exactly_once_refused")
        assert event["won"] == 8
        lenient = DaemonProcess(deployment.config("lenient", require_exactly_once=False), engine="fake",
                                env=CREDENTIALS).start()
        try:
            assert lenient.wait_for("objectstore.at_least_once")["won"] == 8
        finally:
            lenient.kill()
    finally:
        proxy.close()
        nats.stop(signal.SIGKILL)
        seaweed.stop(signal.SIGKILL)


def test_the_completion_hook_gets_the_objects_places(deployment: Deployment, tmp_path: Path) -> None:
    """A hook command runs once per committed job, its JSON naming the object and its results
    by URI (the same hooks as for the folders: docs/hooks.md)."""
    import sys

    from tests.support.daemon import DaemonProcess, wait_until
    from tests.support.servers import CREDENTIALS

    received = tmp_path / "hooks.jsonl"
    script = f"import sys; open({str(received)!r}, 'a').write(sys.stdin.read().replace(chr(10), ' ') + chr(10))"
    config = deployment.config("hooked", hooks={"command": [sys.executable, "-c", script]})
    key = deployment.upload("talk.wav")
    daemon = DaemonProcess(config, engine="fake", env=CREDENTIALS).start()
    deployment.daemons.append(daemon)
    manifest, = deployment.wait_for_manifests(1)
    wait_until(lambda: received.exists() and received.read_text().strip(), 60, "the hook's delivery")
    body, = [json.loads(line) for line in received.read_text().splitlines()]
    assert body["outcome"] == "done" and body["file"] == "talk.wav"
    assert body["source"]["path"] == f"s3://media/{key}"
    assert {r["format"]: r["path"] for r in body["results"]}["json"] == f"s3://media/{manifest['results']['.json']}"
    assert body["log"]["path"] == f"s3://media/{manifest['results']['.log.jsonl']}"
