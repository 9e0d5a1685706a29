"""Packing through the real Consumer, spool and decoding, with the FakeEngine as model: the real
layout (packing.py) over a scripted decode, so every consumer branch is pinned fast. Each packed
file gets its own text, its own timestamps and honest metadata; a file in no window is
transcribed alone. The real-model proof is tests/e2e/test_packing.py."""

from __future__ import annotations

import json
from pathlib import Path

from tests.integration.test_batching import running
from tests.support.consumer import drop, make_config, make_consumer
from tests.support.daemon import wait_until
from transcribed.config import Config
from transcribed.engine.base import EngineSettings
from transcribed.engine.fake import FakeEngine

NAMES = ["a.wav", "b.wav", "c.wav", "d.wav"]


def packing(tmp_path: Path, **keys: object) -> Config:
    return make_config(tmp_path, packing={"enabled": True, "max_files": 4, "gap_seconds": 2.0, **keys})


def result(config: Config, name: str) -> dict:
    return json.loads((config.folders.outbox / f"{name[:-4]}.json").read_text())


def run_all(config: Config, engine: FakeEngine, seconds: list[float]) -> None:
    consumer = make_consumer(config, engine)
    for name, length in zip(NAMES, seconds, strict=True):
        drop(config, name, seconds=length)
    with running(consumer):
        wait_until(lambda: len(list(config.folders.done.iterdir())) == len(NAMES), 20, "all in done/")


def test_waiting_short_files_share_one_window_and_each_keeps_its_own_text_and_time(tmp_path: Path) -> None:
    config = packing(tmp_path)
    engine = FakeEngine()
    run_all(config, engine, [1.0, 2.0, 3.0, 4.0])
    assert engine.packed_windows == ["+".join(NAMES)]
    assert engine.calls == [], "no file needed a call of its own"
    for n, name in enumerate(NAMES, start=1):
        data = result(config, name)
        assert [(s["start"], s["end"], s["text"]) for s in data["segments"]] == [
            (0.0, float(n), f" fake transcript of {name}, {n:.1f} s")]
        assert data["transcribed"]["packed_files"] == len(NAMES)
        assert data["transcribed"]["packed_gap_seconds"] == 2.0
        assert "shared_batch_files" not in data["transcribed"]


def test_a_file_left_over_from_full_windows_is_transcribed_alone(tmp_path: Path) -> None:
    """Three files fill a window (max_files 3); a window of one gains nothing, so d goes alone."""
    config = packing(tmp_path, max_files=3)
    engine = FakeEngine()
    run_all(config, engine, [1.0, 2.0, 3.0, 4.0])
    assert engine.packed_windows == ["a.wav+b.wav+c.wav"]
    assert [files for files, _batch in engine.calls] == ["d.wav"]
    for n, name in enumerate(NAMES, start=1):
        data = result(config, name)
        assert data["segments"][0]["text"] == f" fake transcript of {name}, {n:.1f} s"
        assert data["transcribed"].get("packed_files") == (None if name == "d.wav" else 3), name


def test_a_file_longer_than_max_audio_seconds_is_not_packed(tmp_path: Path) -> None:
    config = packing(tmp_path, max_audio_seconds=3.0)
    engine = FakeEngine()
    run_all(config, engine, [1.0, 2.0, 3.0, 4.0])
    assert engine.packed_windows == ["a.wav+b.wav+c.wav"]
    assert [files for files, _batch in engine.calls] == ["d.wav"]
    assert "packed_files" not in result(config, "d.wav")["transcribed"]


def test_a_failed_packed_call_leaves_each_file_to_be_transcribed_alone(tmp_path: Path) -> None:
    config = packing(tmp_path)
    engine = FakeEngine(fail={"c.wav": "decoder blew up"})
    consumer = make_consumer(config, engine)
    for name in NAMES:
        drop(config, name)
    with running(consumer):
        wait_until((config.folders.failed / "c.wav.error.json").exists, 20, "c failed")
        wait_until(lambda: len(list(config.folders.done.iterdir())) == 3, 20, "the rest in done/")
    assert ("a.wav", 4) in engine.calls, engine.calls
    for name in ("a.wav", "b.wav", "d.wav"):
        assert "packed_files" not in result(config, name)["transcribed"], name


def test_packing_is_on_by_default_on_the_cpu_and_off_on_a_gpu(tmp_path: Path) -> None:
    config = make_config(tmp_path, packing={})
    gpu = EngineSettings("fake", "", "fake", "cuda", 0, "float16", 16, 1, {"engine": "fake"})
    assert make_consumer(config, FakeEngine()).packing is True
    assert make_consumer(config, FakeEngine(settings=gpu)).packing is False
    assert make_consumer(make_config(tmp_path, packing={"enabled": False}), FakeEngine()).packing is False
