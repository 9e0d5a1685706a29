"""The daemon as a user meets it: a child process, real folders, a real observer, the fake engine.

The fake engine decodes audio for real and answers "fake transcript of NAME, N s" (N = the
decoded duration), so these tests see exactly what reached the engine.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.corpus import corpus_dir
from tests.support.daemon import DaemonProcess, Folders, wait_until
from tests.support.media import copy_slowly, write_random_bytes

SPEECH = "librispeech/1088-134315-0000.wav"  # 16.04 s
SHORT = "cmu_sphinx/goforward.wav"  # 2.79 s


def _speech(name: str = SPEECH) -> Path:
    return corpus_dir() / name


def _fake(folders: Folders, **fake: object) -> DaemonProcess:
    return DaemonProcess(folders.config, engine="fake", env={"TRANSCRIBED_FAKE": json.dumps(fake)})


def _done(folders: Folders, name: str, timeout: float = 30) -> Path:
    return wait_until(lambda: (folders.done / name).exists() and folders.done / name, timeout,
                      f"{name} in done/")


@pytest.mark.usefixtures("corpus")
def test_a_dropped_file_ends_in_done_with_results_in_the_outbox(folders: Folders) -> None:
    """inbox/x.wav -> outbox/x.{json,txt,srt,vtt,log.jsonl} and done/x.wav; stdout is all JSON."""
    with _fake(folders) as daemon:
        shutil.copy(_speech(), folders.inbox / "talk.wav")
        _done(folders, "talk.wav")
        daemon.wait_for("job.moved")
        assert daemon.stop() == 0
    assert folders.files(folders.outbox) == [
        "talk.json", "talk.log.jsonl", "talk.srt", "talk.txt", "talk.vtt"]
    assert folders.files(folders.inbox) == [] and folders.files(folders.failed) == []
    result = json.loads((folders.outbox / "talk.json").read_text())
    assert result["segments"][0]["text"] == " fake transcript of talk.wav, 16.0 s"
    assert result["transcribed"]["source"] == "talk.wav"
    assert result["transcribed"]["audio_seconds"] == pytest.approx(16.04, abs=0.01)
    events = [e["event"] for e in daemon.events()]  # every line parses as JSON
    for expected in ("daemon.starting", "model.loading", "model.loaded", "daemon.started",
                     "file.detected", "job.claimed", "job.started", "job.done", "daemon.stopping", "daemon.stopped"):
        assert expected in events
    job_log = [json.loads(line) for line in (folders.outbox / "talk.log.jsonl").read_text().splitlines()]
    assert {"job.started", "job.decoded", "job.done", "job.moved"} <= {e["event"] for e in job_log}
    assert all(e["file"] == "talk.wav" for e in job_log)


@pytest.mark.usefixtures("corpus")
def test_files_waiting_before_start_are_transcribed(folders: Folders) -> None:
    """A start-up scan takes what arrived while the daemon was down, subfolders included."""
    (folders.inbox / "monday").mkdir(parents=True)
    shutil.copy(_speech(SHORT), folders.inbox / "monday" / "a.wav")
    shutil.copy(_speech(SHORT), folders.inbox / "b.wav")
    with _fake(folders):
        _done(folders, "monday/a.wav")
        _done(folders, "b.wav")
    assert (folders.outbox / "monday" / "a.json").exists()


@pytest.mark.usefixtures("corpus")
@pytest.mark.parametrize("polling", [False, True], ids=["inotify", "polling"])
def test_a_slow_copy_is_taken_once_and_complete(folders: Folders, polling: bool) -> None:
    """A file written in chunks over 6 s is transcribed once, whole, never half-written.

    With inotify the pauses between chunks are longer than settle_seconds: the open writer
    must hold the file back. A polling observer cannot see writers, so it relies on the
    settle time, which is longer than the pauses there.
    """
    settle = 2.0 if polling else 0.5
    folders.write_config(watch={"polling": polling, "settle_seconds": settle, "poll_interval_seconds": 0.2})
    with _fake(folders) as daemon:
        copy_slowly(_speech(), folders.inbox / "slow.wav", seconds=6, chunks=8)
        _done(folders, "slow.wav")
        daemon.wait_for("job.moved")
    result = json.loads((folders.outbox / "slow.json").read_text())
    assert result["segments"][0]["text"].endswith("16.0 s")
    assert daemon.count("job.claimed") == 1
    assert (folders.done / "slow.wav").read_bytes() == _speech().read_bytes()


@pytest.mark.usefixtures("corpus")
def test_temporary_names_wait_until_renamed(folders: Folders) -> None:
    """x.wav.part and dotfiles are ignored; the rename to x.wav is what makes it a job."""
    with _fake(folders) as daemon:
        shutil.copy(_speech(SHORT), folders.inbox / "x.wav.part")
        shutil.copy(_speech(SHORT), folders.inbox / ".hidden.wav")
        daemon.wait_for("daemon.started")
        (folders.inbox / "x.wav.part").rename(folders.inbox / "x.wav")
        _done(folders, "x.wav")
        daemon.stop()
    assert (folders.inbox / ".hidden.wav").exists()
    assert daemon.count("job.claimed") == 1


@pytest.mark.usefixtures("corpus")
def test_corrupt_and_empty_files_fail_with_a_report_and_the_next_file_is_done(folders: Folders) -> None:
    """Bad input goes to failed/ beside <name>.error.json; the daemon keeps serving."""
    with _fake(folders) as daemon:
        write_random_bytes(folders.inbox / "noise.wav", 20_000)
        (folders.inbox / "empty.mp3").write_bytes(b"")
        wait_until(lambda: len(folders.files(folders.failed)) == 6, 30, "two failed jobs")
        shutil.copy(_speech(SHORT), folders.inbox / "good.wav")
        _done(folders, "good.wav")
        assert daemon.stop() == 0
    empty = json.loads((folders.failed / "empty.mp3.error.json").read_text())
    assert empty["error_kind"] == "empty" and empty["stage"] == "decode"
    assert "empty" in empty["error"]
    noise = json.loads((folders.failed / "noise.wav.error.json").read_text())
    assert noise["error_kind"] == "not_audio" and noise["file"] == "noise.wav"
    assert str(folders.state) not in noise["error"]  # the report names the file, not our work folder
    assert (folders.failed / "noise.wav").stat().st_size == 20_000


@pytest.mark.usefixtures("corpus")
def test_the_same_name_twice_keeps_both(folders: Folders) -> None:
    """A second delivery of a.wav never overwrites the first one's results or source."""
    with _fake(folders):
        shutil.copy(_speech(SHORT), folders.inbox / "a.wav")
        _done(folders, "a.wav")
        shutil.copy(_speech(), folders.inbox / "a.wav")
        _done(folders, "a.2.wav")
    assert (folders.done / "a.wav").read_bytes() == _speech(SHORT).read_bytes()
    assert (folders.done / "a.2.wav").read_bytes() == _speech().read_bytes()
    assert "2.8 s" in (folders.outbox / "a.txt").read_text()
    assert "16.0 s" in (folders.outbox / "a.2.txt").read_text()


@pytest.mark.usefixtures("corpus")
def test_sigterm_lets_the_current_job_finish(folders: Folders) -> None:
    """Within the grace period the running job completes, then the daemon exits 0."""
    with _fake(folders, delay=2) as daemon:
        shutil.copy(_speech(SHORT), folders.inbox / "a.wav")
        daemon.wait_for("job.started")
        assert daemon.stop() == 0
    assert (folders.done / "a.wav").exists() and (folders.outbox / "a.json").exists()


@pytest.mark.usefixtures("corpus")
def test_sigterm_past_the_grace_period_puts_the_file_back(folders: Folders) -> None:
    """A job that outlasts shutdown_grace_seconds returns to the inbox untouched; exit 0."""
    folders.write_config(daemon={"shutdown_grace_seconds": 0.5})
    with _fake(folders, delay=30) as daemon:
        shutil.copy(_speech(SHORT), folders.inbox / "long.wav")
        daemon.wait_for("job.started")
        assert daemon.stop() == 0
    assert folders.files(folders.inbox) == ["long.wav"]
    assert (folders.inbox / "long.wav").read_bytes() == _speech(SHORT).read_bytes()
    assert folders.files(folders.outbox) == [] and folders.files(folders.done) == []
    assert daemon.count("job.requeued") == 1


@pytest.mark.usefixtures("corpus")
def test_a_second_signal_puts_the_file_back_at_once(folders: Folders) -> None:
    """SIGTERM twice: no waiting for the grace period."""
    folders.write_config(daemon={"shutdown_grace_seconds": 60})
    with _fake(folders, delay=30) as daemon:
        shutil.copy(_speech(SHORT), folders.inbox / "long.wav")
        daemon.wait_for("job.started")
        daemon.process.send_signal(15)
        daemon.wait_for("daemon.stopping")
        assert daemon.stop(timeout=10) == 0
    assert folders.files(folders.inbox) == ["long.wav"]


@pytest.mark.usefixtures("corpus")
@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGINT"])
def test_a_signal_while_the_model_loads_stops_the_daemon_at_once_with_exit_0(
        folders: Folders, signal_name: str) -> None:
    """A stop during start-up (a large model loading) is honoured at once: exit 0, daemon.stopped
    logged, nothing claimed (a file already waiting stays in the inbox)."""
    shutil.copy(_speech(SHORT), folders.inbox / "waiting.wav")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TRANSCRIBED_FAKE": json.dumps({"load_seconds": 60})}
    child = subprocess.Popen([sys.executable, "-m", "transcribed", "run", "--config", str(folders.config),
                              "--engine", "fake"], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert child.stdout is not None
        for line in child.stdout:
            if json.loads(line)["event"] == "model.loading":
                break
        began = time.monotonic()
        child.send_signal(getattr(signal, signal_name))
        code = child.wait(timeout=10)
        stopping_took = time.monotonic() - began
        events = [json.loads(line)["event"] for line in child.stdout]
    finally:
        child.kill()
        child.wait()
    assert code == 0
    assert stopping_took < 5, f"the stop took {stopping_took:.1f} s; the model would have taken 60"
    assert events[-1] == "daemon.stopped" and "daemon.stopping" in events
    assert folders.files(folders.inbox) == ["waiting.wav"]
    assert not (folders.state / "work").exists() or not any((folders.state / "work").iterdir())
