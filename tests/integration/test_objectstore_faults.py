"""Faults of the object-store intake, against the real servers on 127.0.0.1 and real daemons.

Each test ends with every object committed once (done, or failed with a report): none lost, none
doubled. The lease (`ack_wait_seconds`) is 3 s here, so a dead worker's job comes back soon.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

from tests.support.daemon import DaemonProcess, wait_until
from tests.support.objectstore import (
    ACK_WAIT,
    Deployment,
    notification,
    publish,
)


def _events(daemons: list[DaemonProcess], event: str, **fields: object) -> list[dict[str, object]]:
    return [e for d in daemons for e in d.events()
            if e.get("event") == event and all(e.get(k) == v for k, v in fields.items())]


def _once_each(deployment: Deployment, keys: list[str], outcome: str = "done") -> None:
    assert deployment.outcomes() == Counter({(key, outcome): 1 for key in keys})


def test_a_worker_killed_mid_job_loses_its_lease_and_another_finishes_it(deployment: Deployment) -> None:
    """SIGKILL during the transcription: the job is delivered again after AckWait, to the other
    daemon, which commits it; one manifest, its second delivery."""
    key = deployment.upload("long.wav")
    first = deployment.daemon("a", fake={"delays": {"long.wav": 60}})
    first.wait_for("job.started", file="long.wav")
    second = deployment.daemon("b")
    first.kill()
    manifest, = deployment.wait_for_manifests(1)
    _once_each(deployment, [key])
    assert manifest["worker"] == second.wait_for("daemon.started")["worker"]
    assert second.wait_for("job.claimed", file="long.wav")["delivery"] == 2
    assert manifest["attempts"] == 2  # the killed run counts, as in the folder


def test_heartbeats_keep_a_long_job_past_many_lease_periods(deployment: Deployment) -> None:
    """A job four times longer than AckWait, a second daemon idle beside it: the lease is renewed
    while the consumer beats, so the job is never delivered again."""
    key = deployment.upload("long.wav")
    worker = deployment.daemon("a", fake={"delays": {"long.wav": 4 * ACK_WAIT}})
    worker.wait_for("job.started", file="long.wav")
    idle = deployment.daemon("b")
    manifest, = deployment.wait_for_manifests(1)
    _once_each(deployment, [key])
    assert manifest["attempts"] == 1
    assert _events([worker, idle], "job.claimed") == _events([worker], "job.claimed")
    assert len(_events([worker], "job.claimed")) == 1


def test_a_zombie_worker_that_comes_back_loses_the_commit(deployment: Deployment) -> None:
    """SIGSTOP past AckWait: the job goes to another daemon, which commits it. SIGCONT: the
    zombie finishes too, its conditional write gets 412, its results are removed; one outcome."""
    key = deployment.upload("z.wav")
    zombie = deployment.daemon("a", fake={"delays": {"z.wav": 2 * ACK_WAIT}})
    zombie.wait_for("job.started", file="z.wav")
    assert zombie.process is not None
    os.kill(zombie.process.pid, signal.SIGSTOP)
    try:
        other = deployment.daemon("b")
        manifest, = deployment.wait_for_manifests(1)
    finally:
        os.kill(zombie.process.pid, signal.SIGCONT)
    lost = zombie.wait_for("objectstore.commit_lost", timeout=60)
    assert lost["removed"] >= 1
    _once_each(deployment, [key])
    assert manifest["worker"] == other.wait_for("daemon.started")["worker"]
    assert zombie.wait_for("objectstore.committed")["won"] is False
    prefixes = {k.rsplit("/", 2)[0] + "/" + k.rsplit("/", 2)[1] for k in _keys(deployment, "outbox/")}
    assert prefixes == {manifest["prefix"].rstrip("/")}


def _keys(deployment: Deployment, prefix: str) -> list[str]:
    listing = deployment.s3.list_objects_v2(Bucket="media", Prefix=prefix)
    return [item["Key"] for item in listing.get("Contents", [])]


def _restart_until_committed(deployment: Deployment, name: str, fake: dict[str, object],
                             tries: int, **objectstore: object) -> list[DaemonProcess]:
    """Start a daemon; each time the poison file kills it, start another, until a manifest."""
    runs = []
    for _ in range(tries):
        run = deployment.daemon(name, fake=fake, **objectstore)
        runs.append(run)
        assert run.process is not None
        wait_until(lambda: run.process.poll() is not None or deployment.manifests(), 60,  # noqa: B023
                   "a crash or a manifest")
        if deployment.manifests():
            return runs
    raise AssertionError(f"no manifest after {tries} runs")


def test_a_poison_file_that_kills_every_worker_ends_failed_with_its_attempts(deployment: Deployment) -> None:
    """A file that SIGKILLs the daemon on each delivery: after jobs.max_attempts (3) the
    daemon's own poison rule writes its failed record and report."""
    key = deployment.upload("poison.wav")
    _restart_until_committed(deployment, "a", {"crash_on": ["poison.wav"]}, tries=6)
    manifest, = deployment.manifests()
    _once_each(deployment, [key], "failed")
    assert manifest["report"]["error_kind"] == "poison"
    assert manifest["attempts"] == 3
    assert set(manifest["results"]) >= {".error.json", ".log.jsonl"}


def test_the_queue_gives_up_at_max_deliver_and_its_advisory_becomes_a_failed_record(
        deployment: Deployment) -> None:
    """MaxDeliver equal to the attempts (2): the queue gives the job up before the daemon's own
    rule can; the server's advisory is kept in the dead-letter stream, and a daemon writes the failed
    record from it."""
    key = deployment.upload("poison.wav")
    runs = _restart_until_committed(deployment, "a", {"crash_on": ["poison.wav"]}, tries=4,
                                    jobs={"max_attempts": 2}, max_deliver=2)
    manifest, = deployment.manifests()
    _once_each(deployment, [key], "failed")
    assert manifest["report"]["stage"] == "queue"
    assert manifest["attempts"] == 2
    assert _events(runs, "job.failed", error_kind="poison", stage="queue")


def test_pending_jobs_survive_a_restart_of_the_queue_server(deployment: Deployment) -> None:
    """Notifications only (no reconciler): five jobs in the stream, the server SIGKILLed while
    the daemon works on the first, then started again on its store: every job is committed once."""
    daemon = deployment.daemon("a", fake={"delay": 1.0}, reconcile_seconds=0)
    keys = [deployment.upload(f"talk{n}.wav") for n in range(5)]
    assert deployment.nats is not None
    publish(deployment.nats.url, "transcribed.jobs", [notification(deployment, k) for k in keys])
    daemon.wait_for("job.started")
    assert deployment.nats is not None
    deployment.nats.stop(signal.SIGKILL)
    deployment.nats.start()
    deployment.wait_for_manifests(5, timeout=120)
    _once_each(deployment, keys)
    assert daemon.wait_for("objectstore.queue_reconnected", timeout=30)


def test_jobs_wait_while_the_object_store_is_unreachable(deployment: Deployment) -> None:
    """The store stops while a job runs: its commit waits (the job neither fails nor is given
    up), and goes through once the store is back."""
    key = deployment.upload("talk.wav")
    daemon = deployment.daemon("a", fake={"delay": 3.0})
    daemon.wait_for("job.started", file="talk.wav")
    deployment.s3_server.stop()
    daemon.wait_for("objectstore.commit_waiting", timeout=60)
    deployment.s3_server.start()
    deployment.wait_for_manifests(1, timeout=120)
    _once_each(deployment, [key])
    assert not _events([daemon], "job.failed")


def test_a_duplicate_notification_is_one_job(deployment: Deployment) -> None:
    """The same notification three times: twice with one deduplication id (the stream keeps one),
    once without (as MinIO sends it): one manifest, the extra delivery dropped or its commit lost."""
    daemon = deployment.daemon("a", reconcile_seconds=0)
    key = deployment.upload("talk.wav")
    event = notification(deployment, key)
    from transcribed.objectstore.identity import objects_in

    job_key = objects_in(event)[0].job_key
    assert deployment.nats is not None
    publish(deployment.nats.url, "transcribed.jobs", [event, event, event], [job_key, job_key, None])
    deployment.wait_for_manifests(1)
    wait_until(lambda: len(_events([daemon], "job.claimed")) + daemon.count("objectstore.already_committed")
               >= 2, 30, "the second delivery handled")
    _once_each(deployment, [key])


def test_a_full_stream_pushes_back_and_nothing_is_dropped(deployment: Deployment) -> None:
    """A stream of three jobs and eight objects: the reconciler stops at the limit and enqueues
    the rest on later passes; all eight committed once."""
    keys = [deployment.upload(f"talk{n}.wav") for n in range(8)]
    daemon = deployment.daemon("a", fake={"delay": 0.3}, stream_max_messages=3)
    deployment.wait_for_manifests(8, timeout=120)
    _once_each(deployment, keys)
    assert daemon.count("objectstore.queue_full") >= 1
