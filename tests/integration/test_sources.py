"""The consumer and its job sources, in-process with fake sources and the fake engine: jobs come
from the sources in their order, and each job's end goes back to the source that claimed it,
after a crash and an adoption too."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

from tests.support.consumer import make_config
from tests.support.media import write_tone_wav
from transcribed.config import Config
from transcribed.consumer.loop import Consumer
from transcribed.engine.fake import FakeEngine
from transcribed.intake.arrivals import Arrivals
from transcribed.operations.stats import Stats
from transcribed.spool.fake_source import FakeSource
from transcribed.spool.folder import WorkFolder
from transcribed.spool.seam import JobSource
from transcribed.spool.workers import WorkerId


def consumer_of(config: Config, spool: WorkFolder, sources: list[JobSource]) -> Consumer:
    for source in sources:
        source.prepare()
    return Consumer(config, spool, sources, FakeEngine(), Arrivals(0.0), threading.Event(), stats=Stats())


def run_all(consumer: Consumer) -> None:
    """Take and run jobs until no source offers one."""
    while (job := consumer.next_job()) is not None:
        consumer.process(job)


def test_jobs_come_from_the_sources_in_order_and_end_where_they_came_from(tmp_path: Path) -> None:
    """The first source is asked first; a second source's files come when the first has none.
    A file that is no audio fails at its own source, with the report; the other ends done."""
    config = make_config(tmp_path, packing={"enabled": False})
    spool = WorkFolder(config)
    spool.prepare()
    first, second = FakeSource(spool, tmp_path / "first", "first"), FakeSource(spool, tmp_path / "second", "second")
    consumer = consumer_of(config, spool, [first, second])
    write_tone_wav(tmp_path / "first" / "a.wav", 1.0)
    write_tone_wav(tmp_path / "second" / "b.wav", 1.0)
    (tmp_path / "second" / "c.wav").write_bytes(b"this is no audio")
    run_all(consumer)
    assert [(e.how, e.file) for e in first.ended] == [("done", "a.wav")]
    assert [(e.how, e.file) for e in second.ended] == [("done", "b.wav"), ("failed", "c.wav")]
    assert "fake transcript of a.wav" in first.ended[0].results[".txt"]
    assert second.ended[1].report["error_kind"] == "not_audio"
    assert sorted(p.name for p in spool.mine.iterdir()) == ["worker.json"]  # no job left behind


def test_a_job_left_by_a_crash_is_adopted_and_ends_at_the_source_that_claimed_it(tmp_path: Path) -> None:
    """A gone worker's job records its source's name: the adopter sends its end there, not to
    the first source it holds."""
    config = make_config(tmp_path, packing={"enabled": False})
    gone = WorkFolder(config, WorkerId(socket.gethostname(), 999_999, 5))  # no such process
    gone.prepare()
    left_by_gone = FakeSource(gone, tmp_path / "second", "second")
    left_by_gone.prepare()
    write_tone_wav(tmp_path / "second" / "b.wav", 1.0)
    (job,) = left_by_gone.claim(1)
    spool = WorkFolder(config)
    spool.prepare()
    first, second = FakeSource(spool, tmp_path / "first", "first"), FakeSource(spool, tmp_path / "second", "second")
    run_all(consumer_of(config, spool, [first, second]))
    assert first.ended == [] and [(e.how, e.file) for e in second.ended] == [("done", "b.wav")]
    assert not job.dir.exists() and not gone.mine.exists()


def test_files_given_back_go_to_their_own_source(tmp_path: Path) -> None:
    """The daemon stops with jobs in flight: each file is released by the source it came from."""
    config = make_config(tmp_path)
    spool = WorkFolder(config)
    spool.prepare()
    first, second = FakeSource(spool, tmp_path / "first", "first"), FakeSource(spool, tmp_path / "second", "second")
    consumer = consumer_of(config, spool, [first, second])
    write_tone_wav(tmp_path / "first" / "a.wav", 1.0)
    write_tone_wav(tmp_path / "second" / "b.wav", 1.0)
    for job in [*first.claim(1), *second.claim(1)]:
        consumer.in_flight[job.id] = job
    back = consumer.give_back_in_flight(reason="a test stops the daemon")
    assert sorted(p.relative_to(tmp_path).as_posix() for p in back) == ["first/a.wav", "second/b.wav"]
    assert [e.how for e in first.ended + second.ended] == ["released", "released"]
