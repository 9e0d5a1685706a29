"""Cross-file batching through the real Consumer, spool and decoding, with the FakeEngine as model.

The same consumer code as with WhisperX (the engine Protocol declares shared calls), fast enough
to pin every branch: each file gets its own text and its own outcome. The real-model proof that
the text equals the text alone is tests/e2e/test_batching.py.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.consumer import drop, make_config, make_consumer
from tests.support.daemon import wait_until
from tests.support.media import write_random_bytes
from transcribed.config import Config
from transcribed.consumer.loop import Consumer
from transcribed.engine.fake import FakeEngine
from transcribed.errors import GpuLost

NAMES = ["a.wav", "b.wav", "c.wav", "d.wav"]


def batching(tmp_path: Path) -> Config:
    return make_config(tmp_path, batching={"enabled": True, "max_files": 8}, packing={"enabled": False})


@contextmanager
def running(consumer: Consumer) -> Iterator[list[BaseException]]:
    """The consumer's own loop on a thread, stopped (and joined) on leaving; what it raised."""
    stop, raised = threading.Event(), []

    def loop() -> None:
        try:
            consumer.run(stop)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            raised.append(exc)

    thread = threading.Thread(target=loop, name="test-consumer")
    thread.start()
    try:
        yield raised
    finally:
        stop.set()
        consumer.wake.set()
        thread.join(timeout=10)
        assert not thread.is_alive(), "the consumer did not stop"


def result(config: Config, stem: str) -> dict:
    return json.loads((config.folders.outbox / f"{stem}.json").read_text())


def test_waiting_files_share_one_model_call_and_each_keeps_its_own_text(tmp_path: Path) -> None:
    config = batching(tmp_path)
    engine = FakeEngine()
    consumer = make_consumer(config, engine)
    for n, name in enumerate(NAMES, start=1):
        drop(config, name, seconds=float(n))
    with running(consumer):
        wait_until(lambda: len(list(config.folders.done.iterdir())) == len(NAMES), 20, "all in done/")
    assert ("+".join(NAMES), 4) in engine.calls, engine.calls
    for n, name in enumerate(NAMES, start=1):
        stem = name[:-4]
        data = result(config, stem)
        assert data["segments"][0]["text"] == f" fake transcript of {name}, {n:.1f} s"
        assert data["transcribed"]["shared_batch_files"] == len(NAMES)


def test_a_failed_shared_call_is_retried_file_by_file(tmp_path: Path) -> None:
    """One file makes the shared call fail: the others are transcribed alone and done; the bad one
    is retried alone and ends as poison with its own error."""
    config = batching(tmp_path)
    engine = FakeEngine(fail={"c.wav": "decoder blew up"})
    consumer = make_consumer(config, engine)
    for name in NAMES:
        drop(config, name)
    with running(consumer):
        wait_until(lambda: (config.folders.failed / "c.wav.error.json").exists(), 20, "c failed")
        wait_until(lambda: len(list(config.folders.done.iterdir())) == 3, 20, "the rest in done/")
    assert sorted(p.name for p in config.folders.done.iterdir()) == ["a.wav", "b.wav", "d.wav"]
    assert ("a.wav", 4) in engine.calls  # alone, after the shared call failed
    report = json.loads((config.folders.failed / "c.wav.error.json").read_text())
    assert report["error_kind"] == "poison" and "decoder blew up" in report["error"]


def test_a_bad_file_among_them_fails_alone_and_the_rest_share(tmp_path: Path) -> None:
    config = batching(tmp_path)
    engine = FakeEngine()
    consumer = make_consumer(config, engine)
    for name in NAMES[:3]:
        drop(config, name)
    write_random_bytes(config.folders.inbox / "broken.wav", 10_000)
    with running(consumer):
        wait_until(lambda: (config.folders.failed / "broken.wav.error.json").exists(), 20, "broken failed")
        wait_until(lambda: len(list(config.folders.done.iterdir())) == 3, 20, "the rest in done/")
    assert ("a.wav+b.wav+c.wav", 4) in engine.calls, engine.calls
    report = json.loads((config.folders.failed / "broken.wav.error.json").read_text())
    assert report["stage"] == "decode" and report["attempts"] == 1


def test_a_gpu_lost_in_a_shared_call_gives_every_file_back_and_stops(tmp_path: Path) -> None:
    config = batching(tmp_path)
    engine = FakeEngine(lose_gpu_on=("b.wav",))
    consumer = make_consumer(config, engine)
    for name in NAMES:
        drop(config, name)
    with running(consumer) as raised:
        wait_until(lambda: raised, 20, "the consumer to stop on the lost GPU")
    assert isinstance(raised[0], GpuLost)
    assert sorted(p.name for p in config.folders.inbox.iterdir()) == NAMES
    assert not list(config.folders.done.iterdir()) and not list(config.folders.failed.iterdir())


def test_auto_keeps_batching_off_on_the_cpu(tmp_path: Path) -> None:
    assert make_consumer(make_config(tmp_path), FakeEngine()).batching is False
