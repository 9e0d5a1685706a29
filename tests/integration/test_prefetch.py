"""Overlap: the next file is decoded, and its speech found, while the consumer transcribes.

The real Consumer, Pipeline, Prefetch and spool in temp folders, with real decoding; the model is
the FakeEngine (its transcriptions take scripted time, so the overlap can be seen in the order
of events). The same with the real WhisperX pipeline is in tests/e2e/test_overlap.py.
"""

from __future__ import annotations

import contextlib
import json
import threading
from pathlib import Path

import structlog
from structlog.testing import capture_logs

from tests.integration.test_oom_backoff import GPU_SETTINGS
from tests.support.consumer import drop, make_config, make_consumer, process_next
from tests.support.daemon import wait_until
from tests.support.media import write_text_as, write_tone_wav
from transcribed.config import Config
from transcribed.consumer.loop import Consumer
from transcribed.engine.fake import FakeEngine


def overlapping(tmp_path: Path, **overlap: object) -> Config:
    return make_config(tmp_path, overlap={"enabled": True, **overlap}, packing={"enabled": False})


def logged() -> contextlib.AbstractContextManager[list[dict]]:
    """Every event logged meanwhile, from any thread, with its job_id and file."""
    return capture_logs(processors=[structlog.contextvars.merge_contextvars])


def two_jobs_logged(consumer: Consumer) -> list[dict]:
    """The consumer takes and runs the next two files; the events logged meanwhile."""
    with logged() as events:
        process_next(consumer)
        process_next(consumer)
    return events


def metadata(config: Config, stem: str) -> dict:
    return json.loads((config.folders.outbox / f"{stem}.json").read_text())


def text(config: Config, stem: str) -> str:
    return " ".join(s["text"].strip() for s in metadata(config, stem)["segments"])


def test_the_next_file_is_decoded_while_this_one_is_transcribed(tmp_path: Path) -> None:
    config = overlapping(tmp_path)
    engine = FakeEngine(delays={"a.wav": 0.5})
    consumer = make_consumer(config, engine)
    drop(config, "a.wav")
    drop(config, "b.wav", seconds=2.0)
    events = two_jobs_logged(consumer)

    order = [(e["event"], e.get("file")) for e in events]
    assert order.index(("job.decoded", "b.wav")) < order.index(("job.done", "a.wav"))
    assert order.index(("job.done", "a.wav")) < order.index(("job.done", "b.wav"))
    assert order.count(("job.decoded", "b.wav")) == 1
    assert engine.given_speech == ["b.wav"]  # b's speech was found ahead and handed in
    assert metadata(config, "b")["transcribed"]["prepared_ahead"] is True
    assert "prepared_ahead" not in metadata(config, "a")["transcribed"]
    assert text(config, "b") == "fake transcript of b.wav, 2.0 s"
    assert sorted(p.name for p in config.folders.done.iterdir()) == ["a.wav", "b.wav"]


def test_a_job_decoded_ahead_gets_its_own_wall_time(tmp_path: Path) -> None:
    """b's total counts from when the consumer took it, not from its decoding during a's turn."""
    config = overlapping(tmp_path)
    consumer = make_consumer(config, FakeEngine(delays={"a.wav": 1.0}))
    drop(config, "a.wav")
    drop(config, "b.wav")
    process_next(consumer)
    process_next(consumer)
    assert metadata(config, "b")["transcribed"]["timings"]["total"] < 0.9


def test_files_decoded_ahead_go_back_to_the_inbox_when_the_daemon_stops(tmp_path: Path) -> None:
    config = overlapping(tmp_path, files_ahead=2)
    consumer = make_consumer(config, FakeEngine(delays={"a.wav": 1.5}))
    originals = {name: drop(config, name).read_bytes() for name in ("a.wav", "b.wav", "c.wav")}
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stop,))
    thread.start()
    assert consumer.prefetch is not None
    wait_until(lambda: consumer.prefetch.room == 0, 10, "b and c claimed and decoded ahead")
    stop.set()  # while a is still being transcribed
    thread.join(30)

    assert not thread.is_alive()
    assert [p.name for p in config.folders.done.iterdir()] == ["a.wav"]
    assert {p.name: p.read_bytes() for p in config.folders.inbox.iterdir()} == \
        {"b.wav": originals["b.wav"], "c.wav": originals["c.wav"]}
    assert [p.name for p in consumer.spool.mine.iterdir()] == ["worker.json"]  # no job left behind
    assert consumer.stats.jobs["requeued"] == 2


def test_a_file_waiting_behind_a_long_job_goes_back_to_the_inbox(tmp_path: Path) -> None:
    """With several daemons on one inbox, a file claimed ahead must not wait out another's long
    recording: after overlap.max_wait_seconds it is given back, and taken again in its turn."""
    config = overlapping(tmp_path, max_wait_seconds=0.5)
    consumer = make_consumer(config, FakeEngine(delays={"long.wav": 2.0}))
    drop(config, "long.wav")
    original = drop(config, "next.wav").read_bytes()
    returned: dict[str, object] = {}

    def watch_inbox() -> None:  # what an operator sees while long.wav is still being transcribed
        wait_until(lambda: not (config.folders.inbox / "next.wav").exists(), 10, "next.wav claimed")
        wait_until(lambda: (config.folders.inbox / "next.wav").is_file(), 10, "next.wav given back")
        returned.update(bytes=(config.folders.inbox / "next.wav").read_bytes(),
                        current=consumer.stats.current_file)
    watcher = threading.Thread(target=watch_inbox)
    with logged() as events:
        job = wait_until(consumer.next_job, 10, "long.wav ready")
        watcher.start()
        consumer.process(job)
        watcher.join(10)
        process_next(consumer)

    back = [e for e in events if e["event"] == "job.requeued"]
    assert [e["file"] for e in back] == ["next.wav"] and "long job" in back[0]["reason"]
    assert returned == {"bytes": original, "current": "long.wav"}  # still shown as the job running
    assert sorted(p.name for p in config.folders.done.iterdir()) == ["long.wav", "next.wav"]
    assert "prepared_ahead" not in metadata(config, "next")["transcribed"]
    assert consumer.stats.jobs["requeued"] == 1 and consumer.stats.jobs["done"] == 2


def test_a_bad_file_ahead_is_failed_by_the_consumer_with_its_report(tmp_path: Path) -> None:
    config = overlapping(tmp_path)
    consumer = make_consumer(config, FakeEngine(delays={"a.wav": 0.3}))
    drop(config, "a.wav")
    write_text_as(config.folders.inbox / "notes.wav")
    process_next(consumer)
    process_next(consumer)
    report = json.loads((config.folders.failed / "notes.wav.error.json").read_text())
    assert report["stage"] == "decode" and report["attempts"] == 1
    assert report["error_kind"] in ("not_audio", "no_audio_stream"), report
    assert (config.folders.done / "a.wav").is_file()


def test_a_file_longer_than_the_bound_is_decoded_in_its_turn(tmp_path: Path) -> None:
    config = overlapping(tmp_path, max_audio_seconds=1.5)
    engine = FakeEngine(delays={"a.wav": 0.3})
    consumer = make_consumer(config, engine)
    drop(config, "a.wav")
    drop(config, "long.wav", seconds=3.0)
    events = two_jobs_logged(consumer)
    skipped = [e for e in events if e["event"] == "prefetch.skipped"]
    assert [(e["job_id"] is not None, e["declared_s"]) for e in skipped] == [(True, 3.0)]
    assert engine.given_speech == []
    assert text(config, "long") == "fake transcript of long.wav, 3.0 s"


def test_a_step_that_fails_ahead_is_redone_and_decided_by_the_consumer(tmp_path: Path) -> None:
    """A typo in b's sidecar: the prefetch gives up on b, the consumer finds the same error and
    fails b with the usual report, the sidecar beside it; nothing is decided on the helper thread."""
    config = overlapping(tmp_path)
    consumer = make_consumer(config, FakeEngine(delays={"a.wav": 0.3}))
    drop(config, "a.wav")
    (config.folders.inbox / "b.wav.yaml").write_text("langauge: de\n")
    drop(config, "b.wav")
    events = two_jobs_logged(consumer)
    left = [e for e in events if e["event"] == "prefetch.left_to_consumer"]
    assert [e["file"] for e in left] == ["b.wav"] and "langauge" in left[0]["reason"]
    report = json.loads((config.folders.failed / "b.wav.error.json").read_text())
    assert (report["error_kind"], report["stage"]) == ("bad_sidecar", "options")
    assert "langauge" in report["error"]
    assert (config.folders.failed / "b.wav.yaml").is_file()
    assert (config.folders.done / "a.wav").is_file()


def test_overlap_is_on_by_default_on_a_gpu_and_on_the_cpu_only_with_silero(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    assert make_consumer(config, FakeEngine()).prefetch is None
    assert make_consumer(config, FakeEngine(settings=GPU_SETTINGS)).prefetch is not None
    silero = make_config(tmp_path / "silero", vad={"method": "silero"})
    assert make_consumer(silero, FakeEngine()).prefetch is not None
    forced = make_config(tmp_path / "forced", overlap={"enabled": False}, vad={"method": "silero"})
    assert make_consumer(forced, FakeEngine(settings=GPU_SETTINGS)).prefetch is None
    assert make_consumer(forced, FakeEngine()).prefetch is None


def test_a_file_that_has_not_settled_is_not_claimed_ahead(tmp_path: Path) -> None:
    """The prefetch claims by the same arrival rules as the consumer: a file that arrived a
    moment ago (it may still be growing) waits in the inbox."""
    config = make_config(tmp_path, overlap={"enabled": True}, watch={"settle_seconds": 1.0})
    consumer = make_consumer(config, FakeEngine(delays={"a.wav": 0.3}))
    drop(config, "a.wav")
    job = wait_until(consumer.next_job, 10, "a.wav settled")
    write_tone_wav(config.folders.inbox / "fresh.wav", 1.0)
    consumer.process(job)
    assert (config.folders.done / "a.wav").is_file()
    assert (config.folders.inbox / "fresh.wav").is_file() and consumer.prefetch.first() is None
